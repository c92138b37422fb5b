//! From successive per-pod samples to one [`FleetObservation`] per tick.
//!
//! Gauges are taken as they are; tokens/s is a rate between a pod's two latest successful
//! scrapes (a counter that went down was reset: the new value is the delta since the reset); the
//! latency quantile comes from histogram-bucket deltas over a window, summed over the fleet, as
//! Prometheus' `histogram_quantile(rate(...))` would compute it. Time is a [`Duration`] since an
//! arbitrary origin, so the simulator can drive this in virtual time.

use std::{collections::HashMap, collections::VecDeque, time::Duration};

use crate::{
    decide::policy::{FleetObservation, Signal},
    read::vllm::{HistogramSnapshot, PodSample, SloLatency},
};

/// A pod's snapshots of one histogram inside the latency window (oldest first), with one at or
/// before the window's start kept as the base of the delta.
#[derive(Debug, Default)]
struct Window(VecDeque<(Duration, HistogramSnapshot)>);

impl Window {
    fn push(&mut self, now: Duration, hist: &HistogramSnapshot, window: Duration) {
        self.0.push_back((now, hist.clone()));
        let start = now.saturating_sub(window);
        while self.0.len() > 2 && self.0.get(1).is_some_and(|(t, _)| *t <= start) {
            self.0.pop_front();
        }
    }
}

/// One pod's recent past.
#[derive(Debug, Default)]
struct PodHistory {
    /// Time and value of the latest successful scrape.
    last_ok: Option<(Duration, PodSample)>,
    /// Tokens/s between the two latest successful scrapes.
    tokens_rate: Option<f64>,
    /// The latency signal's histogram inside the window.
    latency: Window,
    /// The SLO's TTFT histogram inside the window (when the sample carries it).
    slo_ttft: Window,
    /// The SLO's TPOT histogram inside the window (when the sample carries it).
    slo_tpot: Window,
    /// GPU activity 0..1 and when it was read.
    gpu: Option<(Duration, f64)>,
}

/// The fleet's per-pod histories for one ScaledObject.
#[derive(Debug)]
pub struct FleetSignals {
    pods: HashMap<String, PodHistory>,
    latency_window: Duration,
    quantile: f64,
}

/// Counter delta with reset detection.
fn counter_delta(prev: f64, cur: f64) -> f64 {
    if cur >= prev { cur - prev } else { cur }
}

impl FleetSignals {
    /// Empty history with the latency definition.
    pub fn new(latency_window: Duration, quantile: f64) -> Self {
        FleetSignals { pods: HashMap::new(), latency_window, quantile }
    }

    /// Records a successful scrape of `pod` at `now`.
    pub fn record(&mut self, pod: &str, now: Duration, sample: PodSample) {
        let h = match self.pods.get_mut(pod) {
            Some(h) => h,
            None => self.pods.entry(pod.to_string()).or_default(),
        };
        if let Some((t, prev)) = &h.last_ok {
            let dt = now.saturating_sub(*t).as_secs_f64();
            h.tokens_rate = match (prev.tokens_total, sample.tokens_total) {
                (Some(p), Some(c)) if dt > 0.0 => Some(counter_delta(p, c) / dt),
                _ => None,
            };
        }
        let w = self.latency_window;
        for (window, hist) in
            [(&mut h.latency, &sample.latency), (&mut h.slo_ttft, &sample.slo_latency.ttft), (&mut h.slo_tpot, &sample.slo_latency.tpot)]
        {
            if let Some(hist) = hist {
                window.push(now, hist, w);
            }
        }
        h.last_ok = Some((now, sample));
    }

    /// Records GPU activity (0..1) of `pod` at `now`.
    pub fn record_gpu(&mut self, pod: &str, now: Duration, activity: f64) {
        if let Some(h) = self.pods.get_mut(pod) {
            h.gpu = Some((now, activity));
        }
    }

    /// Forgets pods that left the fleet.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.pods.retain(|name, _| keep(name));
    }

    /// Aggregates what the Ready pods reported since `fresh_since` into an observation. Pods
    /// that did not report since then are not counted in totals: the policy imputes them.
    pub fn observe<'a>(&self, ready: impl IntoIterator<Item = &'a str>, starting: u32, fresh_since: Duration) -> FleetObservation {
        let mut o = FleetObservation { starting_pods: starting, ..Default::default() };
        let mut fleet_hist: Option<HistogramSnapshot> = None;
        let mut slo = SloLatency::default();
        let add = |o: &mut FleetObservation, s: Signal, v: f64| {
            o.totals.set(s, Some(o.totals.get(s).unwrap_or(0.0) + v));
            o.reporting.set(s, o.reporting.get(s) + 1);
        };
        for name in ready {
            o.ready_pods += 1;
            let Some(h) = self.pods.get(name) else { continue };
            let Some((t, sample)) = &h.last_ok else { continue };
            if *t < fresh_since {
                continue;
            }
            add(&mut o, Signal::QueueDepth, sample.waiting);
            o.in_flight += sample.waiting + sample.running;
            if let Some(r) = h.tokens_rate {
                add(&mut o, Signal::TokensPerSecond, r);
            }
            if let Some(kv) = sample.kv_usage {
                add(&mut o, Signal::KvCacheUsage, kv);
            }
            if let Some((gt, g)) = h.gpu
                && gt >= fresh_since
            {
                add(&mut o, Signal::GpuUtilization, g);
            }
            if let Some(delta) = window_delta(&h.latency) {
                o.reporting.set(Signal::Latency, o.reporting.get(Signal::Latency) + 1);
                merge(&mut fleet_hist, delta);
            }
            if let Some(delta) = window_delta(&h.slo_ttft) {
                merge(&mut slo.ttft, delta);
            }
            if let Some(delta) = window_delta(&h.slo_tpot) {
                merge(&mut slo.tpot, delta);
            }
        }
        if let Some(q) = fleet_hist.as_ref().and_then(|h| quantile(self.quantile, h)) {
            o.totals.set(Signal::Latency, Some(q));
        }
        o.latency_window = fleet_hist;
        o.slo_windows = slo;
        o
    }
}

/// Newest minus oldest snapshot in the window (reset-aware). `None` with fewer than two.
fn window_delta(Window(snaps): &Window) -> Option<HistogramSnapshot> {
    let (_, base) = snaps.front()?;
    let (_, last) = snaps.back()?;
    if snaps.len() < 2 {
        return None;
    }
    let reset = last.count < base.count || last.buckets.len() != base.buckets.len();
    if reset {
        return Some(last.clone());
    }
    let buckets = last
        .buckets
        .iter()
        .zip(&base.buckets)
        .map(|(&(le, c), &(ble, bc))| (le, if le == ble || (le.is_infinite() && ble.is_infinite()) { counter_delta(bc, c) } else { c }))
        .collect();
    Some(HistogramSnapshot { buckets, count: last.count - base.count, sum: counter_delta(base.sum, last.sum) })
}

/// Adds a pod's bucket deltas into the fleet's (bounds matched by value).
fn merge(into: &mut Option<HistogramSnapshot>, d: HistogramSnapshot) {
    match into {
        None => *into = Some(d),
        Some(acc) => {
            for (le, c) in d.buckets {
                if let Some(slot) = acc.buckets.iter_mut().find(|(b, _)| *b == le || (b.is_infinite() && le.is_infinite())) {
                    slot.1 += c;
                }
            }
            acc.count += d.count;
            acc.sum += d.sum;
        }
    }
}

/// `histogram_quantile` as Prometheus computes it: linear interpolation inside the bucket that
/// holds the rank; the highest finite bound when the rank falls in `+Inf`. `None` when the
/// histogram saw nothing (no request finished): unknown, not zero.
pub fn quantile(q: f64, h: &HistogramSnapshot) -> Option<f64> {
    let total = h.buckets.last()?.1;
    if total <= 0.0 || h.buckets.len() < 2 {
        return None;
    }
    let rank = q * total;
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    for (i, &(le, count)) in h.buckets.iter().enumerate() {
        if count >= rank {
            if le.is_infinite() {
                return h.buckets.get(i.checked_sub(1)?).map(|b| b.0);
            }
            let in_bucket = count - prev_count;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(prev_le + (le - prev_le) * (rank - prev_count) / in_bucket);
        }
        prev_le = le;
        prev_count = count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(waiting: f64, tokens: f64, hist: Option<Vec<(f64, f64)>>) -> PodSample {
        PodSample {
            waiting,
            running: 1.0,
            kv_usage: Some(0.4),
            tokens_total: Some(tokens),
            latency: hist.map(|b| HistogramSnapshot { count: b.last().map_or(0.0, |x| x.1), sum: 0.0, buckets: b }),
            ..Default::default()
        }
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn token_rate_with_counter_reset() {
        let mut f = FleetSignals::new(s(60), 0.99);
        f.record("a", s(0), sample(0.0, 1000.0, None));
        let o = f.observe(["a"], 0, s(0));
        assert_eq!(o.totals.get(Signal::TokensPerSecond), None, "one scrape gives no rate");
        f.record("a", s(5), sample(0.0, 11_000.0, None));
        assert_eq!(f.observe(["a"], 0, s(5)).totals.get(Signal::TokensPerSecond), Some(2000.0));
        // The pod restarted: the counter fell to 500; the delta since the reset is 500.
        f.record("a", s(10), sample(0.0, 500.0, None));
        assert_eq!(f.observe(["a"], 0, s(10)).totals.get(Signal::TokensPerSecond), Some(100.0));
    }

    #[test]
    fn stale_pods_are_not_reporting() {
        let mut f = FleetSignals::new(s(60), 0.99);
        f.record("a", s(0), sample(5.0, 0.0, None));
        f.record("b", s(5), sample(7.0, 0.0, None));
        let o = f.observe(["a", "b", "c"], 1, s(5));
        assert_eq!(o.ready_pods, 3);
        assert_eq!(o.starting_pods, 1);
        assert_eq!(o.reporting.get(Signal::QueueDepth), 1);
        assert_eq!(o.totals.get(Signal::QueueDepth), Some(7.0));
    }

    #[test]
    fn quantile_matches_prometheus() {
        let h = HistogramSnapshot { buckets: vec![(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (f64::INFINITY, 100.0)], count: 100.0, sum: 0.0 };
        // rank 50 falls at the top of the first bucket.
        assert!((quantile(0.5, &h).unwrap() - 0.1).abs() < 1e-12);
        // rank 95: bucket (0.5, 1.0] holds 90..100 -> 0.5 + 0.5 * 5/10.
        assert!((quantile(0.95, &h).unwrap() - 0.75).abs() < 1e-12);
        let inf = HistogramSnapshot { buckets: vec![(1.0, 1.0), (f64::INFINITY, 10.0)], count: 10.0, sum: 0.0 };
        assert_eq!(quantile(0.99, &inf), Some(1.0));
        let empty = HistogramSnapshot { buckets: vec![(1.0, 0.0), (f64::INFINITY, 0.0)], count: 0.0, sum: 0.0 };
        assert_eq!(quantile(0.99, &empty), None);
    }

    #[test]
    fn latency_from_window_deltas_over_the_fleet() {
        let mut f = FleetSignals::new(s(10), 0.5);
        let b = |fast: f64, slow: f64| Some(vec![(1.0, fast), (10.0, fast + slow), (f64::INFINITY, fast + slow)]);
        // Old history: 1000 fast requests. Inside the window: only slow ones.
        f.record("a", s(0), sample(0.0, 0.0, b(1000.0, 0.0)));
        f.record("b", s(0), sample(0.0, 0.0, b(0.0, 0.0)));
        f.record("a", s(5), sample(0.0, 0.0, b(1000.0, 10.0)));
        f.record("b", s(5), sample(0.0, 0.0, b(0.0, 10.0)));
        let o = f.observe(["a", "b"], 0, s(5));
        let q = o.totals.get(Signal::Latency).unwrap();
        assert!(q > 1.0, "median of the window's 20 slow requests, not of all time: {q}");
        assert_eq!(o.reporting.get(Signal::Latency), 2);
        // Snapshots older than the window are dropped, keeping one base.
        for t in 6..40 {
            f.record("a", s(t), sample(0.0, 0.0, b(1000.0, 10.0)));
        }
        assert!(f.pods["a"].latency.0.len() <= 12);
        // No request finished in the window: unknown, not zero.
        assert_eq!(f.observe(["a"], 0, s(39)).totals.get(Signal::Latency), None);
    }

    #[test]
    fn gpu_only_when_fresh() {
        let mut f = FleetSignals::new(s(60), 0.99);
        f.record("a", s(5), sample(0.0, 0.0, None));
        f.record_gpu("a", s(0), 0.9);
        assert_eq!(f.observe(["a"], 0, s(5)).totals.get(Signal::GpuUtilization), None);
        f.record_gpu("a", s(5), 0.9);
        assert_eq!(f.observe(["a"], 0, s(5)).totals.get(Signal::GpuUtilization), Some(0.9));
    }
}
