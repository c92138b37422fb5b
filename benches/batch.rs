//! One batch tick over 100 ScaledJob triggers on one real redis-server: wall time of the 100
//! reads (each one pipelined round trip: XINFO GROUPS + XPENDING IDLE on a stream with 1,000
//! entries and 100 pending), over the one shared connection, and the commands Redis processed.
//!
//! Then the RPCs: a server with those 100 triggers answers KEDA's ScaledJob call pattern at
//! 2,000 RPS from memory (the serving targets' goal: p99 <= 1 ms), the loops reading Redis meanwhile.
//!
//! `cargo bench --bench batch` (optionally `-- TARGETS TICKS RPS SECONDS`). Needs redis-server >= 7
//! (`scripts/redis/install.sh` installs Debian's). Goal (issue 10): <= 5 ms wall per tick.

mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use llm_scaler::{
    fetch::redis::{Queue, RedisEndpoint, RedisPool},
    proto::{ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    read::queue::QueueReading,
    serve::{
        config::Settings,
        grpc::BATCH_METRIC_NAME,
        server::{DiscoveryMode, Server},
    },
};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let targets = args.first().copied().unwrap_or(100);
    let ticks = args.get(1).copied().unwrap_or(50);
    let rps = args.get(2).copied().unwrap_or(2000) as f64;
    let secs = args.get(3).copied().unwrap_or(10) as f64;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/redis/install.sh");
    let out = Command::new("bash").arg(script).output().expect("scripts/redis/install.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("llm-scaler-bench-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run(port, targets, ticks));
    // The server on its own runtime (2 workers, as in production), KEDA's load on another.
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let scaler = rt.block_on(start_server());
    client_rt.block_on(rpcs(scaler.grpc_addr, port, targets, rps, secs));
    rt.block_on(scaler.shutdown()).expect("shutdown");
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run(port: u16, targets: usize, ticks: usize) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = loop {
        match client.get_multiplexed_async_connection().await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    for t in 0..targets {
        let s = format!("stream-{t}");
        let _: () = redis::cmd("XGROUP").arg(&["CREATE", &s, "g", "$", "MKSTREAM"]).query_async(&mut c).await.unwrap();
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("XADD").arg(&s).arg("*").arg("i").arg(i).ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
        let _: redis::Value =
            redis::cmd("XREADGROUP").arg(&["GROUP", "g", "w", "COUNT", "100", "STREAMS", &s, ">"]).query_async(&mut c).await.unwrap();
    }
    let ep = RedisEndpoint { host: "127.0.0.1".into(), port, tls: false, insecure: false, db: 0, username: None, password: None };
    let queues: Vec<Queue> = (0..targets)
        .map(|t| Queue::Stream { stream: format!("stream-{t}"), group: "g".into(), claim_timeout: Duration::from_secs(300) })
        .collect();
    let pool = RedisPool::new(Duration::from_secs(2), None);
    let tick = || async {
        let reads = queues.iter().map(|q| pool.read(&ep, q));
        futures::future::join_all(reads).await
    };
    // Warm: connect.
    for r in tick().await {
        assert!(matches!(r, Ok(QueueReading::Stream { lag: 900, pending: 100, .. })), "{r:?}");
    }
    let commands = |info: String| -> u64 {
        info.lines().find_map(|l| l.strip_prefix("total_commands_processed:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    let before: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    let mut walls = Vec::with_capacity(ticks);
    for _ in 0..ticks {
        let t0 = Instant::now();
        let rs = tick().await;
        walls.push(t0.elapsed());
        assert!(rs.iter().all(|r| r.is_ok()));
    }
    let after: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    // The INFO call itself is one command.
    let per_tick = (commands(after) - commands(before) - 1) as f64 / ticks as f64;
    walls.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "batch tick over {targets} ScaledJob triggers (streams of 1,000 entries, 100 pending), {ticks} ticks: \
         wall p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms; {per_tick:.0} Redis commands per tick ({:.1} per trigger, one pipeline each)",
        ms(walls[walls.len() / 2]),
        ms(walls[walls.len() * 9 / 10]),
        ms(*walls.last().unwrap()),
        per_tick / targets as f64
    );
}

async fn start_server() -> Server {
    let settings = Settings {
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        scrape_interval: Duration::from_secs(5),
        kube: false,
        ..Settings::default()
    };
    Server::start(settings, DiscoveryMode::None).await.expect("server")
}

/// KEDA's ScaledJob calls for every trigger of [`run`]'s streams, once each answers.
async fn rpcs(grpc: std::net::SocketAddr, port: u16, targets: usize, rps: f64, secs: f64) {
    let client = ExternalScalerClient::connect(format!("http://{grpc}")).await.expect("connect");
    let sos: Vec<ScaledObjectRef> = (0..targets)
        .map(|t| {
            let meta = [
                ("mode", "batch".to_string()),
                ("address", format!("127.0.0.1:{port}")),
                ("stream", format!("stream-{t}")),
                ("consumerGroup", "g".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            ScaledObjectRef { name: format!("job-{t}"), namespace: "bench".into(), scaler_metadata: meta }
        })
        .collect();
    support::keda_load(&client, sos, BATCH_METRIC_NAME, rps, secs).await;
}
