//! What KEDA and the Kubernetes HPA do with our number (spec section 3), as pure arithmetic.
//!
//! Used by the demo's poller and the simulator to play the part of the cluster: AverageValue
//! `ceil(usage / target)` with the tolerance band, stabilisation windows, the scale-up rate
//! policy and the [min, max] clamp.

use std::{collections::VecDeque, time::Duration};

/// HPA settings (KEDA's `advanced.horizontalPodAutoscalerConfig.behavior`).
#[derive(Debug, Clone)]
pub struct HpaConfig {
    /// Tolerance above 1 inside which the HPA keeps its size (cluster default 0.1).
    pub tolerance_up: f64,
    /// Tolerance below 1.
    pub tolerance_down: f64,
    /// Lower bound (KEDA: minReplicaCount, or 1).
    pub min_replicas: u32,
    /// Upper bound (KEDA: maxReplicaCount).
    pub max_replicas: u32,
    /// Scale-up stabilisation window (behavior default 0).
    pub scale_up_window: Duration,
    /// Scale-down stabilisation window (default 300 s).
    pub scale_down_window: Duration,
    /// Scale-up policy: at most `max(pods, percent x current)` more per `period`.
    pub scale_up_pods: u32,
    /// Scale-up percent policy.
    pub scale_up_percent: f64,
}

impl Default for HpaConfig {
    /// Kubernetes' defaults with a `behavior` block: tolerance 0.1, up window 0 (4 pods or 100 %
    /// per 15 s), down window 300 s.
    fn default() -> Self {
        HpaConfig {
            tolerance_up: 0.1,
            tolerance_down: 0.1,
            min_replicas: 1,
            max_replicas: 100,
            scale_up_window: Duration::ZERO,
            scale_down_window: Duration::from_secs(300),
            scale_up_pods: 4,
            scale_up_percent: 1.0,
        }
    }
}

/// One HPA's memory (its recommendations over the stabilisation windows).
#[derive(Debug, Clone)]
pub struct Hpa {
    cfg: HpaConfig,
    recommendations: VecDeque<(Duration, u32)>,
}

impl Hpa {
    /// A fresh HPA.
    pub fn new(cfg: HpaConfig) -> Self {
        Hpa { cfg, recommendations: VecDeque::new() }
    }

    /// The raw AverageValue proposal: keep `current` inside the tolerance band, else
    /// `ceil(usage / target)`.
    pub fn proposal(&self, current: u32, usage: f64, target: f64) -> u32 {
        if current == 0 {
            return (usage / target).ceil().max(0.0) as u32;
        }
        let ratio = usage / (target * f64::from(current));
        if ratio >= 1.0 - self.cfg.tolerance_down && ratio <= 1.0 + self.cfg.tolerance_up {
            current
        } else {
            // Milli-precision as KEDA sends it, then ceil.
            ((usage / target * 1000.0).round() / 1000.0).ceil() as u32
        }
    }

    /// The replica count the HPA sets at `now` (a sync), given the metric sum `usage`.
    pub fn sync(&mut self, now: Duration, current: u32, usage: f64, target: f64) -> u32 {
        let proposal = self.proposal(current, usage, target);
        self.recommendations.push_back((now, proposal));
        let horizon = self.cfg.scale_down_window.max(self.cfg.scale_up_window);
        while self.recommendations.front().is_some_and(|(t, _)| now.saturating_sub(*t) > horizon) {
            self.recommendations.pop_front();
        }
        let within = |w: Duration| self.recommendations.iter().filter(move |(t, _)| now.saturating_sub(*t) <= w).map(|(_, r)| *r);
        // Scale up to the lowest recommendation of the up window; down to the highest of the down window.
        let up_floor = within(self.cfg.scale_up_window).min().unwrap_or(proposal);
        let down_ceiling = within(self.cfg.scale_down_window).max().unwrap_or(proposal);
        let mut desired = if proposal > current { up_floor.max(current) } else { down_ceiling.min(current) };
        let up_limit = current.saturating_add(self.cfg.scale_up_pods.max((f64::from(current) * self.cfg.scale_up_percent).ceil() as u32));
        desired = desired.min(up_limit.max(1));
        desired.clamp(self.cfg.min_replicas, self.cfg.max_replicas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_tolerance() {
        let h = Hpa::new(HpaConfig::default());
        // target 5, 10 replicas: usage 53 -> ratio 1.06 -> stay; usage 56 -> ceil(11.2) = 12.
        assert_eq!(h.proposal(10, 53.0, 5.0), 10);
        assert_eq!(h.proposal(10, 56.0, 5.0), 12);
        // Reporting a replica count with target 1: 10 -> 11 is swallowed by the 10 % band.
        assert_eq!(h.proposal(10, 11.0, 1.0), 10);
        let zero = Hpa::new(HpaConfig { tolerance_up: 0.0, tolerance_down: 0.0, ..Default::default() });
        assert_eq!(zero.proposal(10, 11.0, 1.0), 11);
    }

    #[test]
    fn scale_down_waits_for_the_window_and_up_is_rate_limited() {
        let s = Duration::from_secs;
        let mut h = Hpa::new(HpaConfig { tolerance_up: 0.0, tolerance_down: 0.0, min_replicas: 2, max_replicas: 20, ..Default::default() });
        assert_eq!(h.sync(s(0), 2, 20.0, 1.0), 6, "up by at most max(4 pods, 100%)");
        assert_eq!(h.sync(s(15), 6, 20.0, 1.0), 12);
        assert_eq!(h.sync(s(30), 12, 3.0, 1.0), 12, "down held by the 300 s window");
        assert_eq!(h.sync(s(340), 12, 3.0, 1.0), 3);
        assert_eq!(h.sync(s(355), 3, 0.0, 1.0), 3, "the 3 of 15 s ago is still in the window");
        assert_eq!(h.sync(s(700), 3, 0.0, 1.0), 2, "clamped to min");
    }
}
