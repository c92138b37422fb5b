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
        Discovery, PodInfo, PodLister, Readiness,
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
                    .map(|e| PodInfo {
                        name: e.name.clone(),
                        namespace: String::new(),
                        ip: Some(e.addr.ip()),
                        node: None,
                        readiness: Readiness::Ready,
                        ready_after: None,
                        gpus: None,
                    })
                    .collect();
                let addrs = eps.iter().map(|e| (e.name.clone(), e.addr)).collect();
                (Pods::Static { pods, addrs }, namespace.to_string())
            }
            (PodSource::Kube { .. }, Discovery::None) => return Err(SpecError::no_kube()),
            (PodSource::Kube { namespace: pod_ns, selector }, Discovery::Custom(lister)) => {
                in_process_can_list(namespace, pod_ns, selector.as_deref())?;
                (Pods::InProcess { lister: lister.clone(), namespace: namespace.to_string(), name: name.to_string() }, pod_ns.clone())
            }
            (PodSource::Kube { namespace: pod_ns, selector }, Discovery::Kube(kube)) => {
                (Pods::Kube(KubeFleet::new(kube.clone(), namespace, name, pod_ns, selector.as_deref())), pod_ns.clone())
            }
        };
        let exporters = match (&spec.gpu, &pods) {
            (GpuSource::None, _) => GpuExporters::None,
            (GpuSource::StaticDcgm { endpoints, field }, _) => GpuExporters::Fixed { endpoints: endpoints.clone(), field: *field },
            (GpuSource::KubeDcgm { namespace, selector, port, field }, Pods::Kube(fleet)) => {
                GpuExporters::OnEachNode { watch: fleet.discovery().watch_pods(namespace, selector), port: *port, field: *field }
            }
            // The exporter on a pod's node is found through the pod's node: only pods discovered
            // through Kubernetes have one.
            (GpuSource::KubeDcgm { .. }, Pods::Static { .. }) => {
                return Err(SpecError::dcgm_endpoints_required("with static endpoints (or set gpuSource: none)"));
            }
            (GpuSource::KubeDcgm { .. }, Pods::InProcess { .. }) => {
                return Err(SpecError::dcgm_endpoints_required(
                    "with an in-process fleet, which has no dcgm-exporter pods to find (or set gpuSource: none)",
                ));
            }
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

/// An in-process fleet is asked for the pods of a ScaledObject by its name and namespace: it has
/// no labels to apply a `podSelector` to, and no other namespace to list.
fn in_process_can_list(own: &str, namespace: &str, selector: Option<&str>) -> Result<(), SpecError> {
    if selector.is_some() {
        return Err(SpecError::Conflict {
            key: "podSelector".to_string(),
            problem: "this server's pods come from an in-process fleet (demo, simulator, benchmarks), found by the ScaledObject's \
                      name: it has no labels to select by"
                .to_string(),
        });
    }
    if namespace != own {
        return Err(SpecError::Conflict {
            key: "namespace".to_string(),
            problem: format!(
                "\"{namespace}\": this server's pods come from an in-process fleet (demo, simulator, benchmarks), found by the \
                 ScaledObject's name in its own namespace (\"{own}\")"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use http::{Request, Response};
    use kube::{Client, client::Body};
    use tower_test::mock;

    use super::*;
    use crate::{
        discovery::kube::KubeDiscovery,
        spec::{LatencySpec, ParseContext, tenancy::NamespaceAccess},
    };

    struct Fleet(Vec<PodInfo>);

    impl PodLister for Fleet {
        fn pods(&self, _: &str, _: &str) -> Vec<PodInfo> {
            self.0.clone()
        }
    }

    fn pod(name: &str, ip: &str, node: Option<&str>) -> PodInfo {
        PodInfo {
            name: name.into(),
            namespace: "ai".into(),
            ip: ip.parse().ok(),
            node: node.map(Into::into),
            readiness: Readiness::Ready,
            ready_after: None,
            gpus: None,
        }
    }

    fn in_process() -> Discovery {
        Discovery::Custom(Arc::new(Fleet(vec![pod("vllm-0", "127.0.0.2", None)])))
    }

    /// The spec of ScaledObject `ai/so` with metadata `kv`, on a server that allows static
    /// endpoints and reading namespace `team-b`.
    fn spec(kv: &[(&str, &str)]) -> ScalerSpec {
        let raw: HashMap<String, String> = kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let policy = Default::default();
        let latency = LatencySpec::default();
        let access = NamespaceAccess::parse(["ai:team-b"]).expect("rule");
        let ctx = ParseContext {
            namespace: "ai",
            policy_defaults: &policy,
            latency_defaults: &latency,
            allow_static_endpoints: true,
            kube_enabled: true,
            namespace_access: &access,
            dcgm_selector: "app=nvidia-dcgm-exporter",
            gpu_hour_price: crate::spec::cost::DEFAULT_GPU_HOUR_PRICE,
        };
        ScalerSpec::parse(&raw, &ctx).expect("valid metadata")
    }

    /// The key and message of a refusal.
    fn refused_key(r: Result<FleetSource, SpecError>) -> (String, String) {
        let err = r.expect_err("refused");
        let SpecError::Conflict { key, .. } = &err else { panic!("expected a conflict naming a key: {err:?}") };
        (key.clone(), err.to_string())
    }

    #[test]
    fn an_in_process_fleet_refuses_dcgm_discovery_naming_dcgm_endpoints() {
        for gpu in [("gpuSource", "dcgm"), ("weightGpuUtilization", "1")] {
            let (key, text) = refused_key(FleetSource::new("ai", "so", &spec(&[gpu]), &in_process()));
            assert_eq!(key, "dcgmEndpoints", "{gpu:?}");
            assert!(text.contains("in-process fleet") && text.contains("gpuSource: none"), "{text}");
        }
    }

    #[test]
    fn an_in_process_fleet_refuses_a_pod_selector_it_has_no_labels_for() {
        let (key, text) = refused_key(FleetSource::new("ai", "so", &spec(&[("podSelector", "app=vllm")]), &in_process()));
        assert_eq!(key, "podSelector");
        assert!(text.contains("in-process fleet"), "{text}");
    }

    #[test]
    fn an_in_process_fleet_refuses_a_namespace_other_than_the_scaledobjects_own() {
        let (key, text) = refused_key(FleetSource::new("ai", "so", &spec(&[("namespace", "team-b")]), &in_process()));
        assert_eq!(key, "namespace");
        assert!(text.contains("\"team-b\"") && text.contains("\"ai\""), "{text}");
        assert!(FleetSource::new("ai", "so", &spec(&[("namespace", "ai")]), &in_process()).is_ok(), "its own namespace, named");
    }

    #[tokio::test]
    async fn an_in_process_fleet_reads_gpus_from_fixed_exporters_for_every_pod() {
        let s = spec(&[("gpuSource", "dcgm"), ("dcgmEndpoints", "127.0.0.9:9400")]);
        let mut fleet = FleetSource::new("ai", "so", &s, &in_process()).expect("fixed exporters work in-process");
        let pods = fleet.pods().await.expect("in-process pods");
        let exporters = fleet.exporters(&pods);
        assert_eq!(exporters.len(), 1);
        assert_eq!((exporters[0].addr.to_string(), exporters[0].pods.clone()), ("127.0.0.9:9400".to_string(), vec!["vllm-0"]));
        assert_eq!(fleet.metrics_addr(&pods[0]), Some("127.0.0.2:8000".parse().expect("addr")));
    }

    #[test]
    fn kubernetes_pods_on_a_server_without_kubernetes_are_refused_naming_endpoints() {
        let (key, text) = refused_key(FleetSource::new("ai", "so", &spec(&[]), &Discovery::None));
        assert_eq!(key, "endpoints");
        assert!(text.contains("--no-kube"), "{text}");
    }

    #[tokio::test]
    async fn dcgm_discovery_for_static_endpoints_is_refused_naming_dcgm_endpoints_even_with_kubernetes() {
        // Parsing refuses this first; a spec built otherwise must not degrade either.
        let mut s = spec(&[("endpoints", "127.0.0.2:8000")]);
        s.gpu = spec(&[("gpuSource", "dcgm")]).gpu;
        let (service, _handle) = mock::pair::<Request<Body>, Response<Body>>();
        let kube = Discovery::Kube(KubeDiscovery::from_client(Client::new(service, "default")));
        let (key, text) = refused_key(FleetSource::new("ai", "so", &s, &kube));
        assert_eq!(key, "dcgmEndpoints");
        assert!(text.contains("static endpoints"), "{text}");
    }

    #[tokio::test]
    async fn static_endpoints_are_scraped_at_their_own_address_and_found_pods_at_metrics_port() {
        let mut fixed = FleetSource::new("ai", "so", &spec(&[("endpoints", "a=127.0.0.2:8001")]), &in_process()).expect("static");
        let pods = fixed.pods().await.expect("static pods");
        assert_eq!(pods.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(fixed.metrics_addr(&pods[0]), Some("127.0.0.2:8001".parse().expect("addr")));
        assert_eq!(fixed.namespace(), "ai");
        let found = FleetSource::new("ai", "so", &spec(&[("metricsPort", "9000")]), &in_process()).expect("in-process");
        assert_eq!(found.metrics_addr(&pod("vllm-0", "127.0.0.2", None)), Some("127.0.0.2:9000".parse().expect("addr")));
        let not_ready = PodInfo { readiness: Readiness::Starting, ..pod("vllm-1", "127.0.0.3", None) };
        assert_eq!(found.metrics_addr(&not_ready), None);
    }
}
