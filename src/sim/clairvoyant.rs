//! The clairvoyant bound: a fleet that follows the actual arrivals perfectly, with foresight of
//! the cold start. No autoscaler can know the future; this one does, so its GPU-hours are what
//! following demand can save at best, and a policy's ratio to it says how much is left.
//!
//! Per window of a minute: `replicas = ceil(k x arrivals/s in the window / replica capacity
//! within the SLO)`, within the fleet's bounds. Replicas are requested a cold start (plus the
//! largest jitter) ahead of the window that needs them, so they are Ready in time, and kept until
//! the last window that needs them has passed; they are billed while starting and draining like
//! any pod. `k` is the smallest factor (bisection) that meets the strict SLO.

use std::sync::Arc;

use serde::Serialize;

use crate::sim::{
    lineup::{Policy, PolicyKind},
    report::PolicyResult,
    schedule::{Schedule, WINDOW_S},
    seeds::{Trial, Trials},
    workload::Workload,
};

/// Arrivals per second in each window of `window_s` (from the workload's own arrivals: the
/// schedule knows exactly what will come).
pub fn demand(workload: &Workload, window_s: f64) -> Vec<f64> {
    let n = (workload.duration_s() / window_s).ceil().max(1.0) as usize;
    let mut counts = vec![0u64; n];
    for r in workload.arrivals() {
        let i = ((r.arrival_s.max(0.0) / window_s) as usize).min(n - 1);
        counts[i] += 1;
    }
    counts.into_iter().map(|c| c as f64 / window_s).collect()
}

/// The clairvoyant policy of a schedule.
pub fn policy(schedule: Schedule) -> Policy {
    Policy { name: "clairvoyant".into(), kind: PolicyKind::Clairvoyant(Arc::new(schedule)) }
}

/// The trial of `schedule` on seed `seed`: it starts with the replicas its first windows need,
/// since foresight includes the start.
fn trial(seed: usize, schedule: Schedule) -> Trial {
    let initial = schedule.desired_at(0.0);
    Trial { seed, policy: policy(schedule), initial: Some(initial) }
}

/// What the search found.
#[derive(Debug, Clone, Serialize)]
pub struct ClairvoyantSearch {
    /// The smallest factor meeting the SLO on every seed (`None`: not even at the upper bound).
    pub factor: Option<f64>,
    /// Factors tried on the first seed and whether they met.
    pub first_seed: Vec<(f64, bool)>,
    /// Factors raised because another seed missed at them: `(factor, seed)`.
    pub raised_for: Vec<(f64, u64)>,
    /// The replays at `factor` on every seed, in seed order.
    #[serde(skip)]
    pub results: Vec<PolicyResult>,
}

impl ClairvoyantSearch {
    /// A sentence for the report.
    pub fn note(&self) -> String {
        let tried: Vec<String> =
            self.first_seed.iter().map(|(k, ok)| format!("{k:.3}{}", if *ok { " meets" } else { " misses" })).collect();
        let mut s = match self.factor {
            Some(k) => format!(
                "clairvoyant: replicas = ceil({k:.3} x arrivals/s per minute / capacity), requested a cold start ahead; k bisected on the first seed ({})",
                tried.join(", ")
            ),
            None => {
                format!("clairvoyant: no factor meets the SLO, not even with every window at the upper bound (tried {})", tried.join(", "))
            }
        };
        for (k, seed) in &self.raised_for {
            s.push_str(&format!("; k {k:.3} missed on seed {seed}, raised 5 %"));
        }
        s
    }
}

/// Relative width at which the bisection of `k` stops.
const PRECISION: f64 = 0.02;

/// Finds the smallest factor meeting the SLO: bracketed by halving or doubling from 1, bisected
/// on the first seed to 2 %, then raised by 5 % steps until every seed meets.
pub fn search(trials: &Trials) -> ClairvoyantSearch {
    let demands: Vec<Vec<f64>> = trials.seeds.iter().map(|s| demand(&s.workload, WINDOW_S)).collect();
    let cfg0 = &trials.seeds[0].cfg;
    let max = cfg0.max_replicas;
    let mut first_seed = Vec::new();
    let mut meets_first = |k: f64| -> bool {
        let r = trials.run(&[trial(0, Schedule::new(&demands[0], k, cfg0))]);
        let ok = r.first().is_some_and(|r| trials.meets(r));
        first_seed.push((k, ok));
        ok
    };
    // Bracket: `hi` meets, `lo` misses.
    let (mut lo, mut hi);
    if meets_first(1.0) {
        hi = 1.0;
        lo = 0.5;
        while meets_first(lo) {
            hi = lo;
            if hi <= 1.0 / 64.0 {
                // The lower bound of the fleet meets alone: no need to bisect further.
                break;
            }
            lo = hi / 2.0;
        }
    } else {
        lo = 1.0;
        hi = 2.0;
        loop {
            if meets_first(hi) {
                break;
            }
            if Schedule::new(&demands[0], hi, cfg0).saturated(max) || hi > 64.0 {
                return ClairvoyantSearch { factor: None, first_seed, raised_for: Vec::new(), results: Vec::new() };
            }
            lo = hi;
            hi *= 2.0;
        }
    }
    while hi / lo > 1.0 + PRECISION {
        let mid = (lo * hi).sqrt();
        if meets_first(mid) { hi = mid } else { lo = mid }
    }
    let mut raised_for = Vec::new();
    let mut k = hi;
    for _ in 0..20 {
        let batch: Vec<Trial> = trials.all().map(|i| trial(i, Schedule::new(&demands[i], k, &trials.seeds[i].cfg))).collect();
        let results = trials.run(&batch);
        match trials.seeds.iter().zip(&results).find(|(_, r)| !trials.meets(r)) {
            None => return ClairvoyantSearch { factor: Some(k), first_seed, raised_for, results },
            Some((s, _)) => {
                raised_for.push((k, s.seed));
                if Schedule::new(&demands[0], k, cfg0).saturated(max) {
                    break;
                }
                k *= 1.05;
            }
        }
    }
    ClairvoyantSearch { factor: None, first_seed, raised_for, results: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{config::SimConfig, criterion::SloCriterion, workload::RateCurve};

    #[test]
    fn replayed_the_clairvoyant_fleet_is_ready_when_the_demand_arrives() {
        // A step from 2 to 30 req/s at 10 minutes.
        let curve = RateCurve::synthetic("step:2:30:600", 1500.0, 10.0).unwrap();
        let w = Workload::servegen("step", curve, 5);
        let cfg =
            SimConfig { min_replicas: 1, max_replicas: 12, replica_capacity_rps: 5.27, series_step_s: Some(60.0), ..SimConfig::default() };
        let trials = Trials::new(&cfg, &w, 1, SloCriterion::default(), 1);
        let d = demand(&w, WINDOW_S);
        let r = &trials.run(&[trial(0, Schedule::new(&d, 1.2, &cfg))])[0];
        // The step's first minute (600-660 s) has the replicas it needs Ready all through it;
        // they were provisioned (starting, billed) from 480 s, one cold start ahead, not before.
        let need = (1.2 * 30.0 / 5.27f64).ceil();
        let (ready, provisioned) = (&r.series.ready, &r.series.replicas);
        assert!((ready[10] - need).abs() < 1e-9, "ready {:?}", &ready[7..12]);
        assert!(ready[9] < 2.0, "Ready only when needed: {:?}", &ready[7..12]);
        assert!((provisioned[8] - need).abs() < 1e-9, "requested at 480 s: {:?}", &provisioned[6..12]);
        assert!(provisioned[7] < 2.0, "not before: {:?}", &provisioned[6..12]);
        assert!(r.slo_attainment > 0.99, "{}", r.slo_attainment);
    }

    #[test]
    fn the_factor_found_is_the_smallest_meeting_the_slo_to_within_its_precision() {
        let curve = RateCurve::synthetic("sine:15:10:1200", 2400.0, 10.0).unwrap();
        let w = Workload::servegen("sine", curve, 2);
        let cfg = SimConfig { min_replicas: 1, max_replicas: 12, replica_capacity_rps: 5.27, ..SimConfig::default() };
        let trials = Trials::new(&cfg, &w, 1, SloCriterion::default(), 1);
        let s = search(&trials);
        let k = s.factor.expect("12 replicas are plenty");
        assert_eq!(s.results.len(), 1);
        assert!(trials.meets(&s.results[0]));
        // The largest factor that missed is within 2 % below it.
        let missed = s.first_seed.iter().filter(|(_, ok)| !ok).map(|(k, _)| *k).fold(0.0, f64::max);
        assert!(missed < k && k / missed <= 1.0 + PRECISION + 1e-9, "{:?}", s.first_seed);
    }
}
