//! The Grafana dashboard of `deploy/monitoring/dashboard.json`: its structure (a stable uid, the
//! data source, namespace and ScaledObject variables, a data source and a query on every panel,
//! every scaler series filtered to the chosen ScaledObject), and every one of its queries run
//! against a real Prometheus (Debian's 2.42, `scripts/prometheus/install.sh`) that scrapes the
//! real `llm-scaler serve` and modelled vLLM pods under load on loopback: each query, with the
//! dashboard's variables filled in as Grafana would, returns data, instant and over a range.

#![cfg(feature = "sim")] // the fake pods (tests/common) render vLLM text with llm_scaler::sim::render

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    Behavior, FakePod, Harness,
    prometheus::{PrometheusServer, free_loopback_port, prometheus_bins, repo_root},
    so, temp_dir,
};
use llm_scaler::{
    proto::{GetMetricsRequest, external_scaler_client::ExternalScalerClient},
    serve::grpc::METRIC_NAME,
    sim::render::vllm::{FinishReason, FinishedRequest},
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_llm-scaler");
const UID: &str = "llm-scaler-fleet";
const NAMESPACE: &str = "ai-inference";
const SCALEDOBJECT: &str = "llama-70b";
const MODEL: &str = "meta-llama/Llama-3.1-70B-Instruct";
const PODS: usize = 3;
/// What the test gives Grafana's interval variables (Prometheus scrapes every second here).
const RATE_INTERVAL: &str = "15s";
const INTERVAL: &str = "2s";
const RANGE: &str = "1h";

fn dashboard() -> Value {
    let path = repo_root().join("deploy/monitoring/dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

/// Every panel, rows' nested panels (a collapsed row holds its own) included.
fn all_panels(d: &Value) -> Vec<Value> {
    fn walk(list: &Value, out: &mut Vec<Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p.clone());
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// The panels that query (every one but rows).
fn query_panels(d: &Value) -> Vec<Value> {
    all_panels(d).into_iter().filter(|p| p["type"] != "row").collect()
}

/// (panel title, refId, expression) of every query of the dashboard.
fn queries(d: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in query_panels(d) {
        let title = p["title"].as_str().unwrap_or_default().to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                title.clone(),
                t["refId"].as_str().unwrap_or_default().to_string(),
                t["expr"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

fn variable<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("the dashboard has no variable {name}"))
}

/// A query variable's `label_values(selector, label)`, as (selector, label).
fn label_values_of(v: &Value) -> (String, String) {
    let q = v["query"]["query"].as_str().or_else(|| v["query"].as_str()).expect("a query variable's query");
    assert_eq!(v["definition"].as_str(), Some(q), "{}: definition and query differ", v["name"]);
    let inner = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{}: not label_values(...): {q}", v["name"]));
    let (selector, label) = inner.rsplit_once(',').unwrap_or_else(|| panic!("{}: label_values(selector, label): {q}", v["name"]));
    (selector.trim().to_string(), label.trim().to_string())
}

/// The expression as Grafana sends it, for the test's fleet.
fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, value) in [
        ("${namespace}", NAMESPACE),
        ("$namespace", NAMESPACE),
        ("${scaledobject}", SCALEDOBJECT),
        ("$scaledobject", SCALEDOBJECT),
        ("$__rate_interval", RATE_INTERVAL),
        ("$__interval", INTERVAL),
        ("$__range", RANGE),
    ] {
        e = e.replace(var, value);
    }
    e
}

/// The `llm_scaler_*` and `vllm:*` metric names an expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    for ch in expr.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == ':' {
            word.push(ch);
            continue;
        }
        if word.starts_with("llm_scaler_") || word.starts_with("vllm:") || word == "up" {
            out.insert(word.clone());
        }
        word.clear();
    }
    out
}

/// Each `llm_scaler_*{...}` selector of an expression: (name, what is between the braces).
fn scaler_selectors(expr: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("llm_scaler_") {
        let tail = &rest[i..];
        let name_len = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..name_len];
        let after = &tail[name_len..];
        let matchers = after.strip_prefix('{').and_then(|m| m.split_once('}')).map(|(m, _)| m).unwrap_or_default();
        out.push((name.to_string(), matchers.to_string()));
        rest = &tail[name_len..];
    }
    out
}

#[test]
fn the_dashboard_has_a_stable_uid_its_variables_and_a_data_source_and_query_on_every_panel() {
    let d = dashboard();
    assert_eq!(d["uid"], UID, "links and provisioning rely on the uid: never change it");
    assert_eq!(d["schemaVersion"], 39);
    assert!(d["id"].is_null(), "an exported dashboard carries no database id (import would clash)");
    assert!(d["title"].as_str().is_some_and(|t| t.contains("llm-scaler")), "{}", d["title"]);

    // The variables: a Prometheus data source to pick, then namespace and ScaledObject from the
    // scaler's own series (the ScaledObject within the chosen namespace).
    let ds = variable(&d, "datasource");
    assert_eq!((ds["type"].as_str(), ds["query"].as_str()), (Some("datasource"), Some("prometheus")), "{ds}");
    let ns = variable(&d, "namespace");
    assert_eq!(label_values_of(ns), ("llm_scaler_desired_replicas".to_string(), "namespace".to_string()));
    let so_var = variable(&d, "scaledobject");
    assert_eq!(label_values_of(so_var), ("llm_scaler_desired_replicas{namespace=\"$namespace\"}".to_string(), "scaledobject".to_string()));
    for v in [ns, so_var] {
        assert_eq!(v["type"], "query");
        assert_eq!(v["datasource"], json!({"type": "prometheus", "uid": "${datasource}"}), "{}", v["name"]);
        assert_eq!(v["includeAll"], false, "{}: one fleet at a time", v["name"]);
        assert_eq!(v["multi"], false, "{}: one fleet at a time", v["name"]);
    }

    let panels = query_panels(&d);
    assert!(panels.len() >= 15, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for p in all_panels(&d) {
        let title = p["title"].as_str().unwrap_or_default().to_string();
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert!(ids.insert(p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no numeric id"))), "{title}: id used twice");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap_or(99), g["w"].as_u64().unwrap_or(99));
        assert!(x + w <= 24 && g["h"].as_u64().is_some_and(|h| h > 0), "{title}: gridPos {g}");
    }
    for p in &panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(titles.insert(title.to_string()), "two panels are titled {title:?}");
        assert!(["timeseries", "stat", "state-timeline"].contains(&p["type"].as_str().unwrap_or_default()), "{title}: type {}", p["type"]);
        assert_eq!(p["datasource"], json!({"type": "prometheus", "uid": "${datasource}"}), "{title}: the data source is the variable");
        assert!(p["description"].as_str().is_some_and(|s| s.len() > 40), "{title}: say what it shows (the panel's description)");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().unwrap_or_default()), "{title}: refId {} used twice", t["refId"]);
            assert_eq!(t["datasource"], p["datasource"], "{title} {}: the query's data source", t["refId"]);
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title} {}: empty expression", t["refId"]);
            assert!(!substitute(expr).contains('$'), "{title} {}: a variable the dashboard does not define: {expr}", t["refId"]);
            // Every series of the scaler is the chosen ScaledObject's, except the two that are
            // not per ScaledObject (KEDA's calls, the count of ScaledObjects).
            for (name, matchers) in scaler_selectors(expr) {
                if ["llm_scaler_rpc_duration_seconds_bucket", "llm_scaler_scaledobjects"].contains(&name.as_str()) {
                    continue;
                }
                assert!(
                    matchers.contains("namespace=\"$namespace\"") && matchers.contains("scaledobject=\"$scaledobject\""),
                    "{title} {}: {name} is not filtered to the chosen ScaledObject: {expr}",
                    t["refId"]
                );
            }
        }
    }

    // What the issue asks the dashboard to show, by the series that show it.
    let read: BTreeSet<String> = queries(&d).iter().flat_map(|(_, _, e)| metric_names(e)).collect();
    for name in [
        "llm_scaler_desired_replicas",
        "llm_scaler_current_replicas",
        "llm_scaler_demand_replicas",
        "llm_scaler_signal_demand_replicas",
        "llm_scaler_signal_dominant",
        "llm_scaler_signal_value",
        "llm_scaler_slo_seconds",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:request_time_per_output_token_seconds_bucket",
        "vllm:num_requests_waiting",
        "llm_scaler_cost_dollars_per_hour",
        "llm_scaler_cost_dollars_total",
        "llm_scaler_cost_budget_dollars_per_hour",
        "llm_scaler_cost_per_1k_tokens_dollars",
        "llm_scaler_tokens_served_total",
        "llm_scaler_capacity_used_ratio",
        "llm_scaler_gpus_provisioned",
        "llm_scaler_pod_scrape_errors_total",
        "llm_scaler_unavailable_ticks_total",
        "up",
    ] {
        assert!(read.contains(name), "no panel reads {name}");
    }
    // vLLM's series are the ScaledObject's pods only: every vLLM query joins on the pods the
    // scaler scrapes for it.
    for (title, r, e) in queries(&d) {
        if e.contains("vllm:") {
            assert!(e.contains("on (pod) group_left () group by (pod) (llm_scaler_pod_scrape_duration_seconds{"), "{title} {r}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Every query against a real Prometheus scraping the real scaler and the fake fleet
// ---------------------------------------------------------------------------------------------

/// The scaler's process, killed on drop.
struct Scaler {
    child: Child,
    log: PathBuf,
}

impl Drop for Scaler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Scaler {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A background task, aborted on drop.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Feeds the pods as a loaded fleet does, every 250 ms: a queue that moves, requests finishing
/// (tokens flow, the latency histograms fill), KV-cache usage; and calls `GetMetrics` every
/// second as KEDA's HPA does.
fn load(
    pods: Arc<Vec<FakePod>>,
    mut client: ExternalScalerClient<tonic::transport::Channel>,
    so: llm_scaler::proto::ScaledObjectRef,
) -> Task {
    Task(tokio::spawn(async move {
        for k in 0u64.. {
            for (i, p) in pods.iter().enumerate() {
                let i = i as u64;
                p.update(|v| {
                    let e = &mut v.engines[0];
                    e.waiting = 2 + (k + 3 * i) % 9;
                    e.running = 24 + (k + i) % 8;
                    e.kv_cache_usage = 0.35 + 0.05 * ((k + i) % 8) as f64;
                    for r in 0..3 {
                        e.finish_request(&FinishedRequest {
                            prompt_tokens: 700 + 10 * r,
                            generation_tokens: 120,
                            queue_s: 0.05 * ((k + r + i) % 10) as f64,
                            prefill_s: 0.25,
                            decode_s: 119.0 * (0.025 + 0.002 * ((k + r) % 5) as f64),
                            reason: if r == 0 && k % 10 == 0 { FinishReason::Length } else { FinishReason::Stop },
                        });
                    }
                });
            }
            if k % 4 == 0 {
                let req = GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: METRIC_NAME.into() };
                let _ = client.get_metrics(req).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }))
}

/// Whether a query API answer holds at least one finite sample.
fn has_finite_sample(data: &Value) -> bool {
    let finite = |pair: &Value| pair[1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(f64::is_finite);
    match data["resultType"].as_str() {
        Some("vector") => data["result"].as_array().into_iter().flatten().any(|s| finite(&s["value"])),
        Some("matrix") => data["result"].as_array().into_iter().flatten().any(|s| s["values"].as_array().into_iter().flatten().any(finite)),
        Some("scalar") => finite(&data["result"]),
        _ => false,
    }
}

fn now_unix() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus_scraping_the_real_scaler_and_a_loaded_fleet() {
    let started = Instant::now();
    prometheus_bins();
    let dir = temp_dir("dashboard");

    // The fleet: PODS modelled vLLM pods, answering 503 at first so the scaler records failed
    // scrapes and ticks without a decision (the health panels have real series to show).
    let mut pods = Vec::new();
    for _ in 0..PODS {
        let p = FakePod::start(MODEL).await;
        p.behave(Behavior::Status(503));
        pods.push(p);
    }
    let pods = Arc::new(pods);
    let names: Vec<String> = (0..PODS).map(|i| format!("vllm-{i}")).collect();
    // And a pod of another fleet in the same namespace, which Prometheus scrapes too: the
    // dashboard must leave it out (its vLLM panels show the ScaledObject's pods only).
    let other = FakePod::start("another-model").await;
    other.update(|v| v.engines[0].kv_cache_usage = 0.99);
    let endpoints = pods.iter().zip(&names).map(|(p, n)| p.endpoint(n)).collect::<Vec<_>>().join(",");

    // The real binary, as the Deployment runs it but on loopback, without Kubernetes.
    let (grpc, http) = (free_loopback_port(), free_loopback_port());
    let log = dir.path().join("scaler.log");
    let child = Command::new(BIN)
        .args(["serve", "--no-kube", "--allow-static-endpoints", "--scrape-interval", "500ms", "--log-format", "json"])
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http}")])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("scaler log"))
        .spawn()
        .expect("start llm-scaler serve");
    let scaler = Scaler { child, log };
    let deadline = Instant::now() + Duration::from_secs(20);
    let channel = loop {
        match tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{grpc}")).expect("uri").connect().await {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "the scaler does not listen on {grpc}: {e}\n{}", scaler.log()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut h = Harness {
        server: None,
        client: ExternalScalerClient::new(channel),
        grpc_addr: format!("127.0.0.1:{grpc}").parse().expect("addr"),
        http_addr: format!("127.0.0.1:{http}").parse().expect("addr"),
    };

    // One ScaledObject, collected because KEDA asks for it: static endpoints (so the GPUs per
    // pod are given), an SLO on both latencies, a budget.
    let so = so(
        NAMESPACE,
        SCALEDOBJECT,
        &[
            ("endpoints", endpoints),
            ("gpusPerPod", "2".into()),
            ("gpuHourPrice", "4".into()),
            ("budgetPerHour", "20".into()),
            ("sloTtft", "2s".into()),
            ("sloTpot", "100ms".into()),
            ("latencyWindow", "10s".into()),
            ("minReplicas", "1".into()),
            ("maxReplicas", "10".into()),
        ],
    );
    let first = h.metric(&so).await;
    assert!(first.is_err(), "no pod answers yet, so no number: {first:?}");
    common::wait_body(h.http_addr, "/metrics", Duration::from_secs(20), |body| {
        body.contains("llm_scaler_unavailable_ticks_total{") && body.contains("llm_scaler_pod_scrape_errors_total{")
    })
    .await
    .unwrap_or_else(|body| panic!("no failed scrape or tick recorded:\n{body}\n{}", scaler.log()));
    for p in pods.iter() {
        p.behave(Behavior::Vllm);
    }
    let _load = load(pods.clone(), h.client.clone(), so.clone());
    h.wait_metric(&so, Duration::from_secs(20), |r| r.is_ok()).await.expect("a decision once the pods answer");

    // Prometheus scrapes the scaler (honor_labels, as deploy/monitoring's configs do) and each
    // vLLM pod with the labels Kubernetes discovery gives it (namespace, pod), every second.
    let vllm_targets: Vec<Value> = pods
        .iter()
        .zip(&names)
        .map(|(p, n)| (p.addr, n.as_str()))
        .chain([(other.addr, "other-0")])
        .map(|(addr, n)| json!({"targets": [addr.to_string()], "labels": {"namespace": NAMESPACE, "pod": n}}))
        .collect();
    let config = json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "llm-scaler", "honor_labels": true, "static_configs": [{"targets": [h.http_addr.to_string()], "labels": {"namespace": "llm-scaler", "pod": "llm-scaler-6d5f8-x2k4q"}}]},
            {"job_name": "vllm", "static_configs": vllm_targets},
        ],
    });
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, serde_json::to_string_pretty(&config).expect("json")).expect("write prometheus.yml");
    let prom = PrometheusServer::start(&cfg, dir.path());
    // Every target scraped: the pods and the scaler.
    prom.wait_query("sum(up)", |r| r.first().and_then(|x| x["value"][1].as_str()?.parse::<usize>().ok()) == Some(PODS + 2)).await;
    let scraping_since = now_unix();

    // The variables, as Grafana fills them: label_values(...) through the labels API.
    let d = dashboard();
    for (var, want) in [("namespace", NAMESPACE), ("scaledobject", SCALEDOBJECT)] {
        let (selector, label) = label_values_of(variable(&d, var));
        let values = prom.label_values(&label, &substitute(&selector)).await.unwrap_or_else(|e| panic!("variable {var}: {e}"));
        assert!(values.iter().any(|v| v == want), "variable {var} ({selector}): {values:?} lacks {want}");
    }

    // Every panel's every query: instant, and over the last 20 s, each with a finite sample.
    // Series need a few scrapes (rates want two samples), so a query is retried until it
    // answers or 60 s have passed; the failure names every panel and query still empty.
    let all = queries(&d);
    let mut pending: BTreeMap<usize, String> = (0..all.len()).map(|i| (i, "not run yet".to_string())).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Rates over $__rate_interval read true once that much has been scraped.
    tokio::time::sleep(Duration::from_secs(16)).await;
    while !pending.is_empty() && Instant::now() < deadline {
        let keys: Vec<usize> = pending.keys().copied().collect();
        for i in keys {
            let expr = substitute(&all[i].2);
            let end = now_unix();
            let instant = prom.query(&expr).await;
            let range = prom.query_range(&expr, (end - 20.0).max(scraping_since), end, 2.0).await;
            match (&instant, &range) {
                (Ok(a), Ok(b)) if has_finite_sample(a) && has_finite_sample(b) => {
                    pending.remove(&i);
                }
                _ => {
                    pending.insert(i, format!("instant: {instant:?}; range: {range:?}"));
                }
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let failures: Vec<String> = pending
        .iter()
        .map(|(i, last)| {
            let (title, r, expr) = &all[*i];
            format!("panel {title:?} query {r}: {expr}\n  as sent: {}\n  last answer: {last}", substitute(expr))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} dashboard queries returned no data after {:?}:\n{}\n\nthe scaler's /metrics:\n{}",
        failures.len(),
        all.len(),
        started.elapsed(),
        failures.join("\n"),
        common::http_get(h.http_addr, "/metrics").await
    );
    // The check is not vacuous: a misspelt name, or another ScaledObject, returns nothing.
    for broken in [
        "max(llm_scaler_desired_replica{namespace=\"$namespace\", scaledobject=\"$scaledobject\"})",
        "max(llm_scaler_desired_replicas{namespace=\"$namespace\", scaledobject=\"another\"})",
    ] {
        let answer = prom.query(&substitute(broken)).await.unwrap_or_else(|e| panic!("{broken}: {e}"));
        assert!(!has_finite_sample(&answer), "{broken} returned data: {answer}");
    }

    // And what some panels show is the test fleet's truth: its pods only (not the other
    // fleet's), its size, its SLO, its GPUs and their price.
    let show = |title: &str, r: &str| {
        let (_, _, expr) = all.iter().find(|(t, q, _)| t == title && q == r).unwrap_or_else(|| panic!("no panel {title:?} query {r}"));
        substitute(expr)
    };
    let pods_of = |data: &Value| -> BTreeSet<String> {
        data["result"].as_array().into_iter().flatten().filter_map(|s| s["metric"]["pod"].as_str().map(str::to_string)).collect()
    };
    let fleet: BTreeSet<String> = names.iter().cloned().collect();
    for (title, r) in [("KV-cache usage per pod", "A"), ("Targets up", "A")] {
        let data = prom.query(&show(title, r)).await.unwrap_or_else(|e| panic!("{title}: {e}"));
        assert_eq!(pods_of(&data), fleet, "{title} {r}: the ScaledObject's pods, and only them: {data}");
    }
    for (title, r, want) in [
        ("Current replicas", "A", PODS as f64),
        ("Time to first token vs SLO", "D", 2.0),
        ("Time per output token vs SLO", "D", 0.1),
        ("GPUs and price", "A", 2.0 * PODS as f64),
        ("GPUs and price", "B", 4.0),
        ("Cost per hour", "A", 2.0 * PODS as f64 * 4.0),
        ("Cost per hour vs budget", "C", 20.0),
    ] {
        let data = prom.query(&show(title, r)).await.unwrap_or_else(|e| panic!("{title}: {e}"));
        let v: Option<f64> = data["result"][0]["value"][1].as_str().and_then(|v| v.parse().ok());
        assert!(v.is_some_and(|v| (v - want).abs() < 1e-9), "{title} {r} shows {v:?}, not {want}: {data}");
    }
    eprintln!("{} dashboard queries answered with data; {:?} in all", all.len(), started.elapsed());
    drop(prom);
    drop(scaler);
}
