//! Test support: fake vLLM pods and dcgm-exporters on loopback, and a scaler server to drive.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body, extract::State, http::StatusCode, response::Response, routing::get};
use llm_scaler::{
    proto::{GetMetricsRequest, ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    serve::config::Settings,
    serve::grpc::METRIC_NAME,
    serve::server::{DiscoveryMode, Server},
    sim::render::{
        dcgm::{self, Gpu, PodRef},
        vllm::VllmPod,
    },
};
use tonic::transport::Channel;

/// What a fake pod answers.
#[derive(Clone)]
pub enum Behavior {
    /// Render the vLLM state.
    Vllm,
    /// Answer this status with a short body.
    Status(u16),
    /// Answer 200 with this text.
    Text(String),
    /// Answer 200 with `n` bytes of valid-looking comment lines (huge body).
    Huge(usize),
    /// Accept and never answer.
    Hang,
}

struct PodState {
    vllm: VllmPod,
    behavior: Behavior,
}

/// A fake vLLM replica listening on its own loopback IP.
pub struct FakePod {
    pub addr: SocketAddr,
    state: Arc<Mutex<PodState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

static NEXT_IP: AtomicU32 = AtomicU32::new(0);

/// A fresh loopback IP per fake server so pods look like distinct hosts (127.0.x.y).
pub fn next_ip() -> IpAddr {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed) + (std::process::id() % 50) * 1000;
    IpAddr::V4(Ipv4Addr::new(127, 1 + (n / 250 % 250) as u8, (n % 250) as u8 + 2, 1 + (std::process::id() % 200) as u8))
}

async fn serve_pod(State(s): State<Arc<Mutex<PodState>>>) -> Response {
    let (behavior, body) = {
        let st = s.lock().unwrap();
        let mut out = String::new();
        if matches!(st.behavior, Behavior::Vllm) {
            st.vllm.render(&mut out);
        }
        (st.behavior.clone(), out)
    };
    match behavior {
        Behavior::Vllm => {
            Response::builder().header("content-type", "text/plain; version=0.0.4; charset=utf-8").body(Body::from(body)).unwrap()
        }
        Behavior::Status(code) => {
            Response::builder().status(StatusCode::from_u16(code).unwrap()).body(Body::from("Internal Server Error")).unwrap()
        }
        Behavior::Text(t) => Response::builder().body(Body::from(t)).unwrap(),
        Behavior::Huge(n) => {
            // Streamed without Content-Length, so only the streaming limit can stop it.
            let line = "# padding padding padding padding padding padding padding padding padding\n";
            let chunk = line.repeat((16 << 10) / line.len());
            let chunks = n / chunk.len() + 1;
            let stream = futures::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
            Response::builder().body(Body::from_stream(stream)).unwrap()
        }
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(Body::empty())
        }
    }
}

impl FakePod {
    /// Starts a one-engine vLLM pod for `model`.
    pub async fn start(model: &str) -> FakePod {
        Self::start_with(VllmPod::new(model, 1)).await
    }

    /// Starts a pod rendering `vllm`.
    pub async fn start_with(vllm: VllmPod) -> FakePod {
        Self::start_at(SocketAddr::new(next_ip(), 0), vllm).await
    }

    /// Starts a pod rendering `vllm` on a given address: discovered pods share one
    /// `metricsPort` and differ by IP, as in a cluster.
    pub async fn start_at(addr: SocketAddr, vllm: VllmPod) -> FakePod {
        let state = Arc::new(Mutex::new(PodState { vllm, behavior: Behavior::Vllm }));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("bind fake pod on {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/metrics", get(serve_pod)).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePod { addr, state, task }
    }

    /// Changes the engine state.
    pub fn update(&self, f: impl FnOnce(&mut VllmPod)) {
        f(&mut self.state.lock().unwrap().vllm);
    }

    /// Changes what the pod answers.
    pub fn behave(&self, b: Behavior) {
        self.state.lock().unwrap().behavior = b;
    }

    /// `name=ip:port` for the `endpoints` metadata key.
    pub fn endpoint(&self, name: &str) -> String {
        format!("{name}={}", self.addr)
    }
}

/// A fake dcgm-exporter.
pub struct FakeDcgm {
    pub addr: SocketAddr,
    gpus: Arc<Mutex<Vec<Gpu>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDcgm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDcgm {
    /// One exporter with `per_pod` GPUs for each `(namespace, pod, utilisation 0..1)`.
    pub async fn start(pods: &[(&str, &str, f64)], per_pod: u32, flavor: dcgm::DcgmFlavor) -> FakeDcgm {
        let mut gpus = Vec::new();
        for (ns, pod, util) in pods {
            for _ in 0..per_pod {
                let i = gpus.len() as u32;
                let mut g = Gpu::h100(i, "gpu-node-1");
                g.holder = Some(PodRef { namespace: ns.to_string(), pod: pod.to_string(), container: "vllm".into() });
                g.util = *util;
                gpus.push(g);
            }
        }
        let gpus = Arc::new(Mutex::new(gpus));
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(next_ip(), 0)).await.expect("bind fake dcgm");
        let addr = listener.local_addr().unwrap();
        let g2 = gpus.clone();
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let g = g2.clone();
                async move {
                    let mut out = String::new();
                    dcgm::render(&g.lock().unwrap(), flavor, &mut out);
                    out
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDcgm { addr, gpus, task }
    }
}

/// Settings for an in-process server on ephemeral loopback ports, fast ticks.
pub fn settings(interval_ms: u64) -> Settings {
    Settings {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        scrape_interval: Duration::from_millis(interval_ms),
        scrape_timeout: Duration::from_millis(500),
        kube: false,
        allow_static_endpoints: true,
        shutdown_grace: Duration::from_secs(2),
        ..Settings::default()
    }
}

/// A server plus a KEDA-like client.
pub struct Harness {
    pub server: Option<Server>,
    pub client: ExternalScalerClient<Channel>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
}

impl Harness {
    pub async fn start(settings: Settings) -> Harness {
        let server = Server::start(settings, DiscoveryMode::None).await.expect("server starts");
        let grpc_addr = server.grpc_addr;
        let http_addr = server.http_addr;
        let client = ExternalScalerClient::connect(format!("http://{grpc_addr}")).await.expect("connect");
        Harness { server: Some(server), client, grpc_addr, http_addr }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }

    /// `GetMetrics` as KEDA calls it (after `GetMetricSpec`).
    pub async fn metric(&mut self, so: &ScaledObjectRef) -> Result<f64, tonic::Status> {
        let r = self.client.get_metrics(GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: METRIC_NAME.into() }).await?;
        let vals = r.into_inner().metric_values;
        assert_eq!(vals.len(), 1);
        #[allow(deprecated)]
        {
            assert_eq!(vals[0].metric_value as f64, vals[0].metric_value_float.ceil(), "int field is the ceil of the float");
        }
        Ok(vals[0].metric_value_float)
    }

    /// Polls GetMetrics until `pred` holds (or panics with the last answer after `timeout`).
    pub async fn wait_metric(
        &mut self,
        so: &ScaledObjectRef,
        timeout: Duration,
        pred: impl Fn(&Result<f64, tonic::Status>) -> bool,
    ) -> Result<f64, tonic::Status> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = self.metric(so).await;
            if pred(&r) {
                return r;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("condition not met within {timeout:?}; last answer: {r:?}; decisions: {}", self.decisions().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The HTTP decisions API, raw.
    pub async fn decisions(&self) -> String {
        http_get(self.http_addr, "/api/v1/decisions").await
    }
}

/// GET over plain HTTP.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    reqwest::Client::new().get(format!("http://{addr}{path}")).send().await.expect("http").text().await.expect("body")
}

/// A ScaledObjectRef with the given metadata.
pub fn so(namespace: &str, name: &str, meta: &[(&str, String)]) -> ScaledObjectRef {
    let mut m: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    m.entry("scalerAddress".into()).or_insert_with(|| "llm-scaler.keda:9090".into());
    ScaledObjectRef { name: name.into(), namespace: namespace.into(), scaler_metadata: m }
}

/// `endpoints` metadata value for pods.
pub fn endpoints(pods: &[&FakePod]) -> String {
    pods.iter().enumerate().map(|(i, p)| p.endpoint(&format!("vllm-{i}"))).collect::<Vec<_>>().join(",")
}
