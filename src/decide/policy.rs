//! The decision: from what the fleet is doing to how many replicas it should have.
//!
//! Pure code with no I/O and no clock, so the server and the simulator run exactly the same
//! arithmetic. Every decision carries each signal's raw value, its demand in replicas and its
//! contribution to the blend, plus the reason for the final number, so an operator can tell at
//! 3 a.m. why the fleet is the size it is. See `docs/policy.md` for the rationale.

use std::{
    fmt::{self, Write as _},
    time::Duration,
};

use serde::Serialize;

use crate::{
    decide::{
        calibrate::{CapacityMode, CapacityReport},
        forecast::{Ahead, ForecastMode, ForecastSpec, Model, NoForecast, Outlook},
    },
    read::vllm::{HistogramSnapshot, SloLatency},
};

/// The signals the policy blends. The order is the display order in explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Requests waiting in the engine queues (`vllm:num_requests_waiting`), summed over the fleet.
    QueueDepth,
    /// Prompt + generation tokens per second, summed over the fleet.
    TokensPerSecond,
    /// A latency quantile (TTFT by default) over the fleet, from histogram deltas.
    Latency,
    /// GPU duty cycle from dcgm-exporter, 0..1 per pod, summed over the fleet.
    GpuUtilization,
    /// KV-cache usage, 0..1 per pod (max over engines), summed over the fleet.
    KvCacheUsage,
}

impl Signal {
    /// Every signal, in display order.
    pub const ALL: [Signal; 5] =
        [Signal::QueueDepth, Signal::TokensPerSecond, Signal::Latency, Signal::GpuUtilization, Signal::KvCacheUsage];

    /// Stable snake_case name, used in metrics labels, logs and the HTTP API.
    pub fn as_str(self) -> &'static str {
        self.def().name
    }

    /// Everything said once about this signal ([`SIGNALS`]).
    pub fn def(self) -> &'static SignalDef {
        &SIGNALS[self.index()]
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Signals read from differences between scrapes (a counter's rate, a histogram's window):
    /// the first scrape after a start cannot give them.
    pub fn needs_history(self) -> bool {
        matches!(self, Signal::TokensPerSecond | Signal::Latency)
    }

    /// Additive signals are sums of per-pod loads: a pod that could not be scraped can be
    /// imputed (as zero or as exactly at target). Latency is a fleet-wide ratio and is not.
    fn is_additive(self) -> bool {
        !matches!(self, Signal::Latency)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a signal's per-replica target is written in metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// A positive number in the signal's unit.
    Positive,
    /// A ratio in (0, 1], or a percentage such as `70%`.
    Ratio,
    /// A positive number, or `auto` / `auto:N` to learn it from the fleet (starting at N, else
    /// at the default).
    PositiveOrAuto,
}

/// One signal, said once: its name, its metadata keys, how its target is written, and its
/// defaults. Metadata parsing (`spec`), [`PolicyConfig::default`] and the README's key table
/// (checked by a test in `spec`) all derive from [`SIGNALS`]; adding a signal starts here.
#[derive(Debug)]
pub struct SignalDef {
    /// The signal.
    pub signal: Signal,
    /// snake_case name (metrics labels, logs, HTTP API).
    pub name: &'static str,
    /// Metadata key of the per-replica target.
    pub target_key: &'static str,
    /// Metadata key of the weight in the blend.
    pub weight_key: &'static str,
    /// How the target is written.
    pub form: TargetForm,
    /// Unit of the target (README column "unit / values"; error messages).
    pub unit: &'static str,
    /// What the target means (README column "meaning").
    pub meaning: &'static str,
    /// Default per-replica target.
    pub default_target: f64,
    /// Default weight (0: off unless the ScaledObject turns it on).
    pub default_weight: f64,
    /// Why the weight defaults as it does, when it needs saying (README).
    pub weight_note: &'static str,
}

/// Every signal, in [`Signal::ALL`] order. Each target is one replica's capacity in that
/// signal's unit, as the design's formula `replicas = load x peakFactor / capacity` means it:
/// what one replica does at saturation, the peak factor being the head-room. For tokens/s that
/// is what `vllm bench serve --request-rate inf --max-concurrency <max_num_seqs>` measures on one
/// replica with the traffic's lengths (prompt + generation tokens/s); the default is the
/// modelled replica's (Llama-3.1-70B FP8 on 2 x H100, vLLM TP2) on ServeGen-like lengths and is
/// the one place that number is written. GPU utilisation is weighted 0 because under continuous
/// batching the duty cycle sits near 100 % whatever the load (the simulator measures 97 % on a
/// static fleet doing 29 % of its capacity).
pub const SIGNALS: [SignalDef; 5] = [
    SignalDef {
        signal: Signal::QueueDepth,
        name: "queue_depth",
        target_key: "targetQueueDepth",
        weight_key: "weightQueueDepth",
        form: TargetForm::Positive,
        unit: "requests waiting per replica",
        meaning: "the queue one replica drains within the TTFT SLO: SLO x its saturation requests/s (2 s x ~5 req/s for \
                  the default replica); the fleet grows past target / peakFactor waiting per replica",
        default_target: 10.0,
        default_weight: 1.0,
        weight_note: "weight in the blend (0 disables)",
    },
    SignalDef {
        signal: Signal::TokensPerSecond,
        name: "tokens_per_second",
        target_key: "targetTokensPerSecond",
        weight_key: "weightTokensPerSecond",
        form: TargetForm::PositiveOrAuto,
        unit: "prompt+generation tokens/s per replica, or `auto` / `auto:N`",
        meaning: "one replica's saturation throughput: prompt + generation tokens/s from `vllm bench serve --request-rate \
                  inf --max-concurrency <max_num_seqs>` on your lengths (the default is the simulator's Llama-3.1-70B on \
                  2 x H100); `auto` learns it from the fleet's latency against the SLO, starting at N (default when an \
                  SLO key is set, see docs/policy.md)",
        default_target: 10500.0,
        default_weight: 1.0,
        weight_note: "",
    },
    SignalDef {
        signal: Signal::Latency,
        name: "latency",
        target_key: "targetLatencySeconds",
        weight_key: "weightLatency",
        form: TargetForm::Positive,
        unit: "seconds",
        meaning: "latency signal target (below a 2 s TTFT SLO, so it acts first; with an SLO key, 3/4 of the bound of \
                  `latencyMetric`)",
        default_target: 1.5,
        default_weight: 1.0,
        weight_note: "",
    },
    SignalDef {
        signal: Signal::GpuUtilization,
        name: "gpu_utilization",
        target_key: "targetGpuUtilization",
        weight_key: "weightGpuUtilization",
        form: TargetForm::Ratio,
        unit: "ratio or `70%`",
        meaning: "GPU signal target",
        default_target: 0.7,
        default_weight: 0.0,
        weight_note: "off by default: GPU duty cycle is ~100 % whenever a batch runs",
    },
    SignalDef {
        signal: Signal::KvCacheUsage,
        name: "kv_cache_usage",
        target_key: "targetKvCacheUsage",
        weight_key: "weightKvCacheUsage",
        form: TargetForm::Ratio,
        unit: "ratio or `80%`",
        meaning: "KV-cache usage of one replica at saturation (read during the tokens/s benchmark; vLLM preempts near \
                  1); the fleet grows past target / peakFactor per replica",
        default_target: 0.8,
        default_weight: 1.0,
        weight_note: "",
    },
];

/// One value per signal, indexed by [`Signal`]: keeps per-signal settings in one typed place.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SignalMap<T>([T; 5]);

impl<T: Copy> SignalMap<T> {
    /// Builds a map from a function of each signal.
    pub fn from_fn(mut f: impl FnMut(Signal) -> T) -> Self {
        SignalMap(Signal::ALL.map(&mut f))
    }
    /// The value for `s`.
    pub fn get(&self, s: Signal) -> T {
        self.0[s.index()]
    }
    /// Sets the value for `s`.
    pub fn set(&mut self, s: Signal, v: T) {
        self.0[s.index()] = v;
    }
}

/// How per-signal demands become one demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlendMode {
    /// The most demanding signal wins (each signal's demand scaled by its weight): safe for
    /// latency SLOs, since any saturated resource scales the fleet.
    Max,
    /// Weighted mean of the available signals' demands: smoother, but one saturated signal can be
    /// outvoted.
    Weighted,
}

impl BlendMode {
    /// Name as written in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            BlendMode::Max => "max",
            BlendMode::Weighted => "weighted",
        }
    }
}

/// The policy's configuration for one ScaledObject (validated by `spec`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyConfig {
    /// Per-replica target of each signal (queue depth, tokens/s, seconds, ratio, ratio).
    #[serde(serialize_with = "ser_map")]
    pub targets: SignalMap<f64>,
    /// Weight of each signal; 0 disables it.
    #[serde(serialize_with = "ser_map")]
    pub weights: SignalMap<f64>,
    /// How the signals are blended.
    pub blend: BlendMode,
    /// Whether the tokens/s target is the configured number or learned from the fleet (then
    /// the configured number is where the learning starts).
    pub capacity: CapacityMode,
    /// Head-room multiplier applied to the blended demand (1.5 = run at two thirds of target).
    pub peak_factor: f64,
    /// Lower replica bound.
    pub min_replicas: u32,
    /// Upper replica bound.
    pub max_replicas: u32,
    /// The fleet is active when requests in flight (waiting + running) exceed this.
    pub activation_threshold: f64,
    /// Predictive scaling: whether demand is forecast, and whether the forecast sets a floor.
    pub forecast: ForecastSpec,
}

fn ser_map<S: serde::Serializer>(m: &SignalMap<f64>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(5))?;
    for sig in Signal::ALL {
        map.serialize_entry(sig.as_str(), &m.get(sig))?;
    }
    map.end()
}

impl Default for PolicyConfig {
    /// Per-signal targets and weights from [`SIGNALS`] (see there why); max blend, a fixed
    /// tokens/s target, the design's peak factor [`DEFAULT_PEAK_FACTOR`], 2..20 replicas.
    fn default() -> Self {
        PolicyConfig {
            targets: SignalMap::from_fn(|s| s.def().default_target),
            weights: SignalMap::from_fn(|s| s.def().default_weight),
            blend: BlendMode::Max,
            capacity: CapacityMode::Fixed,
            peak_factor: DEFAULT_PEAK_FACTOR,
            min_replicas: 2,
            max_replicas: 20,
            activation_threshold: 0.0,
            forecast: ForecastSpec::default(),
        }
    }
}

/// The design's head-room: `replicas = load x 1.5 / replica capacity`, each replica's capacity
/// being what a saturation benchmark of one replica measures. The fleet then runs at two thirds
/// of that, which leaves room for the bursts a 60 s window and a 2-5 minute cold start cannot
/// follow.
pub const DEFAULT_PEAK_FACTOR: f64 = 1.5;

/// What one tick saw of the fleet. Built by `signals` (server) or the fleet model (simulator).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FleetObservation {
    /// Ready pods known to discovery (the ones we try to scrape).
    pub ready_pods: u32,
    /// Pods that exist but are not Ready yet: capacity on its way.
    pub starting_pods: u32,
    /// Fleet totals of each signal over the pods that reported it (`None`: no pod reported it).
    /// Additive signals are sums of per-pod values; latency is the fleet quantile in seconds.
    pub totals: SignalMap<Option<f64>>,
    /// How many Ready pods reported each signal.
    pub reporting: SignalMap<u32>,
    /// Requests in flight (waiting + running) over the pods scraped.
    pub in_flight: f64,
    /// The fleet's latency histogram over the window (bucket deltas summed over the reporting
    /// pods), from which the latency total is the quantile: the capacity estimator reads it for
    /// its own quantile and request count.
    pub latency_window: Option<HistogramSnapshot>,
    /// The fleet's TTFT and TPOT histograms over the window, where the pods' samples carry
    /// them: the capacity estimator checks each bound of the SLO against its own histogram.
    pub slo_windows: SloLatency,
}

/// One signal's part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalReport {
    /// Which signal.
    pub signal: Signal,
    /// Fleet total (or quantile, for latency) over reporting pods; `None` when nobody reported.
    pub raw: Option<f64>,
    /// Per-replica target.
    pub target: f64,
    /// Weight in the blend.
    pub weight: f64,
    /// Ready pods that reported this signal.
    pub reporting_pods: u32,
    /// Replicas needed for this signal at target, unreported pods counted as zero load.
    pub demand: Option<f64>,
    /// Same with unreported pods counted as exactly at target.
    pub demand_if_missing_at_target: Option<f64>,
    /// This signal's share of the blended demand that was used.
    pub contribution: f64,
}

/// Why the decision is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// More replicas are needed than there are (ready + starting).
    ScaleUp,
    /// Fewer replicas are needed, even with unscraped pods counted as at target.
    ScaleDown,
    /// Keep the current size: the estimates disagree because some pods went unscraped, or the
    /// demand matches the fleet.
    Hold,
}

/// A replica decision and its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Replicas the fleet should have: what KEDA gets.
    pub desired_replicas: u32,
    /// Blended demand in replicas at target (before the peak factor).
    pub demand: f64,
    /// `demand x peak_factor`, before rounding and bounds.
    pub with_peak: f64,
    /// Ready + starting pods when the decision was made.
    pub current_replicas: u32,
    /// Ready pods.
    pub ready_pods: u32,
    /// Pods not Ready yet.
    pub starting_pods: u32,
    /// The signal that decided (max mode) or weighed most (weighted mode).
    pub dominant: Option<Signal>,
    /// Scale up, down or hold.
    pub outcome: Outcome,
    /// True when the bounds changed the number.
    pub clamped: bool,
    /// Whether the fleet has work (for IsActive).
    pub active: bool,
    /// Requests in flight.
    pub in_flight: f64,
    /// Per-signal detail.
    pub signals: Vec<SignalReport>,
    /// The learned tokens/s capacity and its evidence (`targetTokensPerSecond: auto`), else
    /// `None`.
    pub capacity: Option<CapacityReport>,
    /// The demand forecast and the floor it sets (`None` with `forecastMode: off`).
    pub forecast: Option<FloorReport>,
    /// Enabled signals that have not had their first value since this scaler started (rates
    /// need two scrapes, latency a window of them): while any is, the fleet is not shrunk.
    pub warming_up: Vec<Signal>,
    /// One-line human explanation.
    pub reason: String,
}

/// Why no decision could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoDecision {
    /// No enabled signal has data: the answer must be "unavailable", never zero.
    #[error("no enabled signal has data (ready pods: {ready}, signals enabled: {enabled})")]
    NoSignal {
        /// Ready pods.
        ready: u32,
        /// Enabled signals, comma separated.
        enabled: String,
    },
}

/// Rounds away floating-point dust before `ceil`, so 3.0000000000004 replicas is 3, not 4.
/// Largest latency-to-target ratio the latency signal acts on.
pub const LATENCY_RATIO_CAP: f64 = 2.0;

fn ceil_replicas(x: f64) -> f64 {
    ((x * 1e9).round() / 1e9).ceil()
}

fn clamp(cfg: &PolicyConfig, x: f64) -> (u32, bool) {
    let c = ceil_replicas(x.max(0.0));
    let min = f64::from(cfg.min_replicas);
    let max = f64::from(cfg.max_replicas);
    let v = c.clamp(min, max);
    (v as u32, v != c)
}

/// Per-signal demands under both imputations for unscraped pods.
fn signal_demands(cfg: &PolicyConfig, obs: &FleetObservation, s: Signal) -> SignalReport {
    let target = cfg.targets.get(s);
    let weight = cfg.weights.get(s);
    let raw = obs.totals.get(s);
    let reporting = obs.reporting.get(s);
    let (demand, at_target) = match raw {
        None => (None, None),
        Some(v) if s.is_additive() => {
            let missing = f64::from(obs.ready_pods.saturating_sub(reporting));
            let d = v / target;
            (Some(d), Some(d + missing))
        }
        Some(v) => {
            // Latency: the ratio to target applied to the pods serving now (HPA-style), capped
            // so a lagging window can at most ask to double the fleet per decision (as llm-d
            // clamps its SLO ratio at 2). Its target already sits below the SLO, so it carries
            // its own head-room: divided by the peak factor here, the fleet grows exactly when
            // the quantile exceeds the target (with the factor on top, a 1.5 s target would act
            // at 1 s and a TPOT target at two thirds of itself, growing the fleet for nothing).
            let d = f64::from(obs.ready_pods.max(1)) * (v / target).min(LATENCY_RATIO_CAP) / cfg.peak_factor;
            (Some(d), Some(d))
        }
    };
    SignalReport {
        signal: s,
        raw,
        target,
        weight,
        reporting_pods: reporting,
        demand,
        demand_if_missing_at_target: at_target,
        contribution: 0.0,
    }
}

/// Blends one set of per-signal demands; returns the demand, the dominant signal and each
/// signal's contribution (in `Signal::ALL` order).
fn blend(cfg: &PolicyConfig, demands: &[(Signal, f64, Option<f64>)]) -> Option<(f64, Signal, [f64; 5])> {
    let mut contrib = [0.0; 5];
    let usable = demands.iter().filter_map(|&(s, w, d)| Some((s, w, d?))).filter(|&(_, w, _)| w > 0.0);
    match cfg.blend {
        BlendMode::Max => {
            let (s, _, d) = usable.map(|(s, w, d)| (s, w, w * d)).fold(None, |best: Option<(Signal, f64, f64)>, cur| match best {
                Some(b) if b.2 >= cur.2 => Some(b),
                _ => Some(cur),
            })?;
            contrib[s.index()] = d;
            Some((d, s, contrib))
        }
        BlendMode::Weighted => {
            let items: Vec<_> = usable.collect();
            let wsum: f64 = items.iter().map(|&(_, w, _)| w).sum();
            if items.is_empty() || wsum <= 0.0 {
                return None;
            }
            let mut total = 0.0;
            let mut dom = (items[0].0, f64::MIN);
            for &(s, w, d) in &items {
                let c = w * d / wsum;
                contrib[s.index()] = c;
                total += c;
                if c > dom.1 {
                    dom = (s, c);
                }
            }
            Some((total, dom.0, contrib))
        }
    }
}

/// Decides the replica count for one tick.
///
/// Missing data follows the rule of the best peers (KAITO, the HPA for pod metrics): a Ready pod
/// that did not report a signal counts as zero load when the result would scale up, and as
/// exactly at target when it would scale down; if the two disagree, hold. When no enabled signal
/// has any data the answer is [`NoDecision`], which the server turns into `UNAVAILABLE` so the
/// HPA holds: never zero, never the minimum.
pub fn decide(cfg: &PolicyConfig, obs: &FleetObservation) -> Result<Decision, NoDecision> {
    let mut reports: Vec<SignalReport> = Signal::ALL.iter().map(|&s| signal_demands(cfg, obs, s)).collect();
    let low: Vec<_> = reports.iter().map(|r| (r.signal, r.weight, r.demand)).collect();
    let high: Vec<_> = reports.iter().map(|r| (r.signal, r.weight, r.demand_if_missing_at_target)).collect();
    let (Some(lo), Some(hi)) = (blend(cfg, &low), blend(cfg, &high)) else {
        let enabled: Vec<_> = Signal::ALL.iter().filter(|s| cfg.weights.get(**s) > 0.0).map(|s| s.as_str()).collect();
        return Err(NoDecision::NoSignal { ready: obs.ready_pods, enabled: enabled.join(",") });
    };
    let current = obs.ready_pods + obs.starting_pods;
    let (up, up_clamped) = clamp(cfg, lo.0 * cfg.peak_factor);
    let (down, down_clamped) = clamp(cfg, hi.0 * cfg.peak_factor);
    let (desired, outcome, used, clamped) = if up > current {
        (up, Outcome::ScaleUp, lo, up_clamped)
    } else if down < current {
        (down, Outcome::ScaleDown, hi, down_clamped)
    } else {
        // Between the two estimates, hold; but never outside the bounds.
        let (held, c) = clamp(cfg, f64::from(current));
        (held, Outcome::Hold, lo, c)
    };
    for r in &mut reports {
        r.contribution = used.2[r.signal.index()];
    }
    let active = obs.in_flight > cfg.activation_threshold;
    let mut d = Decision {
        desired_replicas: desired,
        demand: used.0,
        with_peak: used.0 * cfg.peak_factor,
        current_replicas: current,
        ready_pods: obs.ready_pods,
        starting_pods: obs.starting_pods,
        dominant: Some(used.1),
        outcome,
        clamped,
        active,
        in_flight: obs.in_flight,
        signals: reports,
        capacity: None,
        forecast: None,
        warming_up: Vec::new(),
        reason: String::new(),
    };
    d.reason = explain(cfg, &d);
    Ok(d)
}

/// Where the floor's cold start comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum ColdStartSource {
    /// The `coldStart` key.
    Key,
    /// The 90th percentile of the Ready pods' creation-to-Ready times.
    Measured {
        /// Pods it was measured over.
        pods: usize,
    },
    /// The default (no key, no pod measured yet).
    Default,
}

/// What the forecast said at a decision and what it did to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FloorReport {
    /// Forecast only (recorded, not acted on) or forecast and scale.
    pub mode: ForecastMode,
    /// The cold start planned for, seconds.
    pub cold_start_s: u64,
    /// Where it comes from.
    pub cold_start_from: ColdStartSource,
    /// Seconds ahead the floor holds for (cold start + scheduling buffer, at most the horizon).
    pub lead_s: u64,
    /// The model used (`None`: no forecast, see `unavailable`).
    pub model: Option<Model>,
    /// Forecast demand at `lead_s` ahead, tokens/s.
    pub point: Option<f64>,
    /// The interval's lower bound there, tokens/s.
    pub lower: Option<f64>,
    /// Peak of the interval's upper bound from now to `lead_s` ahead, tokens/s.
    pub upper: Option<f64>,
    /// The model's recent sMAPE at the horizon (0..2; x 100 for the usual percentage).
    pub smape: Option<f64>,
    /// Its recent MASE at the horizon.
    pub mase: Option<f64>,
    /// Replicas the forecast asks for: `upper x peakFactor / tokens/s target`, within bounds.
    pub floor: Option<u32>,
    /// Whether the forecast has skill: its MASE below [`MAX_MASE_TO_ACT`] (it beats the naive
    /// forecast one horizon back). Without skill it is shown, never acted on.
    pub skilled: bool,
    /// Whether the floor raised the decision (only with `forecastAndScale`, and skill).
    pub bound: bool,
    /// Why there is no forecast, when there is none.
    pub unavailable: Option<String>,
}

/// A forecast acts only when its recent MASE is below this: one no better than "demand will be
/// what it was one horizon ago" adds nothing the reactive signals do not already see, and its
/// upper bound would only add head-room (on the ServeGen curve, whose 10-minute windows jump by
/// 14 % sMAPE, such a floor cost 9 % more GPU-hours for no better worst hour).
pub const MAX_MASE_TO_ACT: f64 = 1.0;

/// Puts the forecast's floor under a reactive decision. The floor is the replicas that the
/// upper bound of the forecast demand over the next cold start + buffer needs at the tokens/s
/// target with the peak factor; it only ever raises the decision (a scale-down comes from the
/// present alone, and happens once the forecast agrees), and only with `forecastAndScale` and a
/// forecast with skill ([`MAX_MASE_TO_ACT`]). Either way the decision records what it said.
pub fn apply_forecast_floor(
    cfg: &PolicyConfig,
    d: &mut Decision,
    outlook: Result<&Outlook, &NoForecast>,
    cold_start: Duration,
    cold_start_from: ColdStartSource,
    now_bucket: u64,
) {
    let spec = &cfg.forecast;
    let lead = spec.lead_buckets_with(cold_start);
    let mut r = FloorReport {
        mode: spec.mode,
        cold_start_s: cold_start.as_secs(),
        cold_start_from,
        lead_s: lead * crate::decide::forecast::BUCKET_S,
        model: None,
        point: None,
        lower: None,
        upper: None,
        smape: None,
        mase: None,
        floor: None,
        skilled: false,
        bound: false,
        unavailable: None,
    };
    match outlook.map(|o| (o, o.ahead(now_bucket, lead))) {
        Err(why) => {
            r.unavailable = Some(why.to_string());
            let _ = write!(d.reason, "; forecast: {why}");
        }
        Ok((o, None)) => {
            let why = format!(
                "the last forecast is {} min old (demand not recorded since: a Ready pod without tokens/s): not used",
                o.age(now_bucket)
            );
            let _ = write!(d.reason, "; forecast: {why}");
            r.unavailable = Some(why);
        }
        Ok((o, Some(Ahead { peak_upper: upper, point, lower }))) => {
            let target = cfg.targets.get(Signal::TokensPerSecond);
            let (floor, _) = clamp(cfg, upper * cfg.peak_factor / target);
            r.model = Some(o.model);
            r.point = Some(point);
            r.lower = Some(lower);
            r.upper = Some(upper);
            r.smape = Some(o.smape);
            r.mase = o.mase;
            r.floor = Some(floor);
            r.skilled = o.mase.is_some_and(|m| m < MAX_MASE_TO_ACT);
            let acts = spec.mode == ForecastMode::ForecastAndScale && r.skilled;
            r.bound = acts && floor > d.desired_replicas;
            let _ = write!(
                d.reason,
                "; forecast ({}, sMAPE {:.1} %): {} tok/s in {} s (cold start {} s{} + buffer {} s), upper {} x {} peak / {} = floor {floor}",
                o.model,
                o.smape * 100.0,
                fmt_num(point.round()),
                r.lead_s,
                r.cold_start_s,
                match cold_start_from {
                    ColdStartSource::Key => String::new(),
                    ColdStartSource::Measured { pods } => format!(" measured over {pods} pod(s)"),
                    ColdStartSource::Default => " default".to_string(),
                },
                spec.buffer.as_secs(),
                fmt_num(upper.round()),
                fmt_num(cfg.peak_factor),
                fmt_num(target)
            );
            if r.bound {
                let _ = write!(d.reason, " (binds: {} -> {floor})", d.desired_replicas);
                d.desired_replicas = floor;
                d.outcome = if floor > d.current_replicas { Outcome::ScaleUp } else { Outcome::Hold };
            } else if spec.mode != ForecastMode::ForecastAndScale {
                d.reason.push_str(" (forecast only: not acted on)");
            } else if !r.skilled {
                let _ = write!(
                    d.reason,
                    " (no skill: MASE {} >= {MAX_MASE_TO_ACT}, not acted on)",
                    o.mase.map_or("unknown".into(), |m| format!("{m:.2}"))
                );
            }
        }
    }
    d.forecast = Some(r);
}

/// A one-line explanation, e.g.
/// `scale_up 4 -> 6: queue_depth 34 / 10 per replica = 3.40 replicas x 1.5 peak = 5.10 -> 6`.
fn explain(cfg: &PolicyConfig, d: &Decision) -> String {
    let mut s = String::new();
    let verb = match d.outcome {
        Outcome::ScaleUp => "scale up",
        Outcome::ScaleDown => "scale down",
        Outcome::Hold => "hold",
    };
    let _ = write!(s, "{verb} {} -> {}: ", d.current_replicas, d.desired_replicas);
    if let Some(dom) = d.dominant.and_then(|sig| d.signals.iter().find(|r| r.signal == sig)) {
        let raw = dom.raw.unwrap_or(f64::NAN);
        match cfg.blend {
            BlendMode::Max => {
                if dom.signal == Signal::Latency {
                    let ratio = raw / dom.target;
                    let _ = write!(s, "latency {raw:.3} s vs target {} s = ratio {ratio:.2}", fmt_num(dom.target));
                    if ratio > LATENCY_RATIO_CAP {
                        let _ = write!(s, " (capped at {LATENCY_RATIO_CAP})");
                    }
                    let _ = write!(s, " x {} ready / {} peak (its own head-room)", d.ready_pods, fmt_num(cfg.peak_factor));
                } else {
                    let _ = write!(s, "{} {} / {} per replica", dom.signal, fmt_num(raw), fmt_num(dom.target));
                }
                if dom.weight != 1.0 {
                    let _ = write!(s, " x weight {}", fmt_num(dom.weight));
                }
                let _ = write!(s, " = {:.2} replicas", d.demand);
            }
            BlendMode::Weighted => {
                let _ = write!(s, "weighted demand {:.2} replicas (largest share {} {:.2})", d.demand, dom.signal, dom.contribution);
            }
        }
    }
    let _ = write!(s, " x {} peak = {:.2}", fmt_num(cfg.peak_factor), d.with_peak);
    if d.clamped {
        let _ = write!(s, ", bounded to [{}, {}]", cfg.min_replicas, cfg.max_replicas);
    }
    let unscraped = d
        .signals
        .iter()
        .filter(|r| r.signal.is_additive() && r.raw.is_some() && cfg.weights.get(r.signal) > 0.0)
        .map(|r| (d.ready_pods.saturating_sub(r.reporting_pods), r.signal))
        // The first signal with the most missing pods (display order), not the last.
        .fold(None, |best: Option<(u32, Signal)>, cur| if best.is_none_or(|b| cur.0 > b.0) { Some(cur) } else { best });
    if let Some((n, sig)) = unscraped.filter(|(n, _)| *n > 0) {
        let rule = match d.outcome {
            Outcome::ScaleUp => "counted as zero load (scale-up)",
            Outcome::ScaleDown => "counted as at target (scale-down)",
            Outcome::Hold => "the up and down estimates disagree: holding",
        };
        let _ = write!(s, "; {n} ready pod(s) without {sig} data {rule}");
    }
    if d.starting_pods > 0 {
        let _ = write!(s, "; {} pod(s) starting counted as capacity on its way", d.starting_pods);
    }
    s
}

/// A number for people: no trailing zeros, at most three decimals (`1.5`, `34`, `0.125`).
fn fmt_num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signal_table_is_in_signal_order_with_distinct_names_and_keys() {
        let mut seen = std::collections::HashSet::new();
        for (i, def) in SIGNALS.iter().enumerate() {
            assert_eq!(def.signal, Signal::ALL[i], "SIGNALS[{i}]");
            assert_eq!(def.signal.def().name, def.name);
            for k in [def.name, def.target_key, def.weight_key] {
                assert!(seen.insert(k), "{k} appears twice");
            }
            assert!(def.default_target > 0.0 && def.default_weight >= 0.0);
            assert!(def.form != TargetForm::Ratio || def.default_target <= 1.0, "{}: a ratio target is at most 1", def.name);
        }
    }

    fn obs(ready: u32, totals: &[(Signal, f64, u32)]) -> FleetObservation {
        let mut o = FleetObservation { ready_pods: ready, ..Default::default() };
        for &(s, v, n) in totals {
            o.totals.set(s, Some(v));
            o.reporting.set(s, n);
        }
        o
    }

    #[test]
    fn queue_pressure_scales_up_with_peak_factor() {
        let cfg = PolicyConfig { peak_factor: 1.5, ..Default::default() };
        // 34 waiting / 10 = 3.4 replicas, x1.5 = 5.1 -> 6.
        let d = decide(&cfg, &obs(4, &[(Signal::QueueDepth, 34.0, 4)])).unwrap();
        assert_eq!(d.desired_replicas, 6);
        assert_eq!(d.outcome, Outcome::ScaleUp);
        assert_eq!(d.dominant, Some(Signal::QueueDepth));
        assert!(d.reason.contains("queue_depth 34 / 10 per replica"), "{}", d.reason);
        let q = d.signals.iter().find(|r| r.signal == Signal::QueueDepth).unwrap();
        assert!((q.contribution - 3.4).abs() < 1e-9);
    }

    #[test]
    fn bounds_apply() {
        let cfg = PolicyConfig::default();
        let d = decide(&cfg, &obs(3, &[(Signal::QueueDepth, 0.0, 3)])).unwrap();
        assert_eq!(d.desired_replicas, 2);
        assert!(d.clamped);
        let d = decide(&cfg, &obs(3, &[(Signal::QueueDepth, 10_000.0, 3)])).unwrap();
        assert_eq!(d.desired_replicas, 20);
        assert!(d.clamped);
    }

    #[test]
    fn exact_multiples_do_not_round_up() {
        let cfg = PolicyConfig { peak_factor: 1.0, ..Default::default() };
        // 0.1 * 30 is 3.0000000000000004 in binary floating point.
        let d = decide(&cfg, &obs(3, &[(Signal::KvCacheUsage, 0.1 * 30.0 * 0.8, 3)])).unwrap();
        assert_eq!(d.desired_replicas, 3);
    }

    #[test]
    fn max_blend_takes_the_most_demanding_signal() {
        let mut cfg = PolicyConfig { peak_factor: 1.5, ..Default::default() };
        cfg.targets.set(Signal::TokensPerSecond, 2000.0);
        let d =
            decide(&cfg, &obs(4, &[(Signal::QueueDepth, 10.0, 4), (Signal::TokensPerSecond, 12_000.0, 4), (Signal::KvCacheUsage, 1.6, 4)]))
                .unwrap();
        // tokens: 12000 / 2000 = 6 replicas -> 9.
        assert_eq!(d.dominant, Some(Signal::TokensPerSecond));
        assert_eq!(d.desired_replicas, 9);
    }

    #[test]
    fn weighted_blend_averages_available_signals() {
        let mut cfg = PolicyConfig { blend: BlendMode::Weighted, peak_factor: 1.0, ..Default::default() };
        cfg.weights.set(Signal::TokensPerSecond, 3.0);
        cfg.targets.set(Signal::TokensPerSecond, 2000.0);
        // queue: 2 replicas (w 1), tokens: 6 replicas (w 3) -> (2 + 18) / 4 = 5.
        let d = decide(&cfg, &obs(4, &[(Signal::QueueDepth, 20.0, 4), (Signal::TokensPerSecond, 12_000.0, 4)])).unwrap();
        assert!((d.demand - 5.0).abs() < 1e-9, "{}", d.demand);
        assert_eq!(d.desired_replicas, 5);
        let sum: f64 = d.signals.iter().map(|r| r.contribution).sum();
        assert!((sum - d.demand).abs() < 1e-9);
    }

    #[test]
    fn zero_weight_disables_a_signal() {
        let cfg = PolicyConfig::default();
        // GPU is weighted 0 by default: a 100 % duty cycle must not scale anything.
        let d = decide(&cfg, &obs(4, &[(Signal::QueueDepth, 0.0, 4), (Signal::GpuUtilization, 4.0, 4)])).unwrap();
        assert_eq!(d.desired_replicas, 2);
    }

    #[test]
    fn no_data_is_not_zero() {
        let cfg = PolicyConfig::default();
        let err = decide(&cfg, &obs(4, &[])).unwrap_err();
        assert!(matches!(err, NoDecision::NoSignal { ready: 4, .. }));
    }

    #[test]
    fn unscraped_pods_count_as_zero_for_scale_up() {
        let cfg = PolicyConfig { peak_factor: 1.0, ..Default::default() };
        // 10 ready, 5 scraped carrying 80 waiting: up estimate 8 < 10, down estimate 8 + 5 = 13 > 10.
        let d = decide(&cfg, &obs(10, &[(Signal::QueueDepth, 80.0, 5)])).unwrap();
        assert_eq!(d.outcome, Outcome::Hold);
        assert_eq!(d.desired_replicas, 10);
        assert!(d.reason.contains("5 ready pod(s) without queue_depth data"), "{}", d.reason);
        // Heavy load on the scraped half: up estimate 12 > 10 scales up, missing pods as zero.
        let d = decide(&cfg, &obs(10, &[(Signal::QueueDepth, 120.0, 5)])).unwrap();
        assert_eq!((d.outcome, d.desired_replicas), (Outcome::ScaleUp, 12));
    }

    #[test]
    fn unscraped_pods_count_as_at_target_for_scale_down() {
        let cfg = PolicyConfig { peak_factor: 1.0, ..Default::default() };
        // 10 ready, 4 scraped and idle: down estimate 0 + 6 = 6 < 10.
        let d = decide(&cfg, &obs(10, &[(Signal::QueueDepth, 0.0, 4)])).unwrap();
        assert_eq!((d.outcome, d.desired_replicas), (Outcome::ScaleDown, 6));
    }

    #[test]
    fn starting_pods_count_as_capacity() {
        let cfg = PolicyConfig { peak_factor: 1.0, ..Default::default() };
        let mut o = obs(4, &[(Signal::QueueDepth, 60.0, 4)]);
        o.starting_pods = 2;
        let d = decide(&cfg, &o).unwrap();
        assert_eq!((d.outcome, d.desired_replicas, d.current_replicas), (Outcome::Hold, 6, 6));
        assert!(d.reason.contains("2 pod(s) starting"), "{}", d.reason);
    }

    #[test]
    fn latency_is_a_ratio_of_ready_pods() {
        let mut cfg = PolicyConfig { peak_factor: 1.0, ..Default::default() };
        cfg.targets.set(Signal::Latency, 5.0);
        // p99 7.5 s against 5 s on 4 ready pods: 6 replicas.
        let d = decide(&cfg, &obs(4, &[(Signal::Latency, 7.5, 4)])).unwrap();
        assert_eq!(d.desired_replicas, 6);
        assert!(d.reason.contains("x 4 ready"), "{}", d.reason);
        // A 10x breach asks for at most double.
        let d = decide(&cfg, &obs(4, &[(Signal::Latency, 50.0, 4)])).unwrap();
        assert_eq!(d.desired_replicas, 8);
    }

    #[test]
    fn activation_threshold() {
        let cfg = PolicyConfig { activation_threshold: 3.0, ..Default::default() };
        let mut o = obs(2, &[(Signal::QueueDepth, 0.0, 2)]);
        o.in_flight = 3.0;
        assert!(!decide(&cfg, &o).unwrap().active);
        o.in_flight = 3.5;
        assert!(decide(&cfg, &o).unwrap().active);
    }
}
