//! `llm-scaler demo`: the real scaler against the modelled fleet, on one machine, no cluster.
//!
//! A bundled trace (Azure's 2023 coding-assistant trace by default) is replayed, fast-forwarded,
//! against the simulator's modelled fleet ([`crate::sim::fleet`]: the same routing, cold starts
//! and drains); each replica serves its rendered `/metrics` text over loopback HTTP (one
//! [`FakePod`] per pod, sharing a port on its own IP). The REAL server
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
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    decide::policy::{PolicyConfig, Signal},
    discovery::{PodInfo, PodLister},
    proto::{GetMetricsRequest, ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    serve::config::Settings,
    serve::grpc::METRIC_NAME,
    serve::server::{DiscoveryMode, Server},
    sim::{
        accounting::SloTally,
        capacity::replica_capacity,
        config::SimConfig,
        engine::Done,
        fleet::{Fleet, PodState},
        hpa::Hpa,
        lineup::{Lineup, hpa_config},
        pods::{Behavior, FakePod, next_loopback_ip},
        pool,
        stats::Percentiles,
        workload::{Source, Workload, parse_trace, read_trace},
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

/// The modelled fleet, each pod with a loopback server serving what it renders.
struct Served<'c> {
    fleet: Fleet<'c>,
    servers: HashMap<String, FakePod>,
    /// The `metricsPort` every pod's server shares (0 until the first one binds).
    port: u16,
}

impl Served<'_> {
    /// Starts a server for each new pod, stops those of pods gone, has every server answer
    /// what its pod renders now, and returns what discovery should list.
    async fn publish(&mut self) -> Result<Vec<PodInfo>, DemoError> {
        let Served { fleet, servers, port } = self;
        servers.retain(|name, _| fleet.pods().iter().any(|p| p.name == *name));
        let new: Vec<String> = fleet.pods().iter().filter(|p| !servers.contains_key(&p.name)).map(|p| p.name.clone()).collect();
        for name in new {
            let addr = SocketAddr::new(next_loopback_ip(), *port);
            let server = FakePod::fixed(addr, String::new()).await.map_err(|e| DemoError::Bind(addr, e))?;
            *port = server.addr.port();
            servers.insert(name, server);
        }
        let mut infos = Vec::with_capacity(servers.len());
        for p in fleet.pods_mut() {
            let Some(server) = servers.get(&p.name) else { continue };
            p.replica.sync_gauges();
            let mut body = String::with_capacity(16 * 1024);
            p.replica.pod.render(&mut body);
            server.behave(Behavior::Fixed(body.into()));
            infos.push(PodInfo {
                name: p.name.clone(),
                namespace: String::new(),
                ip: Some(server.addr.ip()),
                node: None,
                ready: p.state() == PodState::Ready,
            });
        }
        Ok(infos)
    }
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
    cfg.replica_capacity_rps = replica_capacity(&cfg, &workload, 0.99);

    let mut served = Served { fleet: Fleet::with_ready(&cfg, cfg.seed, cfg.min_replicas), servers: HashMap::new(), port: 0 };
    let snapshot = Arc::new(Snapshot(Mutex::new(served.publish().await?)));
    let port = served.port;

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
    let mut hpa = Hpa::new(hpa_config(&cfg, 0.0));

    println!("llm-scaler demo: the real scaler (gRPC {} / HTTP {}) against a modelled vLLM fleet", server.grpc_addr, server.http_addr);
    println!("  trace     {name}: {} requests over {:.0} min, replayed {speed:.0}x faster", trace.len(), virtual_len / 60.0);
    println!(
        "  replica   {} on {} x {} (vLLM TP{}), ~{:.1} req/s within the SLO",
        cfg.profile.model, cfg.profile.tp, cfg.profile.gpu, cfg.profile.tp, cfg.replica_capacity_rps
    );
    println!(
        "  cluster   pods on their own loopback IPs, port {port}, Ready {:.0} s after a scale-up; KEDA/HPA every 15 s (tolerance 0, scale-down window 300 s); bounds {}..{}",
        cfg.cold_start_s, cfg.min_replicas, cfg.max_replicas
    );
    println!("  SLO       TTFT <= {} s and TPOT <= {} ms  (times below are virtual)", cfg.slo.ttft_s, cfg.slo.tpot_s * 1e3);
    println!();
    println!("{:>6} {:>7} {:>7} {:>10} {:>7}  decision (per-signal demand in replicas)", "t", "req/s", "demand", "pods", "desired");

    let mut tally = SloTally::new(cfg.slo);
    let mut sink = |d: Done| {
        tally.done(&d);
    };
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
        // Route the arrivals of this step, advance the fleet, render every pod for the scaler.
        while let Some(r) = trace.get(next_arrival).filter(|r| r.arrival_s <= vnow) {
            next_arrival += 1;
            arrived_since_print += 1;
            served.fleet.route(*r, &mut sink);
        }
        served.fleet.tick(vnow, vstep, virtual_len, &mut sink);
        let infos = served.publish().await?;
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
                let cur = served.fleet.current();
                let desired = hpa.sync(Duration::from_secs_f64(vnow), cur, value, target);
                if vnow <= virtual_len || desired > cur {
                    served.fleet.scale_to(desired, vnow);
                }
            }
        }
        if vnow >= next_print && vnow <= virtual_len + vstep {
            next_print += print_every;
            let rps = arrived_since_print as f64 / print_every;
            arrived_since_print = 0;
            let ready = served.fleet.ready();
            let pods = format!("{ready}+{}", served.fleet.current().saturating_sub(ready));
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
    served.fleet.abort_all(vnow, &mut sink);
    let fleet = served.fleet;

    // The same trace replayed purely in virtual time, for comparison.
    let lineup = Lineup { static_replicas: Some(cfg.max_replicas), ..Lineup::default() };
    let picked: Vec<_> = ["static", "llm-scaler"].iter().filter_map(|name| lineup.policy(name, &cfg).ok()).collect();
    let offline = pool::run(&cfg, &workload, &picked, 2, &|_, _| {});
    let gpuh = fleet.gpu_seconds() / 3600.0;
    let p = Percentiles::of(&tally.ttft);
    println!();
    println!("report ({:.0} virtual minutes in {:.0} s):", virtual_len / 60.0, start.elapsed().as_secs_f64());
    println!("{:<28} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}", "", "GPU-hours", "cost $", "SLO", "TTFT50", "TTFT95", "TTFT99", "actions");
    let slo = tally.attainment(tally.finished());
    println!(
        "{:<28} {:>9.1} {:>8.0} {:>7.2}% {:>7.0}ms {:>7.0}ms {:>7.0}ms {:>8}",
        "live: real server + HPA",
        gpuh,
        gpuh * cfg.price_per_gpu_hour,
        slo * 100.0,
        p.p50 * 1e3,
        p.p95 * 1e3,
        p.p99 * 1e3,
        fleet.actions()
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
        println!("{} requests dropped (a drain timed out, or still held when the run ended)", tally.dropped);
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
