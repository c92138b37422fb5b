//! Pod discovery against a real kube-apiserver (1.20.2 + etcd, see tests/k8s) with KEDA's CRDs.
//!
//! The scaler under test is the real `llm-scaler serve` binary, spawned with `KUBECONFIG`
//! pointing at a kubeconfig for the test cluster. Spawning (rather than `Server::start` in
//! process) because `KubeDiscovery::connect` reads the process-global `KUBECONFIG`, and tests of
//! this binary run concurrently against different clusters (the shared one, and private ones for
//! the tests that restart the API server): each scaler process gets its own environment.
//!
//! The tests play the kubelet: they create Pods and set their status (IP, Ready) themselves, and
//! fake vLLM servers listen on those pod IPs (127.x.y.z) at the ScaledObject's `metricsPort`.
//! They assert on the scaler's decisions API (ready and starting pods, and the fleet's queue
//! depth, which tells exactly which pods were scraped) and call it over gRPC the way KEDA does.
#![cfg(feature = "sim")] // the fake pods (tests/common) render vLLM text with llm_scaler::sim::render

mod common;
#[path = "k8s/mod.rs"]
mod k8s;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::{IpAddr, SocketAddr},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::{FakePod, next_ip};
use futures::StreamExt;
use k8s::TestCluster;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt,
    api::{PostParams, WatchEvent, WatchParams},
};
use llm_scaler::{
    discovery::{
        Readiness,
        kube::{DiscoveryError, KubeDiscovery, PodWatch},
    },
    proto::{GetMetricsRequest, ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    serve::grpc::METRIC_NAME,
    sim::render::vllm::VllmPod,
};
use serde_json::Value;
use tonic::transport::Channel;

/// The scaler's scrape interval in these tests.
const INTERVAL: Duration = Duration::from_millis(500);
/// "Followed within one scrape interval": the next tick after the watch event sees the change.
/// The slack covers watch delivery, the scrape itself and this test's 20 ms polling, on a
/// shared 2-core machine.
const FOLLOW: Duration = Duration::from_millis(500 + 1000);
/// Generous bound for set-up steps (first sync, first decision).
const SETUP: Duration = Duration::from_secs(30);
/// The scaler's identity: a static-token superuser, so these tests are about discovery, not
/// RBAC (deploy/'s RBAC is tested elsewhere with the ServiceAccount user), and distinct from the
/// test's own admin so the audit log tells their requests apart.
const SCALER_USER: &str = k8s::SUPERUSER;

// ---------------------------------------------------------------------------------------------
// The scaler process
// ---------------------------------------------------------------------------------------------

/// A spawned `llm-scaler serve` in Kubernetes mode, killed on drop.
struct Scaler {
    child: Child,
    http: SocketAddr,
    grpc: ExternalScalerClient<Channel>,
}

impl Drop for Scaler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Scaler {
    /// Starts the binary with `KUBECONFIG` for `user` on ephemeral ports (read back from its
    /// JSON "listening" log line) and waits until its health says it can serve.
    async fn spawn(cluster: &TestCluster, user: &str) -> Scaler {
        Self::spawn_with(cluster, user, &[]).await
    }

    /// [`Scaler::spawn`] with extra `serve` flags.
    async fn spawn_with(cluster: &TestCluster, user: &str, extra: &[&str]) -> Scaler {
        let mut command = Command::new(env!("CARGO_BIN_EXE_llm-scaler"));
        // The scaler reads LLM_SCALER_* as configuration and refuses unknown keys (the
        // caller's environment may carry some): the flags below are its whole configuration.
        for (key, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("LLM_SCALER_")) {
            command.env_remove(key);
        }
        let mut child = command
            .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--scrape-interval", &format!("{}ms", INTERVAL.as_millis()), "--scrape-timeout", "400ms"])
            .args(["--log-format", "json", "--log-level", "info,llm_scaler=debug,kube_runtime=debug"])
            .args(extra)
            .env("KUBECONFIG", cluster.kubeconfig_for(user))
            .env_remove("RUST_LOG")
            // The scaler reads LLM_SCALER_* as configuration and refuses unknown keys (the
            // caller's environment may carry some): the flags above are its whole configuration.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn llm-scaler");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        // Forward the scaler's log (shown when a test fails) and pick up its addresses.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[llm-scaler] {line}");
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "listening"
                {
                    let _ =
                        tx.send((v["fields"]["grpc_addr"].as_str().map(String::from), v["fields"]["http_addr"].as_str().map(String::from)));
                }
            }
        });
        let (grpc, http) = tokio::task::spawn_blocking(move || rx.recv_timeout(SETUP))
            .await
            .expect("join")
            .expect("llm-scaler logged no \"listening\" line");
        let parse = |a: Option<String>| a.expect("address field").parse::<SocketAddr>().expect("socket address");
        let (grpc, http) = (parse(grpc), parse(http));
        let grpc = ExternalScalerClient::connect(format!("http://{grpc}")).await.expect("connect to the scaler's gRPC");
        let scaler = Scaler { child, http, grpc };
        scaler.wait_ready().await;
        scaler
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + SETUP;
        loop {
            if let Ok(r) = reqwest::get(format!("http://{}/readyz", self.http)).await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "llm-scaler never became ready (Kubernetes connection?)");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GetMetricSpec`, then `GetMetrics`, as KEDA calls them.
    async fn keda_poll(&mut self, so: &ScaledObjectRef) -> Result<f64, tonic::Status> {
        let spec = self.grpc.get_metric_spec(so.clone()).await?.into_inner();
        assert_eq!(spec.metric_specs.len(), 1);
        let request = GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: spec.metric_specs[0].metric_name.clone() };
        assert_eq!(request.metric_name, METRIC_NAME);
        let values = self.grpc.get_metrics(request).await?.into_inner().metric_values;
        Ok(values.iter().map(|v| v.metric_value_float).sum())
    }

    /// The served view of one ScaledObject from `/api/v1/decisions/{ns}/{name}`.
    async fn view(&self, so: &ScaledObjectRef) -> Value {
        let url = format!("http://{}/api/v1/decisions/{}/{}", self.http, so.namespace, so.name);
        match reqwest::get(url).await {
            Ok(r) if r.status().is_success() => {
                let text = r.text().await.unwrap_or_default();
                serde_json::from_str::<Value>(&text).map(|mut v| v["scaledobjects"][0].take()).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        }
    }

    /// Polls the decisions API until the latest decision shows `want`; returns how long that
    /// took. Panics after `within` with the last view.
    async fn wait_fleet(&self, so: &ScaledObjectRef, want: FleetView, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let view = self.view(so).await;
            if FleetView::of(&view) == Some(want) {
                return started.elapsed();
            }
            if started.elapsed() > within {
                panic!("fleet of {}/{} not {want:?} within {within:?}; served: {view:#}", so.namespace, so.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Number of decisions published after `since` (from the decision history).
    async fn decisions_since(&self, so: &ScaledObjectRef, since: SystemTime) -> usize {
        let since_ms = since.duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
        let view = self.view(so).await;
        view["history"].as_array().map_or(0, |h| h.iter().filter(|e| e["at_unix_ms"].as_u64().is_some_and(|t| t > since_ms)).count())
    }
}

/// What a decision says about the fleet: Ready pods, pods not Ready, and the fleet's queue
/// depth (the sum of the scraped pods' `vllm:num_requests_waiting`; the fake pods wait on
/// distinct powers of two, so the sum names exactly the pods that were scraped).
#[derive(Debug, Clone, Copy, PartialEq)]
struct FleetView {
    ready: u64,
    starting: u64,
    queue: f64,
}

impl FleetView {
    fn of(view: &Value) -> Option<FleetView> {
        let latest = &view["latest"];
        let queue = latest["signals"].as_array()?.iter().find(|s| s["signal"] == "queue_depth")?["raw"].as_f64()?;
        Some(FleetView { ready: latest["ready_pods"].as_u64()?, starting: latest["starting_pods"].as_u64()?, queue })
    }
}

fn fleet(ready: u64, starting: u64, queue: f64) -> FleetView {
    FleetView { ready, starting, queue }
}

/// The ScaledObjectRef KEDA sends for a trigger `{type: external, metadata: ...}`.
fn keda_ref(namespace: &str, name: &str, port: u16, extra: &[(&str, &str)]) -> ScaledObjectRef {
    let mut meta: HashMap<String, String> = [("scalerAddress", "llm-scaler.keda:9090".to_string()), ("metricsPort", port.to_string())]
        .into_iter()
        .map(|(k, v)| (k.into(), v))
        .collect();
    meta.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ScaledObjectRef { name: name.into(), namespace: namespace.into(), scaler_metadata: meta }
}

// ---------------------------------------------------------------------------------------------
// Fake pods and cluster objects
// ---------------------------------------------------------------------------------------------

/// Fake vLLM servers sharing one port on distinct loopback IPs, like pods sharing `metricsPort`.
struct Servers {
    port: u16,
    by_name: HashMap<String, FakePod>,
}

impl Servers {
    async fn new() -> Servers {
        // The first server picks a free port; the others reuse it on their own IPs.
        let probe = FakePod::start_at(SocketAddr::new(next_ip(), 0), VllmPod::new("llama", 1)).await;
        Servers { port: probe.addr.port(), by_name: HashMap::from([("_probe".to_string(), probe)]) }
    }

    /// Starts a fake vLLM server with `waiting` queued requests on a fresh IP; returns the IP.
    async fn start(&mut self, key: &str, waiting: u64) -> IpAddr {
        let mut vllm = VllmPod::new("llama", 1);
        vllm.engines[0].waiting = waiting;
        let pod = FakePod::start_at(SocketAddr::new(next_ip(), self.port), vllm).await;
        let ip = pod.addr.ip();
        self.by_name.insert(key.to_string(), pod);
        ip
    }

    fn set_waiting(&self, key: &str, waiting: u64) {
        self.by_name[key].update(|v| v.engines[0].waiting = waiting);
    }
}

/// Creates a pod and, when `ip` is given, reports it Running with that IP and Ready = `ready`.
async fn pod(cluster: &TestCluster, ns: &str, name: &str, labels: &[(&str, &str)], ip: Option<IpAddr>, ready: bool) -> Pod {
    cluster.create_pod(ns, name, labels, "gpu-node-1").await;
    cluster.set_pod_status(ns, name, ip, ready).await
}

fn deployment_yaml(ns: &str, name: &str, labels: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: 2\n  \
         selector:\n    matchLabels: {labels}\n  template:\n    metadata:\n      labels: {labels}\n    spec:\n      \
         containers:\n      - name: vllm\n        image: vllm/vllm-openai:test\n"
    )
}

fn statefulset_yaml(ns: &str, name: &str, labels: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: 2\n  \
         serviceName: {name}\n  selector:\n    matchLabels: {labels}\n  template:\n    metadata:\n      labels: {labels}\n    \
         spec:\n      containers:\n      - name: vllm\n        image: vllm/vllm-openai:test\n"
    )
}

/// A KEDA ScaledObject with an external trigger; `target` is the YAML of `scaleTargetRef`.
fn scaled_object_yaml(ns: &str, name: &str, target: &str, port: u16) -> String {
    format!(
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  \
         scaleTargetRef: {target}\n  minReplicaCount: 1\n  maxReplicaCount: 20\n  triggers:\n  - type: external\n    \
         metadata:\n      scalerAddress: llm-scaler.keda:9090\n      metricsPort: \"{port}\"\n"
    )
}

/// The shared cluster with the scaler's user; the namespace is created.
async fn shared_cluster(ns: &str) -> &'static TestCluster {
    let cluster = TestCluster::shared().await;
    cluster.create_namespace(ns).await;
    cluster
}

/// Requests of `user` on pods of `ns` with this verb (`list`, `watch`), one audit event per
/// request (by auditID). A watch shows up in the audit log only once it has ended (1.20 writes
/// its ResponseStarted and ResponseComplete events together).
fn pod_requests(cluster: &TestCluster, user: &str, ns: &str, verb: &str) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    cluster
        .audit_events()
        .into_iter()
        .filter(|e| {
            e["user"]["username"] == user
                && e["verb"] == verb
                && e["objectRef"]["resource"] == "pods"
                && e["objectRef"]["namespace"] == ns
                && e["objectRef"]["subresource"].is_null()
        })
        .filter(|e| seen.insert(e["auditID"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (a) ScaledObject -> scaleTargetRef -> workload selector -> pods
// ---------------------------------------------------------------------------------------------

/// One fleet behind `workload_yaml`: two Ready pods, one not Ready, one Ready pod of another
/// app in the same namespace that must not be scraped.
async fn scale_target_fleet(ns: &str, workload_yaml: impl Fn(&str) -> String, target_ref: &str) {
    let cluster = shared_cluster(ns).await;
    let mut servers = Servers::new().await;
    cluster.apply_yaml_str(&workload_yaml("{app: llama, tier: gpu}")).await;
    cluster.apply_yaml_str(&scaled_object_yaml(ns, "llama", target_ref, servers.port)).await;
    let labels = [("app", "llama"), ("tier", "gpu"), ("pod-template-hash", "abc")];
    for (name, waiting, ready) in [("llama-0", 1, true), ("llama-1", 2, true), ("llama-2", 4, false)] {
        let ip = servers.start(name, waiting).await;
        pod(cluster, ns, name, &labels, Some(ip), ready).await;
    }
    // Same app label, other tier: outside the workload's selector.
    let ip = servers.start("other", 64).await;
    pod(cluster, ns, "other-0", &[("app", "llama"), ("tier", "cpu")], Some(ip), true).await;

    let mut scaler = Scaler::spawn(cluster, SCALER_USER).await;
    let so = keda_ref(ns, "llama", servers.port, &[("peakFactor", "1"), ("targetQueueDepth", "1")]);
    let first = scaler.keda_poll(&so).await;
    assert!(first.is_err(), "no decision can exist before the first tick: {first:?}");
    scaler.wait_fleet(&so, fleet(2, 1, 3.0), SETUP).await;
    let metric = scaler.keda_poll(&so).await.expect("GetMetrics after the first decision");
    assert!(metric >= 1.0, "metric {metric}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_object_finds_its_deployments_pods() {
    let ns = "target-deployment";
    scale_target_fleet(ns, |labels| deployment_yaml(ns, "llama", labels), "{name: llama}").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_object_finds_its_statefulsets_pods() {
    let ns = "target-statefulset";
    scale_target_fleet(ns, |labels| statefulset_yaml(ns, "llama", labels), "{apiVersion: apps/v1, kind: StatefulSet, name: llama}").await;
}

// ---------------------------------------------------------------------------------------------
// (b) explicit podSelector
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_pod_selector_needs_no_scale_target() {
    let ns = "explicit-selector";
    let cluster = shared_cluster(ns).await;
    let mut servers = Servers::new().await;
    for (name, labels, waiting) in [
        ("a", &[("app", "vllm"), ("model", "llama")][..], 1),
        ("b", &[("app", "vllm"), ("model", "mistral")][..], 2),
        ("c", &[("app", "vllm")][..], 4),
        ("d", &[("app", "other"), ("model", "llama")][..], 8),
    ] {
        let ip = servers.start(name, waiting).await;
        pod(cluster, ns, name, labels, Some(ip), true).await;
    }
    let mut scaler = Scaler::spawn(cluster, SCALER_USER).await;
    // No ScaledObject object exists at all: the selector comes from the metadata alone.
    let so = keda_ref(ns, "no-such-object", servers.port, &[("podSelector", "app=vllm,model in (llama,mistral)")]);
    let _ = scaler.keda_poll(&so).await;
    scaler.wait_fleet(&so, fleet(2, 0, 3.0), SETUP).await;
    scaler.keda_poll(&so).await.expect("GetMetrics");
}

// ---------------------------------------------------------------------------------------------
// (b2) tenancy: another namespace's pods only with the server's allowance
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaledobject_cannot_read_another_namespaces_pods_unless_the_scaler_allows_it() {
    let (own, other) = ("tenancy-a", "tenancy-b");
    let cluster = shared_cluster(own).await;
    cluster.create_namespace(other).await;
    let mut servers = Servers::new().await;
    let ip = servers.start("victim", 8).await;
    pod(cluster, other, "victim-0", &[("app", "vllm")], Some(ip), true).await;
    let so = keda_ref(own, "spy", servers.port, &[("namespace", other), ("podSelector", "app=vllm")]);

    // Default: refused at the first RPC, naming the key, and the other namespace is never listed.
    let mut scaler = Scaler::spawn(cluster, SCALER_USER).await;
    for _ in 0..2 {
        let err = scaler.keda_poll(&so).await.expect_err("a cross-namespace pod source must be refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("\"namespace\"") && err.message().contains(other), "{}", err.message());
        assert!(err.message().contains(&format!("--allow-cross-namespace {own}:{other}")), "{}", err.message());
    }
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(scaler.view(&so).await.is_null(), "nothing is served for the refused ScaledObject");
    assert!(pod_requests(cluster, SCALER_USER, other, "list").is_empty(), "the refused ScaledObject made the scaler list pods in {other}");
    drop(scaler);

    // With the allowance for exactly this pair: the other namespace's pods are discovered and read.
    let scaler = Scaler::spawn_with(cluster, SCALER_USER, &["--allow-cross-namespace", &format!("{own}:{other}")]).await;
    let mut grpc = scaler.grpc.clone();
    let _ = grpc.get_metric_spec(so.clone()).await.expect("allowed now");
    scaler.wait_fleet(&so, fleet(1, 0, 8.0), SETUP).await;
    // ... and only that pair: a third namespace stays refused.
    let third = keda_ref(own, "spy-c", servers.port, &[("namespace", "tenancy-c"), ("podSelector", "app=vllm")]);
    let err = grpc.get_metric_spec(third).await.expect_err("tenancy-c is not allowed");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// (c) churn followed through the watch, no LIST per tick
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_churn_is_followed_within_a_tick_without_relisting() {
    let ns = "churn";
    let cluster = shared_cluster(ns).await;
    let mut servers = Servers::new().await;
    cluster.apply_yaml_str(&deployment_yaml(ns, "llama", "{app: llama}")).await;
    cluster.apply_yaml_str(&scaled_object_yaml(ns, "llama", "{name: llama}", servers.port)).await;
    let labels = [("app", "llama")];
    let ip_a = servers.start("a", 1).await;
    let ip_b = servers.start("b", 2).await;
    let ip_c = servers.start("c", 4).await;
    pod(cluster, ns, "a", &labels, Some(ip_a), true).await;
    pod(cluster, ns, "b", &labels, Some(ip_b), true).await;
    pod(cluster, ns, "c", &labels, None, false).await;

    let mut scaler = Scaler::spawn(cluster, SCALER_USER).await;
    let so = keda_ref(ns, "llama", servers.port, &[]);
    let _ = scaler.keda_poll(&so).await;
    scaler.wait_fleet(&so, fleet(2, 1, 3.0), SETUP).await;
    let lists_before = pod_requests(cluster, SCALER_USER, ns, "list").len();
    assert_eq!(lists_before, 1, "one initial LIST");
    let churn_started = SystemTime::now();

    // c gets an IP and becomes Ready.
    cluster.set_pod_status(ns, "c", Some(ip_c), true).await;
    let took = scaler.wait_fleet(&so, fleet(3, 0, 7.0), FOLLOW).await;
    eprintln!("c Ready followed in {took:?}");
    // b stops being Ready (still running, not scraped).
    cluster.set_pod_status(ns, "b", Some(ip_b), false).await;
    let took = scaler.wait_fleet(&so, fleet(2, 1, 5.0), FOLLOW).await;
    eprintln!("b not Ready followed in {took:?}");
    // a moves to a new IP where another server waits on 8: only the new IP is scraped.
    let ip_a2 = servers.start("a2", 8).await;
    cluster.set_pod_status(ns, "a", Some(ip_a2), true).await;
    let took = scaler.wait_fleet(&so, fleet(2, 1, 12.0), FOLLOW).await;
    eprintln!("a IP change followed in {took:?}");
    // c is deleted.
    cluster.delete_pod(ns, "c").await;
    let took = scaler.wait_fleet(&so, fleet(1, 1, 8.0), FOLLOW).await;
    eprintln!("c deletion followed in {took:?}");
    // A new pod d arrives Ready.
    let ip_d = servers.start("d", 16).await;
    pod(cluster, ns, "d", &labels, Some(ip_d), true).await;
    let took = scaler.wait_fleet(&so, fleet(2, 1, 24.0), FOLLOW).await;
    eprintln!("d creation followed in {took:?}");
    // a starts terminating: it has a deletionTimestamp, so it is no longer scraped, and it is
    // not capacity on its way either (only b, not Ready, counts as starting).
    cluster.begin_pod_deletion(ns, "a").await;
    let took = scaler.wait_fleet(&so, fleet(1, 1, 16.0), FOLLOW).await;
    eprintln!("a terminating followed in {took:?}");

    // Let at least 10 ticks pass in total, then count the scaler's pod requests.
    let deadline = Instant::now() + SETUP;
    while scaler.decisions_since(&so, churn_started).await < 10 {
        assert!(Instant::now() < deadline, "fewer than 10 decisions in {SETUP:?}");
        tokio::time::sleep(INTERVAL).await;
    }
    let lists = pod_requests(cluster, SCALER_USER, ns, "list");
    let watches = pod_requests(cluster, SCALER_USER, ns, "watch");
    assert_eq!(lists.len(), lists_before, "the scaler re-LISTed pods during churn: {lists:#?}");
    // 1.20 audits a watch only when it ends: a re-opened watch means the earlier one ended and
    // was logged. None may have ended while the scaler runs; its one watch ends with it.
    assert!(watches.is_empty(), "the scaler's pod watch ended during churn: {watches:#?}");
    drop(scaler);
    let deadline = Instant::now() + SETUP;
    while pod_requests(cluster, SCALER_USER, ns, "watch").is_empty() {
        assert!(Instant::now() < deadline, "the scaler's pod watch never showed up in the audit log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pod_requests(cluster, SCALER_USER, ns, "watch").len(), 1, "exactly one pod watch over the whole test");
    let uri = lists[0]["requestURI"].as_str().unwrap_or_default();
    assert!(uri.contains("labelSelector=app%3Dllama"), "the LIST is filtered by the Deployment's selector: {uri}");
}

// ---------------------------------------------------------------------------------------------
// (d) + (e) API server restart: decide from the cache while it is down, then 410 Gone -> relist
// ---------------------------------------------------------------------------------------------

/// One private cluster (this test stops its API server). The restart is also how 410 Gone is
/// produced, reliably: a restarted kube-apiserver's watch cache starts at etcd's current
/// revision, so a watch resumed from an older resourceVersion is answered 410 "too old
/// resource version". A write to another resource (a ConfigMap) just before the stop makes sure
/// etcd's revision is past the last pod event the scaler saw; the test checks the 410 itself
/// with its own watch before relying on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_apiserver_restart_and_410_gone_deciding_from_cache_meanwhile() {
    let ns = "restart";
    let cluster = TestCluster::builder().user(SCALER_USER, &["system:masters"]).start().await;
    cluster.install_keda_crds().await;
    cluster.create_namespace(ns).await;
    let mut servers = Servers::new().await;
    cluster.apply_yaml_str(&deployment_yaml(ns, "llama", "{app: llama}")).await;
    cluster.apply_yaml_str(&scaled_object_yaml(ns, "llama", "{name: llama}", servers.port)).await;
    let labels = [("app", "llama")];
    let ip_a = servers.start("a", 1).await;
    let ip_b = servers.start("b", 2).await;
    pod(&cluster, ns, "a", &labels, Some(ip_a), true).await;
    let last_pod_write = pod(&cluster, ns, "b", &labels, Some(ip_b), true).await;

    let mut scaler = Scaler::spawn(&cluster, SCALER_USER).await;
    let so = keda_ref(ns, "llama", servers.port, &[]);
    let _ = scaler.keda_poll(&so).await;
    scaler.wait_fleet(&so, fleet(2, 0, 3.0), SETUP).await;
    assert_eq!(pod_requests(&cluster, SCALER_USER, ns, "list").len(), 1);
    let old_rv = last_pod_write.resource_version().expect("resourceVersion");

    // Move etcd's revision past the last pod event, then take the API server down.
    let admin = cluster.admin_client().await;
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "bump"}})).expect("configmap");
    Api::namespaced(admin.clone(), ns).create(&PostParams::default(), &cm).await.expect("create configmap");
    cluster.stop_apiserver().await;
    let down_since = SystemTime::now();

    // (e) Still deciding from the cached pods: load changes on the pods are followed, and KEDA
    // keeps getting answers for longer than the staleness window (3 intervals).
    servers.set_waiting("a", 8);
    scaler.wait_fleet(&so, fleet(2, 0, 10.0), FOLLOW).await;
    let deadline = Instant::now() + SETUP;
    while scaler.decisions_since(&so, down_since).await < 6 {
        assert!(Instant::now() < deadline, "the scaler stopped deciding while the API server is down");
        scaler.keda_poll(&so).await.expect("GetMetrics answers from the cache while the API server is down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scaler.keda_poll(&so).await.expect("GetMetrics after 6 ticks without the API server");

    // (d) Back up: the scaler's watch resumes from its old resourceVersion, gets 410 Gone and
    // relists. First prove the 410 precondition with our own watch from the same point.
    cluster.start_apiserver().await;
    let admin = cluster.admin_client().await;
    let pods: Api<Pod> = Api::namespaced(admin, ns);
    match pods.watch(&WatchParams::default().timeout(5), &old_rv).await {
        Ok(stream) => {
            let mut stream = std::pin::pin!(stream);
            match stream.next().await {
                Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410, "{e:?}"),
                other => panic!("expected 410 Gone for a watch from resourceVersion {old_rv} after the restart, got {other:?}"),
            }
        }
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 410, "{e:?}"),
        Err(e) => panic!("watch from resourceVersion {old_rv}: {e}"),
    }
    // The watcher retries with backoff (0.8 s doubling to 30 s, so the first attempt after the
    // restart may come up to about 30 s later), gets 410 and relists: a second LIST.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pod_requests(&cluster, SCALER_USER, ns, "list").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the scaler did not relist pods after the restart; API server log:\n{}",
            cluster.apiserver_log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Churn right away: the new watch resumes from the relist's resourceVersion, so even a
    // write that lands before the watch request is delivered. Followed within a tick again.
    cluster.set_pod_status(ns, "b", Some(ip_b), false).await;
    scaler.wait_fleet(&so, fleet(1, 1, 8.0), FOLLOW).await;
    let ip_c = servers.start("c", 4).await;
    pod(&cluster, ns, "c", &labels, Some(ip_c), true).await;
    scaler.wait_fleet(&so, fleet(2, 1, 12.0), FOLLOW).await;
}

// ---------------------------------------------------------------------------------------------
// KubeDiscovery and PodWatch directly
// ---------------------------------------------------------------------------------------------

async fn eventually(watch: &PodWatch, what: &str, pred: impl Fn(&[llm_scaler::discovery::PodInfo]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pods = watch.snapshot();
        if pred(&pods) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: snapshot never matched: {pods:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_selector_and_watch_against_real_objects() {
    let ns = "direct";
    let cluster = shared_cluster(ns).await;
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: mixed\n  namespace: {ns}\nspec:\n  selector:\n    \
         matchLabels: {{app: vllm}}\n    matchExpressions:\n    - {{key: tier, operator: In, values: [b, a]}}\n    \
         - {{key: canary, operator: DoesNotExist}}\n  template:\n    metadata:\n      labels: {{app: vllm, tier: a}}\n    \
         spec:\n      containers:\n      - name: vllm\n        image: vllm/vllm-openai:test\n"
    );
    cluster.apply_yaml_str(&yaml).await;
    cluster.apply_yaml_str(&scaled_object_yaml(ns, "mixed", "{name: mixed}", 8000)).await;
    cluster.apply_yaml_str(&scaled_object_yaml(ns, "dangling", "{name: gone}", 8000)).await;
    let job = format!(
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata:\n  name: batch\n  namespace: {ns}\nspec:\n  jobTargetRef:\n    \
         template:\n      spec:\n        containers:\n        - name: w\n          image: busybox\n  triggers:\n  - type: external\n    \
         metadata:\n      scalerAddress: llm-scaler.keda:9090\n"
    );
    cluster.apply_yaml_str(&job).await;

    let discovery = KubeDiscovery::from_client(cluster.admin_client().await);
    discovery.ping().await.expect("ping");
    let selector = discovery.resolve_selector(ns, "mixed").await.expect("resolve");
    assert_eq!(selector, "app=vllm,!canary,tier in (a,b)");
    let err = discovery.resolve_selector(ns, "dangling").await.expect_err("missing Deployment");
    assert_eq!(err.to_string(), format!("Deployment {ns}/gone not found (scaleTargetRef of ScaledObject {ns}/dangling)"));
    let err = discovery.resolve_selector(ns, "batch").await.expect_err("ScaledJob");
    assert!(matches!(err, DiscoveryError::ScaledJobUnsupported { .. }), "{err:?}");
    let err = discovery.resolve_selector(ns, "nothing").await.expect_err("missing");
    assert_eq!(err.to_string(), format!("ScaledObject {ns}/nothing not found"));

    // The rendered selector is one the API server accepts and means what the Deployment means.
    let ip = "127.0.0.9".parse().ok();
    pod(cluster, ns, "in-a", &[("app", "vllm"), ("tier", "a")], ip, true).await;
    pod(cluster, ns, "in-b", &[("app", "vllm"), ("tier", "b")], ip, false).await;
    pod(cluster, ns, "canary", &[("app", "vllm"), ("tier", "a"), ("canary", "yes")], ip, true).await;
    pod(cluster, ns, "tier-c", &[("app", "vllm"), ("tier", "c")], ip, true).await;
    let watch = discovery.watch_pods(ns, &selector);
    tokio::time::timeout(Duration::from_secs(10), watch.wait_synced()).await.expect("synced");
    let names = |pods: &[llm_scaler::discovery::PodInfo]| {
        pods.iter().map(|p| (p.name.clone(), p.readiness == Readiness::Ready)).collect::<Vec<_>>()
    };
    assert_eq!(names(&watch.snapshot()), [("in-a".to_string(), true), ("in-b".to_string(), false)]);
    assert_eq!(watch.snapshot()[0].node.as_deref(), Some("gpu-node-1"));
    assert_eq!(watch.snapshot()[0].ip, ip);

    cluster.set_pod_status(ns, "in-b", "127.0.0.10".parse().ok(), true).await;
    eventually(&watch, "in-b Ready with its new IP", |p| {
        p.len() == 2 && p[1].readiness == Readiness::Ready && p[1].ip == "127.0.0.10".parse().ok()
    })
    .await;
    cluster.delete_pod(ns, "in-a").await;
    eventually(&watch, "in-a deleted", |p| p.len() == 1 && p[0].name == "in-b").await;
}

// ---------------------------------------------------------------------------------------------
// (e) A ScaledJob's pods (batch mode, watchPods)
// ---------------------------------------------------------------------------------------------

/// The scaler's latest decision about ScaledJob `ns/name`, from the decisions API.
async fn batch_view(scaler: &Scaler, ns: &str, name: &str) -> Value {
    let url = format!("http://{}/api/v1/decisions/{ns}/{name}", scaler.http);
    match reqwest::get(url).await {
        Ok(r) if r.status().is_success() => {
            serde_json::from_str::<Value>(&r.text().await.unwrap_or_default()).map(|mut v| v["scaledjobs"][0].take()).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    }
}

/// Polls until the batch decision satisfies `want`, then returns it.
async fn wait_batch(scaler: &Scaler, ns: &str, name: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let view = batch_view(scaler, ns, name).await;
        if want(&view["decision"]) {
            return view["decision"].clone();
        }
        assert!(started.elapsed() < SETUP, "batch decision of {ns}/{name} never showed {what}; served: {view:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pod of ScaledJob `job` (KEDA's label) that the kubelet reports Running and Ready, with a
/// `DisruptionTarget` condition when `disruption` names its reason.
async fn job_pod(cluster: &TestCluster, ns: &str, name: &str, job: &str, disruption: Option<&str>) {
    cluster.create_pod(ns, name, &[("scaledjob.keda.sh/name", job), ("job-name", name)], "spot-node-1").await;
    cluster.set_pod_status(ns, name, Some(next_ip()), true).await;
    if let Some(reason) = disruption {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let mut conditions: Vec<Value> = ["Initialized", "PodScheduled", "ContainersReady", "Ready"]
            .iter()
            .map(|t| serde_json::json!({"type": t, "status": "True", "lastTransitionTime": now}))
            .collect();
        conditions.push(serde_json::json!({"type": "DisruptionTarget", "status": "True", "reason": reason, "lastTransitionTime": now}));
        let api: Api<Pod> = Api::namespaced(cluster.admin_client().await, ns);
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        api.patch_status(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.expect("disruption condition");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaledjob_s_pods_are_watched_and_the_entries_of_a_vanished_or_preempted_worker_are_waiting_at_once() {
    use redis::AsyncCommands;
    let ns = "batch-spot";
    let cluster = shared_cluster(ns).await;
    let redis = common::redis_server::RedisServer::start();
    let mut c = redis.conn().await;
    let _: () = redis::cmd("XGROUP").arg(&["CREATE", "embed", "workers", "$", "MKSTREAM"][..]).query_async(&mut c).await.expect("group");
    for i in 0..10 {
        let _: String = c.xadd("embed", "*", &[("item", i)]).await.expect("xadd");
    }
    // Three workers take entries: one alive, one whose pod is gone, one with its Spot notice.
    for (worker, n) in [("embed-alive", 2), ("embed-gone", 3), ("embed-preempted", 1)] {
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg(&["GROUP", "workers", worker, "COUNT", &n.to_string(), "STREAMS", "embed", ">"][..])
            .query_async(&mut c)
            .await
            .expect("xreadgroup");
    }
    job_pod(cluster, ns, "embed-alive", "embed", None).await;
    job_pod(cluster, ns, "embed-preempted", "embed", Some("PreemptionByScheduler")).await;
    // A pod of another ScaledJob, named like a worker: not this ScaledJob's pod.
    cluster.create_pod(ns, "embed-gone", &[("scaledjob.keda.sh/name", "other")], "spot-node-1").await;

    let mut scaler = Scaler::spawn(cluster, SCALER_USER).await;
    let meta: HashMap<String, String> = [
        ("mode", "batch".to_string()),
        ("address", redis.address()),
        ("stream", "embed".into()),
        ("consumerGroup", "workers".into()),
        ("claimTimeout", "10m".into()),
        ("watchPods", "true".into()),
        ("budgetPerHour", "9".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let job = ScaledObjectRef { name: "embed".into(), namespace: ns.into(), scaler_metadata: meta };
    let spec = scaler.grpc.get_metric_spec(job.clone()).await.expect("GetMetricSpec of a batch trigger").into_inner();
    assert_eq!(spec.metric_specs[0].metric_name, llm_scaler::serve::grpc::BATCH_METRIC_NAME);

    // Before the gone-grace passes every holder counts as at work or pending: lag 4 only.
    let d = wait_batch(&scaler, ns, "embed", "the pods", |d| !d["pods"].is_null()).await;
    assert_eq!(d["pods"]["disrupted"], serde_json::json!(["embed-preempted:PreemptionByScheduler"]), "{d:#}");
    assert_eq!((d["pods"]["working"].as_u64(), d["busy"].as_u64()), (Some(1), Some(1)), "the disrupted pod is not at work: {d:#}");
    // Once the holders have been idle past the grace: the gone worker's 3 and the preempted
    // one's entry are waiting again, without waiting 10 minutes for the claim timeout.
    let d = wait_batch(&scaler, ns, "embed", "orphaned entries", |d| d["orphaned"].as_u64() == Some(4)).await;
    assert_eq!(d["queued"].as_f64(), Some(8.0), "lag 4 + 4 to redo: {d:#}");
    assert!(d["reason"].as_str().is_some_and(|r| r.contains("+ 4 held by workers whose pod is gone")), "{d:#}");
    // $9/h buys 5 Jobs of $1.80: 1 at work and 1 under its notice (it still runs and bills),
    // so 3 more (of the 8 the queue asks for).
    assert_eq!((d["jobs"].as_u64(), d["bound"].as_str(), d["work"].as_f64()), (Some(5), Some("budget"), Some(3.0)), "{d:#}");
    let request =
        GetMetricsRequest { scaled_object_ref: Some(job.clone()), metric_name: llm_scaler::serve::grpc::BATCH_METRIC_NAME.into() };
    let values = scaler.grpc.get_metrics(request).await.expect("GetMetrics").into_inner().metric_values;
    assert_eq!(values[0].metric_value_float, 3.0, "KEDA gets the capped work");

    // The live worker's pod goes too: its 2 entries join them.
    cluster.delete_pod(ns, "embed-alive").await;
    let d = wait_batch(&scaler, ns, "embed", "every holder gone", |d| d["orphaned"].as_u64() == Some(6)).await;
    assert_eq!((d["queued"].as_f64(), d["busy"].as_u64()), (Some(10.0), Some(0)), "{d:#}");
    let metrics = reqwest::get(format!("http://{}/metrics", scaler.http)).await.expect("metrics").text().await.expect("body");
    for needle in [
        "llm_scaler_batch_orphaned_items{namespace=\"batch-spot\",scaledjob=\"embed\"} 6",
        "llm_scaler_batch_disrupted_pods{namespace=\"batch-spot\",scaledjob=\"embed\"} 1",
        "llm_scaler_batch_bound{namespace=\"batch-spot\",scaledjob=\"embed\",bound=\"budget\"} 1",
        "llm_scaler_batch_cost_dollars_per_hour{namespace=\"batch-spot\",scaledjob=\"embed\"} 9.0",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    // The Job pods on a node bill at the Spot price: embed-preempted still runs ($1.80/h), so
    // the spend grows and is shown where the metrics and the decisions API show it.
    let spent = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("llm_scaler_batch_cost_dollars_total{namespace=\"batch-spot\",scaledjob=\"embed\"} "))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let first = spent(&metrics).unwrap_or_else(|| panic!("no batch_cost_dollars_total in\n{metrics}"));
    assert!(first > 0.0, "{metrics}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = reqwest::get(format!("http://{}/metrics", scaler.http)).await.expect("metrics").text().await.expect("body");
    assert!(spent(&metrics).is_some_and(|later| later > first), "the counter grows while a pod runs\n{metrics}");
    let view = batch_view(&scaler, ns, "embed").await;
    assert!(view["dollars_total"].as_f64().is_some_and(|d| d >= first), "{view:#}");
}
