//! Where one ScaledObject's pods come from: [`FleetSource`], built once from its typed spec and
//! the server's [`Discovery`], then asked every tick.
//!
//! Every combination of spec and discovery is decided here, once, when the ScaledObject is
//! registered: the collector only asks for the pods and for the exporters of those pods, and a
//! combination that cannot work is refused (as a [`SpecError`] naming the metadata key, which
//! the gRPC layer returns as `InvalidArgument`) instead of degrading at run time.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use crate::{
    discovery::{
        Discovery, PodInfo, PodLister,
        exporters::{Exporter, GpuExporters},
        kube::{KubeFleet, PodsError},
    },
    spec::{GpuSource, PodSource, ScalerSpec, SpecError},
};

/// The pods of a fleet, by source.
enum Pods {
    /// `endpoints` in metadata: always these, each at its own address.
    Static { pods: Vec<PodInfo>, addrs: HashMap<String, SocketAddr> },
    /// An in-process fleet (demo, simulator, benchmarks), asked by the ScaledObject's name.
    InProcess { lister: Arc<dyn PodLister>, namespace: String, name: String },
    /// Kubernetes: a selector and its shared watch.
    Kube(KubeFleet),
}

/// One ScaledObject's pods and the dcgm-exporters covering them.
pub struct FleetSource {
    pods: Pods,
    exporters: GpuExporters,
    /// Namespace of the pods: where dcgm-exporter's `namespace` label must point.
    namespace: String,
    /// Port of discovered pods' metrics (static endpoints carry their own).
    metrics_port: u16,
}

impl std::fmt::Debug for FleetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pods = match &self.pods {
            Pods::Static { .. } => "static",
            Pods::InProcess { .. } => "in-process",
            Pods::Kube(_) => "kube",
        };
        let exporters = match &self.exporters {
            GpuExporters::None => "none",
            GpuExporters::Fixed { .. } => "fixed",
            GpuExporters::OnEachNode { .. } => "on each node",
        };
        f.debug_struct("FleetSource").field("pods", &pods).field("exporters", &exporters).field("namespace", &self.namespace).finish()
    }
}

impl FleetSource {
    /// The pod source of the ScaledObject `name` in `namespace`, as `spec` asks and `discovery`
    /// allows. Starts the dcgm-exporter watch, if any (so it must run inside a Tokio runtime);
    /// the fleet's own pods are first looked up at the first [`FleetSource::pods`].
    pub fn new(namespace: &str, name: &str, spec: &ScalerSpec, discovery: &Discovery) -> Result<Self, SpecError> {
        let (pods, pod_namespace) = match (&spec.pods, discovery) {
            (PodSource::Static(eps), _) => {
                let pods = eps
                    .iter()
                    .map(|e| PodInfo { name: e.name.clone(), namespace: String::new(), ip: Some(e.addr.ip()), node: None, ready: true })
                    .collect();
                let addrs = eps.iter().map(|e| (e.name.clone(), e.addr)).collect();
                (Pods::Static { pods, addrs }, namespace.to_string())
            }
            (PodSource::Kube { .. }, Discovery::None) => return Err(no_kube()),
            (PodSource::Kube { namespace: pod_ns, .. }, Discovery::Custom(lister)) => {
                (Pods::InProcess { lister: lister.clone(), namespace: namespace.to_string(), name: name.to_string() }, pod_ns.clone())
            }
            (PodSource::Kube { namespace: pod_ns, selector }, Discovery::Kube(kube)) => {
                (Pods::Kube(KubeFleet::new(kube.clone(), namespace, name, pod_ns, selector.as_deref())), pod_ns.clone())
            }
        };
        let exporters = match (&spec.gpu, discovery) {
            (GpuSource::None, _) => GpuExporters::None,
            (GpuSource::StaticDcgm { endpoints, field }, _) => GpuExporters::Fixed { endpoints: endpoints.clone(), field: *field },
            (GpuSource::KubeDcgm { namespace, selector, port, field }, Discovery::Kube(kube)) => {
                GpuExporters::OnEachNode { watch: kube.watch_pods(namespace, selector), port: *port, field: *field }
            }
            (GpuSource::KubeDcgm { .. }, _) => GpuExporters::None,
        };
        Ok(FleetSource { pods, exporters, namespace: pod_namespace, metrics_port: spec.metrics_port })
    }

    /// The fleet's pods now, from memory (an API call only to resolve a scale target's
    /// selector, at most every few minutes).
    pub async fn pods(&mut self) -> Result<Vec<PodInfo>, PodsError> {
        match &mut self.pods {
            Pods::Static { pods, .. } => Ok(pods.clone()),
            Pods::InProcess { lister, namespace, name } => Ok(lister.pods(namespace, name)),
            Pods::Kube(fleet) => fleet.pods().await,
        }
    }

    /// Where a pod's vLLM metrics are served: a static endpoint's own address, else the pod's
    /// IP at `metricsPort` (`None` for a pod without an IP or not Ready).
    pub fn metrics_addr(&self, pod: &PodInfo) -> Option<SocketAddr> {
        let fixed = match &self.pods {
            Pods::Static { addrs, .. } => addrs.get(&pod.name).copied(),
            Pods::InProcess { .. } | Pods::Kube(_) => None,
        };
        fixed.or_else(|| pod.scrapeable().map(|ip| SocketAddr::new(ip, self.metrics_port)))
    }

    /// The dcgm-exporters to scrape for the Ready pods `ready`, each with the pods it covers.
    pub fn exporters<'p>(&self, ready: &'p [PodInfo]) -> Vec<Exporter<'p>> {
        self.exporters.for_pods(ready)
    }

    /// Namespace of the fleet's pods (where dcgm-exporter's `namespace` label must point).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// Kubernetes pods asked for on a server without Kubernetes (metadata parsing refuses this
/// first, with the same words).
fn no_kube() -> SpecError {
    SpecError::Conflict {
        key: "endpoints".to_string(),
        problem: "required: this server runs without Kubernetes (--no-kube), so pods cannot be discovered".to_string(),
    }
}
