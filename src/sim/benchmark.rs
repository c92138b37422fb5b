//! A simulated `vllm bench serve` against one modelled replica: how a user measures what a
//! replica serves, and how the calibration rows were measured.
//!
//! A run sends a list of requests, issued at once (`--request-rate inf`) or by a seeded Poisson
//! process (`--request-rate R`), with at most `--max-concurrency` outstanding (a client-side
//! semaphore: a request whose turn comes waits for a free slot, and its TTFT counts from when it
//! is sent). Each request is sent the instant the engine frees a slot, so a closed loop of `B`
//! clients is `--request-rate inf --max-concurrency B`. The report is vLLM's: request and token
//! throughput over the run's duration (first send to last token), TTFT and TPOT mean, p50 and
//! p99, and the share within an SLO (`--goodput`).

use std::collections::VecDeque;

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use serde::Serialize;

use crate::sim::{
    config::Slo,
    engine::{Done, Replica},
    profile::ModelProfile,
    workload::Request,
};

/// When the benchmark client sends its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RequestRate {
    /// All at once, paced only by `max_concurrency` (`--request-rate inf`).
    Inf,
    /// A Poisson process of this many requests per second, seeded.
    Poisson { rps: f64, seed: u64 },
}

/// One run of the benchmark client.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRun<'a> {
    /// `(input, output)` tokens of each request, sent in this order.
    pub lengths: &'a [(u32, u32)],
    /// Send schedule.
    pub rate: RequestRate,
    /// At most this many requests outstanding (`None`: unbounded).
    pub max_concurrency: Option<u32>,
    /// A client that waited for a free slot sends after a further uniform random delay in
    /// `[0, client_jitter_s]` (its response handling; seeded). Without it, clients whose
    /// requests finished in the same iteration would resend in the same instant forever.
    pub client_jitter_s: f64,
}

/// Every request of a run, in the order they finished, and the run's duration.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchTrace {
    /// Finished (or rejected) requests in completion order; `arrival_s` is when it was sent.
    pub done: Vec<Done>,
    /// First send to last completion, seconds.
    pub duration_s: f64,
    /// Prompt tokens of the requests the engine accepted (what vLLM's "Total input tokens"
    /// counts; the engine rejects only prompts longer than its whole KV cache).
    pub input_tokens: f64,
    /// Preemptions in the engine.
    pub preemptions: u64,
}

/// What `vllm bench serve` prints for a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BenchReport {
    /// Requests completed.
    pub completed: usize,
    /// Seconds from the first send to the last token.
    pub duration_s: f64,
    /// Completed requests per second.
    pub request_throughput: f64,
    /// Generated tokens per second.
    pub output_tokens_per_s: f64,
    /// Prompt plus generated tokens per second ("Total Token throughput").
    pub total_tokens_per_s: f64,
    /// Mean TTFT, seconds.
    pub ttft_mean_s: f64,
    /// Median TTFT, seconds.
    pub ttft_p50_s: f64,
    /// 99th percentile TTFT, seconds.
    pub ttft_p99_s: f64,
    /// Mean TPOT (mean time per output token after the first), seconds.
    pub tpot_mean_s: f64,
    /// Median TPOT, seconds.
    pub tpot_p50_s: f64,
    /// 99th percentile TPOT, seconds.
    pub tpot_p99_s: f64,
    /// Share of all requests (dropped ones included) within the SLO.
    pub slo_attainment: f64,
    /// Requests within the SLO per second ("Request goodput").
    pub goodput_rps: f64,
}

/// Runs the benchmark client against a fresh replica of profile `p`.
pub fn run(p: &ModelProfile, b: &BenchRun<'_>) -> BenchTrace {
    let mut r = Replica::new(p, 0.0);
    let n = b.lengths.len();
    let mut sends: Vec<f64> = Vec::with_capacity(n);
    match b.rate {
        RequestRate::Inf => sends.resize(n, 0.0),
        RequestRate::Poisson { rps, seed } => {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut t = 0.0;
            for _ in 0..n {
                t += -(1.0 - rng.random::<f64>()).ln() / rps.max(1e-9);
                sends.push(t);
            }
        }
    }
    let mut jitter_rng = Xoshiro256PlusPlus::seed_from_u64(0x6a17);
    let limit = b.max_concurrency.map_or(usize::MAX, |c| c.max(1) as usize);
    // Slots freed by completions, at the instant each completion happened.
    let mut freed: VecDeque<f64> = VecDeque::new();
    let mut in_flight = 0usize;
    let mut next = 0usize;
    let mut done: Vec<Done> = Vec::with_capacity(n);
    let mut batch: Vec<Done> = Vec::new();
    while done.len() < n {
        // The next send: its scheduled time, or the first freed slot if all are taken.
        let send_at = (next < n)
            .then(|| if in_flight < limit { Some(sends[next].max(r.now())) } else { earliest(&freed).map(|(_, f)| sends[next].max(f)) });
        match send_at.flatten() {
            Some(t) if t <= r.now() => {
                if in_flight >= limit {
                    if let Some((i, _)) = earliest(&freed) {
                        freed.swap_remove_back(i);
                    }
                } else {
                    in_flight += 1;
                }
                let (input, output) = b.lengths[next];
                let now = r.now();
                r.submit(&Request { arrival_s: now, input, output }, now);
                next += 1;
            }
            horizon => {
                let until = horizon.unwrap_or(f64::INFINITY);
                let stuck = horizon.is_none() && r.outstanding() == 0;
                r.advance_until_finish(until, &mut |d| batch.push(d));
                for d in batch.drain(..) {
                    if next < n && in_flight >= limit {
                        freed.push_back(r.now() + b.client_jitter_s * jitter_rng.random::<f64>());
                    } else {
                        in_flight -= 1;
                    }
                    done.push(d);
                }
                if stuck {
                    // Nothing to send and nothing running (cannot happen: every request sent
                    // is finished or rejected); stop rather than spin.
                    break;
                }
            }
        }
    }
    let first = sends.first().copied().unwrap_or(0.0);
    let last = done.iter().map(|d| d.arrival_s + d.e2e_s).fold(first, f64::max);
    let fits = p.kv_capacity_tokens as f64 * 0.99;
    let input_tokens = b.lengths.iter().map(|&(i, _)| f64::from(i)).filter(|&i| i <= fits).sum();
    BenchTrace { done, duration_s: last - first, input_tokens, preemptions: r.preemptions }
}

/// The slot freed first (jitter makes the list unordered; it holds at most the concurrency).
fn earliest(freed: &VecDeque<f64>) -> Option<(usize, f64)> {
    freed.iter().copied().enumerate().min_by(|a, b| a.1.total_cmp(&b.1))
}

impl BenchTrace {
    /// vLLM's summary of the run.
    pub fn report(&self, slo: Slo) -> BenchReport {
        let ok: Vec<&Done> = self.done.iter().filter(|d| d.completed).collect();
        let mut ttft: Vec<f64> = ok.iter().filter_map(|d| d.ttft_s).collect();
        let mut tpot: Vec<f64> = ok.iter().filter_map(|d| d.tpot_s).collect();
        ttft.sort_by(f64::total_cmp);
        tpot.sort_by(f64::total_cmp);
        let within = self
            .done
            .iter()
            .filter(|d| d.completed && d.ttft_s.is_some_and(|x| x <= slo.ttft_s) && d.tpot_s.is_none_or(|x| x <= slo.tpot_s))
            .count();
        let span = self.duration_s.max(1e-9);
        let output: f64 = ok.iter().map(|d| f64::from(d.output)).sum();
        BenchReport {
            completed: ok.len(),
            duration_s: self.duration_s,
            request_throughput: ok.len() as f64 / span,
            output_tokens_per_s: output / span,
            total_tokens_per_s: (self.input_tokens + output) / span,
            ttft_mean_s: mean(&ttft),
            ttft_p50_s: quantile(&ttft, 0.5),
            ttft_p99_s: quantile(&ttft, 0.99),
            tpot_mean_s: mean(&tpot),
            tpot_p50_s: quantile(&tpot, 0.5),
            tpot_p99_s: quantile(&tpot, 0.99),
            slo_attainment: if self.done.is_empty() { 0.0 } else { within as f64 / self.done.len() as f64 },
            goodput_rps: within as f64 / span,
        }
    }
}

/// The `q` quantile of sorted `v` (nearest rank, as vLLM's benchmark's numpy default is close
/// to at these sample sizes; NaN when empty).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Mean of `v` (NaN when empty).
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// Requests a throughput benchmark sends (`--num-prompts`); vLLM's default is 1,000, more
/// here so that the ramp-down at the end weighs less.
pub const BENCH_PROMPTS: usize = 4000;

/// `vllm bench serve --request-rate inf --max-concurrency max_num_seqs` on `lengths`: the
/// replica at saturation, every batch slot busy. The capacity a user measures with a
/// throughput benchmark of one replica.
pub fn saturation(p: &ModelProfile, lengths: &[(u32, u32)], slo: Slo) -> BenchReport {
    run(p, &BenchRun { lengths, rate: RequestRate::Inf, max_concurrency: Some(p.max_num_seqs), client_jitter_s: 0.0 }).report(slo)
}

/// Prompt plus generated tokens per second one replica serves at saturation on `lengths`:
/// what `targetTokensPerSecond` means (the design's `replicas = load x peakFactor / replica
/// capacity`, with the capacity from a throughput benchmark).
pub fn saturation_total_tokens_per_s(p: &ModelProfile, lengths: &[(u32, u32)]) -> f64 {
    saturation(p, lengths, Slo::default()).total_tokens_per_s
}

/// One Poisson run of `lengths` at `rps` (seed 42, no concurrency limit).
pub fn at_rate(p: &ModelProfile, lengths: &[(u32, u32)], rps: f64, slo: Slo) -> BenchReport {
    run(p, &BenchRun { lengths, rate: RequestRate::Poisson { rps, seed: 42 }, max_concurrency: None, client_jitter_s: 0.0 }).report(slo)
}

/// The highest Poisson rate at which at least `target` of the requests meet the SLO (what
/// `vllm bench serve --goodput` is run to find), by bisection, and the run at that rate.
pub fn goodput(p: &ModelProfile, lengths: &[(u32, u32)], slo: Slo, target: f64) -> (f64, BenchReport) {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while at_rate(p, lengths, hi, slo).slo_attainment >= target && hi < 1e5 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..14 {
        let mid = (lo + hi) / 2.0;
        if at_rate(p, lengths, mid, slo).slo_attainment >= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let rate = if lo > 0.0 { lo } else { hi / 2f64.powi(14) };
    (rate, at_rate(p, lengths, rate, slo))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Closed loop: `b` clients each sending the next request the instant the previous ends
    /// (the benchmark client, without jitter); mean TPOT of the requests after the first 20 %
    /// of the run, their mean e2e and the engine's preemptions.
    fn closed_loop(p: &ModelProfile, b: u32, isl: u32, osl: u32, n: usize) -> (f64, f64, u64) {
        // Output lengths spread by +-10 % so that the clients fall out of lock-step.
        let lengths: Vec<(u32, u32)> = (0..n).map(|i| (isl, osl - osl / 10 + (i as u32 * 37) % (osl / 5).max(1))).collect();
        let t = run(p, &BenchRun { lengths: &lengths, rate: RequestRate::Inf, max_concurrency: Some(b), client_jitter_s: 1e-3 });
        let steady = &t.done[n / 5..n - b as usize];
        let tpot = steady.iter().filter_map(|d| d.tpot_s).sum::<f64>() / steady.len() as f64;
        let e2e = steady.iter().map(|d| d.e2e_s).sum::<f64>() / steady.len() as f64;
        (tpot, e2e, t.preemptions)
    }

    #[test]
    fn simulated_throughput_at_batch_64_matches_the_row() {
        // Row: 1k in / 1k out, 64 concurrent: TPOT 28.77 ms, e2e 29.85 s, 1,097.9 output tok/s
        // per GPU (TP2).
        let p = ModelProfile::llama70b_fp8_h100_tp2();
        let (tpot, e2e, preempt) = closed_loop(&p, 64, 1024, 1024, 640);
        assert_eq!(preempt, 0);
        // Steady state only (the row's mean also holds the first wave and the tail, with
        // smaller batches): within 6 %.
        assert!((tpot * 1e3 - 28.77).abs() / 28.77 < 0.06, "TPOT {:.2} ms", tpot * 1e3);
        let per_gpu = 64.0 * 1024.0 / e2e / 2.0;
        assert!((per_gpu - 1097.9).abs() / 1097.9 < 0.06, "{per_gpu:.0} tok/s per GPU");
    }

    #[test]
    fn a_closed_loop_preempts_when_the_kv_cache_runs_out() {
        // 8k prompts x 32 sequences need ~290k tokens: more than the ~212k the cache holds.
        let (_, _, preempt) = closed_loop(&ModelProfile::llama70b_fp8_h100_tp2(), 32, 8192, 1024, 96);
        assert!(preempt > 0);
    }

    #[test]
    fn a_saturation_run_keeps_at_most_max_concurrency_requests_outstanding() {
        let p = ModelProfile::llama70b_fp8_h100_tp2();
        let lengths = vec![(500, 50); 40];
        let t = run(&p, &BenchRun { lengths: &lengths, rate: RequestRate::Inf, max_concurrency: Some(8), client_jitter_s: 0.0 });
        assert_eq!(t.done.len(), 40);
        // At every send, fewer than 8 others were in flight.
        for d in &t.done {
            let overlapping = t.done.iter().filter(|o| o.arrival_s <= d.arrival_s && o.arrival_s + o.e2e_s > d.arrival_s).count();
            assert!(overlapping <= 8, "{overlapping} in flight at {}", d.arrival_s);
        }
        let rep = t.report(Slo::default());
        assert!((rep.total_tokens_per_s - 40.0 * 550.0 / t.duration_s).abs() < 1e-6);
        assert!((rep.request_throughput - 40.0 / t.duration_s).abs() < 1e-9);
        assert!(rep.ttft_p50_s <= rep.ttft_p99_s && rep.tpot_p50_s <= rep.tpot_p99_s);
    }

    #[test]
    fn goodput_is_the_highest_rate_keeping_99_percent_within_the_slo() {
        let p = ModelProfile::llama70b_fp8_h100_tp2();
        let lengths: Vec<(u32, u32)> = (0..1500).map(|i| (400 + (i * 131) % 1200, 20 + (i * 17) % 200)).collect();
        let (rate, rep) = goodput(&p, &lengths, Slo::default(), 0.99);
        assert!(rep.slo_attainment >= 0.99, "{rep:?}");
        assert!(at_rate(&p, &lengths, rate * 1.1, Slo::default()).slo_attainment < 0.99, "not the highest: {rate}");
        // Saturation serves more than goodput does, at worse latency.
        let sat = saturation(&p, &lengths, Slo::default());
        assert!(sat.request_throughput > rate && sat.ttft_p99_s > rep.ttft_p99_s, "{sat:?}");
    }
}
