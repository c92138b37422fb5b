//! Proves the Rust renderers produce the shape of the real exporters.
//!
//! The vLLM fixtures were rendered by the Python `prometheus_client` library
//! itself (`scripts/gen_vllm_fixture.py`), so matching them line by line,
//! values masked, means a fake pod is indistinguishable in form from a real
//! one: same HELP/TYPE lines, sample names, label sets and order, line order.
//! Every value in every fixture must also be printed exactly as
//! `render::prom_float` prints it, which checks the float formatter against
//! thousands of strings Python produced. The dcgm fixtures come from the same
//! script's rendering of the spec, so there the check is that the Python and
//! Rust readings of the spec agree.
#![cfg(feature = "sim")] // the fake pods (tests/common) render vLLM text with llm_scaler::sim::render

use llm_scaler::sim::render::dcgm::{self, DcgmFlavor, Gpu, PodRef};
use llm_scaler::sim::render::vllm::{FinishReason, FinishedRequest, VllmFlavor, VllmPod};
use llm_scaler::sim::render::{prom_float, py_float};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Splits a sample line into (series, value text).
fn split_sample(line: &str) -> (&str, &str) {
    line.rsplit_once(' ').unwrap_or_else(|| panic!("sample line without a value: {line:?}"))
}

/// The line with its value replaced by `<v>`, after checking the value is
/// printed exactly as prometheus_client prints it.
fn mask_vllm(line: &str) -> String {
    if line.starts_with('#') {
        return line.to_owned();
    }
    let (series, value) = split_sample(line);
    let parsed: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|e| panic!("value {v:?} of {line:?}: {e}")),
    };
    let mut canonical = String::new();
    prom_float(parsed, &mut canonical);
    assert_eq!(canonical, value, "float formatting differs on {line:?}");
    format!("{series} <v>")
}

fn is_vllm_line(line: &str) -> bool {
    line.starts_with("vllm:") || line.starts_with("# HELP vllm:") || line.starts_with("# TYPE vllm:")
}

/// Compares two bodies' masked lines, reporting the first difference.
fn assert_same_lines(what: &str, want: &[String], got: &[String]) {
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(g, w, "{what}: line {} differs", i + 1);
    }
    assert_eq!(got.len(), want.len(), "{what}: {} lines rendered, {} in the fixture", got.len(), want.len());
}

/// A pod with some traffic, so values are not all zero.
fn busy_pod(model: &str, engines: usize, num_gpu_blocks: u64) -> VllmPod {
    let mut pod = VllmPod::new(model, engines);
    pod.num_gpu_blocks = num_gpu_blocks;
    pod.created_unix = 1_795_461_781.082_791_6;
    pod.admission_rejections = [31, 0];
    for (i, e) in pod.engines.iter_mut().enumerate() {
        e.running = 35 + i as u64;
        e.waiting = 4;
        e.waiting_deferred = 1;
        e.kv_cache_usage = 0.6875;
        e.preemptions = 12;
        for k in 0..200u64 {
            e.finish_request(&FinishedRequest {
                prompt_tokens: 800 + k,
                generation_tokens: 150 + k % 40,
                queue_s: 0.01 * (k % 17) as f64,
                prefill_s: 0.09,
                decode_s: 4.5 + 0.1 * (k % 13) as f64,
                reason: if k % 10 == 0 { FinishReason::Length } else { FinishReason::Stop },
            });
            e.iteration_tokens.observe((30 + k % 50) as f64);
        }
        e.prefix_cache_hits = e.prefix_cache_queries / 3;
    }
    pod
}

fn compare_vllm(fixture_name: &str, pod: &VllmPod) {
    let body = fixture(fixture_name);
    let want: Vec<String> = body.lines().filter(|l| is_vllm_line(l)).map(mask_vllm).collect();
    assert!(!want.is_empty(), "{fixture_name} has no vllm: lines");
    let mut out = String::new();
    pod.render(&mut out);
    let got: Vec<String> = out.lines().map(mask_vllm).collect();
    assert_same_lines(fixture_name, &want, &got);
}

const LLAMA_70B: &str = "meta-llama/Llama-3.1-70B-Instruct";

#[test]
fn vllm_two_engines_matches_prometheus_client() {
    compare_vllm("vllm-0.33-two-engines.prom", &busy_pod(LLAMA_70B, 2, 28_159));
}

#[test]
fn vllm_one_engine_matches_prometheus_client() {
    compare_vllm("vllm-0.33-one-engine.prom", &busy_pod(LLAMA_70B, 1, 28_159));
}

#[test]
fn vllm_legacy_v0_matches_prometheus_client() {
    let mut pod = busy_pod("meta-llama/Llama-2-13b-chat-hf", 1, 7341);
    pod.flavor = VllmFlavor::LegacyV0;
    compare_vllm("vllm-legacy-v0.prom", &pod);
}

/// Every value of every vLLM fixture, `process_*`, `python_*`, `http_*` and
/// the multi-process body included, is printed the way `prom_float` prints.
#[test]
fn every_fixture_value_is_formatted_like_prom_float() {
    for name in ["vllm-0.33-two-engines.prom", "vllm-0.33-one-engine.prom", "vllm-legacy-v0.prom", "vllm-multiprocess.prom"] {
        let body = fixture(name);
        let n = body.lines().map(mask_vllm).count();
        assert!(n > 300, "{name}: only {n} lines");
    }
}

/// `py-floats.txt` holds doubles (as IEEE bits) with the strings CPython's
/// `repr` and prometheus_client's `floatToGoString` made of them, including
/// exact ties between two shortest candidates.
#[test]
fn float_formatting_matches_python_on_recorded_cases() {
    let cases = fixture("py-floats.txt");
    let (mut repr, mut go) = (String::new(), String::new());
    let mut n = 0;
    for line in cases.lines() {
        let mut fields = line.split(' ');
        let (Some(bits), Some(want_repr), Some(want_go), None) = (fields.next(), fields.next(), fields.next(), fields.next()) else {
            panic!("malformed line {line:?}");
        };
        let bits = u64::from_str_radix(bits, 16).unwrap_or_else(|e| panic!("bits of {line:?}: {e}"));
        let v = f64::from_bits(bits);
        repr.clear();
        go.clear();
        py_float(v, &mut repr);
        prom_float(v, &mut go);
        assert_eq!(repr, want_repr, "repr of {line:?}");
        assert_eq!(go, want_go, "floatToGoString of {line:?}");
        n += 1;
    }
    assert!(n > 1000, "only {n} cases");
}

/// The node of the dcgm fixtures: 8 H100s, 0-3 held by the tensor-parallel
/// Llama pod, 4-5 by another pod, 6-7 unheld.
fn fixture_node(driver: &str) -> Vec<Gpu> {
    const UUIDS: [&str; 8] = [
        "GPU-7ad09335-aadb-19c3-e3a8-1f0c2d7b9e41",
        "GPU-5bd39b62-4c1e-8a0f-2d6e-93b7a1c40f58",
        "GPU-c2e81f4a-90d3-47b5-a61e-0b8f3d2c7e19",
        "GPU-19f0a7d2-3b6c-4e81-95d0-7c2a8e4f1b63",
        "GPU-e4b7c910-58a2-4d3f-b0e6-2f9c71a8d305",
        "GPU-8d3a0f6e-c714-4b92-8e5d-a1f04c9b7e26",
        "GPU-0f6c2b91-d8e3-45a7-9c1b-6e4d3a0f8b72",
        "GPU-b5a1e84c-2f07-4c6d-83e9-d07b1f5c2a94",
    ];
    (0..8u32)
        .map(|i| {
            let mut g = Gpu::h100(i, "gpu-node-1");
            g.uuid = UUIDS[i as usize].to_owned();
            g.driver_version = driver.to_owned();
            let (pod, load) = match i {
                0..=3 => (Some("vllm-llama-70b-7d9f8-abcde"), 0.9),
                4..=5 => (Some("vllm-qwen-7b-5c6b4-fghij"), 0.15),
                _ => (None, 0.0),
            };
            g.holder = pod.map(|p| PodRef { namespace: "ai-inference".into(), pod: p.into(), container: "vllm".into() });
            g.apply_load(load);
            g
        })
        .collect()
}

/// The line with its value replaced by its printed class: `<int>` for Go
/// integers, `<f6>` for `%f` doubles; anything else is left to differ.
fn mask_dcgm(line: &str) -> String {
    if line.starts_with('#') {
        return line.to_owned();
    }
    let (series, value) = split_sample(line);
    let is_int = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let is_f6 = value.split_once('.').is_some_and(|(i, f)| {
        !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) && f.len() == 6 && f.bytes().all(|b| b.is_ascii_digit())
    });
    let class = match (is_int, is_f6) {
        (true, _) => "<int>",
        (_, true) => "<f6>",
        _ => value,
    };
    format!("{series} {class}")
}

fn compare_dcgm(fixture_name: &str, flavor: DcgmFlavor, driver: &str) {
    let want: Vec<String> = fixture(fixture_name).lines().map(mask_dcgm).collect();
    let mut out = String::new();
    dcgm::render(&fixture_node(driver), flavor, &mut out);
    let got: Vec<String> = out.lines().map(mask_dcgm).collect();
    assert_same_lines(fixture_name, &want, &got);
}

#[test]
fn dcgm_4_5_matches_fixture() {
    compare_dcgm("dcgm-4.5.prom", DcgmFlavor::V4_5, "580.159.04");
}

#[test]
fn dcgm_4_9_matches_fixture() {
    compare_dcgm("dcgm-4.9.prom", DcgmFlavor::V4_9, "580.159.04");
}

#[test]
fn dcgm_old_namespace_matches_fixture() {
    compare_dcgm("dcgm-old-namespace.prom", DcgmFlavor::OldNamespace, "550.127.05");
}

/// 4.6 differs from 4.5 only by the `hostname` spelling.
#[test]
fn dcgm_4_6_is_4_5_with_lowercase_hostname() {
    let node = fixture_node("580.159.04");
    let mut v45 = String::new();
    let mut v46 = String::new();
    dcgm::render(&node, DcgmFlavor::V4_5, &mut v45);
    dcgm::render(&node, DcgmFlavor::V4_6, &mut v46);
    assert_eq!(v46, v45.replace(",Hostname=\"", ",hostname=\""));
    assert!(!v46.contains("Hostname"));
}
