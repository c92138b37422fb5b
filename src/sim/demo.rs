//! `llm-scaler demo`: the real scaler against the modelled fleet, on one machine, no cluster.
//!
//! A bundled trace (Azure's 2023 coding-assistant trace by default) is replayed, fast-forwarded,
//! against modelled vLLM replicas ([`crate::sim::engine`]); each replica serves its rendered
//! `/metrics` text over loopback HTTP (one server per pod on 127.0.x.y). The REAL server
//! ([`Server`] with [`DiscoveryMode::Custom`]) discovers and scrapes them over HTTP as it would
//! in a cluster; a poller calls the gRPC RPCs as KEDA does, applies the HPA arithmetic
//! ([`crate::sim::hpa`]) in virtual time and resizes the fleet (new replicas become Ready after a cold
//! start, removed ones drain). A live view prints the fleet, the demand and each signal's
//! contribution; a report at the end compares the run with a static fleet and with the same
//! policy replayed purely in virtual time by `simulate`.
//!
//! The server measures rates and windows in wall-clock time, so under a speed-up of S the demo
//! gives it wall-clock settings scaled by 1/S (scrape interval, latency window) and a tokens/s
//! target scaled by S; everything the server decides on is otherwise unchanged.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, extract::State, routing::get};
use tokio::{net::TcpListener, task::JoinHandle, time::Instant};

use crate::{
    decide::policy::{PolicyConfig, Signal},
    discovery::{PodInfo, PodLister},
    proto::{GetMetricsRequest, ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    serve::config::Settings,
    serve::grpc::METRIC_NAME,
    serve::server::{DiscoveryMode, Server},
    sim::hpa::{Hpa, HpaConfig},
    sim::{
        self, SimConfig,
        engine::{Done, ModelProfile, Replica},
        stats::{LogHist, Percentiles},
        workload::{Request, Source, Workload, parse_trace, read_trace},
    },
};

/// The trace replayed by default (CC-BY-4.0, see `data/README.md`).
const BUNDLED_TRACE: &[u8] = include_bytes!("../../data/traces/azure_2023/AzureLLMInferenceTrace_code.csv");

/// Demo knobs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Wall-clock length: the trace is fast-forwarded to fit.
    pub duration: Duration,
    /// Another trace to replay instead of the bundled one.
    pub trace: Option<PathBuf>,
    /// Replica bounds.
    pub min_replicas: u32,
    /// Upper replica bound.
    pub max_replicas: u32,
    /// Virtual cold start.
    pub cold_start: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: Duration::from_secs(60),
            trace: None,
            min_replicas: 1,
            max_replicas: 8,
            cold_start: Duration::from_secs(120),
        }
    }
}

/// Why the demo stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The scaler did not start.
    #[error("server: {0}")]
    Server(#[from] crate::serve::server::ServerError),
    /// A loopback listener could not bind.
    #[error("binding a fake pod on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The gRPC client failed.
    #[error("gRPC client: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The trace could not be read.
    #[error("trace: {0}")]
    Trace(#[from] crate::sim::workload::WorkloadError),
}

/// A modelled replica with its HTTP server.
struct DemoPod {
    name: String,
    ip: IpAddr,
    ready_at: f64,
    draining_since: Option<f64>,
    replica: Replica,
    body: Arc<Mutex<String>>,
    server: JoinHandle<()>,
}

impl Drop for DemoPod {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What the server's discovery sees.
#[derive(Default)]
struct Snapshot(Mutex<Vec<PodInfo>>);

struct FleetLister(Arc<Snapshot>);

impl PodLister for FleetLister {
    fn pods(&self, namespace: &str, _name: &str) -> Vec<PodInfo> {
        let v = self.0.0.lock().map(|v| v.clone()).unwrap_or_default();
        v.into_iter()
            .map(|mut p| {
                p.namespace = namespace.to_string();
                p
            })
            .collect()
    }
}

struct DemoFleet {
    pods: Vec<DemoPod>,
    port: u16,
    next: u32,
    profile: ModelProfile,
    cold_start: f64,
    gpu_seconds: f64,
    actions: u64,
}

impl DemoFleet {
    fn add(&mut self, now: f64, ready_at: f64) -> Result<(), DemoError> {
        let k = self.next;
        self.next += 1;
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, (k / 200) as u8 + 1, (k % 200) as u8 + 10));
        let addr = SocketAddr::new(ip, self.port);
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .and_then(TcpListener::from_std)
            .map_err(|e| DemoError::Bind(addr, e))?;
        let body = Arc::new(Mutex::new(String::new()));
        let app = Router::new()
            .route("/metrics", get(|State(b): State<Arc<Mutex<String>>>| async move { b.lock().map(|s| s.clone()).unwrap_or_default() }))
            .with_state(body.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let replica = Replica::new(&self.profile, now);
        self.pods.push(DemoPod { name: format!("vllm-demo-{k}"), ip, ready_at, draining_since: None, replica, body, server });
        Ok(())
    }

    fn current(&self) -> u32 {
        self.pods.iter().filter(|p| p.draining_since.is_none()).count() as u32
    }

    fn ready(&self, now: f64) -> impl Iterator<Item = usize> + '_ {
        self.pods.iter().enumerate().filter(move |(_, p)| p.draining_since.is_none() && p.ready_at <= now).map(|(i, _)| i)
    }

    fn scale_to(&mut self, n: u32, now: f64) -> Result<(), DemoError> {
        let cur = self.current();
        if n == cur {
            return Ok(());
        }
        self.actions += 1;
        for _ in cur..n {
            self.add(now, now + self.cold_start)?;
        }
        for _ in n..cur {
            // Pods still starting go first, then the Ready pod with the least work drains.
            if let Some(i) = self.pods.iter().rposition(|p| p.draining_since.is_none() && p.ready_at > now) {
                // Its GPU time so far was counted step by step.
                self.pods.remove(i);
            } else if let Some(i) = self.ready(now).min_by_key(|&i| self.pods[i].replica.outstanding()) {
                self.pods[i].draining_since = Some(now);
            }
        }
        Ok(())
    }
}

struct Tally {
    ttft: LogHist,
    n: u64,
    ok: u64,
    dropped: u64,
    ttft_slo: f64,
    tpot_slo: f64,
}

impl Tally {
    fn done(&mut self, d: Done) {
        self.n += 1;
        if !d.completed {
            self.dropped += 1;
            return;
        }
        let ttft = d.ttft_s.unwrap_or(f64::INFINITY);
        self.ttft.record(ttft);
        if ttft <= self.ttft_slo && d.tpot_s.is_none_or(|t| t <= self.tpot_slo) {
            self.ok += 1;
        }
    }
}

async fn free_port() -> Result<u16, DemoError> {
    let probe = SocketAddr::from(([127, 0, 1, 10], 0));
    let l = TcpListener::bind(probe).await.map_err(|e| DemoError::Bind(probe, e))?;
    l.local_addr().map(|a| a.port()).map_err(|e| DemoError::Bind(probe, e))
}

/// Runs the demo, printing as it goes.
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let (name, trace) = match &opts.trace {
        Some(p) => (p.display().to_string(), read_trace(p)?),
        None => ("Azure 2023 code trace (bundled)".to_string(), parse_trace(BUNDLED_TRACE, "bundled trace", false)?),
    };
    let trace = Arc::new(trace);
    let virtual_len = trace.last().map_or(1.0, |r| r.arrival_s).max(1.0);
    let speed = (virtual_len / opts.duration.as_secs_f64().max(1.0)).max(1.0);
    let workload = Workload::new(name.clone(), Source::Trace(trace.clone()), 1);
    let mut cfg = SimConfig {
        min_replicas: opts.min_replicas.max(1),
        max_replicas: opts.max_replicas.max(opts.min_replicas.max(1)),
        cold_start_s: opts.cold_start.as_secs_f64(),
        ..SimConfig::default()
    };
    cfg.replica_capacity_rps = sim::replica_capacity(&cfg, &workload, 0.99);

    let port = free_port().await?;
    let snapshot = Arc::new(Snapshot::default());
    let mut fleet = DemoFleet {
        pods: Vec::new(),
        port,
        next: 0,
        profile: cfg.profile.clone(),
        cold_start: cfg.cold_start_s,
        gpu_seconds: 0.0,
        actions: 0,
    };
    for _ in 0..cfg.min_replicas {
        fleet.add(0.0, 0.0)?;
    }

    // The server runs in wall-clock time: its 15 s virtual scrape is 15/S s of wall time.
    let scrape = Duration::from_secs_f64((15.0 / speed).max(0.05));
    let settings = Settings {
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        scrape_interval: scrape,
        scrape_timeout: scrape.mul_f64(0.8).max(Duration::from_millis(40)),
        kube: false,
        ..Settings::default()
    };
    let server = Server::start(settings, DiscoveryMode::Custom(Arc::new(FleetLister(snapshot.clone())))).await?;
    let mut client = ExternalScalerClient::connect(format!("http://{}", server.grpc_addr)).await?;
    let http = reqwest::Client::new();
    let decisions_url = format!("http://{}/api/v1/decisions/demo/vllm-demo", server.http_addr);
    let defaults = PolicyConfig::default();
    let tokens_target = defaults.targets.get(Signal::TokensPerSecond);
    let window_ms = (60_000.0 / speed).max(200.0).round() as u64;
    let meta: HashMap<String, String> = [
        ("metricsPort", port.to_string()),
        // Rates are per wall-clock second: S times the virtual rate.
        ("targetTokensPerSecond", format!("{}", tokens_target * speed)),
        ("latencyWindow", format!("{window_ms}ms")),
        ("minReplicas", cfg.min_replicas.to_string()),
        ("maxReplicas", cfg.max_replicas.to_string()),
        ("scalerAddress", server.grpc_addr.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let so = ScaledObjectRef { name: "vllm-demo".into(), namespace: "demo".into(), scaler_metadata: meta };
    let mut hpa = Hpa::new(HpaConfig {
        tolerance_up: 0.0,
        tolerance_down: 0.0,
        min_replicas: cfg.min_replicas,
        max_replicas: cfg.max_replicas,
        ..HpaConfig::default()
    });

    println!("llm-scaler demo: the real scaler (gRPC {} / HTTP {}) against a modelled vLLM fleet", server.grpc_addr, server.http_addr);
    println!("  trace     {name}: {} requests over {:.0} min, replayed {speed:.0}x faster", trace.len(), virtual_len / 60.0);
    println!(
        "  replica   {} on {} x {} (vLLM TP{}), ~{:.1} req/s within the SLO",
        cfg.profile.model, cfg.profile.tp, cfg.profile.gpu, cfg.profile.tp, cfg.replica_capacity_rps
    );
    println!(
        "  cluster   pods on 127.0.x.y:{port}, Ready {:.0} s after a scale-up; KEDA/HPA every 15 s (tolerance 0, scale-down window 300 s); bounds {}..{}",
        cfg.cold_start_s, cfg.min_replicas, cfg.max_replicas
    );
    println!("  SLO       TTFT <= {} s and TPOT <= {} ms  (times below are virtual)", cfg.slo.ttft_s, cfg.slo.tpot_s * 1e3);
    println!();
    println!("{:>6} {:>7} {:>7} {:>10} {:>7}  decision (per-signal demand in replicas)", "t", "req/s", "demand", "pods", "desired");

    let mut tally = Tally { ttft: LogHist::default(), n: 0, ok: 0, dropped: 0, ttft_slo: cfg.slo.ttft_s, tpot_slo: cfg.slo.tpot_s };
    let start = Instant::now();
    let wall_step = 0.01;
    let vstep = wall_step * speed;
    let mut vnow = 0.0;
    let mut next_arrival = 0usize;
    let mut next_sync = 15.0;
    let print_every = (virtual_len / 24.0).max(15.0);
    let mut next_print = print_every;
    let mut arrived_since_print = 0u64;
    let mut last_value = f64::NAN;
    let end = virtual_len + 60.0;
    while vnow < end {
        vnow += vstep;
        // Route the arrivals of this step: the Ready replica holding the fewest requests.
        while let Some(r) = trace.get(next_arrival).filter(|r| r.arrival_s <= vnow) {
            next_arrival += 1;
            arrived_since_print += 1;
            let ready: Vec<usize> = fleet.ready(r.arrival_s).collect();
            let mut sink = |d: Done| tally.done(d);
            for &i in &ready {
                fleet.pods[i].replica.advance_to(r.arrival_s, &mut sink);
            }
            match ready.iter().copied().min_by_key(|&i| fleet.pods[i].replica.outstanding()) {
                Some(i) => fleet.pods[i].replica.submit(&Request { ..*r }, r.arrival_s),
                None => {
                    tally.done(Done { arrival_s: r.arrival_s, ttft_s: None, tpot_s: None, e2e_s: 0.0, output: r.output, completed: false })
                }
            }
        }
        // Advance, account, drain, render.
        let tp = f64::from(cfg.profile.tp);
        let counted = (vnow.min(virtual_len) - (vnow - vstep).min(virtual_len)).max(0.0);
        let mut sink = |d: Done| tally.done(d);
        for p in &mut fleet.pods {
            p.replica.advance_to(vnow, &mut sink);
        }
        fleet.gpu_seconds += counted * tp * fleet.pods.len() as f64;
        fleet.pods.retain_mut(|p| match p.draining_since {
            Some(since) if p.replica.outstanding() == 0 || vnow - since > cfg.drain_timeout_s => {
                p.replica.abort_all(&mut sink);
                false
            }
            _ => true,
        });
        let mut infos = Vec::with_capacity(fleet.pods.len());
        for p in &mut fleet.pods {
            p.replica.sync_gauges();
            if let Ok(mut b) = p.body.lock() {
                b.clear();
                p.replica.pod.render(&mut b);
            }
            infos.push(PodInfo {
                name: p.name.clone(),
                namespace: String::new(),
                ip: Some(p.ip),
                node: None,
                ready: p.draining_since.is_none() && p.ready_at <= vnow,
            });
        }
        if let Ok(mut s) = snapshot.0.lock() {
            *s = infos;
        }
        // KEDA + HPA, every 15 virtual seconds.
        if vnow >= next_sync {
            next_sync += 15.0;
            let spec = client.get_metric_spec(so.clone()).await;
            let metrics =
                client.get_metrics(GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: METRIC_NAME.into() }).await;
            if let (Ok(spec), Ok(m)) = (spec, metrics) {
                let target = spec.into_inner().metric_specs.first().map_or(1.0, |s| s.target_size_float);
                let value: f64 = m.into_inner().metric_values.iter().map(|v| v.metric_value_float).sum();
                last_value = value;
                let cur = fleet.current();
                let desired = hpa.sync(Duration::from_secs_f64(vnow), cur, value, target);
                if vnow <= virtual_len || desired > cur {
                    fleet.scale_to(desired, vnow)?;
                }
            }
        }
        if vnow >= next_print && vnow <= virtual_len + vstep {
            next_print += print_every;
            let rps = arrived_since_print as f64 / print_every;
            arrived_since_print = 0;
            let ready = fleet.ready(vnow).count();
            let pods = format!("{ready}+{}", fleet.current() as usize - ready);
            let why = explain(&http, &decisions_url).await;
            let m = (vnow / 60.0).floor();
            let desired = if last_value.is_nan() { "-".to_string() } else { format!("{last_value:.0}") };
            println!(
                "{:>3.0}:{:02.0} {rps:>7.2} {:>7.1} {pods:>10} {desired:>7}  {why}",
                m,
                vnow - m * 60.0,
                rps / cfg.replica_capacity_rps.max(1e-9)
            );
        }
        // Pace to the wall clock.
        let due = start + Duration::from_secs_f64(vnow / speed);
        tokio::time::sleep_until(due).await;
    }
    server.shutdown().await?;
    let mut sink = |d: Done| tally.done(d);
    for p in &mut fleet.pods {
        p.replica.abort_all(&mut sink);
    }

    // The same trace replayed purely in virtual time, for comparison.
    let policies = sim::standard_policies(&cfg, &[], Some(cfg.max_replicas)).unwrap_or_default();
    let picked: Vec<_> = policies.into_iter().filter(|p| p.name == "static" || p.name == "llm-scaler").collect();
    let offline = sim::run(&cfg, &workload, &picked, 2, &|_, _| {});
    let gpuh = fleet.gpu_seconds / 3600.0;
    let p = Percentiles::of(&tally.ttft);
    println!();
    println!("report ({:.0} virtual minutes in {:.0} s):", virtual_len / 60.0, start.elapsed().as_secs_f64());
    println!("{:<28} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}", "", "GPU-hours", "cost $", "SLO", "TTFT50", "TTFT95", "TTFT99", "actions");
    let slo = if tally.n > 0 { tally.ok as f64 / tally.n as f64 } else { 1.0 };
    println!(
        "{:<28} {:>9.1} {:>8.0} {:>7.2}% {:>7.0}ms {:>7.0}ms {:>7.0}ms {:>8}",
        "live: real server + HPA",
        gpuh,
        gpuh * cfg.price_per_gpu_hour,
        slo * 100.0,
        p.p50 * 1e3,
        p.p95 * 1e3,
        p.p99 * 1e3,
        fleet.actions
    );
    for r in &offline.policies {
        println!(
            "{:<28} {:>9.1} {:>8.0} {:>7.2}% {:>7.0}ms {:>7.0}ms {:>7.0}ms {:>8}",
            format!("simulate: {}", r.name),
            r.gpu_hours,
            r.cost_usd,
            r.slo_attainment * 100.0,
            r.ttft.p50 * 1e3,
            r.ttft.p95 * 1e3,
            r.ttft.p99 * 1e3,
            r.scaling_actions
        );
    }
    if let Some(st) = offline.policies.iter().find(|r| r.name == "static").filter(|r| r.gpu_hours > 0.0) {
        println!("live run vs a static fleet of {}: {:.0}% fewer GPU-hours", cfg.max_replicas, 100.0 * (1.0 - gpuh / st.gpu_hours));
    }
    if tally.dropped > 0 {
        println!("{} requests dropped (no Ready replica or a drain timed out)", tally.dropped);
    }
    println!("next: `llm-scaler simulate --help` compares every policy on your own traces");
    Ok(())
}

/// The latest decision's reason and per-signal demand, from the HTTP API.
async fn explain(http: &reqwest::Client, url: &str) -> String {
    let Ok(resp) = http.get(url).send().await else { return "(decisions API unreachable)".into() };
    let Ok(text) = resp.text().await else { return String::new() };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return String::new() };
    let latest = &v["scaledobjects"][0]["latest"];
    let mut parts = Vec::new();
    if let Some(sigs) = latest["signals"].as_array() {
        for s in sigs {
            if let (Some(name), Some(d)) = (s["signal"].as_str(), s["demand"].as_f64()) {
                parts.push(format!("{name} {d:.1}"));
            }
        }
    }
    let reason = latest["reason"].as_str().unwrap_or("-");
    let short = reason.split(':').next().unwrap_or(reason);
    format!("{short} [{}]", parts.join(", "))
}
