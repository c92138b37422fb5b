//! Self-calibrating capacity (`targetTokensPerSecond: auto`): the per-replica tokens/s at which
//! the fleet's latency quantile reaches the SLO, learned from the fleet's own scrapes.
//!
//! Why a fit and not a threshold rule: with a peak factor of 1.5 the fleet runs near a third
//! below its capacity, so a latency near the SLO is rarely observed. A rule that lowers the
//! estimate on breaches and raises it only on evidence at the estimated capacity can never climb
//! from a start that is too low (the fleet is then sized so that such evidence never occurs).
//! Instead every usable tick adds one point `(load per replica x, latency quantile q)` to a
//! regression of `1 / q` on `x`: a single-server queue's latency grows as `L0 / (1 - x / K)`, so
//! `1 / q = 1/L0 - x / (L0 K)` is a straight line, and the load where it reaches `1 / SLO` is
//! the capacity. The points are facts about the replica, whatever the estimate was when they
//! were taken; the estimate only decides where on the load axis the next points fall. So the
//! fit converges to one operating point from above and below, and the natural variation of the
//! load per replica (the day's curve, integer replica counts) is what identifies the slope.
//!
//! An SLO may bound TTFT, TPOT or both: each bound has its own histogram, its own fit and its own
//! proposal, and the estimate follows the lowest of them (the first bound the load would break),
//! so a replica that loses its TPOT before its TTFT is sized by TPOT whatever the latency signal
//! watches.
//!
//! Every update is bounded and explained: at most [`MAX_STEP`] per [`UPDATE_EVERY_S`], within
//! [`BOUND_FACTOR`] of the start either way, only on enough requests in the window, with no pod
//! starting and no change of the fleet inside the window, and never upwards while the SLO is
//! breached. When the fit is not identified (too few points, too little spread in load, latency
//! not rising with load) a bounded probing rule takes over: one step up while the quantile stays
//! below half the SLO at a load of at least half the estimate, one step down on a breach.
//!
//! Pure and deterministic: the only clock is the tick's `now`. The state is serialisable
//! ([`CalibrationState`]) so that the caller can persist it across restarts.

use std::{collections::VecDeque, fmt::Write as _};

use serde::{Deserialize, Serialize};

/// Largest relative change of the capacity in one update (10 %).
pub const MAX_STEP: f64 = 0.10;
/// At most one update per this many seconds: with [`MAX_STEP`], at most 10 % a minute.
pub const UPDATE_EVERY_S: f64 = 60.0;
/// The learned capacity stays within `start / 4 ..= start x 4`.
pub const BOUND_FACTOR: f64 = 4.0;
/// Fewest requests in the latency window for a quantile to count: below that a p99 is decided
/// by its two slowest requests.
pub const MIN_REQUESTS: f64 = 200.0;
/// Memory of the fit, seconds: points lose half their weight in `ln 2 x 6 h` (about 4 h), so a
/// new model version or length mix is learned within a day while one day's curve is remembered.
pub const MEMORY_S: f64 = 6.0 * 3600.0;
/// Fewest usable ticks (decayed count) before the fit is trusted.
pub const MIN_POINTS: f64 = 20.0;
/// Least spread of the load per replica (standard deviation over mean) for the slope to mean
/// anything.
pub const MIN_SPREAD: f64 = 0.05;
/// A quantile above this multiple of the SLO is overload, not a point on the latency curve.
pub const OVERLOAD_FACTOR: f64 = 2.0;
/// Relative difference below which the estimate is left alone (no dithering).
const DEAD_BAND: f64 = 0.02;

/// Which latency an SLO bound is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloMetric {
    /// Time to first token.
    Ttft,
    /// Time per output token.
    Tpot,
}

impl SloMetric {
    /// Both, in the order explanations list them.
    pub const ALL: [SloMetric; 2] = [SloMetric::Ttft, SloMetric::Tpot];

    /// Lower-case name for explanations.
    pub fn as_str(self) -> &'static str {
        match self {
            SloMetric::Ttft => "ttft",
            SloMetric::Tpot => "tpot",
        }
    }
}

/// One value per latency an SLO can bound.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ByMetric<T> {
    /// Time to first token.
    pub ttft: T,
    /// Time per output token.
    pub tpot: T,
}

impl<T> ByMetric<T> {
    /// The value of `m`.
    pub fn get(&self, m: SloMetric) -> &T {
        match m {
            SloMetric::Ttft => &self.ttft,
            SloMetric::Tpot => &self.tpot,
        }
    }

    /// The value of `m`, to change.
    pub fn get_mut(&mut self, m: SloMetric) -> &mut T {
        match m {
            SloMetric::Ttft => &mut self.ttft,
            SloMetric::Tpot => &mut self.tpot,
        }
    }
}

/// The SLO the capacity is learned against: the `quantile` of each bounded latency within its
/// bound. At least one bound is set (the constructors set one or both).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CalibrationSlo {
    /// The bounds, seconds (`None`: that latency is not bounded).
    bounds: ByMetric<Option<f64>>,
    /// The quantile that must be within the bounds, in (0, 1).
    quantile: f64,
}

impl CalibrationSlo {
    /// A TTFT-only SLO.
    pub const fn ttft(bound_s: f64, quantile: f64) -> Self {
        CalibrationSlo { bounds: ByMetric { ttft: Some(bound_s), tpot: None }, quantile }
    }

    /// A TPOT-only SLO.
    pub const fn tpot(bound_s: f64, quantile: f64) -> Self {
        CalibrationSlo { bounds: ByMetric { ttft: None, tpot: Some(bound_s) }, quantile }
    }

    /// An SLO bounding both.
    pub const fn both(ttft_s: f64, tpot_s: f64, quantile: f64) -> Self {
        CalibrationSlo { bounds: ByMetric { ttft: Some(ttft_s), tpot: Some(tpot_s) }, quantile }
    }

    /// The bound on `m`, seconds, if set.
    pub fn bound(&self, m: SloMetric) -> Option<f64> {
        *self.bounds.get(m)
    }

    /// The quantile that must be within the bounds.
    pub fn quantile(&self) -> f64 {
        self.quantile
    }

    /// The bounded latencies with their bounds, TTFT first.
    pub fn bounded(&self) -> impl Iterator<Item = (SloMetric, f64)> + '_ {
        SloMetric::ALL.into_iter().filter_map(|m| self.bound(m).map(|b| (m, b)))
    }
}

/// How the per-replica tokens/s target is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum CapacityMode {
    /// The configured number, as given.
    #[default]
    Fixed,
    /// Learned from the fleet, starting at the configured number.
    Auto {
        /// The SLO it is learned against.
        slo: CalibrationSlo,
    },
}

/// Why a tick's reading did or did not count as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Verdict {
    /// Added to the fit.
    Used,
    /// No request finished in the window, or no pod reported tokens/s.
    NoReading,
    /// Too few requests for the quantile.
    TooFewRequests,
    /// Pods are starting: their load is on its way, the reading is biased high.
    PodsStarting,
    /// The number of Ready pods changed inside the window: load per replica is not one number.
    FleetChanged,
    /// The fleet is held at `maxReplicas` while asking for more: overloaded by the bound.
    AtMaxReplicas,
    /// A quantile is above [`OVERLOAD_FACTOR`] x its bound: a queue is growing, and the latency
    /// tells its age rather than the load. Not fitted; the breach rule still acts on it.
    Overloaded,
}

impl Verdict {
    fn says(self) -> &'static str {
        match self {
            Verdict::Used => "used",
            Verdict::NoReading => "no reading of every bounded latency",
            Verdict::TooFewRequests => "too few requests",
            Verdict::PodsStarting => "not used: pods starting",
            Verdict::FleetChanged => "not used: fleet changed in the window",
            Verdict::AtMaxReplicas => "not used: at maxReplicas",
            Verdict::Overloaded => "overloaded: breach rule only",
        }
    }
}

/// What the latest tick offered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// When, seconds since the caller's origin.
    pub at_s: f64,
    /// Mean tokens/s per Ready pod over the latency window.
    pub load_per_replica: f64,
    /// The SLO's quantile of each latency over the window, seconds (`None`: not bounded, no
    /// request finished, or the pods do not export its histogram).
    #[serde(default)]
    pub quantiles: ByMetric<Option<f64>>,
    /// Requests that finished in the window, fleet-wide.
    pub requests: f64,
    /// Whether it counted.
    pub verdict: Verdict,
}

/// What moved the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Rule {
    /// The fit's load where a latency's quantile reaches its bound.
    Fit {
        /// Which latency's fit.
        metric: SloMetric,
        /// That load, tokens/s per replica.
        crossing: f64,
    },
    /// Probing: every quantile stayed below half its bound at a load of at least half the
    /// estimate.
    Headroom,
    /// A bound was breached at this load per replica.
    Breach {
        /// Which latency.
        metric: SloMetric,
        /// Tokens/s per replica.
        load: f64,
    },
}

/// One change of the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// When, seconds since the caller's origin.
    pub at_s: f64,
    /// The estimate before.
    pub from: f64,
    /// The estimate after (bounded by the step and the hard bounds).
    pub to: f64,
    /// Why.
    pub rule: Rule,
    /// The evidence of the tick that made it.
    pub evidence: Evidence,
}

/// Weighted least-squares sums of `y = 1 / q` on `x = load`, with exponential forgetting.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct FitSums {
    /// Sum of weights (requests in each point's window).
    pub w: f64,
    /// Weighted sum of the loads.
    pub x: f64,
    /// Weighted sum of `1 / q`.
    pub y: f64,
    /// Weighted sum of the squared loads.
    pub xx: f64,
    /// Weighted sum of load x `1 / q`.
    pub xy: f64,
    /// Usable ticks (decayed).
    pub points: f64,
    /// Time of the last point, seconds.
    pub at_s: f64,
}

impl FitSums {
    fn add(&mut self, at_s: f64, x: f64, y: f64, w: f64) {
        let decay = (-(at_s - self.at_s).max(0.0) / MEMORY_S).exp();
        for s in [&mut self.w, &mut self.x, &mut self.y, &mut self.xx, &mut self.xy, &mut self.points] {
            *s *= decay;
        }
        self.w += w;
        self.x += w * x;
        self.y += w * y;
        self.xx += w * x * x;
        self.xy += w * x * y;
        self.points += 1.0;
        self.at_s = at_s;
    }

    /// The load where the fitted `1 / q` reaches `1 / bound_s`, if the fit is identified: enough
    /// points, enough spread in load, and latency rising with load.
    pub fn crossing(&self, bound_s: f64) -> Option<f64> {
        if self.points < MIN_POINTS || self.w <= 0.0 {
            return None;
        }
        let mx = self.x / self.w;
        let my = self.y / self.w;
        let var = self.xx / self.w - mx * mx;
        if !(mx > 0.0 && var > 0.0 && var.sqrt() / mx >= MIN_SPREAD) {
            return None;
        }
        let slope = (self.xy / self.w - mx * my) / var;
        if !slope.is_finite() || slope >= 0.0 {
            return None;
        }
        let intercept = my - slope * mx;
        let x = (intercept - 1.0 / bound_s) / -slope;
        (x.is_finite() && x > 0.0).then_some(x)
    }
}

/// Everything the estimator knows: serialise it to keep what was learned across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationState {
    /// The configured start (the explicit number of `auto:N`, else the default).
    pub start: f64,
    /// The current estimate, tokens/s per replica.
    pub capacity: f64,
    /// The fit of each bounded latency.
    #[serde(default)]
    pub fits: ByMetric<FitSums>,
    /// `(time, load per Ready pod, Ready pods)` over the latency window, oldest first.
    pub recent: VecDeque<(f64, f64, u32)>,
    /// The latest tick's evidence.
    pub evidence: Option<Evidence>,
    /// The latest change.
    pub last_update: Option<Update>,
}

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestoreError {
    /// The snapshot was learned from another start value (the configuration changed).
    #[error("snapshot starts at {snapshot} tokens/s but the configured start is {configured}: not restored")]
    StartChanged {
        /// The snapshot's start.
        snapshot: f64,
        /// The configured start.
        configured: f64,
    },
    /// The estimate lies outside the hard bounds, or is not a finite positive number.
    #[error("snapshot capacity {0} is outside the bounds of its start")]
    OutOfBounds(f64),
    /// The configuration is not `auto`.
    #[error("the tokens/s target is fixed: nothing to restore")]
    NotAuto,
}

/// What one tick's reading is made of.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// Seconds since the caller's origin.
    pub now_s: f64,
    /// Ready pods.
    pub ready: u32,
    /// Pods starting.
    pub starting: u32,
    /// Fleet tokens/s and the pods that reported it.
    pub tokens: Option<(f64, u32)>,
    /// The SLO's quantile of each bounded latency over the fleet's window, seconds (`None`: no
    /// request finished, or its histogram is not exported).
    pub quantiles: ByMetric<Option<f64>>,
    /// Requests that finished in the window, fleet-wide.
    pub requests: f64,
    /// The previous decision was bounded at `maxReplicas` while asking for more.
    pub at_max: bool,
}

/// The capacity, as a decision shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityReport {
    /// The estimate in use, tokens/s per replica.
    pub learned: f64,
    /// The configured start.
    pub start: f64,
    /// Hard bounds.
    pub bounds: (f64, f64),
    /// The SLO it is learned against.
    pub slo: CalibrationSlo,
    /// Each bounded latency's fit now.
    pub fits: Vec<FitReport>,
    /// The latest tick's evidence.
    pub evidence: Option<Evidence>,
    /// The latest change.
    pub last_update: Option<Update>,
}

/// One latency's fit, as a decision shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FitReport {
    /// Which latency.
    pub metric: SloMetric,
    /// Its bound, seconds.
    pub bound_s: f64,
    /// The load where the fit reaches the bound, if identified.
    pub crossing: Option<f64>,
    /// Usable ticks in the fit (decayed).
    pub points: f64,
}

/// The estimator of one ScaledObject.
#[derive(Debug, Clone)]
pub struct Calibrator {
    slo: CalibrationSlo,
    window_s: f64,
    state: CalibrationState,
}

impl Calibrator {
    /// Starts at `start` tokens/s per replica, against `slo`, reading quantiles over windows of
    /// `window_s` seconds.
    pub fn new(slo: CalibrationSlo, start: f64, window_s: f64) -> Self {
        Calibrator {
            slo,
            window_s,
            state: CalibrationState {
                start,
                capacity: start,
                fits: ByMetric::default(),
                recent: VecDeque::new(),
                evidence: None,
                last_update: None,
            },
        }
    }

    /// The SLO it learns against.
    pub fn slo(&self) -> CalibrationSlo {
        self.slo
    }

    /// The estimate in use, tokens/s per replica.
    pub fn capacity(&self) -> f64 {
        self.state.capacity
    }

    /// `start / 4 ..= start x 4`.
    pub fn bounds(&self) -> (f64, f64) {
        (self.state.start / BOUND_FACTOR, self.state.start * BOUND_FACTOR)
    }

    /// A copy of what was learned.
    pub fn snapshot(&self) -> CalibrationState {
        self.state.clone()
    }

    /// Continues from a snapshot, if it was learned from the same start and is within bounds.
    pub fn restore(&mut self, state: CalibrationState) -> Result<(), RestoreError> {
        if state.start != self.state.start {
            return Err(RestoreError::StartChanged { snapshot: state.start, configured: self.state.start });
        }
        let (lo, hi) = self.bounds();
        if !(state.capacity.is_finite() && state.capacity >= lo && state.capacity <= hi) {
            return Err(RestoreError::OutOfBounds(state.capacity));
        }
        self.state = state;
        Ok(())
    }

    /// What a decision shows.
    pub fn report(&self) -> CapacityReport {
        CapacityReport {
            learned: self.state.capacity,
            start: self.state.start,
            bounds: self.bounds(),
            slo: self.slo,
            fits: self
                .slo
                .bounded()
                .map(|(metric, bound_s)| {
                    let fit = self.state.fits.get(metric);
                    FitReport { metric, bound_s, crossing: fit.crossing(bound_s), points: fit.points }
                })
                .collect(),
            evidence: self.state.evidence,
            last_update: self.state.last_update,
        }
    }

    /// Takes one tick's reading: records it, and moves the estimate when the evidence allows.
    pub fn observe(&mut self, r: Reading) {
        let now = r.now_s;
        let (lo, hi) = self.bounds();
        let st = &mut self.state;
        if let Some((total, n)) = r.tokens.filter(|(_, n)| *n > 0) {
            st.recent.push_back((now, total / f64::from(n), r.ready));
        }
        while st.recent.front().is_some_and(|(t, _, _)| *t < now - self.window_s) {
            st.recent.pop_front();
        }
        let requests = r.requests;
        let load = if st.recent.is_empty() { 0.0 } else { st.recent.iter().map(|e| e.1).sum::<f64>() / st.recent.len() as f64 };
        let fleet_changed = st.recent.iter().any(|e| e.2 != r.ready);
        let mut quantiles = ByMetric::default();
        for (m, _) in self.slo.bounded() {
            *quantiles.get_mut(m) = *r.quantiles.get(m);
        }
        // Each bound with its quantile this tick (`None`: no reading of it).
        let bounded: Vec<(SloMetric, f64, Option<f64>)> = self.slo.bounded().map(|(m, b)| (m, b, *quantiles.get(m))).collect();
        let verdict = if bounded.iter().any(|(_, _, q)| q.is_none()) || st.recent.is_empty() {
            // A bound without a reading is never read as met: nothing is learned this tick.
            Verdict::NoReading
        } else if r.starting > 0 {
            Verdict::PodsStarting
        } else if fleet_changed {
            Verdict::FleetChanged
        } else if r.at_max {
            Verdict::AtMaxReplicas
        } else if requests < MIN_REQUESTS {
            Verdict::TooFewRequests
        } else if bounded.iter().any(|(_, b, q)| q.is_some_and(|q| q > OVERLOAD_FACTOR * b)) {
            Verdict::Overloaded
        } else {
            Verdict::Used
        };
        let evidence = Evidence { at_s: now, load_per_replica: load, quantiles, requests, verdict };
        st.evidence = Some(evidence);
        if !matches!(verdict, Verdict::Used | Verdict::Overloaded) {
            return;
        }
        let bounded: Vec<(SloMetric, f64, f64)> = bounded.into_iter().filter_map(|(m, b, q)| q.map(|q| (m, b, q))).collect();
        if verdict == Verdict::Used {
            for &(m, _, q) in &bounded {
                // A quantile of 0 (every request in the first bucket) is as fast as the
                // histogram shows.
                st.fits.get_mut(m).add(now, load, 1.0 / q.max(1e-3), requests);
            }
        }
        if st.last_update.is_some_and(|u| now - u.at_s < UPDATE_EVERY_S) {
            return;
        }
        let cur = st.capacity;
        // Each bound proposes; the estimate follows the lowest proposal (a bound with none
        // holds the estimate where it is, so it can never be raised past a bound's say).
        let (mut want, mut rule) = (f64::INFINITY, None);
        for &(m, bound, q) in &bounded {
            let (w, r) = propose(st.fits.get(m), m, bound, q, load, cur, verdict).map_or((cur, None), |(w, r)| (w, Some(r)));
            if w < want {
                (want, rule) = (w, r);
            }
        }
        // The lowest say is to hold (or nobody spoke).
        let Some(rule) = rule else { return };
        let to = want.clamp(cur * (1.0 - MAX_STEP), cur * (1.0 + MAX_STEP)).clamp(lo, hi);
        if to == cur || ((to - cur).abs() <= DEAD_BAND * cur && to != lo && to != hi) {
            return;
        }
        st.capacity = to;
        st.last_update = Some(Update { at_s: now, from: cur, to, rule, evidence });
    }

    /// The explanation's clause, e.g. `capacity auto 4120 tok/s/replica (start 5500); last
    /// update 3m ago 4380 -> 4120 by fit (crossing 3900): p99 ttft 1.62 s vs SLO 2 s at 3010
    /// tok/s/replica over 1240 requests`.
    pub fn explain(&self, now_s: f64) -> String {
        let st = &self.state;
        let mut s = format!("capacity auto {:.0} tok/s/replica (start {:.0})", st.capacity, st.start);
        let (lo, hi) = self.bounds();
        if st.capacity <= lo || st.capacity >= hi {
            let _ = write!(s, " at its bound [{lo:.0}, {hi:.0}]");
        }
        let q = format!("p{}", fmt_quantile(self.slo.quantile));
        match &st.last_update {
            None => s.push_str("; not updated yet"),
            Some(u) => {
                let rule = match u.rule {
                    Rule::Fit { metric, crossing } => format!("{} fit (SLO reached at {crossing:.0})", metric.as_str()),
                    Rule::Headroom => "headroom".to_string(),
                    Rule::Breach { metric, .. } => format!("{} breach", metric.as_str()),
                };
                let _ = write!(s, "; last update {} ago {:.0} -> {:.0} by {rule}", ago(now_s - u.at_s), u.from, u.to);
            }
        }
        if let Some(e) = &st.evidence {
            let read: Vec<String> = self
                .slo
                .bounded()
                .map(|(m, b)| match e.quantiles.get(m) {
                    Some(v) => format!("{q} {} {} vs SLO {}", m.as_str(), fmt_latency(*v), fmt_latency(b)),
                    None => format!("{} no reading", m.as_str()),
                })
                .collect();
            if e.verdict == Verdict::NoReading && e.quantiles.ttft.is_none() && e.quantiles.tpot.is_none() {
                let _ = write!(s, "; now {}", e.verdict.says());
            } else {
                let _ = write!(
                    s,
                    "; now {} at {:.0} tok/s/replica over {:.0} requests ({})",
                    read.join(", "),
                    e.load_per_replica,
                    e.requests,
                    e.verdict.says()
                );
            }
        }
        s
    }
}

fn fmt_quantile(q: f64) -> String {
    let s = format!("{:.3}", q * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Seconds, in ms below one second: `1.62 s`, `2 s`, `83 ms`.
fn fmt_latency(v: f64) -> String {
    if v < 1.0 {
        return format!("{:.0} ms", v * 1e3);
    }
    let s = format!("{v:.2}");
    format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
}

/// One bound's proposal for the estimate `cur`: the fit's crossing (when the tick was used), a
/// step down on a breach (never up while breached), a probing step up while the latency stays
/// below half its bound, or nothing.
fn propose(fit: &FitSums, metric: SloMetric, bound: f64, q: f64, load: f64, cur: f64, verdict: Verdict) -> Option<(f64, Rule)> {
    let breach = q > bound;
    let (want, rule) = match fit.crossing(bound) {
        // Overload moves the estimate only through the breach rule.
        Some(x) if verdict == Verdict::Used => (x, Rule::Fit { metric, crossing: x }),
        _ if breach => (load.min(cur * (1.0 - MAX_STEP)), Rule::Breach { metric, load }),
        None if q < bound / 2.0 && load >= cur / 2.0 => (cur * (1.0 + MAX_STEP), Rule::Headroom),
        _ => return None,
    };
    if breach && want > cur {
        // Never raise while the bound is breached; a breach below the estimate lowers it.
        if load >= cur {
            return None;
        }
        return Some((load, Rule::Breach { metric, load }));
    }
    Some((want, rule))
}

fn ago(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 120.0 {
        format!("{secs:.0}s")
    } else if secs < 7200.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{:.1}h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLO: CalibrationSlo = CalibrationSlo::ttft(2.0, 0.99);

    /// A latency window: `n` requests whose p99 is `q` seconds.
    struct Window {
        q: f64,
        n: f64,
    }

    fn window(q: f64, n: f64) -> Window {
        Window { q, n }
    }

    fn reading(now_s: f64, ready: u32, load: f64, w: &Window) -> Reading {
        let tokens = Some((load * f64::from(ready), ready));
        Reading { now_s, ready, starting: 0, tokens, quantiles: ByMetric { ttft: Some(w.q), tpot: None }, requests: w.n, at_max: false }
    }

    /// A single-server queue's p99: `L0 / (1 - x / K)` (huge past K).
    fn queueing(x: f64) -> f64 {
        let (l0, k) = (0.5, 8000.0);
        if x >= k { 60.0 } else { l0 / (1.0 - x / k) }
    }

    /// Where [`queueing`] reaches the 2 s SLO: 8000 x (1 - 0.5 / 2).
    const CROSSING: f64 = 6000.0;

    /// A closed loop: a daily-like load, a fleet sized by the estimate with peak factor 1.5,
    /// latency from [`queueing`] at the resulting load per replica, one tick every 15 s.
    fn closed_loop(start: f64, hours: f64) -> Calibrator {
        let mut c = Calibrator::new(SLO, start, 60.0);
        let mut replicas = 2u32;
        let mut t = 0.0;
        while t < hours * 3600.0 {
            t += 15.0;
            let fleet_load = 30_000.0 + 20_000.0 * (2.0 * std::f64::consts::PI * t / 7200.0).sin();
            if (t as u64).is_multiple_of(120) {
                replicas = ((fleet_load * 1.5 / c.capacity()).ceil() as u32).clamp(2, 40);
            }
            // A replica serves at most its saturation throughput, whatever arrives.
            let x = (fleet_load / f64::from(replicas)).min(7990.0);
            let w = window(queueing(x), 1000.0);
            c.observe(reading(t, replicas, x, &w));
        }
        c
    }

    #[test]
    fn the_fit_of_a_queueing_curve_finds_the_load_where_the_quantile_reaches_the_slo() {
        let mut f = FitSums::default();
        for i in 0..40 {
            let x = 1000.0 + 100.0 * f64::from(i);
            f.add(f64::from(i) * 15.0, x, 1.0 / queueing(x), 500.0);
        }
        let x = f.crossing(2.0).unwrap();
        assert!((x - CROSSING).abs() < 1.0, "{x}");
    }

    #[test]
    fn a_fit_without_spread_in_load_or_with_latency_not_rising_is_not_identified() {
        let mut flat = FitSums::default();
        let mut falling = FitSums::default();
        for i in 0..40 {
            flat.add(f64::from(i), 3000.0, 1.0, 500.0);
            falling.add(f64::from(i), 1000.0 + 100.0 * f64::from(i), 1.0 / (2.0 - 0.01 * f64::from(i)), 500.0);
        }
        assert_eq!(flat.crossing(2.0), None);
        assert_eq!(falling.crossing(2.0), None);
    }

    #[test]
    fn it_climbs_from_a_start_twice_too_low_and_descends_from_a_start_twice_too_high() {
        for start in [CROSSING / 2.0, CROSSING * 2.0] {
            let c = closed_loop(start, 6.0);
            let off = c.capacity() / CROSSING - 1.0;
            assert!(off.abs() < 0.05, "from {start}: ends at {:.0} ({:+.1} %)", c.capacity(), off * 100.0);
        }
    }

    #[test]
    fn each_update_moves_at_most_ten_percent_at_most_once_a_minute() {
        let c = closed_loop(CROSSING / 2.0, 2.0);
        let st = c.snapshot();
        let u = st.last_update.unwrap();
        assert!((u.to / u.from - 1.0).abs() <= MAX_STEP + 1e-12, "{u:?}");
        // Replay the same loop one tick at a time and check every change.
        let mut c = Calibrator::new(SLO, CROSSING / 2.0, 60.0);
        let mut last: Option<Update> = None;
        let mut t: f64 = 0.0;
        while t < 3600.0 {
            t += 5.0;
            let x = 2000.0 + 1000.0 * (t / 600.0).sin();
            let w = window(queueing(x), 1000.0);
            c.observe(reading(t, 4, x, &w));
            if let Some(u) = c.snapshot().last_update
                && last != Some(u)
            {
                assert!((u.to / u.from - 1.0).abs() <= MAX_STEP + 1e-12, "{u:?}");
                if let Some(prev) = last {
                    assert!(u.at_s - prev.at_s >= UPDATE_EVERY_S, "{prev:?} then {u:?}");
                }
                last = Some(u);
            }
        }
        assert!(last.is_some(), "it did move");
    }

    #[test]
    fn the_estimate_stays_within_a_quarter_and_four_times_its_start() {
        // The true crossing is 6000; a start of 1000 may not climb past 4000.
        let c = closed_loop(1000.0, 6.0);
        assert_eq!(c.capacity(), 4000.0);
        assert!(c.explain(6.0 * 3600.0).contains("at its bound [250, 4000]"), "{}", c.explain(0.0));
        let c = closed_loop(40_000.0, 6.0);
        assert_eq!(c.capacity(), 10_000.0);
    }

    #[test]
    fn too_few_requests_starting_pods_a_changed_fleet_or_the_max_bound_are_not_evidence() {
        let mut c = Calibrator::new(SLO, 5000.0, 60.0);
        let few = window(1.0, 50.0);
        c.observe(reading(0.0, 4, 3000.0, &few));
        assert_eq!(c.report().evidence.unwrap().verdict, Verdict::TooFewRequests);
        let w = window(1.0, 1000.0);
        c.observe(Reading { starting: 1, ..reading(15.0, 4, 3000.0, &w) });
        assert_eq!(c.report().evidence.unwrap().verdict, Verdict::PodsStarting);
        c.observe(reading(30.0, 5, 3000.0, &w));
        assert_eq!(c.report().evidence.unwrap().verdict, Verdict::FleetChanged, "4 pods 15 s ago, 5 now");
        c.observe(Reading { at_max: true, ..reading(120.0, 5, 3000.0, &w) });
        assert_eq!(c.report().evidence.unwrap().verdict, Verdict::AtMaxReplicas);
        c.observe(reading(135.0, 5, 3000.0, &w));
        assert_eq!(c.report().evidence.unwrap().verdict, Verdict::Used);
        assert_eq!(c.report().fits[0].points, 1.0);
        c.observe(Reading { quantiles: ByMetric::default(), requests: 0.0, ..reading(150.0, 5, 3000.0, &w) });
        assert_eq!(c.report().evidence.unwrap().verdict, Verdict::NoReading);
    }

    #[test]
    fn a_breach_lowers_the_estimate_and_never_raises_it() {
        let mut c = Calibrator::new(SLO, 5000.0, 60.0);
        let slow = window(3.0, 1000.0);
        c.observe(reading(0.0, 4, 4000.0, &slow));
        let u = c.snapshot().last_update.unwrap();
        assert_eq!((u.from, u.to), (5000.0, 4500.0), "one bounded step towards the breaching load");
        assert!(matches!(u.rule, Rule::Breach { metric: SloMetric::Ttft, load } if load == 4000.0));
        // Breaching above the estimate says nothing about raising it.
        let mut c = Calibrator::new(SLO, 5000.0, 60.0);
        c.observe(reading(0.0, 4, 6000.0, &slow));
        assert!(c.capacity() <= 5000.0);
    }

    #[test]
    fn quiet_latency_at_a_good_share_of_the_estimate_probes_upwards_one_step() {
        let mut c = Calibrator::new(SLO, 5000.0, 60.0);
        let fast = window(0.5, 1000.0);
        c.observe(reading(0.0, 4, 3000.0, &fast));
        assert_eq!(c.capacity(), 5500.0);
        assert_eq!(c.snapshot().last_update.unwrap().rule, Rule::Headroom);
        c.observe(reading(30.0, 4, 3000.0, &fast));
        assert_eq!(c.capacity(), 5500.0, "not again within the minute");
    }

    #[test]
    fn a_snapshot_restores_what_was_learned_and_is_refused_for_another_start() {
        let c = closed_loop(CROSSING / 2.0, 2.0);
        let json = serde_json::to_string(&c.snapshot()).unwrap();
        let back: CalibrationState = serde_json::from_str(&json).unwrap();
        // serde_json reads floats back to within an ulp (its exact mode is a crate feature).
        let orig = c.snapshot();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
        assert!(
            close(back.capacity, orig.capacity)
                && close(back.fits.ttft.xy, orig.fits.ttft.xy)
                && close(back.fits.ttft.points, orig.fits.ttft.points)
        );
        assert_eq!(
            (back.start, back.recent.len(), back.last_update.map(|u| u.at_s)),
            (orig.start, orig.recent.len(), orig.last_update.map(|u| u.at_s))
        );
        assert_eq!(back.evidence.map(|e| e.verdict), orig.evidence.map(|e| e.verdict));
        let mut fresh = Calibrator::new(SLO, CROSSING / 2.0, 60.0);
        fresh.restore(back.clone()).unwrap();
        assert!((fresh.capacity() / c.capacity() - 1.0).abs() < 1e-12);
        assert_eq!(fresh.snapshot(), back);
        let mut other = Calibrator::new(SLO, 4000.0, 60.0);
        assert_eq!(other.restore(back.clone()), Err(RestoreError::StartChanged { snapshot: CROSSING / 2.0, configured: 4000.0 }));
        let mut wild = back;
        wild.capacity = 1e9;
        assert_eq!(fresh.restore(wild), Err(RestoreError::OutOfBounds(1e9)));
    }

    #[test]
    fn the_explanation_names_the_estimate_the_last_update_and_the_evidence() {
        let mut c = Calibrator::new(SLO, 5000.0, 60.0);
        let w = window(3.0, 1240.0);
        c.observe(reading(60.0, 4, 4000.0, &w));
        let s = c.explain(240.0);
        assert_eq!(
            s,
            "capacity auto 4500 tok/s/replica (start 5000); last update 3m ago 5000 -> 4500 by ttft breach; now p99 ttft 3 s \
             vs SLO 2 s at 4000 tok/s/replica over 1240 requests (used)"
        );
    }

    /// A TPOT p99 that reaches a 100 ms bound at 4,000 tokens/s per replica, while TTFT
    /// ([`queueing`]) reaches its 2 s only at 6,000.
    fn tpot_at(x: f64) -> f64 {
        let (l0, k) = (0.05, 8000.0);
        if x >= k { 1.0 } else { l0 / (1.0 - x / k) }
    }

    #[test]
    fn with_both_bounds_the_estimate_follows_the_bound_the_load_breaks_first() {
        let slo = CalibrationSlo::both(2.0, 0.1, 0.99);
        for start in [2000.0, 8000.0] {
            let mut c = Calibrator::new(slo, start, 60.0);
            let mut replicas = 2u32;
            let mut t = 0.0;
            while t < 6.0 * 3600.0 {
                t += 15.0;
                let fleet_load = 30_000.0 + 20_000.0 * (2.0 * std::f64::consts::PI * t / 7200.0).sin();
                if (t as u64).is_multiple_of(120) {
                    replicas = ((fleet_load * 1.5 / c.capacity()).ceil() as u32).clamp(2, 40);
                }
                let x = (fleet_load / f64::from(replicas)).min(7990.0);
                let quantiles = ByMetric { ttft: Some(queueing(x)), tpot: Some(tpot_at(x)) };
                c.observe(Reading { quantiles, ..reading(t, replicas, x, &window(0.0, 1000.0)) });
            }
            let off = c.capacity() / 4000.0 - 1.0;
            assert!(off.abs() < 0.05, "from {start}: ends at {:.0} ({:+.1} %), not at TPOT's 4000", c.capacity(), off * 100.0);
            let r = c.report();
            assert_eq!(r.fits.iter().map(|f| f.metric).collect::<Vec<_>>(), [SloMetric::Ttft, SloMetric::Tpot]);
            let crossing = |m: SloMetric| r.fits.iter().find(|f| f.metric == m).and_then(|f| f.crossing);
            assert!(crossing(SloMetric::Ttft).is_some_and(|x| (x / CROSSING - 1.0).abs() < 0.05), "{:?}", r.fits);
            assert!(crossing(SloMetric::Tpot).is_some_and(|x| (x / 4000.0 - 1.0).abs() < 0.05), "{:?}", r.fits);
        }
    }

    #[test]
    fn a_bounded_latency_without_a_reading_stops_learning_and_a_breach_of_either_lowers_the_estimate() {
        let slo = CalibrationSlo::both(2.0, 0.1, 0.99);
        let mut c = Calibrator::new(slo, 5000.0, 60.0);
        let w = window(0.0, 1000.0);
        // TTFT quiet, TPOT histogram missing: not evidence of headroom.
        c.observe(Reading { quantiles: ByMetric { ttft: Some(0.3), tpot: None }, ..reading(0.0, 4, 4000.0, &w) });
        assert_eq!(c.report().evidence.unwrap().verdict, Verdict::NoReading);
        assert_eq!(c.capacity(), 5000.0);
        assert!(c.explain(0.0).contains("p99 ttft 300 ms vs SLO 2 s, tpot no reading"), "{}", c.explain(0.0));
        // TTFT quiet, TPOT over its bound: down one step, and the rule says which bound.
        c.observe(Reading { quantiles: ByMetric { ttft: Some(0.3), tpot: Some(0.15) }, ..reading(15.0, 4, 4000.0, &w) });
        let u = c.snapshot().last_update.unwrap();
        assert_eq!((u.from, u.to), (5000.0, 4500.0));
        assert!(matches!(u.rule, Rule::Breach { metric: SloMetric::Tpot, .. }), "{u:?}");
        // Both quiet at a good share of the estimate: one step up (every bound has headroom).
        c.observe(Reading { quantiles: ByMetric { ttft: Some(0.3), tpot: Some(0.03) }, ..reading(90.0, 4, 4000.0, &w) });
        assert_eq!(c.snapshot().last_update.unwrap().rule, Rule::Headroom);
        assert!((c.capacity() - 4950.0).abs() < 1e-9);
        // TTFT quiet, TPOT between half and the bound: TPOT holds, so no step up.
        c.observe(Reading { quantiles: ByMetric { ttft: Some(0.3), tpot: Some(0.07) }, ..reading(180.0, 4, 4000.0, &w) });
        assert!((c.capacity() - 4950.0).abs() < 1e-9);
    }
}
