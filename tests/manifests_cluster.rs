//! `deploy/` and `scaledobjects/` against a REAL kube-apiserver (v1.20.2, with KEDA v2.20.2's
//! CRDs installed), via the harness of `tests/k8s/mod.rs`.
//!
//! What this proves:
//! * every object is accepted by the API server: KEDA's own OpenAPI schema validates the
//!   ScaledObjects and the TriggerAuthentication (wrong types, missing required fields and, via
//!   structural pruning, unknown fields are caught), and Kubernetes' validation checks the
//!   built-in objects (RBAC, Service, NetworkPolicy, ...);
//! * nothing is silently dropped: each object is read back and every field we wrote must still
//!   be there, except a short, explicit list of fields newer than 1.20 (below);
//! * the RBAC of deploy/rbac.yaml is enough and no more: the real `llm-scaler serve` binary,
//!   authenticated as `system:serviceaccount:llm-scaler:llm-scaler`, becomes SERVING and
//!   answers GetMetrics for the example ScaledObject by discovering its pods (and the
//!   dcgm-exporter pods in `gpu-operator`), while reading Secrets, writing Deployments, listing
//!   pods in an unserved namespace, ... are refused (403) for that identity; the audit log
//!   shows the binary used only get/list/watch on the granted resources.
//!
//! What a 1.20 API server CANNOT prove (see docs/install.md for the supported versions):
//! * `grpc:` probes (Kubernetes >= 1.24): 1.20 drops the unknown field and then rejects the
//!   probe for having no handler. The test asserts exactly that refusal, then applies a variant
//!   whose three probes use `tcpSocket` on the same port; the grpc probes themselves are only
//!   checked statically (tests/manifests_static.rs).
//! * `policy/v1` PodDisruptionBudget (>= 1.21): not served by 1.20; the test asserts that and
//!   applies the same spec as `policy/v1beta1`. `unhealthyPodEvictionPolicy` (>= 1.27) is
//!   dropped there, which the test expects.
//! * CEL rules of KEDA's CRDs (`x-kubernetes-validations`, e.g. minReplicaCount <=
//!   maxReplicaCount) are ignored by 1.20; KEDA's admission webhook is not running either.
//! * NetworkPolicy enforcement (no CNI), Pod Security admission labels (>= 1.23), the HPA's
//!   `tolerance` (accepted here only because it is inside KEDA's CRD schema; the HPA API knows
//!   it from 1.33), and scheduling (topology spread) are not exercised: there are no nodes.
#![cfg(feature = "sim")] // the fake pods (tests/common) render vLLM text with llm_scaler::sim::render

#[path = "k8s/mod.rs"]
mod k8s;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use k8s::{TestCluster, parse_yaml_documents, service_account_user};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Pod, Secret},
};
use kube::{
    Client,
    api::{Api, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams},
    discovery::{self, Scope},
};
use llm_scaler::{
    proto::{GetMetricsRequest, ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    serve::grpc::{BATCH_METRIC_NAME, METRIC_NAME},
    sim::render::{
        dcgm::{self, DcgmFlavor, Gpu, PodRef},
        vllm::VllmPod,
    },
};
use serde_json::{Value, json};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

const SA_NAMESPACE: &str = "llm-scaler";
const SA_NAME: &str = "llm-scaler";
/// Namespaces the manifests expect to exist (docs/install.md, step 2), plus one the scaler
/// does not serve.
const SERVED: &str = "ai-inference";
const DCGM_NS: &str = "gpu-operator";
const UNSERVED: &str = "other-team";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every object of deploy/ (in kustomization order) and then scaledobjects/, with its file.
fn manifests() -> Vec<(String, Value)> {
    let kustomization = parse_yaml_documents(&std::fs::read_to_string(root().join("deploy/kustomization.yaml")).unwrap()).remove(0);
    let mut files: Vec<String> =
        kustomization["resources"].as_array().unwrap().iter().map(|r| format!("deploy/{}", r.as_str().unwrap())).collect();
    let mut examples: Vec<String> = std::fs::read_dir(root().join("scaledobjects"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| format!("scaledobjects/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    examples.sort();
    files.extend(examples);
    let mut out = Vec::new();
    for f in files {
        for doc in parse_yaml_documents(&std::fs::read_to_string(root().join(&f)).unwrap()) {
            out.push((f.clone(), doc));
        }
    }
    out
}

/// What 1.20 needs instead of a field it does not know, and the fields it is expected to drop.
/// Returns (object to apply, paths allowed to be pruned).
fn adapt_for_1_20(doc: &Value) -> (Value, Vec<&'static str>) {
    let mut v = doc.clone();
    match (doc["apiVersion"].as_str().unwrap(), doc["kind"].as_str().unwrap()) {
        ("apps/v1", "Deployment") => {
            for c in v["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap() {
                for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                    if let Some(g) = c[probe].as_object_mut().and_then(|p| p.remove("grpc")) {
                        c[probe]["tcpSocket"] = json!({"port": g["port"]});
                    }
                }
            }
            (v, vec![])
        }
        ("policy/v1", "PodDisruptionBudget") => {
            v["apiVersion"] = json!("policy/v1beta1");
            (v, vec!["spec.unhealthyPodEvictionPolicy"])
        }
        _ => (v, vec![]),
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Paths of `sent` (objects' keys, arrays by index) missing from `stored`.
fn pruned(sent: &Value, stored: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, stored) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get(k) {
                    Some(w) => pruned(v, w, &p, out),
                    // Go's `omitempty` drops zero values (false, 0, "") of known fields too:
                    // those cannot be told apart from unknown fields, and lose nothing.
                    None if is_zero(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!("{path}[] (length {} -> {})", a.len(), b.len()));
            }
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                pruned(v, w, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Creates an object (POST, like `kubectl create` / a first `kubectl apply`), returning the
/// stored object or the API error.
async fn create(client: &Client, doc: &Value) -> Result<Value, String> {
    let obj: DynamicObject = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let types = obj.types.clone().ok_or("no apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types).map_err(|e| e.to_string())?;
    let (resource, caps) =
        discovery::pinned_kind(client, &gvk).await.map_err(|e| format!("{}/{} is not served: {e}", types.api_version, types.kind))?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), obj.metadata.namespace.as_deref().unwrap_or("default"), &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let stored = api.create(&PostParams::default(), &obj).await.map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(stored).unwrap())
}

/// A cluster with the ServiceAccount identity, KEDA's CRDs and the namespaces the manifests
/// expect.
async fn cluster() -> TestCluster {
    let c = TestCluster::builder().service_account(SA_NAMESPACE, SA_NAME).start().await;
    c.install_keda_crds().await;
    for ns in [SERVED, DCGM_NS, UNSERVED] {
        c.create_namespace(ns).await;
    }
    c
}

/// Applies every manifest (adapted for 1.20 where documented) and checks nothing was dropped.
async fn apply_everything(c: &TestCluster) {
    let admin = c.admin_client().await;
    for (file, doc) in manifests() {
        let what = format!("{file}: {} {}", doc["kind"].as_str().unwrap(), doc["metadata"]["name"].as_str().unwrap());
        let (adapted, may_prune) = adapt_for_1_20(&doc);
        if adapted != doc {
            // Prove the adaptation is needed (and the manifest comment true), then apply it.
            let err = create(&admin, &doc).await.expect_err(&format!("{what}: 1.20 was expected to refuse the original"));
            if doc["kind"] == "Deployment" {
                assert!(err.contains("must specify a handler type"), "{what}: {err}");
            } else {
                assert!(err.contains("not served"), "{what}: {err}");
            }
        }
        let stored = create(&admin, &adapted).await.unwrap_or_else(|e| panic!("{what}: refused by the API server: {e}"));
        let mut lost = Vec::new();
        pruned(&adapted, &stored, "", &mut lost);
        let unexpected: Vec<&String> = lost.iter().filter(|p| !may_prune.contains(&p.as_str())).collect();
        assert!(unexpected.is_empty(), "{what}: fields dropped by the API server (unknown to it): {unexpected:?}");
        for p in may_prune {
            assert!(lost.iter().any(|l| l == p), "{what}: expected 1.20 to drop {p}; update the comments if it no longer does");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_is_accepted_by_a_real_api_server_with_keda_crds() {
    let c = cluster().await;
    apply_everything(&c).await;

    // KEDA's schema really is enforced: broken ScaledObjects are refused.
    let admin = c.admin_client().await;
    let good = manifests().into_iter().find(|(f, d)| f == "scaledobjects/scaledobject.yaml" && d["kind"] == "ScaledObject").unwrap().1;
    let mut no_type = good.clone();
    no_type["metadata"]["name"] = json!("broken-1");
    no_type["spec"]["triggers"][0].as_object_mut().unwrap().remove("type");
    let err = create(&admin, &no_type).await.expect_err("trigger without type");
    assert!(err.contains("type"), "{err}");
    let mut bad_fallback = good.clone();
    bad_fallback["metadata"]["name"] = json!("broken-2");
    bad_fallback["spec"]["fallback"]["behavior"] = json!("sometimes");
    let err = create(&admin, &bad_fallback).await.expect_err("fallback behavior outside the enum");
    assert!(err.contains("behavior"), "{err}");
    let mut bad_tolerance = good;
    bad_tolerance["metadata"]["name"] = json!("broken-3");
    bad_tolerance["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]["tolerance"] = json!("ten percent");
    let err = create(&admin, &bad_tolerance).await.expect_err("tolerance that is not a quantity");
    assert!(err.contains("tolerance"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The real binary, as the ServiceAccount
// ---------------------------------------------------------------------------------------------

/// A distinct loopback address per fake host (127.77.x.y), by process, so parallel test
/// binaries do not collide.
fn loopback(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 77, (std::process::id() % 250) as u8, 10 + i))
}

/// Serves `body()` at /metrics on `listener`.
fn serve_metrics(
    listener: tokio::net::TcpListener,
    body: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let app = Router::new().route("/metrics", get(move || std::future::ready(body())));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// Binds the same port on several loopback addresses (the first picks it).
async fn bind_same_port(ips: &[IpAddr]) -> Vec<tokio::net::TcpListener> {
    'retry: for _ in 0..20 {
        let first = tokio::net::TcpListener::bind(SocketAddr::new(ips[0], 0)).await.unwrap();
        let port = first.local_addr().unwrap().port();
        let mut out = vec![first];
        for ip in &ips[1..] {
            match tokio::net::TcpListener::bind(SocketAddr::new(*ip, port)).await {
                Ok(l) => out.push(l),
                Err(_) => continue 'retry,
            }
        }
        return out;
    }
    panic!("no common free port on {ips:?}");
}

/// `llm-scaler serve`, killed on drop.
struct Scaler {
    child: Child,
    grpc: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
}

impl Drop for Scaler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Scaler {
    fn start(kubeconfig: &Path, dir: &Path) -> Scaler {
        // The shipped config file, as the ConfigMap mounts it; listen addresses and the scrape
        // interval overridden by flags for the test.
        let cm = manifests().into_iter().find(|(_, d)| d["kind"] == "ConfigMap").unwrap().1;
        let config = dir.join("config.toml");
        std::fs::write(&config, cm["data"]["config.toml"].as_str().unwrap()).unwrap();
        let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let (grpc, http) = (port(), port());
        let log = dir.join("scaler.log");
        let child = Command::new(env!("CARGO_BIN_EXE_llm-scaler"))
            .arg("serve")
            .arg(format!("--config={}", config.display()))
            .arg(format!("--grpc-addr={grpc}"))
            .arg(format!("--http-addr={http}"))
            .arg("--scrape-interval=500ms")
            .arg("--log-format=text")
            // As deployment.yaml sets it from the pod's namespace; written every second here.
            .arg(format!("--history-namespace={SA_NAMESPACE}"))
            .arg("--history-interval=1s")
            .env("KUBECONFIG", kubeconfig)
            // Never the in-cluster config of a machine that happens to run in a pod.
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap().try_clone().unwrap())
            .spawn()
            .expect("spawn llm-scaler serve");
        Scaler { child, grpc, http, log }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn wait_serving(&self, service: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = async {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.grpc)).ok()?.connect().await.ok()?;
                let mut h = HealthClient::new(channel);
                let r = h.check(HealthCheckRequest { service: service.into() }).await.ok()?;
                Some(r.into_inner().status)
            }
            .await;
            if status == Some(ServingStatus::Serving as i32) {
                return;
            }
            assert!(Instant::now() < deadline, "health {service:?} not SERVING within 30s (last {status:?}); log:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn trigger_metadata(file: &str) -> HashMap<String, String> {
    let so = manifests().into_iter().find(|(f, d)| f == file && (d["kind"] == "ScaledObject" || d["kind"] == "ScaledJob")).unwrap().1;
    serde_json::from_value(so["spec"]["triggers"][0]["metadata"].clone()).unwrap()
}

async fn get_metrics(grpc: SocketAddr, namespace: &str, name: &str, meta: &HashMap<String, String>) -> Result<f64, tonic::Status> {
    let mut client = ExternalScalerClient::connect(format!("http://{grpc}")).await.expect("connect");
    let so = ScaledObjectRef { name: name.into(), namespace: namespace.into(), scaler_metadata: meta.clone() };
    let r = client.get_metrics(GetMetricsRequest { scaled_object_ref: Some(so), metric_name: METRIC_NAME.into() }).await?;
    Ok(r.into_inner().metric_values[0].metric_value_float)
}

fn is_forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(ref s)) if s.code == 403)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaler_works_as_its_service_account_and_is_refused_the_rest() {
    let c = cluster().await;
    apply_everything(&c).await;
    let sa_user = service_account_user(SA_NAMESPACE, SA_NAME);
    let admin = c.admin_client().await;

    // The example fleet: the example Deployment's pods, played by fake vLLM servers; one
    // dcgm-exporter pod on the same node, in gpu-operator.
    let deploy: Deployment = Api::namespaced(admin.clone(), SERVED).get("llama-3-8b").await.unwrap();
    let labels = deploy.spec.unwrap().selector.match_labels.unwrap();
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let meta = trigger_metadata("scaledobjects/scaledobject.yaml");
    let model = meta["modelName"].clone();
    let (ip_a, ip_b, ip_dcgm) = (loopback(1), loopback(2), loopback(3));
    let vllm = bind_same_port(&[ip_a, ip_b]).await;
    let vllm_port = vllm[0].local_addr().unwrap().port();
    let mut tasks = Vec::new();
    for l in vllm {
        let mut pod = VllmPod::new(model.clone(), 1);
        pod.engines[0].waiting = 40;
        pod.engines[0].running = 30;
        let body = Arc::new(Mutex::new(pod));
        tasks.push(serve_metrics(l, move || {
            let mut s = String::new();
            body.lock().unwrap().render(&mut s);
            s
        }));
    }
    let dcgm_listener = tokio::net::TcpListener::bind(SocketAddr::new(ip_dcgm, 0)).await.unwrap();
    let dcgm_port = dcgm_listener.local_addr().unwrap().port();
    let gpus: Vec<Gpu> = ["vllm-a", "vllm-b"]
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let mut g = Gpu::h100(i as u32, "gpu-node-1");
            g.holder = Some(PodRef { namespace: SERVED.into(), pod: (*pod).into(), container: "vllm".into() });
            g.util = 0.9;
            g
        })
        .collect();
    tasks.push(serve_metrics(dcgm_listener, move || {
        let mut s = String::new();
        dcgm::render(&gpus, DcgmFlavor::V4_6, &mut s);
        s
    }));
    for (name, ip) in [("vllm-a", ip_a), ("vllm-b", ip_b)] {
        c.create_pod(SERVED, name, &labels, "gpu-node-1").await;
        c.set_pod_status(SERVED, name, Some(ip), true).await;
    }
    c.create_pod(DCGM_NS, "nvidia-dcgm-exporter-x1", &[("app", "nvidia-dcgm-exporter")], "gpu-node-1").await;
    c.set_pod_status(DCGM_NS, "nvidia-dcgm-exporter-x1", Some(ip_dcgm), true).await;

    // GetMetrics exactly as KEDA sends it for scaledobjects/scaledobject.yaml, ports pointed at
    // the fakes (they cannot listen on 8000/9400 here); the ScaledObject itself says the same,
    // as the scaler's ScaledObject watch reads it.
    let mut meta = meta;
    meta.insert("metricsPort".into(), vllm_port.to_string());
    meta.insert("dcgmPort".into(), dcgm_port.to_string());
    let so_admin: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        SERVED,
        &kube::api::ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"), "scaledobjects"),
    );
    let triggers = json!({"spec": {"triggers": [{"type": "external", "metadata": meta}]}});
    so_admin.patch("llama-3-8b", &PatchParams::default(), &Patch::Merge(&triggers)).await.unwrap();

    // The real binary, authenticated as the ServiceAccount, with nothing but deploy/'s RBAC.
    let dir = tempfile::tempdir().unwrap();
    let scaler = Scaler::start(&c.kubeconfig_for(&sa_user), dir.path());
    scaler.wait_serving("").await;
    scaler.wait_serving("externalscaler.ExternalScaler").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let value = loop {
        let r = get_metrics(scaler.grpc, SERVED, "llama-3-8b", &meta).await;
        if let Ok(v) = r {
            break v;
        }
        assert!(Instant::now() < deadline, "no GetMetrics answer within 30s: {r:?}; log:\n{}", scaler.log_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // 2 pods x 40 waiting at targetQueueDepth 8 wants well above the 2 replicas running.
    assert!(value > 2.0, "desired replicas {value}");
    let body = reqwest::get(format!("http://{}/api/v1/decisions/{SERVED}/llama-3-8b", scaler.http)).await.unwrap().text().await.unwrap();
    let decisions: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("decisions API: {e}: {body}"));
    let latest = &decisions["scaledobjects"][0]["latest"];
    assert_eq!(latest["ready_pods"], 2, "both pods discovered through the API: {decisions}");
    let gpu = latest["signals"].as_array().unwrap().iter().find(|s| s["signal"] == "gpu_utilization").expect("gpu signal");
    assert_eq!(gpu["reporting_pods"], 2, "dcgm-exporter discovered in {DCGM_NS}: {decisions}");

    // Batch mode as the same identity: the ScaledJob example's trigger, pointed at a local
    // redis-server, watches the ScaledJob's pods with deploy/'s pod grant. A worker whose pod is
    // gone gives its entry back at once (after the 10 s grace), long before the 5m claimTimeout.
    let redis = redis_server::RedisServer::with_password("s3cret");
    let mut jmeta = trigger_metadata("scaledobjects/scaledjob-batch.yaml");
    let (stream, group) = (jmeta["stream"].clone(), jmeta["consumerGroup"].clone());
    {
        let mut rc = redis.conn().await;
        let _: () = redis::cmd("XGROUP").arg(&["CREATE", &stream, &group, "$", "MKSTREAM"][..]).query_async(&mut rc).await.unwrap();
        for i in 0..3 {
            let _: String = redis::cmd("XADD").arg(&stream).arg("*").arg("item").arg(i).query_async(&mut rc).await.unwrap();
        }
        for worker in ["embed-backfill-live", "embed-backfill-gone"] {
            let _: redis::Value = redis::cmd("XREADGROUP")
                .arg(&["GROUP", &group, worker, "COUNT", "1", "STREAMS", &stream, ">"][..])
                .query_async(&mut rc)
                .await
                .unwrap();
        }
    }
    c.create_pod(SERVED, "embed-backfill-live", &[("scaledjob.keda.sh/name", "embed-backfill")], "spot-node-1").await;
    c.set_pod_status(SERVED, "embed-backfill-live", Some(loopback(9)), true).await;
    // KEDA sends the value it resolved from the Job container's env.
    jmeta.remove("passwordFromEnv");
    jmeta.insert("password".into(), "s3cret".into());
    jmeta.insert("address".into(), redis.address());
    let job = ScaledObjectRef { name: "embed-backfill".into(), namespace: SERVED.into(), scaler_metadata: jmeta };
    let mut client = ExternalScalerClient::connect(format!("http://{}", scaler.grpc)).await.unwrap();
    let spec = client.get_metric_spec(job.clone()).await.expect("the example's batch trigger is accepted").into_inner();
    assert_eq!(spec.metric_specs[0].metric_name, BATCH_METRIC_NAME);
    let deadline = Instant::now() + Duration::from_secs(40);
    let batch = loop {
        let body =
            reqwest::get(format!("http://{}/api/v1/decisions/{SERVED}/embed-backfill", scaler.http)).await.unwrap().text().await.unwrap();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let d = &v["scaledjobs"][0]["decision"];
        if d["orphaned"] == 1 {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "no batch decision counting the gone worker's entry: {body}; log:\n{}", scaler.log_tail());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!((batch["queued"].as_f64(), batch["busy"].as_u64()), (Some(2.0), Some(1)), "lag 1 + 1 to redo; 1 Job at work: {batch}");
    assert_eq!(batch["pods"]["live"], json!(["embed-backfill-live"]), "{batch}");

    // Its learned state lands in a ConfigMap of its own namespace, named for the ScaledObject,
    // rewritten with the resourceVersion it last saw (the history grows, the version moves on).
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), SA_NAMESPACE);
    let cm_name = format!("llm-scaler-history.{SERVED}.llama-3-8b");
    let mut versions = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while versions.len() < 2 {
        if let Some(cm) = cms.get_opt(&cm_name).await.unwrap() {
            let state: Value = serde_json::from_str(&cm.data.as_ref().unwrap()["state.json"]).unwrap();
            assert_eq!(state["scaledObject"], format!("{SERVED}/llama-3-8b"));
            assert!(state["history"]["values"].is_array(), "{state}");
            versions.insert(cm.metadata.resource_version.unwrap());
        }
        assert!(Instant::now() < deadline, "history ConfigMap not written twice within 30s; log:\n{}", scaler.log_tail());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A second replica (a restart, a rollout, KEDA failing over) collects the ScaledObject from
    // its own start, from the ScaledObject watch, before any call reaches it; it reads the saved
    // state before its first tick.
    let dir2 = tempfile::tempdir().unwrap();
    let second = Scaler::start(&c.kubeconfig_for(&sa_user), dir2.path());
    second.wait_serving("externalscaler.ExternalScaler").await;
    let decisions_of = |s: &Scaler| format!("http://{}/api/v1/decisions/{SERVED}/llama-3-8b", s.http);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = reqwest::get(decisions_of(&second)).await.unwrap().text().await.unwrap();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if v["scaledobjects"][0]["latest"]["desired_replicas"].is_number() {
            break;
        }
        assert!(Instant::now() < deadline, "second replica not warm without a call; log:\n{}", second.log_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restored = std::fs::read_to_string(&second.log).unwrap_or_default();
    assert!(restored.contains("kept warm from the ScaledObject watch"), "log:\n{}", second.log_tail());
    assert!(restored.contains("demand history restored"), "log:\n{}", second.log_tail());
    // KEDA's client moves to it when the first dies: its first answer is the same number, at once.
    let last = get_metrics(scaler.grpc, SERVED, "llama-3-8b", &meta).await.expect("the first replica answers");
    drop(scaler);
    let died = Instant::now();
    let first = get_metrics(second.grpc, SERVED, "llama-3-8b", &meta).await;
    let failover = died.elapsed();
    assert_eq!(first.as_ref().ok(), Some(&last), "the second replica's first answer after the failover: {first:?}");
    eprintln!("failover: the second replica answered {last} (as the first did) {failover:?} after the first died");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!std::fs::read_to_string(&second.log).unwrap_or_default().contains("cannot save state"), "log:\n{}", second.log_tail());
    let scaler = second;

    // Outside its grant the binary is refused: a ScaledObject in a namespace without a
    // RoleBinding gets an error naming the refusal, not a number.
    c.apply_yaml_str(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: m, namespace: {UNSERVED}}}\nspec:\n  selector: {{matchLabels: {{app: m}}}}\n  \
         template:\n    metadata: {{labels: {{app: m}}}}\n    spec: {{containers: [{{name: m, image: m}}]}}\n---\n\
         apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: m, namespace: {UNSERVED}}}\nspec:\n  scaleTargetRef: {{name: m}}\n  \
         triggers: [{{type: external, metadata: {{scalerAddress: 'x:9090'}}}}]\n"
    ))
    .await;
    let mut other = HashMap::new();
    other.insert("scalerAddress".to_string(), "llm-scaler.llm-scaler.svc.cluster.local:9090".to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    let err = loop {
        match get_metrics(scaler.grpc, UNSERVED, "m", &other).await {
            Err(e) if e.message().contains("forbidden") => break e,
            r => assert!(Instant::now() < deadline, "expected a forbidden error for {UNSERVED}/m, got {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(err.message().contains(UNSERVED), "{}", err.message());

    // And the binary stayed inside the grant: every request it made was get/list/watch on the
    // granted resources, none refused in the namespaces it serves. Stopped first: the audit
    // log records a watch when it ends.
    drop(scaler);
    // Each of its watches (one per namespace) is logged when the API server closes it, not
    // necessarily at the same moment: wait for all of them.
    let watch_ended = |ns: &str| {
        c.audit_events()
            .iter()
            .any(|e| e["user"]["username"] == sa_user.as_str() && e["verb"] == "watch" && e["objectRef"]["namespace"] == ns)
    };
    let mut waited = 0;
    while waited < 50 && !(watch_ended(SERVED) && watch_ended(DCGM_NS)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let granted: BTreeSet<(&str, &str)> = [
        ("scaledobjects", "get"),
        ("scaledobjects", "list"),
        ("scaledobjects", "watch"),
        ("scaledjobs", "get"),
        ("deployments", "get"),
        ("statefulsets", "get"),
        ("pods", "list"),
        ("pods", "watch"),
        ("configmaps", "get"),
        ("configmaps", "create"),
        ("configmaps", "update"),
    ]
    .into();
    let mut seen = BTreeSet::new();
    let mut pod_reads = BTreeSet::new();
    for e in c.audit_events() {
        // Only the binary has used this identity so far (the test's own checks come below).
        if e["user"]["username"] != sa_user.as_str() {
            continue;
        }
        let Some(resource) = e["objectRef"]["resource"].as_str() else { continue };
        let verb = e["verb"].as_str().unwrap();
        let ns = e["objectRef"]["namespace"].as_str().unwrap_or_default();
        assert!(granted.contains(&(resource, verb)), "the scaler made a request outside deploy/rbac.yaml: {verb} {resource} in {ns:?}");
        if resource == "configmaps" {
            assert_eq!(ns, SA_NAMESPACE, "configmaps only in its own namespace: {e}");
        }
        if ns != UNSERVED {
            assert_ne!(e["responseStatus"]["code"], 403, "refused in a served namespace: {e}");
        }
        seen.insert((resource.to_string(), verb.to_string()));
        if resource == "pods" {
            pod_reads.insert((ns.to_string(), verb.to_string()));
        }
    }
    for needed in [
        ("scaledobjects", "get"),
        ("deployments", "get"),
        ("pods", "list"),
        ("pods", "watch"),
        ("configmaps", "create"),
        ("configmaps", "update"),
    ] {
        assert!(seen.contains(&(needed.0.to_string(), needed.1.to_string())), "audit log: the scaler never did {needed:?}; saw {seen:?}");
    }
    for ns in [SERVED, DCGM_NS] {
        for verb in ["list", "watch"] {
            assert!(pod_reads.contains(&(ns.to_string(), verb.to_string())), "audit log: no pod {verb} in {ns}: {pod_reads:?}");
        }
    }
    let scaledjob_list = c.audit_events().into_iter().any(|e| {
        e["user"]["username"] == sa_user.as_str()
            && e["verb"] == "list"
            && e["objectRef"]["resource"] == "pods"
            && e["requestURI"].as_str().is_some_and(|u| u.contains("scaledjob.keda.sh%2Fname%3Dembed-backfill"))
            && e["responseStatus"]["code"] == 200
    });
    assert!(scaledjob_list, "audit log: no granted pod list by the ScaledJob's label");
    // The identity itself, request by request: what the scaler must never be able to do.
    let sa = c.client_for(&sa_user).await;
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), SERVED);
    assert!(is_forbidden(secrets.list(&ListParams::default()).await), "list secrets");
    assert!(is_forbidden(secrets.get("hf-token").await), "get a secret");
    let deployments: Api<Deployment> = Api::namespaced(sa.clone(), SERVED);
    deployments.get("llama-3-8b").await.expect("get the scale target: granted");
    let scale_up = json!({"spec": {"replicas": 5}});
    assert!(is_forbidden(deployments.patch("llama-3-8b", &PatchParams::default(), &Patch::Merge(&scale_up)).await), "patch a Deployment");
    assert!(
        is_forbidden(deployments.patch_scale("llama-3-8b", &PatchParams::default(), &Patch::Merge(&scale_up)).await),
        "scale a Deployment"
    );
    assert!(is_forbidden(deployments.list(&ListParams::default()).await), "list Deployments (only get)");
    let pods_served: Api<Pod> = Api::namespaced(sa.clone(), SERVED);
    pods_served.list(&ListParams::default()).await.expect("list pods where it serves: granted");
    assert!(is_forbidden(pods_served.get("vllm-a").await), "get a pod (only list/watch)");
    assert!(is_forbidden(pods_served.delete("vllm-a", &Default::default()).await), "delete a pod");
    assert!(is_forbidden(Api::<Pod>::namespaced(sa.clone(), UNSERVED).list(&ListParams::default()).await), "list pods in {UNSERVED}");
    assert!(is_forbidden(Api::<Pod>::all(sa.clone()).list(&ListParams::default()).await), "list pods cluster-wide");
    assert!(is_forbidden(Api::<Deployment>::namespaced(sa.clone(), DCGM_NS).get("anything").await), "gpu-operator grants pods only");
    Api::<Pod>::namespaced(sa.clone(), DCGM_NS).list(&ListParams::default()).await.expect("list dcgm pods: granted");
    let so_api: Api<DynamicObject> = Api::namespaced_with(
        sa.clone(),
        SERVED,
        &kube::api::ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"), "scaledobjects"),
    );
    so_api.get("llama-3-8b").await.expect("get the ScaledObject: granted");
    so_api.list(&ListParams::default()).await.expect("list ScaledObjects where it serves: granted (warm_namespaces)");
    let so_unserved: Api<DynamicObject> = Api::namespaced_with(
        sa.clone(),
        UNSERVED,
        &kube::api::ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"), "scaledobjects"),
    );
    assert!(is_forbidden(so_unserved.list(&ListParams::default()).await), "list ScaledObjects in {UNSERVED}");
    assert!(is_forbidden(so_api.delete("llama-3-8b", &Default::default()).await), "delete a ScaledObject");
    // ConfigMaps: by name in its own namespace only; none in the namespaces it serves.
    let own_cms: Api<ConfigMap> = Api::namespaced(sa.clone(), SA_NAMESPACE);
    own_cms.get(&cm_name).await.expect("get its history ConfigMap: granted");
    assert!(is_forbidden(own_cms.list(&ListParams::default()).await), "list ConfigMaps (only get by name)");
    assert!(is_forbidden(own_cms.delete(&cm_name, &Default::default()).await), "delete its history ConfigMap");
    let served_cms: Api<ConfigMap> = Api::namespaced(sa.clone(), SERVED);
    assert!(is_forbidden(served_cms.get("anything").await), "get a ConfigMap where it serves");
    assert!(is_forbidden(served_cms.create(&PostParams::default(), &ConfigMap::default()).await), "create a ConfigMap where it serves");

    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_store_refuses_a_stale_write_and_a_foreign_state_as_the_service_account() {
    use llm_scaler::{
        decide::forecast::HistorySnapshot,
        run::history_store::{HistoryStore, SavedState, StoreError},
    };
    let c = cluster().await;
    apply_everything(&c).await;
    let sa = c.client_for(&service_account_user(SA_NAMESPACE, SA_NAME)).await;
    let store = HistoryStore::new(sa, SA_NAMESPACE);
    let snap =
        |v: f32| HistorySnapshot { version: HistorySnapshot::VERSION, bucket_s: 60, start: 100, values: vec![Some(v), None, Some(v)] };
    let state = |v: f32| SavedState { scaled_object: format!("{SERVED}/llama"), saved_at_s: 1, history: Some(snap(v)), capacity: None };
    assert!(store.load(SERVED, "llama").await.unwrap().is_none(), "nothing saved yet");
    let v1 = store.save(&state(1.0), None).await.expect("create");
    let v2 = store.save(&state(2.0), Some(&v1)).await.expect("replace at the version just written");
    assert_ne!(v1, v2);
    // Another replica still holding v1 loses the race instead of overwriting.
    match store.save(&state(3.0), Some(&v1)).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a stale write must be a conflict: {other:?}"),
    }
    let loaded = store.load(SERVED, "llama").await.unwrap().expect("saved");
    assert_eq!((loaded.state, loaded.resource_version), (state(2.0), v2.clone()));
    // A ConfigMap of that name holding another ScaledObject's state is refused, not read.
    let mut foreign = state(4.0);
    foreign.scaled_object = format!("{SERVED}/other");
    let admin = c.admin_client().await;
    let cms: Api<ConfigMap> = Api::namespaced(admin, SA_NAMESPACE);
    let mut cm = cms.get(&HistoryStore::config_map_name(SERVED, "llama")).await.unwrap();
    cm.data.as_mut().unwrap().insert("state.json".into(), serde_json::to_string(&foreign).unwrap());
    cms.replace(&HistoryStore::config_map_name(SERVED, "llama"), &PostParams::default(), &cm).await.unwrap();
    match store.load(SERVED, "llama").await {
        Err(StoreError::Foreign { problem, .. }) => assert!(problem.contains("not ai-inference/llama"), "{problem}"),
        other => panic!("a foreign state must be refused: {other:?}"),
    }
}
