//! What Knative's KPA does with the fleet's concurrency (`pkg/autoscaler/scaling/autoscaler.go`),
//! as pure arithmetic: a stable and a panic window over concurrency samples, panic mode that
//! never scales down, and a bounded scale-down rate. It acts on the Deployment directly (no HPA).

use std::collections::VecDeque;

use serde::Serialize;

/// Knative KPA settings (`pkg/autoscaler/scaling/autoscaler.go`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpaConfig {
    /// Target concurrency per pod (`autoscaling.knative.dev/target`).
    pub target_concurrency: f64,
    /// Target utilisation of that concurrency (default 0.7).
    pub target_utilization: f64,
    /// Stable window, seconds (60).
    pub stable_window_s: f64,
    /// Panic window, seconds (6, 10 % of the stable window).
    pub panic_window_s: f64,
    /// Panic when the panic-window demand reaches this multiple of the Ready pods (2.0).
    pub panic_threshold: f64,
    /// Largest scale-down factor per tick (2.0).
    pub max_scale_down_rate: f64,
    /// Tick (queue-proxy stats are scraped every 1-2 s), seconds.
    pub tick_s: f64,
}

impl Default for KpaConfig {
    fn default() -> Self {
        KpaConfig {
            target_concurrency: 64.0,
            target_utilization: 0.7,
            stable_window_s: 60.0,
            panic_window_s: 6.0,
            panic_threshold: 2.0,
            max_scale_down_rate: 2.0,
            tick_s: 2.0,
        }
    }
}

/// One KPA's memory: the concurrency samples of the stable window and its panic mode.
#[derive(Debug, Clone)]
pub struct Kpa {
    cfg: KpaConfig,
    /// `(when, concurrency)` over the last stable window.
    samples: VecDeque<(f64, f64)>,
    panicking: bool,
    /// When the panic-window demand last crossed the threshold.
    panic_since: f64,
    /// Most pods asked for since panic mode began (it only goes up while panicking).
    panic_max: u32,
}

impl Kpa {
    /// A fresh KPA.
    pub fn new(cfg: KpaConfig) -> Self {
        Kpa { cfg, samples: VecDeque::new(), panicking: false, panic_since: 0.0, panic_max: 0 }
    }

    /// The configuration.
    pub fn config(&self) -> &KpaConfig {
        &self.cfg
    }

    /// One tick at `t`: records the fleet's `concurrency` and returns the pods wanted, given
    /// `ready` pods now, clamped to `[min, max]`.
    pub fn decide(&mut self, t: f64, concurrency: f64, ready: u32, min: u32, max: u32) -> u32 {
        let k = &self.cfg;
        self.samples.push_back((t, concurrency));
        while self.samples.front().is_some_and(|(s, _)| t - s >= k.stable_window_s) {
            self.samples.pop_front();
        }
        let avg = |w: f64| {
            let xs: Vec<f64> = self.samples.iter().filter(|(s, _)| t - s < w).map(|x| x.1).collect();
            if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
        };
        let per_pod = (k.target_concurrency * k.target_utilization).max(1e-9);
        let stable = (avg(k.stable_window_s) / per_pod).ceil() as u32;
        let panic = (avg(k.panic_window_s) / per_pod).ceil() as u32;
        let ready_f = f64::from(ready.max(1));
        if f64::from(panic) / ready_f >= k.panic_threshold {
            if !self.panicking {
                self.panicking = true;
                self.panic_max = 0;
            }
            self.panic_since = t;
        } else if self.panicking && t - self.panic_since >= k.stable_window_s {
            self.panicking = false;
        }
        let mut desired = if self.panicking {
            self.panic_max = self.panic_max.max(panic).max(ready);
            self.panic_max
        } else {
            stable
        };
        let floor = (ready_f / k.max_scale_down_rate).floor() as u32;
        desired = desired.max(floor);
        desired.clamp(min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_panics_and_panic_mode_does_not_scale_down() {
        let mut k = Kpa::new(KpaConfig::default());
        // 44.8 concurrency per pod; 2 pods Ready, a burst of 400 in flight.
        assert_eq!(k.decide(0.0, 400.0, 2, 1, 20), 9);
        // The burst ends; within the stable window panic mode holds the size.
        assert_eq!(k.decide(2.0, 0.0, 9, 1, 20), 9);
    }
}
