//! The real `llm-scaler` binary: flags documented, configuration layering, JSON logs, and a
//! graceful shutdown on SIGTERM while KEDA-like clients are connected.
#![cfg(feature = "sim")] // the fake pods (tests/common) render vLLM text with llm_scaler::sim::render

mod common;

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::*;
use llm_scaler::serve::config::Settings;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

const BIN: &str = env!("CARGO_BIN_EXE_llm-scaler");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn serve_help_documents_every_flag() {
    let out = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--grpc-addr",
        "--http-addr",
        "--scrape-interval",
        "--scrape-timeout",
        "--stale-intervals",
        "--idle-timeout",
        "--max-body-bytes",
        "--scrape-concurrency",
        "--no-kube",
        "--allow-static-endpoints",
        "--log-format",
        "--log-level",
        "0.0.0.0:9090",
        "0.0.0.0:8080",
    ] {
        assert!(help.contains(flag), "`serve --help` does not mention {flag}:\n{help}");
    }
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let out = Command::new(BIN).args(["serve", "--no-kube"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-static-endpoints"), "{err}");
    let out = Command::new(BIN)
        .args(["serve", "--no-kube", "--allow-static-endpoints"])
        .env("LLM_SCALER_DEFAULTS__PEAKFACTOR", "0.2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("peakFactor") && err.contains("0.2"), "{err}");
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn real_binary_serves_keda_and_stops_gracefully_on_sigterm() {
    let pod = FakePod::start("llama").await;
    pod.update(|v| v.engines[0].waiting = 25);
    let (grpc, http) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("llm-scaler-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, "scrape_interval = \"10s\"\nshutdown_grace = \"3s\"\n[defaults]\ntargetQueueDepth = 10\n").unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .args([
            "--no-kube",
            "--allow-static-endpoints",
            "--grpc-addr",
            &format!("127.0.0.1:{grpc}"),
            "--http-addr",
            &format!("127.0.0.1:{http}"),
        ])
        // Flags beat the environment, which beats the file: the interval ends up 200ms, the
        // queue target 5 (env over file), the log format JSON (env).
        .args(["--scrape-interval", "200ms"])
        .env("LLM_SCALER_SCRAPE_INTERVAL", "30s")
        .env("LLM_SCALER_DEFAULTS__TARGETQUEUEDEPTH", "5")
        .env("LLM_SCALER_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut proc = Proc(child);

    let addr = format!("http://127.0.0.1:{grpc}");
    let channel = loop {
        if let Ok(c) = tonic::transport::Channel::from_shared(addr.clone()).unwrap().connect().await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut health = HealthClient::new(channel.clone());
    loop {
        let status =
            health.check(HealthCheckRequest { service: "externalscaler.ExternalScaler".into() }).await.map(|r| r.into_inner().status());
        if matches!(status, Ok(ServingStatus::Serving)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut h = Harness {
        server: None,
        client: llm_scaler::proto::external_scaler_client::ExternalScalerClient::new(channel),
        grpc_addr: format!("127.0.0.1:{grpc}").parse().unwrap(),
        http_addr: format!("127.0.0.1:{http}").parse().unwrap(),
    };
    let so = so("ai", "bin", &[("endpoints", endpoints(&[&pod])), ("peakFactor", "1.5".into())]);
    // 25 waiting / 5 per replica = 5 x 1.5 = 7.5 -> 8: the env default beat the file.
    h.wait_metric(&so, Duration::from_secs(10), |r| r.as_ref().is_ok_and(|v| *v == 8.0)).await.unwrap();
    // An open push stream must not hold the shutdown.
    let mut stream = h.client.stream_is_active(so.clone()).await.unwrap().into_inner();

    let pid = proc.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("push stream ends on SIGTERM");
    let _ = end;
    let status = tokio::task::spawn_blocking(move || {
        let status = proc.0.wait().unwrap();
        let mut logs = String::new();
        proc.0.stderr.take().unwrap().read_to_string(&mut logs).unwrap();
        (status, logs)
    })
    .await
    .unwrap();
    let (status, logs) = status;
    assert!(status.success(), "exit {status:?}\n{logs}");
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{l}");
    }
    assert!(logs.contains("\"message\":\"decision\"") && logs.contains("\"scaledobject\""), "decisions are logged with their span");
    assert!(logs.contains("shutting down gracefully") && logs.contains("\"message\":\"stopped\""), "{logs}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `llm-scaler status` with these arguments, run to its end off the runtime (the server under
/// test runs on it): exit success, stdout, stderr.
async fn status(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out =
        tokio::task::spawn_blocking(move || Command::new(BIN).arg("status").args(&args).env_remove("LLM_SCALER_STATUS_ADDR").output())
            .await
            .unwrap()
            .expect("run llm-scaler status");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_each_fleets_replicas_signal_cost_age_and_reason_like_kubectl_get_hpa() {
    let (a, b) = (FakePod::start("llama").await, FakePod::start("llama").await);
    a.update(|v| v.engines[0].waiting = 40);
    // Decisions stay fresh for 5 s: a slow tick on a busy machine must not turn a row stale.
    let mut h = Harness::start(Settings { stale_intervals: 50, ..settings(100) }).await;
    let priced = so(
        "ai",
        "llama",
        &[("endpoints", endpoints(&[&a, &b])), ("targetQueueDepth", "10".into()), ("gpusPerPod", "2".into()), ("gpuHourPrice", "3".into())],
    );
    let unpriced = so("team-b", "small", &[("endpoints", endpoints(&[&b])), ("targetQueueDepth", "10".into())]);
    // 40 waiting / 10 = 4 x 1.5 peak = 6.
    h.wait_metric(&priced, Duration::from_secs(10), |r| r.as_ref().is_ok_and(|v| *v == 6.0)).await.unwrap();
    h.wait_metric(&unpriced, Duration::from_secs(10), |r| r.is_ok()).await.unwrap();
    let addr = h.http_addr.to_string();

    let (ok, table, err) = status(&["--addr", &addr]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two fleets:\n{table}");
    let cells = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(cells(lines[0]), ["NAMESPACE", "SCALEDOBJECT", "REPLICAS", "SIGNAL", "COST/H", "AGE", "REASON"], "{table}");
    let llama = cells(lines[1]);
    // 2 pods x 2 GPUs x $3 = $12/h; the decision is at most a few ticks old.
    assert_eq!(&llama[..5], ["ai", "llama", "2/6", "queue_depth", "$12.00"], "{table}");
    assert!(llama[5].ends_with('s') && !llama[5].contains('m'), "age {}: {table}", llama[5]);
    assert!(lines[1].contains("scale up 2 -> 6"), "{table}");
    let small = cells(lines[2]);
    assert_eq!(&small[..2], ["team-b", "small"], "{table}");
    assert_eq!(small[4], "unknown", "no GPU count for static endpoints: unknown, not $0\n{table}");

    // One namespace, one object, JSON.
    let (ok, table, err) = status(&["--addr", &addr, "-n", "team-b"]).await;
    assert!(ok && table.lines().count() == 2 && table.contains("small") && !table.contains("llama"), "{table}{err}");
    let (ok, json, err) = status(&["--addr", &format!("http://{addr}"), "-n", "ai", "llama", "-o", "json"]).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let row = &v["scaledobjects"][0];
    assert_eq!((row["answer"]["state"].as_str(), row["answer"]["desired"].as_u64()), (Some("deciding"), Some(6)), "{json}");
    assert_eq!((row["cost"]["state"].as_str(), row["cost"]["dollars_per_hour"].as_f64()), (Some("known"), Some(12.0)), "{json}");
    assert_eq!(v["scaledobjects"].as_array().map(Vec::len), Some(1), "{json}");
    let (ok, wide, _) = status(&["--addr", &addr, "-o", "wide"]).await;
    assert!(ok && wide.lines().next().unwrap().contains("OUTCOME") && wide.contains("scale_up"), "{wide}");

    // A ScaledJob (its queue: the first pod's waiting requests, 40) gets a table of its own.
    let job = so(
        "batch",
        "embed",
        &[
            ("mode", "batch".into()),
            ("source", "prometheus".into()),
            ("metricsUrl", format!("http://{}/metrics", a.addr)),
            ("metricName", "vllm:num_requests_waiting".into()),
            ("targetSize", "10".into()),
        ],
    );
    h.wait_batch_work(&job, |r| r.as_ref().is_ok_and(|w| *w == 40.0)).await.unwrap();
    let (ok, table, err) = status(&["--addr", &addr]).await;
    assert!(ok, "{err}");
    let (_, jobs) = table.split_once("\n\n").unwrap_or_else(|| panic!("a second table:\n{table}"));
    let jobs: Vec<Vec<String>> = jobs.lines().map(&cells).collect();
    assert_eq!(jobs[0], ["NAMESPACE", "SCALEDJOB", "JOBS", "WANTED", "BOUND", "COST/H", "AGE", "REASON"], "{table}");
    // 40 / 10 per Job = 4 Jobs at the default Spot price, $1.80 per GPU-hour.
    assert_eq!(&jobs[1][..6], ["batch", "embed", "4", "4", "queue", "$7.20"], "{table}");
    let (ok, json, _) = status(&["--addr", &addr, "-n", "batch", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert!(ok && v["scaledjobs"][0]["answer"]["work"] == 40.0 && v["scaledobjects"] == serde_json::json!([]), "{json}");

    // Mistakes say what is wrong, and exit non-zero.
    let (ok, _, err) = status(&["--addr", &addr, "-n", "ai", "nope"]).await;
    assert!(!ok && err.contains("HTTP 404") && err.contains("ai/nope"), "{err}");
    let (ok, _, err) = status(&["--addr", &addr, "-n", "Not_A_Namespace"]).await;
    assert!(!ok && err.contains("--namespace \"Not_A_Namespace\": expected a namespace name"), "{err}");
    let (ok, _, err) = status(&["--addr", &addr, "llama"]).await;
    assert!(!ok && err.contains("--namespace"), "a name needs its namespace: {err}");
    let closed = free_port();
    let (ok, _, err) = status(&["--addr", &format!("127.0.0.1:{closed}"), "--timeout", "2s"]).await;
    assert!(!ok && err.contains(&format!("GET http://127.0.0.1:{closed}/api/v1/decisions")) && err.contains("llm-scaler serve"), "{err}");
    let (ok, _, err) = status(&["--addr", &format!("https://{addr}")]).await;
    assert!(!ok && err.contains("plain http://"), "{err}");
    let (ok, _, err) = status(&["--addr", &addr, "--watch", "--interval", "0s"]).await;
    assert!(!ok && err.contains("at least 100ms"), "{err}");

    // --watch into a pipe prints a table again when a row changes (not for the age alone).
    let mut watch = Proc(
        Command::new(BIN)
            .args(["status", "--addr", &addr, "-n", "ai", "--watch", "--interval", "100ms"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = watch.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let read_table = |rx: &std::sync::mpsc::Receiver<String>| -> Vec<String> {
        let mut table = Vec::new();
        while table.len() < 3 {
            table.push(rx.recv_timeout(Duration::from_secs(10)).expect("a --watch table within 10 s"));
        }
        table
    };
    let first = tokio::task::block_in_place(|| read_table(&rx));
    assert!(first[0].starts_with("# ") && first[2].contains("2/6"), "{first:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err(), "nothing changed but the age: nothing printed");
    a.update(|v| v.engines[0].waiting = 80);
    // 80 / 10 = 8 x 1.5 = 12.
    h.wait_metric(&priced, Duration::from_secs(10), |r| r.as_ref().is_ok_and(|v| *v == 12.0)).await.unwrap();
    // The next table (or one soon after, if a tick saw the queue on its way) shows it.
    let second = tokio::task::block_in_place(|| {
        loop {
            let t = read_table(&rx);
            if t[2].contains("/12") {
                break t;
            }
        }
    });
    assert!(second[0].starts_with("# ") && second[1].starts_with("NAMESPACE"), "{second:?}");
    drop(watch);
    h.stop().await;
}
