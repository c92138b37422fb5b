//! The monitoring kit of `deploy/monitoring/` under the real Prometheus 2.42 (Debian's package,
//! installed by `scripts/prometheus/install.sh`): the alert rules pass `promtool check rules`
//! in both forms (plain file and PrometheusRule), their unit tests pass `promtool test rules`,
//! a broken or loosened rule file fails, and the plain-Prometheus scrape config scrapes the
//! real scaler's `/metrics` with the labels the rules expect.

#![cfg(feature = "sim")] // tests/common renders vLLM text with llm_scaler::sim::render

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{
    FakePod, Harness, endpoints,
    prometheus::{
        PrometheusServer, prometheus_bins, promtool_check_config, promtool_check_metrics, promtool_check_rules, promtool_test_rules,
        repo_root,
    },
    settings, so, temp_dir, wait_body,
};
use serde_json::Value;

fn monitoring(file: &str) -> PathBuf {
    repo_root().join("deploy/monitoring").join(file)
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()))
}

/// The `promtool test rules` files, sorted.
fn unit_test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(monitoring("tests"))
        .expect("deploy/monitoring/tests")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no unit tests in deploy/monitoring/tests");
    files
}

/// Every alerting rule of the plain file: name -> rule.
fn alerts() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for g in yaml(&monitoring("rules.yaml"))["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().expect("every rule is an alert").to_string();
            assert!(out.insert(name.clone(), r.clone()).is_none(), "alert {name} defined twice");
        }
    }
    out
}

/// The PrometheusRule's `spec` as a plain rules file (JSON is YAML), for promtool.
fn prometheusrule_as_plain_file(dir: &Path) -> PathBuf {
    let pr = yaml(&monitoring("prometheusrule.yaml"));
    let path = dir.join("prometheusrule-spec.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(&pr["spec"]).expect("json")).expect("write spec");
    path
}

#[test]
fn the_install_script_provides_promtool_and_prometheus_2_and_ignores_a_stale_promtool_on_path() {
    let bins = prometheus_bins();
    for bin in [&bins.promtool, &bins.prometheus] {
        let out = Command::new(bin).arg("--version").env_clear().output().expect("run --version");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains(", version 2."), "{}: {text}", bin.display());
    }
    // A second run is a no-op that prints the same paths, even with a caller whose PATH starts
    // with an old promtool 1.x and whose OUT_DIR points nowhere.
    let fake = temp_dir("fake-promtool");
    let shim = fake.path().join("promtool");
    std::fs::write(&shim, "#!/bin/sh\necho 'promtool, version 1.8.2 (branch: HEAD)'\n").expect("shim");
    Command::new("chmod").arg("+x").arg(&shim).status().expect("chmod");
    let started = Instant::now();
    let out = Command::new("/bin/bash")
        .arg(repo_root().join("scripts/prometheus/install.sh"))
        .env("PATH", format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", fake.path().display()))
        .env("OUT_DIR", "/nonexistent/out")
        .output()
        .expect("run install.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(printed, format!("promtool={}\nprometheus={}\n", bins.promtool.display(), bins.prometheus.display()));
    assert!(!printed.contains(&fake.path().display().to_string()), "the 1.x promtool was taken: {printed}");
    assert!(started.elapsed() < Duration::from_secs(10), "an installed Prometheus makes the script a no-op");
}

/// The metric names the rules' expressions read (`vllm:*`, `DCGM_FI_*`, `llm_scaler_*`).
fn rule_metric_names() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in alerts().values() {
        let expr = r["expr"].as_str().expect("expr");
        let mut word = String::new();
        for ch in expr.chars().chain(std::iter::once(' ')) {
            if ch.is_ascii_alphanumeric() || ch == '_' || ch == ':' {
                word.push(ch);
                continue;
            }
            if ["vllm:", "DCGM_FI_", "llm_scaler_"].iter().any(|p| word.starts_with(p)) {
                out.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    out
}

/// Names the rules read that the scaler does not export yet (the cost metrics being added);
/// until it does, LlmScalerCostOverBudget cannot fire. And one exported only while there is
/// a forecast (a day of history), whose name src/run/telemetry.rs's own test pins.
const NOT_IN_A_FRESH_SCALERS_BODY: &[&str] = &["llm_scaler_forecast_smape"];

#[test]
fn every_vllm_and_dcgm_name_the_rules_read_is_in_the_recorded_exporter_bodies() {
    let mut fixtures = String::new();
    for e in std::fs::read_dir(repo_root().join("tests/fixtures")).expect("fixtures") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "prom") {
            fixtures.push_str(&std::fs::read_to_string(&p).expect("fixture"));
        }
    }
    let names = rule_metric_names();
    assert!(names.iter().any(|n| n.starts_with("vllm:")) && names.iter().any(|n| n.starts_with("DCGM_FI_")), "{names:?}");
    for n in names.iter().filter(|n| !n.starts_with("llm_scaler_")) {
        // A sample line starts with the name followed by `{` or a space.
        let sampled = fixtures.lines().any(|l| l.strip_prefix(n.as_str()).is_some_and(|rest| rest.starts_with(['{', ' '])));
        assert!(sampled, "{n}: no sample of it in tests/fixtures/*.prom (the exporters' exact names: docs/metrics.md)");
    }
}

#[test]
fn both_rule_files_pass_promtool_check_rules() {
    let dir = temp_dir("promrule");
    let spec = prometheusrule_as_plain_file(dir.path());
    let n = alerts().len();
    for f in [monitoring("rules.yaml"), spec] {
        let out = promtool_check_rules(&[&f]).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{}: {out}", f.display());
    }
}

#[test]
fn the_prometheusrule_holds_exactly_the_groups_of_the_plain_rules_file() {
    let plain = yaml(&monitoring("rules.yaml"));
    let pr = yaml(&monitoring("prometheusrule.yaml"));
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pr["kind"], "PrometheusRule");
    assert_eq!((pr["metadata"]["name"].as_str(), pr["metadata"]["namespace"].as_str()), (Some("llm-scaler"), Some("llm-scaler")));
    let keys: Vec<&String> = pr["spec"].as_object().expect("spec").keys().collect();
    assert_eq!(keys, ["groups"], "the spec holds the groups only");
    assert_eq!(
        pr["spec"]["groups"], plain["groups"],
        "deploy/monitoring/prometheusrule.yaml differs from rules.yaml: run scripts/prometheus/gen-prometheusrule.sh"
    );
}

#[test]
fn every_alert_waits_has_a_severity_says_what_to_do_and_has_firing_and_quiet_unit_tests() {
    let alerts = alerts();
    let want: BTreeSet<&str> = [
        "LlmFleetGpuUtilizationHigh",
        "LlmFleetTtftP99High",
        "LlmFleetQueueGrowing",
        "LlmScalerCostOverBudget",
        "LlmScalerDecisionsUnavailable",
        "LlmScalerDecisionsStale",
        "LlmScalerPinnedAtMaxReplicas",
        "LlmScalerScrapeErrorsHigh",
        "LlmScalerForecastErrorHigh",
        "LlmScalerAbsent",
    ]
    .into();
    assert_eq!(alerts.keys().map(String::as_str).collect::<BTreeSet<_>>(), want);
    for (name, r) in &alerts {
        assert!(r["for"].as_str().is_some_and(|f| !f.is_empty() && f != "0s"), "{name}: no `for:`, one bad evaluation would page");
        let sev = r["labels"]["severity"].as_str().unwrap_or_default();
        assert!(["critical", "warning", "info"].contains(&sev), "{name}: severity {sev:?}");
        for a in ["summary", "description"] {
            assert!(r["annotations"][a].as_str().is_some_and(|s| s.len() > 20), "{name}: annotation {a}");
        }
        // The scaler's own alerts name the ScaledObject.
        if name.starts_with("LlmScaler") && name != "LlmScalerAbsent" {
            assert!(r["annotations"]["summary"].as_str().unwrap_or_default().contains("$labels.scaledobject"), "{name}");
        }
    }
    // Which alerts the unit tests expect to fire (with labels) and to stay quiet.
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for f in unit_test_files() {
        let t = yaml(&f);
        assert_eq!(t["rule_files"], serde_json::json!(["../rules.yaml"]), "{}", f.display());
        for group in t["tests"].as_array().expect("tests") {
            assert!(group["name"].as_str().is_some_and(|n| !n.is_empty()), "{}: every case has a name", f.display());
            for case in group["alert_rule_test"].as_array().expect("alert_rule_test") {
                let name = case["alertname"].as_str().expect("alertname").to_string();
                match case["exp_alerts"].as_array().map(Vec::as_slice) {
                    Some([]) | None => quiet.insert(name),
                    Some(exp) => {
                        for e in exp {
                            assert_eq!(e["exp_labels"]["severity"], alerts[&name]["labels"]["severity"], "{name}");
                            assert!(e["exp_annotations"]["description"].is_string(), "{name}: annotations are checked too");
                        }
                        fires.insert(name)
                    }
                };
            }
        }
    }
    let all: BTreeSet<String> = alerts.keys().cloned().collect();
    assert_eq!(fires, all, "every alert needs a unit test in which it fires");
    assert_eq!(quiet, all, "every alert needs a unit test in which it must not fire");
}

#[test]
fn the_alert_unit_tests_pass_under_promtool_test_rules() {
    let files = unit_test_files();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = promtool_test_rules(&refs).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.matches("SUCCESS").count(), files.len(), "{out}");
}

#[test]
fn a_broken_rule_file_fails_the_check() {
    let dir = temp_dir("badrules");
    let cases = [
        ("unclosed parenthesis", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n        for: 5m\n"),
        ("unknown function", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rates(x[5m]) > 1\n"),
        (
            "broken template",
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 1\n        annotations:\n          summary: '{{ $labels.x '\n",
        ),
        ("unknown field", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x > 1\n        fore: 5m\n"),
        (
            "duplicate group",
            "groups:\n  - name: g\n    rules: [{alert: A, expr: x > 1}]\n  - name: g\n    rules: [{alert: B, expr: x > 2}]\n",
        ),
    ];
    for (what, text) in cases {
        let f = dir.path().join("bad.yaml");
        std::fs::write(&f, text).expect("write");
        assert!(promtool_check_rules(&[&f]).is_err(), "{what}: promtool check rules accepted\n{text}");
    }
    // And the real file, with one expression broken, fails too.
    let text = std::fs::read_to_string(monitoring("rules.yaml")).expect("rules.yaml");
    let broken = text.replacen("> 0.95", "> > 0.95", 1);
    assert_ne!(broken, text);
    let f = dir.path().join("rules.yaml");
    std::fs::write(&f, broken).expect("write");
    let e = promtool_check_rules(&[&f]).expect_err("a broken rules.yaml passes");
    assert!(e.contains("LlmFleetGpuUtilizationHigh"), "promtool names the broken alert: {e}");
}

/// Copies rules.yaml with one edit, and the unit tests beside it, and runs `promtool test rules`.
fn unit_tests_with(from: &str, to: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(monitoring("rules.yaml")).expect("rules.yaml");
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur exactly once in rules.yaml");
    let dir = temp_dir("mutant");
    std::fs::create_dir_all(dir.path().join("tests")).expect("tests dir");
    std::fs::write(dir.path().join("rules.yaml"), text.replacen(from, to, 1)).expect("write");
    let mut copies = Vec::new();
    for f in unit_test_files() {
        let to = dir.path().join("tests").join(f.file_name().expect("name"));
        std::fs::copy(&f, &to).expect("copy");
        copies.push(to);
    }
    promtool_check_rules(&[&dir.path().join("rules.yaml")]).unwrap_or_else(|e| panic!("the edit {from:?} -> {to:?} is not valid: {e}"));
    let refs: Vec<&Path> = copies.iter().map(PathBuf::as_path).collect();
    promtool_test_rules(&refs)
}

#[test]
fn a_loosened_or_tightened_threshold_or_wait_fails_the_unit_tests() {
    // Each edit moves one alert's threshold or `for:`; its unit tests must notice.
    let edits = [
        ("(rate(vllm:time_to_first_token_seconds_bucket[5m]))) > 2", "(rate(vllm:time_to_first_token_seconds_bucket[5m]))) > 5"),
        ("(rate(vllm:time_to_first_token_seconds_count[5m])) > 0.1", "(rate(vllm:time_to_first_token_seconds_count[5m])) > 0"),
        (
            "        for: 10m\n        labels:\n          severity: warning\n        annotations:\n          summary: \"p99",
            "        for: 5m\n        labels:\n          severity: warning\n        annotations:\n          summary: \"p99",
        ),
        ("(deriv(vllm:num_requests_waiting[10m])) * 60 > 1", "(deriv(vllm:num_requests_waiting[10m])) * 60 > -1"),
        ("(vllm:num_requests_waiting) > 10", "(vllm:num_requests_waiting) > 1"),
        ("  ) > 0.95", "  ) > 0.9"),
        ("DCGM_FI_DEV_GPU_UTIL{pod!=\"\"} / 100", "DCGM_FI_DEV_GPU_UTIL / 100"),
        ("          > 0.5\n", "          > 0.05\n"),
        (
            "sum without (outcome) (increase(llm_scaler_decisions_total[5m])) > 0",
            "sum without (outcome) (increase(llm_scaler_decisions_total[5m])) > 100",
        ),
        ("llm_scaler_demand_replicas > llm_scaler_desired_replicas", "llm_scaler_demand_replicas > llm_scaler_desired_replicas - 1"),
        ("sum without (pod) (rate(llm_scaler_scrape_duration_seconds_count[5m]))", "rate(llm_scaler_scrape_duration_seconds_count[5m])"),
        ("          > 0.1\n        for: 10m", "          > 0.02\n        for: 10m"),
        ("llm_scaler_forecast_smape > 0.3", "llm_scaler_forecast_smape > 0.5"),
        (
            "max by (namespace, scaledobject) (rate(llm_scaler_cost_dollars_total[1h]))",
            "sum by (namespace, scaledobject) (rate(llm_scaler_cost_dollars_total[1h]))",
        ),
        ("absent(llm_scaler_scaledobjects)", "absent(llm_scaler_scaledobjects{job=\"x\"})"),
    ];
    for (from, to) in edits {
        assert!(unit_tests_with(from, to).is_err(), "the unit tests pass with {from:?} changed to {to:?}");
    }
    // The copy itself is sound: unchanged, the same tests pass.
    unit_tests_with("absent(llm_scaler_scaledobjects)", "absent(llm_scaler_scaledobjects)").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn promtool_check_metrics_accepts_a_clean_body_and_refuses_a_bad_one() {
    promtool_check_metrics("# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"b\"} 1\n").unwrap_or_else(|e| panic!("{e}"));
    let e = promtool_check_metrics("# TYPE x counter\nx 1\n").expect_err("a counter without _total or HELP");
    assert!(e.contains("_total") && e.contains("no help text"), "{e}");
    assert!(promtool_check_metrics("x{a=\"b\" 1\n").is_err(), "unparsable body");
}

// ---------------------------------------------------------------------------------------------
// The plain-Prometheus scrape config against a real Prometheus and the real scaler
// ---------------------------------------------------------------------------------------------

/// The scrape job of prometheus-scrape.yaml with its Kubernetes SD block replaced by a file SD
/// that carries the same `__meta_kubernetes_*` labels: Debian's Prometheus is built without
/// Kubernetes service discovery, and there is no cluster here. Returns the config's text.
fn scrape_config_with_file_sd(targets: &Path, rules: &Path, interval: &str) -> String {
    let mut c = yaml(&monitoring("prometheus-scrape.yaml"));
    let job = &mut c["scrape_configs"][0];
    let sd = job.as_object_mut().expect("job").remove("kubernetes_sd_configs").expect("the job discovers pods");
    assert_eq!(sd, serde_json::json!([{"role": "pod", "namespaces": {"names": ["llm-scaler"]}}]));
    job["file_sd_configs"] = serde_json::json!([{"files": [targets], "refresh_interval": "1s"}]);
    job["scrape_interval"] = interval.into();
    c["global"]["evaluation_interval"] = interval.into();
    c["rule_files"] = serde_json::json!([rules]);
    serde_json::to_string_pretty(&c).expect("json")
}

#[test]
fn the_plain_scrape_config_passes_promtool_check_config_with_its_rules() {
    let dir = temp_dir("promcfg");
    let targets = dir.path().join("targets.json");
    std::fs::write(&targets, "[]").expect("targets");
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, scrape_config_with_file_sd(&targets, &monitoring("rules.yaml"), "15s")).expect("cfg");
    let out = promtool_check_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains(&format!("SUCCESS: {} rules found", alerts().len())), "{out}");
    // The file as shipped names its rules relative to itself.
    assert_eq!(yaml(&monitoring("prometheus-scrape.yaml"))["rule_files"], serde_json::json!(["rules.yaml"]));
}

#[tokio::test]
async fn a_real_prometheus_with_the_plain_scrape_config_scrapes_the_real_scaler_with_the_labels_the_rules_use() {
    // The scaler with two ScaledObjects: one healthy, one whose only pod refuses connections
    // (its scrapes fail: llm_scaler_pod_scrape_errors_total names that vLLM pod).
    let pod = FakePod::start("llama").await;
    let mut h = Harness::start(settings(100)).await;
    let good =
        so("ai-inference", "llama", &[("endpoints", endpoints(&[&pod])), ("gpusPerPod", "2".into()), ("budgetPerHour", "100".into())]);
    h.wait_metric(&good, Duration::from_secs(10), |r| r.is_ok()).await.expect("a decision");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let bad = so("ai-inference", "broken", &[("endpoints", format!("vllm-gone={dead}"))]);
    let _ = h.metric(&bad).await;

    // The first GetMetrics only starts the broken target's collection; its failed scrape is
    // counted a tick later (on a loaded 2-core machine, well after this call returns). Wait for
    // the count, so the body below is the one a steady scaler serves.
    let body = wait_body(h.http_addr, "/metrics", Duration::from_secs(20), |body| {
        body.lines().any(|l| l.starts_with("llm_scaler_pod_scrape_errors_total{") && l.contains("scaledobject=\"broken\""))
    })
    .await
    .unwrap_or_else(|body| panic!("the broken pod's failed scrapes were never counted:\n{body}"));

    // The body Prometheus will scrape, as it is, must be the exposition promtool parses.
    assert!(body.contains("llm_scaler_desired_replicas{namespace=\"ai-inference\",scaledobject=\"llama\"}"), "{body}");
    // Without an OpenMetrics Accept header the scaler answers the classic text, which
    // `promtool check metrics` (2.42) reads and lints clean.
    promtool_check_metrics(&body).unwrap_or_else(|e| panic!("promtool check metrics on the live /metrics: {e}\n{body}"));
    // Every scaler metric the rules read is one this scaler serves (under that exact name).
    for n in rule_metric_names().iter().filter(|n| n.starts_with("llm_scaler_") && !NOT_IN_A_FRESH_SCALERS_BODY.contains(&n.as_str())) {
        assert!(
            body.lines().any(|l| l.starts_with(&format!("{n}{{")) || l.starts_with(&format!("{n} "))),
            "the scaler serves no {n}:\n{body}"
        );
    }

    // File SD targets carrying what Kubernetes SD would: the pod's annotations from
    // deploy/deployment.yaml (the port annotation pointing at this test's HTTP port), its
    // namespace and name. A second container port (grpc) and a pod without the annotation
    // must not become targets.
    let dep = deployment_annotations();
    let meta = |port_name: &str, scrape: &str, pod: &str| {
        serde_json::json!({
            "targets": [format!("127.0.0.1:{}", if port_name == "http" { 8080 } else { 9090 })],
            "labels": {
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape": scrape,
                "__meta_kubernetes_pod_annotation_prometheus_io_port": h.http_addr.port().to_string(),
                "__meta_kubernetes_pod_annotation_prometheus_io_path": dep["prometheus.io/path"],
                "__meta_kubernetes_pod_container_port_name": port_name,
                "__meta_kubernetes_namespace": "llm-scaler",
                "__meta_kubernetes_pod_name": pod,
            }
        })
    };
    assert_eq!(dep["prometheus.io/scrape"], "true");
    let targets_json = serde_json::json!([
        meta("http", "true", "llm-scaler-6d5f8-x2k4q"),
        meta("grpc", "true", "llm-scaler-6d5f8-x2k4q"),
        meta("http", "false", "something-else"),
    ]);
    let dir = temp_dir("prometheus");
    let targets = dir.path().join("targets.json");
    std::fs::write(&targets, targets_json.to_string()).expect("targets");
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, scrape_config_with_file_sd(&targets, &monitoring("rules.yaml"), "1s")).expect("cfg");
    let prom = PrometheusServer::start(&cfg, dir.path());

    // Exactly one target, up, on the port the annotation names.
    let up = prom.wait_query("up{job=\"llm-scaler\"}", |r| r.len() == 1 && r[0]["value"][1] == "1").await;
    let target = &up[0]["metric"];
    assert_eq!(target["instance"], format!("127.0.0.1:{}", h.http_addr.port()));
    assert_eq!((target["namespace"].as_str(), target["pod"].as_str()), (Some("llm-scaler"), Some("llm-scaler-6d5f8-x2k4q")));

    // honor_labels: the scaler's `namespace` (the ScaledObject's) wins over the target's, and
    // series without a `pod` of their own get the scaler's pod.
    let d = prom.wait_query("llm_scaler_desired_replicas{scaledobject=\"llama\"}", |r| r.len() == 1).await;
    assert_eq!(d[0]["metric"]["namespace"], "ai-inference", "{d:?}");
    assert_eq!(d[0]["metric"]["pod"], "llm-scaler-6d5f8-x2k4q");
    assert!(d[0]["metric"].get("exported_namespace").is_none(), "{d:?}");
    // The scrape-error counter keeps the vLLM pod it names, and the rule's join of errors and
    // scrape counts matches on the remaining labels (a share between 0 and 1).
    let e = prom.wait_query("llm_scaler_pod_scrape_errors_total{scaledobject=\"broken\"}", |r| !r.is_empty()).await;
    assert_eq!(e[0]["metric"]["pod"], "vllm-gone", "{e:?}");
    let share = "sum without (pod, kind) (rate(llm_scaler_pod_scrape_errors_total[1m])) / sum without (pod) (rate(llm_scaler_scrape_duration_seconds_count[1m]))";
    let s = prom.wait_query(share, |r| r.iter().any(|x| x["metric"]["scaledobject"] == "broken")).await;
    let broken = s.iter().find(|x| x["metric"]["scaledobject"] == "broken").expect("broken");
    let v: f64 = broken["value"][1].as_str().and_then(|v| v.parse().ok()).expect("a number");
    assert!((v - 1.0).abs() < 1e-6, "every scrape of the broken ScaledObject fails: {s:?}");

    // The rules are loaded and evaluate without errors; the scaler is not absent.
    let rules = prom.api("/api/v1/rules").await.expect("rules api");
    let loaded: Vec<&Value> =
        rules["groups"].as_array().expect("groups").iter().flat_map(|g| g["rules"].as_array().expect("rules")).collect();
    assert_eq!(loaded.len(), alerts().len(), "{rules}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rules = prom.api("/api/v1/rules").await.expect("rules api");
    for r in rules["groups"].as_array().expect("groups").iter().flat_map(|g| g["rules"].as_array().expect("rules")) {
        assert_eq!(r["health"], "ok", "{}: {}", r["name"], r["lastError"]);
    }
    prom.wait_query("ALERTS{alertname=\"LlmScalerAbsent\"}", |r| r.is_empty()).await;
    // The cost the over-budget rule reads: one pod x 2 GPUs x $4 = $8/h, under the $100 budget.
    let cost = "max by (namespace, scaledobject) (rate(llm_scaler_cost_dollars_total[10s])) * 3600";
    // (A series younger than the window reads low: wait until the window is full of it.)
    let near_8 = |r: &[Value]| {
        r.iter().any(|x| {
            x["metric"]["scaledobject"] == "llama"
                && x["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| (v - 8.0).abs() < 0.8)
        })
    };
    prom.wait_query(cost, near_8).await;
    let b = prom.wait_query("llm_scaler_cost_budget_dollars_per_hour", |r| !r.is_empty()).await;
    assert_eq!(b[0]["value"][1], "100", "{b:?}");
    drop(prom);
    drop(dir);
    h.stop().await;
}

/// The pod template annotations of deploy/deployment.yaml.
fn deployment_annotations() -> BTreeMap<String, String> {
    let d = yaml(&repo_root().join("deploy/deployment.yaml"));
    serde_json::from_value(d["spec"]["template"]["metadata"]["annotations"].clone()).expect("annotations")
}
