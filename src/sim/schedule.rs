//! The clairvoyant bound's replica schedule (see [`crate::sim::clairvoyant`]): replicas per
//! minute of actual demand, asked for a cold start ahead and kept until their window has passed.

use serde::Serialize;

use crate::sim::config::SimConfig;

/// Window of the demand the schedule follows, seconds.
pub const WINDOW_S: f64 = 60.0;

/// Replicas wanted per window, and how far ahead they are asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    /// Seconds per window.
    pub window_s: f64,
    /// How long before a window its replicas are requested (cold start + its largest jitter).
    pub lead_s: f64,
    /// The factor over the demand.
    pub factor: f64,
    /// Replicas each window needs, within the fleet's bounds.
    pub replicas: Vec<u32>,
}

impl Schedule {
    /// The schedule for `demand` (arrivals/s per window) at `factor` on the cluster `cfg`.
    pub fn new(demand: &[f64], factor: f64, cfg: &SimConfig) -> Self {
        let cap = cfg.replica_capacity_rps.max(1e-9);
        let replicas = demand
            .iter()
            .map(|rps| {
                let want = (factor * rps / cap - 1e-9).ceil().max(0.0);
                (want.min(f64::from(u32::MAX)) as u32).clamp(cfg.min_replicas.max(1), cfg.max_replicas.max(1))
            })
            .collect();
        Schedule { window_s: WINDOW_S, lead_s: cfg.cold_start_s + cfg.cold_start_jitter_s, factor, replicas }
    }

    /// The replicas wanted at `t`: the most any window from now to a cold start ahead needs (the
    /// later ones are starting, the current one is serving). After the last window, the last
    /// window's need, so the fleet does not shrink in the replay's tail.
    pub fn desired_at(&self, t: f64) -> u32 {
        let Some(&last) = self.replicas.last() else { return 1 };
        let first = (t.max(0.0) / self.window_s) as usize;
        let until = ((t.max(0.0) + self.lead_s) / self.window_s) as usize;
        if first >= self.replicas.len() {
            return last;
        }
        self.replicas[first..=until.min(self.replicas.len() - 1)].iter().copied().max().unwrap_or(last)
    }

    /// Whether a larger factor can change nothing more: every window is at the upper bound.
    pub fn saturated(&self, max: u32) -> bool {
        self.replicas.iter().all(|&r| r >= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_asks_for_replicas_a_cold_start_before_the_demand_and_keeps_them_through_it() {
        let cfg = SimConfig { min_replicas: 1, max_replicas: 20, replica_capacity_rps: 5.0, cold_start_s: 120.0, ..SimConfig::default() };
        // Quiet for 10 minutes, 40 req/s for 5 minutes, quiet again.
        let mut d = vec![1.0; 20];
        d[10..15].fill(40.0);
        let s = Schedule::new(&d, 1.0, &cfg);
        assert_eq!(s.replicas[9], 1);
        assert_eq!(s.replicas[10], 8, "ceil(40 / 5)");
        // The burst starts at 600 s: 8 replicas are asked for at 480 s, one cold start earlier,
        // and not a second before.
        assert_eq!(s.desired_at(479.0), 1);
        assert_eq!(s.desired_at(480.0), 8);
        // Kept while the burst lasts (its last window ends at 900 s), released after.
        assert_eq!(s.desired_at(899.0), 8);
        assert_eq!(s.desired_at(900.0), 1);
        // A larger factor, within the bounds.
        assert_eq!(Schedule::new(&d, 10.0, &cfg).replicas[10], 20);
        assert!(Schedule::new(&d, 100.0, &cfg).saturated(20));
    }
}
