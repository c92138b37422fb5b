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
