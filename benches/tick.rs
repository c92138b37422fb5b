//! One scrape tick over 1,000 fake vLLM pods on loopback: wall time and CPU time per tick, the
//! parsing share, and resident memory with 1,000 pods registered.
//!
//! `cargo bench --bench tick` (optionally `-- PODS TICKS`). The fake fleet runs in a child
//! process, so the CPU measured is the scaler's own (scrape, parse, signals, policy, store).
//! Goal (issue 2): <= 1 s wall and <= 0.5 CPU-s per tick, parsing <= 0.1 CPU-s; RSS <= 64 MB.

mod support;

use std::{collections::HashMap, sync::Arc, time::Duration};

use llm_scaler::{
    discovery::{PodInfo, PodLister},
    proto::{GetMetricsRequest, ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    read::exposition,
    read::vllm::VllmExtractor,
    serve::config::Settings,
    serve::grpc::METRIC_NAME,
    serve::server::{DiscoveryMode, Server},
};

struct Pods(Vec<PodInfo>);

impl PodLister for Pods {
    fn pods(&self, _: &str, _: &str) -> Vec<PodInfo> {
        self.0.clone()
    }
}

fn main() {
    support::maybe_run_fleet();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(1000);
    let ticks = args.get(1).copied().unwrap_or(10);
    let fleet = support::Fleet::spawn(n);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(fleet, ticks));
}

async fn run(fleet: support::Fleet, ticks: usize) {
    let n = fleet.n;
    let pods = (0..n)
        .map(|k| PodInfo {
            name: format!("vllm-{k}"),
            namespace: "bench".into(),
            ip: Some(fleet.addr(k).ip()),
            node: None,
            readiness: llm_scaler::discovery::Readiness::Ready,
            ready_after: None,
            gpus: None,
        })
        .collect();
    let interval = Duration::from_secs(2);
    let settings = Settings {
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        scrape_interval: interval,
        scrape_timeout: Duration::from_secs(2),
        kube: false,
        ..Settings::default()
    };
    let (rss0, _) = support::rss_mib();
    let server = Server::start(settings, DiscoveryMode::Custom(Arc::new(Pods(pods)))).await.expect("server");
    let mut client = ExternalScalerClient::connect(format!("http://{}", server.grpc_addr)).await.expect("connect");
    let meta: HashMap<String, String> = [("metricsPort".to_string(), fleet.port.to_string())].into();
    let so = ScaledObjectRef { name: "fleet".into(), namespace: "bench".into(), scaler_metadata: meta };
    client.get_metric_spec(so.clone()).await.expect("spec");
    let req = GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: METRIC_NAME.into() };
    while client.get_metrics(req.clone()).await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics_url = format!("http://{}/metrics", server.http_addr);
    let http = reqwest::Client::new();
    let read = |text: &str| {
        let sum = support::metric(text, "llm_scaler_tick_duration_seconds_sum{namespace=\"bench\",scaledobject=\"fleet\"}").unwrap_or(0.0);
        let count =
            support::metric(text, "llm_scaler_tick_duration_seconds_count{namespace=\"bench\",scaledobject=\"fleet\"}").unwrap_or(0.0);
        let errors: f64 = text
            .lines()
            .filter(|l| l.starts_with("llm_scaler_pod_scrape_errors_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (sum, count, errors)
    };
    let before = read(&http.get(&metrics_url).send().await.expect("metrics").text().await.expect("text"));
    let cpu0 = support::cpu_time();
    tokio::time::sleep(interval * ticks as u32).await;
    let cpu1 = support::cpu_time();
    let after = read(&http.get(&metrics_url).send().await.expect("metrics").text().await.expect("text"));
    let (rss, hwm) = support::rss_mib();
    let done = after.1 - before.1;
    let d = client.get_metrics(req).await.expect("decision").into_inner();

    // Parsing share: the same bodies parsed in-process, single thread.
    let body = support::body();
    let pcpu0 = support::cpu_time();
    let started = std::time::Instant::now();
    for _ in 0..n {
        let mut x = VllmExtractor::new(None, &["vllm:time_to_first_token_seconds"]);
        exposition::parse(&body, &mut x).expect("parse");
        x.finish().expect("sample");
    }
    let parse_wall = started.elapsed();
    let parse_cpu = support::cpu_time() - pcpu0;

    println!("tick bench: {n} pods x {} KB body, interval {interval:?}, {done} ticks measured", body.len() / 1000);
    println!("  wall per tick      {:>8.3} s   (goal <= 1 s)", (after.0 - before.0) / done);
    println!(
        "  CPU per tick       {:>8.3} s   (goal <= 0.5 CPU-s; whole scaler process, 2 worker threads)",
        (cpu1 - cpu0).as_secs_f64() / done
    );
    println!("  parsing per tick   {:>8.3} s   (wall {:.3} s; goal <= 0.1 CPU-s)", parse_cpu.as_secs_f64(), parse_wall.as_secs_f64());
    println!("  scrape errors      {:>8.0}", after.2 - before.2);
    println!("  RSS                {rss:>8.1} MiB (peak {hwm:.1} MiB, {rss0:.1} MiB before the server; goal <= 64 MB)");
    println!("  decision           {:>8.0} replicas", d.metric_values.first().map_or(0.0, |v| v.metric_value_float));
    server.shutdown().await.expect("shutdown");
}
