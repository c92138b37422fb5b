//! The dcgm-exporters that report a fleet's GPUs, and which of the fleet's pods each covers.
//!
//! dcgm-exporter runs once per node and labels each GPU's series with the pod using it, so an
//! exporter is scraped for the pods on its node (found through a Kubernetes watch on the
//! exporter's DaemonSet pods), or, with fixed `dcgmEndpoints`, every fixed exporter for every
//! pod (the series are then joined on the `pod` label alone).

use std::{collections::HashMap, net::SocketAddr};

use crate::{
    discovery::{PodInfo, kube::PodWatch},
    spec::GpuField,
};

/// One dcgm-exporter to scrape, and the pods of the fleet whose GPU activity it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exporter<'p> {
    /// Its metrics endpoint.
    pub addr: SocketAddr,
    /// Names of the fleet's pods it covers.
    pub pods: Vec<&'p str>,
    /// The field to read.
    pub field: GpuField,
}

/// Where a fleet's dcgm-exporters are.
pub(crate) enum GpuExporters {
    /// GPU activity is not collected.
    None,
    /// Fixed endpoints (`dcgmEndpoints`), each scraped for every pod.
    Fixed {
        /// The endpoints.
        endpoints: Vec<SocketAddr>,
        /// Field to read.
        field: GpuField,
    },
    /// The exporter pod on each fleet pod's node. Needs a Kubernetes watch, so it exists only
    /// where pods are discovered through Kubernetes.
    OnEachNode {
        /// The exporter pods.
        watch: PodWatch,
        /// Their metrics port.
        port: u16,
        /// Field to read.
        field: GpuField,
    },
}

impl GpuExporters {
    /// The exporters to scrape for the Ready pods `ready`.
    pub(crate) fn for_pods<'p>(&self, ready: &'p [PodInfo]) -> Vec<Exporter<'p>> {
        match self {
            GpuExporters::None => Vec::new(),
            GpuExporters::Fixed { endpoints, field } => {
                let all: Vec<&str> = ready.iter().map(|p| p.name.as_str()).collect();
                endpoints.iter().map(|addr| Exporter { addr: *addr, pods: all.clone(), field: *field }).collect()
            }
            GpuExporters::OnEachNode { watch, port, field } => {
                let exporters = watch.snapshot();
                let mut by_node: HashMap<&str, Vec<&str>> = HashMap::new();
                for p in ready {
                    if let Some(n) = p.node.as_deref() {
                        by_node.entry(n).or_default().push(p.name.as_str());
                    }
                }
                by_node
                    .into_iter()
                    .filter_map(|(node, pods)| {
                        let ex = exporters.iter().find(|e| e.node.as_deref() == Some(node) && e.scrapeable().is_some())?;
                        Some(Exporter { addr: SocketAddr::new(ex.ip?, *port), pods, field: *field })
                    })
                    .collect()
            }
        }
    }
}
