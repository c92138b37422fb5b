//! Batch mode against a Prometheus-format endpoint (a queue exporter on loopback, its body set by
//! the test): the matching series summed, a size metric as the work, and the faults KEDA must see
//! as `UNAVAILABLE` (a missing metric, an error status, an endpoint that is gone).
#![cfg(feature = "sim")]

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use common::{Harness, settings, so};
use llm_scaler::proto::ScaledObjectRef;
use tonic::Code;

/// What the exporter answers: a status and a body.
type Answer = Arc<Mutex<(StatusCode, String)>>;

/// A queue exporter on a free loopback port.
async fn exporter(answer: Answer) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    async fn metrics(State(a): State<Answer>) -> (StatusCode, String) {
        a.lock().unwrap().clone()
    }
    let app = Router::new().route("/metrics", get(metrics)).with_state(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

const BODY: &str = "# TYPE rabbitmq_queue_messages_ready gauge
rabbitmq_queue_messages_ready{queue=\"embed\",vhost=\"/\"} 12
rabbitmq_queue_messages_ready{queue=\"embed\",vhost=\"staging\"} 100
rabbitmq_queue_messages_ready{queue=\"evals\",vhost=\"/\"} 3
# TYPE queue_tokens gauge
queue_tokens{queue=\"embed\",vhost=\"/\"} 48000
";

fn trigger(name: &str, addr: SocketAddr, kv: &[(&str, &str)]) -> ScaledObjectRef {
    let mut meta = vec![
        ("mode", "batch".to_string()),
        ("source", "prometheus".to_string()),
        ("metricsUrl", format!("http://{addr}/metrics")),
        ("metricName", "rabbitmq_queue_messages_ready".to_string()),
    ];
    meta.extend(kv.iter().map(|(k, v)| (*k, v.to_string())));
    so("jobs", name, &meta)
}

#[tokio::test]
async fn an_exporter_s_matching_series_are_the_work_and_its_size_metric_replaces_them_when_given() {
    let answer: Answer = Arc::new(Mutex::new((StatusCode::OK, BODY.to_string())));
    let (addr, _server) = exporter(answer.clone()).await;
    let mut h = Harness::start(settings(100)).await;
    let embed = trigger("embed", addr, &[("metricLabels", "queue=embed,vhost=/")]);
    assert_eq!(h.wait_batch_work(&embed, |r| r.is_ok()).await.unwrap(), 12.0);
    assert!(h.client.is_active(embed.clone()).await.unwrap().into_inner().result);
    let all = trigger("all", addr, &[]);
    assert_eq!(h.wait_batch_work(&all, |r| r.is_ok()).await.unwrap(), 115.0, "every series without matchers");
    let tokens =
        trigger("tokens", addr, &[("metricLabels", "queue=embed,vhost=/"), ("sizeMetricName", "queue_tokens"), ("targetSize", "4000")]);
    let spec = h.client.get_metric_spec(tokens.clone()).await.unwrap().into_inner().metric_specs;
    assert_eq!(spec[0].target_size_float, 4000.0);
    assert_eq!(h.wait_batch_work(&tokens, |r| r.is_ok()).await.unwrap(), 48_000.0, "tokens are the work: 12 Jobs of 4,000");

    // The queue drains: the exporter says so, and so do we.
    *answer.lock().unwrap() = (StatusCode::OK, BODY.replace("} 12", "} 0"));
    h.wait_batch_work(&embed, |r| r.as_ref().is_ok_and(|w| *w == 0.0)).await.unwrap();
    assert!(!h.client.is_active(embed.clone()).await.unwrap().into_inner().result);
    h.stop().await;
}

#[tokio::test]
async fn a_missing_metric_an_error_status_or_a_vanished_exporter_is_unavailable_naming_the_cause() {
    let answer: Answer = Arc::new(Mutex::new((StatusCode::OK, BODY.to_string())));
    let (addr, server) = exporter(answer.clone()).await;
    let mut h = Harness::start(settings(100)).await;
    let absent = trigger("absent", addr, &[("metricLabels", "queue=absent")]);
    let e = h.wait_batch_work(&absent, |r| r.as_ref().is_err_and(|e| e.message().contains("series"))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("no rabbitmq_queue_messages_ready series with {queue=\"absent\"}"), "{}", e.message());

    let t = trigger("status", addr, &[]);
    assert_eq!(h.wait_batch_work(&t, |r| r.is_ok()).await.unwrap(), 115.0);
    *answer.lock().unwrap() = (StatusCode::SERVICE_UNAVAILABLE, "exporter lost its broker".into());
    let e = h.wait_batch_work(&t, |r| r.is_err()).await.unwrap_err();
    assert!(e.code() == Code::Unavailable && e.message().contains("503"), "{e:?}");

    *answer.lock().unwrap() = (StatusCode::OK, BODY.to_string());
    assert_eq!(h.wait_batch_work(&t, |r| r.is_ok()).await.unwrap(), 115.0, "recovers with the exporter");
    server.abort();
    let e = h.wait_batch_work(&t, |r| r.is_err()).await.unwrap_err();
    assert!(e.code() == Code::Unavailable && e.message().contains(&addr.to_string()), "{e:?}");
    h.stop().await;
}
