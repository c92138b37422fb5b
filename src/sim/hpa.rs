//! What KEDA and the Kubernetes HPA do with our number (the HPA controller's `replica_calculator.go` and `horizontal.go`), as pure arithmetic.
//!
//! Used by the demo's poller and the simulator to play the part of the cluster: AverageValue
//! `ceil(usage / target)` with the tolerance band, stabilisation windows, the scale-up and
//! scale-down rate policies over their periods (as `horizontal.go` applies them, from the scale
//! events of the last period, `selectPolicy: Max`), the [min, max] clamp and the 15 s sync
//! period the controller runs at.

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
    /// Period over which the scale-up policies count (default 15 s).
    pub scale_up_period: Duration,
    /// Scale-down policy: at most this many pods fewer per period (`None`: no pods policy).
    pub scale_down_pods: Option<u32>,
    /// Scale-down percent policy (default 1.0 = 100 %: no limit).
    pub scale_down_percent: Option<f64>,
    /// Period over which the scale-down policies count (default 15 s).
    pub scale_down_period: Duration,
    /// How often the controller syncs (`--horizontal-pod-autoscaler-sync-period`, 15 s).
    pub sync_period: Duration,
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
            scale_up_period: Duration::from_secs(15),
            scale_down_pods: None,
            scale_down_percent: Some(1.0),
            scale_down_period: Duration::from_secs(15),
            sync_period: Duration::from_secs(15),
        }
    }
}

/// One HPA's memory (its recommendations over the stabilisation windows).
#[derive(Debug, Clone)]
pub struct Hpa {
    cfg: HpaConfig,
    recommendations: VecDeque<(Duration, u32)>,
    /// Replica changes the HPA made, `(when, signed change)`, for the rate policies.
    events: VecDeque<(Duration, i64)>,
}

impl Hpa {
    /// A fresh HPA.
    pub fn new(cfg: HpaConfig) -> Self {
        Hpa { cfg, recommendations: VecDeque::new(), events: VecDeque::new() }
    }

    /// The configuration.
    pub fn config(&self) -> &HpaConfig {
        &self.cfg
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
        let desired = if proposal > current { up_floor.max(current) } else { down_ceiling.min(current) };
        let desired = self.rate_limit(now, current, desired).clamp(self.cfg.min_replicas, self.cfg.max_replicas);
        if desired != current {
            self.events.push_back((now, i64::from(desired) - i64::from(current)));
        }
        desired
    }

    /// Applies the scale-up / scale-down policies: the size at the start of each period is the
    /// current size minus the changes made within it; the most permissive policy wins.
    fn rate_limit(&mut self, now: Duration, current: u32, desired: u32) -> u32 {
        let keep = self.cfg.scale_up_period.max(self.cfg.scale_down_period);
        while self.events.front().is_some_and(|(t, _)| now.saturating_sub(*t) >= keep) {
            self.events.pop_front();
        }
        let cur = i64::from(current);
        if desired > current {
            let added: i64 =
                self.events.iter().filter(|(t, d)| *d > 0 && now.saturating_sub(*t) < self.cfg.scale_up_period).map(|e| e.1).sum();
            let start = (cur - added).max(0);
            let by_pods = start + i64::from(self.cfg.scale_up_pods);
            let by_pct = (start as f64 * (1.0 + self.cfg.scale_up_percent)).ceil() as i64;
            let limit = by_pods.max(by_pct).max(1);
            i64::from(desired).min(limit).max(cur) as u32
        } else if desired < current {
            let removed: i64 =
                self.events.iter().filter(|(t, d)| *d < 0 && now.saturating_sub(*t) < self.cfg.scale_down_period).map(|e| -e.1).sum();
            let start = cur + removed;
            let mut limit: Option<i64> = None;
            if let Some(p) = self.cfg.scale_down_pods {
                limit = Some(start - i64::from(p));
            }
            if let Some(pct) = self.cfg.scale_down_percent {
                let l = (start as f64 * (1.0 - pct)).ceil() as i64;
                limit = Some(limit.map_or(l, |x| x.min(l)));
            }
            match limit {
                Some(l) => i64::from(desired).max(l).min(cur) as u32,
                None => current,
            }
        } else {
            desired
        }
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

    #[test]
    fn scale_down_policy_limits_per_period() {
        let s = Duration::from_secs;
        let cfg = HpaConfig {
            tolerance_up: 0.0,
            tolerance_down: 0.0,
            max_replicas: 40,
            scale_down_window: Duration::ZERO,
            scale_down_pods: Some(2),
            scale_down_percent: None,
            scale_down_period: s(60),
            ..Default::default()
        };
        let mut h = Hpa::new(cfg);
        assert_eq!(h.sync(s(0), 10, 1.0, 1.0), 8, "2 pods per 60 s");
        assert_eq!(h.sync(s(15), 8, 1.0, 1.0), 8, "the period's budget is spent");
        assert_eq!(h.sync(s(60), 8, 1.0, 1.0), 6, "a new period");
        // Scale-up within one period counts earlier additions: 4 pods or 100 % of the size at the
        // period's start.
        let mut up =
            Hpa::new(HpaConfig { tolerance_up: 0.0, tolerance_down: 0.0, max_replicas: 100, scale_up_period: s(60), ..Default::default() });
        assert_eq!(up.sync(s(0), 10, 100.0, 1.0), 20);
        assert_eq!(up.sync(s(15), 20, 100.0, 1.0), 20, "100 % of the 10 at the period's start is used up");
        assert_eq!(up.sync(s(60), 20, 100.0, 1.0), 40);
    }
}
