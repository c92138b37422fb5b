//! One ScaledObject's decision state, fed one tick at a time: the pods' scrapes in, an
//! explained decision (or the reason there is none) out.
//!
//! Why one type for it: the server's collector and the simulator must end a tick identically
//! (record what each pod answered, forget pods that left, make no decision when no pod answered,
//! decide), and the next steps (a forecaster, a learned capacity) keep state across ticks. Both
//! own a [`Decider`] and call [`Decider::tick`]; neither repeats any of its steps.

use std::time::Duration;

use super::{
    calibrate::{CalibrationState, Calibrator, CapacityMode, Reading, RestoreError},
    policy::{self, Decision, NoDecision, PolicyConfig, Signal},
    signals::{FleetSignals, quantile},
};
use crate::read::vllm::PodSample;

/// Why a tick produced no decision. The caller serves the previous decision until it goes
/// stale, then answers `UNAVAILABLE`: never a zero.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TickError {
    /// No pod is Ready with an IP.
    #[error("no Ready pod with an IP ({starting} not ready)")]
    NoReadyPod {
        /// Pods that exist but are not Ready.
        starting: u32,
    },
    /// Pods are Ready but none of them answered.
    #[error("none of {ready} ready pods could be scraped; first error: {first_error}")]
    NoPodAnswered {
        /// Ready pods.
        ready: usize,
        /// The first failure, naming the pod.
        first_error: String,
    },
    /// Pods answered, but no enabled signal has data.
    #[error(transparent)]
    Policy(#[from] NoDecision),
}

/// What one tick saw of the fleet.
#[derive(Debug)]
pub struct Tick<'a, E> {
    /// Time since the caller's origin (wall clock in the server, virtual in the simulator).
    pub now: Duration,
    /// Pods that exist but are not Ready (they count towards the current size).
    pub starting: u32,
    /// Every Ready pod with what its scrape gave: a sample, or the failure (naming the cause).
    pub pods: Vec<(&'a str, Result<PodSample, E>)>,
    /// GPU activity (0..1) of the Ready pods it was found for.
    pub gpus: Vec<(&'a str, f64)>,
}

/// Signal histories, the learned capacity and the policy of one ScaledObject.
#[derive(Debug)]
pub struct Decider {
    policy: PolicyConfig,
    signals: FleetSignals,
    /// With `targetTokensPerSecond: auto`: the estimator whose capacity replaces the tokens/s
    /// target on every tick.
    calibrator: Option<Calibrator>,
    /// The last decision asked for more than `maxReplicas` (the estimator ignores such ticks).
    pressed_at_max: bool,
}

impl Decider {
    /// A decider with no history, for `policy`, reading the latency quantile `quantile` over
    /// histogram deltas of `latency_window`. With an `auto` capacity, the learning starts at the
    /// policy's tokens/s target.
    pub fn new(policy: PolicyConfig, latency_window: Duration, quantile: f64) -> Self {
        let calibrator = match policy.capacity {
            CapacityMode::Fixed => None,
            CapacityMode::Auto { slo } => {
                Some(Calibrator::new(slo, policy.targets.get(Signal::TokensPerSecond), latency_window.as_secs_f64()))
            }
        };
        Decider { policy, signals: FleetSignals::new(latency_window, quantile), calibrator, pressed_at_max: false }
    }

    /// The policy it decides with (with `auto`, the tokens/s target is the learned capacity).
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// The learned capacity in tokens/s per replica (`None` with a fixed target).
    pub fn learned_capacity(&self) -> Option<f64> {
        self.calibrator.as_ref().map(Calibrator::capacity)
    }

    /// What the capacity estimator learned, to persist (`None` with a fixed target). Persisting
    /// it is the caller's: the predictive-scaling work stores it with the forecaster's history.
    pub fn capacity_snapshot(&self) -> Option<CalibrationState> {
        self.calibrator.as_ref().map(Calibrator::snapshot)
    }

    /// Continues from a persisted snapshot; refused (and nothing changed) when the target is
    /// fixed, the configured start changed, or the snapshot is out of bounds.
    pub fn restore_capacity(&mut self, state: CalibrationState) -> Result<(), RestoreError> {
        let c = self.calibrator.as_mut().ok_or(RestoreError::NotAuto)?;
        c.restore(state)?;
        self.policy.targets.set(Signal::TokensPerSecond, c.capacity());
        Ok(())
    }

    /// Ends a tick: records what each Ready pod answered, forgets pods that are no longer
    /// Ready, and decides, unless no pod answered.
    pub fn tick<E: std::fmt::Display>(&mut self, tick: Tick<'_, E>) -> Result<Decision, TickError> {
        let Tick { now, starting, pods, gpus } = tick;
        let ready: Vec<&str> = pods.iter().map(|(p, _)| *p).collect();
        let mut answered = 0usize;
        let mut first_error = None;
        for (pod, result) in pods {
            match result {
                Ok(sample) => {
                    answered += 1;
                    self.signals.record(pod, now, sample);
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| format!("{pod}: {e}"));
                }
            }
        }
        for (pod, activity) in gpus {
            self.signals.record_gpu(pod, now, activity);
        }
        self.signals.retain(|n| ready.contains(&n));
        if answered == 0 {
            return Err(match first_error {
                None => TickError::NoReadyPod { starting },
                Some(first_error) => TickError::NoPodAnswered { ready: ready.len(), first_error },
            });
        }
        let obs = self.signals.observe(ready.iter().copied(), starting, now);
        if let Some(c) = &mut self.calibrator {
            let window = obs.latency_window.as_ref();
            c.observe(Reading {
                now_s: now.as_secs_f64(),
                ready: obs.ready_pods,
                starting: obs.starting_pods,
                tokens: obs.totals.get(Signal::TokensPerSecond).map(|t| (t, obs.reporting.get(Signal::TokensPerSecond))),
                quantile_s: window.and_then(|h| quantile(c.slo().quantile, h)),
                requests: window.map_or(0.0, |h| h.buckets.last().map_or(h.count, |b| b.1)),
                at_max: self.pressed_at_max,
            });
            self.policy.targets.set(Signal::TokensPerSecond, c.capacity());
        }
        let mut d = policy::decide(&self.policy, &obs)?;
        self.pressed_at_max = d.clamped && d.desired_replicas == self.policy.max_replicas && d.with_peak > d.desired_replicas.into();
        if let Some(c) = &self.calibrator {
            d.capacity = Some(c.report());
            d.reason.push_str("; ");
            d.reason.push_str(&c.explain(now.as_secs_f64()));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decide::calibrate::{CalibrationSlo, SloMetric},
        read::vllm::HistogramSnapshot,
    };

    fn sample(waiting: f64) -> PodSample {
        PodSample { waiting, ..PodSample::default() }
    }

    #[test]
    fn a_tick_without_ready_pods_or_answers_is_no_decision_naming_why() {
        let mut d = Decider::new(PolicyConfig::default(), Duration::from_secs(60), 0.99);
        let none: Tick<'_, String> = Tick { now: Duration::ZERO, starting: 2, pods: vec![], gpus: vec![] };
        assert_eq!(d.tick(none), Err(TickError::NoReadyPod { starting: 2 }));
        let failed = Tick { now: Duration::ZERO, starting: 0, pods: vec![("a", Err("timeout")), ("b", Err("status 500"))], gpus: vec![] };
        let err = d.tick(failed).unwrap_err();
        assert_eq!(err, TickError::NoPodAnswered { ready: 2, first_error: "a: timeout".into() });
        assert_eq!(err.to_string(), "none of 2 ready pods could be scraped; first error: a: timeout");
    }

    #[test]
    fn a_pod_that_left_the_fleet_no_longer_counts() {
        let p = PolicyConfig { peak_factor: 1.0, ..PolicyConfig::default() };
        let mut d = Decider::new(p, Duration::from_secs(60), 0.99);
        let both = Tick::<String> {
            now: Duration::from_secs(5),
            starting: 0,
            pods: vec![("a", Ok(sample(40.0))), ("b", Ok(sample(40.0)))],
            gpus: vec![],
        };
        assert_eq!(d.tick(both).unwrap().desired_replicas, 8);
        let one = Tick::<String> { now: Duration::from_secs(10), starting: 0, pods: vec![("a", Ok(sample(40.0)))], gpus: vec![] };
        assert_eq!(d.tick(one).unwrap().desired_replicas, 4, "b's last sample is gone with b");
    }

    /// A pod that has served `tokens` tokens and `n` requests, a 100th of them slower than `slow` s.
    fn busy(tokens: f64, n: f64, slow: f64) -> PodSample {
        let buckets = vec![(0.5, 0.9 * n), (slow, 0.99 * n), (slow * 2.0, n), (f64::INFINITY, n)];
        PodSample { tokens_total: Some(tokens), latency: Some(HistogramSnapshot { buckets, count: n, sum: 0.0 }), ..PodSample::default() }
    }

    #[test]
    fn an_auto_capacity_decision_shows_the_learned_capacity_its_last_update_and_evidence_in_reason_and_json() {
        let slo = CalibrationSlo { metric: SloMetric::Ttft, bound_s: 2.0, quantile: 0.99 };
        let mut p = PolicyConfig { capacity: CapacityMode::Auto { slo }, ..PolicyConfig::default() };
        p.targets.set(Signal::TokensPerSecond, 5000.0);
        let mut d = Decider::new(p, Duration::from_secs(60), 0.99);
        assert_eq!(d.learned_capacity(), Some(5000.0));
        // Two pods serving 4000 tokens/s each, 300 requests each per 15 s, p99 3 s: a breach.
        let mut last = None;
        for i in 0..5u32 {
            let k = f64::from(i);
            let tick = Tick::<String> {
                now: Duration::from_secs(15 * u64::from(i)),
                starting: 0,
                pods: vec![("a", Ok(busy(60_000.0 * k, 300.0 * k, 3.0))), ("b", Ok(busy(60_000.0 * k, 300.0 * k, 3.0)))],
                gpus: vec![],
            };
            last = Some(d.tick(tick).unwrap());
        }
        let dec = last.unwrap();
        assert_eq!(d.learned_capacity(), Some(4500.0), "one step down on the breach");
        assert_eq!(d.policy().targets.get(Signal::TokensPerSecond), 4500.0, "the target in use is the learned one");
        assert!(dec.reason.contains("capacity auto 4500 tok/s/replica (start 5000); last update"), "{}", dec.reason);
        assert!(dec.reason.contains("5000 -> 4500 by breach; now p99 ttft"), "{}", dec.reason);
        assert!(dec.reason.contains("at 4000 tok/s/replica over 2400 requests"), "{}", dec.reason);
        let json = serde_json::to_value(&dec).unwrap();
        let cap = &json["capacity"];
        assert_eq!(cap["learned"], 4500.0);
        assert_eq!(cap["start"], 5000.0);
        assert_eq!(cap["last_update"]["rule"]["kind"], "breach");
        assert_eq!(cap["evidence"]["requests"], 2400.0, "both pods, four 15 s deltas in the 60 s window");
        assert_eq!(cap["evidence"]["load_per_replica"], 4000.0);
        assert!(cap["evidence"]["quantile_s"].as_f64().unwrap() > 2.0);
        // The snapshot carries it to a new decider with the same configuration.
        let mut fresh = Decider::new(d.policy().clone(), Duration::from_secs(60), 0.99);
        assert_eq!(
            fresh.restore_capacity(d.capacity_snapshot().unwrap()),
            Err(RestoreError::StartChanged { snapshot: 5000.0, configured: 4500.0 })
        );
        let mut p = d.policy().clone();
        p.targets.set(Signal::TokensPerSecond, 5000.0);
        let mut fresh = Decider::new(p, Duration::from_secs(60), 0.99);
        fresh.restore_capacity(d.capacity_snapshot().unwrap()).unwrap();
        assert_eq!(fresh.learned_capacity(), Some(4500.0));
        assert_eq!(fresh.policy().targets.get(Signal::TokensPerSecond), 4500.0);
    }

    #[test]
    fn a_fixed_target_has_no_capacity_to_show_or_restore() {
        let mut d = Decider::new(PolicyConfig::default(), Duration::from_secs(60), 0.99);
        assert_eq!((d.learned_capacity(), d.capacity_snapshot()), (None, None));
        let state = Decider::new(
            PolicyConfig {
                capacity: CapacityMode::Auto { slo: CalibrationSlo { metric: SloMetric::Ttft, bound_s: 2.0, quantile: 0.99 } },
                ..PolicyConfig::default()
            },
            Duration::from_secs(60),
            0.99,
        )
        .capacity_snapshot()
        .unwrap();
        assert_eq!(d.restore_capacity(state), Err(RestoreError::NotAuto));
        let tick = Tick::<String> { now: Duration::from_secs(5), starting: 0, pods: vec![("a", Ok(sample(4.0)))], gpus: vec![] };
        assert_eq!(d.tick(tick).unwrap().capacity, None);
    }
}
