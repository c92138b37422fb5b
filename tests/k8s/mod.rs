//! Test support: a real Kubernetes API server (kube-apiserver v1.20.2 + etcd) on loopback.
//!
//! Include it from a test file with `#[path = "k8s/mod.rs"] mod k8s;`.
//!
//! * Binaries come from `scripts/k8s/build.sh` (Debian's source package, cached outside the
//!   repo). When the cache is empty the script is run; when that fails the test FAILS with the
//!   script's message: a suite that silently skips its Kubernetes tests proves nothing.
//! * Each [`TestCluster`] gets fresh PKI (openssl), a static token file, free loopback ports and
//!   its own temp dir, so parallel test binaries never collide. [`TestCluster::shared`] gives one
//!   lazily started cluster per test binary (start-up costs about 5 s); tests that stop the API
//!   server start their own with [`TestCluster::start`] or [`TestCluster::builder`].
//! * No kubelet exists: tests play it with [`TestCluster::create_pod`],
//!   [`TestCluster::set_pod_status`] and [`TestCluster::delete_pod`].
//! * The API server writes an audit log (metadata level), read back with
//!   [`TestCluster::audit_events`]: the way to prove which requests a client made (e.g. "no LIST
//!   per tick") and to test RBAC answers.
//!
//! `kube::Client`s are never cached here: a client's connection pool lives on the Tokio runtime
//! that first used it, and every `#[tokio::test]` has its own runtime. Clients are cheap.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::{BufRead, BufReader},
    net::{IpAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock, mpsc},
    time::{Duration, Instant},
};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Client, Config,
    api::{Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    discovery::{self, Scope},
};
use serde_json::{Value, json};

/// The Kubernetes version the harness runs (the newest Debian bookworm ships as source).
pub const K8S_VERSION: &str = "1.20.2";
/// Field manager used for server-side apply and status patches.
const FIELD_MANAGER: &str = "llm-scaler-tests";
/// Upper bound for etcd and the API server to come up (a cold start takes about 5 s).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping process gets after SIGTERM before SIGKILL. kube-apiserver 1.20 often
/// does not exit on SIGTERM while watches are open; a test stopping it wants it gone, not a
/// graceful drain, so the wait is short.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Bearer-token identity of the cluster admin (group `system:masters`); every cluster has it.
pub const ADMIN: &str = "admin";
/// A second `system:masters` user of the shared cluster, for a process under test (a scaler),
/// so its requests can be told apart from the test's own in the audit log.
pub const SUPERUSER: &str = "llm-scaler-superuser";
/// Namespace and name of the ServiceAccount identity the shared cluster knows (no RBAC is
/// granted to it: a test applies deploy/'s RBAC and acts as it with
/// `client_for(&service_account_user(SA_NAMESPACE, SA_NAME))`).
pub const SA_NAMESPACE: &str = "keda";
/// See [`SA_NAMESPACE`].
pub const SA_NAME: &str = "llm-scaler";

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

/// Where the built Kubernetes binaries live (same default as scripts/k8s/build.sh).
pub fn cache_bin_dir() -> PathBuf {
    let root = std::env::var_os("K8S_TEST_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache/llm-scaler")
    });
    root.join(format!("k8s-{K8S_VERSION}/bin"))
}

/// Path of `kube-apiserver`, building it first when the cache is empty (once per process; the
/// script serialises concurrent builds across processes with a lock file). Panics with the
/// script's message when the build fails: never a silent skip. The outcome is kept, so the other
/// tests of this binary fail at once with the same message, and the script's failure marker
/// (keyed by [`run_id`]) makes the later test binaries of the same `cargo test` fail at once too.
pub fn kube_apiserver_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(build_kube_apiserver) {
        Ok(bin) => bin.clone(),
        Err(why) => panic!("{why}"),
    }
}

fn build_kube_apiserver() -> Result<PathBuf, String> {
    let bin = cache_bin_dir().join("kube-apiserver");
    // The script is cheap when cached and also makes sure etcd/openssl are installed. It runs
    // with this process's environment (cargo's OUT_DIR included): the script owns what its
    // `make` sees, which tests/build_script.rs proves.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/k8s/build.sh");
    eprintln!("[k8s] ensuring kube-apiserver {K8S_VERSION} via {} (a cold build takes 3-6 min on 2 cores)", script.display());
    // Its progress goes straight to the test's stderr (a cold build takes minutes); on failure
    // the script's marker holds the cause and the last lines of the build.
    let status = Command::new("bash")
        .arg(&script)
        .env("K8S_BUILD_RUN_ID", run_id())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !status.success() {
        let marker = cache_bin_dir().with_file_name("build-failed");
        let cause = std::fs::read_to_string(&marker).unwrap_or_else(|_| "(no failure marker written; see the output above)".into());
        return Err(format!(
            "building kube-apiserver {K8S_VERSION} failed: {} exited with {status}. \
             The Kubernetes tests cannot run without it (they are never skipped). Cause ({}):\n{cause}",
            script.display(),
            marker.display()
        ));
    }
    if !bin.is_file() {
        return Err(format!("{} succeeded but {} does not exist", script.display(), bin.display()));
    }
    Ok(bin)
}

/// Identifies this test run: nextest's own run id when set, else the parent process's PID and
/// start time (`cargo test` starts every test binary of a run). A build failure recorded by the
/// first binary is not retried by the next ones; the next run has another id and retries (and
/// the script ignores markers older than 30 minutes, for binaries run by hand from one shell).
fn run_id() -> String {
    if let Ok(id) = std::env::var("NEXTEST_RUN_ID") {
        return format!("nextest-{id}");
    }
    let ppid = std::os::unix::process::parent_id();
    // Field 22 of /proc/PID/stat is the start time in clock ticks since boot; the command name
    // (field 2) may hold spaces, so count from the closing parenthesis.
    let started = std::fs::read_to_string(format!("/proc/{ppid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().nth(19).unwrap_or("").to_string()))
        .unwrap_or_default();
    format!("{ppid}-{started}")
}

/// `etcd` from PATH (Debian's etcd-server, installed by the build script).
fn etcd_binary() -> PathBuf {
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join("etcd");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("etcd not found in PATH; scripts/k8s/build.sh installs Debian's etcd-server (apt-get install etcd-server)")
}

// ---------------------------------------------------------------------------------------------
// Processes: spawned from one long-lived thread with PR_SET_PDEATHSIG, so that etcd and the API
// server die with the test binary even when it is killed; the normal path stops them by PID.
// ---------------------------------------------------------------------------------------------

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawn_guarded(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // PDEATHSIG fires when the *thread* that forked the child exits: this thread never does.
        std::thread::Builder::new()
            .name("k8s-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    use std::os::unix::process::CommandExt as _;
                    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the k8s-spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock().unwrap_or_else(|p| p.into_inner()).send((cmd, reply_tx)).expect("k8s-spawner thread alive");
    reply_rx.recv().expect("k8s-spawner answered")
}

/// SIGTERM, wait up to `grace`, then SIGKILL; always reaps.
fn stop_child(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: plain kill(2) on a PID we own and have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A loopback port nobody listens on right now. Another process may take it before we bind;
/// [`TestCluster::start`] retries with new ports when a process dies at start-up.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind an ephemeral loopback port")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------------------------
// Users, PKI, configuration files
// ---------------------------------------------------------------------------------------------

/// A static-token identity known to the API server.
#[derive(Debug, Clone)]
pub struct StaticUser {
    /// User name, e.g. `system:serviceaccount:keda:llm-scaler`.
    pub name: String,
    /// Bearer token.
    pub token: String,
    /// Groups (`system:authenticated` is added by the API server).
    pub groups: Vec<String>,
}

/// The `kubeconfig`-style user name of a ServiceAccount.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

fn token_for_name(name: &str) -> String {
    // Deterministic per cluster dir is not needed; unique and readable in logs is.
    let mut t = String::from("t-");
    for c in name.chars() {
        t.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    let _ = write!(t, "-{:08x}", rand_u32());
    t
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    h.finish() as u32
}

/// Fresh CA, serving certificate (SAN 127.0.0.1, localhost) and service-account key pair.
fn make_pki(dir: &Path) {
    let o = |args: &[&str], what: &str| run(Command::new("openssl").args(args).current_dir(dir), what);
    o(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=llm-scaler-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        "openssl: test CA",
    );
    o(
        &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"],
        "openssl: serving key",
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server.ext");
    o(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        "openssl: serving certificate",
    );
    o(&["genrsa", "-out", "sa.key", "2048"], "openssl: service-account key");
    o(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], "openssl: service-account public key");
}

fn token_file(users: &[StaticUser]) -> String {
    users.iter().enumerate().map(|(i, u)| format!("{},{},uid-{i},\"{}\"\n", u.token, u.name, u.groups.join(","))).collect()
}

/// Metadata-level audit of every request except the API server's own housekeeping.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: [\"system:apiserver\"]
- level: None
  nonResourceURLs: [\"/healthz*\", \"/readyz*\", \"/livez*\", \"/version\", \"/metrics\"]
- level: Metadata
";

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

/// Configures a [`TestCluster`]: extra static-token users and API server flags.
#[derive(Debug, Default)]
pub struct ClusterBuilder {
    users: Vec<StaticUser>,
    apiserver_args: Vec<String>,
}

impl ClusterBuilder {
    /// A user with these groups and a generated token.
    pub fn user(mut self, name: &str, groups: &[&str]) -> Self {
        self.users.push(StaticUser {
            name: name.to_owned(),
            token: token_for_name(name),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        });
        self
    }

    /// A user acting as ServiceAccount `namespace/name`: user name
    /// `system:serviceaccount:<ns>:<name>`, groups `system:serviceaccounts` and
    /// `system:serviceaccounts:<ns>`, exactly what RBAC subjects of kind ServiceAccount match.
    pub fn service_account(self, namespace: &str, name: &str) -> Self {
        let user = service_account_user(namespace, name);
        let ns_group = format!("system:serviceaccounts:{namespace}");
        self.user(&user, &["system:serviceaccounts", &ns_group])
    }

    /// An extra kube-apiserver flag, e.g. `--watch-cache=false`.
    pub fn apiserver_arg(mut self, arg: &str) -> Self {
        self.apiserver_args.push(arg.to_owned());
        self
    }

    /// Starts etcd and the API server and waits for `/readyz`.
    pub async fn start(self) -> TestCluster {
        TestCluster::start_with(self).await
    }
}

struct Procs {
    etcd: Option<Child>,
    apiserver: Option<Child>,
}

/// etcd + kube-apiserver on loopback, stopped (apiserver first, by PID) and cleaned up on drop.
pub struct TestCluster {
    dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The API server's secure port (stable across [`TestCluster::stop_apiserver`] /
    /// [`TestCluster::start_apiserver`]).
    pub port: u16,
    ca_pem: String,
    users: Vec<StaticUser>,
    apiserver_cmd: Vec<String>,
    procs: Mutex<Procs>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster").field("url", &self.url).field("dir", &self.dir).finish()
    }
}

impl TestCluster {
    /// A builder for a cluster with extra users or flags.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// A private cluster with only the admin user.
    pub async fn start() -> TestCluster {
        Self::builder().start().await
    }

    /// The test binary's shared cluster, started on first use, with the KEDA CRDs installed and
    /// the users [`ADMIN`], [`SUPERUSER`] and the ServiceAccount [`SA_NAMESPACE`]/[`SA_NAME`].
    /// It lives until the process exits (an `atexit` hook stops it and removes its files).
    /// Do not stop its API server: other tests of the binary use it concurrently.
    pub async fn shared() -> &'static TestCluster {
        static SHARED: tokio::sync::OnceCell<&'static TestCluster> = tokio::sync::OnceCell::const_new();
        SHARED
            .get_or_init(|| async {
                let started = Self::builder().user(SUPERUSER, &["system:masters"]).service_account(SA_NAMESPACE, SA_NAME).start().await;
                let cluster: &'static TestCluster = Box::leak(Box::new(started));
                register_exit_hook(cluster);
                cluster.install_keda_crds().await;
                cluster
            })
            .await
    }

    async fn start_with(b: ClusterBuilder) -> TestCluster {
        let apiserver = kube_apiserver_binary();
        let etcd = etcd_binary();
        let dir = tempfile::Builder::new()
            .prefix(&format!("llm-scaler-k8s-{}-", std::process::id()))
            .tempdir()
            .expect("create a temp dir")
            .keep();
        make_pki(&dir);
        let mut users = vec![StaticUser { name: ADMIN.into(), token: token_for_name(ADMIN), groups: vec!["system:masters".into()] }];
        users.extend(b.users);
        std::fs::write(dir.join("tokens.csv"), token_file(&users)).expect("write tokens.csv");
        std::fs::write(dir.join("audit-policy.yaml"), AUDIT_POLICY).expect("write audit policy");
        let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).expect("read ca.crt");

        let mut last_error = String::new();
        for attempt in 1..=3 {
            let (client_port, peer_port, port) = (free_port(), free_port(), free_port());
            let mut cluster = TestCluster {
                dir: dir.clone(),
                url: format!("https://127.0.0.1:{port}"),
                port,
                ca_pem: ca_pem.clone(),
                users: users.clone(),
                apiserver_cmd: apiserver_args(&apiserver, &dir, client_port, port, &b.apiserver_args),
                procs: Mutex::new(Procs { etcd: None, apiserver: None }),
            };
            match cluster.boot(&etcd, client_port, peer_port).await {
                Ok(()) => {
                    eprintln!("[k8s] cluster up at {} (files in {})", cluster.url, dir.display());
                    return cluster;
                }
                Err(e) => {
                    last_error = e;
                    eprintln!("[k8s] start attempt {attempt} failed: {last_error}");
                    cluster.stop_processes();
                    let _ = std::fs::remove_dir_all(dir.join("etcd"));
                    // Keep the temp dir for the next attempt; Drop must not remove it.
                    cluster.dir = PathBuf::new();
                }
            }
        }
        panic!("could not start etcd + kube-apiserver after 3 attempts (files in {}): {last_error}", dir.display());
    }

    async fn boot(&mut self, etcd: &Path, client_port: u16, peer_port: u16) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.join("etcd.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(etcd);
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        cmd.args(["--name", "default", "--data-dir"])
            .arg(self.dir.join("etcd"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}"), "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let child = spawn_guarded(cmd).map_err(|e| format!("cannot start {}: {e}", etcd.display()))?;
        self.procs.lock().unwrap().etcd = Some(child);
        self.wait_etcd(client_port).await?;
        self.spawn_apiserver()?;
        self.wait_ready().await
    }

    async fn wait_etcd(&self, client_port: u16) -> Result<(), String> {
        let url = format!("http://127.0.0.1:{client_port}/health");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.procs.lock().unwrap().etcd.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("etcd exited with {status}:\n{}", tail(&self.dir.join("etcd.log"), 20)));
            }
            if Instant::now() > deadline {
                return Err(format!("etcd not healthy within {START_TIMEOUT:?}:\n{}", tail(&self.dir.join("etcd.log"), 20)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn spawn_apiserver(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("apiserver.log"))
            .map_err(|e| format!("open apiserver.log: {e}"))?;
        let mut cmd = Command::new(&self.apiserver_cmd[0]);
        cmd.args(&self.apiserver_cmd[1..]).stdin(Stdio::null()).stdout(log.try_clone().map_err(|e| e.to_string())?).stderr(log);
        let child = spawn_guarded(cmd).map_err(|e| format!("cannot start kube-apiserver: {e}"))?;
        self.procs.lock().unwrap().apiserver = Some(child);
        Ok(())
    }

    /// Polls `/readyz` with the admin token until it answers `ok`.
    async fn wait_ready(&self) -> Result<(), String> {
        let client = self.admin_client().await;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let req = http::Request::get("/readyz").body(Vec::new()).expect("request");
            match client.request_text(req).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                _ => {}
            }
            if let Some(status) = self.procs.lock().unwrap().apiserver.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("kube-apiserver exited with {status}:\n{}", tail(&self.dir.join("apiserver.log"), 30)));
            }
            if Instant::now() > deadline {
                return Err(format!("kube-apiserver not ready within {START_TIMEOUT:?}:\n{}", tail(&self.dir.join("apiserver.log"), 30)));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the API server (SIGTERM, then SIGKILL), keeping etcd, port and data: watches break
    /// and every client sees connection errors until [`TestCluster::start_apiserver`].
    /// Waits on a blocking thread, so fake pods served by the caller's runtime keep answering.
    pub async fn stop_apiserver(&self) {
        let child = self.procs.lock().unwrap().apiserver.take();
        if let Some(mut child) = child {
            let started = Instant::now();
            tokio::task::spawn_blocking(move || stop_child(&mut child, STOP_GRACE)).await.expect("stop kube-apiserver");
            eprintln!("[k8s] kube-apiserver stopped in {:?}", started.elapsed());
        }
    }

    /// Starts the API server again on the same port with the same etcd data and waits for
    /// `/readyz`. Its watch cache starts empty: watches resumed from a resourceVersion older
    /// than etcd's current revision are answered 410 Gone ("too old resource version").
    pub async fn start_apiserver(&self) {
        assert!(self.procs.lock().unwrap().apiserver.is_none(), "the API server is already running");
        let started = Instant::now();
        self.spawn_apiserver().expect("restart kube-apiserver");
        self.wait_ready().await.expect("restarted kube-apiserver ready");
        eprintln!("[k8s] kube-apiserver ready again in {:?}", started.elapsed());
    }

    /// Stops the API server, then etcd (the API server may ignore SIGTERM once etcd is gone).
    fn stop_processes(&self) {
        let mut procs = match self.procs.try_lock() {
            Ok(p) => p,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if let Some(mut c) = procs.apiserver.take() {
            stop_child(&mut c, STOP_GRACE);
        }
        if let Some(mut c) = procs.etcd.take() {
            stop_child(&mut c, STOP_GRACE);
        }
    }

    fn cleanup(&self) {
        self.stop_processes();
        if !self.dir.as_os_str().is_empty() && std::env::var_os("K8S_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    // ----- identities and clients -----

    /// Every static-token user (the admin first).
    pub fn users(&self) -> &[StaticUser] {
        &self.users
    }

    /// The token of a static user.
    pub fn token_for(&self, user: &str) -> &str {
        &self.users.iter().find(|u| u.name == user).unwrap_or_else(|| panic!("no static user {user:?} in this cluster")).token
    }

    /// A kubeconfig (server URL, certificate-authority-data, bearer token) for a static user,
    /// written into the cluster's temp dir: give it to a spawned `llm-scaler serve` via
    /// `KUBECONFIG`.
    pub fn kubeconfig_for(&self, user: &str) -> PathBuf {
        let path = self.dir.join(format!("kubeconfig-{}", user.replace(':', "_")));
        std::fs::write(&path, self.kubeconfig_yaml(self.token_for(user))).expect("write kubeconfig");
        path
    }

    fn kubeconfig_yaml(&self, token: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             users:\n- name: test\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\n\
             current-context: test\n",
            url = self.url
        )
    }

    /// A client authenticated with `token` (need not be a known token: to test 401s).
    pub async fn client_for_token(&self, token: &str) -> Client {
        let kubeconfig = Kubeconfig::from_yaml(&self.kubeconfig_yaml(token)).expect("parse generated kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kube config");
        Client::try_from(config).expect("kube client")
    }

    /// A client for a static user by name.
    pub async fn client_for(&self, user: &str) -> Client {
        self.client_for_token(self.token_for(user)).await
    }

    /// A `system:masters` client.
    pub async fn admin_client(&self) -> Client {
        self.client_for(ADMIN).await
    }

    // ----- objects -----

    /// Server-side applies (creates or updates) every document of a multi-document YAML file
    /// through the admin client, resolving each kind with API discovery. Namespaced objects
    /// without a namespace go to `default`. Returns the objects as the API server stored them.
    /// Server-side apply refuses fields the type does not declare, so a typo in a manifest
    /// fails the test; custom resources are also validated against their CRD's schema.
    pub async fn apply_yaml(&self, path: impl AsRef<Path>) -> Vec<DynamicObject> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        self.apply_yaml_str(&text).await
    }

    /// [`TestCluster::apply_yaml`] on YAML text.
    pub async fn apply_yaml_str(&self, text: &str) -> Vec<DynamicObject> {
        let client = self.admin_client().await;
        let mut applied = Vec::new();
        for doc in parse_yaml_documents(text) {
            applied.push(apply_value(&client, doc, ApplyMode::ServerSide).await);
        }
        applied
    }

    /// Installs the KEDA v2.20.2 CRDs from [`keda_crds_dir`] (ScaledJob preprocessed for
    /// 1.20, see [`crd_for_kube_1_20`]) and waits until the API serves them. Created, not
    /// server-side applied: 1.20's apply refuses the newer schema keys its CRD type lacks
    /// (`x-kubernetes-validations`), create drops them, as `kubectl create --validate=false`.
    pub async fn install_keda_crds(&self) {
        let dir = keda_crds_dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("KEDA CRDs expected in {}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no KEDA CRD YAML in {}", dir.display());
        let client = self.admin_client().await;
        for file in &files {
            let text = std::fs::read_to_string(file).expect("read CRD");
            for mut doc in parse_yaml_documents(&text) {
                if file.file_name().is_some_and(|n| n.to_string_lossy().contains("scaledjobs")) {
                    crd_for_kube_1_20(&mut doc);
                }
                apply_value(&client, doc, ApplyMode::CreateOrReplace).await;
            }
        }
        self.wait_for_resource(&client, "keda.sh", "v1alpha1", "scaledobjects").await;
        self.wait_for_resource(&client, "keda.sh", "v1alpha1", "scaledjobs").await;
    }

    async fn wait_for_resource(&self, client: &Client, group: &str, version: &str, plural: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(list) = client.list_api_group_resources(&format!("{group}/{version}")).await
                && list.resources.iter().any(|r| r.name == plural)
            {
                return;
            }
            assert!(Instant::now() < deadline, "{plural}.{group}/{version} not served within 30 s after installing its CRD");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a namespace (idempotent).
    pub async fn create_namespace(&self, name: &str) {
        self.apply_yaml_str(&format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")).await;
    }

    // ----- playing the kubelet -----

    /// Creates a Pod with these labels, scheduled on `node` (no kubelet will run it: status is
    /// ours to set with [`TestCluster::set_pod_status`]). Its phase starts as Pending.
    pub async fn create_pod(&self, namespace: &str, name: &str, labels: &[(&str, &str)], node: &str) -> Pod {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "vllm", "image": "vllm/vllm-openai:test"}]}
        }))
        .expect("pod");
        let api: Api<Pod> = Api::namespaced(self.admin_client().await, namespace);
        api.create(&PostParams::default(), &pod).await.unwrap_or_else(|e| panic!("create pod {namespace}/{name}: {e}"))
    }

    /// What a kubelet reports: `phase: Running`, `podIP`/`podIPs` = `ip`, and the
    /// `Ready`/`ContainersReady` conditions `True` or `False`; through the status subresource.
    /// Returns the updated Pod (its resourceVersion marks this write).
    pub async fn set_pod_status(&self, namespace: &str, name: &str, ip: Option<IpAddr>, ready: bool) -> Pod {
        let flag = if ready { "True" } else { "False" };
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let conditions: Vec<Value> = ["Initialized", "PodScheduled"]
            .iter()
            .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": now}))
            .chain(["ContainersReady", "Ready"].iter().map(|t| json!({"type": t, "status": flag, "lastTransitionTime": now})))
            .collect();
        let ips: Vec<Value> = ip.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
        let status = json!({"status": {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": ip.map(|i| i.to_string()),
            "podIPs": ips,
            "conditions": conditions,
        }});
        let api: Api<Pod> = Api::namespaced(self.admin_client().await, namespace);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap_or_else(|e| panic!("patch status of pod {namespace}/{name}: {e}"))
    }

    /// Deletes a pod at once (grace period 0: no kubelet would ever confirm a graceful delete).
    pub async fn delete_pod(&self, namespace: &str, name: &str) {
        let api: Api<Pod> = Api::namespaced(self.admin_client().await, namespace);
        api.delete(name, &DeleteParams::default().grace_period(0)).await.unwrap_or_else(|e| panic!("delete pod {namespace}/{name}: {e}"));
    }

    /// Starts a graceful delete: the pod gets a deletionTimestamp and stays (Terminating)
    /// because no kubelet confirms it. Finish with [`TestCluster::delete_pod`].
    pub async fn begin_pod_deletion(&self, namespace: &str, name: &str) {
        let api: Api<Pod> = Api::namespaced(self.admin_client().await, namespace);
        api.delete(name, &DeleteParams::default().grace_period(30))
            .await
            .unwrap_or_else(|e| panic!("gracefully delete pod {namespace}/{name}: {e}"));
    }

    // ----- observing the API server -----

    /// Audit events so far (one JSON object per line of the audit log; metadata level, stage
    /// ResponseComplete, or ResponseStarted for watches). Fields of interest: `verb` (`list`,
    /// `watch`, `get`, ...), `user.username`, `objectRef.{resource,namespace,name,subresource}`,
    /// `requestURI`, `responseStatus.code`, `auditID`. Covers every API server run of this
    /// cluster (the log file is kept across restarts).
    pub fn audit_events(&self) -> Vec<Value> {
        let Ok(file) = std::fs::File::open(self.dir.join("audit.log")) else { return Vec::new() };
        BufReader::new(file).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect()
    }

    /// The API server's log so far (for failure messages).
    pub fn apiserver_log_tail(&self, lines: usize) -> String {
        tail(&self.dir.join("apiserver.log"), lines)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Stops the shared cluster when the test binary exits (statics are never dropped). The
/// spawner's PDEATHSIG covers the case where the process is killed instead.
fn register_exit_hook(cluster: &'static TestCluster) {
    static CLUSTER: OnceLock<&'static TestCluster> = OnceLock::new();
    if CLUSTER.set(cluster).is_ok() {
        extern "C" fn at_exit() {
            if let Some(c) = CLUSTER.get() {
                c.cleanup();
            }
        }
        // SAFETY: registering a plain extern "C" function; it only touches a 'static.
        unsafe {
            libc::atexit(at_exit);
        }
    }
}

fn apiserver_args(bin: &Path, dir: &Path, etcd_port: u16, port: u16, extra: &[String]) -> Vec<String> {
    let f = |name: &str| dir.join(name).display().to_string();
    let mut args = vec![
        bin.display().to_string(),
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        "--advertise-address=127.0.0.1".into(),
        format!("--tls-cert-file={}", f("server.crt")),
        format!("--tls-private-key-file={}", f("server.key")),
        format!("--client-ca-file={}", f("ca.crt")),
        format!("--token-auth-file={}", f("tokens.csv")),
        "--authorization-mode=RBAC".into(),
        format!("--service-account-key-file={}", f("sa.pub")),
        format!("--service-account-signing-key-file={}", f("sa.key")),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--enable-admission-plugins=NamespaceLifecycle".into(),
        "--disable-admission-plugins=ServiceAccount".into(),
        format!("--cert-dir={}", f("certs")),
        format!("--audit-policy-file={}", f("audit-policy.yaml")),
        format!("--audit-log-path={}", f("audit.log")),
        "--audit-log-format=json".into(),
        "--audit-log-mode=blocking".into(),
        "--logtostderr=true".into(),
        "--v=1".into(),
    ];
    args.extend(extra.iter().cloned());
    args
}

/// KEDA v2.20.2's CRDs, vendored unmodified (see `third_party/keda/README.md`).
pub fn keda_crds_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/third_party/keda/v2.20.2/crds")).to_path_buf()
}

/// Every non-empty document of a multi-document YAML text, as JSON values.
pub fn parse_yaml_documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("invalid YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Makes a CRD from a newer KEDA installable on 1.20 (docs/testing.md): drops
/// every `default: ""` and every `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and
/// `x-kubernetes-validations` key, at any depth.
pub fn crd_for_kube_1_20(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| {
                !(matches!(k.as_str(), "x-kubernetes-list-type" | "x-kubernetes-list-map-keys" | "x-kubernetes-validations")
                    || (k == "default" && v.as_str() == Some("")))
            });
            map.values_mut().for_each(crd_for_kube_1_20);
        }
        Value::Array(items) => items.iter_mut().for_each(crd_for_kube_1_20),
        _ => {}
    }
}

/// Server-side applies one object (create or update), resolving its kind with discovery.
async fn apply_value(client: &Client, doc: Value, mode: ApplyMode) -> DynamicObject {
    let obj: DynamicObject = serde_json::from_value(doc).unwrap_or_else(|e| panic!("not a Kubernetes object: {e}"));
    let types = obj.types.clone().unwrap_or_else(|| panic!("object {:?} has no apiVersion/kind", obj.metadata.name));
    let gvk = GroupVersionKind::try_from(&types).unwrap_or_else(|e| panic!("bad apiVersion {:?}: {e}", types.api_version));
    let (resource, caps) = discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("the API server does not serve {}/{}: {e}", types.api_version, types.kind));
    let name = obj.metadata.name.clone().unwrap_or_else(|| panic!("{} without metadata.name", types.kind));
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), obj.metadata.namespace.as_deref().unwrap_or("default"), &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    match mode {
        ApplyMode::ServerSide => api
            .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
            .await
            .unwrap_or_else(|e| panic!("server-side apply {} {name}: {e}", types.kind)),
        ApplyMode::CreateOrReplace => match api.create(&PostParams::default(), &obj).await {
            Ok(created) => created,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let current = api.get(&name).await.unwrap_or_else(|e| panic!("get {} {name}: {e}", types.kind));
                let mut replacement = obj;
                replacement.metadata.resource_version = current.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &replacement)
                    .await
                    .unwrap_or_else(|e| panic!("replace {} {name}: {e}", types.kind))
            }
            Err(e) => panic!("create {} {name}: {e}", types.kind),
        },
    }
}

/// How [`apply_value`] writes.
#[derive(Debug, Clone, Copy)]
enum ApplyMode {
    /// Server-side apply: strict, refuses fields the type does not declare (catches typos).
    ServerSide,
    /// POST, or PUT over an existing object: like `kubectl create`/`replace`; fields 1.20 does
    /// not know (e.g. `x-kubernetes-validations` in newer CRDs) are dropped instead of refused.
    CreateOrReplace,
}
