//! ScaledObject -> `spec.scaleTargetRef` -> Deployment/StatefulSet -> `spec.selector`: which
//! label selector a ScaledObject's pods carry.
//!
//! A couple of GETs, done when a fleet is set up and every few minutes after (the caller
//! decides), never per RPC. The ScaledObject is read as a `DynamicObject`, so no KEDA CRD types
//! are needed, and a missing or malformed `scaleTargetRef` or `spec.selector` is our error with
//! the object's name rather than a deserialisation failure.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use tracing::{debug, instrument};

use super::{DiscoveryError, selector::selector_string};

/// KEDA's ScaledObject kind.
const SCALED_OBJECT_KIND: &str = "ScaledObject";
/// KEDA's API group and version for ScaledObject and ScaledJob.
const KEDA_GROUP: &str = "keda.sh";
const KEDA_VERSION: &str = "v1alpha1";
/// KEDA's defaults for an omitted `scaleTargetRef.kind` / `scaleTargetRef.apiVersion`.
const DEFAULT_TARGET_KIND: &str = "Deployment";
const DEFAULT_TARGET_API_VERSION: &str = "apps/v1";

/// ScaledObject (keda.sh/v1alpha1, read as DynamicObject) -> spec.scaleTargetRef ->
/// Deployment or StatefulSet (apps/v1) -> its spec.selector, rendered as a label-selector
/// string (matchLabels AND matchExpressions: In, NotIn, Exists, DoesNotExist), e.g.
/// `"app=vllm,tier in (a,b)"`.
///
/// ScaledJobs are refused with [`DiscoveryError::ScaledJobUnsupported`]: they have no
/// scale target whose pods could be scraped. Needs RBAC `get` on `scaledobjects`,
/// `deployments` and `statefulsets` (and, to tell a ScaledJob apart from a missing
/// ScaledObject, `get` on `scaledjobs`; without it a ScaledJob is reported as NotFound).
#[instrument(skip(client))]
pub(super) async fn resolve_selector(client: &Client, namespace: &str, scaled_object: &str) -> Result<String, DiscoveryError> {
    let so = get_scaled_object(client, namespace, scaled_object).await?;
    let target = ScaleTarget::from_scaled_object(&so, namespace, scaled_object)?;
    let selector = get_workload_selector(client, namespace, scaled_object, &target).await?;
    let workload = format!("{} {namespace}/{}", target.kind, target.name);
    let rendered = selector_string(&selector).map_err(|e| e.in_workload(workload))?;
    debug!(kind = %target.kind, target = %target.name, selector = %rendered, "resolved pod selector");
    Ok(rendered)
}

/// GETs the ScaledObject; on 404 checks whether the name is a ScaledJob to say so.
async fn get_scaled_object(client: &Client, namespace: &str, name: &str) -> Result<DynamicObject, DiscoveryError> {
    let api = keda_api(client, namespace, SCALED_OBJECT_KIND, "scaledobjects");
    match api.get(name).await {
        Ok(obj) => Ok(obj),
        Err(e) if is_not_found(&e) => Err(not_found_scaled_object(client, namespace, name).await),
        Err(e) => Err(api_error(format!("get ScaledObject {namespace}/{name}"), e)),
    }
}

/// The error for a missing ScaledObject: [`DiscoveryError::ScaledJobUnsupported`] when a
/// ScaledJob of that name exists, NotFound otherwise (also when the probe itself fails, e.g.
/// for lack of RBAC on scaledjobs).
async fn not_found_scaled_object(client: &Client, namespace: &str, name: &str) -> DiscoveryError {
    let api = keda_api(client, namespace, "ScaledJob", "scaledjobs");
    match api.get(name).await {
        Ok(_) => DiscoveryError::ScaledJobUnsupported { namespace: namespace.to_owned(), name: name.to_owned() },
        Err(e) => {
            if !is_not_found(&e) {
                debug!(error = %e, "could not check for a ScaledJob of the same name");
            }
            DiscoveryError::NotFound {
                kind: SCALED_OBJECT_KIND.to_owned(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                scaled_object: None,
            }
        }
    }
}

/// GETs the scale target (as a DynamicObject, so a missing or malformed selector is our
/// error rather than a deserialisation failure) and parses its `spec.selector`.
async fn get_workload_selector(
    client: &Client,
    namespace: &str,
    scaled_object: &str,
    target: &ScaleTarget,
) -> Result<LabelSelector, DiscoveryError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &target.resource);
    let obj = match api.get(&target.name).await {
        Ok(obj) => obj,
        Err(e) if is_not_found(&e) => {
            return Err(DiscoveryError::NotFound {
                kind: target.kind.clone(),
                namespace: namespace.to_owned(),
                name: target.name.clone(),
                scaled_object: Some(format!("{namespace}/{scaled_object}")),
            });
        }
        Err(e) => {
            return Err(api_error(format!("get {} {namespace}/{}", target.kind, target.name), e));
        }
    };
    let missing = |detail: Option<String>| DiscoveryError::SelectorMissing {
        kind: target.kind.clone(),
        namespace: namespace.to_owned(),
        name: target.name.clone(),
        scaled_object: scaled_object.to_owned(),
        detail,
    };
    let raw = obj.data.get("spec").and_then(|spec| spec.get("selector")).filter(|sel| !sel.is_null()).ok_or_else(|| missing(None))?;
    serde_json::from_value(raw.clone()).map_err(|e| missing(Some(e.to_string())))
}

/// Api for a namespaced KEDA resource read as DynamicObject (no CRD types needed).
fn keda_api(client: &Client, namespace: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(KEDA_GROUP, KEDA_VERSION, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// A supported scale target, resolved from `spec.scaleTargetRef`.
#[derive(Debug)]
struct ScaleTarget {
    kind: String,
    name: String,
    resource: ApiResource,
}

impl ScaleTarget {
    /// Reads `spec.scaleTargetRef` with KEDA's defaults (kind Deployment, apiVersion apps/v1)
    /// and accepts only apps/v1 Deployment and StatefulSet.
    fn from_scaled_object(so: &DynamicObject, namespace: &str, scaled_object: &str) -> Result<Self, DiscoveryError> {
        let invalid = |reason: &str| DiscoveryError::InvalidScaledObject {
            namespace: namespace.to_owned(),
            name: scaled_object.to_owned(),
            reason: reason.to_owned(),
        };
        let target_ref =
            so.data.get("spec").and_then(|spec| spec.get("scaleTargetRef")).ok_or_else(|| invalid("spec.scaleTargetRef is missing"))?;
        let field = |name: &str| target_ref.get(name).and_then(serde_json::Value::as_str);
        let name = field("name").filter(|n| !n.is_empty()).ok_or_else(|| invalid("spec.scaleTargetRef.name is missing or empty"))?;
        let kind = field("kind").filter(|k| !k.is_empty()).unwrap_or(DEFAULT_TARGET_KIND);
        let api_version = field("apiVersion").filter(|v| !v.is_empty()).unwrap_or(DEFAULT_TARGET_API_VERSION);
        let resource = match (api_version, kind) {
            ("apps/v1", "Deployment") => ApiResource::erase::<Deployment>(&()),
            ("apps/v1", "StatefulSet") => ApiResource::erase::<StatefulSet>(&()),
            _ => {
                return Err(DiscoveryError::UnsupportedKind {
                    namespace: namespace.to_owned(),
                    scaled_object: scaled_object.to_owned(),
                    kind: kind.to_owned(),
                    api_version: api_version.to_owned(),
                    name: name.to_owned(),
                });
            }
        };
        Ok(Self { kind: kind.to_owned(), name: name.to_owned(), resource })
    }
}

/// True for an API answer of 404 Not Found.
fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

fn api_error(action: String, err: kube::Error) -> DiscoveryError {
    DiscoveryError::Api { action, source: Box::new(err) }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use serde_json::{Value, json};

    use super::super::mock_api::{STEP, mock_discovery, serve};
    use super::*;

    fn not_found(kind: &str, name: &str) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound",
            "details": {"name": name, "kind": kind}, "code": 404
        })
    }

    fn scaled_object(target_ref: Value) -> Value {
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "so", "namespace": "ns"},
            "spec": {"scaleTargetRef": target_ref, "triggers": []}
        })
    }

    fn workload(kind: &str, name: &str, selector: Option<Value>) -> Value {
        let mut spec = json!({"replicas": 1, "template": {}});
        if let Some(selector) = selector {
            spec["selector"] = selector;
        }
        json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec
        })
    }

    const SO_PATH: &str = "/apis/keda.sh/v1alpha1/namespaces/ns/scaledobjects/so";

    /// Runs `resolve_selector("ns", "so")` against a scenario of (path, status, body) answers.
    async fn resolve_with(answers: Vec<(&'static str, StatusCode, Value)>) -> Result<String, DiscoveryError> {
        let (discovery, mut handle) = mock_discovery();
        let scenario = tokio::spawn(async move {
            for (path, status, body) in answers {
                serve(&mut handle, path, status, body).await;
            }
        });
        let result = tokio::time::timeout(STEP, discovery.resolve_selector("ns", "so")).await.expect("resolve_selector timed out");
        scenario.await.expect("scenario assertions");
        result
    }

    // ---------- resolve_selector ----------

    #[tokio::test]
    async fn resolve_deployment() {
        let selector = json!({
            "matchLabels": {"app": "vllm"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]
        });
        let got = resolve_with(vec![
            (SO_PATH, StatusCode::OK, scaled_object(json!({"name": "x", "kind": "Deployment", "apiVersion": "apps/v1"}))),
            ("/apis/apps/v1/namespaces/ns/deployments/x", StatusCode::OK, workload("Deployment", "x", Some(selector))),
        ])
        .await;
        assert_eq!(got.expect("selector"), "app=vllm,tier in (a,b)");
    }

    #[tokio::test]
    async fn resolve_statefulset() {
        let got = resolve_with(vec![
            (SO_PATH, StatusCode::OK, scaled_object(json!({"name": "db", "kind": "StatefulSet"}))),
            (
                "/apis/apps/v1/namespaces/ns/statefulsets/db",
                StatusCode::OK,
                workload("StatefulSet", "db", Some(json!({"matchLabels": {"app": "db"}}))),
            ),
        ])
        .await;
        assert_eq!(got.expect("selector"), "app=db");
    }

    #[tokio::test]
    async fn resolve_kind_omitted_defaults_to_deployment() {
        let got = resolve_with(vec![
            (SO_PATH, StatusCode::OK, scaled_object(json!({"name": "x"}))),
            (
                "/apis/apps/v1/namespaces/ns/deployments/x",
                StatusCode::OK,
                workload("Deployment", "x", Some(json!({"matchLabels": {"app": "vllm"}}))),
            ),
        ])
        .await;
        assert_eq!(got.expect("selector"), "app=vllm");
    }

    #[tokio::test]
    async fn resolve_scaled_object_not_found() {
        let err = resolve_with(vec![
            (SO_PATH, StatusCode::NOT_FOUND, not_found("scaledobjects", "so")),
            ("/apis/keda.sh/v1alpha1/namespaces/ns/scaledjobs/so", StatusCode::NOT_FOUND, not_found("scaledjobs", "so")),
        ])
        .await
        .expect_err("missing ScaledObject");
        assert!(matches!(&err, DiscoveryError::NotFound { kind, name, .. } if kind == "ScaledObject" && name == "so"), "{err:?}");
        assert_eq!(err.to_string(), "ScaledObject ns/so not found");
    }

    #[tokio::test]
    async fn resolve_scaled_job_is_refused() {
        let job = json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob",
            "metadata": {"name": "so", "namespace": "ns"}, "spec": {"jobTargetRef": {}}
        });
        let err = resolve_with(vec![
            (SO_PATH, StatusCode::NOT_FOUND, not_found("scaledobjects", "so")),
            ("/apis/keda.sh/v1alpha1/namespaces/ns/scaledjobs/so", StatusCode::OK, job),
        ])
        .await
        .expect_err("ScaledJob");
        assert!(matches!(err, DiscoveryError::ScaledJobUnsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("ScaledJob"), "{err}");
    }

    #[tokio::test]
    async fn resolve_workload_not_found_names_the_scaled_object() {
        let err = resolve_with(vec![
            (SO_PATH, StatusCode::OK, scaled_object(json!({"name": "x"}))),
            ("/apis/apps/v1/namespaces/ns/deployments/x", StatusCode::NOT_FOUND, not_found("deployments", "x")),
        ])
        .await
        .expect_err("missing Deployment");
        assert_eq!(err.to_string(), "Deployment ns/x not found (scaleTargetRef of ScaledObject ns/so)");
    }

    #[tokio::test]
    async fn resolve_unsupported_kind() {
        let err = resolve_with(vec![(
            SO_PATH,
            StatusCode::OK,
            scaled_object(json!({"name": "r", "kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1"})),
        )])
        .await
        .expect_err("unsupported kind");
        assert!(matches!(err, DiscoveryError::UnsupportedKind { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("ns/so") && msg.contains("Rollout"), "{msg}");
        assert!(msg.contains("argoproj.io/v1alpha1"), "{msg}");
    }

    #[tokio::test]
    async fn resolve_scale_target_ref_without_name() {
        let err =
            resolve_with(vec![(SO_PATH, StatusCode::OK, scaled_object(json!({"kind": "Deployment"})))]).await.expect_err("no target name");
        assert!(matches!(err, DiscoveryError::InvalidScaledObject { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn resolve_workload_without_selector() {
        let err = resolve_with(vec![
            (SO_PATH, StatusCode::OK, scaled_object(json!({"name": "x"}))),
            ("/apis/apps/v1/namespaces/ns/deployments/x", StatusCode::OK, workload("Deployment", "x", None)),
        ])
        .await
        .expect_err("no selector");
        assert!(matches!(err, DiscoveryError::SelectorMissing { .. }), "{err:?}");
        assert!(err.to_string().contains("Deployment ns/x"), "{err}");
    }

    #[tokio::test]
    async fn resolve_workload_with_empty_selector() {
        let err = resolve_with(vec![
            (SO_PATH, StatusCode::OK, scaled_object(json!({"name": "x"}))),
            ("/apis/apps/v1/namespaces/ns/deployments/x", StatusCode::OK, workload("Deployment", "x", Some(json!({})))),
        ])
        .await
        .expect_err("empty selector");
        assert!(matches!(err, DiscoveryError::EmptySelector { .. }), "{err:?}");
        assert!(err.to_string().starts_with("Deployment ns/x: "), "{err}");
    }

    #[tokio::test]
    async fn resolve_forbidden_is_an_api_error() {
        let forbidden = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "scaledobjects.keda.sh \"so\" is forbidden", "reason": "Forbidden",
            "code": 403
        });
        let err = resolve_with(vec![(SO_PATH, StatusCode::FORBIDDEN, forbidden)]).await.expect_err("forbidden");
        assert!(matches!(err, DiscoveryError::Api { .. }), "{err:?}");
        assert!(err.to_string().contains("get ScaledObject ns/so"), "{err}");
    }
}
