//! `simulate --replica-report`: the replica model's evidence in one text. The calibration rows
//! measured vs modelled (fit and validation), one replica's SLO attainment against Poisson load
//! on the ServeGen lengths, and a simulated `vllm bench serve` at saturation and at goodput on
//! the ServeGen and Azure conversation lengths.

use std::{fmt::Write as _, path::Path, sync::Arc};

use crate::sim::{
    benchmark::{self, BENCH_PROMPTS, BenchReport},
    calibration::{self, CalibrationError, Protocol},
    config::Slo,
    profile::{ModelProfile, ReplicaKind},
    workload::{LengthDist, Process, RateCurve, Source, Workload, WorkloadError, read_trace},
};

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The calibration rows.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    /// The trace or the length model.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
}

/// `n` request lengths of ServeGen's language m-large model (the simulator's default mix).
pub fn servegen_lengths(n: usize) -> Result<Vec<(u32, u32)>, WorkloadError> {
    let curve = RateCurve::synthetic("ramp:10:10", 36_000.0, 60.0)?;
    let source = Source::Rate { curve, process: Process::Poisson, input: LengthDist::SERVEGEN_INPUT, output: LengthDist::SERVEGEN_OUTPUT };
    Ok(Workload::new("servegen lengths", source, 1).arrivals().take(n).map(|r| (r.input, r.output)).collect())
}

/// The request lengths of a trace, in its order, cycled to `n`.
pub fn trace_lengths(path: &Path, n: usize) -> Result<Vec<(u32, u32)>, WorkloadError> {
    let t = Arc::new(read_trace(path)?);
    Ok(t.iter().cycle().take(n.min(t.len().max(1) * 1000)).map(|r| (r.input, r.output.max(1))).collect())
}

fn bench_line(s: &mut String, what: &str, rate: &str, r: &BenchReport) {
    let _ = writeln!(
        s,
        "| {what} | {rate} | {:.2} | {:.0} | {:.0} | {:.0} / {:.0} ms | {:.1} / {:.1} ms | {:.2} % |",
        r.request_throughput,
        r.output_tokens_per_s,
        r.total_tokens_per_s,
        r.ttft_p50_s * 1e3,
        r.ttft_p99_s * 1e3,
        r.tpot_p50_s * 1e3,
        r.tpot_p99_s * 1e3,
        r.slo_attainment * 100.0
    );
}

/// The throughput benchmark of one replica on one length mix: saturation, then goodput.
pub fn throughput_table(p: &ModelProfile, mixes: &[(&str, &[(u32, u32)])], slo: Slo) -> String {
    let mut s = String::from(
        "| lengths | request rate | req/s | output tok/s | total tok/s | TTFT p50 / p99 | TPOT p50 / p99 | within SLO |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, lengths) in mixes {
        let sat = benchmark::saturation(p, lengths, slo);
        bench_line(&mut s, name, &format!("inf, max-concurrency {}", p.max_num_seqs), &sat);
        let (rate, good) = benchmark::goodput(p, lengths, slo, 0.99);
        bench_line(&mut s, name, &format!("{rate:.2} (goodput, 99 %)"), &good);
    }
    s
}

/// SLO attainment of one replica against Poisson arrivals at multiples of its goodput rate.
pub fn slo_vs_load(p: &ModelProfile, lengths: &[(u32, u32)], slo: Slo) -> String {
    let (good, _) = benchmark::goodput(p, lengths, slo, 0.99);
    let mut s = String::from("| req/s | x goodput | within SLO | TTFT p50 / p99 | TPOT p99 |\n|---|---|---|---|---|\n");
    for m in [0.5, 0.75, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5] {
        let r = benchmark::at_rate(p, lengths, good * m, slo);
        let _ = writeln!(
            s,
            "| {:.2} | {m:.2} | {:.2} % | {:.0} / {:.0} ms | {:.1} ms |",
            good * m,
            r.slo_attainment * 100.0,
            r.ttft_p50_s * 1e3,
            r.ttft_p99_s * 1e3,
            r.tpot_p99_s * 1e3
        );
    }
    s
}

/// The whole report for one replica kind; `fit` first refits the coefficients (printed) and
/// reports with them.
pub fn render(kind: ReplicaKind, calibration_csv: &Path, azure_conv: &Path, slo: Slo, fit: bool) -> Result<String, ReportError> {
    let rows = calibration::split(&calibration::read_rows(calibration_csv)?, kind);
    let protocol = Protocol::of(kind);
    let mut p = kind.profile();
    let mut s = String::new();
    let _ = writeln!(s, "## {kind}: {} on {} x {}\n", p.model, p.tp, p.gpu);
    if fit {
        let (q, loss) = calibration::fit(&p, &rows, 400, protocol);
        let _ = writeln!(s, "refitted (400 Nelder-Mead steps, loss {loss:.4}):\n```\n{}```\n", calibration::coefficients(&q));
        p = q;
    }
    let _ = writeln!(
        s,
        "KV cache {} tokens; max_num_seqs {}, max_num_batched_tokens {}.\n\n### Calibration rows, measured vs modelled ({protocol:?} closed loop)\n",
        p.kv_capacity_tokens, p.max_num_seqs, p.max_batched_tokens
    );
    s.push_str(&calibration::table(&calibration::check(&p, &rows, protocol)));
    let servegen = servegen_lengths(BENCH_PROMPTS)?;
    let conv = trace_lengths(azure_conv, BENCH_PROMPTS)?;
    let _ = writeln!(s, "\n### SLO attainment vs Poisson load (ServeGen lengths, {BENCH_PROMPTS} requests)\n");
    s.push_str(&slo_vs_load(&p, &servegen, slo));
    let _ = writeln!(s, "\n### `vllm bench serve`, simulated ({BENCH_PROMPTS} requests)\n");
    s.push_str(&throughput_table(&p, &[("ServeGen", &servegen), ("Azure conv", &conv)], slo));
    let _ = writeln!(
        s,
        "\nsaturation total tokens/s (targetTokensPerSecond): {:.0} on ServeGen lengths, {:.0} on Azure conv lengths",
        benchmark::saturation_total_tokens_per_s(&p, &servegen),
        benchmark::saturation_total_tokens_per_s(&p, &conv)
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servegen_lengths_have_the_published_medians() {
        let l = servegen_lengths(20_000).expect("lengths");
        let mut i: Vec<u32> = l.iter().map(|x| x.0).collect();
        let mut o: Vec<u32> = l.iter().map(|x| x.1).collect();
        i.sort_unstable();
        o.sort_unstable();
        assert!((i[10_000] as f64 / 601.0 - 1.0).abs() < 0.05, "input p50 {}", i[10_000]);
        assert!((o[10_000] as f64 / 53.0 - 1.0).abs() < 0.08, "output p50 {}", o[10_000]);
    }

    #[test]
    fn one_replica_loses_the_slo_as_load_passes_its_goodput() {
        let p = ModelProfile::llama70b_fp8_h100_tp2();
        let lengths = servegen_lengths(3000).expect("lengths");
        let slo = Slo::default();
        let (good, _) = benchmark::goodput(&p, &lengths, slo, 0.99);
        let at = |m: f64| benchmark::at_rate(&p, &lengths, good * m, slo).slo_attainment;
        assert!(at(0.5) >= 0.99);
        assert!(at(1.5) < at(1.0) && at(2.0) < 0.9, "1.5x: {:.3}, 2x: {:.3}", at(1.5), at(2.0));
    }
}
