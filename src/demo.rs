//! `llm-scaler demo`: the whole loop on one machine, no cluster.
//!
//! A fake vLLM fleet serves real exposition text on loopback (one HTTP server per pod on
//! 127.0.0.x), its load rising and falling along a compressed curve; the real server scrapes it
//! through the in-process discovery hook; a poller calls the RPCs as KEDA does, applies the HPA
//! arithmetic ([`crate::hpa`]) and resizes the fleet (new pods become Ready after a cold start),
//! printing each decision with its per-signal contributions from `/api/v1/decisions`.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, extract::State, routing::get};
use tokio::{net::TcpListener, task::JoinHandle, time::Instant};

use crate::{
    config::Settings,
    discovery::{PodInfo, PodLister},
    grpc::METRIC_NAME,
    hpa::{Hpa, HpaConfig},
    proto::{GetMetricsRequest, ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    render::vllm::VllmPod,
    server::{DiscoveryMode, Server},
};

/// Demo knobs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Wall-clock length; the load curve is compressed into it.
    pub duration: Duration,
    /// Peak arrival rate, requests/s.
    pub peak_rps: f64,
}

/// Why the demo stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The scaler did not start.
    #[error("server: {0}")]
    Server(#[from] crate::server::ServerError),
    /// A loopback listener could not bind.
    #[error("binding a fake pod on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The gRPC client failed.
    #[error("gRPC client: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// A fake vLLM replica: its engine state, its rendered body and its HTTP server.
struct FakePod {
    name: String,
    ip: IpAddr,
    ready_at: Instant,
    vllm: VllmPod,
    /// Fractional requests completed, carried to the next step.
    carry: f64,
    body: Arc<Mutex<String>>,
    server: JoinHandle<()>,
}

impl Drop for FakePod {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The fluid model of the fleet: arrivals join one queue spread evenly over Ready pods.
struct Fleet {
    pods: Vec<FakePod>,
    port: u16,
    next_index: u32,
    queue: f64,
    carry_requests: f64,
    /// Requests each pod completes per second at full batch.
    per_pod_rps: f64,
    max_num_seqs: f64,
    service_s: f64,
    cold_start: Duration,
    pod_seconds: f64,
    ttft_ok: f64,
    ttft_total: f64,
}

const PROMPT_TOKENS: f64 = 500.0;
const OUTPUT_TOKENS: f64 = 150.0;
const TTFT_SLO_S: f64 = 2.0;

impl Fleet {
    fn ready(&self, now: Instant) -> usize {
        self.pods.iter().filter(|p| p.ready_at <= now).count()
    }

    fn add_pod(&mut self, ready_at: Instant) -> Result<(), DemoError> {
        let k = self.next_index;
        self.next_index += 1;
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, (k / 200) as u8 + 1, (k % 200) as u8 + 10));
        let addr = SocketAddr::new(ip, self.port);
        // Bound synchronously so the fleet can be resized under a plain mutex.
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
        let mut vllm = VllmPod::new("meta-llama/Llama-3.1-8B-Instruct", 1);
        render(&mut vllm, &body);
        self.pods.push(FakePod { name: format!("vllm-demo-{k}"), ip, ready_at, vllm, carry: 0.0, body, server });
        Ok(())
    }

    /// Applies the HPA's decision: new pods start cold; removal drains the youngest first.
    fn scale_to(&mut self, n: usize, now: Instant) -> Result<(), DemoError> {
        while self.pods.len() < n {
            self.add_pod(now + self.cold_start)?;
        }
        if self.pods.len() > n {
            self.pods.sort_by_key(|p| std::cmp::Reverse(p.ready_at));
            self.pods.drain(..self.pods.len() - n);
        }
        Ok(())
    }

    /// Advances the model by `dt` at arrival rate `rps` and re-renders every pod.
    fn step(&mut self, now: Instant, rps: f64, dt: f64) {
        let ready = self.ready(now);
        self.pod_seconds += self.pods.len() as f64 * dt;
        let capacity = ready as f64 * self.per_pod_rps;
        let arrived = rps * dt;
        let served = (self.queue + arrived).min(capacity * dt);
        self.queue += arrived - served;
        let ttft = if capacity > 0.0 { 0.15 + self.queue / capacity } else { 60.0 };
        self.carry_requests += served;
        let whole = self.carry_requests.floor();
        self.carry_requests -= whole;
        self.ttft_total += whole;
        if ttft <= TTFT_SLO_S {
            self.ttft_ok += whole;
        }
        let in_service = (served / dt.max(1e-9)) * self.service_s;
        let n = ready.max(1) as f64;
        for p in self.pods.iter_mut().filter(|p| p.ready_at <= now) {
            p.carry += served / n;
            let per_pod_done = p.carry.floor();
            p.carry -= per_pod_done;
            let per_pod_done = per_pod_done as u64;
            let e = &mut p.vllm.engines[0];
            e.waiting = (self.queue / n).round() as u64;
            e.running = (in_service / n).min(self.max_num_seqs).round() as u64;
            e.kv_cache_usage = (e.running as f64 / self.max_num_seqs * 0.85).min(1.0);
            e.prompt_tokens += per_pod_done * PROMPT_TOKENS as u64;
            e.generation_tokens += per_pod_done * OUTPUT_TOKENS as u64;
            e.ttft.observe_n(ttft, per_pod_done);
            render(&mut p.vllm, &p.body);
        }
    }
}

fn render(vllm: &mut VllmPod, body: &Mutex<String>) {
    if let Ok(mut b) = body.lock() {
        b.clear();
        vllm.render(&mut b);
    }
}

/// Lets the server discover the fake fleet the way the watch cache would.
struct FleetLister(Arc<Mutex<Fleet>>);

impl PodLister for FleetLister {
    fn pods(&self, namespace: &str, _name: &str) -> Vec<PodInfo> {
        let f = lock(&self.0);
        let now = Instant::now();
        f.pods
            .iter()
            .map(|p| PodInfo {
                name: p.name.clone(),
                namespace: namespace.to_string(),
                ip: Some(p.ip),
                node: None,
                ready: p.ready_at <= now,
            })
            .collect()
    }
}

fn lock(f: &Mutex<Fleet>) -> std::sync::MutexGuard<'_, Fleet> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

/// The load curve: a quiet start, a rise to `peak`, a fall.
fn load(peak: f64, t: f64, total: f64) -> f64 {
    let base = peak / 10.0;
    let x = (t / total).clamp(0.0, 1.0);
    base + (peak - base) * (std::f64::consts::PI * x).sin().powi(2)
}

async fn free_port() -> Result<u16, DemoError> {
    let probe = SocketAddr::from(([127, 0, 1, 10], 0));
    let l = TcpListener::bind(probe).await.map_err(|e| DemoError::Bind(probe, e))?;
    l.local_addr().map(|a| a.port()).map_err(|e| DemoError::Bind(probe, e))
}

/// Runs the demo, printing as it goes.
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let port = free_port().await?;
    let fleet = Arc::new(Mutex::new(Fleet {
        pods: Vec::new(),
        port,
        next_index: 0,
        queue: 0.0,
        carry_requests: 0.0,
        per_pod_rps: 8.0,
        max_num_seqs: 32.0,
        service_s: 4.0,
        cold_start: Duration::from_secs(6),
        pod_seconds: 0.0,
        ttft_ok: 0.0,
        ttft_total: 0.0,
    }));
    lock(&fleet).scale_to(2, Instant::now() - Duration::from_secs(10))?;

    let settings = Settings {
        grpc_addr: "127.0.0.1:0".parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
        http_addr: "127.0.0.1:0".parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
        scrape_interval: Duration::from_secs(1),
        scrape_timeout: Duration::from_millis(800),
        kube: false,
        ..Settings::default()
    };
    let server = Server::start(settings, DiscoveryMode::Custom(Arc::new(FleetLister(fleet.clone())))).await?;
    let mut client = ExternalScalerClient::connect(format!("http://{}", server.grpc_addr)).await?;
    let http = reqwest::Client::new();
    let decisions_url = format!("http://{}/api/v1/decisions/demo/vllm-demo", server.http_addr);
    let meta: HashMap<String, String> = [
        ("metricsPort", port.to_string()),
        ("targetTokensPerSecond", "3000".to_string()),
        ("targetLatencySeconds", "2".to_string()),
        ("latencyWindow", "10s".to_string()),
        ("minReplicas", "2".to_string()),
        ("maxReplicas", "20".to_string()),
        ("scalerAddress", server.grpc_addr.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let so = ScaledObjectRef { name: "vllm-demo".into(), namespace: "demo".into(), scaler_metadata: meta };
    let mut hpa = Hpa::new(HpaConfig {
        tolerance_up: 0.0,
        tolerance_down: 0.0,
        min_replicas: 2,
        max_replicas: 20,
        scale_down_window: Duration::from_secs(10),
        ..HpaConfig::default()
    });

    println!("llm-scaler demo: fake vLLM fleet on 127.0.x.y:{port}, scaler gRPC {} / HTTP {}", server.grpc_addr, server.http_addr);
    println!(
        "load rises to {:.0} req/s and falls over {:?}; pods take 6 s to become Ready; HPA tolerance 0, scale-down window 10 s",
        opts.peak_rps, opts.duration
    );
    println!("{:>5} {:>7} {:>13} {:>6}  decision", "t", "load", "pods", "keda");

    let start = Instant::now();
    let step = Duration::from_millis(200);
    let poll = Duration::from_secs(2);
    let mut next_poll = start + Duration::from_secs(3);
    let mut actions = 0u32;
    let mut peak_pods = 0usize;
    while start.elapsed() < opts.duration {
        tokio::time::sleep(step).await;
        let now = Instant::now();
        let t = now.duration_since(start).as_secs_f64();
        let rps = load(opts.peak_rps, t, opts.duration.as_secs_f64());
        lock(&fleet).step(now, rps, step.as_secs_f64());
        if now < next_poll {
            continue;
        }
        next_poll += poll;
        // KEDA's pattern: GetMetricSpec, then GetMetrics, then IsActive.
        let spec = client.get_metric_spec(so.clone()).await;
        let metrics = client.get_metrics(GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: METRIC_NAME.into() }).await;
        let active = client.is_active(so.clone()).await.map(|r| r.into_inner().result).unwrap_or(false);
        let (ready, total) = {
            let f = lock(&fleet);
            (f.ready(now), f.pods.len())
        };
        let pods = format!("{ready}+{} start", total - ready);
        match (spec, metrics) {
            (Ok(spec), Ok(m)) => {
                let target = spec.into_inner().metric_specs.first().map_or(1.0, |s| s.target_size_float);
                let value: f64 = m.into_inner().metric_values.iter().map(|v| v.metric_value_float).sum();
                let desired = hpa.sync(now.duration_since(start), total as u32, value, target);
                let why = explain(&http, &decisions_url).await;
                println!("{t:>4.0}s {rps:>5.1}/s {pods:>13} {value:>6.0}  {why}{}", if active { "" } else { " [inactive]" });
                if desired as usize != total {
                    actions += 1;
                    println!("{:>5} HPA: {total} -> {desired} replicas", "");
                    lock(&fleet).scale_to(desired as usize, now)?;
                }
                peak_pods = peak_pods.max(desired as usize);
            }
            (Err(e), _) | (_, Err(e)) => {
                println!("{t:>4.0}s {rps:>5.1}/s {pods:>13} {:>6}  {} (KEDA marks the trigger failed; the HPA holds)", "-", e.message())
            }
        }
    }
    server.shutdown().await?;
    let f = lock(&fleet);
    let secs = opts.duration.as_secs_f64();
    println!();
    println!("summary over {secs:.0} s:");
    println!(
        "  pod-seconds used      {:>8.0}   (a static fleet of 20 would use {:.0}: {:.0}% saved)",
        f.pod_seconds,
        20.0 * secs,
        100.0 * (1.0 - f.pod_seconds / (20.0 * secs))
    );
    println!("  peak replicas         {peak_pods:>8}");
    println!("  scaling actions       {actions:>8}");
    if f.ttft_total > 0.0 {
        println!("  requests with TTFT <= {TTFT_SLO_S} s  {:>5.1}% of {:.0}", 100.0 * f.ttft_ok / f.ttft_total, f.ttft_total);
    }
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
    format!("{} [demand: {}]", latest["reason"].as_str().unwrap_or("-"), parts.join(", "))
}
