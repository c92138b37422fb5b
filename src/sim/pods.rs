//! Fake pods over HTTP: an axum server on a loopback address answering `GET /metrics` with a
//! rendered vLLM body, a fixed body, or a fault (an HTTP status, garbage, a huge body, a hang).
//! The demo's replicas, the integration tests' pods and exporters and the benches' fleet are all
//! this one server, on addresses from one allocator, [`next_loopback_ip`].

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::sim::render::vllm::VllmPod;

/// The content type vLLM's `prometheus_client` serves.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

static NEXT_IP: AtomicU32 = AtomicU32::new(0);

/// A fresh loopback address, so fake pods look like distinct hosts: `127.a.b.c` with `a` in
/// 1..=250, never `127.0.0.0/16` (where `127.0.0.1` lives). Unique within a process for 62,500
/// calls; the process id picks `c` and where the sequence starts, so test binaries and bench
/// children running at once rarely share an address (and with port 0 they never collide).
pub fn next_loopback_ip() -> IpAddr {
    let pid = std::process::id();
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed) + (pid % 50) * 1000;
    IpAddr::V4(Ipv4Addr::new(127, 1 + (n / 250 % 250) as u8, (n % 250) as u8 + 2, 1 + (pid % 200) as u8))
}

/// What a fake pod answers.
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Render its vLLM state at each request (nothing, for a pod started with a fixed body).
    Vllm,
    /// This body as it is: a pre-rendered exposition shared cheaply (the benches' fixture, the
    /// demo's replica rendered once per step, a dcgm-exporter's GPUs).
    Fixed(Bytes),
    /// Answer this status with a short body.
    Status(u16),
    /// Answer 200 with this text.
    Text(String),
    /// Answer 200 with `n` bytes of valid-looking comment lines (huge body), streamed without
    /// Content-Length so only a streaming limit can stop it.
    Huge(usize),
    /// Accept and never answer.
    Hang,
    /// Whatever this renders at the moment of each request (`None`: 404, the pod is gone): the
    /// demo's replicas, advanced to the virtual instant of the scrape before they render.
    Live(LiveBody),
}

/// A body rendered when it is asked for.
#[derive(Clone)]
pub struct LiveBody(pub Arc<dyn Fn() -> Option<Bytes> + Send + Sync>);

impl std::fmt::Debug for LiveBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveBody")
    }
}

struct PodState {
    vllm: Option<VllmPod>,
    behavior: Behavior,
}

type Shared = Arc<Mutex<PodState>>;

/// A fake pod listening on its own address until dropped.
pub struct FakePod {
    /// Where it listens (the port resolved when bound with port 0).
    pub addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl Drop for FakePod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePod {
    /// Serves `vllm`, rendered at each request, on `addr` (port 0: any free port). Pods
    /// discovered through one `metricsPort` share a port and differ by IP, as in a cluster.
    pub async fn vllm(addr: SocketAddr, vllm: VllmPod) -> io::Result<FakePod> {
        Self::bind(addr, PodState { vllm: Some(vllm), behavior: Behavior::Vllm }).await
    }

    /// Serves what `render` returns at each request, on `addr`.
    pub async fn live(addr: SocketAddr, render: LiveBody) -> io::Result<FakePod> {
        Self::bind(addr, PodState { vllm: None, behavior: Behavior::Live(render) }).await
    }

    /// Serves `body` as it is on `addr`.
    pub async fn fixed(addr: SocketAddr, body: impl Into<Bytes>) -> io::Result<FakePod> {
        Self::bind(addr, PodState { vllm: None, behavior: Behavior::Fixed(body.into()) }).await
    }

    async fn bind(addr: SocketAddr, state: PodState) -> io::Result<FakePod> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(state));
        let app = Router::new().route("/metrics", get(answer)).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakePod { addr, state, task })
    }

    /// Changes the vLLM state (a pod started with a fixed body has none).
    pub fn update(&self, f: impl FnOnce(&mut VllmPod)) {
        if let Some(v) = self.lock().vllm.as_mut() {
            f(v);
        }
    }

    /// Changes what the pod answers.
    pub fn behave(&self, b: Behavior) {
        self.lock().behavior = b;
    }

    /// `name=ip:port` for the `endpoints` metadata key.
    pub fn endpoint(&self, name: &str) -> String {
        format!("{name}={}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PodState> {
        // The state is plain data, whole after any panic: keep serving it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn answer(State(state): State<Shared>) -> Response {
    let (behavior, rendered) = {
        let st = state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rendered = String::new();
        if let (Behavior::Vllm, Some(v)) = (&st.behavior, &st.vllm) {
            v.render(&mut rendered);
        }
        (st.behavior.clone(), rendered)
    };
    match behavior {
        Behavior::Vllm => ([(header::CONTENT_TYPE, EXPOSITION)], rendered).into_response(),
        Behavior::Fixed(body) => ([(header::CONTENT_TYPE, EXPOSITION)], body).into_response(),
        Behavior::Status(code) => {
            (StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "Internal Server Error").into_response()
        }
        Behavior::Text(t) => Response::new(Body::from(t)),
        Behavior::Huge(n) => {
            let line = "# padding padding padding padding padding padding padding padding padding\n";
            let chunk = line.repeat((16 << 10) / line.len());
            let chunks = n / chunk.len() + 1;
            let stream = futures::stream::iter((0..chunks).map(move |_| Ok::<_, io::Error>(chunk.clone())));
            Response::new(Body::from_stream(stream))
        }
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(Body::empty())
        }
        Behavior::Live(LiveBody(render)) => match render() {
            Some(body) => ([(header::CONTENT_TYPE, EXPOSITION)], body).into_response(),
            None => (StatusCode::NOT_FOUND, "gone").into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_fresh_and_stay_off_127_0() {
        let a: Vec<IpAddr> = (0..600).map(|_| next_loopback_ip()).collect();
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), a.len());
        for ip in a {
            let IpAddr::V4(v4) = ip else { panic!("{ip}") };
            assert!(v4.is_loopback() && v4.octets()[1] != 0, "{v4}");
        }
    }

    #[tokio::test]
    async fn a_pod_serves_its_vllm_state_then_what_it_is_told() {
        let pod = FakePod::vllm(SocketAddr::new(next_loopback_ip(), 0), VllmPod::new("llama", 1)).await.unwrap();
        pod.update(|v| v.engines[0].waiting = 7);
        let url = format!("http://{}/metrics", pod.addr);
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(resp.headers()[header::CONTENT_TYPE], EXPOSITION);
        assert!(resp.text().await.unwrap().contains("vllm:num_requests_waiting{engine=\"0\",model_name=\"llama\"} 7.0"));
        pod.behave(Behavior::Status(503));
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 503);
        pod.behave(Behavior::Fixed(Bytes::from_static(b"x 1\n")));
        assert_eq!(reqwest::get(&url).await.unwrap().text().await.unwrap(), "x 1\n");
    }

    #[tokio::test]
    async fn a_live_pod_renders_at_each_request_and_answers_404_once_gone() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let render = LiveBody(Arc::new(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            (n < 2).then(|| Bytes::from(format!("vllm:num_requests_waiting {n}\n")))
        }));
        let pod = FakePod::live(SocketAddr::new(next_loopback_ip(), 0), render).await.unwrap();
        let url = format!("http://{}/metrics", pod.addr);
        assert_eq!(reqwest::get(&url).await.unwrap().text().await.unwrap(), "vllm:num_requests_waiting 0\n");
        assert_eq!(reqwest::get(&url).await.unwrap().text().await.unwrap(), "vllm:num_requests_waiting 1\n");
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);
    }
}
