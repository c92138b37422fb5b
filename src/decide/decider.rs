//! One ScaledObject's decision state, fed one tick at a time: the pods' scrapes in, an
//! explained decision (or the reason there is none) out.
//!
//! Why one type for it: the server's collector and the simulator must end a tick identically
//! (record what each pod answered, forget pods that left, make no decision when no pod answered,
//! decide), and the next steps (a forecaster, a learned capacity) keep state across ticks. Both
//! own a [`Decider`] and call [`Decider::tick`]; neither repeats any of its steps.

use std::time::Duration;

use super::{
    calibrate::{ByMetric, CalibrationState, Calibrator, CapacityMode, Reading, RestoreError, SloMetric},
    forecast::{self, ForecastMode, Forecaster, HistorySnapshot},
    policy::{self, ColdStartSource, Decision, NoDecision, Outcome, PolicyConfig, Signal, SignalMap},
    signals::{FleetSignals, quantile},
};
use crate::read::vllm::PodSample;

/// The longest measured cold start the forecast floor plans for.
const MAX_COLD_START: Duration = Duration::from_secs(3600);

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
    /// Calendar time: since the Unix epoch in the server, source time in the simulator. The
    /// forecaster's minute buckets are aligned to it, so a history persisted by one process
    /// continues in the next.
    pub calendar: Duration,
    /// Pods that exist but are not Ready (they count towards the current size).
    pub starting: u32,
    /// Creation-to-Ready times of the Ready pods, where discovery knows them (the forecast
    /// floor plans for their 90th percentile unless `coldStart` is set).
    pub cold_starts: Vec<Duration>,
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
    /// Demand history and forecast (`None` with `forecastMode: off`).
    forecaster: Option<Forecaster>,
    /// When the first tick with an answer came (warm-up is measured from it).
    first_answer: Option<Duration>,
    /// Signals that have had a value since then.
    seen: SignalMap<bool>,
    /// How long after the first answer a signal without a value is still warming up (the
    /// latency window: after it, no value means no data, not "not yet").
    warmup: Duration,
    /// The 90th percentile of the Ready pods' creation-to-Ready times, and over how many.
    measured_cold_start: Option<(Duration, usize)>,
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
        let forecaster = (policy.forecast.mode != ForecastMode::Off).then(|| Forecaster::new(policy.forecast.clone()));
        Decider {
            policy,
            signals: FleetSignals::new(latency_window, quantile),
            calibrator,
            pressed_at_max: false,
            forecaster,
            first_answer: None,
            seen: SignalMap::default(),
            // The first values come after two scrapes; a long latency window must not hold a
            // needed scale-down for its whole length after every restart.
            warmup: latency_window.min(Duration::from_secs(60)),
            measured_cold_start: None,
        }
    }

    /// The forecaster (`None` with `forecastMode: off`).
    pub fn forecaster(&self) -> Option<&Forecaster> {
        self.forecaster.as_ref()
    }

    /// The forecast configuration (`None` with `forecastMode: off`): to restore a history into
    /// a [`Forecaster`] away from the decider (a week's restore takes seconds of CPU).
    pub fn forecast_spec(&self) -> Option<&forecast::ForecastSpec> {
        self.forecaster.as_ref().map(Forecaster::spec)
    }

    /// Takes a forecaster restored elsewhere; refused when the forecast is off, its
    /// configuration differs from this decider's, or this decider has recorded history already.
    pub fn install_forecaster(&mut self, f: Forecaster) -> Result<(), forecast::RestoreError> {
        match &mut self.forecaster {
            None => Err(forecast::RestoreError::Off),
            Some(own) if own.spec() != f.spec() => Err(forecast::RestoreError::OtherSpec),
            Some(own) if own.history().end() > 0 => Err(forecast::RestoreError::NotEmpty),
            Some(own) => {
                *own = f;
                Ok(())
            }
        }
    }

    /// The demand history to persist (`None` with `forecastMode: off`).
    pub fn history_snapshot(&self) -> Option<HistorySnapshot> {
        self.forecaster.as_ref().map(Forecaster::snapshot)
    }

    /// Continues from a persisted demand history (see [`Forecaster::restore`]); refused whole
    /// when the history is foreign or bad, or the forecast is off.
    pub fn restore_history(&mut self, snap: &HistorySnapshot) -> Result<(), forecast::RestoreError> {
        match &mut self.forecaster {
            Some(f) => f.restore(snap),
            None => Err(forecast::RestoreError::Off),
        }
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
        let Tick { now, calendar, starting, cold_starts, pods, gpus } = tick;
        if !cold_starts.is_empty() {
            let mut c = cold_starts;
            c.sort();
            // At most an hour, as the `coldStart` key: a pod whose readiness flapped days later
            // reads as a days-long "cold start".
            let p90 = c[((c.len() - 1) as f64 * 0.9).round() as usize].min(MAX_COLD_START);
            self.measured_cold_start = Some((p90, c.len()));
        }
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
            let slo = c.slo();
            let windows = &obs.slo_windows;
            let window = |m: SloMetric| match m {
                SloMetric::Ttft => windows.ttft.as_ref(),
                SloMetric::Tpot => windows.tpot.as_ref(),
            };
            let mut quantiles = ByMetric::default();
            for (m, _) in slo.bounded() {
                *quantiles.get_mut(m) = window(m).and_then(|h| quantile(slo.quantile(), h));
            }
            // The requests behind the thinnest of the bounded histograms.
            let requests = slo
                .bounded()
                .map(|(m, _)| window(m).map_or(0.0, |h| h.buckets.last().map_or(h.count, |b| b.1)))
                .fold(f64::INFINITY, f64::min);
            c.observe(Reading {
                now_s: now.as_secs_f64(),
                ready: obs.ready_pods,
                starting: obs.starting_pods,
                tokens: obs.totals.get(Signal::TokensPerSecond).map(|t| (t, obs.reporting.get(Signal::TokensPerSecond))),
                quantiles,
                requests,
                at_max: self.pressed_at_max,
            });
            self.policy.targets.set(Signal::TokensPerSecond, c.capacity());
        }
        let first = *self.first_answer.get_or_insert(now);
        for s in Signal::ALL {
            if obs.totals.get(s).is_some() {
                self.seen.set(s, true);
            }
        }
        let mut d = policy::decide(&self.policy, &obs)?;
        self.pressed_at_max = d.clamped && d.desired_replicas == self.policy.max_replicas && d.with_peak > d.desired_replicas.into();
        if let Some(c) = &self.calibrator {
            d.capacity = Some(c.report());
            d.reason.push_str("; ");
            d.reason.push_str(&c.explain(now.as_secs_f64()));
        }
        if now.saturating_sub(first) < self.warmup {
            self.hold_while_warming(&mut d);
        }
        if let Some(f) = &mut self.forecaster {
            // Demand is recorded only when every Ready pod reported it: a partial sum would
            // read the missing pods as zero.
            let tokens = Signal::TokensPerSecond;
            if let Some(t) = obs.totals.get(tokens).filter(|_| obs.reporting.get(tokens) == obs.ready_pods) {
                f.observe(calendar, t);
            }
            let spec = &self.policy.forecast;
            let (cold, from) = match self.measured_cold_start {
                _ if spec.cold_start_given => (spec.cold_start, ColdStartSource::Key),
                Some((c, pods)) => (c, ColdStartSource::Measured { pods }),
                None => (spec.cold_start, ColdStartSource::Default),
            };
            policy::apply_forecast_floor(&self.policy, &mut d, f.outlook(), cold, from, calendar.as_secs() / forecast::BUCKET_S);
        }
        Ok(d)
    }

    /// While an enabled signal has not had its first value (a rate needs two scrapes, latency a
    /// window), the blend lacks it and may ask for fewer replicas than the full blend would: the
    /// fleet is held at its size instead, and the decision says so. Growth still goes through.
    fn hold_while_warming(&self, d: &mut Decision) {
        d.warming_up =
            Signal::ALL.into_iter().filter(|s| s.needs_history() && self.policy.weights.get(*s) > 0.0 && !self.seen.get(*s)).collect();
        if d.warming_up.is_empty() || d.desired_replicas >= d.current_replicas {
            return;
        }
        let held = d.current_replicas.clamp(self.policy.min_replicas, self.policy.max_replicas);
        if held <= d.desired_replicas {
            return;
        }
        let names: Vec<&str> = d.warming_up.iter().map(|s| s.as_str()).collect();
        d.reason.push_str(&format!(
            "; holding at {held} (not {}): {} still warming up since this scaler started, the full blend could ask for more",
            d.desired_replicas,
            names.join(", ")
        ));
        d.desired_replicas = held;
        d.outcome = Outcome::Hold;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        decide::calibrate::CalibrationSlo,
        read::vllm::{HistogramSnapshot, SloLatency},
    };

    fn sample(waiting: f64) -> PodSample {
        PodSample { waiting, ..PodSample::default() }
    }

    #[test]
    fn a_tick_without_ready_pods_or_answers_is_no_decision_naming_why() {
        let mut d = Decider::new(PolicyConfig::default(), Duration::from_secs(60), 0.99);
        let none: Tick<'_, String> =
            Tick { now: Duration::ZERO, calendar: Duration::ZERO, starting: 2, cold_starts: vec![], pods: vec![], gpus: vec![] };
        assert_eq!(d.tick(none), Err(TickError::NoReadyPod { starting: 2 }));
        let failed = Tick {
            now: Duration::ZERO,
            calendar: Duration::ZERO,
            starting: 0,
            cold_starts: vec![],
            pods: vec![("a", Err("timeout")), ("b", Err("status 500"))],
            gpus: vec![],
        };
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
            calendar: Duration::from_secs(5),
            starting: 0,
            cold_starts: vec![],
            pods: vec![("a", Ok(sample(40.0))), ("b", Ok(sample(40.0)))],
            gpus: vec![],
        };
        assert_eq!(d.tick(both).unwrap().desired_replicas, 8);
        let one = Tick::<String> {
            now: Duration::from_secs(10),
            calendar: Duration::from_secs(10),
            starting: 0,
            cold_starts: vec![],
            pods: vec![("a", Ok(sample(40.0)))],
            gpus: vec![],
        };
        assert_eq!(d.tick(one).unwrap().desired_replicas, 4, "b's last sample is gone with b");
    }

    /// A pod that has served `tokens` tokens and `n` requests, a 100th of them slower than `slow` s.
    fn busy(tokens: f64, n: f64, slow: f64) -> PodSample {
        let buckets = vec![(0.5, 0.9 * n), (slow, 0.99 * n), (slow * 2.0, n), (f64::INFINITY, n)];
        let hist = HistogramSnapshot { buckets, count: n, sum: 0.0 };
        let slo_latency = SloLatency { ttft: Some(hist.clone()), tpot: None };
        PodSample { tokens_total: Some(tokens), latency: Some(hist), slo_latency, ..PodSample::default() }
    }

    #[test]
    fn an_auto_capacity_decision_shows_the_learned_capacity_its_last_update_and_evidence_in_reason_and_json() {
        let slo = CalibrationSlo::ttft(2.0, 0.99);
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
                calendar: Duration::from_secs(15 * u64::from(i)),
                starting: 0,
                cold_starts: vec![],
                pods: vec![("a", Ok(busy(60_000.0 * k, 300.0 * k, 3.0))), ("b", Ok(busy(60_000.0 * k, 300.0 * k, 3.0)))],
                gpus: vec![],
            };
            last = Some(d.tick(tick).unwrap());
        }
        let dec = last.unwrap();
        assert_eq!(d.learned_capacity(), Some(4500.0), "one step down on the breach");
        assert_eq!(d.policy().targets.get(Signal::TokensPerSecond), 4500.0, "the target in use is the learned one");
        assert!(dec.reason.contains("capacity auto 4500 tok/s/replica (start 5000); last update"), "{}", dec.reason);
        assert!(dec.reason.contains("5000 -> 4500 by ttft breach; now p99 ttft"), "{}", dec.reason);
        assert!(dec.reason.contains("at 4000 tok/s/replica over 2400 requests"), "{}", dec.reason);
        let json = serde_json::to_value(&dec).unwrap();
        let cap = &json["capacity"];
        assert_eq!(cap["learned"], 4500.0);
        assert_eq!(cap["start"], 5000.0);
        assert_eq!(cap["last_update"]["rule"]["kind"], "breach");
        assert_eq!(cap["evidence"]["requests"], 2400.0, "both pods, four 15 s deltas in the 60 s window");
        assert_eq!(cap["evidence"]["load_per_replica"], 4000.0);
        assert!(cap["evidence"]["quantiles"]["ttft"].as_f64().unwrap() > 2.0);
        assert_eq!(cap["fits"][0]["metric"], "ttft");
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

    fn ticked(now_s: u64, starting: u32, pods: Vec<(&str, PodSample)>) -> Tick<'_, String> {
        let now = Duration::from_secs(now_s);
        Tick { now, calendar: now, starting, cold_starts: vec![], pods: pods.into_iter().map(|(n, s)| (n, Ok(s))).collect(), gpus: vec![] }
    }

    #[test]
    fn while_a_signal_warms_up_after_a_start_the_fleet_is_held_not_shrunk_and_the_decision_says_why() {
        // A scaler (re)started over a fleet of 7 (4 Ready, 3 starting): the queue is empty, so
        // the queue alone asks for the minimum; tokens/s needs a second scrape.
        let mut d = Decider::new(PolicyConfig::default(), Duration::from_secs(60), 0.99);
        let idle = |tokens: f64| PodSample { waiting: 0.0, tokens_total: Some(tokens), ..PodSample::default() };
        let first = d.tick(ticked(0, 3, vec![("a", idle(0.0)), ("b", idle(0.0)), ("c", idle(0.0)), ("d", idle(0.0))])).unwrap();
        assert_eq!(first.desired_replicas, 7, "{}", first.reason);
        assert_eq!(first.warming_up, vec![Signal::TokensPerSecond, Signal::Latency]);
        assert!(first.reason.contains("holding at 7 (not 2): tokens_per_second, latency still warming up"), "{}", first.reason);
        // Growth is never held back.
        let busy = PodSample { waiting: 60.0, tokens_total: Some(50_000.0), ..PodSample::default() };
        let grow = d.tick(ticked(5, 3, vec![("a", busy.clone()), ("b", busy.clone()), ("c", busy.clone()), ("d", busy)])).unwrap();
        assert!(grow.desired_replicas > 7, "{}", grow.reason);
        // After the latency window, a signal without data is no data, not "not yet".
        let late = d.tick(ticked(65, 0, vec![("a", idle(50_000.0)), ("b", idle(50_000.0))])).unwrap();
        assert_eq!(late.desired_replicas, 2, "{}", late.reason);
        assert!(late.warming_up.is_empty());
    }

    /// A decider with `mode`, restored from `days` of 50,000 +- 20,000 tokens/s with a daily
    /// period (a seasonal model forecasts it far better than "as 15 minutes ago").
    fn forecasting(mode: ForecastMode, shape: impl Fn(u64) -> f32) -> Decider {
        let mut p = PolicyConfig::default();
        p.forecast.mode = mode;
        let mut d = Decider::new(p, Duration::from_secs(60), 0.99);
        let snap = HistorySnapshot {
            version: HistorySnapshot::VERSION,
            bucket_s: 60,
            start: 0,
            values: (0..2880).map(|m| Some(shape(m))).collect(),
        };
        d.restore_history(&snap).unwrap();
        d
    }

    fn daily(m: u64) -> f32 {
        (50_000.0 + 20_000.0 * (m as f64 / 1440.0 * std::f64::consts::TAU).sin()) as f32
    }

    #[test]
    fn the_forecast_floor_raises_the_decision_only_in_forecast_and_scale_mode() {
        let quiet = |_| PodSample { waiting: 0.0, kv_usage: Some(0.1), ..PodSample::default() };
        let at = 2880 * 60;
        let mut scale = forecasting(ForecastMode::ForecastAndScale, daily);
        let dec = scale.tick(ticked(at, 0, vec![("a", quiet(0)), ("b", quiet(1))])).unwrap();
        let f = dec.forecast.as_ref().unwrap();
        // ~50,600 tok/s over the next 7 minutes x 1.5 / 10,500 = 7.2 -> 8.
        assert_eq!((f.floor, f.skilled, f.bound, dec.desired_replicas), (Some(8), true, true, 8), "{}", dec.reason);
        assert!(dec.reason.contains("= floor 8 (binds: 2 -> 8)"), "{}", dec.reason);
        let mut only = forecasting(ForecastMode::ForecastOnly, daily);
        let dec = only.tick(ticked(at, 0, vec![("a", quiet(0)), ("b", quiet(1))])).unwrap();
        let f = dec.forecast.as_ref().unwrap();
        assert_eq!((f.floor, f.bound, dec.desired_replicas), (Some(8), false, 2), "{}", dec.reason);
        assert!(dec.reason.contains("(forecast only: not acted on)"), "{}", dec.reason);
        // Without coldStart, the floor plans for the Ready pods' measured cold start (p90).
        let mut measured = forecasting(ForecastMode::ForecastAndScale, daily);
        let mut t = ticked(at, 0, vec![("a", quiet(0)), ("b", quiet(1))]);
        t.cold_starts = vec![Duration::from_secs(100), Duration::from_secs(200), Duration::from_secs(400)];
        let f = measured.tick(t).unwrap().forecast.unwrap();
        assert_eq!((f.cold_start_s, f.cold_start_from, f.lead_s), (400, ColdStartSource::Measured { pods: 3 }, 720));
        // A forecast without skill (a flat history: nothing beats "as 15 minutes ago") is shown, not acted on.
        let mut flat = forecasting(ForecastMode::ForecastAndScale, |_| 50_000.0);
        let dec = flat.tick(ticked(at, 0, vec![("a", quiet(0)), ("b", quiet(1))])).unwrap();
        let f = dec.forecast.as_ref().unwrap();
        assert_eq!((f.floor, f.skilled, f.bound, dec.desired_replicas), (Some(8), false, false, 2), "{}", dec.reason);
        assert!(dec.reason.contains("(no skill: MASE unknown >= 1, not acted on)"), "{}", dec.reason);
        // Off: no history, nothing to restore, nothing in the decision.
        let mut p = PolicyConfig::default();
        p.forecast.mode = ForecastMode::Off;
        let mut off = Decider::new(p, Duration::from_secs(60), 0.99);
        assert_eq!(off.restore_history(&only.history_snapshot().unwrap()), Err(forecast::RestoreError::Off));
        assert_eq!(off.tick(ticked(at, 0, vec![("a", quiet(0))])).unwrap().forecast, None);
    }

    #[test]
    fn a_forecaster_restored_off_the_decider_is_taken_only_with_the_same_configuration() {
        let d = forecasting(ForecastMode::ForecastAndScale, daily);
        let snap = d.history_snapshot().unwrap();
        let spec = d.forecast_spec().unwrap().clone();
        let mut fresh = Decider::new(d.policy().clone(), Duration::from_secs(60), 0.99);
        let mut f = Forecaster::new(spec.clone());
        f.restore(&snap).unwrap();
        fresh.install_forecaster(f).unwrap();
        assert_eq!(fresh.history_snapshot(), Some(snap.clone()));
        let other = Forecaster::new(forecast::ForecastSpec { horizon: Duration::from_secs(1800), ..spec });
        assert_eq!(fresh.install_forecaster(other), Err(forecast::RestoreError::OtherSpec));
    }

    #[test]
    fn a_fixed_target_has_no_capacity_to_show_or_restore() {
        let mut d = Decider::new(PolicyConfig::default(), Duration::from_secs(60), 0.99);
        assert_eq!((d.learned_capacity(), d.capacity_snapshot()), (None, None));
        let state = Decider::new(
            PolicyConfig { capacity: CapacityMode::Auto { slo: CalibrationSlo::ttft(2.0, 0.99) }, ..PolicyConfig::default() },
            Duration::from_secs(60),
            0.99,
        )
        .capacity_snapshot()
        .unwrap();
        assert_eq!(d.restore_capacity(state), Err(RestoreError::NotAuto));
        let tick = Tick::<String> {
            now: Duration::from_secs(5),
            calendar: Duration::from_secs(5),
            starting: 0,
            cold_starts: vec![],
            pods: vec![("a", Ok(sample(4.0)))],
            gpus: vec![],
        };
        assert_eq!(d.tick(tick).unwrap().capacity, None);
    }
}
