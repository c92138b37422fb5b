//! The scaler end to end on loopback: fake vLLM pods and dcgm-exporters serving real exposition
//! text, the real server, and a tonic client calling it exactly as KEDA does.
#![cfg(feature = "sim")] // the fake pods (tests/common) render vLLM text with llm_scaler::sim::render

mod common;

use std::time::Duration;

use common::*;
use llm_scaler::{
    proto::GetMetricsRequest,
    serve::grpc::METRIC_NAME,
    sim::render::{dcgm::DcgmFlavor, vllm::VllmPod},
};
use tonic::Code;

const T: Duration = Duration::from_secs(10);

fn waiting(p: &FakePod, n: u64) {
    p.update(|v| v.engines[0].waiting = n);
}

#[tokio::test]
async fn spec_then_metrics_follow_queue_pressure_with_peak_factor_and_bounds() {
    let pods = [FakePod::start("llama").await, FakePod::start("llama").await];
    let mut h = Harness::start(settings(100)).await;
    let so = so("ai", "llama", &[("endpoints", endpoints(&[&pods[0], &pods[1]])), ("peakFactor", "1.5".into())]);

    let spec = h.client.get_metric_spec(so.clone()).await.unwrap().into_inner();
    assert_eq!(spec.metric_specs.len(), 1);
    let ms = &spec.metric_specs[0];
    assert_eq!(ms.metric_name, METRIC_NAME);
    assert!(!ms.metric_name.contains('/') && !ms.metric_name.contains('%'));
    #[allow(deprecated)]
    let int_target = ms.target_size;
    assert_eq!((int_target, ms.target_size_float), (1, 1.0));

    // Idle: the minimum, 2.
    assert_eq!(h.wait_metric(&so, T, |r| r.is_ok()).await.unwrap(), 2.0);
    // 30 + 30 waiting / 10 per replica = 6 replicas x 1.5 = 9.
    waiting(&pods[0], 30);
    waiting(&pods[1], 30);
    h.wait_metric(&so, T, |r| r.as_ref().is_ok_and(|v| *v == 9.0)).await.unwrap();
    assert!(h.client.is_active(so.clone()).await.unwrap().into_inner().result);
    // The maximum, 20.
    waiting(&pods[0], 5000);
    h.wait_metric(&so, T, |r| r.as_ref().is_ok_and(|v| *v == 20.0)).await.unwrap();

    // Same pods, other peak factor: its own ScaledObject entry, its own answer.
    waiting(&pods[0], 30);
    let so1 = self::so("ai", "llama-pf1", &[("endpoints", endpoints(&[&pods[0], &pods[1]])), ("peakFactor", "1".into())]);
    h.wait_metric(&so1, T, |r| r.as_ref().is_ok_and(|v| *v == 6.0)).await.unwrap();
    h.stop().await;
}

#[tokio::test]
async fn tokens_per_second_from_counters_with_reset() {
    let pod = FakePod::start("llama").await;
    let mut h = Harness::start(settings(200)).await;
    let so = so(
        "ai",
        "tok",
        &[
            ("endpoints", endpoints(&[&pod])),
            ("targetTokensPerSecond", "1000".into()),
            ("peakFactor", "1".into()),
            ("maxReplicas", "100".into()),
        ],
    );
    h.wait_metric(&so, T, |r| r.is_ok()).await.unwrap();
    // Feed ~10,000 tokens/s for a while: demand 10 replicas.
    let feeder = {
        let state_pod = &pod;
        async move {
            for _ in 0..40 {
                state_pod.update(|v| v.engines[0].generation_tokens += 1000);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let (_, v) = tokio::join!(feeder, h.wait_metric(&so, T, |r| r.as_ref().is_ok_and(|v| (8.0..=13.0).contains(v))));
    assert!(v.is_ok());
    // The pod restarts: counters fall to zero. No negative rate, no crash; the next rate is small.
    pod.update(|v| {
        v.engines[0].generation_tokens = 0;
        v.engines[0].prompt_tokens = 0;
    });
    let v = h.wait_metric(&so, T, |r| r.as_ref().is_ok_and(|v| *v == 2.0)).await.unwrap();
    assert_eq!(v, 2.0);
    let d = h.decisions().await;
    assert!(d.contains("tokens_per_second"), "{d}");
    h.stop().await;
}

#[tokio::test]
async fn latency_quantile_from_histogram_deltas() {
    let pod = FakePod::start("llama").await;
    // Lots of fast history before the scaler starts looking.
    pod.update(|v| v.engines[0].ttft.observe_n(0.05, 10_000));
    let mut h = Harness::start(settings(100)).await;
    let so = so(
        "ai",
        "lat",
        &[
            ("endpoints", endpoints(&[&pod])),
            ("targetLatencySeconds", "2".into()),
            ("latencyWindow", "5s".into()),
            ("peakFactor", "1".into()),
            ("minReplicas", "1".into()),
        ],
    );
    h.wait_metric(&so, T, |r| r.is_ok()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Now every request is slow (~7 s TTFT): the p99 of the window, not of all time, is > 2 s:
    // 1 ready pod x min(ratio, 2) = 2 replicas.
    pod.update(|v| v.engines[0].ttft.observe_n(7.0, 100));
    h.wait_metric(&so, T, |r| r.as_ref().is_ok_and(|v| *v == 2.0)).await.unwrap();
    let d = h.decisions().await;
    assert!(d.contains("\"dominant\":\"latency\""), "{d}");
    h.stop().await;
}

#[tokio::test]
async fn failing_pods_are_named_and_not_read_as_zero() {
    let good = FakePod::start("llama").await;
    let err500 = FakePod::start("llama").await;
    let garbage = FakePod::start("llama").await;
    let huge = FakePod::start("llama").await;
    let hung = FakePod::start("llama").await;
    err500.behave(Behavior::Status(500));
    garbage.behave(Behavior::Text("<html><body>502 Bad Gateway</body></html>\n".into()));
    huge.behave(Behavior::Huge(50 << 20));
    hung.behave(Behavior::Hang);
    waiting(&good, 100);
    // A 1 MiB body limit: the huge pod crosses it within a few buffers, so the parse error (not a
    // timeout) is what a slow, loaded machine sees too.
    let mut s = settings(200);
    s.max_body_bytes = 1 << 20;
    let mut h = Harness::start(s).await;
    let eps = [good.endpoint("good"), err500.endpoint("err500"), garbage.endpoint("garbage"), huge.endpoint("huge"), hung.endpoint("hung")]
        .join(",");
    let so = so("ai", "mixed", &[("endpoints", eps), ("peakFactor", "1".into())]);
    // 5 ready, 1 scraped with 100 waiting -> up estimate 10 (unscraped as zero) > 5: scale up to 10.
    let v = h.wait_metric(&so, T, |r| r.is_ok()).await.unwrap();
    assert_eq!(v, 10.0);
    let d = h.decisions().await;
    assert!(d.contains("4 ready pod(s) without queue_depth data counted as zero load"), "{d}");
    // The tick finishes despite the hung pod (timeout 500 ms), over and over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(h.metric(&so).await.is_ok());
    let m = http_get(h.http_addr, "/metrics").await;
    for (pod, kind) in [("err500", "status"), ("garbage", "parse"), ("huge", "parse"), ("hung", "timeout")] {
        let needle = format!("pod=\"{pod}\",kind=\"{kind}\"");
        assert!(m.contains(&needle), "missing {needle} in\n{}", m.lines().filter(|l| l.contains("errors")).collect::<Vec<_>>().join("\n"));
    }
    h.stop().await;
}

#[tokio::test]
async fn a_pod_that_repeats_a_series_is_a_scrape_error_naming_the_series_and_lines_never_double_load() {
    let dup = FakePod::start("llama").await;
    let line = "vllm:num_requests_waiting{engine=\"0\",model_name=\"llama\"} 30";
    dup.behave(Behavior::Text(format!("# TYPE vllm:num_requests_waiting gauge\n{line}\n{line}\n")));
    let mut h = Harness::start(settings(100)).await;
    let so = so("ai", "dup", &[("endpoints", endpoints(&[&dup])), ("peakFactor", "1".into())]);
    let e = h.wait_metric(&so, T, |r| r.as_ref().is_err_and(|e| e.message().contains("duplicate series"))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "one pod, and its scrape failed: no decision, never 60 waiting");
    let msg = e.message();
    assert!(msg.contains("vllm-0") && msg.contains("line 3") && msg.contains("line 2"), "names the pod and both lines: {msg}");
    assert!(msg.contains("vllm:num_requests_waiting{engine"), "names the series: {msg}");
    let m = http_get(h.http_addr, "/metrics").await;
    assert!(m.contains("pod=\"vllm-0\",kind=\"parse\""), "counted as the pod's parse error");
    h.stop().await;
}

#[tokio::test]
async fn all_pods_down_is_unavailable_never_zero() {
    let pods = [FakePod::start("llama").await, FakePod::start("llama").await];
    waiting(&pods[0], 40);
    let mut s = settings(100);
    s.stale_intervals = 3;
    let mut h = Harness::start(s).await;
    let so = so("ai", "down", &[("endpoints", endpoints(&[&pods[0], &pods[1]])), ("peakFactor", "1.5".into())]);
    // Before the first scrape: unavailable, not zero.
    let first = h.metric(&so).await;
    if let Err(e) = &first {
        assert_eq!(e.code(), Code::Unavailable);
    }
    h.wait_metric(&so, T, |r| r.as_ref().is_ok_and(|v| *v == 6.0)).await.unwrap();
    for p in &pods {
        p.behave(Behavior::Status(503));
    }
    let e = h.wait_metric(&so, T, |r| r.is_err()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("ai/down") && e.message().contains("503"), "{}", e.message());
    let a = h.client.is_active(so.clone()).await.unwrap_err();
    assert_eq!(a.code(), Code::Unavailable);
    // Back up: decisions resume.
    for p in &pods {
        p.behave(Behavior::Vllm);
    }
    h.wait_metric(&so, T, |r| r.as_ref().is_ok_and(|v| *v == 6.0)).await.unwrap();
    h.stop().await;
}

#[tokio::test]
async fn bad_metadata_is_invalid_argument_naming_the_key() {
    let pod = FakePod::start("llama").await;
    let mut h = Harness::start(settings(100)).await;
    let good = so("ai", "good", &[("endpoints", endpoints(&[&pod]))]);
    h.wait_metric(&good, T, |r| r.is_ok()).await.unwrap();
    let cases: [(&str, String, &str); 4] = [
        ("targetQueueDeph", "5".into(), "valid keys"),
        ("targetQueueDepth", "lots".into(), "positive number"),
        ("maxReplicas", "-3".into(), "whole number"),
        ("endpoints", "not-an-address".into(), "host:port"),
    ];
    for (k, v, want) in cases {
        let mut meta = vec![("endpoints", endpoints(&[&pod]))];
        if k == "endpoints" {
            meta.clear();
        }
        meta.push((k, v.clone()));
        let bad = so("ai", "bad", &meta);
        for e in [
            h.client.get_metric_spec(bad.clone()).await.unwrap_err(),
            h.client.is_active(bad.clone()).await.unwrap_err(),
            h.client
                .get_metrics(GetMetricsRequest { scaled_object_ref: Some(bad.clone()), metric_name: METRIC_NAME.into() })
                .await
                .unwrap_err(),
        ] {
            assert_eq!(e.code(), Code::InvalidArgument);
            assert!(e.message().contains(k) && e.message().contains(want), "{k}: {}", e.message());
        }
    }
    let e = h
        .client
        .get_metrics(GetMetricsRequest { scaled_object_ref: Some(good.clone()), metric_name: "s0-other".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // The good ScaledObject is untouched.
    assert_eq!(h.metric(&good).await.unwrap(), 2.0);
    h.stop().await;
}

#[tokio::test]
async fn static_endpoints_are_refused_unless_allowed() {
    let mut s = settings(100);
    s.allow_static_endpoints = false;
    s.kube = true; // discovery would be Kubernetes; never reached here
    let server = llm_scaler::serve::server::Server::start(s, llm_scaler::serve::server::DiscoveryMode::None).await.unwrap();
    let mut c =
        llm_scaler::proto::external_scaler_client::ExternalScalerClient::connect(format!("http://{}", server.grpc_addr)).await.unwrap();
    let e = c.get_metric_spec(so("ai", "x", &[("endpoints", "127.0.0.2:8000".into())])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("--allow-static-endpoints"), "{}", e.message());
    server.shutdown().await.unwrap();
}

/// An in-process fleet of no pods (what the demo and the benchmarks plug in).
struct NoPods;

impl llm_scaler::discovery::PodLister for NoPods {
    fn pods(&self, _: &str, _: &str) -> Vec<llm_scaler::discovery::PodInfo> {
        Vec::new()
    }
}

#[tokio::test]
async fn what_an_in_process_fleet_cannot_provide_is_invalid_argument_naming_the_key() {
    let mode = llm_scaler::serve::server::DiscoveryMode::Custom(std::sync::Arc::new(NoPods));
    let server = llm_scaler::serve::server::Server::start(settings(100), mode).await.unwrap();
    let mut c =
        llm_scaler::proto::external_scaler_client::ExternalScalerClient::connect(format!("http://{}", server.grpc_addr)).await.unwrap();
    for (k, v, key) in
        [("gpuSource", "dcgm", "dcgmEndpoints"), ("weightGpuUtilization", "1", "dcgmEndpoints"), ("podSelector", "app=vllm", "podSelector")]
    {
        let e = loop {
            match c.get_metric_spec(so("ai", "x", &[(k, v.into())])).await {
                Err(e) if e.code() == Code::Unavailable => tokio::time::sleep(Duration::from_millis(20)).await, // still starting
                r => break r.unwrap_err(),
            }
        };
        assert_eq!(e.code(), Code::InvalidArgument, "{k}: {e:?}");
        assert!(e.message().contains(&format!("\"{key}\"")), "{k}: {}", e.message());
    }
    c.get_metric_spec(so("ai", "x", &[])).await.expect("plain metadata is fine in-process");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn keys_that_static_endpoints_would_ignore_are_invalid_argument_naming_the_key() {
    let mut h = Harness::start(settings(100)).await;
    for (k, v, with) in
        [("metricsPort", "9000", "endpoints"), ("dcgmPort", "9400", "dcgmEndpoints"), ("dcgmNamespace", "gpu-operator", "dcgmEndpoints")]
    {
        let meta = [
            ("endpoints", "127.0.0.2:8000".to_string()),
            ("gpuSource", "dcgm".into()),
            ("dcgmEndpoints", "127.0.0.3:9400".into()),
            (k, v.into()),
        ];
        let e = h.client.get_metric_spec(so("ai", "x", &meta)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{k}");
        assert!(e.message().contains(&format!("\"{k}\"")) && e.message().contains(&format!("with \"{with}\"")), "{k}: {}", e.message());
    }
    h.stop().await;
}

#[tokio::test]
async fn many_scaledobjects_without_cross_talk() {
    let mut h = Harness::start(settings(100)).await;
    let mut fleets = Vec::new();
    for i in 0..12u64 {
        let pods = [FakePod::start("llama").await, FakePod::start("llama").await];
        // Object i has 10 * (i + 1) waiting per pod: queue demand 2(i+1), x1 peak.
        for p in &pods {
            waiting(p, 10 * (i + 1));
        }
        let so = so(
            &format!("ns{}", i % 3),
            &format!("model-{i}"),
            &[("endpoints", endpoints(&[&pods[0], &pods[1]])), ("peakFactor", "1".into()), ("maxReplicas", "100".into())],
        );
        fleets.push((pods, so, (2 * (i + 1)) as f64));
    }
    // A broken one among them.
    let broken = so("ns0", "broken", &[("endpoints", "127.0.0.1:1".into()), ("blendMode", "median".into())]);
    assert_eq!(h.client.get_metric_spec(broken.clone()).await.unwrap_err().code(), Code::InvalidArgument);
    for (_, so, want) in &fleets {
        h.wait_metric(so, T, |r| r.as_ref().is_ok_and(|v| v == want)).await.unwrap();
    }
    // Change one fleet; only its answer moves.
    waiting(&fleets[3].0[0], 200);
    h.wait_metric(&fleets[3].1, T, |r| r.as_ref().is_ok_and(|v| *v == 24.0)).await.unwrap();
    for (i, (_, so, want)) in fleets.iter().enumerate() {
        if i != 3 {
            assert_eq!(h.metric(so).await.unwrap(), *want, "object {i}");
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn stream_is_active_pushes_true_on_activation() {
    use futures::StreamExt;
    let pod = FakePod::start("llama").await;
    let mut h = Harness::start(settings(100)).await;
    let so = so("ai", "push", &[("endpoints", endpoints(&[&pod])), ("activationThreshold", "5".into())]);
    h.wait_metric(&so, T, |r| r.is_ok()).await.unwrap();
    assert!(!h.client.is_active(so.clone()).await.unwrap().into_inner().result);
    let mut stream = h.client.stream_is_active(so.clone()).await.unwrap().into_inner();
    waiting(&pod, 10);
    let msg = tokio::time::timeout(T, stream.next()).await.expect("a push").expect("stream open").expect("ok");
    assert!(msg.result);
    assert!(h.client.is_active(so.clone()).await.unwrap().into_inner().result);
    // Shutdown ends the stream cleanly.
    let server = h.server.take().unwrap();
    let stop = tokio::spawn(server.shutdown());
    let end = tokio::time::timeout(T, async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("stream ends on shutdown");
    assert!(end.is_none() || end.is_some_and(|r| r.is_err()));
    tokio::time::timeout(T, stop).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn stream_metric_spec_sends_the_spec_at_once() {
    use futures::StreamExt;
    let pod = FakePod::start("llama").await;
    let mut h = Harness::start(settings(100)).await;
    let so = so("ai", "spec-stream", &[("endpoints", endpoints(&[&pod]))]);
    let mut s = h.client.stream_metric_spec(so.clone()).await.unwrap().into_inner();
    let first = tokio::time::timeout(T, s.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.metric_specs[0].metric_name, METRIC_NAME);
    assert_eq!(h.client.get_metric_spec(so).await.unwrap().into_inner(), first);
    h.stop().await;
}

#[tokio::test]
async fn gpu_utilisation_from_dcgm_joins_on_pod() {
    let pods = [FakePod::start("llama").await, FakePod::start("llama").await];
    // Two pods, 4 GPUs each, 90 % busy; target 70 %: 2 x 0.9 / 0.7 = 2.57 replicas -> 3 at peak 1.
    let dcgm = FakeDcgm::start(&[("ai", "vllm-0", 0.9), ("ai", "vllm-1", 0.9), ("other", "vllm-0", 0.0)], 4, DcgmFlavor::V4_5).await;
    let mut h = Harness::start(settings(100)).await;
    let so = so(
        "ai",
        "gpu",
        &[
            ("endpoints", endpoints(&[&pods[0], &pods[1]])),
            ("dcgmEndpoints", dcgm.addr.to_string()),
            ("weightGpuUtilization", "1".into()),
            ("peakFactor", "1".into()),
        ],
    );
    h.wait_metric(&so, T, |r| r.as_ref().is_ok_and(|v| *v == 3.0)).await.unwrap();
    let d = h.decisions().await;
    assert!(d.contains("\"dominant\":\"gpu_utilization\""), "{d}");
    // The 4.9 naming (ratios) gives the same answer.
    let dcgm49 = FakeDcgm::start(&[("ai", "vllm-0", 0.9), ("ai", "vllm-1", 0.9)], 4, DcgmFlavor::V4_9).await;
    let so49 = self::so(
        "ai",
        "gpu49",
        &[
            ("endpoints", endpoints(&[&pods[0], &pods[1]])),
            ("dcgmEndpoints", dcgm49.addr.to_string()),
            ("weightGpuUtilization", "1".into()),
            ("peakFactor", "1".into()),
        ],
    );
    h.wait_metric(&so49, T, |r| r.as_ref().is_ok_and(|v| *v == 3.0)).await.unwrap();
    h.stop().await;
}

#[tokio::test]
async fn two_engine_pod_and_model_filter() {
    let mut v = VllmPod::new("llama", 2);
    v.engines[0].waiting = 20;
    v.engines[1].waiting = 40;
    let pod = FakePod::start_with(v).await;
    let mut h = Harness::start(settings(100)).await;
    let so1 = so("ai", "eng", &[("endpoints", endpoints(&[&pod])), ("peakFactor", "1".into())]);
    h.wait_metric(&so1, T, |r| r.as_ref().is_ok_and(|v| *v == 6.0)).await.unwrap();
    // A filter matching no series: the pod counts as failed, the answer is UNAVAILABLE.
    let so2 = so("ai", "wrong-model", &[("endpoints", endpoints(&[&pod])), ("modelName", "mistral".into())]);
    let e = h.wait_metric(&so2, T, |r| r.as_ref().is_err_and(|e| e.message().contains("mistral"))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    h.stop().await;
}

#[tokio::test]
async fn decisions_api_and_metrics_explain_every_signal() {
    let pod = FakePod::start("llama").await;
    waiting(&pod, 25);
    let mut h = Harness::start(settings(100)).await;
    let so = so("ai", "explain", &[("endpoints", endpoints(&[&pod])), ("peakFactor", "1.5".into())]);
    h.wait_metric(&so, T, |r| r.as_ref().is_ok_and(|v| *v == 4.0)).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&http_get(h.http_addr, "/api/v1/decisions/ai/explain").await).unwrap();
    let latest = &v["scaledobjects"][0]["latest"];
    assert_eq!(latest["desired_replicas"], 4);
    assert_eq!(latest["dominant"], "queue_depth");
    assert!(latest["reason"].as_str().unwrap().contains("queue_depth 25 / 10 per replica = 2.50 replicas x 1.5 peak"));
    let sigs = latest["signals"].as_array().unwrap();
    assert_eq!(sigs.len(), 5);
    assert!(!v["scaledobjects"][0]["history"].as_array().unwrap().is_empty());
    let m = http_get(h.http_addr, "/metrics").await;
    for needle in [
        "llm_scaler_desired_replicas{namespace=\"ai\",scaledobject=\"explain\"} 4",
        "llm_scaler_signal_demand_replicas{namespace=\"ai\",scaledobject=\"explain\",signal=\"queue_depth\"} 2.5",
        "llm_scaler_rpc_duration_seconds_count{method=\"GetMetrics\"}",
        "llm_scaler_pod_scrape_duration_seconds{",
    ] {
        assert!(m.contains(needle), "missing {needle}");
    }
    assert_eq!(http_get(h.http_addr, "/readyz").await, "ready\n");
    assert!(http_get(h.http_addr, "/api/v1/decisions/ai/nope").await.contains("no ScaledObject"));
    h.stop().await;
}

#[tokio::test]
async fn the_decisions_api_can_be_restricted_to_one_namespace() {
    let pod = FakePod::start("llama").await;
    waiting(&pod, 5);
    let mut h = Harness::start(settings(100)).await;
    let a = so("team-a", "fleet", &[("endpoints", endpoints(&[&pod]))]);
    let b = so("team-b", "fleet", &[("endpoints", endpoints(&[&pod]))]);
    for s in [&a, &b] {
        h.wait_metric(s, T, |r| r.is_ok()).await.unwrap();
    }
    let names = |body: String| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let mut n: Vec<String> = v["scaledobjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| format!("{}/{}", o["namespace"].as_str().unwrap(), o["name"].as_str().unwrap()))
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(h.decisions().await), ["team-a/fleet", "team-b/fleet"]);
    assert_eq!(names(http_get(h.http_addr, "/api/v1/decisions?namespace=team-a").await), ["team-a/fleet"]);
    assert!(names(http_get(h.http_addr, "/api/v1/decisions?namespace=team-c").await).is_empty());
    let resp = reqwest::get(format!("http://{}/api/v1/decisions?namespace=Team_A", h.http_addr)).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("namespace"), "a bad namespace is named");
    let resp = reqwest::get(format!("http://{}/api/v1/decisions?ns=team-a", h.http_addr)).await.unwrap();
    assert_eq!(resp.status(), 400, "an unknown parameter is refused, not ignored (which would list everything)");
    h.stop().await;
}

#[tokio::test]
async fn health_and_reflection() {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let h = Harness::start(settings(100)).await;
    let ch = tonic::transport::Channel::from_shared(format!("http://{}", h.grpc_addr)).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(ch.clone());
    let deadline = tokio::time::Instant::now() + T;
    for service in ["", "externalscaler.ExternalScaler"] {
        loop {
            let st = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status();
            if st == ServingStatus::Serving {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never SERVING");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Reflection v1 lists our service (what grpcurl uses).
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse,
    };
    let mut refl = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut resp = refl.server_reflection_info(futures::stream::iter([req])).await.unwrap().into_inner();
    let first = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else { panic!("{first:?}") };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"externalscaler.ExternalScaler") && names.contains(&"grpc.health.v1.Health"), "{names:?}");
    // NOT_SERVING as soon as shutdown starts: a health watcher sees it before the server goes.
    let mut watch = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status(), ServingStatus::Serving);
    let stop = tokio::spawn(h.stop());
    let next = tokio::time::timeout(T, watch.message()).await.expect("an update").expect("stream ok").expect("a message");
    assert_eq!(next.status(), ServingStatus::NotServing);
    tokio::time::timeout(T, stop).await.expect("shutdown within the grace period").unwrap();
}

#[tokio::test]
async fn idle_scaledobjects_stop_being_scraped() {
    let pod = FakePod::start("llama").await;
    let mut s = settings(100);
    s.idle_timeout = Duration::from_millis(600);
    let mut h = Harness::start(s).await;
    let so = so("ai", "idle", &[("endpoints", endpoints(&[&pod]))]);
    h.wait_metric(&so, T, |r| r.is_ok()).await.unwrap();
    assert!(h.decisions().await.contains("\"name\":\"idle\""));
    // Nobody asks any more: the collector stops and the ScaledObject is forgotten.
    let deadline = tokio::time::Instant::now() + T;
    while h.decisions().await.contains("\"name\":\"idle\"") {
        assert!(tokio::time::Instant::now() < deadline, "still collected after the idle timeout");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = http_get(h.http_addr, "/metrics").await;
    assert!(!m.contains("scaledobject=\"idle\",pod="), "per-pod series of a forgotten ScaledObject are dropped");
    assert!(
        m.contains("llm_scaler_scaledobjects 0"),
        "{}",
        m.lines().filter(|l| l.contains("scaledobjects")).collect::<Vec<_>>().join("\n")
    );
    // Asking again starts it afresh.
    h.wait_metric(&so, T, |r| r.is_ok()).await.unwrap();
    h.stop().await;
}

/// The cost view of one ScaledObject in `/api/v1/decisions`.
fn cost_of(decisions: &str, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(decisions).expect("decisions JSON");
    let so = v["scaledobjects"].as_array().expect("scaledobjects").iter().find(|s| s["name"] == name).cloned();
    so.map(|s| s["cost"].clone()).unwrap_or_else(|| panic!("{name} not in {decisions}"))
}

#[tokio::test]
async fn the_fleets_cost_is_metered_at_gpus_per_pod_and_shown_as_unknown_naming_the_key_without_it() {
    let (a, b) = (FakePod::start("llama").await, FakePod::start("llama").await);
    let mut h = Harness::start(settings(100)).await;
    let priced = so(
        "ai",
        "priced",
        &[("endpoints", endpoints(&[&a, &b])), ("gpusPerPod", "2".into()), ("gpuHourPrice", "3".into()), ("budgetPerHour", "50".into())],
    );
    let unpriced = so("ai", "unpriced", &[("endpoints", endpoints(&[&a]))]);
    h.wait_metric(&priced, T, |r| r.is_ok()).await.unwrap();
    h.wait_metric(&unpriced, T, |r| r.is_ok()).await.unwrap();
    // Tokens flow on pod a: the meter counts what was served after it first saw the counters.
    let deadline = tokio::time::Instant::now() + T;
    let cost = loop {
        a.update(|v| v.engines[0].generation_tokens += 1_000);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let c = cost_of(&h.decisions().await, "priced");
        if c["tokens_total"].as_f64().is_some_and(|t| t >= 2_000.0) && c["dollars_total"].as_f64().is_some_and(|d| d > 0.0) {
            break c;
        }
        assert!(tokio::time::Instant::now() < deadline, "no tokens or dollars metered: {c}");
    };
    assert_eq!(cost["state"], "known", "{cost}");
    assert_eq!((cost["gpus"].as_u64(), cost["dollars_per_hour"].as_f64()), (Some(4), Some(12.0)), "2 pods x 2 GPUs x $3: {cost}");
    assert_eq!(cost["budget_dollars_per_hour"].as_f64(), Some(50.0));
    assert!(cost["dollars_per_1k_tokens"].as_f64().is_some_and(|p| p > 0.0), "{cost}");
    let unknown = cost_of(&h.decisions().await, "unpriced");
    assert_eq!(unknown["state"], "unknown", "{unknown}");
    assert!(unknown["reason"].as_str().is_some_and(|r| r.contains("gpusPerPod")), "{unknown}");

    let body = http_get(h.http_addr, "/metrics").await;
    assert!(body.contains("llm_scaler_gpus_provisioned{namespace=\"ai\",scaledobject=\"priced\"} 4"), "{body}");
    assert!(body.contains("llm_scaler_cost_budget_dollars_per_hour{namespace=\"ai\",scaledobject=\"priced\"} 50"), "{body}");
    assert!(!body.contains("llm_scaler_cost_dollars_total{namespace=\"ai\",scaledobject=\"unpriced\"}"), "{body}");
    assert!(!body.contains("llm_scaler_gpus_provisioned{namespace=\"ai\",scaledobject=\"unpriced\"}"), "unknown is not 0 GPUs: {body}");

    // What cannot be priced is refused naming the key.
    let ep = endpoints(&[&a]);
    for (meta, key) in [
        (vec![("endpoints", ep.clone()), ("gpusPerPod", "1".into()), ("gpuHourPrice", "$4".into())], "gpuHourPrice"),
        (vec![("endpoints", ep.clone()), ("gpusPerPod", "1".into()), ("gpuHourPrice", "-1".into())], "gpuHourPrice"),
        (vec![("endpoints", ep.clone()), ("gpusPerPod", "0".into())], "gpusPerPod"),
        (vec![("endpoints", ep.clone()), ("budgetPerHour", "50".into())], "gpusPerPod"),
    ] {
        let e = h.client.get_metric_spec(so("ai", "bad-cost", &meta)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{meta:?}");
        assert!(e.message().contains(&format!("\"{key}\"")), "{meta:?}: {}", e.message());
    }
    h.stop().await;
}

#[tokio::test]
async fn an_edited_scaledobjects_cost_counter_never_goes_back_while_its_old_target_winds_down() {
    let pod = FakePod::start("llama").await;
    // Old targets stop 0.8 s after KEDA last asked about them.
    let mut h = Harness::start(llm_scaler::serve::config::Settings { idle_timeout: Duration::from_millis(800), ..settings(100) }).await;
    // $3,600 per GPU-hour x 2 GPUs: a dollar every half second, so the counter visibly moves.
    let meta = |peak: &str| {
        so(
            "ai",
            "edited",
            &[("endpoints", endpoints(&[&pod])), ("gpusPerPod", "2".into()), ("gpuHourPrice", "3600".into()), ("peakFactor", peak.into())],
        )
    };
    let (before, after) = (meta("1.5"), meta("2"));
    h.wait_metric(&before, T, |r| r.is_ok()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The edit: from now on KEDA asks with the new metadata only; the old target winds down.
    let series = "llm_scaler_cost_dollars_total{namespace=\"ai\",scaledobject=\"edited\"} ";
    let (mut last, mut samples) = (0.0_f64, Vec::new());
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while tokio::time::Instant::now() < until {
        let _ = h.metric(&after).await;
        let body = http_get(h.http_addr, "/metrics").await;
        if let Some(v) = body.lines().find_map(|l| l.strip_prefix(series)).and_then(|v| v.parse::<f64>().ok()) {
            assert!(v >= last, "the counter went back from {last} to {v} (a reset Prometheus would count twice): {samples:?}");
            last = v;
            samples.push(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let decisions: serde_json::Value = serde_json::from_str(&h.decisions().await).unwrap();
    let served = decisions["scaledobjects"].as_array().unwrap().iter().filter(|o| o["name"] == "edited").count();
    assert_eq!(served, 1, "the old target stopped within the window: {decisions}");
    assert!(samples.len() > 20 && last > 1.0, "the counter is exported throughout and grows: {samples:?}");
    let body = http_get(h.http_addr, "/metrics").await;
    assert!(body.contains(series), "the old target's end left the new one's series in place\n{body}");
    h.stop().await;
}

#[tokio::test]
async fn the_decisions_api_says_when_each_target_was_last_asked_and_when_it_stops_so_an_edit_can_be_told_apart() {
    let pod = FakePod::start("llama").await;
    let idle = Duration::from_secs(4);
    let mut h = Harness::start(llm_scaler::serve::config::Settings { idle_timeout: idle, ..settings(100) }).await;
    let meta = |peak: &str| so("ai", "edited", &[("endpoints", endpoints(&[&pod])), ("peakFactor", peak.into())]);
    let (before, after) = (meta("1.5"), meta("2"));
    h.wait_metric(&before, T, |r| r.is_ok()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The edit: KEDA asks with the new metadata only from now on.
    h.wait_metric(&after, T, |r| r.is_ok()).await.unwrap();
    let decisions: serde_json::Value = serde_json::from_str(&h.decisions().await).unwrap();
    let mut targets: Vec<(f64, f64, f64)> = decisions["scaledobjects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["name"] == "edited")
        .map(|o| {
            let n = |k: &str| o[k].as_f64().unwrap_or_else(|| panic!("{k} in {o}"));
            (n("asked_seconds_ago"), n("stops_in_seconds"), o["spec"]["policy"]["peak_factor"].as_f64().unwrap_or(f64::NAN))
        })
        .collect();
    targets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(targets.len(), 2, "the old metadata's target is still collected: {decisions}");
    let ((new_asked, new_stops, new_peak), (old_asked, old_stops, old_peak)) = (targets[0], targets[1]);
    assert_eq!((new_peak, old_peak), (2.0, 1.5), "the one asked last is the new metadata's: {targets:?}");
    assert!(new_asked < 1.0 && old_asked >= 1.0 && old_asked < idle.as_secs_f64(), "{targets:?}");
    // Each stops when the idle timeout has passed since it was last asked.
    for (asked, stops) in [(new_asked, new_stops), (old_asked, old_stops)] {
        assert!((asked + stops - idle.as_secs_f64()).abs() < 1e-3, "{targets:?}");
    }
    h.stop().await;
}
