//! Test support: fake vLLM pods and dcgm-exporters on loopback, and a scaler server to drive.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    ops::Deref,
    time::Duration,
};

use llm_scaler::{
    proto::{GetMetricsRequest, ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    serve::config::Settings,
    serve::grpc::{BATCH_METRIC_NAME, METRIC_NAME},
    serve::server::{DiscoveryMode, Server},
    sim::{
        pods,
        render::{
            dcgm::{self, Gpu, PodRef},
            vllm::VllmPod,
        },
    },
};
use tonic::transport::Channel;

pub mod prometheus;
pub mod redis_server;

/// What a fake pod answers (only some test binaries make their pods misbehave).
#[allow(unused_imports)]
pub use llm_scaler::sim::pods::Behavior;

/// A fake vLLM replica listening on its own loopback IP: the shared [`pods::FakePod`], which
/// fails the test when it cannot bind.
pub struct FakePod(pods::FakePod);

impl Deref for FakePod {
    type Target = pods::FakePod;

    fn deref(&self) -> &pods::FakePod {
        &self.0
    }
}

/// A fresh loopback IP per fake server so pods look like distinct hosts.
pub fn next_ip() -> IpAddr {
    pods::next_loopback_ip()
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
        FakePod(pods::FakePod::vllm(addr, vllm).await.unwrap_or_else(|e| panic!("bind fake pod on {addr}: {e}")))
    }
}

/// A fake dcgm-exporter: the shared fake pod serving the GPUs' rendered text.
pub struct FakeDcgm {
    pub addr: SocketAddr,
    _server: pods::FakePod,
}

impl FakeDcgm {
    /// One exporter with `per_pod` GPUs for each `(namespace, pod, utilisation 0..1)`.
    pub async fn start(holders: &[(&str, &str, f64)], per_pod: u32, flavor: dcgm::DcgmFlavor) -> FakeDcgm {
        let mut gpus = Vec::new();
        for (ns, pod, util) in holders {
            for _ in 0..per_pod {
                let i = gpus.len() as u32;
                let mut g = Gpu::h100(i, "gpu-node-1");
                g.holder = Some(PodRef { namespace: ns.to_string(), pod: pod.to_string(), container: "vllm".into() });
                g.util = *util;
                gpus.push(g);
            }
        }
        let mut text = String::new();
        dcgm::render(&gpus, flavor, &mut text);
        let server = pods::FakePod::fixed(SocketAddr::new(next_ip(), 0), text).await.expect("bind fake dcgm");
        FakeDcgm { addr: server.addr, _server: server }
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

    /// `GetMetrics` for a batch trigger (its work).
    pub async fn batch_work(&mut self, so: &ScaledObjectRef) -> Result<f64, tonic::Status> {
        let req = GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: BATCH_METRIC_NAME.into() };
        let v = self.client.get_metrics(req).await?.into_inner().metric_values;
        assert_eq!(v.len(), 1);
        Ok(v[0].metric_value_float)
    }

    /// Polls a batch trigger's `GetMetrics` until `pred` holds (or panics with the last answer
    /// after 10 s).
    pub async fn wait_batch_work(
        &mut self,
        so: &ScaledObjectRef,
        pred: impl Fn(&Result<f64, tonic::Status>) -> bool,
    ) -> Result<f64, tonic::Status> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.batch_work(so).await;
            if pred(&r) {
                return r;
            }
            assert!(tokio::time::Instant::now() < deadline, "condition not met within 10 s; last answer: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The HTTP decisions API, raw.
    pub async fn decisions(&self) -> String {
        http_get(self.http_addr, "/api/v1/decisions").await
    }
}

/// A temporary directory named for what it holds (`llm-scaler-<tag>-...`), removed on drop.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("llm-scaler-{tag}-")).tempdir().expect("temp dir")
}

/// GETs `path` every 100 ms until its body satisfies `pred` (`Ok(body)`) or `timeout` has
/// passed (`Err(last body)`): for what the scaler records a tick after the call that caused it.
pub async fn wait_body(addr: SocketAddr, path: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let body = http_get(addr, path).await;
        if pred(&body) {
            return Ok(body);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
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
