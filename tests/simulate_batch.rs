//! End to end: `llm-scaler simulate-batch` on a small back-fill with frequent preemptions, its
//! table, CSV, JSON and plots, and the invariants every run must keep.
#![cfg(feature = "sim")]

use std::{collections::HashMap, process::Command};

const BIN: &str = env!("CARGO_BIN_EXE_llm-scaler");

#[test]
fn a_small_batch_run_reports_every_policy_with_every_item_done_once_and_cost_equal_to_gpu_hours_times_price() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args([
            "simulate-batch",
            "--items",
            "150",
            "--max-replicas",
            "10",
            "--preemption-rate",
            "1",
            "--target-sizes",
            "1,5",
            "--seeds",
            "2",
            "--budget-per-hour",
            "20",
            "--deadline",
            "1h",
            "--horizon",
            "8h",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("run simulate-batch");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // 8 policies and 2 capped variants at each of 2 target sizes.
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| policy")).collect();
    assert_eq!(rows.len(), 20, "{stdout}");
    assert!(stdout.contains("| keda-lag-accurate T=5 ") && stdout.contains("| llm-scaler-watch-accurate-budget20 T=1 "), "{stdout}");

    let csv = std::fs::read_to_string(dir.path().join("results.csv")).expect("results.csv");
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().expect("header").split(',').collect();
    let runs: Vec<HashMap<&str, &str>> = lines.map(|l| head.iter().copied().zip(l.split(',')).collect()).collect();
    assert_eq!(runs.len(), 40, "20 policies x 2 seeds");
    let num = |r: &HashMap<&str, &str>, k: &str| -> f64 { r[k].parse().unwrap_or_else(|_| panic!("{k} = {:?}", r[k])) };
    for r in &runs {
        let name = r["policy"];
        let (items, done, completions) = (num(r, "items"), num(r, "items_done"), num(r, "completions"));
        assert_eq!(items, 150.0, "{name}");
        assert!((num(r, "cost_usd") - num(r, "gpu_hours") * num(r, "price")).abs() < 1e-3, "{name}: cost is GPU-hours x price");
        assert!(num(r, "idle_gpu_hours") <= num(r, "gpu_hours") + 1e-9, "{name}");
        if num(r, "work_duplicated_s") == 0.0 {
            assert_eq!(completions, done, "{name}: nothing done twice, so each completion is a distinct item");
        }
        assert!(completions >= done && done <= items, "{name}");
        if name.starts_with("keda-pending") {
            assert_eq!((done, num(r, "jobs_created")), (0.0, 0.0), "{name}: XPENDING is 0 before any worker reads");
        }
        if name.starts_with("llm-scaler") || name.starts_with("on-demand") {
            assert_eq!(done, items, "{name} seed {}: every item done (abandoned ones redone)", r["seed"]);
            assert!(!r["backfill_s"].is_empty(), "{name}: a completion time");
        }
        if name.starts_with("on-demand") {
            assert_eq!((num(r, "preemptions"), num(r, "price")), (0.0, 4.0), "{name}");
        }
    }
    assert!(runs.iter().any(|r| num(r, "preemptions") > 0.0), "the case exercises preemption");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).expect("report.json")).expect("valid JSON");
    assert_eq!(json["policies"].as_array().map(Vec::len), Some(20));
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(40));
    for t in ["1", "5"] {
        let svg = std::fs::read_to_string(dir.path().join(format!("queue_jobs_T{t}.svg"))).expect("plot");
        assert!(svg.starts_with("<svg") && svg.contains("keda-lag-default T="), "queue_jobs_T{t}.svg");
    }
}
