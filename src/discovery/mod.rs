//! Which pods make up a fleet, and which dcgm-exporters report their GPUs: the source of truth
//! for "what to scrape".
//!
//! The server has one [`Discovery`] (Kubernetes, an in-process fleet, or none); each ScaledObject
//! gets one [`FleetSource`], built once from its typed spec and that discovery, which the
//! collector only asks for the pods of this tick and the exporters of those pods. The scrape loop
//! never talks to the API server itself.
//!
//! * [`source`]: [`FleetSource`], where one ScaledObject's pods come from.
//! * [`exporters`]: the dcgm-exporters covering a fleet's pods.
//! * [`kube`]: the Kubernetes side (scale targets, shared pod watches, selectors).

pub mod exporters;
pub mod kube;
pub mod source;

use std::{net::IpAddr, sync::Arc, time::Duration};

pub use exporters::Exporter;
pub use kube::PodsError;
pub use source::FleetSource;

/// What the scaler knows about one pod of a fleet at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Pod name (for static endpoints: the name given in metadata, or `host:port`).
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod IP, once the pod has one.
    pub ip: Option<IpAddr>,
    /// Node the pod is scheduled on (used to find the dcgm-exporter pod on the same node).
    pub node: Option<String>,
    /// Where the pod is in its life.
    pub readiness: Readiness,
    /// How long it took from creation to Ready (its `Ready` condition's last transition minus
    /// its creation; a pod that flapped reads later), when known: the cold start the forecast
    /// floor plans for, measured rather than configured.
    pub ready_after: Option<Duration>,
    /// GPUs its containers request (`nvidia.com/gpu`), when the pod spec says: what the fleet
    /// pays for. `None` for a pod whose spec is not known (static endpoints) or asks for none,
    /// so that the ScaledObject's `gpusPerPod` applies, or the cost is unknown.
    pub gpus: Option<u32>,
}

/// Where a pod is in its life, as the scaler counts it: only a Ready pod is scraped, only a
/// starting one is capacity on its way. A pod being deleted is neither, whatever its `Ready`
/// condition still says: counting it as starting would hide a shortfall while a scale-down drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `Ready` condition `True`, not being deleted.
    Ready,
    /// Not Ready yet (no `Ready` condition, or `False`), not being deleted.
    Starting,
    /// `deletionTimestamp` set: draining or gone soon.
    Terminating,
}

impl PodInfo {
    /// A pod worth scraping: Ready with an IP.
    pub fn scrapeable(&self) -> Option<IpAddr> {
        if self.readiness == Readiness::Ready { self.ip } else { None }
    }

    /// A pod that will be capacity once it can be scraped (not one being deleted).
    pub fn is_starting(&self) -> bool {
        match self.readiness {
            Readiness::Starting => true,
            Readiness::Ready => self.ip.is_none(),
            Readiness::Terminating => false,
        }
    }
}

/// A programmatic pod source (the demo's and the simulator's fleets, benchmarks): answers from
/// memory, like the watch cache does.
pub trait PodLister: Send + Sync + 'static {
    /// Pods of the ScaledObject `name` in `namespace`, as they are now.
    fn pods(&self, namespace: &str, name: &str) -> Vec<PodInfo>;
}

/// How the server is to find pods, as its caller chooses it: [`Discovery`] once connected.
#[derive(Clone)]
pub enum DiscoveryMode {
    /// Static endpoints only.
    None,
    /// Kubernetes, connected at start-up (retried until it answers).
    Kube,
    /// An in-process fleet (demo, simulator, benchmarks).
    Custom(Arc<dyn PodLister>),
}

/// Where the server finds pods for ScaledObjects that do not list static endpoints.
#[derive(Clone)]
pub enum Discovery {
    /// No discovery: only static `endpoints` work (`--no-kube`).
    None,
    /// The Kubernetes API (watch-based caches).
    Kube(kube::KubeDiscovery),
    /// An in-process fleet.
    Custom(Arc<dyn PodLister>),
}

impl Discovery {
    /// Whether pods can be found without static `endpoints` (what metadata parsing calls
    /// `kube_enabled`).
    pub fn finds_pods(&self) -> bool {
        !matches!(self, Discovery::None)
    }
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Discovery::None => "Discovery::None",
            Discovery::Kube(_) => "Discovery::Kube",
            Discovery::Custom(_) => "Discovery::Custom",
        })
    }
}
