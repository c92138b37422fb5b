//! Where requests come from: per-request traces, rate curves and synthetic patterns.
//!
//! Every source becomes the same thing, a deterministic stream of [`Request`]s in arrival order,
//! so all policies of a run replay exactly the same arrivals (each policy thread re-creates the
//! stream from the same seed instead of holding tens of millions of requests in memory).
//!
//! * Traces: the Azure 2023 CSV (`TIMESTAMP, ContextTokens, GeneratedTokens`) and a generic
//!   CSV or JSONL with an arrival time in seconds and input/output token counts.
//! * Rate curves: ServeGen's aggregate format (`window_start_s, window_len_s, total_rate_rps,
//!   active_clients`), turned into arrivals by a seeded Poisson or gamma renewal process, token
//!   lengths drawn from log-normal distributions fitted to a median and a p99.
//! * Synthetic patterns: step, ramp, diurnal sine, spike (as rate curves).
//!
//! Transformations: a window of the source (`from..to`, for hold-out splits), time scaling
//! (stretch or compress the timeline keeping the request count) and rate scaling (thin or
//! replicate arrivals keeping the timeline).

use std::{collections::VecDeque, fmt, path::Path, sync::Arc};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use rand_distr::{Distribution, Gamma, LogNormal};

/// One request as the gateway sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// Arrival time, seconds since the start of the run.
    pub arrival_s: f64,
    /// Prompt tokens.
    pub input: u32,
    /// Output tokens to generate (at least 1).
    pub output: u32,
}

/// Why a workload could not be read or built.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A record could not be understood.
    #[error("{path}: line {line}: {problem}")]
    Parse {
        /// File.
        path: String,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// A pattern or option is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// A token-length distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LengthDist {
    /// Always the same.
    Fixed(u32),
    /// Log-normal through a median and a 99th percentile, rounded and clipped to `[1, max]`.
    LogNormal {
        /// Median.
        p50: f64,
        /// 99th percentile.
        p99: f64,
        /// Upper clip (the model's context limit).
        max: u32,
    },
}

impl LengthDist {
    /// ServeGen's language m-large input lengths (p50 601, p99 5,452).
    pub const SERVEGEN_INPUT: LengthDist = LengthDist::LogNormal { p50: 601.0, p99: 5452.0, max: 32_768 };
    /// ServeGen's language m-large output lengths (p50 53, p99 872).
    pub const SERVEGEN_OUTPUT: LengthDist = LengthDist::LogNormal { p50: 53.0, p99: 872.0, max: 8192 };

    fn sampler(self) -> LengthSampler {
        match self {
            LengthDist::Fixed(n) => LengthSampler::Fixed(n.max(1)),
            LengthDist::LogNormal { p50, p99, max } => {
                // z of the 99th percentile of the standard normal.
                let sigma = ((p99 / p50).ln() / 2.326_347_874).max(1e-6);
                let ln = LogNormal::new(p50.ln(), sigma).unwrap_or_else(|_| LogNormal::new(0.0, 1.0).expect("valid"));
                LengthSampler::LogNormal(ln, max.max(1))
            }
        }
    }

    /// `n` draws from one seeded generator (the batch simulator's item sizes).
    pub fn sample_n(self, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<u32> {
        let s = self.sampler();
        (0..n).map(|_| s.sample(rng)).collect()
    }

    /// Parses `fixed:N` or `lognormal:P50:P99[:MAX]`.
    pub fn parse(s: &str) -> Result<Self, WorkloadError> {
        let bad = || WorkloadError::Invalid(format!("length distribution \"{s}\": expected fixed:N or lognormal:P50:P99[:MAX]"));
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["fixed", n] => Ok(LengthDist::Fixed(n.parse().map_err(|_| bad())?)),
            ["lognormal", a, b, rest @ ..] if rest.len() <= 1 => {
                let p50: f64 = a.parse().map_err(|_| bad())?;
                let p99: f64 = b.parse().map_err(|_| bad())?;
                let max = match rest.first() {
                    Some(m) => m.parse().map_err(|_| bad())?,
                    None => 32_768,
                };
                if !(p50 >= 1.0 && p99 >= p50) {
                    return Err(bad());
                }
                Ok(LengthDist::LogNormal { p50, p99, max })
            }
            _ => Err(bad()),
        }
    }
}

#[derive(Debug, Clone)]
enum LengthSampler {
    Fixed(u32),
    LogNormal(LogNormal<f64>, u32),
}

impl LengthSampler {
    fn sample(&self, rng: &mut Xoshiro256PlusPlus) -> u32 {
        match self {
            LengthSampler::Fixed(n) => *n,
            LengthSampler::LogNormal(d, max) => (d.sample(rng).round() as u64).clamp(1, u64::from(*max)) as u32,
        }
    }
}

/// A piecewise-constant arrival rate: `(start_s, len_s, rate_rps)` windows in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RateCurve {
    /// The windows.
    pub windows: Vec<(f64, f64, f64)>,
}

impl RateCurve {
    /// Total duration (end of the last window).
    pub fn end_s(&self) -> f64 {
        self.windows.last().map_or(0.0, |w| w.0 + w.1)
    }

    /// Highest window rate.
    pub fn peak_rps(&self) -> f64 {
        self.windows.iter().map(|w| w.2).fold(0.0, f64::max)
    }

    /// Mean rate over the whole curve.
    pub fn mean_rps(&self) -> f64 {
        let total: f64 = self.windows.iter().map(|w| w.1 * w.2).sum();
        let dur: f64 = self.windows.iter().map(|w| w.1).sum();
        if dur > 0.0 { total / dur } else { 0.0 }
    }

    /// Reads ServeGen's aggregate format.
    pub fn read_servegen(path: &Path) -> Result<Self, WorkloadError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| WorkloadError::Io { path: p.clone(), source })?;
        Self::parse_servegen(&bytes, &p)
    }

    /// Parses ServeGen's aggregate format from memory (`name` for errors): the demo's bundled
    /// curve.
    pub fn parse_servegen(bytes: &[u8], name: &str) -> Result<Self, WorkloadError> {
        let p = name.to_string();
        let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(bytes);
        let headers = rdr.headers().map_err(|e| csv_err(&p, e))?.clone();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let (Some(s), Some(l), Some(r)) = (col("window_start_s"), col("window_len_s"), col("total_rate_rps")) else {
            return Err(WorkloadError::Parse {
                path: p,
                line: 1,
                problem: "expected columns window_start_s, window_len_s, total_rate_rps".into(),
            });
        };
        let mut windows = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| csv_err(&p, e))?;
            let num = |c: usize| -> Result<f64, WorkloadError> {
                rec.get(c).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| WorkloadError::Parse {
                    path: p.clone(),
                    line: i as u64 + 2,
                    problem: format!("column {} is not a non-negative number", headers.get(c).unwrap_or("?")),
                })
            };
            windows.push((num(s)?, num(l)?, num(r)?));
        }
        windows.sort_by(|a, b| a.0.total_cmp(&b.0));
        if windows.is_empty() {
            return Err(WorkloadError::Invalid(format!("{p}: no windows")));
        }
        Ok(RateCurve { windows })
    }

    /// A synthetic pattern sampled in `step_s` windows over `duration_s`:
    /// `step:LOW:HIGH:AT`, `ramp:FROM:TO`, `sine:MEAN:AMPLITUDE:PERIOD`, `spike:BASE:PEAK:AT:WIDTH`,
    /// `workday:LOW:HIGH:START_H:END_H:RAMP` (every day: LOW, a linear ramp of RAMP seconds to
    /// HIGH at hour START_H, back down at END_H; the recurring steep ramp a forecast can see
    /// coming) (rates in req/s, times in seconds).
    pub fn synthetic(pattern: &str, duration_s: f64, step_s: f64) -> Result<Self, WorkloadError> {
        let bad = || {
            WorkloadError::Invalid(format!(
                "pattern \"{pattern}\": expected step:LOW:HIGH:AT, ramp:FROM:TO, sine:MEAN:AMPLITUDE:PERIOD, spike:BASE:PEAK:AT:WIDTH \
                 or workday:LOW:HIGH:START_H:END_H:RAMP"
            ))
        };
        let mut it = pattern.split(':');
        let kind = it.next().ok_or_else(bad)?;
        let nums: Vec<f64> = it.map(|v| v.parse::<f64>().map_err(|_| bad())).collect::<Result<_, _>>()?;
        let rate: Box<dyn Fn(f64) -> f64> = match (kind, nums.as_slice()) {
            ("step", &[lo, hi, at]) => Box::new(move |t| if t < at { lo } else { hi }),
            ("ramp", &[from, to]) => Box::new(move |t| from + (to - from) * (t / duration_s).clamp(0.0, 1.0)),
            ("sine", &[mean, amp, period]) if period > 0.0 => {
                Box::new(move |t| (mean + amp * (2.0 * std::f64::consts::PI * t / period).sin()).max(0.0))
            }
            ("spike", &[base, peak, at, width]) => Box::new(move |t| if t >= at && t < at + width { peak } else { base }),
            ("workday", &[lo, hi, start_h, end_h, ramp])
                if (0.0..24.0).contains(&start_h) && start_h < end_h && end_h <= 24.0 && ramp > 0.0 =>
            {
                Box::new(move |t| {
                    let s = t.rem_euclid(86_400.0);
                    let (up, down) = (start_h * 3600.0, end_h * 3600.0);
                    let share = if s < up || s >= down + ramp {
                        0.0
                    } else if s < up + ramp {
                        (s - up) / ramp
                    } else if s < down {
                        1.0
                    } else {
                        1.0 - (s - down) / ramp
                    };
                    lo + (hi - lo) * share
                })
            }
            _ => return Err(bad()),
        };
        if !(duration_s > 0.0 && step_s > 0.0) {
            return Err(WorkloadError::Invalid("synthetic patterns need a positive duration".into()));
        }
        let n = (duration_s / step_s).ceil() as usize;
        let windows = (0..n)
            .map(|i| i as f64 * step_s)
            .map(|s| (s, step_s.min(duration_s - s), rate(s + step_s.min(duration_s - s) / 2.0).max(0.0)))
            .collect();
        Ok(RateCurve { windows })
    }

    /// The part of the curve in `[from, to)`, re-based to start at 0.
    fn window(&self, from: f64, to: f64) -> RateCurve {
        let windows = self
            .windows
            .iter()
            .filter_map(|&(s, l, r)| {
                let a = s.max(from);
                let b = (s + l).min(to);
                (b > a).then_some((a - from, b - a, r))
            })
            .collect();
        RateCurve { windows }
    }
}

fn csv_err(path: &str, e: csv::Error) -> WorkloadError {
    let line = e.position().map_or(0, |p| p.line());
    WorkloadError::Parse { path: path.to_string(), line, problem: e.to_string() }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of `YYYY-MM-DD HH:MM:SS[.fraction]` (the Azure trace's format, UTC),
/// or of a plain number of seconds.
pub fn parse_time(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-').map(|v| v.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let mut t = time.splitn(3, ':');
    let h: f64 = t.next()?.parse().ok()?;
    let mi: f64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    Some(days_from_civil(y, mo, da) as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + sec)
}

const TIME_COLS: &[&str] = &["TIMESTAMP", "timestamp", "arrival_s", "arrival_time", "time", "t"];
const INPUT_COLS: &[&str] = &["ContextTokens", "input_tokens", "prompt_tokens", "input", "input_length"];
const OUTPUT_COLS: &[&str] = &["GeneratedTokens", "output_tokens", "completion_tokens", "output", "output_length"];

/// Reads a per-request trace: Azure 2023 CSV, a generic CSV (columns named as in the Azure trace
/// or `arrival_s`/`timestamp`, `input_tokens`/`prompt_tokens`, `output_tokens`/
/// `completion_tokens`), or JSONL with the same keys (`.jsonl`/`.ndjson`). Arrival times are
/// re-based so the first request arrives at 0.
pub fn read_trace(path: &Path) -> Result<Vec<Request>, WorkloadError> {
    let p = path.display().to_string();
    let is_jsonl = matches!(path.extension().and_then(|e| e.to_str()), Some("jsonl" | "ndjson"));
    let bytes = std::fs::read(path).map_err(|source| WorkloadError::Io { path: p.clone(), source })?;
    parse_trace(&bytes, &p, is_jsonl)
}

/// [`read_trace`] over bytes already in memory (`name` labels errors).
pub fn parse_trace(bytes: &[u8], name: &str, is_jsonl: bool) -> Result<Vec<Request>, WorkloadError> {
    let p = name.to_string();
    let mut raw: Vec<(f64, u32, u32)> = Vec::new();
    if is_jsonl {
        let text = String::from_utf8_lossy(bytes);
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |problem: String| WorkloadError::Parse { path: p.clone(), line: i as u64 + 1, problem };
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let get = |cols: &[&str]| cols.iter().find_map(|c| v.get(*c));
            let t = get(TIME_COLS)
                .and_then(|x| x.as_f64().or_else(|| x.as_str().and_then(parse_time)))
                .ok_or_else(|| bad(format!("no arrival time (one of {})", TIME_COLS.join(", "))))?;
            let tok = |cols: &[&str], what: &str| {
                get(cols)
                    .and_then(|x| x.as_u64().or_else(|| x.as_f64().map(|f| f.max(0.0) as u64)))
                    .map(|x| x.min(u64::from(u32::MAX)) as u32)
                    .ok_or_else(|| bad(format!("no {what} token count (one of {})", cols.join(", "))))
            };
            raw.push((t, tok(INPUT_COLS, "input")?, tok(OUTPUT_COLS, "output")?));
        }
    } else {
        let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(bytes);
        let headers = rdr.headers().map_err(|e| csv_err(&p, e))?.clone();
        let find = |cols: &[&str]| cols.iter().find_map(|c| headers.iter().position(|h| h == *c));
        let (Some(tc), Some(ic), Some(oc)) = (find(TIME_COLS), find(INPUT_COLS), find(OUTPUT_COLS)) else {
            return Err(WorkloadError::Parse {
                path: p,
                line: 1,
                problem: format!(
                    "expected an arrival column ({}), an input column ({}) and an output column ({})",
                    TIME_COLS.join("/"),
                    INPUT_COLS.join("/"),
                    OUTPUT_COLS.join("/")
                ),
            });
        };
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| csv_err(&p, e))?;
            let line = i as u64 + 2;
            let bad = |problem: &str| WorkloadError::Parse { path: p.clone(), line, problem: problem.to_string() };
            let t = rec.get(tc).and_then(parse_time).ok_or_else(|| bad("arrival time is neither seconds nor YYYY-MM-DD HH:MM:SS"))?;
            let tok =
                |c: usize| rec.get(c).and_then(|v| v.parse::<f64>().ok()).filter(|v| *v >= 0.0).map(|v| v.min(f64::from(u32::MAX)) as u32);
            raw.push((t, tok(ic).ok_or_else(|| bad("bad input token count"))?, tok(oc).ok_or_else(|| bad("bad output token count"))?));
        }
    }
    if raw.is_empty() {
        return Err(WorkloadError::Invalid(format!("{p}: no requests")));
    }
    raw.sort_by(|a, b| a.0.total_cmp(&b.0));
    let t0 = raw[0].0;
    Ok(raw.into_iter().map(|(t, i, o)| Request { arrival_s: t - t0, input: i.max(1), output: o.max(1) }).collect())
}

/// How a rate curve becomes arrivals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Process {
    /// Exponential gaps.
    Poisson,
    /// Gamma-distributed gaps with this coefficient of variation (> 1 is burstier than Poisson).
    Gamma {
        /// Coefficient of variation of the gaps.
        cv: f64,
    },
}

/// The source of a workload.
#[derive(Debug, Clone)]
pub enum Source {
    /// A per-request trace (sorted by arrival).
    Trace(Arc<Vec<Request>>),
    /// A rate curve with an arrival process and length distributions.
    Rate {
        /// The curve.
        curve: RateCurve,
        /// Arrival process.
        process: Process,
        /// Input lengths.
        input: LengthDist,
        /// Output lengths.
        output: LengthDist,
    },
}

/// A length mix that drifts over the source: prompt and output lengths are multiplied by a factor
/// that grows (or shrinks) linearly from 1 at the source's start to `input` / `output` at its
/// end, in source time, so a tuning part and a later evaluated part see different mixes. A model upgrade that makes answers longer, or a new client sending longer
/// documents, changes what one replica serves in requests/s and in tokens/s: a target tuned on
/// the first days is then wrong on the last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LengthDrift {
    /// Prompt-length factor reached at the end.
    pub input: f64,
    /// Output-length factor reached at the end.
    pub output: f64,
}

impl LengthDrift {
    /// No drift.
    pub const NONE: LengthDrift = LengthDrift { input: 1.0, output: 1.0 };

    /// Parses `IN:OUT` (e.g. `1:3`: outputs three times as long by the end), factors in
    /// (0, 100].
    pub fn parse(s: &str) -> Option<LengthDrift> {
        let (i, o) = s.split_once(':')?;
        let f = |v: &str| v.trim().parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0 && *x <= 100.0);
        Some(LengthDrift { input: f(i)?, output: f(o)? })
    }

    /// `(input, output)` scaled at `progress` (0 at the start, 1 at the end) through the source.
    fn apply(self, progress: f64, input: u32, output: u32) -> (u32, u32) {
        if self == LengthDrift::NONE {
            return (input, output);
        }
        let p = progress.clamp(0.0, 1.0);
        let scale = |n: u32, f: f64| (f64::from(n) * (1.0 + (f - 1.0) * p)).round().clamp(1.0, f64::from(u32::MAX)) as u32;
        (scale(input, self.input), scale(output, self.output))
    }
}

/// A workload: a source plus the transformations applied to it.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Where requests come from.
    pub source: Source,
    /// Part of the source timeline to use, `[from, to)` seconds (before scaling).
    pub from_s: f64,
    /// End of the part used (`f64::INFINITY`: to the end).
    pub to_s: f64,
    /// Timeline multiplier: 0.5 replays twice as fast with the same requests (the rate doubles).
    pub time_scale: f64,
    /// Rate multiplier: 2.0 doubles the arrivals on the same timeline (traces: each request is
    /// replicated; rates below 1 thin the trace at random).
    pub rate_scale: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// How the length mix drifts over the source ([`LengthDrift::NONE`]: it does not).
    pub length_drift: LengthDrift,
    /// A label for reports.
    pub name: String,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if self.from_s > 0.0 || self.to_s.is_finite() {
            write!(f, " [{:.0}s..{}]", self.from_s, if self.to_s.is_finite() { format!("{:.0}s", self.to_s) } else { "end".into() })?;
        }
        if self.time_scale != 1.0 {
            write!(f, " time x{}", self.time_scale)?;
        }
        if self.rate_scale != 1.0 {
            write!(f, " rate x{:.4}", self.rate_scale)?;
        }
        if self.length_drift != LengthDrift::NONE {
            write!(f, " lengths drifting to x{}:x{}", self.length_drift.input, self.length_drift.output)?;
        }
        Ok(())
    }
}

impl Workload {
    /// A workload over `source` with no transformation.
    pub fn new(name: impl Into<String>, source: Source, seed: u64) -> Self {
        Workload {
            source,
            from_s: 0.0,
            to_s: f64::INFINITY,
            time_scale: 1.0,
            rate_scale: 1.0,
            seed,
            length_drift: LengthDrift::NONE,
            name: name.into(),
        }
    }

    /// `curve` with Poisson arrivals and ServeGen's length mix: the simulator's default
    /// workload, and the tests'.
    pub fn servegen(name: impl Into<String>, curve: RateCurve, seed: u64) -> Self {
        let source =
            Source::Rate { curve, process: Process::Poisson, input: LengthDist::SERVEGEN_INPUT, output: LengthDist::SERVEGEN_OUTPUT };
        Workload::new(name, source, seed)
    }

    /// Length of the replay in seconds (after windowing and time scaling).
    pub fn duration_s(&self) -> f64 {
        (self.source_end_s().min(self.to_s) - self.from_s).max(0.0) * self.time_scale
    }

    /// End of the whole source, source seconds.
    fn source_end_s(&self) -> f64 {
        match &self.source {
            Source::Trace(t) => t.last().map_or(0.0, |r| r.arrival_s),
            Source::Rate { curve, .. } => curve.end_s(),
        }
    }

    /// Peak arrival rate of the source part used, before rate scaling but after time scaling
    /// (rate curves: the busiest window; traces: the busiest minute).
    pub fn source_peak_rps(&self) -> f64 {
        match &self.source {
            Source::Rate { curve, .. } => curve.window(self.from_s, self.to_s).peak_rps() / self.time_scale,
            Source::Trace(t) => {
                let mut counts: std::collections::HashMap<i64, u64> = std::collections::HashMap::new();
                for r in t.iter().filter(|r| r.arrival_s >= self.from_s && r.arrival_s < self.to_s) {
                    *counts.entry((r.arrival_s / 60.0).floor() as i64).or_default() += 1;
                }
                counts.values().copied().max().unwrap_or(0) as f64 / 60.0 / self.time_scale
            }
        }
    }

    /// Mean arrival rate after every transformation.
    pub fn mean_rps(&self) -> f64 {
        let d = self.duration_s();
        let n = match &self.source {
            Source::Rate { curve, .. } => curve.window(self.from_s, self.to_s).mean_rps() * (d / self.time_scale),
            Source::Trace(t) => t.iter().filter(|r| r.arrival_s >= self.from_s && r.arrival_s < self.to_s).count() as f64,
        };
        if d > 0.0 { n * self.rate_scale / d } else { 0.0 }
    }

    /// The arrivals, deterministic for a given seed.
    pub fn arrivals(&self) -> Arrivals {
        let rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let inner = match &self.source {
            Source::Trace(t) => {
                let start = t.partition_point(|r| r.arrival_s < self.from_s);
                Inner::Trace { reqs: t.clone(), next: start, pending: VecDeque::new() }
            }
            Source::Rate { curve, process, input, output } => {
                let curve = curve.window(self.from_s, self.to_s);
                let gamma = match process {
                    Process::Poisson => None,
                    Process::Gamma { cv } => {
                        let k = 1.0 / (cv * cv).max(1e-6);
                        Gamma::new(k, 1.0 / k).ok()
                    }
                };
                Inner::Rate { curve, window: 0, ahead: 0.0, gamma, input: input.sampler(), output: output.sampler() }
            }
        };
        Arrivals {
            inner,
            rng,
            time_scale: self.time_scale,
            rate_scale: self.rate_scale,
            from_s: self.from_s,
            to_s: self.to_s,
            drift: self.length_drift,
            source_end_s: self.source_end_s(),
        }
    }
}

enum Inner {
    Trace { reqs: Arc<Vec<Request>>, next: usize, pending: VecDeque<Request> },
    Rate { curve: RateCurve, window: usize, ahead: f64, gamma: Option<Gamma<f64>>, input: LengthSampler, output: LengthSampler },
}

/// The arrival stream of a [`Workload`].
pub struct Arrivals {
    inner: Inner,
    rng: Xoshiro256PlusPlus,
    time_scale: f64,
    rate_scale: f64,
    from_s: f64,
    to_s: f64,
    drift: LengthDrift,
    /// End of the whole source, source seconds (the drift's progress is source time / end).
    source_end_s: f64,
}

impl Iterator for Arrivals {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        let r = self.next_undrifted()?;
        let source_s = r.arrival_s / self.time_scale + self.from_s;
        let progress = if self.source_end_s > 0.0 { source_s / self.source_end_s } else { 0.0 };
        let (input, output) = self.drift.apply(progress, r.input, r.output);
        Some(Request { input, output, ..r })
    }
}

impl Arrivals {
    fn next_undrifted(&mut self) -> Option<Request> {
        match &mut self.inner {
            Inner::Trace { reqs, next, pending } => loop {
                if let Some(r) = pending.pop_front() {
                    return Some(r);
                }
                let r = *reqs.get(*next)?;
                *next += 1;
                if r.arrival_s >= self.to_s {
                    return None;
                }
                let t = (r.arrival_s - self.from_s) * self.time_scale;
                // Rate scaling of a trace: floor(scale) copies plus one more with the fractional
                // probability; copies keep the original's lengths and arrive within 50 ms of it,
                // so bursts stay bursts.
                let whole = self.rate_scale.floor() as u64;
                let frac = self.rate_scale - whole as f64;
                let copies = whole + u64::from(self.rng.random::<f64>() < frac);
                let mut batch: Vec<Request> = (0..copies)
                    .map(|i| {
                        let jitter = if i == 0 { 0.0 } else { self.rng.random::<f64>() * 0.05 };
                        Request { arrival_s: t + jitter, ..r }
                    })
                    .collect();
                batch.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
                pending.extend(batch);
            },
            Inner::Rate { curve, window, ahead, gamma, input, output } => {
                // Time-rescaling: draw a unit-mean gap in "expected arrivals" and walk the windows
                // until that many expected arrivals have accumulated.
                let mut need = match gamma {
                    Some(g) => g.sample(&mut self.rng),
                    None => -(1.0 - self.rng.random::<f64>()).ln(),
                };
                loop {
                    let &(s, l, r) = curve.windows.get(*window)?;
                    let rate = r * self.rate_scale;
                    let left = l - *ahead;
                    let expected = rate * left;
                    if rate > 0.0 && expected >= need {
                        *ahead += need / rate;
                        let t = (s + *ahead) * self.time_scale;
                        let input = input.sample(&mut self.rng);
                        let output = output.sample(&mut self.rng);
                        return Some(Request { arrival_s: t, input, output });
                    }
                    need -= expected.max(0.0);
                    *window += 1;
                    *ahead = 0.0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn tmp(name: &str, body: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("llm-scaler-wl-{}-{name}", std::process::id()));
        let mut f = std::fs::File::create(&dir).unwrap();
        f.write_all(body.as_bytes()).unwrap();
        dir
    }

    #[test]
    fn a_workday_pattern_ramps_up_and_down_at_the_same_hours_every_day() {
        let c = RateCurve::synthetic("workday:2:8:9:18:600", 2.0 * 86_400.0, 60.0).unwrap();
        let at = |t: f64| c.windows.iter().find(|w| w.0 <= t && t < w.0 + w.1).unwrap().2;
        for day in [0.0, 86_400.0] {
            assert_eq!(at(day + 3600.0), 2.0);
            assert!((at(day + 9.0 * 3600.0 + 300.0) - 5.0).abs() < 0.6, "half way up the ramp");
            assert_eq!(at(day + 12.0 * 3600.0), 8.0);
            assert_eq!(at(day + 20.0 * 3600.0), 2.0);
        }
        assert!(RateCurve::synthetic("workday:2:8:18:9:600", 86_400.0, 60.0).is_err(), "end before start");
    }

    #[test]
    fn a_drifting_length_mix_scales_lengths_linearly_from_one_at_the_start_to_the_factor_at_the_end() {
        let curve = RateCurve::synthetic("ramp:50:50", 1000.0, 10.0).unwrap();
        let source = Source::Rate { curve, process: Process::Poisson, input: LengthDist::Fixed(100), output: LengthDist::Fixed(10) };
        let mut w = Workload::new("drift", source, 1);
        w.length_drift = LengthDrift::parse("1:3").unwrap();
        let reqs: Vec<Request> = w.arrivals().collect();
        let first = reqs.first().unwrap();
        let last = reqs.last().unwrap();
        assert_eq!((first.input, first.output), (100, 10), "{first:?}");
        assert_eq!((last.input, last.output), (100, 30), "{last:?}");
        let mid = reqs.iter().find(|r| r.arrival_s >= 500.0).unwrap();
        assert_eq!(mid.output, 20, "half way: x2 ({mid:?})");
        assert!(w.to_string().ends_with("lengths drifting to x1:x3"), "{w}");
        // Over the source, not the part: the second half starts where the whole is half way.
        w.from_s = 500.0;
        let later = w.arrivals().next().unwrap();
        assert!((20..=21).contains(&later.output), "{later:?}");
        for bad in ["3", "0:1", "1:x", "1:-2", "1:1000"] {
            assert_eq!(LengthDrift::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn azure_csv() {
        let p = tmp(
            "azure.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n\
             2023-11-16 18:17:03.9799600,4808,10\n\
             2023-11-16 18:17:04.0319600,3180,8\n\
             2023-11-16 18:18:04.0781490,110,0\n",
        );
        let t = read_trace(&p).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].arrival_s, t[0].input, t[0].output), (0.0, 4808, 10));
        assert!((t[1].arrival_s - 0.052).abs() < 1e-6, "{}", t[1].arrival_s);
        assert!((t[2].arrival_s - 60.098_189).abs() < 1e-5);
        assert_eq!(t[2].output, 1, "zero outputs become one token");
    }

    #[test]
    fn generic_csv_and_jsonl() {
        let p = tmp("generic.csv", "arrival_s,input_tokens,output_tokens\n5.5,100,20\n2.0,50,10\n");
        let t = read_trace(&p).unwrap();
        assert_eq!(t, vec![Request { arrival_s: 0.0, input: 50, output: 10 }, Request { arrival_s: 3.5, input: 100, output: 20 }]);
        let p = tmp(
            "trace.jsonl",
            "{\"timestamp\": 10.0, \"prompt_tokens\": 7, \"completion_tokens\": 3}\n\n{\"arrival_s\": 11.25, \"input_tokens\": 8, \"output_tokens\": 4}\n",
        );
        let t = read_trace(&p).unwrap();
        assert_eq!(t[1], Request { arrival_s: 1.25, input: 8, output: 4 });
        let p = tmp("bad.jsonl", "{\"timestamp\": 1}\n");
        assert!(read_trace(&p).unwrap_err().to_string().contains("input token count"));
    }

    #[test]
    fn servegen_curve_and_poisson_arrivals() {
        let p =
            tmp("rate.csv", "window_start_s,window_len_s,total_rate_rps,active_clients\n0,600,10.0,43\n600,600,0,40\n1200,600,30.0,41\n");
        let c = RateCurve::read_servegen(&p).unwrap();
        assert_eq!(c.windows.len(), 3);
        assert_eq!(c.peak_rps(), 30.0);
        let w = Workload::new(
            "t",
            Source::Rate { curve: c, process: Process::Poisson, input: LengthDist::SERVEGEN_INPUT, output: LengthDist::SERVEGEN_OUTPUT },
            7,
        );
        let a: Vec<Request> = w.arrivals().collect();
        let in_window = |lo: f64, hi: f64| a.iter().filter(|r| r.arrival_s >= lo && r.arrival_s < hi).count() as f64;
        assert!((in_window(0.0, 600.0) - 6000.0).abs() < 300.0, "{}", in_window(0.0, 600.0));
        assert_eq!(in_window(600.0, 1200.0), 0.0);
        assert!((in_window(1200.0, 1800.0) - 18_000.0).abs() < 600.0);
        assert!(a.windows(2).all(|p| p[0].arrival_s <= p[1].arrival_s));
        // Same seed, same arrivals.
        let b: Vec<Request> = w.arrivals().take(100).collect();
        assert_eq!(&a[..100], &b[..]);
        // Lengths: medians near ServeGen's.
        let mut ins: Vec<u32> = a.iter().map(|r| r.input).collect();
        ins.sort_unstable();
        let med = ins[ins.len() / 2] as f64;
        assert!((med - 601.0).abs() < 40.0, "{med}");
        // Rate scaling and a window.
        let mut half = w.clone();
        half.rate_scale = 0.5;
        half.from_s = 1200.0;
        let n = half.arrivals().count() as f64;
        assert!((n - 9000.0).abs() < 400.0, "{n}");
        assert_eq!(half.duration_s(), 600.0);
    }

    #[test]
    fn gamma_is_burstier_than_poisson() {
        let curve = RateCurve::synthetic("step:10:10:0", 2000.0, 10.0).unwrap();
        let gaps_cv = |process| {
            let w = Workload::new(
                "g",
                Source::Rate { curve: curve.clone(), process, input: LengthDist::Fixed(1), output: LengthDist::Fixed(1) },
                1,
            );
            let a: Vec<f64> = w.arrivals().map(|r| r.arrival_s).collect();
            let g: Vec<f64> = a.windows(2).map(|p| p[1] - p[0]).collect();
            let m = g.iter().sum::<f64>() / g.len() as f64;
            let v = g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / g.len() as f64;
            (m, v.sqrt() / m)
        };
        let (m, cv) = gaps_cv(Process::Poisson);
        assert!((m - 0.1).abs() < 0.005 && (cv - 1.0).abs() < 0.05, "{m} {cv}");
        let (m, cv) = gaps_cv(Process::Gamma { cv: 3.0 });
        assert!((m - 0.1).abs() < 0.02 && (cv - 3.0).abs() < 0.4, "{m} {cv}");
    }

    #[test]
    fn synthetic_patterns_and_trace_scaling() {
        let s = RateCurve::synthetic("spike:1:50:100:20", 300.0, 10.0).unwrap();
        assert_eq!(s.peak_rps(), 50.0);
        assert_eq!(s.windows.iter().filter(|w| w.2 == 50.0).count(), 2);
        let sine = RateCurve::synthetic("sine:10:5:100", 100.0, 1.0).unwrap();
        assert!((sine.mean_rps() - 10.0).abs() < 0.1);
        assert!(RateCurve::synthetic("wave:1", 10.0, 1.0).is_err());
        let reqs: Vec<Request> = (0..1000).map(|i| Request { arrival_s: f64::from(i), input: 1, output: 1 }).collect();
        let mut w = Workload::new("t", Source::Trace(Arc::new(reqs)), 3);
        w.rate_scale = 2.5;
        w.time_scale = 0.5;
        let a: Vec<Request> = w.arrivals().collect();
        assert!((a.len() as f64 - 2500.0).abs() < 80.0, "{}", a.len());
        assert!((a.last().unwrap().arrival_s - 499.5).abs() < 0.1);
        assert!((w.duration_s() - 499.5).abs() < 1e-9);
    }
}
