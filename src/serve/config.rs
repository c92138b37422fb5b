//! Server configuration: built-in defaults, then a TOML file, then `LLM_SCALER_*` environment
//! variables, then command-line flags (each overriding the previous), via the `config` crate.
//!
//! `[defaults]` holds the default policy for every ScaledObject, with exactly the metadata keys
//! (`targetQueueDepth = 10`, ...), validated by the same code that validates metadata, so a bad
//! default is refused at start-up with the key named, not at the first RPC.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer};

use crate::{
    decide::policy::PolicyConfig,
    spec::tenancy::NamespaceAccess,
    spec::{LatencyHistogram, LatencySpec, POLICY_KEYS, ParseContext, ScalerSpec, SpecError},
};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A list given as a TOML array or as one comma-separated string (environment, flags).
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("\"{s}\" is not a duration such as 5s or 10m: {e}")))
}

/// Everything the server reads at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// HTTP (metrics, health, API) listen address.
    pub http_addr: SocketAddr,
    /// Time between scrapes of a ScaledObject's pods.
    #[serde(deserialize_with = "duration")]
    pub scrape_interval: Duration,
    /// Whole-request timeout of one scrape.
    #[serde(deserialize_with = "duration")]
    pub scrape_timeout: Duration,
    /// A decision is stale (RPCs answer UNAVAILABLE) after this many intervals without a
    /// successful scrape.
    pub stale_intervals: u32,
    /// A ScaledObject not asked about for this long stops being scraped.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Largest `/metrics` body accepted.
    pub max_body_bytes: usize,
    /// Concurrent scrapes, process-wide.
    pub scrape_concurrency: usize,
    /// Concurrent scrapes per ScaledObject.
    pub per_scaledobject_concurrency: usize,
    /// Discover pods through Kubernetes.
    pub kube: bool,
    /// Accept the `endpoints` / `dcgmEndpoints` metadata keys.
    pub allow_static_endpoints: bool,
    /// Rules `FROM:TO` (namespace names or `*`) letting ScaledObjects in FROM read pods in TO;
    /// empty (the default): every ScaledObject reads only its own namespace.
    #[serde(deserialize_with = "string_or_list")]
    pub allow_cross_namespace: Vec<String>,
    /// Label selector of the cluster's dcgm-exporter pods: the default of `dcgmSelector`, and
    /// the only one accepted in a DCGM namespace a ScaledObject may not otherwise read.
    pub dcgm_selector: String,
    /// On shutdown, how long in-flight calls and streams (e.g. a health Watch) may take before
    /// the server closes anyway.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax); `RUST_LOG` wins when set.
    pub log_level: String,
    /// Default policy, with metadata keys.
    pub defaults: HashMap<String, String>,
    /// gRPC server certificate chain (PEM); with `tls_key`, the gRPC port speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    /// Private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM): when set, gRPC clients must present a certificate it issued (mTLS).
    pub tls_client_ca: Option<PathBuf>,
    /// How often the TLS files are re-read, so a rotated certificate is used without a restart.
    #[serde(deserialize_with = "duration")]
    pub tls_reload_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            scrape_interval: Duration::from_secs(5),
            scrape_timeout: Duration::from_secs(3),
            stale_intervals: 3,
            idle_timeout: Duration::from_secs(600),
            max_body_bytes: 16 << 20,
            scrape_concurrency: 256,
            per_scaledobject_concurrency: 64,
            kube: true,
            allow_static_endpoints: false,
            allow_cross_namespace: Vec::new(),
            dcgm_selector: DEFAULT_DCGM_SELECTOR.to_string(),
            shutdown_grace: Duration::from_secs(10),
            log_format: LogFormat::Text,
            log_level: "info".to_string(),
            defaults: HashMap::new(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_reload_interval: Duration::from_secs(10),
        }
    }
}

/// Configuration problems, at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, environment or flags did not deserialize.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A `[defaults]` entry is invalid.
    #[error("configuration [defaults]: {0}")]
    Defaults(#[from] SpecError),
    /// A `[defaults]` key that is per-ScaledObject only.
    #[error("configuration [defaults]: key \"{0}\" selects pods and can only be set in a ScaledObject's metadata")]
    NotADefault(String),
    /// Contradictory settings.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// dcgm-exporter's pod label in NVIDIA's GPU Operator and Helm chart.
pub const DEFAULT_DCGM_SELECTOR: &str = "app=nvidia-dcgm-exporter";

/// Environment prefix of `[defaults]` entries.
const ENV_DEFAULTS: &str = "LLM_SCALER_DEFAULTS__";

impl Settings {
    /// Loads defaults <- `file` <- environment <- `overrides` (flag name, value).
    pub fn load(file: Option<&Path>, overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let mut b = config::Config::builder();
        if let Some(f) = file {
            b = b.add_source(config::File::from(f).format(config::FileFormat::Toml).required(true));
        }
        // The environment source lower-cases keys, so `LLM_SCALER_DEFAULTS__TARGETQUEUEDEPTH`
        // would land beside the file's `targetQueueDepth` as a second key, with an arbitrary
        // winner. Policy defaults from the environment are therefore folded onto their canonical
        // key here, as overrides above the file; everything else goes through the source.
        let (defaults, rest): (Vec<_>, Vec<_>) =
            std::env::vars().filter(|(k, _)| k.starts_with("LLM_SCALER_")).partition(|(k, _)| k.starts_with(ENV_DEFAULTS));
        b = b.add_source(
            config::Environment::with_prefix("LLM_SCALER").prefix_separator("_").separator("__").source(Some(rest.into_iter().collect())),
        );
        for (k, v) in defaults {
            let name = &k[ENV_DEFAULTS.len()..];
            let key = POLICY_KEYS.iter().find(|d| d.eq_ignore_ascii_case(name)).ok_or_else(|| ConfigError::NotADefault(k.clone()))?;
            b = b.set_override(format!("defaults.{key}"), v)?;
        }
        for (k, v) in overrides {
            b = b.set_override(*k, v.clone())?;
        }
        let s: Settings = b.build()?.try_deserialize()?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.scrape_interval.is_zero() || self.scrape_timeout.is_zero() {
            return Err(ConfigError::Invalid("scrape_interval and scrape_timeout must be > 0".into()));
        }
        if self.stale_intervals == 0 || self.scrape_concurrency == 0 || self.per_scaledobject_concurrency == 0 {
            return Err(ConfigError::Invalid("stale_intervals, scrape_concurrency and per_scaledobject_concurrency must be >= 1".into()));
        }
        if !self.kube && !self.allow_static_endpoints {
            return Err(ConfigError::Invalid(
                "without Kubernetes (--no-kube) the only pod source is static endpoints: add --allow-static-endpoints".into(),
            ));
        }
        self.validate_tls()?;
        self.namespace_access()?;
        if self.dcgm_selector.trim().is_empty() {
            return Err(ConfigError::Invalid("dcgm_selector must be a label selector such as app=nvidia-dcgm-exporter".into()));
        }
        self.policy_defaults().map(|_| ())
    }

    /// The parsed `allow_cross_namespace` rules.
    pub fn namespace_access(&self) -> Result<NamespaceAccess, ConfigError> {
        NamespaceAccess::parse(self.allow_cross_namespace.iter().map(String::as_str))
            .map_err(|e| ConfigError::Invalid(format!("allow_cross_namespace: {e}")))
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err(ConfigError::Invalid("tls_cert is set but tls_key is not: TLS needs both".into())),
            (None, Some(_)) => return Err(ConfigError::Invalid("tls_key is set but tls_cert is not: TLS needs both".into())),
            (None, None) if self.tls_client_ca.is_some() => {
                return Err(ConfigError::Invalid("tls_client_ca (mTLS) needs TLS: set tls_cert and tls_key too".into()));
            }
            _ => {}
        }
        if self.tls_reload_interval.is_zero() {
            return Err(ConfigError::Invalid("tls_reload_interval must be > 0".into()));
        }
        Ok(())
    }

    /// A decision is served for this long after it was made.
    pub fn stale_after(&self) -> Duration {
        self.scrape_interval * self.stale_intervals
    }

    /// The default policy and latency definition, validated like metadata.
    pub fn policy_defaults(&self) -> Result<(PolicyConfig, LatencySpec), ConfigError> {
        let mut meta = HashMap::new();
        for (k, v) in &self.defaults {
            // Accept any capitalisation, as for environment variables.
            let key = POLICY_KEYS.iter().find(|d| d.eq_ignore_ascii_case(k)).ok_or_else(|| ConfigError::NotADefault(k.clone()))?;
            meta.insert((*key).to_string(), v.clone());
        }
        let base_policy = PolicyConfig::default();
        let base_latency = LatencySpec { histogram: LatencyHistogram::Ttft, quantile: 0.99, window: Duration::from_secs(60) };
        let spec = ScalerSpec::parse(
            &meta,
            &ParseContext {
                namespace: "defaults",
                policy_defaults: &base_policy,
                latency_defaults: &base_latency,
                allow_static_endpoints: false,
                kube_enabled: true,
                namespace_access: &NamespaceAccess::own_namespace_only(),
                dcgm_selector: &self.dcgm_selector,
            },
        )?;
        Ok((spec.policy, spec.latency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::policy::Signal;

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("llm-scaler-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "scrape_interval = \"2s\"\nkube = false\nallow_static_endpoints = true\n[defaults]\ntargetQueueDepth = 4\npeakFactor = \"2\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&f), &[("grpc_addr", "127.0.0.1:7000".into())]).unwrap();
        assert_eq!(s.scrape_interval, Duration::from_secs(2));
        assert_eq!(s.grpc_addr, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(s.stale_after(), Duration::from_secs(6));
        let (p, _) = s.policy_defaults().unwrap();
        assert_eq!(p.targets.get(Signal::QueueDepth), 4.0);
        assert_eq!(p.peak_factor, 2.0);
        std::fs::write(&f, "kube = false\nallow_static_endpoints = true\n[defaults]\npeakFactor = 0.5\n").unwrap();
        let err = Settings::load(Some(&f), &[]).unwrap_err().to_string();
        assert!(err.contains("peakFactor") && err.contains("0.5"), "{err}");
        std::fs::write(&f, "kube = false\nallow_static_endpoints = true\n[defaults]\npodSelector = \"a=b\"\n").unwrap();
        assert!(Settings::load(Some(&f), &[]).unwrap_err().to_string().contains("podSelector"));
        std::fs::write(&f, "kube = false\nallow_static_endpoints = true\nscrape_intervall = \"2s\"\n").unwrap();
        assert!(Settings::load(Some(&f), &[]).unwrap_err().to_string().contains("scrape_intervall"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn cross_namespace_rules_come_from_a_toml_list_or_a_comma_separated_flag_and_bad_ones_are_named() {
        let base = || vec![("kube", "false".to_string()), ("allow_static_endpoints", "true".to_string())];
        let s = Settings::load(None, &base()).unwrap();
        assert!(s.namespace_access().unwrap().is_own_namespace_only(), "off by default");
        assert_eq!(s.dcgm_selector, "app=nvidia-dcgm-exporter");
        let mut o = base();
        o.push(("allow_cross_namespace", "ml:team-b, *:shared".to_string()));
        let access = Settings::load(None, &o).unwrap().namespace_access().unwrap();
        assert!(access.allows("ml", "team-b") && access.allows("x", "shared") && !access.allows("ml", "team-c"));
        let dir = tempfile_dir("xns");
        let f = dir.join("c.toml");
        std::fs::write(&f, "kube = false\nallow_static_endpoints = true\nallow_cross_namespace = [\"ml:team-b\"]\n").unwrap();
        assert!(Settings::load(Some(&f), &[]).unwrap().namespace_access().unwrap().allows("ml", "team-b"));
        let mut o = base();
        o.push(("allow_cross_namespace", "team-b".to_string()));
        let err = Settings::load(None, &o).unwrap_err().to_string();
        assert!(err.contains("allow_cross_namespace") && err.contains("\"team-b\""), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llm-scaler-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn tls_needs_cert_and_key_together() {
        let base = [("kube", "false".to_string()), ("allow_static_endpoints", "true".to_string())];
        let load = |extra: &[(&str, &str)]| {
            let mut o: Vec<(&str, String)> = base.to_vec();
            o.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            Settings::load(None, &o)
        };
        let s = load(&[]).unwrap();
        assert_eq!((s.tls_cert, s.tls_reload_interval), (None, Duration::from_secs(10)));
        let s =
            load(&[("tls_cert", "/c.pem"), ("tls_key", "/k.pem"), ("tls_client_ca", "/ca.pem"), ("tls_reload_interval", "2s")]).unwrap();
        assert_eq!(s.tls_cert.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(s.tls_client_ca.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(s.tls_reload_interval, Duration::from_secs(2));
        let err = load(&[("tls_cert", "/c.pem")]).unwrap_err().to_string();
        assert!(err.contains("tls_key is not"), "{err}");
        let err = load(&[("tls_key", "/k.pem")]).unwrap_err().to_string();
        assert!(err.contains("tls_cert is not"), "{err}");
        let err = load(&[("tls_client_ca", "/ca.pem")]).unwrap_err().to_string();
        assert!(err.contains("tls_client_ca"), "{err}");
        let err = load(&[("tls_cert", "/c.pem"), ("tls_key", "/k.pem"), ("tls_reload_interval", "0s")]).unwrap_err().to_string();
        assert!(err.contains("tls_reload_interval"), "{err}");
    }
}
