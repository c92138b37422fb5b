//! The ScaledObjects the scaler serves: metadata parsed once, one collector each, expiry.
//!
//! An RPC looks its ScaledObject up by (namespace, name, metadata fingerprint) under a read lock.
//! The first call with a new metadata map parses it into a [`ScalerSpec`] (bad metadata is
//! refused before any state is created, so it cannot disturb another ScaledObject) and starts
//! that ScaledObject's collector. A collector nobody asked about for `idle_timeout` stops and is
//! forgotten. Two triggers of one ScaledObject with different metadata are two entries.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Semaphore, task::JoinHandle, time::Instant};

use crate::{
    collector,
    discovery::Discovery,
    policy::PolicyConfig,
    scrape::Scraper,
    spec::{LatencySpec, ParseContext, ScalerSpec, SpecError},
    store::DecisionStore,
    telemetry::{Metrics, TargetLabels},
    tenancy::NamespaceAccess,
};

/// Collection settings shared by every ScaledObject.
#[derive(Debug, Clone)]
pub struct CollectSettings {
    /// Time between ticks.
    pub interval: Duration,
    /// A decision older than this is not served.
    pub stale_after: Duration,
    /// A ScaledObject not asked about for this long stops being collected.
    pub idle_timeout: Duration,
    /// Concurrent scrapes per ScaledObject.
    pub per_target_concurrency: usize,
}

/// What every collector shares.
pub struct Shared {
    /// Collection settings.
    pub settings: CollectSettings,
    /// Policy defaults for metadata that does not set a key.
    pub policy_defaults: PolicyConfig,
    /// Latency defaults.
    pub latency_defaults: LatencySpec,
    /// `--allow-static-endpoints`.
    pub allow_static_endpoints: bool,
    /// `--allow-cross-namespace`: which namespaces a ScaledObject may read pods from.
    pub namespace_access: NamespaceAccess,
    /// `--dcgm-selector`: the cluster's dcgm-exporter pods.
    pub dcgm_selector: String,
    /// Pod discovery.
    pub discovery: Discovery,
    /// HTTP client.
    pub scraper: Scraper,
    /// Process-wide bound on concurrent scrapes.
    pub limiter: Arc<Semaphore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Time origin of the signal histories.
    pub origin: Instant,
}

/// Identity of one served ScaledObject trigger.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetKey {
    /// Namespace.
    pub namespace: String,
    /// ScaledObject name.
    pub name: String,
    /// Order-independent hash of the metadata map.
    pub fingerprint: u64,
}

/// One served ScaledObject.
pub struct Target {
    /// Identity.
    pub key: TargetKey,
    /// The metadata as received (compared on lookup to rule out fingerprint collisions).
    pub meta: HashMap<String, String>,
    /// Parsed spec.
    pub spec: Arc<ScalerSpec>,
    /// Decisions.
    pub store: Arc<DecisionStore>,
    /// Metric labels.
    pub labels: TargetLabels,
    last_asked_ms: AtomicU64,
    streams: AtomicUsize,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Target {
    /// Marks the ScaledObject as asked about now.
    pub fn touch(&self, origin: Instant) {
        self.last_asked_ms.store(origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last RPC about it.
    pub fn idle_for(&self, origin: Instant) -> Duration {
        let last = Duration::from_millis(self.last_asked_ms.load(Ordering::Relaxed));
        origin.elapsed().saturating_sub(last)
    }

    /// An open push stream keeps the ScaledObject alive; the guard closes it.
    pub fn open_stream(self: &Arc<Self>) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// Namespace of the fleet's pods (where dcgm-exporter's `namespace` label must point).
    pub fn pod_namespace(&self) -> &str {
        match &self.spec.pods {
            crate::spec::PodSource::Kube { namespace, .. } => namespace,
            crate::spec::PodSource::Static(_) => &self.key.namespace,
        }
    }

    /// Whether a push stream is open.
    pub fn has_streams(&self) -> bool {
        self.streams.load(Ordering::Relaxed) > 0
    }
}

/// Keeps a ScaledObject collected while a push stream is open.
pub struct StreamGuard(Arc<Target>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

type Targets = Arc<RwLock<HashMap<TargetKey, Arc<Target>>>>;

/// All served ScaledObjects.
pub struct Registry {
    shared: Arc<Shared>,
    targets: Targets,
    hasher: std::hash::RandomState,
}

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Metadata did not validate.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The request lacks a name or namespace.
    #[error("ScaledObjectRef.{0} is empty; KEDA always sets it")]
    MissingField(&'static str),
}

impl Registry {
    /// An empty registry.
    pub fn new(shared: Shared) -> Self {
        Registry { shared: Arc::new(shared), targets: Arc::default(), hasher: std::hash::RandomState::new() }
    }

    /// Shared context.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn fingerprint(&self, meta: &HashMap<String, String>) -> u64 {
        // Sum of per-entry hashes: independent of the map's iteration order, no sorting.
        meta.iter().fold(0u64, |acc, (k, v)| {
            let mut h = self.hasher.build_hasher();
            k.hash(&mut h);
            v.hash(&mut h);
            acc.wrapping_add(h.finish())
        })
    }

    /// Finds the ScaledObject, or parses its metadata and starts collecting it.
    pub fn get_or_register(&self, namespace: &str, name: &str, meta: &HashMap<String, String>) -> Result<Arc<Target>, LookupError> {
        if name.is_empty() {
            return Err(LookupError::MissingField("name"));
        }
        if namespace.is_empty() {
            return Err(LookupError::MissingField("namespace"));
        }
        let key = TargetKey { namespace: namespace.to_string(), name: name.to_string(), fingerprint: self.fingerprint(meta) };
        if let Some(t) = self.read().get(&key).filter(|t| &t.meta == meta) {
            t.touch(self.shared.origin);
            return Ok(t.clone());
        }
        let s = &self.shared;
        let spec = ScalerSpec::parse(
            meta,
            &ParseContext {
                namespace,
                policy_defaults: &s.policy_defaults,
                latency_defaults: &s.latency_defaults,
                allow_static_endpoints: s.allow_static_endpoints,
                kube_enabled: !matches!(s.discovery, Discovery::None),
                namespace_access: &s.namespace_access,
                dcgm_selector: &s.dcgm_selector,
            },
        )?;
        let mut w = self.targets.write().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = w.get(&key).filter(|t| &t.meta == meta) {
            t.touch(s.origin);
            return Ok(t.clone());
        }
        let target = Arc::new(Target {
            labels: TargetLabels { namespace: namespace.to_string(), scaledobject: name.to_string() },
            key: key.clone(),
            meta: meta.clone(),
            spec: Arc::new(spec),
            store: Arc::new(DecisionStore::new(s.settings.stale_after)),
            last_asked_ms: AtomicU64::new(0),
            streams: AtomicUsize::new(0),
            task: std::sync::Mutex::new(None),
        });
        target.touch(s.origin);
        tracing::info!(namespace, scaledobject = name, spec = ?target.spec, "collecting new ScaledObject");
        let handle = tokio::spawn(Self::run(self.shared.clone(), self.targets.clone(), target.clone()));
        *target.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        w.insert(key, target.clone());
        s.metrics.set_targets(w.len());
        Ok(target)
    }

    async fn run(shared: Arc<Shared>, targets: Targets, target: Arc<Target>) {
        collector::run(shared.clone(), target.clone()).await;
        let mut w = targets.write().unwrap_or_else(|p| p.into_inner());
        if w.get(&target.key).is_some_and(|t| Arc::ptr_eq(t, &target)) {
            w.remove(&target.key);
        }
        shared.metrics.forget_target(&target.labels);
        shared.metrics.set_targets(w.len());
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TargetKey, Arc<Target>>> {
        self.targets.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Every served ScaledObject (for the HTTP API).
    pub fn all(&self) -> Vec<Arc<Target>> {
        let mut v: Vec<_> = self.read().values().cloned().collect();
        v.sort_by(|a, b| (&a.key.namespace, &a.key.name).cmp(&(&b.key.namespace, &b.key.name)));
        v
    }

    /// Stops every collector (shutdown).
    pub fn shutdown(&self) {
        for t in self.read().values() {
            if let Some(h) = t.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
                h.abort();
            }
        }
    }
}
