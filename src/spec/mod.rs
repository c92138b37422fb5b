//! `scalerMetadata` parsed once into a typed, validated [`ScalerSpec`].
//!
//! KEDA sends the trigger's `metadata` map as strings on every call. We parse it once per
//! distinct map, reject unknown keys (a typo such as `targetQueueDeph` must not silently fall
//! back to a default) and name the key, the value and what was expected in every error, which
//! the gRPC layer returns as `InvalidArgument`.

pub mod batch;
pub mod cost;
pub mod tenancy;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use serde::Serialize;

pub use crate::read::dcgm::GpuField;
use crate::{
    decide::{
        calibrate::{CalibrationSlo, CapacityMode, SloMetric},
        forecast::{ForecastMode, ForecastSpec, Seasons},
        policy::{BlendMode, PolicyConfig, SIGNALS, Signal, TargetForm},
    },
    read::vllm::VllmExtractor,
    spec::tenancy::{NamespaceAccess, is_namespace_name},
};

/// Which latency histogram the latency signal reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyHistogram {
    /// `vllm:time_to_first_token_seconds`: what users feel first, and what queueing inflates.
    Ttft,
    /// `vllm:e2e_request_latency_seconds`.
    E2e,
    /// `vllm:request_queue_time_seconds`.
    Queue,
    /// `vllm:inter_token_latency_seconds` (older: `vllm:time_per_output_token_seconds`).
    Itl,
    /// `vllm:request_time_per_output_token_seconds`.
    Tpot,
}

impl LatencyHistogram {
    const NAMES: &'static str = "ttft, e2e, queue, itl, tpot";

    /// The name as written in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ttft => "ttft",
            Self::E2e => "e2e",
            Self::Queue => "queue",
            Self::Itl => "itl",
            Self::Tpot => "tpot",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "ttft" => Self::Ttft,
            "e2e" => Self::E2e,
            "queue" => Self::Queue,
            "itl" => Self::Itl,
            "tpot" => Self::Tpot,
            _ => return None,
        })
    }

    /// Histogram family names, current first, then older names to fall back to.
    pub fn families(self) -> &'static [&'static str] {
        match self {
            Self::Ttft => &["vllm:time_to_first_token_seconds"],
            Self::E2e => &["vllm:e2e_request_latency_seconds"],
            Self::Queue => &["vllm:request_queue_time_seconds"],
            Self::Itl => &["vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"],
            Self::Tpot => &["vllm:request_time_per_output_token_seconds"],
        }
    }
}

/// The latency signal's definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySpec {
    /// Which histogram.
    pub histogram: LatencyHistogram,
    /// Quantile in (0, 1).
    pub quantile: f64,
    /// Window over which bucket deltas are taken.
    #[serde(with = "humantime_ser")]
    pub window: Duration,
}

impl Default for LatencySpec {
    /// TTFT p99 over 60 s of histogram deltas: what users feel first, over a window long enough
    /// to hold a few requests per replica at low load.
    fn default() -> Self {
        LatencySpec { histogram: LatencyHistogram::Ttft, quantile: 0.99, window: Duration::from_secs(60) }
    }
}

/// Which latency bounds the SLO sets: at least one (an SLO with neither is no SLO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SloBounds {
    /// Time to first token only.
    Ttft(#[serde(with = "humantime_ser")] Duration),
    /// Time per output token only.
    Tpot(#[serde(with = "humantime_ser")] Duration),
    /// Both.
    Both {
        /// Time to first token.
        #[serde(with = "humantime_ser")]
        ttft: Duration,
        /// Time per output token.
        #[serde(with = "humantime_ser")]
        tpot: Duration,
    },
}

impl SloBounds {
    /// The TTFT bound, if set.
    pub fn ttft(self) -> Option<Duration> {
        match self {
            SloBounds::Ttft(t) | SloBounds::Both { ttft: t, .. } => Some(t),
            SloBounds::Tpot(_) => None,
        }
    }

    /// The TPOT bound, if set.
    pub fn tpot(self) -> Option<Duration> {
        match self {
            SloBounds::Tpot(t) | SloBounds::Both { tpot: t, .. } => Some(t),
            SloBounds::Ttft(_) => None,
        }
    }
}

/// The latency SLO of a ScaledObject (`sloTtft`, `sloTpot`, `sloQuantile`): `quantile` of the
/// requests within the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SloSpec {
    /// The bounds.
    pub bounds: SloBounds,
    /// Share of requests that must be within them, in (0, 1).
    pub quantile: f64,
}

/// What `histogram` measures in SLO terms: TTFT, or TPOT for `tpot` and `itl` (the mean
/// inter-token latency is the TPOT); nothing for end-to-end and queue time.
fn slo_metric(histogram: LatencyHistogram) -> Option<SloMetric> {
    match histogram {
        LatencyHistogram::Ttft => Some(SloMetric::Ttft),
        LatencyHistogram::Tpot | LatencyHistogram::Itl => Some(SloMetric::Tpot),
        LatencyHistogram::E2e | LatencyHistogram::Queue => None,
    }
}

/// Share of the SLO bound the latency signal targets when an SLO derives it: the guard acts
/// before the bound is reached (1.5 s for a 2 s TTFT SLO, the default that was tuned so).
pub const SLO_LATENCY_TARGET_SHARE: f64 = 0.75;

impl SloSpec {
    /// The SLO as the capacity estimator learns against it: every bound it sets, each read from
    /// its own histogram (TTFT, per-request TPOT) whichever one the latency signal watches.
    pub fn calibration(&self) -> CalibrationSlo {
        match self.bounds {
            SloBounds::Ttft(t) => CalibrationSlo::ttft(t.as_secs_f64(), self.quantile),
            SloBounds::Tpot(t) => CalibrationSlo::tpot(t.as_secs_f64(), self.quantile),
            SloBounds::Both { ttft, tpot } => CalibrationSlo::both(ttft.as_secs_f64(), tpot.as_secs_f64(), self.quantile),
        }
    }

    /// The bound on `metric`, if set.
    pub fn bound(&self, metric: SloMetric) -> Option<Duration> {
        match metric {
            SloMetric::Ttft => self.bounds.ttft(),
            SloMetric::Tpot => self.bounds.tpot(),
        }
    }

    /// The histogram an SLO reads by default: TTFT when it bounds TTFT, else TPOT.
    fn histogram(&self) -> LatencyHistogram {
        if self.bounds.ttft().is_some() { LatencyHistogram::Ttft } else { LatencyHistogram::Tpot }
    }
}

/// A statically configured scrape endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticEndpoint {
    /// Name used as the pod name in logs and to join DCGM series (`name=host:port`, else
    /// `host:port`).
    pub name: String,
    /// Address to scrape.
    pub addr: SocketAddr,
}

/// Where the fleet's pods come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PodSource {
    /// Kubernetes: pods matching `selector` in `namespace`; when `selector` is `None`, the
    /// selector of the ScaledObject's scale target.
    Kube {
        /// Namespace of the pods.
        namespace: String,
        /// Explicit label selector.
        selector: Option<String>,
    },
    /// A fixed list (only with `--allow-static-endpoints`).
    Static(Vec<StaticEndpoint>),
}

/// Where GPU activity comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuSource {
    /// GPU signal not collected.
    None,
    /// dcgm-exporter pods found in Kubernetes, one per node.
    KubeDcgm {
        /// Namespace of the dcgm-exporter DaemonSet.
        namespace: String,
        /// Its pods' label selector.
        selector: String,
        /// Its metrics port.
        port: u16,
        /// Field to read.
        field: GpuField,
    },
    /// Fixed dcgm-exporter endpoints (static mode); series are joined on the `pod` label.
    StaticDcgm {
        /// Endpoints to scrape.
        endpoints: Vec<SocketAddr>,
        /// Field to read.
        field: GpuField,
    },
}

/// Everything one ScaledObject asked for, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalerSpec {
    /// The fleet's pods.
    pub pods: PodSource,
    /// vLLM metrics port.
    pub metrics_port: u16,
    /// vLLM metrics path.
    pub metrics_path: String,
    /// Only series whose `model_name` label equals this count.
    pub model_name: Option<String>,
    /// GPU activity source.
    pub gpu: GpuSource,
    /// Latency signal definition.
    pub latency: LatencySpec,
    /// The latency SLO given in this metadata, if any.
    pub slo: Option<SloSpec>,
    /// Policy parameters.
    pub policy: PolicyConfig,
    /// How the fleet's GPUs are priced (reported, never decided on).
    pub cost: cost::CostSpec,
}

/// Server-side context the parse depends on.
#[derive(Debug, Clone)]
pub struct ParseContext<'a> {
    /// Namespace of the ScaledObject (default pod namespace).
    pub namespace: &'a str,
    /// Defaults for the policy (from the server configuration).
    pub policy_defaults: &'a PolicyConfig,
    /// Default latency definition (from the server configuration).
    pub latency_defaults: &'a LatencySpec,
    /// `--allow-static-endpoints`.
    pub allow_static_endpoints: bool,
    /// Whether a Kubernetes client is available.
    pub kube_enabled: bool,
    /// Which other namespaces a ScaledObject may read pods from (`allow_cross_namespace`).
    pub namespace_access: &'a NamespaceAccess,
    /// The cluster's dcgm-exporter selector (`dcgm_selector`): the default of `dcgmSelector`,
    /// and the only selector accepted in a DCGM namespace the ScaledObject may not otherwise
    /// reach, so that namespace yields only the exporter's own pods.
    pub dcgm_selector: &'a str,
    /// The server's price of a GPU-hour (`gpu_hour_price`): the default of `gpuHourPrice`.
    pub gpu_hour_price: f64,
}

impl ParseContext<'_> {
    /// Refuses `namespace` (given with metadata key `key`) unless this ScaledObject may read
    /// pods there.
    fn check_reach(&self, key: &str, namespace: &str) -> Result<(), SpecError> {
        if self.namespace_access.allows(self.namespace, namespace) {
            return Ok(());
        }
        Err(SpecError::Conflict {
            key: key.to_string(),
            problem: format!(
                "\"{namespace}\" is not this ScaledObject's namespace (\"{own}\"): a ScaledObject reads pods only in its own \
                 namespace unless the scaler is started with an allowance such as --allow-cross-namespace {own}:{namespace} \
                 (setting allow_cross_namespace; in force now: {access})",
                own = self.namespace,
                access = self.namespace_access,
            ),
        })
    }
}

/// A metadata problem, always naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A key we do not know.
    #[error("unknown scalerMetadata key \"{key}\"; valid keys: {valid}")]
    UnknownKey {
        /// The key.
        key: String,
        /// All valid keys.
        valid: String,
    },
    /// A value we cannot use.
    #[error("scalerMetadata key \"{key}\": got \"{value}\", expected {expected}")]
    BadValue {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A combination we cannot use.
    #[error("scalerMetadata key \"{key}\": {problem}")]
    Conflict {
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

impl SpecError {
    /// Kubernetes pods asked for on a server without Kubernetes. Also returned by
    /// `discovery::FleetSource::new`, which guards the same combination for specs built otherwise.
    pub fn no_kube() -> Self {
        SpecError::Conflict {
            key: "endpoints".to_string(),
            problem: "required: this server runs without Kubernetes (--no-kube), so pods cannot be discovered".to_string(),
        }
    }

    /// GPU metrics asked for where no dcgm-exporter can be discovered (`when` says why): fixed
    /// ones must be named.
    pub fn dcgm_endpoints_required(when: &str) -> Self {
        SpecError::Conflict { key: "dcgmEndpoints".to_string(), problem: format!("required when GPU metrics are enabled {when}") }
    }
}

/// Keys that choose where pods and GPU numbers come from: per ScaledObject only.
const SOURCE_KEYS: &[&str] = &[
    "mode",
    "podSelector",
    "namespace",
    "metricsPort",
    "metricsPath",
    "modelName",
    "endpoints",
    "gpuSource",
    "gpuField",
    "dcgmNamespace",
    "dcgmSelector",
    "dcgmPort",
    "dcgmEndpoints",
];

/// Keys of the policy other than each signal's target and weight (those come from
/// [`SIGNALS`]): valid in metadata, and server-wide in the configuration's `[defaults]`.
const OTHER_POLICY_KEYS: &[&str] = &[
    "sloTtft",
    "sloTpot",
    "sloQuantile",
    "latencyMetric",
    "latencyQuantile",
    "latencyWindow",
    "blendMode",
    "peakFactor",
    "minReplicas",
    "maxReplicas",
    "activationThreshold",
    "forecastMode",
    "forecastHorizon",
    "forecastSeasons",
    "coldStart",
    "schedulingBuffer",
];

/// Every policy key: each signal's target, then each signal's weight, then the rest.
pub fn policy_keys() -> impl Iterator<Item = &'static str> {
    SIGNALS.iter().map(|d| d.target_key).chain(SIGNALS.iter().map(|d| d.weight_key)).chain(OTHER_POLICY_KEYS.iter().copied())
}

fn find_key(name: &str) -> Option<&'static str> {
    known_keys().find(|k| *k == name)
}

/// The policy key spelled `name` in any capitalisation (environment variables, `[defaults]`).
pub fn policy_key_ignoring_case(name: &str) -> Option<&'static str> {
    policy_keys().find(|k| k.eq_ignore_ascii_case(name))
}

/// Keys KEDA itself always or often sends to every external scaler; accepted and ignored.
const KEDA_KEYS: &[&str] = &["scalerAddress", "enableTLS", "unsafeSsl", "caCert", "tlsClientCert", "tlsClientKey"];

/// The metadata map with every key checked, and `xFromEnv` folded into `x`.
struct Meta<'a> {
    values: HashMap<&'static str, (&'a str, &'a str)>,
}

impl<'a> Meta<'a> {
    /// The serving keys.
    fn new(raw: &'a HashMap<String, String>) -> Result<Self, SpecError> {
        Self::over(raw, find_key, || known_keys().collect())
    }

    /// Checks every key of `raw` with `find` (the key's canonical spelling, or `None` if it is
    /// not one); `valid` lists them all for the error.
    fn over(
        raw: &'a HashMap<String, String>,
        find: impl Fn(&str) -> Option<&'static str>,
        valid: impl Fn() -> Vec<&'static str>,
    ) -> Result<Self, SpecError> {
        let mut values = HashMap::new();
        let mut keys: Vec<&String> = raw.keys().collect();
        keys.sort(); // deterministic errors
        for k in keys {
            if KEDA_KEYS.contains(&k.as_str()) {
                continue;
            }
            let base = k.strip_suffix("FromEnv").unwrap_or(k);
            let Some(known) = find(base) else {
                return Err(SpecError::UnknownKey { key: k.clone(), valid: valid().join(", ") });
            };
            if let Some((prev, _)) = values.insert(known, (k.as_str(), raw[k].as_str())) {
                return Err(SpecError::Conflict { key: k.clone(), problem: format!("given twice (also as \"{prev}\"); keep one") });
            }
        }
        Ok(Meta { values })
    }

    fn get(&self, key: &'static str) -> Option<(&'a str, &'a str)> {
        self.values.get(key).map(|&(k, v)| (k, v.trim()))
    }

    fn parse<T>(&self, key: &'static str, expected: &str, f: impl FnOnce(&str) -> Option<T>) -> Result<Option<T>, SpecError> {
        match self.get(key) {
            None => Ok(None),
            Some((k, v)) => f(v).map(Some).ok_or_else(|| bad(k, v, expected)),
        }
    }

    fn positive(&self, key: &'static str, what: &str) -> Result<Option<f64>, SpecError> {
        self.parse(key, &format!("a positive number ({what})"), |v| v.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0))
    }

    fn non_negative(&self, key: &'static str, what: &str) -> Result<Option<f64>, SpecError> {
        self.parse(key, &format!("a number >= 0 ({what})"), |v| v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0))
    }

    fn port(&self, key: &'static str) -> Result<Option<u16>, SpecError> {
        self.parse(key, "a TCP port 1-65535", |v| v.parse::<u16>().ok().filter(|p| *p > 0))
    }
}

fn bad(key: &str, value: &str, expected: &str) -> SpecError {
    SpecError::BadValue { key: key.to_string(), value: value.to_string(), expected: expected.to_string() }
}

/// A ratio given as `0.7` or as a percentage `70%`.
fn ratio(v: &str) -> Option<f64> {
    let x = match v.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok()? / 100.0,
        None => v.parse::<f64>().ok()?,
    };
    (x.is_finite() && x > 0.0 && x <= 1.0).then_some(x)
}

fn endpoints(key: &str, v: &str) -> Result<Vec<StaticEndpoint>, SpecError> {
    let expected = "a comma-separated list of host:port or name=host:port with IP hosts, e.g. 127.0.0.2:8000";
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, addr) = match item.split_once('=') {
            Some((n, a)) => (n.trim().to_string(), a.trim()),
            None => (item.to_string(), item),
        };
        let addr: SocketAddr = addr.parse().map_err(|_| bad(key, v, expected))?;
        if name.is_empty() {
            return Err(bad(key, v, expected));
        }
        out.push(StaticEndpoint { name, addr });
    }
    if out.is_empty() {
        return Err(bad(key, v, expected));
    }
    Ok(out)
}

/// Validates a label selector string enough to fail early on obvious mistakes; the API server
/// has the last word.
fn selector(v: &str) -> Option<String> {
    let ok = !v.is_empty()
        && v.chars().all(|c| c.is_ascii_alphanumeric() || " -_./=!,()".contains(c))
        && v.chars().filter(|&c| c == '(').count() == v.chars().filter(|&c| c == ')').count();
    ok.then(|| v.to_string())
}

fn quantile_value(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|q| *q > 0.0 && *q < 1.0)
}

/// `targetTokensPerSecond` as written.
enum Capacity {
    /// A number.
    Fixed(f64),
    /// `auto` (start at the default) or `auto:N`.
    Auto(Option<f64>),
}

fn capacity_value(v: &str) -> Option<Capacity> {
    let positive = |x: &str| x.trim().parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0);
    match v.split_once(':') {
        Some((a, n)) if a.eq_ignore_ascii_case("auto") => Some(Capacity::Auto(Some(positive(n)?))),
        _ if v.eq_ignore_ascii_case("auto") => Some(Capacity::Auto(None)),
        _ => positive(v).map(Capacity::Fixed),
    }
}

fn duration(v: &str) -> Option<Duration> {
    humantime::parse_duration(v).ok().filter(|d| !d.is_zero())
}

impl ScalerSpec {
    /// The reader of this ScaledObject's vLLM bodies: its model filter, the latency signal's
    /// histogram and, with an `auto` capacity, the histograms of the SLO's bounds.
    pub fn vllm_extractor(&self) -> VllmExtractor {
        let x = VllmExtractor::new(self.model_name.clone(), self.latency.histogram.families());
        match self.policy.capacity {
            CapacityMode::Auto { slo } => x.reading_slo(slo.bound(SloMetric::Ttft).is_some(), slo.bound(SloMetric::Tpot).is_some()),
            CapacityMode::Fixed => x,
        }
    }

    /// Parses and validates one metadata map.
    pub fn parse(raw: &HashMap<String, String>, ctx: &ParseContext<'_>) -> Result<Self, SpecError> {
        let m = Meta::new(raw)?;
        m.parse("mode", "serving (this map), or batch for a ScaledJob's queue", |v| (v == "serving").then_some(()))?;
        let pods = Self::pod_source(&m, ctx)?;
        let metrics_port = m.port("metricsPort")?.unwrap_or(8000);
        let metrics_path = m
            .parse("metricsPath", "an absolute URL path such as /metrics", |v| {
                (v.starts_with('/') && !v.contains(char::is_whitespace)).then(|| v.to_string())
            })?
            .unwrap_or_else(|| "/metrics".to_string());
        let model_name = m.parse("modelName", "a non-empty model name", |v| (!v.is_empty()).then(|| v.to_string()))?;
        let gpu = Self::gpu_source(&m, ctx, &pods)?;
        let slo = Self::slo(&m)?;
        let latency = LatencySpec {
            histogram: m
                .parse("latencyMetric", &format!("one of {}", LatencyHistogram::NAMES), LatencyHistogram::parse)?
                .or(slo.map(|s| s.histogram()))
                .unwrap_or(ctx.latency_defaults.histogram),
            quantile: m
                .parse("latencyQuantile", "a quantile strictly between 0 and 1, e.g. 0.99", quantile_value)?
                .or(slo.map(|s| s.quantile))
                .unwrap_or(ctx.latency_defaults.quantile),
            window: m.parse("latencyWindow", "a duration such as 60s or 5m", duration)?.unwrap_or(ctx.latency_defaults.window),
        };
        let policy = Self::policy(&m, ctx.policy_defaults, slo.as_ref(), latency.histogram)?;
        let cost = cost::CostSpec::parse(&m, &pods, ctx.gpu_hour_price)?;
        Ok(ScalerSpec { pods, metrics_port, metrics_path, model_name, gpu, latency, slo, policy, cost })
    }

    /// `sloTtft`, `sloTpot`, `sloQuantile` into one [`SloSpec`], if a bound is given.
    fn slo(m: &Meta<'_>) -> Result<Option<SloSpec>, SpecError> {
        let bound = |key| m.parse(key, "a duration such as 2s or 2000ms", duration);
        let (ttft, tpot) = (bound("sloTtft")?, bound("sloTpot")?);
        let q = m.parse("sloQuantile", "a quantile strictly between 0 and 1, e.g. 0.99", quantile_value)?;
        let bounds = match (ttft, tpot) {
            (Some(ttft), Some(tpot)) => SloBounds::Both { ttft, tpot },
            (Some(t), None) => SloBounds::Ttft(t),
            (None, Some(t)) => SloBounds::Tpot(t),
            (None, None) => {
                if let Some((k, _)) = m.get("sloQuantile") {
                    return Err(SpecError::Conflict { key: k.to_string(), problem: "needs a bound: set sloTtft and/or sloTpot".into() });
                }
                return Ok(None);
            }
        };
        Ok(Some(SloSpec { bounds, quantile: q.unwrap_or(LatencySpec::default().quantile) }))
    }

    fn pod_source(m: &Meta<'_>, ctx: &ParseContext<'_>) -> Result<PodSource, SpecError> {
        if let Some((k, v)) = m.get("endpoints") {
            if !ctx.allow_static_endpoints {
                return Err(SpecError::Conflict {
                    key: k.to_string(),
                    problem: "static endpoints are disabled on this server (start it with --allow-static-endpoints); \
                              otherwise anyone who can write a ScaledObject could make the scaler fetch arbitrary URLs"
                        .to_string(),
                });
            }
            // Each endpoint names its own address: a selector, namespace or port would be ignored.
            for other in ["podSelector", "namespace", "metricsPort"] {
                if let Some((ok, _)) = m.get(other) {
                    return Err(SpecError::Conflict { key: ok.to_string(), problem: format!("cannot be combined with \"{k}\"") });
                }
            }
            return Ok(PodSource::Static(endpoints(k, v)?));
        }
        if !ctx.kube_enabled {
            return Err(SpecError::no_kube());
        }
        let namespace = m
            .parse("namespace", "a Kubernetes namespace name", |v| is_namespace_name(v).then(|| v.to_string()))?
            .unwrap_or_else(|| ctx.namespace.to_string());
        if let Some((k, _)) = m.get("namespace") {
            ctx.check_reach(k, &namespace)?;
        }
        let selector = m.parse("podSelector", "a label selector such as app=vllm,model in (llama)", selector)?;
        Ok(PodSource::Kube { namespace, selector })
    }

    fn gpu_source(m: &Meta<'_>, ctx: &ParseContext<'_>, pods: &PodSource) -> Result<GpuSource, SpecError> {
        let field =
            m.parse("gpuField", "one of gpuUtil, grEngineActive, dramActive", GpuField::from_metadata)?.unwrap_or(GpuField::GpuUtil);
        let source = m.parse("gpuSource", "one of dcgm, none", |v| match v {
            "dcgm" => Some(true),
            "none" => Some(false),
            _ => None,
        })?;
        let weight_enabled = m
            .non_negative(Signal::GpuUtilization.def().weight_key, "weight")?
            .unwrap_or(ctx.policy_defaults.weights.get(Signal::GpuUtilization))
            > 0.0;
        // Scrape DCGM when asked explicitly, or when the GPU signal has weight; otherwise the
        // extra scrapes buy nothing.
        let enabled = source.unwrap_or(weight_enabled);
        if !enabled {
            return Ok(GpuSource::None);
        }
        if let Some((k, v)) = m.get("dcgmEndpoints") {
            if !ctx.allow_static_endpoints {
                return Err(SpecError::Conflict {
                    key: k.to_string(),
                    problem: "static endpoints are disabled on this server (start it with --allow-static-endpoints)".to_string(),
                });
            }
            // Fixed exporters replace discovering them: the keys that find them would be ignored.
            for other in ["dcgmNamespace", "dcgmSelector", "dcgmPort"] {
                if let Some((ok, _)) = m.get(other) {
                    return Err(SpecError::Conflict { key: ok.to_string(), problem: format!("cannot be combined with \"{k}\"") });
                }
            }
            return Ok(GpuSource::StaticDcgm { endpoints: endpoints(k, v)?.into_iter().map(|e| e.addr).collect(), field });
        }
        if matches!(pods, PodSource::Static(_)) {
            return Err(SpecError::dcgm_endpoints_required("with static endpoints (or set gpuSource: none)"));
        }
        let namespace = m
            .parse("dcgmNamespace", "a Kubernetes namespace name", |v| is_namespace_name(v).then(|| v.to_string()))?
            .unwrap_or_else(|| "gpu-operator".to_string());
        let given = m.parse("dcgmSelector", "a label selector such as app=nvidia-dcgm-exporter", selector)?;
        // The DCGM namespace is a cluster service every fleet may use, but only through the
        // exporter's own pods: elsewhere than where this ScaledObject may read, a selector of
        // its choosing would make the scaler contact other tenants' pods.
        if let (Some((k, _)), Some(sel)) = (m.get("dcgmSelector"), given.as_deref())
            && sel != ctx.dcgm_selector
            && !ctx.namespace_access.allows(ctx.namespace, &namespace)
        {
            return Err(SpecError::Conflict {
                key: k.to_string(),
                problem: format!(
                    "\"{sel}\" in dcgmNamespace \"{namespace}\", which is not this ScaledObject's namespace: there only the \
                     scaler's dcgm-exporter selector \"{exporter}\" (setting dcgm_selector) is accepted, unless the scaler \
                     allows {own}:{namespace} (--allow-cross-namespace)",
                    exporter = ctx.dcgm_selector,
                    own = ctx.namespace,
                ),
            });
        }
        Ok(GpuSource::KubeDcgm {
            namespace,
            selector: given.unwrap_or_else(|| ctx.dcgm_selector.to_string()),
            port: m.port("dcgmPort")?.unwrap_or(9400),
            field,
        })
    }

    fn policy(m: &Meta<'_>, d: &PolicyConfig, slo: Option<&SloSpec>, histogram: LatencyHistogram) -> Result<PolicyConfig, SpecError> {
        let mut p = d.clone();
        for def in &SIGNALS {
            let target = match def.form {
                TargetForm::Ratio => m.parse(def.target_key, "a ratio in (0, 1] such as 0.7, or a percentage such as 70%", ratio)?,
                TargetForm::Positive => m.positive(def.target_key, def.unit)?,
                TargetForm::PositiveOrAuto => {
                    let expected = format!("a positive number ({}), auto, or auto:N to learn it starting at N", def.unit);
                    match m.parse(def.target_key, &expected, capacity_value)? {
                        None => None,
                        Some(Capacity::Fixed(v)) => {
                            p.capacity = CapacityMode::Fixed;
                            Some(v)
                        }
                        Some(Capacity::Auto(start)) => {
                            let slo = match (slo, d.capacity) {
                                // No SLO here: the server's `[defaults]` may have given one.
                                (None, CapacityMode::Auto { slo }) => slo,
                                _ => Self::auto_slo(m, def.target_key, slo)?,
                            };
                            p.capacity = CapacityMode::Auto { slo };
                            // `auto` alone starts at the default (or the server's default).
                            Some(start.unwrap_or(d.targets.get(def.signal)))
                        }
                    }
                }
            };
            if let Some(v) = target {
                p.targets.set(def.signal, v);
            }
            if let Some(w) = m.non_negative(def.weight_key, "weight; 0 disables the signal")? {
                p.weights.set(def.signal, w);
            }
        }
        if Signal::ALL.iter().all(|s| p.weights.get(*s) == 0.0) {
            return Err(SpecError::Conflict {
                key: Signal::QueueDepth.def().weight_key.into(),
                problem: "every signal weight is 0: at least one signal must be enabled".into(),
            });
        }
        if let Some(b) = m.parse("blendMode", "one of max, weighted", |v| match v {
            "max" => Some(BlendMode::Max),
            "weighted" => Some(BlendMode::Weighted),
            _ => None,
        })? {
            p.blend = b;
        }
        if let Some(f) =
            m.parse("peakFactor", "a number >= 1 (head-room multiplier)", |v| v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 1.0))?
        {
            p.peak_factor = f;
        }
        let count = |v: &str| v.parse::<u32>().ok();
        if let Some(n) = m.parse("minReplicas", "a whole number >= 1", |v| count(v).filter(|n| *n >= 1))? {
            p.min_replicas = n;
        }
        if let Some(n) = m.parse("maxReplicas", "a whole number >= 1", |v| count(v).filter(|n| *n >= 1))? {
            p.max_replicas = n;
        }
        if p.min_replicas > p.max_replicas {
            let key = if m.get("maxReplicas").is_some() { "maxReplicas" } else { "minReplicas" };
            return Err(SpecError::Conflict {
                key: key.into(),
                problem: format!("minReplicas {} is above maxReplicas {}", p.min_replicas, p.max_replicas),
            });
        }
        if let Some(a) = m.non_negative("activationThreshold", "requests in flight")? {
            p.activation_threshold = a;
        }
        Self::forecast(m, &mut p.forecast)?;
        if p.forecast.mode == ForecastMode::ForecastAndScale && p.weights.get(Signal::TokensPerSecond) == 0.0 {
            return Err(SpecError::Conflict {
                key: "forecastMode".into(),
                problem: "forecastAndScale turns a forecast of tokens/s into replicas with the tokens/s target: it needs \
                          weightTokensPerSecond > 0"
                    .into(),
            });
        }
        if let Some(slo) = slo {
            // An SLO in this map derives what this map does not set itself.
            if m.get(Signal::Latency.def().target_key).is_none()
                && let Some(b) = slo_metric(histogram).and_then(|metric| slo.bound(metric))
            {
                p.targets.set(Signal::Latency, SLO_LATENCY_TARGET_SHARE * b.as_secs_f64());
            }
            let tokens_key = Signal::TokensPerSecond.def().target_key;
            if m.get(tokens_key).is_none() {
                p.capacity = CapacityMode::Auto { slo: slo.calibration() };
            }
        }
        Ok(p)
    }

    /// The predictive-scaling keys over `f` (the defaults, or the server's `[defaults]`).
    fn forecast(m: &Meta<'_>, f: &mut ForecastSpec) -> Result<(), SpecError> {
        if let Some(mode) = m.parse("forecastMode", &format!("one of {}", ForecastMode::NAMES), ForecastMode::parse)? {
            f.mode = mode;
        }
        let minutes = |lo: u64, hi: u64| {
            move |v: &str| duration(v).filter(|d| d.as_secs() >= lo * 60 && d.as_secs() <= hi * 60 && d.as_secs() % 60 == 0)
        };
        if let Some(h) = m.parse("forecastHorizon", "whole minutes from 1m to 2h, such as 15m", minutes(1, 120))? {
            f.horizon = h;
        }
        if let Some(s) = m.parse("forecastSeasons", "daily, weekly, daily,weekly or none", Seasons::parse)? {
            f.seasons = s;
        }
        let span = |v: &str| humantime::parse_duration(v).ok().filter(|d| d.as_secs() <= 3600);
        if let Some(c) = m.parse("coldStart", "a duration up to 1h, such as 120s or 5m", |v| span(v).filter(|d| !d.is_zero()))? {
            f.cold_start = c;
            f.cold_start_given = true;
        }
        if let Some(b) = m.parse("schedulingBuffer", "a duration up to 1h, such as 300s or 0s", span)? {
            f.buffer = b;
        }
        Ok(())
    }

    /// The SLO the capacity is learned against, or why `auto` cannot be used (`key` is the key
    /// blamed).
    fn auto_slo(m: &Meta<'_>, key: &'static str, slo: Option<&SloSpec>) -> Result<CalibrationSlo, SpecError> {
        let key = m.get(key).map_or(key, |(k, _)| k).to_string();
        slo.map(SloSpec::calibration).ok_or_else(|| SpecError::Conflict {
            key,
            problem: "auto learns the capacity against a latency SLO: set sloTtft and/or sloTpot".into(),
        })
    }
}

/// Every metadata key (README documents each).
pub fn known_keys() -> impl Iterator<Item = &'static str> {
    SOURCE_KEYS.iter().copied().chain(cost::COST_KEYS.iter().copied()).chain(policy_keys())
}

mod humantime_ser {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static OWN_ONLY: NamespaceAccess = NamespaceAccess::own_namespace_only();

    fn ctx<'a>(p: &'a PolicyConfig, l: &'a LatencySpec) -> ParseContext<'a> {
        ParseContext {
            namespace: "ai",
            policy_defaults: p,
            latency_defaults: l,
            allow_static_endpoints: true,
            kube_enabled: true,
            namespace_access: &OWN_ONLY,
            dcgm_selector: "app=nvidia-dcgm-exporter",
            gpu_hour_price: cost::DEFAULT_GPU_HOUR_PRICE,
        }
    }

    fn lat() -> LatencySpec {
        LatencySpec::default()
    }

    fn meta(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_readmes_signal_rows_are_the_signal_table() {
        let readme = include_str!("../../README.md");
        for def in &SIGNALS {
            let target = format!("| `{}` | `{}` | {} | {} |", def.target_key, def.default_target, def.unit, def.meaning);
            let note = if def.weight_note.is_empty() { " ".to_string() } else { format!(" {} ", def.weight_note) };
            let weight = format!("| `{}` | `{}` | >= 0 |{note}|", def.weight_key, def.default_weight);
            for row in [target, weight] {
                assert!(readme.lines().any(|l| l.trim_end() == row.trim_end()), "README's metadata table lacks the row\n{row}");
            }
        }
    }

    #[test]
    fn every_key_is_documented_in_the_readme() {
        let readme = include_str!("../../README.md");
        for k in known_keys() {
            assert!(readme.contains(&format!("| `{k}` |")), "README's metadata table lacks `{k}`");
        }
    }

    #[test]
    fn defaults_and_keda_keys() {
        let p = PolicyConfig::default();
        let l = lat();
        let s =
            ScalerSpec::parse(&meta(&[("scalerAddress", "x:9090"), ("enableTLS", "false"), ("unsafeSsl", "false")]), &ctx(&p, &l)).unwrap();
        assert_eq!(s.pods, PodSource::Kube { namespace: "ai".into(), selector: None });
        assert_eq!(s.metrics_port, 8000);
        assert_eq!(s.metrics_path, "/metrics");
        assert_eq!(s.policy, p);
        assert_eq!(s.gpu, GpuSource::None);
    }

    #[test]
    fn unknown_key_is_named_with_valid_list() {
        let p = PolicyConfig::default();
        let l = lat();
        let err = ScalerSpec::parse(&meta(&[("targetQueueDeph", "5")]), &ctx(&p, &l)).unwrap_err().to_string();
        assert!(err.contains("\"targetQueueDeph\""), "{err}");
        assert!(err.contains("targetQueueDepth"), "{err}");
    }

    #[test]
    fn bad_values_name_key_value_and_expectation() {
        let p = PolicyConfig::default();
        let l = lat();
        for (k, v, want) in [
            ("targetQueueDepth", "-1", "positive number"),
            ("targetGpuUtilization", "170", "percentage"),
            ("minReplicas", "0", ">= 1"),
            ("peakFactor", "0.5", ">= 1"),
            ("latencyMetric", "p99", "ttft"),
            ("latencyQuantile", "99", "between 0 and 1"),
            ("metricsPort", "http", "TCP port"),
            ("blendMode", "avg", "max, weighted"),
            ("forecastMode", "on", "forecastAndScale"),
            ("forecastHorizon", "90s", "whole minutes"),
            ("forecastSeasons", "hourly", "daily,weekly"),
            ("coldStart", "2h", "up to 1h"),
            ("schedulingBuffer", "soon", "such as 300s"),
            ("gpuHourPrice", "$4", "no currency sign"),
            ("gpuHourPrice", "-2", "plain number >= 0"),
            ("gpusPerPod", "0", "whole number of GPUs"),
            ("gpusPerPod", "two", "whole number of GPUs"),
            ("budgetPerHour", "-5", "dollars per hour"),
        ] {
            let err = ScalerSpec::parse(&meta(&[(k, v)]), &ctx(&p, &l)).unwrap_err().to_string();
            assert!(err.contains(k) && err.contains(v) && err.contains(want), "{k}: {err}");
        }
    }

    #[test]
    fn the_cost_keys_price_the_fleet_and_a_cost_static_endpoints_could_never_know_is_refused_naming_gpus_per_pod() {
        let p = PolicyConfig::default();
        let l = lat();
        let s = ScalerSpec::parse(&meta(&[]), &ctx(&p, &l)).unwrap();
        assert_eq!(s.cost, cost::CostSpec { gpu_hour_price: 4.0, gpus_per_pod: None, budget_per_hour: None }, "the design's $4");
        let s = ScalerSpec::parse(&meta(&[("gpuHourPrice", "2.5"), ("gpusPerPod", "2"), ("budgetPerHour", "40")]), &ctx(&p, &l)).unwrap();
        assert_eq!(s.cost, cost::CostSpec { gpu_hour_price: 2.5, gpus_per_pod: Some(2), budget_per_hour: Some(40.0) });
        let mut server = ctx(&p, &l);
        server.gpu_hour_price = 1.25;
        assert_eq!(ScalerSpec::parse(&meta(&[]), &server).unwrap().cost.gpu_hour_price, 1.25, "the server's default price");
        for priced in [("budgetPerHour", "40"), ("gpuHourPrice", "3")] {
            let err = ScalerSpec::parse(&meta(&[("endpoints", "127.0.0.2:8000"), priced]), &ctx(&p, &l)).unwrap_err();
            let SpecError::Conflict { key, problem } = &err else { panic!("{err:?}") };
            assert_eq!(key, "gpusPerPod");
            assert!(problem.contains(priced.0) && problem.contains("static endpoints"), "{problem}");
        }
        let ok = ScalerSpec::parse(&meta(&[("endpoints", "127.0.0.2:8000"), ("budgetPerHour", "40"), ("gpusPerPod", "1")]), &ctx(&p, &l));
        assert!(ok.is_ok(), "{ok:?}");
        assert!(ScalerSpec::parse(&meta(&[("endpoints", "127.0.0.2:8000")]), &ctx(&p, &l)).is_ok(), "no cost asked for: still scales");
    }

    #[test]
    fn overrides_and_percentages() {
        let p = PolicyConfig::default();
        let l = lat();
        let s = ScalerSpec::parse(
            &meta(&[
                ("targetGpuUtilization", "70%"),
                ("targetKvCacheUsage", "0.9"),
                ("weightGpuUtilization", "0.5"),
                ("blendMode", "weighted"),
                ("minReplicas", "1"),
                ("maxReplicas", "8"),
                ("latencyMetric", "e2e"),
                ("latencyWindow", "2m"),
                ("podSelector", "app=vllm,tier in (a,b)"),
            ]),
            &ctx(&p, &l),
        )
        .unwrap();
        assert!((s.policy.targets.get(Signal::GpuUtilization) - 0.7).abs() < 1e-12);
        assert_eq!(s.policy.blend, BlendMode::Weighted);
        assert_eq!((s.policy.min_replicas, s.policy.max_replicas), (1, 8));
        assert_eq!(s.latency.window, Duration::from_secs(120));
        assert!(matches!(s.gpu, GpuSource::KubeDcgm { port: 9400, .. }), "weight > 0 turns DCGM on");
    }

    #[test]
    fn the_forecast_keys_set_mode_horizon_seasons_and_the_floors_lead() {
        let p = PolicyConfig::default();
        let l = lat();
        let f = ScalerSpec::parse(&meta(&[]), &ctx(&p, &l)).unwrap().policy.forecast;
        assert_eq!(f, ForecastSpec::default(), "forecast only by default");
        assert_eq!(f.mode, ForecastMode::ForecastOnly);
        let m = meta(&[
            ("forecastMode", "forecastAndScale"),
            ("forecastHorizon", "30m"),
            ("forecastSeasons", "daily"),
            ("coldStart", "5m"),
            ("schedulingBuffer", "0s"),
        ]);
        let f = ScalerSpec::parse(&m, &ctx(&p, &l)).unwrap().policy.forecast;
        assert_eq!(f.mode, ForecastMode::ForecastAndScale);
        assert_eq!((f.horizon_buckets(), f.lead_buckets()), (30, 5));
        assert_eq!(f.seasons, Seasons { daily: true, weekly: false });
        let err = ScalerSpec::parse(&meta(&[("forecastMode", "forecastAndScale"), ("weightTokensPerSecond", "0")]), &ctx(&p, &l))
            .unwrap_err()
            .to_string();
        assert!(err.contains("forecastMode") && err.contains("weightTokensPerSecond > 0"), "{err}");
    }

    #[test]
    fn min_above_max_is_refused() {
        let p = PolicyConfig::default();
        let l = lat();
        let err = ScalerSpec::parse(&meta(&[("minReplicas", "30")]), &ctx(&p, &l)).unwrap_err().to_string();
        assert!(err.contains("minReplicas 30 is above maxReplicas 20"), "{err}");
    }

    #[test]
    fn static_endpoints_need_the_server_flag() {
        let p = PolicyConfig::default();
        let l = lat();
        let mut c = ctx(&p, &l);
        c.allow_static_endpoints = false;
        let err = ScalerSpec::parse(&meta(&[("endpoints", "127.0.0.2:8000")]), &c).unwrap_err().to_string();
        assert!(err.contains("--allow-static-endpoints"), "{err}");
        c.allow_static_endpoints = true;
        let s = ScalerSpec::parse(&meta(&[("endpoints", "a=127.0.0.2:8000, 127.0.0.3:8001")]), &c).unwrap();
        let PodSource::Static(e) = s.pods else { panic!() };
        assert_eq!(e[0].name, "a");
        assert_eq!(e[1].name, "127.0.0.3:8001");
        let err = ScalerSpec::parse(&meta(&[("endpoints", "vllm.svc:8000")]), &c).unwrap_err().to_string();
        assert!(err.contains("\"endpoints\""), "{err}");
    }

    #[test]
    fn no_kube_requires_endpoints() {
        let p = PolicyConfig::default();
        let l = lat();
        let mut c = ctx(&p, &l);
        c.kube_enabled = false;
        let err = ScalerSpec::parse(&meta(&[]), &c).unwrap_err().to_string();
        assert!(err.contains("endpoints") && err.contains("--no-kube"), "{err}");
    }

    #[test]
    fn a_pod_namespace_other_than_the_scaledobjects_own_is_refused_by_default_naming_the_key() {
        let p = PolicyConfig::default();
        let l = lat();
        let s = ScalerSpec::parse(&meta(&[("namespace", "ai")]), &ctx(&p, &l)).unwrap();
        assert_eq!(s.pods, PodSource::Kube { namespace: "ai".into(), selector: None }, "its own namespace, named, is fine");
        let err = ScalerSpec::parse(&meta(&[("namespace", "team-b")]), &ctx(&p, &l)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(&err, SpecError::Conflict { key, .. } if key == "namespace"), "{err:?}");
        assert!(text.contains("\"team-b\"") && text.contains("--allow-cross-namespace ai:team-b"), "{text}");
        let err = ScalerSpec::parse(&meta(&[("namespaceFromEnv", "team-b")]), &ctx(&p, &l)).unwrap_err();
        assert!(matches!(&err, SpecError::Conflict { key, .. } if key == "namespaceFromEnv"), "{err:?}");
    }

    #[test]
    fn an_allowance_lets_a_scaledobject_read_pods_in_the_namespaces_it_names() {
        let p = PolicyConfig::default();
        let l = lat();
        let access = NamespaceAccess::parse(["ai:team-b"]).unwrap();
        let mut c = ctx(&p, &l);
        c.namespace_access = &access;
        let s = ScalerSpec::parse(&meta(&[("namespace", "team-b")]), &c).unwrap();
        assert_eq!(s.pods, PodSource::Kube { namespace: "team-b".into(), selector: None });
        assert!(ScalerSpec::parse(&meta(&[("namespace", "team-c")]), &c).is_err(), "only what the rule names");
    }

    #[test]
    fn the_dcgm_namespace_is_reachable_but_only_through_the_exporters_own_selector() {
        let p = PolicyConfig::default();
        let l = lat();
        let c = ctx(&p, &l);
        let s = ScalerSpec::parse(&meta(&[("gpuSource", "dcgm")]), &c).unwrap();
        assert!(
            matches!(&s.gpu, GpuSource::KubeDcgm { namespace, selector, .. } if namespace == "gpu-operator" && selector == "app=nvidia-dcgm-exporter")
        );
        let ok = meta(&[("gpuSource", "dcgm"), ("dcgmNamespace", "nvidia"), ("dcgmSelector", "app=nvidia-dcgm-exporter")]);
        assert!(ScalerSpec::parse(&ok, &c).is_ok(), "another DCGM namespace with the exporter's selector is fine");
        let foreign = meta(&[("gpuSource", "dcgm"), ("dcgmNamespace", "team-b"), ("dcgmSelector", "app=vllm")]);
        let err = ScalerSpec::parse(&foreign, &c).unwrap_err();
        assert!(matches!(&err, SpecError::Conflict { key, .. } if key == "dcgmSelector"), "{err:?}");
        assert!(err.to_string().contains("dcgm_selector"), "{err}");
        let own = meta(&[("gpuSource", "dcgm"), ("dcgmNamespace", "ai"), ("dcgmSelector", "app=my-exporter")]);
        assert!(ScalerSpec::parse(&own, &c).is_ok(), "any selector in the ScaledObject's own namespace");
        let mut c2 = ctx(&p, &l);
        c2.dcgm_selector = "app.kubernetes.io/name=dcgm-exporter";
        let s = ScalerSpec::parse(&meta(&[("gpuSource", "dcgm")]), &c2).unwrap();
        assert!(matches!(&s.gpu, GpuSource::KubeDcgm { selector, .. } if selector == "app.kubernetes.io/name=dcgm-exporter"));
    }

    #[test]
    fn from_env_keys_fold_into_their_base_key() {
        let p = PolicyConfig::default();
        let l = lat();
        let s = ScalerSpec::parse(&meta(&[("modelNameFromEnv", "llama")]), &ctx(&p, &l)).unwrap();
        assert_eq!(s.model_name.as_deref(), Some("llama"));
        let err = ScalerSpec::parse(&meta(&[("modelNameFromEnv", "a"), ("modelName", "b")]), &ctx(&p, &l)).unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
    }

    #[test]
    fn static_endpoints_cannot_be_combined_with_a_metrics_port_because_each_endpoint_carries_its_own() {
        let p = PolicyConfig::default();
        let l = lat();
        let err = ScalerSpec::parse(&meta(&[("endpoints", "127.0.0.2:8000"), ("metricsPort", "9000")]), &ctx(&p, &l)).unwrap_err();
        assert!(matches!(&err, SpecError::Conflict { key, .. } if key == "metricsPort"), "{err:?}");
        assert!(err.to_string().contains("cannot be combined with \"endpoints\""), "{err}");
    }

    #[test]
    fn fixed_dcgm_endpoints_cannot_be_combined_with_the_keys_that_would_discover_exporters() {
        let p = PolicyConfig::default();
        let l = lat();
        for key in ["dcgmNamespace", "dcgmSelector", "dcgmPort", "dcgmPortFromEnv"] {
            let value = if key.starts_with("dcgmPort") { "9400" } else { "gpu-operator" };
            let m = meta(&[("endpoints", "127.0.0.2:8000"), ("gpuSource", "dcgm"), ("dcgmEndpoints", "127.0.0.3:9400"), (key, value)]);
            let err = ScalerSpec::parse(&m, &ctx(&p, &l)).unwrap_err();
            assert!(matches!(&err, SpecError::Conflict { key: k, .. } if k == key), "{key}: {err:?}");
            assert!(err.to_string().contains("cannot be combined with \"dcgmEndpoints\""), "{err}");
        }
        let alone = meta(&[("endpoints", "127.0.0.2:8000"), ("gpuSource", "dcgm"), ("dcgmEndpoints", "127.0.0.3:9400")]);
        assert!(matches!(ScalerSpec::parse(&alone, &ctx(&p, &l)).unwrap().gpu, GpuSource::StaticDcgm { .. }));
    }

    #[test]
    fn dcgm_discovery_without_kubernetes_pods_is_refused_naming_dcgm_endpoints() {
        let p = PolicyConfig::default();
        let l = lat();
        let mut c = ctx(&p, &l);
        c.kube_enabled = false;
        for gpu in [("gpuSource", "dcgm"), ("weightGpuUtilization", "1")] {
            let err = ScalerSpec::parse(&meta(&[("endpoints", "127.0.0.2:8000"), gpu]), &c).unwrap_err();
            assert!(matches!(&err, SpecError::Conflict { key, .. } if key == "dcgmEndpoints"), "{gpu:?}: {err:?}");
        }
    }

    #[test]
    fn slo_keys_parse_into_one_slo_that_derives_auto_capacity_the_latency_histogram_quantile_and_target() {
        let p = PolicyConfig::default();
        let l = lat();
        let s = ScalerSpec::parse(&meta(&[("sloTtft", "2000ms"), ("sloTpot", "100ms"), ("sloQuantile", "0.95")]), &ctx(&p, &l)).unwrap();
        let slo = s.slo.unwrap();
        assert_eq!(slo.bounds, SloBounds::Both { ttft: Duration::from_secs(2), tpot: Duration::from_millis(100) });
        assert_eq!(slo.quantile, 0.95);
        assert_eq!((s.latency.histogram, s.latency.quantile), (LatencyHistogram::Ttft, 0.95));
        assert!((s.policy.targets.get(Signal::Latency) - 1.5).abs() < 1e-12, "3/4 of the 2 s TTFT bound");
        let start = Signal::TokensPerSecond.def().default_target;
        assert_eq!(s.policy.targets.get(Signal::TokensPerSecond), start, "auto starts at the default");
        // Both bounds are learned against, each from its own histogram.
        assert_eq!(s.policy.capacity, CapacityMode::Auto { slo: CalibrationSlo::both(2.0, 0.1, 0.95) });
        // Only a TPOT bound: the TPOT histogram, 75 ms.
        let s = ScalerSpec::parse(&meta(&[("sloTpot", "100ms")]), &ctx(&p, &l)).unwrap();
        assert_eq!(s.latency.histogram, LatencyHistogram::Tpot);
        assert!((s.policy.targets.get(Signal::Latency) - 0.075).abs() < 1e-12);
        assert!(matches!(s.policy.capacity, CapacityMode::Auto { slo } if slo == CalibrationSlo::tpot(0.1, 0.99)));
    }

    #[test]
    fn keys_set_beside_the_slo_win_over_what_it_derives() {
        let p = PolicyConfig::default();
        let l = lat();
        let m = meta(&[("sloTtft", "2s"), ("targetTokensPerSecond", "4000"), ("targetLatencySeconds", "1"), ("latencyQuantile", "0.9")]);
        let s = ScalerSpec::parse(&m, &ctx(&p, &l)).unwrap();
        assert_eq!(s.policy.capacity, CapacityMode::Fixed);
        assert_eq!(s.policy.targets.get(Signal::TokensPerSecond), 4000.0);
        assert_eq!(s.policy.targets.get(Signal::Latency), 1.0);
        assert_eq!(s.latency.quantile, 0.9);
    }

    #[test]
    fn auto_with_a_start_value_starts_there_and_no_slo_means_a_fixed_target() {
        let p = PolicyConfig::default();
        let l = lat();
        let s = ScalerSpec::parse(&meta(&[("sloTtft", "2s"), ("targetTokensPerSecond", "auto:5000")]), &ctx(&p, &l)).unwrap();
        assert_eq!(s.policy.targets.get(Signal::TokensPerSecond), 5000.0);
        assert!(matches!(s.policy.capacity, CapacityMode::Auto { .. }));
        let s = ScalerSpec::parse(&meta(&[]), &ctx(&p, &l)).unwrap();
        assert_eq!((s.slo, s.policy.capacity), (None, CapacityMode::Fixed));
    }

    #[test]
    fn bad_slo_and_auto_values_are_refused_naming_the_key() {
        let p = PolicyConfig::default();
        let l = lat();
        for (kv, key, want) in [
            (vec![("sloTtft", "2")], "sloTtft", "a duration such as 2s"),
            (vec![("sloTpot", "fast")], "sloTpot", "a duration"),
            (vec![("sloTtft", "2s"), ("sloQuantile", "99")], "sloQuantile", "between 0 and 1"),
            (vec![("sloQuantile", "0.99")], "sloQuantile", "needs a bound"),
            (vec![("targetTokensPerSecond", "auto:x")], "targetTokensPerSecond", "auto:N"),
            (vec![("targetTokensPerSecond", "auto")], "targetTokensPerSecond", "set sloTtft and/or sloTpot"),
        ] {
            let err = ScalerSpec::parse(&meta(&kv), &ctx(&p, &l)).unwrap_err();
            let named = match &err {
                SpecError::BadValue { key: k, .. } | SpecError::Conflict { key: k, .. } => k == key,
                SpecError::UnknownKey { .. } => false,
            };
            assert!(named && err.to_string().contains(want), "{kv:?}: {err}");
        }
    }

    #[test]
    fn an_slo_in_the_server_defaults_makes_auto_the_default_of_every_scaledobject() {
        let base = PolicyConfig::default();
        let l = lat();
        let defaults = ScalerSpec::parse(&meta(&[("sloTtft", "2s")]), &ctx(&base, &l)).unwrap();
        let s = ScalerSpec::parse(&meta(&[("targetTokensPerSecond", "auto:3000")]), &ctx(&defaults.policy, &defaults.latency)).unwrap();
        assert!(matches!(s.policy.capacity, CapacityMode::Auto { slo } if slo == CalibrationSlo::ttft(2.0, 0.99)));
        assert_eq!(s.policy.targets.get(Signal::TokensPerSecond), 3000.0);
        // The estimator reads the SLO's own histograms: any latency signal goes with it.
        let s = ScalerSpec::parse(&meta(&[("latencyMetric", "e2e")]), &ctx(&defaults.policy, &defaults.latency)).unwrap();
        assert_eq!(s.latency.histogram, LatencyHistogram::E2e);
        assert!(matches!(s.policy.capacity, CapacityMode::Auto { slo } if slo == CalibrationSlo::ttft(2.0, 0.99)));
    }

    #[test]
    fn an_auto_capacity_reads_the_histograms_of_every_bound_beside_the_signal_s() {
        let p = PolicyConfig::default();
        let l = lat();
        let s = ScalerSpec::parse(&meta(&[("sloTtft", "2s"), ("sloTpot", "100ms"), ("latencyMetric", "e2e")]), &ctx(&p, &l)).unwrap();
        let body = "vllm:num_requests_waiting 0\nvllm:num_requests_running 1\n\
                    vllm:e2e_request_latency_seconds_bucket{le=\"1\"} 1\nvllm:e2e_request_latency_seconds_bucket{le=\"+Inf\"} 1\n\
                    vllm:time_to_first_token_seconds_bucket{le=\"1\"} 2\nvllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n\
                    vllm:request_time_per_output_token_seconds_bucket{le=\"0.1\"} 3\n\
                    vllm:request_time_per_output_token_seconds_bucket{le=\"+Inf\"} 3\n";
        let mut x = s.vllm_extractor();
        crate::read::exposition::parse(body.as_bytes(), &mut x).unwrap();
        let sample = x.finish().unwrap();
        let last = |h: Option<crate::read::vllm::HistogramSnapshot>| h.and_then(|h| h.buckets.last().map(|b| b.1));
        assert_eq!(last(sample.latency), Some(1.0), "the signal's e2e histogram");
        assert_eq!((last(sample.slo_latency.ttft), last(sample.slo_latency.tpot)), (Some(2.0), Some(3.0)));
        let fixed = ScalerSpec::parse(&meta(&[("sloTtft", "2s"), ("targetTokensPerSecond", "4000")]), &ctx(&p, &l)).unwrap();
        let mut x = fixed.vllm_extractor();
        crate::read::exposition::parse(body.as_bytes(), &mut x).unwrap();
        assert_eq!(x.finish().unwrap().slo_latency, crate::read::vllm::SloLatency::default(), "a fixed target reads no SLO histogram");
    }
}
