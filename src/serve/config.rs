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

use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    decide::policy::PolicyConfig,
    spec::tenancy::NamespaceAccess,
    spec::{LatencySpec, ParseContext, ScalerSpec, SpecError, policy_key_ignoring_case},
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
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    Ok(items.iter().flat_map(|s| s.split(',')).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("\"{s}\" is not a duration such as 5s or 10m: {e}")))
}

/// `llm-scaler serve`'s flags, one per setting, named as the setting. Given to the `config`
/// crate as its last (highest) source by serialising the flags that were set, so no setting is
/// typed twice: an unset flag is absent and leaves the setting to the environment, the file or
/// the default.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct ServeFlags {
    /// gRPC listen address (KEDA's scalerAddress points here) [default: 0.0.0.0:9090].
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<String>,
    /// HTTP listen address for /metrics, /healthz, /readyz, /api/v1/decisions [default: 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
    /// Time between scrapes of a ScaledObject's pods, e.g. 5s [default: 5s].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    /// Whole-request timeout of one scrape, e.g. 3s [default: 3s].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    /// Serve a decision for this many intervals after the last successful scrape, then answer
    /// UNAVAILABLE [default: 3].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_intervals: Option<u32>,
    /// Stop scraping a ScaledObject nobody asked about for this long, e.g. 10m [default: 10m].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// Namespace of the ConfigMaps that keep each ScaledObject's demand history and learned
    /// capacity across restarts and failover (the scaler's own; deploy/ sets it from the pod's
    /// namespace) [default: none, nothing persisted].
    #[arg(long, value_name = "NAMESPACE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_namespace: Option<String>,
    /// This scaler's address as ScaledObjects write it in `scalerAddress` (e.g.
    /// llm-scaler.llm-scaler.svc.cluster.local:9090): with --warm-namespaces, every ScaledObject
    /// naming it there is collected from start, before KEDA's first call [default: none].
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaler_address: Option<String>,
    /// Namespaces whose ScaledObjects are watched to keep those naming --scaler-address warm
    /// (the namespaces this scaler serves), comma-separated or repeated [default: none].
    #[arg(long, value_name = "NAMESPACE", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warm_namespaces: Vec<String>,
    /// How often each ScaledObject's history is written, e.g. 5m [default: 5m].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_interval: Option<String>,
    /// Largest /metrics body accepted, in bytes [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Concurrent scrapes, process-wide [default: 256].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_concurrency: Option<usize>,
    /// Run without Kubernetes: pods come only from the `endpoints` metadata key.
    #[arg(long)]
    #[serde(rename = "kube", skip_serializing_if = "is_false", serialize_with = "negated")]
    pub no_kube: bool,
    /// Accept the `endpoints` and `dcgmEndpoints` metadata keys (off by default: anyone who can
    /// write a ScaledObject could otherwise make the scaler fetch arbitrary URLs).
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub allow_static_endpoints: bool,
    /// Let ScaledObjects in namespace FROM read pods in namespace TO: rules FROM:TO, namespace
    /// names or *, comma-separated or repeated (e.g. ml-platform:team-b, *:shared-models, or *
    /// for all). Off by default: a ScaledObject reads pods only in its own namespace, and a
    /// `namespace` key naming another is refused with InvalidArgument.
    #[arg(long, value_name = "FROM:TO", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_cross_namespace: Vec<String>,
    /// Label selector of the cluster's dcgm-exporter pods: the default of `dcgmSelector`, and
    /// the only one accepted in a DCGM namespace a ScaledObject may not otherwise read
    /// [default: app=nvidia-dcgm-exporter].
    #[arg(long, value_name = "SELECTOR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dcgm_selector: Option<String>,
    /// Price of one GPU-hour in dollars, for the cost metrics: the default of a ScaledObject's
    /// `gpuHourPrice` [default: 4, the design's on-demand H100].
    #[arg(long, value_name = "DOLLARS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_hour_price: Option<f64>,
    /// Log format: text or json [default: text].
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or llm_scaler=debug [default: info; RUST_LOG wins].
    #[arg(long, value_name = "FILTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// gRPC server certificate chain, PEM, leaf first (e.g. tls.crt of a cert-manager Secret).
    /// With --tls-key, the gRPC port speaks TLS only (ALPN h2, TLS 1.2/1.3; KEDA: enableTLS
    /// "true" and a caCert in the TriggerAuthentication); the HTTP port stays plaintext.
    /// It must name the host of KEDA's scalerAddress. [default: none, plaintext h2c]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1; e.g. tls.key).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle, PEM: turns on mTLS. gRPC clients must present a certificate issued by it (KEDA:
    /// tlsClientCert and tlsClientKey in the TriggerAuthentication); others are refused.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca: Option<PathBuf>,
    /// How often the TLS files are re-read; a changed certificate is used for new connections
    /// without a restart (open connections keep theirs), a broken one is logged and ignored,
    /// e.g. 10s [default: 10s].
    #[arg(long, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_reload_interval: Option<String>,
    /// CA bundle, PEM, that batch triggers' Redis servers (`redisTLS: true`) are verified
    /// against instead of the system's roots (e.g. the ca.crt of the cert-manager issuer of an
    /// in-cluster Redis). Read at start-up. [default: the system's roots]
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_ca_file: Option<PathBuf>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `--no-kube` sets `kube = false`.
fn negated<S: serde::Serializer>(b: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(!*b)
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
    /// Namespace of the history ConfigMaps (`None`: nothing persisted).
    pub history_namespace: Option<String>,
    /// How often each ScaledObject's history is written.
    #[serde(deserialize_with = "duration")]
    pub history_interval: Duration,
    /// This scaler's address as ScaledObjects name it (`scalerAddress`).
    pub scaler_address: Option<String>,
    /// Namespaces watched for ScaledObjects naming `scaler_address`, collected from start.
    #[serde(deserialize_with = "string_or_list")]
    pub warm_namespaces: Vec<String>,
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
    /// Dollars per GPU-hour where a ScaledObject's metadata gives no `gpuHourPrice`.
    pub gpu_hour_price: f64,
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
    /// CA bundle (PEM) Redis servers of batch triggers are verified against (`None`: the
    /// system's roots).
    pub redis_ca_file: Option<PathBuf>,
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
            history_namespace: None,
            history_interval: Duration::from_secs(300),
            scaler_address: None,
            warm_namespaces: Vec::new(),
            max_body_bytes: 16 << 20,
            scrape_concurrency: 256,
            per_scaledobject_concurrency: 64,
            kube: true,
            allow_static_endpoints: false,
            allow_cross_namespace: Vec::new(),
            dcgm_selector: DEFAULT_DCGM_SELECTOR.to_string(),
            gpu_hour_price: crate::spec::cost::DEFAULT_GPU_HOUR_PRICE,
            shutdown_grace: Duration::from_secs(10),
            log_format: LogFormat::Text,
            log_level: "info".to_string(),
            defaults: HashMap::new(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_reload_interval: Duration::from_secs(10),
            redis_ca_file: None,
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
    /// Loads defaults <- `file` <- environment <- `flags`.
    pub fn load(file: Option<&Path>, flags: &ServeFlags) -> Result<Self, ConfigError> {
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
            let key = policy_key_ignoring_case(name).ok_or_else(|| ConfigError::NotADefault(k.clone()))?;
            b = b.set_override(format!("defaults.{key}"), v)?;
        }
        b = b.add_source(config::Config::try_from(flags)?);
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
        if self.history_interval.is_zero() {
            return Err(ConfigError::Invalid("history_interval must be > 0".into()));
        }
        if !self.warm_namespaces.is_empty() && (self.scaler_address.is_none() || !self.kube) {
            return Err(ConfigError::Invalid(
                "warm_namespaces keeps the ScaledObjects naming this scaler warm: it needs kube = true and scaler_address".into(),
            ));
        }
        if self.history_namespace.is_some() && !self.kube {
            return Err(ConfigError::Invalid("history_namespace keeps history in ConfigMaps: it needs kube = true".into()));
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
        crate::spec::cost::check_default_price(self.gpu_hour_price)
            .map_err(|_| ConfigError::Invalid(format!("gpu_hour_price must be dollars per GPU-hour >= 0, got {}", self.gpu_hour_price)))?;
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
            let key = policy_key_ignoring_case(k).ok_or_else(|| ConfigError::NotADefault(k.clone()))?;
            meta.insert((*key).to_string(), v.clone());
        }
        let base_policy = PolicyConfig::default();
        let base_latency = LatencySpec::default();
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
                gpu_hour_price: self.gpu_hour_price,
            },
        )?;
        Ok((spec.policy, spec.latency))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::decide::policy::Signal;

    /// The flags as `llm-scaler serve` parses them from a command line.
    fn flags(args: &[&str]) -> ServeFlags {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            flags: ServeFlags,
        }
        Cli::parse_from(std::iter::once("serve").chain(args.iter().copied())).flags
    }

    const STATIC: [&str; 2] = ["--no-kube", "--allow-static-endpoints"];

    fn static_and(extra: &[&str]) -> ServeFlags {
        flags(&STATIC.iter().chain(extra).copied().collect::<Vec<_>>())
    }

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
        let s = Settings::load(Some(&f), &flags(&["--grpc-addr", "127.0.0.1:7000"])).unwrap();
        assert_eq!(s.scrape_interval, Duration::from_secs(2));
        assert_eq!(s.grpc_addr, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(s.stale_after(), Duration::from_secs(6));
        let (p, _) = s.policy_defaults().unwrap();
        assert_eq!(p.targets.get(Signal::QueueDepth), 4.0);
        assert_eq!(p.peak_factor, 2.0);
        std::fs::write(&f, "kube = false\nallow_static_endpoints = true\n[defaults]\npeakFactor = 0.5\n").unwrap();
        let err = Settings::load(Some(&f), &ServeFlags::default()).unwrap_err().to_string();
        assert!(err.contains("peakFactor") && err.contains("0.5"), "{err}");
        std::fs::write(&f, "kube = false\nallow_static_endpoints = true\n[defaults]\npodSelector = \"a=b\"\n").unwrap();
        assert!(Settings::load(Some(&f), &ServeFlags::default()).unwrap_err().to_string().contains("podSelector"));
        std::fs::write(&f, "kube = false\nallow_static_endpoints = true\nscrape_intervall = \"2s\"\n").unwrap();
        assert!(Settings::load(Some(&f), &ServeFlags::default()).unwrap_err().to_string().contains("scrape_intervall"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn flags_not_given_leave_the_files_settings_alone() {
        let dir = tempfile_dir("unset");
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "kube = false\nallow_static_endpoints = true\nallow_cross_namespace = [\"a:b\"]\nscrape_interval = \"2s\"\ndcgm_selector = \"app=x\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&f), &flags(&[])).unwrap();
        assert!(!s.kube && s.allow_static_endpoints, "absent --no-kube / --allow-static-endpoints change nothing");
        assert_eq!(s.allow_cross_namespace, ["a:b"]);
        assert_eq!((s.scrape_interval, s.dcgm_selector.as_str()), (Duration::from_secs(2), "app=x"));
        let s = Settings::load(Some(&f), &flags(&["--allow-cross-namespace", "c:d", "--scrape-interval", "3s"])).unwrap();
        assert_eq!(s.allow_cross_namespace, ["c:d"], "a given flag replaces the file's list");
        assert_eq!(s.scrape_interval, Duration::from_secs(3));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn cross_namespace_rules_come_from_a_toml_list_or_a_comma_separated_flag_and_bad_ones_are_named() {
        let s = Settings::load(None, &static_and(&[])).unwrap();
        assert!(s.namespace_access().unwrap().is_own_namespace_only(), "off by default");
        assert_eq!(s.dcgm_selector, "app=nvidia-dcgm-exporter");
        let o = static_and(&["--allow-cross-namespace", "ml:team-b,*:shared"]);
        let access = Settings::load(None, &o).unwrap().namespace_access().unwrap();
        assert!(access.allows("ml", "team-b") && access.allows("x", "shared") && !access.allows("ml", "team-c"));
        let dir = tempfile_dir("xns");
        let f = dir.join("c.toml");
        std::fs::write(&f, "kube = false\nallow_static_endpoints = true\nallow_cross_namespace = [\"ml:team-b\"]\n").unwrap();
        assert!(Settings::load(Some(&f), &ServeFlags::default()).unwrap().namespace_access().unwrap().allows("ml", "team-b"));
        let err = Settings::load(None, &static_and(&["--allow-cross-namespace", "team-b"])).unwrap_err().to_string();
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
        let load = |extra: &[(&str, &str)]| {
            let args: Vec<String> = extra.iter().flat_map(|(k, v)| [format!("--{}", k.replace('_', "-")), v.to_string()]).collect();
            Settings::load(None, &static_and(&args.iter().map(String::as_str).collect::<Vec<_>>()))
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
