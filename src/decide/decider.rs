//! One ScaledObject's decision state, fed one tick at a time: the pods' scrapes in, an
//! explained decision (or the reason there is none) out.
//!
//! Why one type for it: the server's collector and the simulator must end a tick identically
//! (record what each pod answered, forget pods that left, make no decision when no pod answered,
//! decide), and the next steps (a forecaster, a learned capacity) keep state across ticks. Both
//! own a [`Decider`] and call [`Decider::tick`]; neither repeats any of its steps.

use std::time::Duration;

use super::{
    policy::{self, Decision, NoDecision, PolicyConfig},
    signals::FleetSignals,
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

/// Signal histories plus the policy of one ScaledObject.
#[derive(Debug)]
pub struct Decider {
    policy: PolicyConfig,
    signals: FleetSignals,
}

impl Decider {
    /// A decider with no history, for `policy`, reading the latency quantile `quantile` over
    /// histogram deltas of `latency_window`.
    pub fn new(policy: PolicyConfig, latency_window: Duration, quantile: f64) -> Self {
        Decider { policy, signals: FleetSignals::new(latency_window, quantile) }
    }

    /// The policy it decides with.
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
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
        Ok(policy::decide(&self.policy, &obs)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
