//! Real `promtool` and `prometheus` (Prometheus 2.42, Debian's package) for the monitoring
//! tests: rule files checked and unit-tested, scrape configs and `/metrics` bodies linted, and a
//! server on loopback to scrape the scaler and answer queries ([`PrometheusServer`]).
//!
//! The binaries come from `scripts/prometheus/install.sh` (installed once with apt-get when
//! missing). Every call runs promtool with an environment of its own (`env_clear`, a fixed
//! `PATH`), so nothing the caller exported (cargo's `OUT_DIR`, a `PROMETHEUS_*` variable, ...)
//! can change what it checks. Each check returns promtool's whole output, or that output as the
//! error when promtool refuses the input: a broken file is an `Err`, never a skipped check.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
};

/// The binaries `scripts/prometheus/install.sh` reported.
#[derive(Clone, Debug)]
pub struct PrometheusBins {
    /// `promtool`.
    pub promtool: PathBuf,
    /// The `prometheus` server (installed with it; [`PrometheusServer`] starts it).
    pub prometheus: PathBuf,
}

const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the install script (first call of the test binary only) and returns the binaries' paths.
/// Panics with the script's output when it fails: without promtool nothing here can be checked.
pub fn prometheus_bins() -> PrometheusBins {
    static BINS: OnceLock<PrometheusBins> = OnceLock::new();
    BINS.get_or_init(|| {
        let script = repo_root().join("scripts/prometheus/install.sh");
        let out = Command::new("/bin/bash").arg(&script).env_clear().env("PATH", PATH).output().expect("run scripts/prometheus/install.sh");
        assert!(
            out.status.success(),
            "scripts/prometheus/install.sh failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let find = |name: &str| -> PathBuf {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                .map(PathBuf::from)
                .unwrap_or_else(|| panic!("scripts/prometheus/install.sh printed no {name}=PATH line: {stdout}"))
        };
        PrometheusBins { promtool: find("promtool"), prometheus: find("prometheus") }
    })
    .clone()
}

fn promtool() -> Command {
    let mut c = Command::new(prometheus_bins().promtool);
    c.env_clear().env("PATH", PATH).current_dir(repo_root());
    c
}

fn outcome(what: &str, out: std::io::Result<Output>) -> Result<String, String> {
    let out = out.map_err(|e| format!("{what}: cannot run promtool: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { Ok(text) } else { Err(format!("{what}: promtool exited with {}:\n{text}", out.status)) }
}

/// `promtool check rules FILE...`: syntax, PromQL and templates of plain rule files.
pub fn promtool_check_rules(files: &[&Path]) -> Result<String, String> {
    outcome("promtool check rules", promtool().args(["check", "rules"]).args(files).output())
}

/// `promtool test rules FILE...`: rule unit tests (input series -> expected alerts).
pub fn promtool_test_rules(files: &[&Path]) -> Result<String, String> {
    outcome("promtool test rules", promtool().args(["test", "rules"]).args(files).output())
}

/// `promtool check config FILE`: a prometheus.yml and the rule files it names.
pub fn promtool_check_config(file: &Path) -> Result<String, String> {
    outcome("promtool check config", promtool().args(["check", "config"]).arg(file).output())
}

/// `promtool check metrics` on an exposition body (what a `/metrics` endpoint served): parse
/// errors and lint findings (missing HELP, a counter without `_total`, ...) are an `Err`.
///
/// promtool 2.42 reads the classic text format. An OpenMetrics body whose counters are typed
/// under the name without `_total` (`# TYPE x counter` then `x_total 1`, as prometheus-client
/// writes them) reports "x_total no help text".
pub fn promtool_check_metrics(body: &str) -> Result<(), String> {
    let child = promtool().args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = child.map_err(|e| format!("promtool check metrics: cannot run promtool: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(body.as_bytes()).map_err(|e| format!("promtool check metrics: writing the body: {e}"))?;
    }
    outcome("promtool check metrics", child.wait_with_output()).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// A running Prometheus server, for tests that query what it scraped
// ---------------------------------------------------------------------------------------------

/// A free TCP port on 127.0.0.1 (bound, then released for the caller to bind).
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

/// A Prometheus server (the `prometheus` of [`prometheus_bins`]) listening on a free
/// 127.0.0.1 port, with its TSDB and its log in a directory of the caller's. Killed on drop,
/// so a failing test leaves no server behind.
pub struct PrometheusServer {
    child: std::process::Child,
    /// Where its HTTP API listens.
    pub addr: std::net::SocketAddr,
    log: PathBuf,
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes `s` for a URL query value (everything but unreserved characters).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

impl PrometheusServer {
    /// Starts Prometheus on `config`, storing its data in `dir/data` and its log in
    /// `dir/prometheus.log`, with an environment of its own (like promtool's).
    pub fn start(config: &Path, dir: &Path) -> PrometheusServer {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_loopback_port()).into();
        let log = dir.join("prometheus.log");
        let err = std::fs::File::create(&log).expect("create prometheus.log");
        let child = Command::new(prometheus_bins().prometheus)
            .env_clear()
            .env("PATH", PATH)
            .current_dir(dir)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start prometheus");
        PrometheusServer { child, addr, log }
    }

    /// What the server logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` (with its query string) on the HTTP API: the `data` of a `success` answer, or
    /// the whole answer (or the transport error) as the error.
    pub async fn api(&self, path: &str) -> Result<serde_json::Value, String> {
        let url = format!("http://{}{path}", self.addr);
        let get = async {
            let r = reqwest::Client::new().get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
            r.text().await.map_err(|e| format!("GET {url}: body: {e}"))
        };
        let body =
            tokio::time::timeout(std::time::Duration::from_secs(5), get).await.map_err(|_| format!("GET {url}: no answer in 5 s"))??;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON ({e}): {body}"))?;
        if v["status"] == "success" { Ok(v["data"].clone()) } else { Err(body) }
    }

    /// `/api/v1/query`: the result of an instant query at the server's now (vector, scalar, ...).
    pub async fn query(&self, q: &str) -> Result<serde_json::Value, String> {
        self.api(&format!("/api/v1/query?query={}", percent_encode(q))).await
    }

    /// Polls an instant query until `pred` holds for its result vector, and returns it (or
    /// panics after 30 s with the last answer and the server's log).
    pub async fn wait_query(&self, q: &str, pred: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut last = String::new();
        while std::time::Instant::now() < deadline {
            match self.query(q).await {
                Ok(data) => {
                    if let Some(r) = data["result"].as_array()
                        && pred(r)
                    {
                        return r.clone();
                    }
                    last = data.to_string();
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("query {q}: condition not met within 30 s; last answer {last}\nprometheus log:\n{}", self.log());
    }

    /// `/api/v1/query_range` from `start` to `end` (unix seconds) every `step` seconds.
    pub async fn query_range(&self, q: &str, start: f64, end: f64, step: f64) -> Result<serde_json::Value, String> {
        self.api(&format!("/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}", percent_encode(q))).await
    }

    /// `/api/v1/label/<label>/values` of the series `selector` selects (what Grafana's
    /// `label_values(selector, label)` asks for).
    pub async fn label_values(&self, label: &str, selector: &str) -> Result<Vec<String>, String> {
        let data = self.api(&format!("/api/v1/label/{}/values?match[]={}", percent_encode(label), percent_encode(selector))).await?;
        let values = data.as_array().ok_or_else(|| format!("label values of {label}: not a list: {data}"))?;
        Ok(values.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
    }
}
