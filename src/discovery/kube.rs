//! Pod discovery through the Kubernetes API.
//!
//! Two jobs, kept apart on purpose:
//!
//! * [`KubeDiscovery::resolve_selector`] turns a KEDA ScaledObject into the label selector of the
//!   pods it scales (ScaledObject -> `spec.scaleTargetRef` -> Deployment/StatefulSet ->
//!   `spec.selector`). This is a couple of GETs, done when a fleet is set up, never per RPC.
//! * [`KubeDiscovery::watch_pods`] keeps a watch-backed cache of the pods matching a selector.
//!   Reading it ([`PodWatch::snapshot`]) is a memory read: KEDA's RPCs must answer from memory
//!   (see the external scaler spec, section 2), and the scrape loop must not hammer the API
//!   server with a LIST per tick.
//!
//! Watches are shared: every caller asking for the same `(namespace, selector)` gets a handle to
//! the same watcher+reflector task, which stops when the last handle is dropped.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{Instrument, debug, info, info_span, instrument, warn};

use super::PodInfo;

/// How long [`KubeDiscovery::connect`] and [`KubeDiscovery::ping`] wait for the API server's
/// version endpoint. Without a bound a black-holed API server would stall start-up (and the
/// health check) for the client's much longer read timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// KEDA's ScaledObject kind.
const SCALED_OBJECT_KIND: &str = "ScaledObject";
/// KEDA's API group and version for ScaledObject and ScaledJob.
const KEDA_GROUP: &str = "keda.sh";
const KEDA_VERSION: &str = "v1alpha1";
/// KEDA's defaults for an omitted `scaleTargetRef.kind` / `scaleTargetRef.apiVersion`.
const DEFAULT_TARGET_KIND: &str = "Deployment";
const DEFAULT_TARGET_API_VERSION: &str = "apps/v1";

/// Why discovery failed. Every variant names the object (and, where it matters, the ScaledObject
/// that led there) so the message alone, as surfaced in a gRPC status, is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No in-cluster config and no usable kubeconfig.
    #[error("cannot build a Kubernetes client (no in-cluster config or kubeconfig?): {0}")]
    Config(#[source] Box<kube::Error>),

    /// The API server did not answer the version probe.
    #[error("Kubernetes API server did not answer the version probe: {0}")]
    Unreachable(#[source] Box<kube::Error>),

    /// The API server did not answer the version probe in time.
    #[error("Kubernetes API server did not answer the version probe within {0:?}")]
    ProbeTimeout(Duration),

    /// An object on the path ScaledObject -> workload does not exist.
    #[error("{kind} {namespace}/{name} not found{}", referenced_by(.scaled_object))]
    NotFound {
        /// Kind of the missing object (`ScaledObject`, `Deployment`, ...).
        kind: String,
        /// Namespace of the missing object.
        namespace: String,
        /// Name of the missing object.
        name: String,
        /// The ScaledObject whose `scaleTargetRef` pointed at the missing workload, if any.
        scaled_object: Option<String>,
    },

    /// The name KEDA sent belongs to a ScaledJob: its Jobs' pods come and go per job, there is
    /// no long-lived fleet to scrape.
    #[error(
        "{namespace}/{name} is a ScaledJob, not a ScaledObject: ScaledJobs have no scale target \
         whose pods could be scraped; use this scaler with ScaledObjects only"
    )]
    ScaledJobUnsupported {
        /// Namespace of the ScaledJob.
        namespace: String,
        /// Name of the ScaledJob.
        name: String,
    },

    /// The ScaledObject exists but its `spec.scaleTargetRef` is unusable.
    #[error("ScaledObject {namespace}/{name}: {reason}")]
    InvalidScaledObject {
        /// Namespace of the ScaledObject.
        namespace: String,
        /// Name of the ScaledObject.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// The scale target is not a Deployment or StatefulSet of apps/v1.
    #[error(
        "ScaledObject {namespace}/{scaled_object}: scale target {kind} {name:?} (apiVersion \
         {api_version}) is not supported; only apps/v1 Deployment and StatefulSet are"
    )]
    UnsupportedKind {
        /// Namespace of the ScaledObject.
        namespace: String,
        /// Name of the ScaledObject being resolved.
        scaled_object: String,
        /// `scaleTargetRef.kind` (after defaulting).
        kind: String,
        /// `scaleTargetRef.apiVersion` (after defaulting).
        api_version: String,
        /// `scaleTargetRef.name`.
        name: String,
    },

    /// The workload has no `spec.selector` (or it is not a label selector object).
    #[error(
        "{kind} {namespace}/{name} (scale target of ScaledObject {namespace}/{scaled_object}) \
         has no usable spec.selector{}",
        colon_detail(.detail)
    )]
    SelectorMissing {
        /// Kind of the workload.
        kind: String,
        /// Namespace of the workload and its ScaledObject.
        namespace: String,
        /// Name of the workload.
        name: String,
        /// Name of the ScaledObject being resolved.
        scaled_object: String,
        /// Parse error, when `spec.selector` exists but is malformed.
        detail: Option<String>,
    },

    /// The selector selects nothing in particular, i.e. every pod of the namespace.
    #[error("{}empty label selector: it would select every pod in the namespace", owner_prefix(.workload))]
    EmptySelector {
        /// Workload the selector belongs to (`Deployment ns/name`), when known.
        workload: Option<String>,
    },

    /// The selector cannot be rendered as a label-selector string.
    #[error("{}invalid label selector: {reason}", owner_prefix(.workload))]
    InvalidSelector {
        /// Workload the selector belongs to (`Deployment ns/name`), when known.
        workload: Option<String>,
        /// What is wrong.
        reason: String,
    },

    /// Any other API failure (forbidden, server error, timeout, undecodable answer).
    #[error("Kubernetes API call failed: {action}: {source}")]
    Api {
        /// What we tried, e.g. `get ScaledObject ns/name`.
        action: String,
        /// The client error.
        #[source]
        source: Box<kube::Error>,
    },
}

fn referenced_by(scaled_object: &Option<String>) -> String {
    scaled_object.as_ref().map(|so| format!(" (scaleTargetRef of ScaledObject {so})")).unwrap_or_default()
}

fn colon_detail(detail: &Option<String>) -> String {
    detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
}

fn owner_prefix(workload: &Option<String>) -> String {
    workload.as_ref().map(|w| format!("{w}: ")).unwrap_or_default()
}

impl DiscoveryError {
    /// Attaches the owning workload to a selector error from [`selector_string`].
    fn in_workload(self, name: String) -> Self {
        match self {
            Self::EmptySelector { workload: None } => Self::EmptySelector { workload: Some(name) },
            Self::InvalidSelector { workload: None, reason } => Self::InvalidSelector { workload: Some(name), reason },
            other => other,
        }
    }
}

/// True for an API answer of 404 Not Found.
fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

fn api_error(action: String, err: kube::Error) -> DiscoveryError {
    DiscoveryError::Api { action, source: Box::new(err) }
}

/// Key of a shared watch.
type WatchKey = (String, String);

/// Entry point of Kubernetes discovery: a client plus the registry of shared pod watches.
///
/// Cheap to clone; clones share the client and the registry.
#[derive(Clone)]
pub struct KubeDiscovery {
    client: Client,
    /// Live watches by `(namespace, selector)`. Weak so that dropping the last [`PodWatch`] stops
    /// the task; dead entries are removed lazily by [`KubeDiscovery::watch_pods`] (never from a
    /// `Drop`, which could run while this lock is held).
    watches: Arc<Mutex<HashMap<WatchKey, Weak<WatchShared>>>>,
}

impl fmt::Debug for KubeDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeDiscovery")
            .field("default_namespace", &self.client.default_namespace())
            .field("live_watches", &self.live_watches())
            .finish()
    }
}

impl KubeDiscovery {
    /// Connects with the in-cluster or kubeconfig config and checks the API server answers
    /// (apiserver_version), so the health service can report SERVING only when discovery really
    /// works.
    pub async fn connect() -> Result<Self, DiscoveryError> {
        let client = Client::try_default().await.map_err(|e| DiscoveryError::Config(Box::new(e)))?;
        let discovery = Self::from_client(client);
        discovery.ping().await?;
        Ok(discovery)
    }

    /// Wraps an existing client (tests, or a client configured elsewhere). Does no I/O.
    pub fn from_client(client: Client) -> Self {
        Self { client, watches: Arc::default() }
    }

    /// Asks the API server for its version (bounded by a 10 s timeout): the cheapest call that
    /// proves the API server is reachable and our credentials are accepted. Usable for periodic
    /// health checks too.
    pub async fn ping(&self) -> Result<(), DiscoveryError> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.client.apiserver_version()).await {
            Ok(Ok(info)) => {
                debug!(version = %info.git_version, "Kubernetes API server answered");
                Ok(())
            }
            Ok(Err(e)) => Err(DiscoveryError::Unreachable(Box::new(e))),
            Err(_) => Err(DiscoveryError::ProbeTimeout(PROBE_TIMEOUT)),
        }
    }

    /// ScaledObject (keda.sh/v1alpha1, read as DynamicObject) -> spec.scaleTargetRef ->
    /// Deployment or StatefulSet (apps/v1) -> its spec.selector, rendered as a label-selector
    /// string (matchLabels AND matchExpressions: In, NotIn, Exists, DoesNotExist), e.g.
    /// `"app=vllm,tier in (a,b)"`.
    ///
    /// ScaledJobs are refused with [`DiscoveryError::ScaledJobUnsupported`]: they have no
    /// scale target whose pods could be scraped. Needs RBAC `get` on `scaledobjects`,
    /// `deployments` and `statefulsets` (and, to tell a ScaledJob apart from a missing
    /// ScaledObject, `get` on `scaledjobs`; without it a ScaledJob is reported as NotFound).
    #[instrument(skip(self))]
    pub async fn resolve_selector(&self, namespace: &str, scaled_object: &str) -> Result<String, DiscoveryError> {
        let so = self.get_scaled_object(namespace, scaled_object).await?;
        let target = ScaleTarget::from_scaled_object(&so, namespace, scaled_object)?;
        let selector = self.get_workload_selector(namespace, scaled_object, &target).await?;
        let workload = format!("{} {namespace}/{}", target.kind, target.name);
        let rendered = selector_string(&selector).map_err(|e| e.in_workload(workload))?;
        debug!(kind = %target.kind, target = %target.name, selector = %rendered, "resolved pod selector");
        Ok(rendered)
    }

    /// GETs the ScaledObject; on 404 checks whether the name is a ScaledJob to say so.
    async fn get_scaled_object(&self, namespace: &str, name: &str) -> Result<DynamicObject, DiscoveryError> {
        let api = keda_api(&self.client, namespace, SCALED_OBJECT_KIND, "scaledobjects");
        match api.get(name).await {
            Ok(obj) => Ok(obj),
            Err(e) if is_not_found(&e) => Err(self.not_found_scaled_object(namespace, name).await),
            Err(e) => Err(api_error(format!("get ScaledObject {namespace}/{name}"), e)),
        }
    }

    /// The error for a missing ScaledObject: [`DiscoveryError::ScaledJobUnsupported`] when a
    /// ScaledJob of that name exists, NotFound otherwise (also when the probe itself fails, e.g.
    /// for lack of RBAC on scaledjobs).
    async fn not_found_scaled_object(&self, namespace: &str, name: &str) -> DiscoveryError {
        let api = keda_api(&self.client, namespace, "ScaledJob", "scaledjobs");
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
        &self,
        namespace: &str,
        scaled_object: &str,
        target: &ScaleTarget,
    ) -> Result<LabelSelector, DiscoveryError> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &target.resource);
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

    /// A shared, watch-backed view of the pods matching (namespace, selector). Several callers
    /// asking for the same pair share ONE kube_runtime watcher+reflector task; the task is stopped
    /// when the last PodWatch handle is dropped. No API call per snapshot, no relist per tick:
    /// only the watch (plain LIST+WATCH, which any API server since 1.20 supports; a broken watch
    /// — API server restart, 410 Gone — recovers by itself with backoff while the last known
    /// pods stay readable).
    ///
    /// Must be called from within a Tokio runtime (it spawns the watch task). Needs RBAC `list`
    /// and `watch` on `pods` in `namespace`.
    pub fn watch_pods(&self, namespace: &str, selector: &str) -> PodWatch {
        let key = (namespace.to_owned(), selector.to_owned());
        let mut watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = watches.get(&key).and_then(Weak::upgrade) {
            return PodWatch { shared };
        }
        watches.retain(|_, weak| weak.strong_count() > 0);
        let shared = Arc::new(WatchShared::spawn(self.client.clone(), namespace, selector));
        watches.insert(key, Arc::downgrade(&shared));
        PodWatch { shared }
    }

    /// Number of pod watches currently running (for tests, metrics and debugging).
    pub fn live_watches(&self) -> usize {
        let watches = self.watches.lock().unwrap_or_else(PoisonError::into_inner);
        watches.values().filter(|w| w.strong_count() > 0).count()
    }
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

/// State shared by all [`PodWatch`] handles of one `(namespace, selector)`; dropping it (with the
/// last handle) aborts the watch task.
struct WatchShared {
    namespace: String,
    selector: String,
    store: Store<Pod>,
    /// Becomes `true` at the first completed initial list and stays so.
    synced: watch::Receiver<bool>,
    task: AbortHandle,
}

impl WatchShared {
    /// Spawns the watcher+reflector task feeding a fresh store.
    fn spawn(client: Client, namespace: &str, selector: &str) -> Self {
        let (store, writer) = reflector::store::<Pod>();
        let (synced_tx, synced) = watch::channel(false);
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let span = info_span!("pod_watch", namespace = %namespace, selector = %selector);
        let task = tokio::spawn(run_pod_watch(api, selector.to_owned(), writer, synced_tx).instrument(span));
        Self { namespace: namespace.to_owned(), selector: selector.to_owned(), store, synced, task: task.abort_handle() }
    }
}

impl Drop for WatchShared {
    fn drop(&mut self) {
        debug!(namespace = %self.namespace, selector = %self.selector, "last handle dropped, stopping pod watch");
        self.task.abort();
    }
}

/// The watch task: LIST+WATCH with the default backoff, into the reflector store. Errors are
/// logged once per outage (the watcher retries by itself); the store keeps its contents until
/// the next successful relist replaces them atomically.
async fn run_pod_watch(api: Api<Pod>, selector: String, writer: reflector::store::Writer<Pod>, synced: watch::Sender<bool>) {
    info!("starting pod watch");
    let config = watcher::Config::default().labels(&selector);
    let stream = watcher(api, config).default_backoff().modify(|pod| pod.managed_fields_mut().clear()).reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let mut failing = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                if failing {
                    info!("pod watch recovered");
                    failing = false;
                }
                if matches!(event, watcher::Event::InitDone) {
                    debug!("pod list complete");
                    synced.send_replace(true);
                }
            }
            Err(e) if failing => debug!(error = %e, "pod watch still failing"),
            Err(e) => {
                warn!(error = %e, "pod watch failed; serving last known pods and retrying with backoff");
                failing = true;
            }
        }
    }
    warn!("pod watch stream ended unexpectedly");
}

/// A handle to a shared pod watch. Cheap to clone; the watch runs while any handle lives.
#[derive(Clone)]
pub struct PodWatch {
    shared: Arc<WatchShared>,
}

impl fmt::Debug for PodWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodWatch")
            .field("namespace", &self.shared.namespace)
            .field("selector", &self.shared.selector)
            .field("synced", &self.is_synced())
            .finish()
    }
}

impl PodWatch {
    /// Current pods from the reflector store, converted to [`PodInfo`] (ready = Ready condition
    /// True and no deletionTimestamp; ip from status.podIP; node from spec.nodeName), sorted by
    /// name. Cheap, no I/O. While the API server is unreachable this is the last known state.
    pub fn snapshot(&self) -> Vec<PodInfo> {
        let mut pods: Vec<PodInfo> = self.shared.store.state().iter().filter_map(|pod| pod_info(pod)).collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        pods
    }

    /// True once the initial list has completed (store ready), so callers can tell "no pods"
    /// from "not synced yet". Stays true during later outages (the store then holds the last
    /// known pods).
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Wait until synced (with a caller-chosen timeout outside). Never returns if the watch
    /// task died before syncing (it does not end on its own), so always bound it.
    pub async fn wait_synced(&self) {
        let mut synced = self.shared.synced.clone();
        if synced.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Namespace being watched.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// Label selector being watched.
    pub fn selector(&self) -> &str {
        &self.shared.selector
    }
}

/// Pure conversion, unit-tested: k8s Pod -> PodInfo. `None` for an object without name or
/// namespace (never the case for pods served by the API server). An unparsable `status.podIP`
/// counts as no IP.
pub fn pod_info(pod: &Pod) -> Option<PodInfo> {
    let name = pod.metadata.name.clone()?;
    let namespace = pod.metadata.namespace.clone()?;
    let status = pod.status.as_ref();
    let ip = status.and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse::<IpAddr>().ok());
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|conds| conds.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let deleting = pod.metadata.deletion_timestamp.is_some();
    Some(PodInfo { name, namespace, ip, node, ready: ready_condition && !deleting })
}

/// Pure conversion, unit-tested: LabelSelector -> selector string; errors on an empty selector
/// (would select every pod in the namespace) and on unknown operators.
///
/// Output is canonical (matchLabels by key, then expressions sorted, values sorted and
/// deduplicated), so equal selectors give equal strings and thus share one [`PodWatch`].
pub fn selector_string(sel: &LabelSelector) -> Result<String, DiscoveryError> {
    let mut terms: Vec<String> = sel.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    let mut expressions = sel.match_expressions.iter().flatten().map(expression_string).collect::<Result<Vec<_>, _>>()?;
    expressions.sort();
    expressions.dedup();
    terms.extend(expressions);
    if terms.is_empty() {
        return Err(DiscoveryError::EmptySelector { workload: None });
    }
    Ok(terms.join(","))
}

/// One matchExpressions entry in label-selector syntax (`k in (a,b)`, `k notin (a)`, `k`, `!k`).
fn expression_string(req: &LabelSelectorRequirement) -> Result<String, DiscoveryError> {
    let invalid = |reason: String| DiscoveryError::InvalidSelector { workload: None, reason };
    if req.key.is_empty() {
        return Err(invalid("matchExpressions entry with an empty key".into()));
    }
    let mut values: Vec<&str> = req.values.iter().flatten().map(String::as_str).collect();
    values.sort_unstable();
    values.dedup();
    let key = &req.key;
    let op = req.operator.as_str();
    match op {
        "In" | "NotIn" if values.is_empty() => Err(invalid(format!("operator {op} on key {key:?} needs at least one value"))),
        "In" => Ok(format!("{key} in ({})", values.join(","))),
        "NotIn" => Ok(format!("{key} notin ({})", values.join(","))),
        "Exists" | "DoesNotExist" if !values.is_empty() => Err(invalid(format!("operator {op} on key {key:?} must not have values"))),
        "Exists" => Ok(key.clone()),
        "DoesNotExist" => Ok(format!("!{key}")),
        _ => Err(invalid(format!("unknown operator {op:?} on key {key:?} (expected In, NotIn, Exists or DoesNotExist)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response, StatusCode};
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use kube::client::Body;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use tower_test::mock;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;
    type Responder = mock::SendResponse<Response<Body>>;

    /// Upper bound for any single wait in these tests, so a mismatch fails instead of hanging.
    const STEP: Duration = Duration::from_secs(5);

    // ---------- pod_info ----------

    fn pod(name: &str, ready: Option<&str>, ip: Option<&str>) -> Pod {
        let conditions = ready.map(|status| vec![PodCondition { type_: "Ready".into(), status: status.into(), ..Default::default() }]);
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(PodSpec { node_name: Some("node-1".into()), ..Default::default() }),
            status: Some(PodStatus { pod_ip: ip.map(Into::into), conditions, ..Default::default() }),
        }
    }

    #[test]
    fn pod_info_ready() {
        let info = pod_info(&pod("a", Some("True"), Some("10.0.0.7"))).expect("pod info");
        assert_eq!(
            info,
            PodInfo {
                name: "a".into(),
                namespace: "ns".into(),
                ip: Some("10.0.0.7".parse().expect("ip")),
                node: Some("node-1".into()),
                ready: true,
            }
        );
        assert!(info.scrapeable().is_some());
    }

    #[test]
    fn pod_info_not_ready() {
        let info = pod_info(&pod("a", Some("False"), Some("10.0.0.7"))).expect("pod info");
        assert!(!info.ready);
        assert_eq!(info.ip, Some("10.0.0.7".parse().expect("ip")));
        assert!(info.scrapeable().is_none());
    }

    #[test]
    fn pod_info_no_ip() {
        let info = pod_info(&pod("a", Some("True"), None)).expect("pod info");
        assert!(info.ready);
        assert_eq!(info.ip, None);
        assert!(info.scrapeable().is_none());
        let garbage = pod_info(&pod("a", Some("True"), Some("not-an-ip"))).expect("pod info");
        assert_eq!(garbage.ip, None);
    }

    #[test]
    fn pod_info_ipv6() {
        let info = pod_info(&pod("a", Some("True"), Some("fd00::7"))).expect("pod info");
        assert_eq!(info.ip, Some("fd00::7".parse().expect("ip")));
    }

    #[test]
    fn pod_info_deleting_is_not_ready() {
        let mut p = pod("a", Some("True"), Some("10.0.0.7"));
        p.metadata.deletion_timestamp = Some(Time(Default::default()));
        let info = pod_info(&p).expect("pod info");
        assert!(!info.ready);
    }

    #[test]
    fn pod_info_no_conditions_or_status() {
        let info = pod_info(&pod("a", None, Some("10.0.0.7"))).expect("pod info");
        assert!(!info.ready);
        let mut bare = pod("b", None, None);
        bare.status = None;
        bare.spec = None;
        let info = pod_info(&bare).expect("pod info");
        assert!(!info.ready);
        assert_eq!((info.ip, info.node), (None, None));
    }

    #[test]
    fn pod_info_needs_name_and_namespace() {
        let mut p = pod("a", Some("True"), None);
        p.metadata.name = None;
        assert!(pod_info(&p).is_none());
        let mut p = pod("a", Some("True"), None);
        p.metadata.namespace = None;
        assert!(pod_info(&p).is_none());
    }

    // ---------- selector_string ----------

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn selector_match_labels_only_sorted() {
        let sel = LabelSelector { match_labels: labels(&[("tier", "gpu"), ("app", "vllm")]), match_expressions: None };
        assert_eq!(selector_string(&sel).expect("selector"), "app=vllm,tier=gpu");
    }

    #[test]
    fn selector_each_operator() {
        let cases = [
            (req("tier", "In", &["b", "a"]), "tier in (a,b)"),
            (req("tier", "NotIn", &["x"]), "tier notin (x)"),
            (req("gpu", "Exists", &[]), "gpu"),
            (req("canary", "DoesNotExist", &[]), "!canary"),
        ];
        for (expr, want) in cases {
            let sel = LabelSelector { match_labels: None, match_expressions: Some(vec![expr]) };
            assert_eq!(selector_string(&sel).expect("selector"), want);
        }
    }

    #[test]
    fn selector_labels_and_expressions_stable() {
        let exprs = vec![req("tier", "In", &["b", "a", "b"]), req("canary", "DoesNotExist", &[]), req("gpu", "Exists", &[])];
        let mut reversed = exprs.clone();
        reversed.reverse();
        let want = "app=vllm,!canary,gpu,tier in (a,b)";
        for match_expressions in [exprs, reversed] {
            let sel = LabelSelector { match_labels: labels(&[("app", "vllm")]), match_expressions: Some(match_expressions) };
            assert_eq!(selector_string(&sel).expect("selector"), want);
        }
    }

    #[test]
    fn selector_empty_is_an_error() {
        for sel in [LabelSelector::default(), LabelSelector { match_labels: Some(BTreeMap::new()), match_expressions: Some(vec![]) }] {
            let err = selector_string(&sel).expect_err("empty selector");
            assert!(matches!(err, DiscoveryError::EmptySelector { .. }), "{err}");
            assert!(err.to_string().contains("every pod"), "{err}");
        }
    }

    #[test]
    fn selector_bad_expressions_are_errors() {
        for (expr, needle) in [
            (req("tier", "Gt", &["1"]), "unknown operator \"Gt\""),
            (req("tier", "In", &[]), "needs at least one value"),
            (req("tier", "Exists", &["a"]), "must not have values"),
            (req("", "Exists", &[]), "empty key"),
        ] {
            let sel = LabelSelector { match_labels: labels(&[("app", "vllm")]), match_expressions: Some(vec![expr]) };
            let err = selector_string(&sel).expect_err("invalid selector");
            assert!(matches!(err, DiscoveryError::InvalidSelector { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    // ---------- mock API server helpers ----------

    fn mock_discovery() -> (KubeDiscovery, Handle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (KubeDiscovery::from_client(Client::new(service, "default")), handle)
    }

    async fn next_request(handle: &mut Handle) -> (Request<Body>, Responder) {
        tokio::time::timeout(STEP, handle.next_request())
            .await
            .expect("timed out waiting for an API request")
            .expect("client dropped before sending the expected request")
    }

    /// Waits for the next request, asserts it is a GET of `path`, answers `status` + `body`.
    async fn serve(handle: &mut Handle, path: &str, status: StatusCode, body: Value) {
        let (request, respond) = next_request(handle).await;
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(request.uri().path(), path);
        respond.send_response(json_response(status, &body));
    }

    fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
        let bytes = serde_json::to_vec(body).expect("serialise test body");
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        response
    }

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

    // ---------- ping ----------

    #[tokio::test]
    async fn ping_asks_for_the_version() {
        let (discovery, mut handle) = mock_discovery();
        let version = json!({
            "major": "1", "minor": "20", "gitVersion": "v1.20.15", "gitCommit": "abc",
            "gitTreeState": "clean", "buildDate": "2022-01-01T00:00:00Z",
            "goVersion": "go1.15", "compiler": "gc", "platform": "linux/amd64"
        });
        let scenario = tokio::spawn(async move {
            serve(&mut handle, "/version", StatusCode::OK, version).await;
            let down = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "etcd down", "reason": "InternalError", "code": 500});
            serve(&mut handle, "/version", StatusCode::INTERNAL_SERVER_ERROR, down).await;
        });
        tokio::time::timeout(STEP, discovery.ping()).await.expect("ping timed out").expect("API server up");
        let err = tokio::time::timeout(STEP, discovery.ping()).await.expect("ping timed out").expect_err("API server down");
        assert!(matches!(err, DiscoveryError::Unreachable(_)), "{err:?}");
        scenario.await.expect("scenario assertions");
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

    // ---------- watch_pods ----------

    fn pod_json(name: &str, ready: bool, ip: &str, resource_version: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "namespace": "ns", "resourceVersion": resource_version,
                "labels": {"app": "vllm"}
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "vllm", "image": "vllm"}]},
            "status": {
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
            }
        })
    }

    fn pod_list(items: Vec<Value>) -> Value {
        json!({
            "apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": "10"}, "items": items
        })
    }

    /// Asserts the request is the initial LIST of pods in `ns` filtered by `app=vllm`.
    fn assert_pod_list(request: &Request<Body>) {
        assert_eq!(request.uri().path(), "/api/v1/namespaces/ns/pods");
        let query = request.uri().query().unwrap_or_default();
        assert!(query.contains("labelSelector=app%3Dvllm"), "{query}");
        assert!(!query.contains("watch=true"), "expected a LIST: {query}");
    }

    /// Asserts the request is a WATCH of pods in `ns` filtered by `app=vllm`.
    fn assert_pod_watch(request: &Request<Body>) {
        assert_eq!(request.uri().path(), "/api/v1/namespaces/ns/pods");
        let query = request.uri().query().unwrap_or_default();
        assert!(query.contains("watch=true"), "expected a WATCH: {query}");
        assert!(query.contains("labelSelector=app%3Dvllm"), "{query}");
    }

    /// Newline-delimited watch events, as the API server streams them.
    fn watch_body(events: &[(&str, Value)]) -> Body {
        let mut bytes = Vec::new();
        for (kind, object) in events {
            let line = json!({"type": kind, "object": object});
            bytes.extend(serde_json::to_vec(&line).expect("serialise event"));
            bytes.push(b'\n');
        }
        Body::from(bytes)
    }

    /// Polls `snapshot()` until `pred` holds, failing after [`STEP`].
    async fn eventually(watch: &PodWatch, pred: impl Fn(&[PodInfo]) -> bool) -> Vec<PodInfo> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let pods = watch.snapshot();
            if pred(&pods) {
                return pods;
            }
            assert!(tokio::time::Instant::now() < deadline, "snapshot never matched: {pods:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn watch_pods_lists_then_follows_the_watch() {
        let (discovery, mut handle) = mock_discovery();
        let watch = discovery.watch_pods("ns", "app=vllm");
        assert!(!watch.is_synced());
        assert!(watch.snapshot().is_empty());

        let (request, respond) = next_request(&mut handle).await;
        assert_pod_list(&request);
        respond.send_response(json_response(
            StatusCode::OK,
            &pod_list(vec![pod_json("a", true, "10.0.0.1", "5"), pod_json("b", false, "10.0.0.2", "6")]),
        ));
        tokio::time::timeout(STEP, watch.wait_synced()).await.expect("never synced");
        assert!(watch.is_synced());
        let pods = watch.snapshot();
        let summary: Vec<_> = pods.iter().map(|p| (p.name.as_str(), p.ready)).collect();
        assert_eq!(summary, [("a", true), ("b", false)]);
        assert_eq!(pods[0].ip, Some("10.0.0.1".parse().expect("ip")));
        assert_eq!(pods[0].node.as_deref(), Some("node-1"));

        let (request, respond) = next_request(&mut handle).await;
        assert_pod_watch(&request);
        respond.send_response(Response::new(watch_body(&[
            ("MODIFIED", pod_json("b", true, "10.0.0.2", "11")),
            ("ADDED", pod_json("c", false, "10.0.0.3", "12")),
        ])));
        let pods = eventually(&watch, |pods| pods.len() == 3).await;
        let summary: Vec<_> = pods.iter().map(|p| (p.name.as_str(), p.ready)).collect();
        assert_eq!(summary, [("a", true), ("b", true), ("c", false)]);

        // The API server goes away: the watch fails and backs off, the last state stays served.
        drop(handle);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(watch.snapshot(), pods);
        assert!(watch.is_synced());
    }

    #[tokio::test]
    async fn watch_pods_shares_one_watcher_per_key() {
        let (discovery, mut handle) = mock_discovery();
        let first = discovery.watch_pods("ns", "app=vllm");
        let second = discovery.clone().watch_pods("ns", "app=vllm");
        assert!(Arc::ptr_eq(&first.shared, &second.shared));
        assert_eq!(discovery.live_watches(), 1);

        let (request, respond) = next_request(&mut handle).await;
        assert_pod_list(&request);
        respond.send_response(json_response(StatusCode::OK, &pod_list(vec![pod_json("a", true, "10.0.0.1", "5")])));
        // Hold the WATCH open (never answer it): nothing else may be requested, in particular
        // no second LIST for the second handle.
        let (request, _open_watch) = next_request(&mut handle).await;
        assert_pod_watch(&request);
        let extra = tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await;
        assert!(extra.is_err(), "unexpected extra request");
        assert_eq!(first.snapshot(), second.snapshot());
        assert_eq!(second.snapshot().len(), 1);

        // Dropping one handle keeps the watch; dropping the last stops it, and the next caller
        // starts a fresh one (a new LIST).
        drop(first);
        assert_eq!(discovery.live_watches(), 1);
        drop(second);
        assert_eq!(discovery.live_watches(), 0);
        let third = discovery.watch_pods("ns", "app=vllm");
        assert!(!third.is_synced());
        let (request, _respond) = next_request(&mut handle).await;
        assert_pod_list(&request);
        assert_eq!(discovery.live_watches(), 1);
    }

    #[tokio::test]
    async fn watch_pods_different_keys_are_separate() {
        let (discovery, _handle) = mock_discovery();
        let a = discovery.watch_pods("ns", "app=vllm");
        let b = discovery.watch_pods("ns", "app=other");
        let c = discovery.watch_pods("other", "app=vllm");
        assert!(!Arc::ptr_eq(&a.shared, &b.shared));
        assert!(!Arc::ptr_eq(&a.shared, &c.shared));
        assert_eq!(discovery.live_watches(), 3);
        assert_eq!((a.namespace(), a.selector()), ("ns", "app=vllm"));
    }
}
