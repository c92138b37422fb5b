//! RPC latency served from memory: 100 ScaledObjects, an open-loop load of 2,000 RPS in KEDA's
//! call pattern (GetMetricSpec, GetMetrics, IsActive), latency measured at the client.
//!
//! `cargo bench --bench rpc` (optionally `-- RPS SECONDS OBJECTS`). Goal (issue 2): p99 <= 1 ms
//! at 2,000 RPS with 100 ScaledObjects. The fake pods run in a child process; the load
//! generator shares this process with the server, so the figures include its CPU contention.

mod support;

use std::{collections::HashMap, time::Duration};

use llm_scaler::{
    proto::{ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    serve::config::Settings,
    serve::grpc::METRIC_NAME,
    serve::server::{DiscoveryMode, Server},
};

fn main() {
    support::maybe_run_fleet();
    let args: Vec<f64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rps = args.first().copied().unwrap_or(2000.0);
    let secs = args.get(1).copied().unwrap_or(10.0);
    let objects = args.get(2).copied().unwrap_or(100.0) as usize;
    let fleet = support::Fleet::spawn(objects);
    // The server gets its own runtime (2 workers, as in production); the load generator runs on
    // another (1 worker), like KEDA in its own process, so neither queues behind the other's tasks.
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let server = server_rt.block_on(start_server());
    let grpc = server.grpc_addr;
    let http = server.http_addr;
    client_rt.block_on(run(fleet, grpc, http, rps, secs, objects));
    server_rt.block_on(server.shutdown()).expect("shutdown");
}

async fn start_server() -> Server {
    let settings = Settings {
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        scrape_interval: Duration::from_secs(5),
        kube: false,
        allow_static_endpoints: true,
        ..Settings::default()
    };
    Server::start(settings, DiscoveryMode::None).await.expect("server")
}

async fn run(fleet: support::Fleet, grpc: std::net::SocketAddr, http: std::net::SocketAddr, rps: f64, secs: f64, objects: usize) {
    let url = format!("http://{grpc}");
    let sos: Vec<ScaledObjectRef> = (0..objects)
        .map(|k| {
            let meta: HashMap<String, String> =
                [("endpoints".to_string(), format!("vllm-{k}={}", fleet.addr(k))), ("scalerAddress".to_string(), url.clone())].into();
            ScaledObjectRef { name: format!("model-{k}"), namespace: "bench".into(), scaler_metadata: meta }
        })
        .collect();
    // Like KEDA: one shared HTTP/2 connection per scaler address.
    let client = ExternalScalerClient::connect(url).await.expect("connect");
    support::keda_load(&client, sos, METRIC_NAME, rps, secs).await;
    // Server-side handler time, from the scaler's own histogram.
    let text = reqwest::get(format!("http://{http}/metrics")).await.expect("metrics").text().await.expect("text");
    let (mut sum, mut count) = (0.0, 0.0);
    for m in ["GetMetricSpec", "GetMetrics", "IsActive"] {
        sum += support::metric(&text, &format!("llm_scaler_rpc_duration_seconds_sum{{method=\"{m}\"}}")).unwrap_or(0.0);
        count += support::metric(&text, &format!("llm_scaler_rpc_duration_seconds_count{{method=\"{m}\"}}")).unwrap_or(0.0);
    }
    println!("  server-side handler time: mean {:.1} us over {count:.0} calls", sum / count.max(1.0) * 1e6);
    println!("  load average during the run: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
}
