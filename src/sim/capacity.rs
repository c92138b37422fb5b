//! How many requests per second one replica serves within the SLO, measured on the workload's
//! own request lengths: the unit in which the report speaks of demand and work done.

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use crate::sim::{
    config::SimConfig,
    engine::{Done, Replica},
    workload::{Request, Workload},
};

/// Requests/s one replica serves with at least `target` of them within the SLO: a bisection
/// over short single-replica runs (Poisson arrivals, the workload's lengths).
pub fn replica_capacity(cfg: &SimConfig, workload: &Workload, target: f64) -> f64 {
    let lengths: Vec<(u32, u32)> = workload.arrivals().take(20_000).map(|r| (r.input, r.output)).collect();
    if lengths.is_empty() {
        return 1.0;
    }
    let attain = |rate: f64| -> f64 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
        let mut r = Replica::new(&cfg.profile, 0.0);
        let secs = 1800.0;
        let warm = 300.0;
        let mut t = 0.0;
        let mut ok = 0u64;
        let mut n = 0u64;
        let mut i = 0usize;
        let slo = cfg.slo;
        let mut sink = |d: Done| {
            if d.arrival_s >= warm {
                n += 1;
                if d.completed && d.ttft_s.is_some_and(|x| x <= slo.ttft_s) && d.tpot_s.is_none_or(|x| x <= slo.tpot_s) {
                    ok += 1;
                }
            }
        };
        while t < secs {
            t += -(1.0 - rng.random::<f64>()).ln() / rate;
            let (input, output) = lengths[i % lengths.len()];
            i += 1;
            r.advance_to(t, &mut sink);
            r.submit(&Request { arrival_s: t, input, output }, t);
        }
        r.advance_to(secs + 600.0, &mut sink);
        r.abort_all(&mut sink);
        if n == 0 { 1.0 } else { ok as f64 / n as f64 }
    };
    let (mut lo, mut hi) = (0.05, 1.0);
    while attain(hi) >= target && hi < 1e4 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..12 {
        let mid = (lo + hi) / 2.0;
        if attain(mid) >= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}
