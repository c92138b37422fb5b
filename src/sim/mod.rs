//! `llm-scaler simulate`: replay a workload against a modelled vLLM fleet under several scaling
//! policies at once, in virtual time, and report GPU-hours, cost and SLO attainment.
//!
//! * [`workload`]: traces, rate curves and synthetic patterns as one deterministic arrival stream.
//! * [`engine`]: one replica, continuous batching calibrated on measured vLLM profiles.
//! * this module: the fleet (routing, cold starts, drains), the cluster (KEDA polling, the HPA
//!   of [`crate::sim::hpa`]) and the policies, each a [`PolicyKind`] run by the same loop.
//!
//! llm-scaler itself is not re-implemented: its pods render their state as vLLM and
//! dcgm-exporter text ([`crate::sim::render`]), which goes through the scaler's own parser and
//! extractors ([`crate::read::exposition`], [`crate::read::vllm`], [`crate::read::dcgm`]) into the
//! same [`Decider`] the server's collector owns (which calls [`crate::decide::policy::decide`]): the production path,
//! with the HTTP hop replaced by a function call and the clock by virtual time.

pub mod cli;
pub mod demo;
pub mod engine;
pub mod hpa;
pub mod plots;
pub mod render;
pub mod report;
pub mod stats;
pub mod workload;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use serde::Serialize;

use crate::{
    decide::policy::{PolicyConfig, Signal},
    decide::{Decider, Tick},
    read::dcgm::DcgmExtractor,
    read::exposition,
    read::vllm::VllmExtractor,
    sim::hpa::{Hpa, HpaConfig},
    sim::render::dcgm::{self as dcgm_render, DcgmFlavor, Gpu, PodRef},
    spec::tenancy::NamespaceAccess,
    spec::{GpuField, GpuSource, LatencyHistogram, LatencySpec, ParseContext, ScalerSpec},
};

use engine::{Done, ModelProfile, Replica};
use stats::{LogHist, Percentiles};
use workload::{Request, Workload};

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

/// A scaling policy: what the cluster does about the fleet's size.
#[derive(Debug, Clone)]
pub enum PolicyKind {
    /// A fixed fleet.
    Static {
        /// Replicas.
        replicas: u32,
    },
    /// The classic HPA on GPU utilisation: dcgm-exporter's `DCGM_FI_DEV_GPU_UTIL` per pod (via
    /// Prometheus), `AverageValue` target.
    HpaGpu {
        /// Target utilisation 0..1 per replica.
        target: f64,
        /// HPA settings.
        hpa: HpaConfig,
    },
    /// KEDA's Prometheus trigger on `sum(vllm:num_requests_waiting)` (vLLM production-stack).
    KedaQueue {
        /// Waiting requests per replica.
        threshold: f64,
        /// HPA settings.
        hpa: HpaConfig,
    },
    /// A Knative-KPA-like concurrency autoscaler acting on the Deployment directly.
    Kpa(KpaConfig),
    /// llm-scaler, configured by scaler metadata, behind KEDA and the HPA.
    LlmScaler {
        /// The parsed metadata.
        spec: Box<ScalerSpec>,
        /// The metadata as given (for the report).
        metadata: BTreeMap<String, String>,
        /// HPA settings.
        hpa: HpaConfig,
    },
}

/// Knative KPA settings (`pkg/autoscaler/scaling/autoscaler.go`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpaConfig {
    /// Target concurrency per pod (`autoscaling.knative.dev/target`).
    pub target_concurrency: f64,
    /// Target utilisation of that concurrency (default 0.7).
    pub target_utilization: f64,
    /// Stable window, seconds (60).
    pub stable_window_s: f64,
    /// Panic window, seconds (6, 10 % of the stable window).
    pub panic_window_s: f64,
    /// Panic when the panic-window demand reaches this multiple of the Ready pods (2.0).
    pub panic_threshold: f64,
    /// Largest scale-down factor per tick (2.0).
    pub max_scale_down_rate: f64,
    /// Tick (queue-proxy stats are scraped every 1-2 s), seconds.
    pub tick_s: f64,
}

impl Default for KpaConfig {
    fn default() -> Self {
        KpaConfig {
            target_concurrency: 64.0,
            target_utilization: 0.7,
            stable_window_s: 60.0,
            panic_window_s: 6.0,
            panic_threshold: 2.0,
            max_scale_down_rate: 2.0,
            tick_s: 2.0,
        }
    }
}

/// A named policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Short name (table row, plot legend).
    pub name: String,
    /// What it does.
    pub kind: PolicyKind,
}

impl Policy {
    /// One line describing the policy.
    pub fn describe(&self) -> String {
        match &self.kind {
            PolicyKind::Static { replicas } => format!("static fleet of {replicas} replicas (sized for the peak)"),
            PolicyKind::HpaGpu { target, hpa } => {
                format!("HPA on DCGM GPU utilisation, target {:.0}% (tolerance {})", target * 100.0, hpa.tolerance_up)
            }
            PolicyKind::KedaQueue { threshold, hpa } => {
                format!("KEDA Prometheus trigger sum(vllm:num_requests_waiting), threshold {threshold} (tolerance {})", hpa.tolerance_up)
            }
            PolicyKind::Kpa(k) => format!(
                "Knative-KPA-like: concurrency target {} x {}, stable {} s / panic {} s",
                k.target_concurrency, k.target_utilization, k.stable_window_s, k.panic_window_s
            ),
            PolicyKind::LlmScaler { metadata, hpa, .. } => {
                let kv: Vec<String> = metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "llm-scaler [{}] (HPA tolerance {})",
                    if kv.is_empty() { "defaults".into() } else { kv.join(", ") },
                    hpa.tolerance_up
                )
            }
        }
    }
}

/// The HPA settings used for KEDA-driven policies: Kubernetes' defaults with `behavior`, the
/// given tolerance, and the fleet bounds.
pub fn hpa_config(cfg: &SimConfig, tolerance: f64) -> HpaConfig {
    HpaConfig {
        tolerance_up: tolerance,
        tolerance_down: tolerance,
        min_replicas: cfg.min_replicas,
        max_replicas: cfg.max_replicas,
        ..HpaConfig::default()
    }
}

/// Builds an llm-scaler policy from metadata key/values, exactly as the server parses them.
pub fn llm_scaler_policy(name: &str, cfg: &SimConfig, metadata: &[(String, String)], tolerance: f64) -> Result<Policy, String> {
    let mut raw: HashMap<String, String> = metadata.iter().cloned().collect();
    raw.entry("minReplicas".into()).or_insert_with(|| cfg.min_replicas.to_string());
    raw.entry("maxReplicas".into()).or_insert_with(|| cfg.max_replicas.to_string());
    let defaults = PolicyConfig::default();
    let latency = LatencySpec { histogram: LatencyHistogram::Ttft, quantile: 0.99, window: Duration::from_secs(60) };
    let ctx = ParseContext {
        namespace: "sim",
        policy_defaults: &defaults,
        latency_defaults: &latency,
        allow_static_endpoints: false,
        kube_enabled: true,
        namespace_access: &NamespaceAccess::own_namespace_only(),
        dcgm_selector: crate::serve::config::DEFAULT_DCGM_SELECTOR,
    };
    let spec = ScalerSpec::parse(&raw, &ctx).map_err(|e| e.to_string())?;
    let mut hpa = hpa_config(cfg, tolerance);
    hpa.min_replicas = spec.policy.min_replicas.max(1);
    hpa.max_replicas = spec.policy.max_replicas;
    Ok(Policy {
        name: name.to_string(),
        kind: PolicyKind::LlmScaler { spec: Box::new(spec), metadata: metadata.iter().cloned().collect(), hpa },
    })
}

/// The standard line-up: static, HPA on GPU, KEDA on queue, KPA, llm-scaler with `metadata`.
pub fn standard_policies(cfg: &SimConfig, metadata: &[(String, String)], static_replicas: Option<u32>) -> Result<Vec<Policy>, String> {
    Ok(vec![
        Policy { name: "static".into(), kind: PolicyKind::Static { replicas: static_replicas.unwrap_or(cfg.max_replicas) } },
        Policy { name: "hpa-gpu70".into(), kind: PolicyKind::HpaGpu { target: 0.7, hpa: hpa_config(cfg, 0.1) } },
        Policy { name: "keda-queue5".into(), kind: PolicyKind::KedaQueue { threshold: 5.0, hpa: hpa_config(cfg, 0.1) } },
        Policy { name: "kpa".into(), kind: PolicyKind::Kpa(KpaConfig::default()) },
        llm_scaler_policy("llm-scaler", cfg, metadata, 0.0)?,
    ])
}

/// Time series of one policy, one point per `step_s`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Series {
    /// Seconds per point.
    pub step_s: f64,
    /// Mean replicas provisioned (starting, Ready or draining).
    pub replicas: Vec<f64>,
    /// Mean Ready replicas.
    pub ready: Vec<f64>,
    /// Arrivals per second.
    pub arrivals_rps: Vec<f64>,
    /// p99 TTFT of the requests that arrived in the step, seconds.
    pub ttft_p99_s: Vec<Option<f64>>,
    /// Share of the step's requests within the SLO.
    pub slo: Vec<Option<f64>>,
}

/// One policy's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    /// Short name.
    pub name: String,
    /// What the policy is.
    pub description: String,
    /// GPU-hours provisioned over the replay (cold starts and drains included).
    pub gpu_hours: f64,
    /// `gpu_hours x price`.
    pub cost_usd: f64,
    /// Busy time / provisioned time of the GPUs (a batch was running): the duty cycle, which
    /// stays near 100 % at any load under continuous batching.
    pub gpu_utilization: f64,
    /// Work done / capacity provisioned: requests served per replica-second divided by the
    /// replica's capacity within the SLO (`replica_capacity_rps`); `None` when it is unknown.
    pub work_utilization: Option<f64>,
    /// Requests that arrived.
    pub requests: u64,
    /// Requests completed.
    pub completed: u64,
    /// Requests dropped (never admitted, or aborted after a drain's grace period).
    pub dropped: u64,
    /// Share of all requests within TTFT and TPOT SLO.
    pub slo_attainment: f64,
    /// Completed requests over the TTFT SLO.
    pub ttft_misses: u64,
    /// Completed requests over the TPOT SLO.
    pub tpot_misses: u64,
    /// TTFT percentiles, seconds.
    pub ttft: Percentiles,
    /// TPOT percentiles, seconds.
    pub tpot: Percentiles,
    /// End-to-end latency percentiles, seconds.
    pub e2e: Percentiles,
    /// Times the replica target changed.
    pub scaling_actions: u64,
    /// Time-averaged provisioned replicas.
    pub mean_replicas: f64,
    /// Most replicas provisioned at once.
    pub peak_replicas: u32,
    /// KV-cache preemptions.
    pub preemptions: u64,
    /// `1 - gpu_hours / static gpu_hours`, when a static policy ran.
    pub savings_vs_static: Option<f64>,
    /// For llm-scaler: share of decisions each signal dominated.
    pub dominant_signals: BTreeMap<String, f64>,
    /// Wall-clock seconds this policy's simulation took.
    pub wall_s: f64,
    /// Time series.
    pub series: Series,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Workload description.
    pub workload: String,
    /// Replay length, seconds.
    pub duration_s: f64,
    /// Requests replayed (per policy).
    pub requests: u64,
    /// The modelled replica.
    pub replica: String,
    /// GPUs per replica.
    pub gpus_per_replica: u32,
    /// Price per GPU-hour.
    pub price_per_gpu_hour: f64,
    /// The SLO.
    pub slo: Slo,
    /// Requests/s one replica serves within the SLO.
    pub replica_capacity_rps: f64,
    /// Cold start, seconds.
    pub cold_start_s: f64,
    /// Per policy.
    pub policies: Vec<PolicyResult>,
    /// Wall-clock seconds of the whole run.
    pub wall_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PodState {
    Starting,
    Ready,
    Draining { since: f64 },
}

struct Pod {
    name: String,
    ready_at: f64,
    state: PodState,
    replica: Replica,
    gpus: Vec<Gpu>,
    busy_prev: f64,
    duty: f64,
}

/// Per-policy accounting.
struct Acc {
    ttft: LogHist,
    tpot: LogHist,
    e2e: LogHist,
    requests: u64,
    completed: u64,
    dropped: u64,
    slo_ok: u64,
    ttft_miss: u64,
    tpot_miss: u64,
    step: f64,
    s_replicas: Vec<f64>,
    s_ready: Vec<f64>,
    s_arrivals: Vec<u64>,
    s_ttft: Vec<LogHist>,
    s_n: Vec<u64>,
    s_ok: Vec<u64>,
    slo: Slo,
}

impl Acc {
    fn new(duration: f64, step: f64, slo: Slo) -> Self {
        let n = (duration / step).ceil() as usize + 1;
        Acc {
            ttft: LogHist::default(),
            tpot: LogHist::default(),
            e2e: LogHist::default(),
            requests: 0,
            completed: 0,
            dropped: 0,
            slo_ok: 0,
            ttft_miss: 0,
            tpot_miss: 0,
            step,
            s_replicas: vec![0.0; n],
            s_ready: vec![0.0; n],
            s_arrivals: vec![0; n],
            s_ttft: (0..n).map(|_| LogHist::with_growth(1.05)).collect(),
            s_n: vec![0; n],
            s_ok: vec![0; n],
            slo,
        }
    }

    fn bucket(&self, t: f64) -> usize {
        ((t / self.step) as usize).min(self.s_n.len() - 1)
    }

    fn done(&mut self, d: Done) {
        let b = self.bucket(d.arrival_s);
        self.s_n[b] += 1;
        if !d.completed {
            self.dropped += 1;
            self.s_ttft[b].record(d.ttft_s.unwrap_or(d.e2e_s));
            return;
        }
        self.completed += 1;
        let ttft = d.ttft_s.unwrap_or(f64::INFINITY);
        self.ttft.record(ttft);
        self.s_ttft[b].record(ttft);
        if let Some(t) = d.tpot_s {
            self.tpot.record(t);
        }
        self.e2e.record(d.e2e_s);
        let ttft_ok = ttft <= self.slo.ttft_s;
        let tpot_ok = d.tpot_s.is_none_or(|t| t <= self.slo.tpot_s);
        self.ttft_miss += u64::from(!ttft_ok);
        self.tpot_miss += u64::from(!tpot_ok);
        if ttft_ok && tpot_ok {
            self.slo_ok += 1;
            self.s_ok[b] += 1;
        }
    }
}

struct Fleet<'c> {
    cfg: &'c SimConfig,
    pods: Vec<Pod>,
    next_id: u32,
    rng: Xoshiro256PlusPlus,
    rr: usize,
    gateway: VecDeque<Request>,
    /// Indices of Ready pods (rebuilt when the fleet changes).
    routable: Vec<usize>,
    gpu_seconds: f64,
    busy_seconds: f64,
    actions: u64,
    peak: u32,
    preemptions_gone: u64,
}

impl<'c> Fleet<'c> {
    fn new(cfg: &'c SimConfig, seed: u64) -> Self {
        Fleet {
            cfg,
            pods: Vec::new(),
            next_id: 0,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            rr: 0,
            gateway: VecDeque::new(),
            routable: Vec::new(),
            gpu_seconds: 0.0,
            busy_seconds: 0.0,
            actions: 0,
            peak: 0,
            preemptions_gone: 0,
        }
    }

    fn add_pod(&mut self, now: f64, ready_at: f64) {
        let id = self.next_id;
        self.next_id += 1;
        let name = format!("vllm-sim-{id}");
        let holder = PodRef { namespace: "sim".into(), pod: name.clone(), container: "vllm".into() };
        let gpus = (0..self.cfg.profile.tp)
            .map(|i| {
                let mut g = Gpu::h100(i, &format!("gpu-node-{id}"));
                g.holder = Some(holder.clone());
                g.apply_load(0.0);
                g
            })
            .collect();
        let state = if ready_at <= now { PodState::Ready } else { PodState::Starting };
        self.pods.push(Pod { name, ready_at, state, replica: Replica::new(&self.cfg.profile, now), gpus, busy_prev: 0.0, duty: 0.0 });
        self.reindex();
    }

    fn reindex(&mut self) {
        self.routable = self.pods.iter().enumerate().filter(|(_, p)| p.state == PodState::Ready).map(|(i, _)| i).collect();
    }

    /// Deployment replicas: pods not being drained.
    fn current(&self) -> u32 {
        self.pods.iter().filter(|p| !matches!(p.state, PodState::Draining { .. })).count() as u32
    }

    fn ready(&self) -> u32 {
        self.routable.len() as u32
    }

    fn starting(&self) -> u32 {
        self.pods.iter().filter(|p| p.state == PodState::Starting).count() as u32
    }

    fn scale_to(&mut self, n: u32, now: f64) {
        let cur = self.current();
        if n == cur {
            return;
        }
        self.actions += 1;
        if n > cur {
            for _ in cur..n {
                let jitter = if self.cfg.cold_start_jitter_s > 0.0 { self.rng.random::<f64>() * self.cfg.cold_start_jitter_s } else { 0.0 };
                self.add_pod(now, now + self.cfg.cold_start_s + jitter);
            }
        } else {
            let mut remove = cur - n;
            // Like a ReplicaSet: pods not Ready yet go first (youngest first), then the Ready pods
            // with the least work.
            while remove > 0 {
                if let Some(i) = self.pods.iter().rposition(|p| p.state == PodState::Starting) {
                    // Its GPU time so far was counted tick by tick.
                    self.pods.remove(i);
                    remove -= 1;
                    continue;
                }
                let Some(i) = self
                    .pods
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.state == PodState::Ready)
                    .min_by_key(|(_, p)| p.replica.outstanding())
                    .map(|(i, _)| i)
                else {
                    break;
                };
                self.pods[i].state = PodState::Draining { since: now };
                remove -= 1;
            }
            self.reindex();
        }
        self.peak = self.peak.max(self.pods.len() as u32);
    }

    fn route(&mut self, r: Request, done: &mut impl FnMut(Done)) {
        let n = self.routable.len();
        if n == 0 {
            self.gateway.push_back(r);
            return;
        }
        let i = match self.cfg.router {
            Router::RoundRobin => {
                self.rr = (self.rr + 1) % n;
                self.routable[self.rr]
            }
            Router::LeastRequest => {
                let a = self.routable[self.rng.random_range(0..n)];
                let b = if n > 1 { self.routable[self.rng.random_range(0..n)] } else { a };
                self.pods[a].replica.advance_to(r.arrival_s, done);
                if b != a {
                    self.pods[b].replica.advance_to(r.arrival_s, done);
                }
                if self.pods[b].replica.outstanding() < self.pods[a].replica.outstanding() { b } else { a }
            }
        };
        let p = &mut self.pods[i].replica;
        p.advance_to(r.arrival_s, done);
        p.submit(&r, r.arrival_s);
    }

    /// Advances every pod to `t` and runs the lifecycle: pods become Ready, drains end.
    fn tick(&mut self, t: f64, dt: f64, count_until: f64, done: &mut impl FnMut(Done)) {
        let mut changed = false;
        let tp = f64::from(self.cfg.profile.tp);
        let counted = (t.min(count_until) - (t - dt).min(count_until)).max(0.0);
        for p in &mut self.pods {
            p.replica.advance_to(t, done);
            let busy = p.replica.busy_s - p.busy_prev;
            p.busy_prev = p.replica.busy_s;
            p.duty = if dt > 0.0 { (busy / dt).clamp(0.0, 1.0) } else { 0.0 };
            self.gpu_seconds += counted * tp;
            if counted > 0.0 {
                self.busy_seconds += busy.min(counted) * tp;
            }
            if p.state == PodState::Starting && p.ready_at <= t {
                p.state = PodState::Ready;
                changed = true;
            }
        }
        // Finished drains leave; overdue ones abort what they still hold.
        let timeout = self.cfg.drain_timeout_s;
        let mut i = 0;
        while i < self.pods.len() {
            if let PodState::Draining { since } = self.pods[i].state {
                let idle = self.pods[i].replica.outstanding() == 0;
                if idle || t - since >= timeout {
                    if !idle {
                        self.pods[i].replica.abort_all(done);
                    }
                    let p = self.pods.remove(i);
                    self.preemptions_gone += p.replica.preemptions;
                    changed = true;
                    continue;
                }
            }
            i += 1;
        }
        if changed {
            self.reindex();
        }
        while !self.routable.is_empty()
            && let Some(r) = self.gateway.pop_front()
        {
            self.route(r, done);
        }
    }
}

/// Where the HPA-driven policies get their number.
enum Driver {
    Static,
    Hpa { hpa: Hpa, source: Source, value: Option<f64>, target: f64 },
    Kpa { cfg: KpaConfig, samples: VecDeque<(f64, f64)>, panicking: bool, panic_since: f64, panic_max: u32 },
}

enum Source {
    /// Prometheus' latest `sum(DCGM_FI_DEV_GPU_UTIL)/100` over the fleet's pods.
    Gpu {
        latest: Option<f64>,
    },
    /// Prometheus' latest `sum(vllm:num_requests_waiting)`.
    Queue {
        latest: Option<f64>,
    },
    LlmScaler {
        spec: Box<ScalerSpec>,
        decider: Box<Decider>,
        latest: Option<f64>,
    },
}

/// Reusable buffers for scraping modelled pods through the production parsers.
struct Scraper {
    body: String,
    vllm: Option<VllmExtractor>,
}

impl Scraper {
    fn vllm(
        &mut self,
        pod: &mut Pod,
        model: Option<String>,
        families: &'static [&'static str],
    ) -> Result<crate::read::vllm::PodSample, String> {
        pod.replica.sync_gauges();
        self.body.clear();
        pod.replica.pod.render(&mut self.body);
        let x = self.vllm.get_or_insert_with(|| VllmExtractor::new(model, families));
        x.reset();
        exposition::parse(self.body.as_bytes(), x).map_err(|e| e.to_string())?;
        x.finish().map_err(|e| e.to_string())
    }

    fn gpu(&mut self, pod: &mut Pod, field: GpuField) -> Option<f64> {
        let load = pod.replica.batch_fill();
        for g in &mut pod.gpus {
            g.apply_load(load);
            // dcgm-exporter's GPU_UTIL is a duty cycle: the share of the last sample period a
            // kernel ran, near 100 % whenever a batch is running.
            g.util = pod.duty;
            g.gr_engine_active = 0.95 * pod.duty;
        }
        self.body.clear();
        dcgm_render::render(&pod.gpus, DcgmFlavor::V4_6, &mut self.body);
        let wanted = [pod.name.as_str()];
        let mut x = DcgmExtractor::new(field, "sim", &wanted);
        exposition::parse(self.body.as_bytes(), &mut x).ok()?;
        x.finish().ok()?.mean(&pod.name)
    }
}

/// Progress hook: `(policy index, virtual seconds done)`.
pub type Progress<'a> = &'a (dyn Fn(usize, f64) + Sync);

/// Runs one policy over the workload.
pub fn run_policy(cfg: &SimConfig, workload: &Workload, policy: &Policy, index: usize, progress: Progress<'_>) -> PolicyResult {
    let started = Instant::now();
    let duration = workload.duration_s();
    let step = cfg.series_step_s.unwrap_or_else(|| (duration / 600.0).max(1.0).ceil());
    let mut acc = Acc::new(duration, step, cfg.slo);
    let mut fleet = Fleet::new(cfg, cfg.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let initial = match &policy.kind {
        PolicyKind::Static { replicas } => *replicas,
        _ => cfg.initial_replicas.unwrap_or(cfg.min_replicas),
    };
    for _ in 0..initial {
        fleet.add_pod(0.0, 0.0);
    }
    fleet.peak = initial;
    let mut driver = match &policy.kind {
        PolicyKind::Static { .. } => Driver::Static,
        PolicyKind::HpaGpu { target, hpa } => {
            Driver::Hpa { hpa: Hpa::new(hpa.clone()), source: Source::Gpu { latest: None }, value: None, target: *target }
        }
        PolicyKind::KedaQueue { threshold, hpa } => {
            Driver::Hpa { hpa: Hpa::new(hpa.clone()), source: Source::Queue { latest: None }, value: None, target: *threshold }
        }
        PolicyKind::Kpa(k) => Driver::Kpa { cfg: k.clone(), samples: VecDeque::new(), panicking: false, panic_since: 0.0, panic_max: 0 },
        PolicyKind::LlmScaler { spec, hpa, .. } => Driver::Hpa {
            hpa: Hpa::new(hpa.clone()),
            source: Source::LlmScaler {
                spec: spec.clone(),
                decider: Box::new(Decider::new(spec.policy.clone(), spec.latency.window, spec.latency.quantile)),
                latest: None,
            },
            value: None,
            target: 1.0,
        },
    };
    let mut dominant: BTreeMap<String, u64> = BTreeMap::new();
    let mut scraper = Scraper { body: String::with_capacity(64 * 1024), vllm: None };
    let mut arrivals = workload.arrivals().peekable();
    let dt = 1.0;
    let scrape_every = cfg.scrape_interval_s.max(dt);
    let poll_every = cfg.polling_interval_s.max(dt);
    let sync_every = match &driver {
        Driver::Hpa { hpa, .. } => hpa.config().sync_period.as_secs_f64().max(dt),
        _ => f64::INFINITY,
    };
    let (mut next_scrape, mut next_poll, mut next_sync) = (scrape_every, poll_every, sync_every);
    let mut next_kpa = if let Driver::Kpa { cfg: k, .. } = &driver { k.tick_s } else { f64::INFINITY };
    let tail = 900.0;
    let end = duration + tail;
    let mut t = 0.0;
    let mut last_report = 0.0;
    // Shared by routing and ticks; the borrow checker wants the sink outside `fleet`.
    let acc_cell = std::cell::RefCell::new(&mut acc);
    let mut sink = |d: Done| acc_cell.borrow_mut().done(d);
    while t < end {
        let t_next = t + dt;
        while let Some(r) = arrivals.next_if(|r| r.arrival_s < t_next) {
            {
                let mut a = acc_cell.borrow_mut();
                a.requests += 1;
                let b = a.bucket(r.arrival_s);
                a.s_arrivals[b] += 1;
            }
            fleet.route(r, &mut sink);
        }
        fleet.tick(t_next, dt, duration, &mut sink);
        t = t_next;
        {
            let mut a = acc_cell.borrow_mut();
            if t <= duration + 1e-9 {
                let b = a.bucket(t - dt / 2.0);
                a.s_replicas[b] += fleet.pods.len() as f64 * dt;
                a.s_ready[b] += f64::from(fleet.ready()) * dt;
            }
        }
        let count_actions = t <= duration;
        // Scrapes: llm-scaler's collector tick / Prometheus' scrape.
        if t >= next_scrape - 1e-9 {
            next_scrape += scrape_every;
            if let Driver::Hpa { source, .. } = &mut driver {
                scrape(&mut fleet, source, &mut scraper, t, &mut dominant);
            }
        }
        // KEDA refreshes what the HPA will read.
        if t >= next_poll - 1e-9 {
            next_poll += poll_every;
            if let Driver::Hpa { source, value, .. } = &mut driver {
                *value = match source {
                    Source::LlmScaler { latest, .. } | Source::Gpu { latest } | Source::Queue { latest } => *latest,
                };
            }
        }
        if t >= next_sync - 1e-9 {
            next_sync += sync_every;
            if let Driver::Hpa { hpa, value: Some(v), target, .. } = &mut driver {
                let cur = fleet.current();
                let desired = hpa.sync(Duration::from_secs_f64(t), cur, *v, *target);
                if count_actions || desired > cur {
                    fleet.scale_to(desired, t);
                }
            }
        }
        if t >= next_kpa - 1e-9
            && let Driver::Kpa { cfg: k, samples, panicking, panic_since, panic_max } = &mut driver
        {
            next_kpa += k.tick_s;
            let concurrency: f64 =
                fleet.routable.iter().map(|&i| fleet.pods[i].replica.outstanding() as f64).sum::<f64>() + fleet.gateway.len() as f64;
            let desired = kpa_decide(k, samples, panicking, panic_since, panic_max, t, concurrency, fleet.ready(), cfg);
            fleet.scale_to(desired, t);
        }
        if t - last_report >= 3600.0 {
            last_report = t;
            progress(index, t.min(duration));
        }
        if t >= duration && arrivals.peek().is_none() && fleet.pods.iter().all(|p| p.replica.outstanding() == 0) && fleet.gateway.is_empty()
        {
            break;
        }
    }
    // Whatever is still held at the end of the tail is dropped.
    for p in &mut fleet.pods {
        p.replica.abort_all(&mut sink);
    }
    while let Some(r) = fleet.gateway.pop_front() {
        sink(Done { arrival_s: r.arrival_s, ttft_s: None, tpot_s: None, e2e_s: t - r.arrival_s, output: r.output, completed: false });
    }
    progress(index, duration);
    let preemptions = fleet.preemptions_gone + fleet.pods.iter().map(|p| p.replica.preemptions).sum::<u64>();
    let gpu_seconds = fleet.gpu_seconds;
    let busy = fleet.busy_seconds;
    let actions = fleet.actions;
    let peak = fleet.peak;
    let acc = acc_cell.into_inner();
    let n = acc.s_n.len();
    let step_len = |i: usize| if i + 1 == n { (duration - step * i as f64).max(1e-9) } else { step };
    let series = Series {
        step_s: step,
        replicas: (0..n).map(|i| acc.s_replicas[i] / step_len(i)).collect(),
        ready: (0..n).map(|i| acc.s_ready[i] / step_len(i)).collect(),
        arrivals_rps: (0..n).map(|i| acc.s_arrivals[i] as f64 / step_len(i)).collect(),
        ttft_p99_s: acc.s_ttft.iter().map(|h| h.quantile(0.99)).collect(),
        slo: (0..n).map(|i| (acc.s_n[i] > 0).then(|| acc.s_ok[i] as f64 / acc.s_n[i] as f64)).collect(),
    };
    let total_dom: u64 = dominant.values().sum();
    PolicyResult {
        name: policy.name.clone(),
        description: policy.describe(),
        gpu_hours: gpu_seconds / 3600.0,
        cost_usd: gpu_seconds / 3600.0 * cfg.price_per_gpu_hour,
        gpu_utilization: if gpu_seconds > 0.0 { busy / gpu_seconds } else { 0.0 },
        work_utilization: (cfg.replica_capacity_rps > 0.0 && gpu_seconds > 0.0)
            .then(|| acc.requests as f64 / (gpu_seconds / f64::from(cfg.profile.tp) * cfg.replica_capacity_rps)),
        requests: acc.requests,
        completed: acc.completed,
        dropped: acc.dropped,
        slo_attainment: if acc.requests > 0 { acc.slo_ok as f64 / acc.requests as f64 } else { 1.0 },
        ttft_misses: acc.ttft_miss,
        tpot_misses: acc.tpot_miss,
        ttft: Percentiles::of(&acc.ttft),
        tpot: Percentiles::of(&acc.tpot),
        e2e: Percentiles::of(&acc.e2e),
        scaling_actions: actions,
        mean_replicas: if duration > 0.0 { gpu_seconds / f64::from(cfg.profile.tp) / duration } else { 0.0 },
        peak_replicas: peak,
        preemptions,
        savings_vs_static: None,
        dominant_signals: dominant.into_iter().map(|(k, v)| (k, v as f64 / total_dom.max(1) as f64)).collect(),
        wall_s: started.elapsed().as_secs_f64(),
        series,
    }
}

fn scrape(fleet: &mut Fleet<'_>, source: &mut Source, scraper: &mut Scraper, t: f64, dominant: &mut BTreeMap<String, u64>) {
    // The Prometheus-based baselines read the same rendered text through the same parsers.
    match source {
        Source::Gpu { latest } => {
            let mut total = None;
            for &i in &fleet.routable {
                if let Some(g) = scraper.gpu(&mut fleet.pods[i], GpuField::GpuUtil) {
                    *total.get_or_insert(0.0) += g;
                }
            }
            *latest = total;
            return;
        }
        Source::Queue { latest } => {
            let mut total = None;
            for &i in &fleet.routable {
                if let Ok(s) = scraper.vllm(&mut fleet.pods[i], None, LatencyHistogram::Ttft.families()) {
                    *total.get_or_insert(0.0) += s.waiting;
                }
            }
            *latest = total;
            return;
        }
        Source::LlmScaler { .. } => {}
    }
    let Source::LlmScaler { spec, decider, latest } = source else { return };
    let families = spec.latency.histogram.families();
    let gpu_field = match &spec.gpu {
        GpuSource::None => None,
        GpuSource::StaticDcgm { field, .. } | GpuSource::KubeDcgm { field, .. } => Some(*field),
    };
    // Scrape every routable pod (rendering needs the pod mutably), then hand the tick to the
    // decider with the pods' names, as the collector does.
    let scraped: Vec<(usize, Result<_, String>, Option<f64>)> = fleet
        .routable
        .iter()
        .map(|&i| {
            let pod = &mut fleet.pods[i];
            let sample = scraper.vllm(pod, spec.model_name.clone(), families);
            let gpu = gpu_field.and_then(|field| scraper.gpu(pod, field));
            (i, sample, gpu)
        })
        .collect();
    let pods = &fleet.pods;
    let tick = Tick {
        now: Duration::from_secs_f64(t),
        starting: fleet.starting(),
        gpus: scraped.iter().filter_map(|(i, _, g)| g.map(|g| (pods[*i].name.as_str(), g))).collect(),
        pods: scraped.into_iter().map(|(i, sample, _)| (pods[i].name.as_str(), sample)).collect(),
    };
    // Like the server: a tick without a decision leaves KEDA reading the last one.
    if let Ok(d) = decider.tick(tick) {
        if let Some(s) = d.dominant {
            *dominant.entry(s.as_str().to_string()).or_default() += 1;
        }
        *latest = Some(f64::from(d.desired_replicas));
    }
}

#[allow(clippy::too_many_arguments)]
fn kpa_decide(
    k: &KpaConfig,
    samples: &mut VecDeque<(f64, f64)>,
    panicking: &mut bool,
    panic_since: &mut f64,
    panic_max: &mut u32,
    t: f64,
    concurrency: f64,
    ready: u32,
    cfg: &SimConfig,
) -> u32 {
    samples.push_back((t, concurrency));
    while samples.front().is_some_and(|(s, _)| t - s >= k.stable_window_s) {
        samples.pop_front();
    }
    let avg = |w: f64| {
        let xs: Vec<f64> = samples.iter().filter(|(s, _)| t - s < w).map(|x| x.1).collect();
        if xs.is_empty() { 0.0 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
    };
    let per_pod = (k.target_concurrency * k.target_utilization).max(1e-9);
    let stable = (avg(k.stable_window_s) / per_pod).ceil() as u32;
    let panic = (avg(k.panic_window_s) / per_pod).ceil() as u32;
    let ready_f = f64::from(ready.max(1));
    if f64::from(panic) / ready_f >= k.panic_threshold {
        if !*panicking {
            *panicking = true;
            *panic_max = 0;
        }
        *panic_since = t;
    } else if *panicking && t - *panic_since >= k.stable_window_s {
        *panicking = false;
    }
    let mut desired = if *panicking {
        *panic_max = (*panic_max).max(panic).max(ready);
        *panic_max
    } else {
        stable
    };
    let floor = (ready_f / k.max_scale_down_rate).floor() as u32;
    desired = desired.max(floor);
    desired.clamp(cfg.min_replicas, cfg.max_replicas)
}

/// Requests/s one replica serves with at least `target` of them within the SLO: a bisection
/// over short single-replica runs (Poisson arrivals, the workload's lengths).
pub fn replica_capacity(cfg: &SimConfig, workload: &Workload, target: f64) -> f64 {
    let lengths: Vec<(u32, u32)> = workload.arrivals().take(20_000).map(|r| (r.input, r.output)).collect();
    if lengths.is_empty() {
        return 1.0;
    }
    let attain = |rate: f64| -> f64 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
        let mut r = Replica::new(&cfg.profile, 0.0);
        let secs = 1800.0;
        let warm = 300.0;
        let mut t = 0.0;
        let mut ok = 0u64;
        let mut n = 0u64;
        let mut i = 0usize;
        let slo = cfg.slo;
        let mut sink = |d: Done| {
            if d.arrival_s >= warm {
                n += 1;
                if d.completed && d.ttft_s.is_some_and(|x| x <= slo.ttft_s) && d.tpot_s.is_none_or(|x| x <= slo.tpot_s) {
                    ok += 1;
                }
            }
        };
        while t < secs {
            t += -(1.0 - rng.random::<f64>()).ln() / rate;
            let (input, output) = lengths[i % lengths.len()];
            i += 1;
            r.advance_to(t, &mut sink);
            r.submit(&Request { arrival_s: t, input, output }, t);
        }
        r.advance_to(secs + 600.0, &mut sink);
        r.abort_all(&mut sink);
        if n == 0 { 1.0 } else { ok as f64 / n as f64 }
    };
    let (mut lo, mut hi) = (0.05, 1.0);
    while attain(hi) >= target && hi < 1e4 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..12 {
        let mid = (lo + hi) / 2.0;
        if attain(mid) >= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Runs every policy on the same arrivals, `threads` at a time.
pub fn run(cfg: &SimConfig, workload: &Workload, policies: &[Policy], threads: usize, progress: Progress<'_>) -> SimReport {
    let started = Instant::now();
    let results: Mutex<Vec<Option<PolicyResult>>> = Mutex::new(vec![None; policies.len()]);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(policies.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(p) = policies.get(i) else { break };
                    let r = run_policy(cfg, workload, p, i, progress);
                    if let Ok(mut v) = results.lock() {
                        v[i] = Some(r);
                    }
                }
            });
        }
    });
    let mut results: Vec<PolicyResult> = results.into_inner().unwrap_or_default().into_iter().flatten().collect();
    let static_gpuh = policies.iter().zip(&results).find(|(p, _)| matches!(p.kind, PolicyKind::Static { .. })).map(|(_, r)| r.gpu_hours);
    if let Some(s) = static_gpuh.filter(|s| *s > 0.0) {
        for r in &mut results {
            r.savings_vs_static = Some(1.0 - r.gpu_hours / s);
        }
    }
    let requests = results.first().map_or(0, |r| r.requests);
    SimReport {
        workload: workload.to_string(),
        duration_s: workload.duration_s(),
        requests,
        replica: format!("{} on {} x {} (vLLM, TP{})", cfg.profile.model, cfg.profile.tp, cfg.profile.gpu, cfg.profile.tp),
        gpus_per_replica: cfg.profile.tp,
        price_per_gpu_hour: cfg.price_per_gpu_hour,
        slo: cfg.slo,
        replica_capacity_rps: cfg.replica_capacity_rps,
        cold_start_s: cfg.cold_start_s,
        policies: results,
        wall_s: started.elapsed().as_secs_f64(),
    }
}

/// The signals in display order with their names (for reports).
pub fn signal_names() -> impl Iterator<Item = &'static str> {
    Signal::ALL.iter().map(|s| s.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_time_counts_starting_and_draining_pods_once() {
        let cfg = SimConfig { cold_start_s: 100.0, ..SimConfig::default() };
        let mut f = Fleet::new(&cfg, 1);
        f.add_pod(0.0, 0.0);
        let mut sink = |_d: Done| {};
        f.scale_to(3, 0.0);
        assert_eq!((f.current(), f.ready(), f.starting()), (3, 1, 2));
        for t in 1..=10 {
            f.tick(f64::from(t), 1.0, 1e9, &mut sink);
        }
        // Back to one: the two starting pods go at once, after 10 s of GPU time each.
        f.scale_to(1, 10.0);
        assert_eq!(f.pods.len(), 1);
        for t in 11..=20 {
            f.tick(f64::from(t), 1.0, 1e9, &mut sink);
        }
        let tp = f64::from(cfg.profile.tp);
        assert!((f.gpu_seconds - (3.0 * 10.0 + 10.0) * tp).abs() < 1e-9, "{}", f.gpu_seconds);
        assert_eq!(f.actions, 2);
    }
}
