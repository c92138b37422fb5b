//! Which pods make up a fleet: the source of truth for "what to scrape".
//!
//! Two sources exist: Kubernetes (a watch-based cache, see [`kube`]) and a static list of
//! endpoints given in metadata (only when the operator allowed it). Both produce [`PodInfo`]
//! snapshots; the scrape loop never talks to the API server itself.

pub mod kube;

use std::net::IpAddr;

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
    /// True when the pod's `Ready` condition is `True` and it is not being deleted.
    pub ready: bool,
}

impl PodInfo {
    /// A pod worth scraping: Ready with an IP.
    pub fn scrapeable(&self) -> Option<IpAddr> {
        if self.ready { self.ip } else { None }
    }
}

/// A programmatic pod source (the demo's and the simulator's fleets, benchmarks): answers from
/// memory, like the watch cache does.
pub trait PodLister: Send + Sync + 'static {
    /// Pods of the ScaledObject `name` in `namespace`, as they are now.
    fn pods(&self, namespace: &str, name: &str) -> Vec<PodInfo>;
}

/// Where the server finds pods for ScaledObjects that do not list static endpoints.
#[derive(Clone)]
pub enum Discovery {
    /// No discovery: only static `endpoints` work (`--no-kube`).
    None,
    /// The Kubernetes API (watch-based caches).
    Kube(kube::KubeDiscovery),
    /// An in-process fleet.
    Custom(std::sync::Arc<dyn PodLister>),
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
