//! The HTTP side: `/metrics` (our own Prometheus metrics), `/healthz`, `/readyz` and
//! `/api/v1/decisions` (every served ScaledObject's latest decision with each signal's
//! contribution and the reason, plus a short history; every ScaledJob's latest batch decision
//! with its work, Jobs, the cap that bound, cost per hour and projected finish). Each also says
//! when KEDA last asked about it and when its collection stops, which tells an edited
//! ScaledObject's old-metadata target from the live one. Read-only, from memory.
//!
//! `/api/v1/decisions?namespace=NS` lists only the ScaledObjects of one namespace, so that a
//! proxy in front of this port can give each team its own namespace's decisions and nothing
//! else. The port itself should be reachable only by Prometheus and the platform's operators
//! (deploy/networkpolicy.yaml): the full list shows every served fleet's load.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde::Serialize;

use crate::{
    run::{batch::BatchView, registry::Registry, store::StoreView, target::PresenceView, telemetry::Metrics},
    spec::{ScalerSpec, batch::BatchSpec, tenancy::is_namespace_name},
};

/// What the HTTP handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// Set once the server can decide.
    pub registry: Arc<OnceLock<Arc<Registry>>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// True while ready (cleared at shutdown).
    pub ready: Arc<AtomicBool>,
}

#[derive(Serialize)]
struct TargetView {
    namespace: String,
    name: String,
    spec: Arc<ScalerSpec>,
    #[serde(flatten)]
    store: StoreView,
    #[serde(flatten)]
    presence: PresenceView,
}

/// A ScaledJob's latest batch decision.
#[derive(Serialize)]
struct BatchTargetView {
    namespace: String,
    name: String,
    spec: Arc<BatchSpec>,
    #[serde(flatten)]
    store: BatchView,
    #[serde(flatten)]
    presence: PresenceView,
}

#[derive(Serialize)]
struct DecisionsView {
    scaledobjects: Vec<TargetView>,
    scaledjobs: Vec<BatchTargetView>,
}

impl DecisionsView {
    fn of(s: &HttpState, filter: impl Fn(&str, &str) -> bool) -> Self {
        DecisionsView { scaledobjects: views(s, &filter), scaledjobs: batch_views(s, &filter) }
    }
}

/// The router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/decisions/{namespace}/{name}", get(decision))
        .with_state(state)
}

/// OpenMetrics when the scraper asks for it (Prometheus does, first in its Accept list), the
/// classic text format 0.0.4 otherwise (`promtool check metrics`, `curl`).
async fn metrics(State(s): State<HttpState>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let open_metrics = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(accepts_open_metrics);
    if open_metrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.encode_classic())
    }
}

/// Whether an Accept header lists OpenMetrics text with a quality above zero.
fn accepts_open_metrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let open = parts.next().is_some_and(|m| m.eq_ignore_ascii_case("application/openmetrics-text"));
        let refused = parts.any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f64>().ok()) == Some(0.0));
        open && !refused
    })
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Relaxed) && s.registry.get().is_some() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

fn batch_views(s: &HttpState, filter: &impl Fn(&str, &str) -> bool) -> Vec<BatchTargetView> {
    let Some(reg) = s.registry.get() else { return Vec::new() };
    let now = tokio::time::Instant::now();
    let (origin, idle) = (reg.shared().origin, reg.shared().settings.idle_timeout);
    reg.all_batch()
        .into_iter()
        .filter(|t| filter(&t.key.namespace, &t.key.name))
        .map(|t| BatchTargetView {
            namespace: t.key.namespace.clone(),
            name: t.key.name.clone(),
            spec: t.spec.clone(),
            store: t.store.view(now),
            presence: t.presence.view(origin, idle),
        })
        .collect()
}

fn views(s: &HttpState, filter: &impl Fn(&str, &str) -> bool) -> Vec<TargetView> {
    let Some(reg) = s.registry.get() else { return Vec::new() };
    let now = tokio::time::Instant::now();
    let (origin, idle) = (reg.shared().origin, reg.shared().settings.idle_timeout);
    reg.all()
        .into_iter()
        .filter(|t| filter(&t.key.namespace, &t.key.name))
        .map(|t| TargetView {
            namespace: t.key.namespace.clone(),
            name: t.key.name.clone(),
            spec: t.spec.clone(),
            store: t.store.view(now),
            presence: t.presence.view(origin, idle),
        })
        .collect()
}

/// Query parameters of `/api/v1/decisions`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionsQuery {
    /// Only this namespace's ScaledObjects.
    namespace: Option<String>,
}

async fn decisions(
    State(s): State<HttpState>,
    query: Result<Query<DecisionsQuery>, axum::extract::rejection::QueryRejection>,
) -> impl IntoResponse {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("{}; the only parameter is namespace=<namespace>\n", e.body_text())).into_response();
        }
    };
    match q.namespace {
        None => Json(DecisionsView::of(&s, |_, _| true)).into_response(),
        Some(ns) if is_namespace_name(&ns) => Json(DecisionsView::of(&s, |n, _| n == ns)).into_response(),
        Some(ns) => (StatusCode::BAD_REQUEST, format!("namespace={ns:?} is not a Kubernetes namespace name\n")).into_response(),
    }
}

async fn decision(State(s): State<HttpState>, Path((namespace, name)): Path<(String, String)>) -> impl IntoResponse {
    let v = DecisionsView::of(&s, |ns, n| ns == namespace && n == name);
    if v.scaledobjects.is_empty() && v.scaledjobs.is_empty() {
        return (StatusCode::NOT_FOUND, format!("no ScaledObject or ScaledJob {namespace}/{name} is being served\n")).into_response();
    }
    Json(v).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_openmetrics_and_other_readers_the_classic_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(accepts_open_metrics(prometheus));
        assert!(!accepts_open_metrics("*/*"));
        assert!(!accepts_open_metrics("text/plain;version=0.0.4"));
        assert!(!accepts_open_metrics("application/openmetrics-text;q=0"));
    }
}
