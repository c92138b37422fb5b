//! The replica model checked against measurements: the calibration rows, the split into fit
//! and validation rows, the simulated benchmark of each row and the fit of the iteration model.
//!
//! A row of `data/calibration/llm_serving_latency_profiles.csv` is a closed-loop benchmark:
//! `B` concurrent clients, fixed prompt and output lengths, the mean TTFT and TPOT measured.
//! The rows come from NVIDIA's aiconfigurator (`data/README.md`); how they were measured is
//! not in the file. The 70B rows' TTFT grows with `B x isl` exactly as a measurement that
//! starts with `B` prompts sent at once and holds `10 x B` requests predicts (the first wave
//! queues its prompts, the later requests are spread out), so that is the benchmark
//! [`closed_loop`] simulates ([`Protocol`]); `docs/replica-model.md` gives the evidence.
//!
//! The fit runs offline (`simulate --replica-fit`): it simulates every fit row in the engine
//! and minimises the squared log errors of TTFT and TPOT (Nelder-Mead over the logarithms of
//! the coefficients). The result is written into [`crate::sim::profile`] as constants, with
//! the fit's provenance in their doc comments; the tests re-simulate the rows with those
//! constants and bound the errors.

use std::{fmt::Write as _, path::Path};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use serde::Serialize;

use crate::sim::{
    benchmark::{self, BenchRun, RequestRate, mean},
    profile::{ModelProfile, ReplicaKind},
};

/// Why the calibration rows could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The CSV is malformed or lacks a column.
    #[error("calibration CSV: {0}")]
    Csv(String),
}

/// One measured closed-loop benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Serving engine (`vllm`, `trtllm`, `sglang`).
    pub backend: String,
    /// Model path.
    pub model: String,
    /// GPU system (`h100_sxm`, ...).
    pub system: String,
    /// Weight precision.
    pub precision: String,
    /// Tensor parallelism.
    pub tp: u32,
    /// Prompt tokens.
    pub isl: u32,
    /// Output tokens.
    pub osl: u32,
    /// Concurrent clients.
    pub concurrency: u32,
    /// Measured mean TTFT, milliseconds.
    pub ttft_ms: f64,
    /// Measured mean TPOT, milliseconds.
    pub tpot_ms: f64,
}

/// Parses the calibration CSV's text.
pub fn parse_rows(text: &str) -> Result<Vec<Row>, CalibrationError> {
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let headers = rd.headers().map_err(|e| CalibrationError::Csv(e.to_string()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name).ok_or_else(|| CalibrationError::Csv(format!("no column {name}")));
    let (backend, model, system, precision) = (col("backend")?, col("model_path")?, col("system")?, col("precision")?);
    let (isl, osl, batch, tp) = (col("isl")?, col("osl")?, col("batch_size")?, col("tp_size")?);
    let (ttft, tpot) = (col("silicon_ttft_ms")?, col("silicon_tpot_ms")?);
    let mut rows = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| CalibrationError::Csv(e.to_string()))?;
        let field = |c: usize| rec.get(c).unwrap_or("").trim().to_string();
        let num = |c: usize| -> Result<f64, CalibrationError> {
            field(c).parse::<f64>().map_err(|_| CalibrationError::Csv(format!("row {}: column {} is not a number", i + 2, &headers[c])))
        };
        rows.push(Row {
            backend: field(backend),
            model: field(model),
            system: field(system),
            precision: field(precision),
            tp: num(tp)? as u32,
            isl: num(isl)? as u32,
            osl: num(osl)? as u32,
            concurrency: num(batch)? as u32,
            ttft_ms: num(ttft)?,
            tpot_ms: num(tpot)?,
        });
    }
    Ok(rows)
}

/// Reads the calibration CSV.
pub fn read_rows(path: &Path) -> Result<Vec<Row>, CalibrationError> {
    let text = std::fs::read_to_string(path).map_err(|source| CalibrationError::Io { path: path.display().to_string(), source })?;
    parse_rows(&text)
}

/// Which rows calibrate a replica kind: backend, model, system, precision and TP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// Serving engine.
    pub backend: &'static str,
    /// Model path.
    pub model: &'static str,
    /// GPU system.
    pub system: &'static str,
    /// Weight precision.
    pub precision: &'static str,
    /// Tensor parallelism.
    pub tp: u32,
}

impl Selection {
    /// The rows each replica kind is calibrated on.
    pub fn of(kind: ReplicaKind) -> Selection {
        match kind {
            ReplicaKind::Llama70bFp8H100Tp2 => {
                Selection { backend: "vllm", model: "meta-llama/Llama-3.1-70B", system: "h100_sxm", precision: "fp8", tp: 2 }
            }
            ReplicaKind::Llama8bFp8H200 => {
                Selection { backend: "vllm", model: "nvidia/Llama-3.1-8B-Instruct-FP8", system: "h200_sxm", precision: "fp8", tp: 1 }
            }
            ReplicaKind::Llama70bFp8H200 => {
                Selection { backend: "vllm", model: "meta-llama/Llama-3.1-70B", system: "h200_sxm", precision: "fp8", tp: 1 }
            }
        }
    }

    fn matches(&self, r: &Row) -> bool {
        r.backend == self.backend && r.model == self.model && r.system == self.system && r.precision == self.precision && r.tp == self.tp
    }
}

/// What a row is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// In the fit.
    Fit,
    /// Left out of the fit, checked against it.
    Validation,
    /// The KV cache runs out (the row's context exceeds the cache): shown, not fitted, not
    /// counted in the validation bound; what it checks is that the model also runs out.
    KvExhausted,
}

/// The rows of a replica kind in a fixed order (input, output, concurrency), each with its
/// role. The rule: rows whose mean context (`B x (isl + osl/2)`) exceeds the modelled KV cache
/// are `KvExhausted`; of the others, every third (the 3rd, 6th, ...) is a validation row.
pub fn split(rows: &[Row], kind: ReplicaKind) -> Vec<(Row, Role)> {
    let sel = Selection::of(kind);
    let cap = kind.profile().kv_capacity_tokens as f64;
    let mut mine: Vec<Row> = rows.iter().filter(|r| sel.matches(r)).cloned().collect();
    mine.sort_by_key(|r| (r.isl, r.osl, r.concurrency));
    let mut i = 0usize;
    mine.into_iter()
        .map(|r| {
            let ctx = f64::from(r.concurrency) * (f64::from(r.isl) + f64::from(r.osl) / 2.0);
            if ctx > cap {
                return (r, Role::KvExhausted);
            }
            i += 1;
            let role = if i.is_multiple_of(3) { Role::Validation } else { Role::Fit };
            (r, role)
        })
        .collect()
}

/// Measured requests per client in the simulated benchmark (`--request-count 10 x B`).
pub const ROUNDS: u32 = 10;

/// The benchmark client's response handling before it sends the next request, at most.
pub const CLIENT_JITTER_S: f64 = 1e-3;

/// Output lengths vary by up to this share around the row's `osl` (uniform, seeded).
pub const OSL_SPREAD: f64 = 0.1;

/// The row's benchmark on the model: `B` clients each sending the next request when the last
/// one ends (after up to [`CLIENT_JITTER_S`]), `ROUNDS x B` measured requests from an idle
/// replica (after `2B` unmeasured ones for [`Protocol::Warm`]); output lengths spread by
/// [`OSL_SPREAD`] around `osl`, without which clients finishing in the same iteration would
/// stay in lock-step forever, which the rows' TTFT at low concurrency (one lone prompt's
/// prefill) rules out. Mean TTFT and TPOT, seconds.
pub fn closed_loop(p: &ModelProfile, isl: u32, osl: u32, concurrency: u32, protocol: Protocol) -> (f64, f64) {
    let warm = match protocol {
        Protocol::FirstWave => 0,
        Protocol::Warm => 2 * concurrency as usize,
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(u64::from(isl) << 32 | u64::from(osl) << 12 | u64::from(concurrency));
    let lengths: Vec<(u32, u32)> = (0..ROUNDS * concurrency + warm as u32)
        .map(|_| (isl, (f64::from(osl) * (1.0 + OSL_SPREAD * (2.0 * rng.random::<f64>() - 1.0))).round().max(2.0) as u32))
        .collect();
    let t = benchmark::run(
        p,
        &BenchRun { lengths: &lengths, rate: RequestRate::Inf, max_concurrency: Some(concurrency), client_jitter_s: CLIENT_JITTER_S },
    );
    let measured = &t.done[warm.min(t.done.len())..];
    let ttft: Vec<f64> = measured.iter().filter_map(|d| d.ttft_s).collect();
    let tpot: Vec<f64> = measured.iter().filter_map(|d| d.tpot_s).collect();
    (mean(&ttft), mean(&tpot))
}

/// How a source's rows were measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The measured requests start from an idle replica with `B` sent at once.
    FirstWave,
    /// The first `2B` completions are a warm-up in the same loop and not measured.
    Warm,
}

impl Protocol {
    /// How the rows of a replica kind were measured: the 70B rows' TTFT grows with `B x isl`
    /// as a first wave of `B` prompts predicts; the 8B rows (vLLM 0.12) show 115 ms at 128 x
    /// 4,000-token prompts, impossible with a first wave in the measurement, so warm. The 70B
    /// rows on one H200 are first-wave as on the H100s: at `B = 4` TTFT is one lone prompt's
    /// prefill (203 ms for 1k tokens, 1,345 ms for 8k), and the excess over it grows with
    /// `B x isl` at 4.5-8 us per token on the 10 rows with 8-64 clients whose cache does not
    /// run out in the measurement (a first wave of prompts at ~135 us per prompt token, queued
    /// and averaged over `10 x B` requests, adds about `B x isl x 135 / 20` us).
    pub fn of(kind: ReplicaKind) -> Protocol {
        match kind {
            ReplicaKind::Llama70bFp8H100Tp2 => Protocol::FirstWave,
            ReplicaKind::Llama8bFp8H200 => Protocol::Warm,
            ReplicaKind::Llama70bFp8H200 => Protocol::FirstWave,
        }
    }
}

/// A row measured and modelled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    /// The row.
    pub row: Row,
    /// Its role.
    pub role: Role,
    /// Modelled mean TTFT, milliseconds.
    pub ttft_ms: f64,
    /// Modelled mean TPOT, milliseconds.
    pub tpot_ms: f64,
}

impl Checked {
    /// Relative TTFT error, model over measured minus one.
    pub fn ttft_err(&self) -> f64 {
        self.ttft_ms / self.row.ttft_ms - 1.0
    }

    /// Relative TPOT error.
    pub fn tpot_err(&self) -> f64 {
        self.tpot_ms / self.row.tpot_ms - 1.0
    }
}

/// Simulates every row with profile `p`.
pub fn check(p: &ModelProfile, rows: &[(Row, Role)], protocol: Protocol) -> Vec<Checked> {
    rows.iter()
        .map(|(row, role)| {
            let (ttft, tpot) = closed_loop(p, row.isl, row.osl, row.concurrency, protocol);
            Checked { row: row.clone(), role: *role, ttft_ms: ttft * 1e3, tpot_ms: tpot * 1e3 }
        })
        .collect()
}

/// The per-row table, Markdown.
pub fn table(checked: &[Checked]) -> String {
    let mut s = String::from(
        "| isl | osl | B | role | TTFT measured | TTFT model | error | TPOT measured | TPOT model | error |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in checked {
        let role = match c.role {
            Role::Fit => "fit",
            Role::Validation => "**validation**",
            Role::KvExhausted => "KV exhausted",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} ms | {:.1} ms | {:+.1} % | {:.2} ms | {:.2} ms | {:+.1} % |",
            c.row.isl,
            c.row.osl,
            c.row.concurrency,
            role,
            c.row.ttft_ms,
            c.ttft_ms,
            c.ttft_err() * 100.0,
            c.row.tpot_ms,
            c.tpot_ms,
            c.tpot_err() * 100.0
        );
    }
    s
}

/// The coefficients the fit moves, in a fixed order.
const FITTED: usize = 6;

fn get(p: &ModelProfile) -> [f64; FITTED] {
    [p.iter_base_s, p.iter_per_seq_s, p.iter_per_kv_token_s, p.iter_per_prefill_token_s, p.iter_prefill_base_s, p.frontend_s]
}

fn set(p: &ModelProfile, x: &[f64; FITTED]) -> ModelProfile {
    ModelProfile {
        iter_base_s: x[0],
        iter_per_seq_s: x[1],
        iter_per_kv_token_s: x[2],
        iter_per_prefill_token_s: x[3],
        iter_prefill_base_s: x[4],
        frontend_s: x[5],
        ..p.clone()
    }
}

/// Sum of squared log errors of TTFT and TPOT over the fit rows.
fn loss(p: &ModelProfile, rows: &[(Row, Role)], protocol: Protocol) -> f64 {
    rows.iter()
        .filter(|(_, r)| *r == Role::Fit)
        .map(|(row, _)| {
            let (ttft, tpot) = closed_loop(p, row.isl, row.osl, row.concurrency, protocol);
            let a = (ttft * 1e3 / row.ttft_ms).ln();
            let b = (tpot * 1e3 / row.tpot_ms).ln();
            if a.is_finite() && b.is_finite() { a * a + b * b } else { 1e6 }
        })
        .sum()
}

/// Fits the six coefficients of `start` on the fit rows (Nelder-Mead on their logarithms,
/// `iterations` steps); returns the fitted profile and its loss.
pub fn fit(start: &ModelProfile, rows: &[(Row, Role)], iterations: usize, protocol: Protocol) -> (ModelProfile, f64) {
    // Zero coefficients start from a small positive value so that the log search can move them.
    let floor = [1e-4, 1e-7, 1e-10, 1e-6, 1e-4, 1e-3];
    let x0: Vec<f64> = get(start).iter().zip(floor).map(|(v, f)| v.max(f).ln()).collect();
    let f = |x: &[f64]| -> f64 {
        let mut c = [0.0; FITTED];
        for (ci, xi) in c.iter_mut().zip(x) {
            *ci = xi.exp();
        }
        loss(&set(start, &c), rows, protocol)
    };
    let (x, fx) = nelder_mead(&f, &x0, 0.3, iterations);
    let mut c = [0.0; FITTED];
    for (ci, xi) in c.iter_mut().zip(&x) {
        *ci = xi.exp();
    }
    (set(start, &c), fx)
}

/// Nelder-Mead minimisation from `x0` with initial steps `step`.
fn nelder_mead(f: &impl Fn(&[f64]) -> f64, x0: &[f64], step: f64, iterations: usize) -> (Vec<f64>, f64) {
    let n = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((x0.to_vec(), f(x0)));
    for i in 0..n {
        let mut x = x0.to_vec();
        x[i] += step;
        let fx = f(&x);
        simplex.push((x, fx));
    }
    for _ in 0..iterations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let centroid: Vec<f64> = (0..n).map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64).collect();
        let worst = simplex[n].clone();
        let along = |t: f64| -> Vec<f64> { centroid.iter().zip(&worst.0).map(|(c, w)| c + t * (c - w)).collect() };
        let xr = along(1.0);
        let fr = f(&xr);
        if fr < simplex[0].1 {
            let xe = along(2.0);
            let fe = f(&xe);
            simplex[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (xr, fr);
        } else {
            let xc = along(if fr < worst.1 { 0.5 } else { -0.5 });
            let fc = f(&xc);
            if fc < worst.1.min(fr) {
                simplex[n] = (xc, fc);
            } else {
                let best = simplex[0].0.clone();
                for item in simplex.iter_mut().skip(1) {
                    let x: Vec<f64> = best.iter().zip(&item.0).map(|(b, x)| b + 0.5 * (x - b)).collect();
                    let fx = f(&x);
                    *item = (x, fx);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0)
}

/// The fitted coefficients as Rust, for pasting into [`crate::sim::profile`].
pub fn coefficients(p: &ModelProfile) -> String {
    format!(
        "iter_base_s: {:.6e},\niter_per_seq_s: {:.6e},\niter_per_kv_token_s: {:.6e},\niter_per_prefill_token_s: {:.6e},\niter_prefill_base_s: {:.6e},\nfrontend_s: {:.6e},\n",
        p.iter_base_s, p.iter_per_seq_s, p.iter_per_kv_token_s, p.iter_per_prefill_token_s, p.iter_prefill_base_s, p.frontend_s
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> Vec<Row> {
        read_rows(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/calibration/llm_serving_latency_profiles.csv")).expect("bundled rows")
    }

    fn checked(kind: ReplicaKind) -> Vec<Checked> {
        check(&kind.profile(), &split(&bundled(), kind), Protocol::of(kind))
    }

    fn find(c: &[Checked], isl: u32, osl: u32, b: u32) -> &Checked {
        c.iter().find(|c| (c.row.isl, c.row.osl, c.row.concurrency) == (isl, osl, b)).expect("row")
    }

    #[test]
    fn the_split_holds_out_every_third_row_and_sets_kv_exhausted_rows_apart() {
        let s = split(&bundled(), ReplicaKind::Llama70bFp8H100Tp2);
        let count = |r: Role| s.iter().filter(|(_, x)| *x == r).count();
        assert_eq!((count(Role::Fit), count(Role::Validation), count(Role::KvExhausted)), (8, 4, 3));
        let held: Vec<(u32, u32, u32)> =
            s.iter().filter(|(_, r)| *r == Role::Validation).map(|(r, _)| (r.isl, r.osl, r.concurrency)).collect();
        assert_eq!(held, [(1024, 1024, 16), (1024, 8192, 4), (1024, 8192, 32), (8192, 1024, 16)]);
    }

    #[test]
    fn the_70b_model_reproduces_its_fit_rows_in_a_simulated_closed_loop() {
        for c in checked(ReplicaKind::Llama70bFp8H100Tp2).iter().filter(|c| c.role == Role::Fit) {
            assert!(c.ttft_err().abs() < 0.15, "{:?}: TTFT {:.0} vs {:.0} ms", c.row, c.ttft_ms, c.row.ttft_ms);
            assert!(c.tpot_err().abs() < 0.05, "{:?}: TPOT {:.2} vs {:.2} ms", c.row, c.tpot_ms, c.row.tpot_ms);
        }
    }

    #[test]
    fn the_70b_validation_rows_meet_the_bounds_reached_and_miss_where_stated() {
        let c = checked(ReplicaKind::Llama70bFp8H100Tp2);
        // Every validation TPOT within 3 %.
        for v in c.iter().filter(|c| c.role == Role::Validation) {
            assert!(v.tpot_err().abs() < 0.03, "{:?}: TPOT {:.2} vs {:.2} ms", v.row, v.tpot_ms, v.row.tpot_ms);
        }
        // Two of four validation TTFTs within 5 %.
        for (isl, osl, b) in [(1024, 8192, 4), (8192, 1024, 16)] {
            let v = find(&c, isl, osl, b);
            assert!(v.ttft_err().abs() < 0.05, "{isl}/{osl} x{b}: TTFT {:.0} vs {:.0} ms", v.ttft_ms, v.row.ttft_ms);
        }
        // 1k/1k x16 is measured above the trend of its neighbours (150 ms at 8, 273 at 32):
        // the model follows the trend and is 20-30 % low.
        let v = find(&c, 1024, 1024, 16);
        assert!((-0.30..-0.20).contains(&v.ttft_err()), "1k/1k x16: {:+.2}", v.ttft_err());
        // 1k/8k x32: the first wave of 32 sequences grows in step to ~290k tokens, beyond the
        // ~212k the memory leaves for the cache, so the model preempts and queues (seconds)
        // where the measurement did not (289 ms).
        let v = find(&c, 1024, 8192, 32);
        assert!(v.ttft_ms > 1000.0, "1k/8k x32: {:.0} ms", v.ttft_ms);
    }

    #[test]
    fn the_kv_exhausted_rows_exhaust_the_model_too() {
        for c in checked(ReplicaKind::Llama70bFp8H100Tp2).iter().filter(|c| c.role == Role::KvExhausted) {
            assert!(c.ttft_ms > 5000.0 && c.row.ttft_ms > 5000.0, "{:?}: {:.0} ms", c.row, c.ttft_ms);
        }
    }

    #[test]
    fn the_split_of_the_h200_70b_rows_holds_out_three_and_sets_the_8k_x32_and_x64_rows_apart() {
        let s = split(&bundled(), ReplicaKind::Llama70bFp8H200);
        let with = |role: Role| -> Vec<(u32, u32, u32)> {
            s.iter().filter(|(_, r)| *r == role).map(|(r, _)| (r.isl, r.osl, r.concurrency)).collect()
        };
        assert_eq!(with(Role::Fit).len(), 8);
        assert_eq!(with(Role::Validation), [(1024, 1024, 16), (1024, 8192, 4), (8192, 1024, 4)]);
        // The cache from memory (159,600 tokens) is below the mean context of these four.
        assert_eq!(with(Role::KvExhausted), [(1024, 8192, 32), (1024, 8192, 64), (8192, 1024, 32), (8192, 1024, 64)]);
    }

    #[test]
    fn the_70b_h200_model_reproduces_its_fit_rows_in_a_simulated_closed_loop() {
        // Reached: TTFT within 5.3 %, TPOT within 8.7 % (1k/1k x32 -8.7 %, x64 +7.2 %: the
        // measured TPOT rises 8.5 ms from 16 to 32 clients and 4.2 ms from 32 to 64, which a
        // model linear in B and KV does not follow).
        for c in checked(ReplicaKind::Llama70bFp8H200).iter().filter(|c| c.role == Role::Fit) {
            assert!(c.ttft_err().abs() < 0.07, "{:?}: TTFT {:.0} vs {:.0} ms", c.row, c.ttft_ms, c.row.ttft_ms);
            assert!(c.tpot_err().abs() < 0.10, "{:?}: TPOT {:.2} vs {:.2} ms", c.row, c.tpot_ms, c.row.tpot_ms);
        }
    }

    #[test]
    fn the_70b_h200_validation_rows_are_within_15_percent() {
        let c = checked(ReplicaKind::Llama70bFp8H200);
        // Every validation TPOT within 4 % (reached: 3.0 %).
        for v in c.iter().filter(|c| c.role == Role::Validation) {
            assert!(v.tpot_err().abs() < 0.04, "{:?}: TPOT {:.2} vs {:.2} ms", v.row, v.tpot_ms, v.row.tpot_ms);
        }
        // Two of three validation TTFTs within 5 % (reached: +0.3 %, -3.3 %).
        for (isl, osl, b) in [(1024, 1024, 16), (1024, 8192, 4)] {
            let v = find(&c, isl, osl, b);
            assert!(v.ttft_err().abs() < 0.05, "{isl}/{osl} x{b}: TTFT {:.0} vs {:.0} ms", v.ttft_ms, v.row.ttft_ms);
        }
        // 8k/1k x4, one lone 8k prompt's prefill: +11 % (the fit's 8k/1k x4 on the H100s is
        // +14 % too), within the 15 % goal.
        let v = find(&c, 8192, 1024, 4);
        assert!((0.08..0.13).contains(&v.ttft_err()), "8k/1k x4: {:+.3}", v.ttft_err());
    }

    #[test]
    fn the_70b_h200_kv_exhausted_rows_exhaust_the_model_and_the_x64_rows_the_measurement() {
        let c = checked(ReplicaKind::Llama70bFp8H200);
        // x64: both exhausted (measured 5.3 s and 39.8 s; modelled 130-140 s).
        for (isl, osl) in [(1024, 8192), (8192, 1024)] {
            let v = find(&c, isl, osl, 64);
            assert!(v.role == Role::KvExhausted && v.ttft_ms > 5000.0 && v.row.ttft_ms > 5000.0, "{isl}/{osl} x64: {:.0} ms", v.ttft_ms);
        }
        // x32: the model exhausts its 159,600 tokens (14 s and 44 s) where the measurement
        // follows the first-wave trend (474 ms and 3.1 s): the measured replica's cache held at
        // least the 262k prompt tokens of 32 x 8k, more than BF16 on 141 GB can (see
        // `docs/replica-model.md`).
        for (isl, osl, measured) in [(1024, 8192, 474.2), (8192, 1024, 3132.1)] {
            let v = find(&c, isl, osl, 32);
            assert!((v.row.ttft_ms - measured).abs() < 0.1);
            assert!(v.role == Role::KvExhausted && v.ttft_ms > 10_000.0, "{isl}/{osl} x32: {:.0} ms", v.ttft_ms);
        }
    }

    #[test]
    fn the_8b_model_is_reported_with_the_errors_it_has() {
        let c = checked(ReplicaKind::Llama8bFp8H200);
        assert_eq!(c.len(), 10);
        let worst = c.iter().map(|c| c.ttft_err().abs().max(c.tpot_err().abs())).fold(0.0, f64::max);
        // The bound reached, not the 15 % goal: see `ModelProfile::llama8b_fp8_h200`.
        assert!(worst < 1.0, "worst error {worst:.2}");
        assert!(worst > 0.15, "the rows now fit ({worst:.2}): update the docs that say they do not");
    }

    #[test]
    fn the_table_shows_every_row_with_its_role_and_errors() {
        let t = table(&checked(ReplicaKind::Llama70bFp8H100Tp2));
        assert_eq!(t.lines().count(), 2 + 15);
        assert_eq!(t.matches("**validation**").count(), 4);
        assert!(t.contains("| 8192 | 1024 | 64 | KV exhausted |"));
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        assert!(parse_rows("backend,isl\nvllm,1\n").is_err());
        let head = "backend,model_path,system,precision,isl,osl,batch_size,tp_size,silicon_ttft_ms,silicon_tpot_ms\n";
        assert!(parse_rows(&format!("{head}vllm,m,s,fp8,x,1,1,1,1,1\n")).is_err());
        assert_eq!(parse_rows(&format!("{head}vllm,m,s,fp8,1024,128,8,1,190.9,7.9\n")).expect("row")[0].concurrency, 8);
    }
}
