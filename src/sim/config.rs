//! The simulated cluster, everything but the policy: the replica, the SLO, cold starts, drains,
//! the scrape and polling intervals, the fleet bounds and the gateway's routing.

use serde::Serialize;

use crate::{serve::config::Settings, sim::engine::ModelProfile};

/// The latency SLO a request must meet to count as served well.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slo {
    /// Time to first token, seconds.
    pub ttft_s: f64,
    /// Mean time per output token after the first, seconds.
    pub tpot_s: f64,
}

impl Default for Slo {
    fn default() -> Self {
        Slo { ttft_s: 2.0, tpot_s: 0.1 }
    }
}

/// How the gateway spreads requests over Ready replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Router {
    /// Envoy's least-request: the less loaded of two random replicas (power of two choices).
    LeastRequest,
    /// Round robin.
    RoundRobin,
}

/// Everything about the simulated cluster that is not the policy.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The modelled replica.
    pub profile: ModelProfile,
    /// Price of one GPU-hour, dollars.
    pub price_per_gpu_hour: f64,
    /// The SLO.
    pub slo: Slo,
    /// From the scale-up decision to Ready, seconds.
    pub cold_start_s: f64,
    /// Extra uniform random cold-start delay in `[0, jitter]`, seconds.
    pub cold_start_jitter_s: f64,
    /// How long a scaled-down replica may take to finish its requests before they are aborted.
    pub drain_timeout_s: f64,
    /// Prometheus' scrape interval, seconds: what the KEDA/HPA baselines read (15 s, the
    /// common `scrape_interval` of ServiceMonitors for vLLM and dcgm-exporter).
    pub scrape_interval_s: f64,
    /// llm-scaler's collector tick, seconds: the server's own default
    /// ([`Settings::default`]'s `scrape_interval`), so the simulated scaler reads its pods as
    /// often as the deployed one does.
    pub collector_interval_s: f64,
    /// How often KEDA refreshes the metric the HPA reads (its polling of the scaler), seconds.
    pub polling_interval_s: f64,
    /// Lower bound for every autoscaled policy.
    pub min_replicas: u32,
    /// Upper bound for every autoscaled policy (and the static fleet's default size).
    pub max_replicas: u32,
    /// Replicas Ready at t = 0 for autoscaled policies (`None`: `min_replicas`).
    pub initial_replicas: Option<u32>,
    /// Request routing.
    pub router: Router,
    /// Resolution of the time series in the report, seconds (`None`: about 600 points).
    pub series_step_s: Option<f64>,
    /// Length of a judged hour of the strict SLO criterion, seconds of replay time: 3600, or
    /// `3600 x time_scale` to judge the hours of a compressed source (the demo's).
    pub hour_s: f64,
    /// Seed for routing and cold-start jitter.
    pub seed: u64,
    /// Requests one replica serves per second within the SLO (for demand-in-replicas series).
    pub replica_capacity_rps: f64,
    /// GPU nodes the replicas are packed on (`None`: every replica's GPUs are free and billed
    /// alone, the per-pod model).
    pub nodes: Option<NodePool>,
}

/// Replicas packed on GPU nodes: whole nodes are billed, and a replica that fits on no node
/// waits for a new one. The cost model of a cluster autoscaler over GPU node groups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NodePool {
    /// GPUs per node (8 on an H100 SXM node).
    pub gpus_per_node: u32,
    /// From asking for a node to a replica being schedulable on it, seconds (the replica's
    /// cold start follows).
    pub provisioning_s: f64,
}

impl NodePool {
    /// The delay a new node takes when `--node-provisioning` is not given: about what cluster
    /// autoscalers take to bring up a GPU VM and its drivers.
    pub const DEFAULT_PROVISIONING_S: f64 = 300.0;
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            profile: ModelProfile::llama70b_fp8_h100_tp2(),
            price_per_gpu_hour: 4.0,
            slo: Slo::default(),
            cold_start_s: 120.0,
            cold_start_jitter_s: 0.0,
            drain_timeout_s: 600.0,
            scrape_interval_s: 15.0,
            collector_interval_s: Settings::default().scrape_interval.as_secs_f64(),
            polling_interval_s: 15.0,
            min_replicas: 2,
            max_replicas: 20,
            initial_replicas: None,
            router: Router::LeastRequest,
            series_step_s: None,
            hour_s: crate::sim::criterion::HOUR_S,
            seed: 1,
            replica_capacity_rps: 0.0,
            nodes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_collector_ticks_at_the_servers_default_and_prometheus_at_15_s() {
        let cfg = SimConfig::default();
        assert_eq!(cfg.collector_interval_s, Settings::default().scrape_interval.as_secs_f64());
        assert_eq!(cfg.scrape_interval_s, 15.0);
    }
}
