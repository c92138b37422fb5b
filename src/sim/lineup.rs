//! The policies `simulate` compares, defined once: each standard name and how it is set up, for
//! the default line-up, the `simulate` flags and the demo alike.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use crate::{
    decide::policy::{PolicyConfig, Signal},
    sim::{config::SimConfig, hpa::HpaConfig, kpa::KpaConfig, schedule::Schedule},
    spec::tenancy::NamespaceAccess,
    spec::{LatencySpec, ParseContext, ScalerSpec, SpecError},
};

/// The standard line-up, in report order.
pub const STANDARD: [&str; 6] = ["static", "hpa-gpu70", "keda-queue5", "kpa", "keda-tokens", "llm-scaler"];

/// A scaling policy: what the cluster does about the fleet's size.
#[derive(Debug, Clone)]
pub enum PolicyKind {
    /// A fixed fleet.
    Static {
        /// Replicas.
        replicas: u32,
    },
    /// The classic HPA on GPU utilisation: dcgm-exporter's `DCGM_FI_DEV_GPU_UTIL` per pod (via
    /// Prometheus), `AverageValue` target.
    HpaGpu {
        /// Target utilisation 0..1 per replica.
        target: f64,
        /// HPA settings.
        hpa: HpaConfig,
    },
    /// KEDA's Prometheus trigger on `sum(vllm:num_requests_waiting)` (vLLM production-stack).
    KedaQueue {
        /// Waiting requests per replica.
        threshold: f64,
        /// HPA settings.
        hpa: HpaConfig,
    },
    /// KEDA's Prometheus trigger on `sum(rate(vllm:prompt_tokens_total[1m]) +
    /// rate(vllm:generation_tokens_total[1m]))`, `AverageValue`: what a user without llm-scaler
    /// would write for a token-rate target (the same semantics as `targetTokensPerSecond`).
    KedaTokens {
        /// Tokens/s per replica.
        target: f64,
        /// HPA settings.
        hpa: HpaConfig,
    },
    /// A Knative-KPA-like concurrency autoscaler acting on the Deployment directly.
    Kpa(KpaConfig),
    /// The clairvoyant bound: follows a replica schedule computed from the actual arrivals,
    /// acting on the Deployment directly.
    Clairvoyant(Arc<Schedule>),
    /// llm-scaler, configured by scaler metadata, behind KEDA and the HPA.
    LlmScaler {
        /// The parsed metadata.
        spec: Box<ScalerSpec>,
        /// The metadata as given (for the report).
        metadata: BTreeMap<String, String>,
        /// HPA settings.
        hpa: HpaConfig,
    },
}

/// A named policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Short name (table row, plot legend).
    pub name: String,
    /// What it does.
    pub kind: PolicyKind,
}

impl Policy {
    /// The knob a baseline runs with (what `--tune-baselines` sweeps), for the table.
    pub fn setting(&self) -> Option<String> {
        match &self.kind {
            PolicyKind::Static { replicas } => Some(format!("{replicas} replicas")),
            PolicyKind::HpaGpu { target, .. } => Some(format!("GPU {}%", fmt_knob(target * 100.0))),
            PolicyKind::KedaQueue { threshold, .. } => Some(format!("queue {}", fmt_knob(*threshold))),
            PolicyKind::KedaTokens { target, .. } => Some(format!("{} tok/s", fmt_knob(*target))),
            PolicyKind::Kpa(k) => Some(format!("concurrency {}", fmt_knob(k.target_concurrency))),
            PolicyKind::Clairvoyant(s) => Some(format!("k = {:.3}", s.factor)),
            PolicyKind::LlmScaler { .. } => None,
        }
    }

    /// One line describing the policy.
    pub fn describe(&self) -> String {
        match &self.kind {
            PolicyKind::Static { replicas } => format!("static fleet of {replicas} replicas"),
            PolicyKind::HpaGpu { target, hpa } => {
                format!("HPA on DCGM GPU utilisation, target {:.0}% (tolerance {})", target * 100.0, hpa.tolerance_up)
            }
            PolicyKind::KedaQueue { threshold, hpa } => {
                format!("KEDA Prometheus trigger sum(vllm:num_requests_waiting), threshold {threshold} (tolerance {})", hpa.tolerance_up)
            }
            PolicyKind::KedaTokens { target, hpa } => format!(
                "KEDA Prometheus trigger sum(rate(vllm:prompt_tokens_total[1m]) + rate(vllm:generation_tokens_total[1m])), AverageValue {target:.0} tokens/s (tolerance {})",
                hpa.tolerance_up
            ),
            PolicyKind::Kpa(k) => format!(
                "Knative-KPA-like: concurrency target {} x {}, stable {} s / panic {} s",
                k.target_concurrency, k.target_utilization, k.stable_window_s, k.panic_window_s
            ),
            PolicyKind::Clairvoyant(s) => format!(
                "clairvoyant bound: ceil({:.3} x actual arrivals/s per {:.0} s / capacity) replicas, requested {:.0} s ahead",
                s.factor, s.window_s, s.lead_s
            ),
            PolicyKind::LlmScaler { metadata, hpa, .. } => {
                let kv: Vec<String> = metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "llm-scaler [{}] (HPA tolerance {})",
                    if kv.is_empty() { "defaults".into() } else { kv.join(", ") },
                    hpa.tolerance_up
                )
            }
        }
    }
}

/// Why a policy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LineupError {
    /// A name outside [`STANDARD`].
    #[error("unknown policy \"{0}\"; known: static, hpa-gpu70, keda-queue5, kpa, keda-tokens, llm-scaler")]
    Unknown(String),
    /// llm-scaler's metadata does not parse, exactly as the server would refuse it.
    #[error(transparent)]
    Metadata(#[from] SpecError),
}

/// The knobs of the line-up; the defaults are the standard line-up's.
#[derive(Debug, Clone)]
pub struct Lineup {
    /// Size of the static fleet (`None`: the fleet's upper bound).
    pub static_replicas: Option<u32>,
    /// HPA tolerance of the HPA/KEDA baselines (cluster default 0.1).
    pub tolerance: f64,
    /// HPA tolerance of llm-scaler (its examples set 0; KEP-4951).
    pub scaler_tolerance: f64,
    /// HPA scale-down stabilisation window of every HPA-driven policy.
    pub scale_down_window: Duration,
    /// HPA sync period of every HPA-driven policy.
    pub hpa_sync: Duration,
    /// The KPA.
    pub kpa: KpaConfig,
    /// `hpa-gpu70`'s target utilisation, 0..1.
    pub gpu_target: f64,
    /// `keda-queue5`'s threshold of waiting requests per replica.
    pub queue_threshold: f64,
    /// `keda-tokens`' target tokens/s per replica.
    pub tokens_target: f64,
    /// llm-scaler's metadata, as in a ScaledObject's trigger.
    pub metadata: Vec<(String, String)>,
}

impl Default for Lineup {
    fn default() -> Self {
        let hpa = HpaConfig::default();
        Lineup {
            static_replicas: None,
            tolerance: 0.1,
            scaler_tolerance: 0.0,
            scale_down_window: hpa.scale_down_window,
            hpa_sync: hpa.sync_period,
            kpa: KpaConfig::default(),
            gpu_target: 0.7,
            queue_threshold: 5.0,
            tokens_target: default_tokens_target(),
            metadata: Vec::new(),
        }
    }
}

impl Lineup {
    /// The standard policy called `name`.
    pub fn policy(&self, name: &str, cfg: &SimConfig) -> Result<Policy, LineupError> {
        let kind = match name {
            "static" => PolicyKind::Static { replicas: self.static_replicas.unwrap_or(cfg.max_replicas) },
            "hpa-gpu70" => PolicyKind::HpaGpu { target: self.gpu_target, hpa: self.behaviour(hpa_config(cfg, self.tolerance)) },
            "keda-queue5" => {
                PolicyKind::KedaQueue { threshold: self.queue_threshold, hpa: self.behaviour(hpa_config(cfg, self.tolerance)) }
            }
            "kpa" => PolicyKind::Kpa(self.kpa.clone()),
            "keda-tokens" => PolicyKind::KedaTokens { target: self.tokens_target, hpa: self.behaviour(hpa_config(cfg, self.tolerance)) },
            "llm-scaler" => return self.llm_scaler(name, cfg, &self.metadata),
            other => return Err(LineupError::Unknown(other.to_string())),
        };
        // A baseline run with another knob than its standard one is named after it.
        let name = match &kind {
            PolicyKind::HpaGpu { target, .. } => format!("hpa-gpu{}", fmt_knob(target * 100.0)),
            PolicyKind::KedaQueue { threshold, .. } => format!("keda-queue{}", fmt_knob(*threshold)),
            _ => name.to_string(),
        };
        Ok(Policy { name, kind })
    }

    /// Every standard policy, in [`STANDARD`] order.
    pub fn standard(&self, cfg: &SimConfig) -> Result<Vec<Policy>, LineupError> {
        STANDARD.iter().map(|name| self.policy(name, cfg)).collect()
    }

    /// llm-scaler under another name with other `metadata` (a `--variant`).
    pub fn llm_scaler(&self, name: &str, cfg: &SimConfig, metadata: &[(String, String)]) -> Result<Policy, LineupError> {
        let mut p = llm_scaler_policy(name, cfg, metadata, self.scaler_tolerance)?;
        if let PolicyKind::LlmScaler { hpa, .. } = &mut p.kind {
            *hpa = self.behaviour(hpa.clone());
        }
        Ok(p)
    }

    fn behaviour(&self, mut hpa: HpaConfig) -> HpaConfig {
        hpa.scale_down_window = self.scale_down_window;
        hpa.sync_period = self.hpa_sync;
        hpa
    }
}

fn fmt_knob(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    if r.fract() == 0.0 { format!("{r:.0}") } else { format!("{r}") }
}

/// `keda-tokens`' default target: llm-scaler's default tokens/s target over its default peak
/// factor, the per-replica token rate llm-scaler's defaults scale at, so the two start equal.
pub fn default_tokens_target() -> f64 {
    let d = PolicyConfig::default();
    d.targets.get(Signal::TokensPerSecond) / d.peak_factor.max(1e-9)
}

/// The HPA settings used for KEDA-driven policies: Kubernetes' defaults with `behavior`, the
/// given tolerance, and the fleet bounds.
pub fn hpa_config(cfg: &SimConfig, tolerance: f64) -> HpaConfig {
    HpaConfig {
        tolerance_up: tolerance,
        tolerance_down: tolerance,
        min_replicas: cfg.min_replicas,
        max_replicas: cfg.max_replicas,
        ..HpaConfig::default()
    }
}

/// Builds an llm-scaler policy from metadata key/values, exactly as the server parses them.
pub fn llm_scaler_policy(name: &str, cfg: &SimConfig, metadata: &[(String, String)], tolerance: f64) -> Result<Policy, LineupError> {
    let mut raw: HashMap<String, String> = metadata.iter().cloned().collect();
    raw.entry("minReplicas".into()).or_insert_with(|| cfg.min_replicas.to_string());
    raw.entry("maxReplicas".into()).or_insert_with(|| cfg.max_replicas.to_string());
    let defaults = PolicyConfig::default();
    let latency = LatencySpec::default();
    let ctx = ParseContext {
        namespace: "sim",
        policy_defaults: &defaults,
        latency_defaults: &latency,
        allow_static_endpoints: false,
        kube_enabled: true,
        namespace_access: &NamespaceAccess::own_namespace_only(),
        dcgm_selector: crate::serve::config::DEFAULT_DCGM_SELECTOR,
        gpu_hour_price: crate::spec::cost::DEFAULT_GPU_HOUR_PRICE,
    };
    let spec = ScalerSpec::parse(&raw, &ctx)?;
    let mut hpa = hpa_config(cfg, tolerance);
    hpa.min_replicas = spec.policy.min_replicas.max(1);
    hpa.max_replicas = spec.policy.max_replicas;
    Ok(Policy {
        name: name.to_string(),
        kind: PolicyKind::LlmScaler { spec: Box::new(spec), metadata: metadata.iter().cloned().collect(), hpa },
    })
}

/// The standard line-up: static, HPA on GPU, KEDA on queue, KPA, llm-scaler with `metadata`.
pub fn standard_policies(cfg: &SimConfig, metadata: &[(String, String)], static_replicas: Option<u32>) -> Result<Vec<Policy>, LineupError> {
    Lineup { static_replicas, metadata: metadata.to_vec(), ..Lineup::default() }.standard(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_line_up_keeps_kubernetes_hpa_behaviour() {
        let cfg = SimConfig::default();
        let policies = standard_policies(&cfg, &[], None).unwrap();
        let names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, STANDARD);
        let PolicyKind::HpaGpu { hpa, .. } = &policies[1].kind else { panic!("hpa-gpu70") };
        let defaults = HpaConfig::default();
        assert_eq!((hpa.scale_down_window, hpa.sync_period), (defaults.scale_down_window, defaults.sync_period));
        assert_eq!((hpa.min_replicas, hpa.max_replicas, hpa.tolerance_up), (cfg.min_replicas, cfg.max_replicas, 0.1));
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let e = Lineup::default().policy("vpa", &SimConfig::default()).unwrap_err();
        assert!(e.to_string().contains("known: static, hpa-gpu70"), "{e}");
    }
}
