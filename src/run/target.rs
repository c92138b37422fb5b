//! One served ScaledObject and what every collector shares: the data the registry creates and
//! the collector loop reads, kept apart from both so neither imports the other's internals.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Semaphore, task::JoinHandle, time::Instant};

use crate::{
    decide::policy::PolicyConfig,
    discovery::Discovery,
    fetch::{redis::RedisPool, scrape::Scraper},
    run::{
        cost::Ledgers,
        history_store::HistoryStore,
        store::DecisionStore,
        telemetry::{Metrics, TargetLabels},
    },
    spec::{LatencySpec, ScalerSpec, tenancy::NamespaceAccess},
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
    /// `gpu_hour_price`: the default of `gpuHourPrice`.
    pub gpu_hour_price: f64,
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
    /// Where learned state is persisted (`None`: not persisted), and how often.
    pub history: Option<(HistoryStore, Duration)>,
    /// Connections to the Redis servers batch targets read.
    pub redis: RedisPool,
    /// What each fleet has cost and served, by name (shared by the targets of one name).
    pub ledgers: Ledgers,
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
    /// When it was last asked about, its push streams and its collector.
    pub presence: Arc<Presence>,
}

impl Target {
    /// A target not collected yet ([`Presence::set_task`] attaches its collector).
    pub fn new(key: TargetKey, meta: HashMap<String, String>, spec: ScalerSpec, stale_after: Duration) -> Self {
        Target {
            labels: TargetLabels { namespace: key.namespace.clone(), scaledobject: key.name.clone() },
            key,
            meta,
            spec: Arc::new(spec),
            store: Arc::new(DecisionStore::new(stale_after)),
            presence: Arc::default(),
        }
    }
}

/// What keeps a served target alive, and its collector: when an RPC last asked about it, the
/// push streams open on it, and the task collecting it. Shared by serving and batch targets.
#[derive(Default)]
pub struct Presence {
    last_asked_ms: AtomicU64,
    streams: AtomicUsize,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Presence {
    /// Attaches the collector task, so that [`Presence::abort`] can stop it.
    pub fn set_task(&self, handle: JoinHandle<()>) {
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// Stops the collector (shutdown).
    pub fn abort(&self) {
        if let Some(h) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
    }

    /// Marks the target as asked about now.
    pub fn touch(&self, origin: Instant) {
        self.last_asked_ms.store(origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last RPC about it.
    pub fn idle_for(&self, origin: Instant) -> Duration {
        let last = Duration::from_millis(self.last_asked_ms.load(Ordering::Relaxed));
        origin.elapsed().saturating_sub(last)
    }

    /// An open push stream keeps the target alive; the guard closes it.
    pub fn open_stream(self: &Arc<Self>) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// Whether a push stream is open.
    pub fn has_streams(&self) -> bool {
        self.streams.load(Ordering::Relaxed) > 0
    }

    /// Whether nobody asked for longer than `timeout` and no stream is open: collection stops.
    pub fn expired(&self, origin: Instant, timeout: Duration) -> bool {
        !self.has_streams() && self.idle_for(origin) > timeout
    }

    /// What the decisions API says of it: since when KEDA has not asked, and when collection
    /// stops. An edited ScaledObject leaves its old metadata's target behind until it expires;
    /// these two numbers let a reader tell it from the live one.
    pub fn view(&self, origin: Instant, timeout: Duration) -> PresenceView {
        let idle = self.idle_for(origin);
        PresenceView {
            asked_seconds_ago: idle.as_secs_f64(),
            stops_in_seconds: (!self.has_streams()).then(|| timeout.saturating_sub(idle).as_secs_f64()),
        }
    }
}

/// A target's [`Presence`], as the decisions API shows it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PresenceView {
    /// Seconds since an RPC last asked about it.
    pub asked_seconds_ago: f64,
    /// Seconds until its collection stops unless asked about again (`None`: a push stream is
    /// open, which keeps it collected).
    pub stops_in_seconds: Option<f64>,
}

/// Keeps a target collected while a push stream is open.
pub struct StreamGuard(Arc<Presence>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}
