//! Real `promtool` (Prometheus 2.42, Debian's package) for the monitoring tests: rule files
//! checked and unit-tested, scrape configs and `/metrics` bodies linted.
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
    /// The `prometheus` server (installed with it; the tests do not start it).
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
