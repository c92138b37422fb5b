//! `targetTokensPerSecond: auto` in the simulator: from a start 2x too high and 2x too low, the
//! learned capacity ends near where it ends from the replica's own SLO capacity, and the SLO is
//! kept once it has converged.
//!
//! Each run is the simulator's own replay (`sim::replay::run_policy`: the fleet, the production
//! scrape path into the same `Decider`, KEDA's polling and the HPA's sync); the learned capacity
//! is read from the decider trace its report carries. The replica is a parameter: each replica
//! type gets one `#[test]` calling [`converges_from_both_sides`].
#![cfg(feature = "sim")]

use llm_scaler::sim::{
    self, SimConfig,
    engine::ModelProfile,
    replay::run_policy,
    workload::{RateCurve, Workload},
};

/// What one run of llm-scaler with `auto` ended with.
#[derive(Debug)]
struct Run {
    /// Learned capacity at the end, tokens/s per replica.
    end: f64,
    /// Learned capacity every simulated minute.
    trace: Vec<f64>,
    /// SLO attainment over the whole run.
    attainment: f64,
    /// SLO attainment of the requests that arrived from hour `settle_h` on.
    attainment_settled: f64,
    /// GPU-hours.
    gpu_hours: f64,
}

/// Replays `workload` under llm-scaler with `metadata`, reading its learned capacity.
fn replay(cfg: &SimConfig, workload: &Workload, metadata: &[(&str, String)], settle_h: usize) -> Run {
    let meta: Vec<(String, String)> = metadata.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let policy = sim::llm_scaler_policy("llm-scaler", cfg, &meta, 0.0).expect("metadata parses");
    let r = run_policy(cfg, workload, &policy, 0, &|_, _| {});
    let trace: Vec<f64> =
        r.decider.expect("llm-scaler has a decider").minutes.iter().map(|m| m.capacity.expect("auto mode shows its capacity")).collect();
    let settled = &r.series.hourly[settle_h.min(r.series.hourly.len())..];
    let (n, ok) = settled.iter().fold((0, 0), |(n, ok), h| (n + h.requests, ok + h.within_slo));
    Run {
        end: *trace.last().expect("a minute passed"),
        trace,
        attainment: r.slo_attainment,
        attainment_settled: ok as f64 / n.max(1) as f64,
        gpu_hours: r.gpu_hours,
    }
}

/// A day's shape, compressed: a sine between about 2 and 10 replicas' worth of load with a
/// 2-hour period, over `hours`.
fn workload(cfg: &SimConfig, hours: f64) -> (Workload, f64) {
    let probe = Workload::servegen("probe", RateCurve::synthetic("sine:5:0:3600", 3600.0, 60.0).expect("pattern"), 3);
    let rps = sim::replica_capacity(cfg, &probe, 0.99);
    let tokens_per_request = {
        let sample: Vec<_> = probe.arrivals().take(20_000).collect();
        sample.iter().map(|r| f64::from(r.input + r.output)).sum::<f64>() / sample.len() as f64
    };
    let (mean, amp) = (6.0 * rps, 4.0 * rps);
    let curve = RateCurve::synthetic(&format!("sine:{mean}:{amp}:7200"), hours * 3600.0, 60.0).expect("pattern");
    let w = Workload::servegen("sine", curve, 11);
    (w, rps * tokens_per_request)
}

/// Runs `auto` from the replica's SLO capacity, 2x above and 2x below it, and checks the ends.
/// The ScaledObject states the simulator's whole SLO (TTFT and TPOT bounds, p99): the estimator
/// learns against both, each from its own histogram, and so finds whichever binds first for the
/// replica without being told.
fn converges_from_both_sides(profile: ModelProfile) {
    let cfg = SimConfig { profile, min_replicas: 2, max_replicas: 20, ..SimConfig::default() };
    let hours = 6.0;
    let settle_h = 3;
    let (w, slo_capacity) = workload(&cfg, hours);
    let slo = [
        ("sloTtft", format!("{}ms", cfg.slo.ttft_s * 1000.0)),
        ("sloTpot", format!("{}ms", cfg.slo.tpot_s * 1000.0)),
        ("sloQuantile", "0.99".to_string()),
    ];
    let run = |start: f64| {
        let mut meta = slo.to_vec();
        meta.push(("targetTokensPerSecond", format!("auto:{start:.0}")));
        replay(&cfg, &w, &meta, settle_h)
    };
    let truth = run(slo_capacity);
    let high = run(2.0 * slo_capacity);
    let low = run(slo_capacity / 2.0);
    for (name, r) in [("true start", &truth), ("2x high", &high), ("2x low", &low)] {
        // Minutes until the estimate stays within 10 % of where the true start ends.
        let settled_at = r.trace.iter().rposition(|c| (c / truth.end - 1.0).abs() > 0.10).map_or(0, |i| i + 1);
        eprintln!("{name}: within 10 % of the true start's end from minute {settled_at} on");
        let every_half_hour: Vec<String> = r.trace.iter().step_by(30).map(|c| format!("{c:.0}")).collect();
        eprintln!(
            "{name}: end {:.0} tok/s/replica (SLO capacity {slo_capacity:.0}), attainment {:.4} overall, {:.4} after {} h, \
             {:.1} GPU-h; every 30 min: {}",
            r.end,
            r.attainment,
            r.attainment_settled,
            settle_h,
            r.gpu_hours,
            every_half_hour.join(" ")
        );
    }
    for (name, r) in [("2x high", &high), ("2x low", &low)] {
        let off = (r.end / truth.end - 1.0).abs();
        assert!(off <= 0.15, "{name}: ends at {:.0}, {:.0} % from the true start's {:.0}", r.end, off * 100.0, truth.end);
    }
    for (name, r) in [("true start", &truth), ("2x high", &high), ("2x low", &low)] {
        assert!(r.attainment_settled >= 0.99, "{name}: {:.4} of requests within the SLO after convergence", r.attainment_settled);
    }
}

#[test]
fn auto_capacity_converges_from_a_start_twice_too_high_and_twice_too_low_on_the_70b_replica() {
    // Its per-request TPOT p99 reaches 100 ms near 5,500 tokens/s, its TTFT p99 2 s only near
    // 11,000: TPOT binds.
    converges_from_both_sides(ModelProfile::llama70b_fp8_h100_tp2());
}

#[test]
fn auto_capacity_converges_from_a_start_twice_too_high_and_twice_too_low_on_the_70b_single_h200_replica() {
    // A second replica type, fitted on its own rows: a third of the two-H100 replica's goodput.
    converges_from_both_sides(ModelProfile::llama70b_fp8_h200());
}
