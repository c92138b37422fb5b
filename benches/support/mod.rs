//! Bench support: a fleet of fake vLLM pods (`llm_scaler::sim::pods`) in a CHILD process (so
//! its CPU does not count against the scaler being measured), each on its own loopback IP,
//! serving the realistic two-engine vLLM 0.33 fixture body; plus process CPU and memory
//! readings from /proc.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, SocketAddr},
    process::{Child, Command, Stdio},
    time::Duration,
};

use axum::body::Bytes;
use llm_scaler::sim::pods::{FakePod, next_loopback_ip};

const ENV: &str = "LLM_SCALER_BENCH_FLEET";

/// The fixture every fake pod serves.
pub fn body() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vllm-0.33-two-engines.prom")).expect("fixture")
}

/// If this process was started as the fleet child, serve until stdin closes and exit. The pods
/// are the shared fake pod serving one fixed body (each answer shares its bytes), on one port,
/// each on its own loopback IP; the child tells the parent the port and the IPs.
pub fn maybe_run_fleet() {
    let Ok(n) = std::env::var(ENV) else { return };
    let n: usize = n.parse().expect("pod count");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let body = Bytes::from(body());
        let first = FakePod::fixed(SocketAddr::new(next_loopback_ip(), 0), body.clone()).await.expect("bind");
        let port = first.addr.port();
        let mut pods = vec![first];
        for _ in 1..n {
            pods.push(FakePod::fixed(SocketAddr::new(next_loopback_ip(), port), body.clone()).await.expect("bind pod"));
        }
        let ips: Vec<String> = pods.iter().map(|p| p.addr.ip().to_string()).collect();
        println!("READY {port} {}", ips.join(","));
        let _ = std::io::stdout().flush();
        // Exit when the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .ok();
        drop(pods);
    });
    std::process::exit(0);
}

/// A running fleet child.
pub struct Fleet {
    child: Child,
    pub port: u16,
    pub n: usize,
    ips: Vec<IpAddr>,
}

impl Fleet {
    /// Starts `n` fake pods in a child process.
    pub fn spawn(n: usize) -> Fleet {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env(ENV, n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn fleet");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read READY");
        let ready = line.trim().strip_prefix("READY ").and_then(|rest| rest.split_once(' '));
        let Some((port, ips)) = ready else { panic!("fleet said {line:?}") };
        let port = port.parse().unwrap_or_else(|_| panic!("fleet said {line:?}"));
        let ips: Vec<IpAddr> = ips.split(',').map(|ip| ip.parse().unwrap_or_else(|_| panic!("fleet said {line:?}"))).collect();
        assert_eq!(ips.len(), n, "fleet said {line:?}");
        Fleet { child, port, n, ips }
    }

    /// Address of pod `k`.
    pub fn addr(&self, k: usize) -> SocketAddr {
        SocketAddr::new(self.ips[k], self.port)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// User + system CPU time of this process so far (from /proc/self/stat, USER_HZ = 100).
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    // Fields after the parenthesised command name: utime is the 14th field, stime the 15th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// (VmRSS, VmHWM) of this process in MiB.
pub fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// A `[name, value]` scalar from Prometheus text (first exact series match).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Once every target answers, KEDA's call pattern (GetMetricSpec, GetMetrics of `metric`,
/// IsActive, round-robin over the targets) as an open-loop load of `rps` for `secs` over one shared HTTP/2 connection; prints
/// the client-side latency quantiles, overall and per method.
pub async fn keda_load(
    client: &llm_scaler::proto::external_scaler_client::ExternalScalerClient<tonic::transport::Channel>,
    sos: Vec<llm_scaler::proto::ScaledObjectRef>,
    metric: &str,
    rps: f64,
    secs: f64,
) {
    use llm_scaler::proto::GetMetricsRequest;
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    };
    // Each target answers once (its first read done) before the load starts.
    for so in &sos {
        let mut c = client.clone();
        c.get_metric_spec(so.clone()).await.expect("spec");
        let req = GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: metric.to_string() };
        while c.get_metrics(req.clone()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let objects = sos.len();
    let sos = Arc::new(sos);
    let total = (rps * secs) as usize;
    let latencies = Arc::new(Mutex::new(Vec::<(u8, Duration)>::with_capacity(total)));
    let errors = Arc::new(AtomicU64::new(0));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let (mut c, sos, lat, errs, metric) = (client.clone(), sos.clone(), latencies.clone(), errors.clone(), metric.to_string());
        tasks.push(tokio::spawn(async move {
            let so = sos[i % sos.len()].clone();
            let kind = (i / sos.len() % 3) as u8;
            let t0 = tokio::time::Instant::now();
            let ok = match kind {
                0 => c.get_metric_spec(so).await.is_ok(),
                1 => c.get_metrics(GetMetricsRequest { scaled_object_ref: Some(so), metric_name: metric }).await.is_ok(),
                _ => c.is_active(so).await.is_ok(),
            };
            let dt = t0.elapsed();
            if !ok {
                errs.fetch_add(1, Ordering::Relaxed);
            }
            lat.lock().unwrap_or_else(|p| p.into_inner()).push((kind, dt));
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    all.sort_by_key(|(_, d)| *d);
    let q = |v: &[(u8, Duration)], p: f64| {
        v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1)).map_or(0.0, |x| x.1.as_secs_f64() * 1e3)
    };
    println!(
        "rpc load: {objects} targets, {} RPCs in {elapsed:.1} s = {:.0} RPS achieved (target {rps:.0})",
        all.len(),
        all.len() as f64 / elapsed
    );
    println!(
        "  all      p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  errors {}",
        q(&all, 0.5),
        q(&all, 0.99),
        q(&all, 0.999),
        q(&all, 1.0),
        errors.load(Ordering::Relaxed)
    );
    for (k, name) in [(0u8, "GetMetricSpec"), (1, "GetMetrics"), (2, "IsActive")] {
        let v: Vec<_> = all.iter().copied().filter(|(kind, _)| *kind == k).collect();
        println!("  {name:<14} p50 {:.3} ms  p99 {:.3} ms", q(&v, 0.5), q(&v, 0.99));
    }
    println!("  (client-side latency over one shared HTTP/2 connection; load generator on its own runtime in the same process)");
}
