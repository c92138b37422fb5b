//! Watch-backed caches of the pods matching a `(namespace, selector)`, shared by every caller
//! that asks for the same pair.
//!
//! Reading one ([`PodWatch::snapshot`]) is a memory read: KEDA's RPCs must answer from memory
//! (see the external scaler spec, section 2), and the scrape loop must not hammer the API server
//! with a LIST per tick. Every caller asking for the same `(namespace, selector)` gets a handle to
//! the same watcher+reflector task, which stops when the last handle is dropped.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::discovery::{PodInfo, Readiness};

/// Key of a shared watch.
type WatchKey = (String, String);

/// The live pod watches of one client, by `(namespace, selector)`. Weak so that dropping the
/// last [`PodWatch`] stops the task; dead entries are removed lazily by [`Watches::watch`]
/// (never from a `Drop`, which could run while this lock is held).
#[derive(Default)]
pub(super) struct Watches(Mutex<HashMap<WatchKey, Weak<WatchShared>>>);

impl Watches {
    /// A handle to the watch of `(namespace, selector)`, started when there is none.
    pub(super) fn watch(&self, client: &Client, namespace: &str, selector: &str) -> PodWatch {
        let key = (namespace.to_owned(), selector.to_owned());
        let mut watches = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = watches.get(&key).and_then(Weak::upgrade) {
            return PodWatch { shared };
        }
        watches.retain(|_, weak| weak.strong_count() > 0);
        let shared = Arc::new(WatchShared::spawn(client.clone(), namespace, selector));
        watches.insert(key, Arc::downgrade(&shared));
        PodWatch { shared }
    }

    /// Number of pod watches running.
    pub(super) fn live(&self) -> usize {
        let watches = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        watches.values().filter(|w| w.strong_count() > 0).count()
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

    /// The pods as the API server gave them (for readers that need more than [`PodInfo`], such
    /// as a ScaledJob's pod conditions). Cheap, no I/O.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.shared.store.state()
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
    let ready = status.and_then(|s| s.conditions.as_ref()).and_then(|conds| conds.iter().find(|c| c.type_ == "Ready"));
    let ready_condition = ready.is_some_and(|c| c.status == "True");
    // Creation to the Ready transition; a clock skew that puts it before creation reads as unknown.
    let ready_after = ready.filter(|_| ready_condition).and_then(|c| {
        let (created, became) = (pod.metadata.creation_timestamp.as_ref()?, c.last_transition_time.as_ref()?);
        let secs = became.0.as_second().checked_sub(created.0.as_second())?;
        u64::try_from(secs).ok().map(Duration::from_secs)
    });
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let readiness = match (deleting, ready_condition) {
        (true, _) => Readiness::Terminating,
        (false, true) => Readiness::Ready,
        (false, false) => Readiness::Starting,
    };
    let gpus = pod.spec.as_ref().and_then(requested_gpus);
    Some(PodInfo { name, namespace, ip, node, readiness, ready_after, gpus })
}

/// The extended resource NVIDIA's device plugin schedules GPUs by.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// GPUs the pod's containers request, summed; `None` when none asks for any (or a value is not
/// a whole number, which the API server would not admit). An extended resource given only as a
/// limit is requested at that limit, so a limit counts where the request is missing.
fn requested_gpus(spec: &k8s_openapi::api::core::v1::PodSpec) -> Option<u32> {
    let per_container = spec.containers.iter().filter_map(|c| {
        let r = c.resources.as_ref()?;
        let q = r.requests.as_ref().and_then(|m| m.get(GPU_RESOURCE)).or_else(|| r.limits.as_ref()?.get(GPU_RESOURCE))?;
        Some(q.0.trim().parse::<u32>().ok())
    });
    let mut total: Option<u32> = None;
    for n in per_container {
        total = Some(total.unwrap_or(0).checked_add(n?)?);
    }
    total.filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Request, Response, StatusCode};
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::super::mock_api::{STEP, json_response, mock_discovery, next_request};
    use super::*;

    fn pod(name: &str, ready: Option<&str>, ip: Option<&str>) -> Pod {
        let conditions = ready.map(|status| vec![PodCondition { type_: "Ready".into(), status: status.into(), ..Default::default() }]);
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(PodSpec { node_name: Some("node-1".into()), ..Default::default() }),
            status: Some(PodStatus { pod_ip: ip.map(Into::into), conditions, ..Default::default() }),
        }
    }

    #[test]
    fn a_ready_pod_reports_how_long_it_took_from_creation_to_ready() {
        let mut p = pod("a", Some("True"), Some("10.0.0.7"));
        let at = |s: i64| Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("timestamp"));
        p.metadata.creation_timestamp = Some(at(1_000));
        p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time = Some(at(1_095));
        assert_eq!(pod_info(&p).unwrap().ready_after, Some(Duration::from_secs(95)));
        p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        assert_eq!(pod_info(&p).unwrap().ready_after, None, "not Ready: nothing measured");
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
                readiness: Readiness::Ready,
                ready_after: None,
                gpus: None,
            }
        );
        assert!(info.scrapeable().is_some());
    }

    #[test]
    fn a_pods_gpus_are_the_sum_of_its_containers_nvidia_gpu_requests_or_limits() {
        use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let container = |requests: &[(&str, &str)], limits: &[(&str, &str)]| {
            let map =
                |kv: &[(&str, &str)]| (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect());
            Container {
                name: "c".into(),
                resources: Some(ResourceRequirements { requests: map(requests), limits: map(limits), ..Default::default() }),
                ..Default::default()
            }
        };
        let with = |containers: Vec<Container>| {
            let mut p = pod("a", Some("True"), Some("10.0.0.7"));
            p.spec.as_mut().unwrap().containers = containers;
            pod_info(&p).expect("pod info").gpus
        };
        assert_eq!(with(vec![container(&[("nvidia.com/gpu", "2")], &[("nvidia.com/gpu", "2")])]), Some(2));
        assert_eq!(with(vec![container(&[], &[("nvidia.com/gpu", "4")]), container(&[("cpu", "1")], &[])]), Some(4), "a limit alone");
        assert_eq!(with(vec![container(&[("nvidia.com/gpu", "1")], &[]), container(&[("nvidia.com/gpu", "1")], &[])]), Some(2));
        assert_eq!(with(vec![container(&[("cpu", "8")], &[])]), None, "no GPU asked for: unknown, not zero");
        assert_eq!(with(vec![container(&[("nvidia.com/gpu", "1.5")], &[])]), None, "not a whole number");
    }

    #[test]
    fn pod_info_not_ready() {
        let info = pod_info(&pod("a", Some("False"), Some("10.0.0.7"))).expect("pod info");
        assert_eq!(info.readiness, Readiness::Starting);
        assert_eq!(info.ip, Some("10.0.0.7".parse().expect("ip")));
        assert!(info.scrapeable().is_none());
    }

    #[test]
    fn pod_info_no_ip() {
        let info = pod_info(&pod("a", Some("True"), None)).expect("pod info");
        assert_eq!(info.readiness, Readiness::Ready);
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
        assert_eq!(info.readiness, Readiness::Terminating);
        assert!(info.scrapeable().is_none() && !info.is_starting());
    }

    #[test]
    fn pod_info_no_conditions_or_status() {
        let info = pod_info(&pod("a", None, Some("10.0.0.7"))).expect("pod info");
        assert_eq!(info.readiness, Readiness::Starting);
        let mut bare = pod("b", None, None);
        bare.status = None;
        bare.spec = None;
        let info = pod_info(&bare).expect("pod info");
        assert_eq!(info.readiness, Readiness::Starting);
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
        let summary: Vec<_> = pods.iter().map(|p| (p.name.as_str(), p.readiness == Readiness::Ready)).collect();
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
        let summary: Vec<_> = pods.iter().map(|p| (p.name.as_str(), p.readiness == Readiness::Ready)).collect();
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
