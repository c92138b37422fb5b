//! The simulated cluster, everything but the policy: the replica, the SLO, cold starts, drains,
//! the scrape and polling intervals, the fleet bounds and the gateway's routing.

use serde::Serialize;

use crate::sim::engine::ModelProfile;

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
    /// llm-scaler's collector tick and Prometheus' scrape interval, seconds.
    pub scrape_interval_s: f64,
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
    /// Seed for routing and cold-start jitter.
    pub seed: u64,
    /// Requests one replica serves per second within the SLO (for demand-in-replicas series).
    pub replica_capacity_rps: f64,
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
            polling_interval_s: 15.0,
            min_replicas: 2,
            max_replicas: 20,
            initial_replicas: None,
            router: Router::LeastRequest,
            series_step_s: None,
            seed: 1,
            replica_capacity_rps: 0.0,
        }
    }
}
