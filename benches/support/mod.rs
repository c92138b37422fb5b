//! Bench support: a fleet of fake vLLM pods in a CHILD process (so its CPU does not count
//! against the scaler being measured), each on its own loopback IP, serving the realistic
//! two-engine vLLM 0.33 fixture body; plus process CPU and memory readings from /proc.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::{Child, Command, Stdio},
    time::Duration,
};

const ENV: &str = "LLM_SCALER_BENCH_FLEET";

/// The IP of fake pod `k`.
pub fn pod_ip(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 2 + (k / 250) as u8, (k % 250) as u8 + 2, 9))
}

/// The fixture every fake pod serves.
pub fn body() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vllm-0.33-two-engines.prom")).expect("fixture")
}

/// If this process was started as the fleet child, serve until stdin closes and exit.
pub fn maybe_run_fleet() {
    let Ok(n) = std::env::var(ENV) else { return };
    let n: usize = n.parse().expect("pod count");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let body = bytes_body();
        let first = tokio::net::TcpListener::bind(SocketAddr::new(pod_ip(0), 0)).await.expect("bind");
        let port = first.local_addr().expect("addr").port();
        let mut listeners = vec![first];
        for k in 1..n {
            listeners.push(tokio::net::TcpListener::bind(SocketAddr::new(pod_ip(k), port)).await.expect("bind pod"));
        }
        for l in listeners {
            let b = body.clone();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let b = b.clone();
                    async move { ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], b) }
                }),
            );
            tokio::spawn(async move {
                let _ = axum::serve(l, app).await;
            });
        }
        println!("READY {port}");
        let _ = std::io::stdout().flush();
        // Exit when the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .ok();
    });
    std::process::exit(0);
}

fn bytes_body() -> axum::body::Bytes {
    axum::body::Bytes::from(body())
}

/// A running fleet child.
pub struct Fleet {
    child: Child,
    pub port: u16,
    pub n: usize,
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
        let port = line.trim().strip_prefix("READY ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("fleet said {line:?}"));
        Fleet { child, port, n }
    }

    /// Address of pod `k`.
    pub fn addr(&self, k: usize) -> SocketAddr {
        SocketAddr::new(pod_ip(k), self.port)
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
