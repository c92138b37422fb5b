//! `scripts/k8s/build.sh` does not depend on who calls it, and a failed build fails once per run.
//!
//! The real build takes 3-6 minutes, so these tests use the script's `--make-in DIR` hook:
//! it runs `make` in DIR exactly as the Kubernetes build does (same environment, same log, same
//! failure marker), here on a tiny Makefile that records where it would write and what it saw.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// A Makefile shaped like Kubernetes' own where it matters: it honours `OUT_DIR` (Kubernetes'
/// Makefile writes everything under `$(OUT_DIR)`, default `_output`) and records its environment.
const MAKEFILE: &str = "OUT_DIR ?= _output\n\
all:\n\
\tmkdir -p $(OUT_DIR)/bin\n\
\ttouch $(OUT_DIR)/bin/kube-apiserver\n\
\tenv | sort > $(OUT_DIR)/env.txt\n\
fail:\n\
\t@echo 'compiler says: boom at vendor/x.go:12'\n\
\t@false\n";

struct Sandbox {
    _dir: tempfile::TempDir,
    src: PathBuf,
    cache: PathBuf,
    hostile: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("src");
        let cache = dir.path().join("cache");
        let hostile = dir.path().join("hostile");
        for d in [&src, &cache, &hostile] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(src.join("Makefile"), MAKEFILE).expect("write Makefile");
        Sandbox { _dir: dir, src, cache, hostile }
    }

    /// Runs `build.sh --make-in src TARGET` with the given extra environment, on top of this
    /// test process's own (which holds cargo's variables, `OUT_DIR` among them when set).
    fn make(&self, target: &str, env: &[(&str, &str)]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/k8s/build.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg("--make-in").arg(&self.src).arg(target).env("K8S_TEST_CACHE", &self.cache);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run scripts/k8s/build.sh")
    }

    fn marker(&self) -> PathBuf {
        self.cache.join("k8s-1.20.2/build-failed")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_hostile_callers_environment_cannot_change_where_the_build_writes_or_what_make_sees() {
    let sb = Sandbox::new();
    let h = sb.hostile.to_str().expect("utf-8 path");
    let flags = format!("-e OUT_DIR={h}");
    let hostile: Vec<(&str, &str)> = vec![
        ("OUT_DIR", h),
        ("MAKEFLAGS", &flags),
        ("MFLAGS", "-e"),
        ("GOFLAGS", "-mod=mod"),
        ("GOPATH", h),
        ("GOBIN", h),
        ("GOROOT", h),
        ("GOCACHE", h),
        ("GOOS", "windows"),
        ("CGO_ENABLED", "1"),
        ("GOPROXY", "https://proxy.invalid"),
        ("CDPATH", h),
        ("KUBE_OUTPUT_SUBPATH", h),
        ("CARGO_TARGET_DIR", h),
    ];
    let out = sb.make("all", &hostile);
    assert!(out.status.success(), "make failed: {}", stderr(&out));

    assert!(sb.src.join("_output/bin/kube-apiserver").is_file(), "output must land in the source tree's _output/bin");
    let stray: Vec<_> = std::fs::read_dir(&sb.hostile).expect("read hostile dir").collect();
    assert!(stray.is_empty(), "the build wrote into the caller's OUT_DIR/GOPATH/GOBIN: {stray:?}");

    let env = std::fs::read_to_string(sb.src.join("_output/env.txt")).expect("env.txt");
    for (name, hostile_value) in &hostile {
        // Absent, or set by the script itself to a value of its own.
        if let Some(value) = env.lines().find_map(|l| l.split_once('=').filter(|(k, _)| k == name).map(|(_, v)| v)) {
            assert!(value != *hostile_value && !value.contains(h), "{name} reached make as {value:?}");
        }
    }
    assert!(!env.contains(h), "some caller value reached make:\n{env}");
    let path = env.lines().find_map(|l| l.strip_prefix("PATH=")).expect("PATH is set for make");
    assert!(path.starts_with("/usr/lib/go-1.19/bin:"), "Go 1.19 first on PATH, got {path}");
    let gopath = env.lines().find_map(|l| l.strip_prefix("GOPATH=")).expect("GOPATH is set for make");
    assert_eq!(Path::new(gopath), sb.src.join(".go"), "GOPATH is the source tree's own");
}

#[test]
fn a_failed_build_fails_at_once_for_the_rest_of_the_same_run_and_is_retried_by_the_next_run() {
    let sb = Sandbox::new();
    let first = sb.make("fail", &[("K8S_BUILD_RUN_ID", "run-1")]);
    assert!(!first.status.success(), "the failing target must fail");
    let marker = std::fs::read_to_string(sb.marker()).expect("a failed build leaves a marker");
    assert!(marker.contains("run=run-1"), "{marker}");
    assert!(marker.contains("compiler says: boom at vendor/x.go:12"), "the marker quotes the build's own output: {marker}");

    // Same run: fails at once with the first cause, without running make again.
    let again = sb.make("all", &[("K8S_BUILD_RUN_ID", "run-1")]);
    assert!(!again.status.success(), "a later call of the same run must fail too");
    let msg = stderr(&again);
    assert!(msg.contains("an earlier attempt in this run (run-1) failed"), "{msg}");
    assert!(msg.contains("compiler says: boom at vendor/x.go:12"), "the first cause is repeated: {msg}");
    assert!(!sb.src.join("_output").exists(), "make must not run again in the same run");

    // Next run: the marker is removed and the build is tried again.
    let next = sb.make("all", &[("K8S_BUILD_RUN_ID", "run-2")]);
    assert!(next.status.success(), "a new run tries again: {}", stderr(&next));
    assert!(sb.src.join("_output/bin/kube-apiserver").is_file());
    assert!(!sb.marker().exists(), "a successful attempt leaves no marker");
}

#[test]
fn a_stale_marker_of_the_same_run_id_is_ignored() {
    let sb = Sandbox::new();
    assert!(!sb.make("fail", &[("K8S_BUILD_RUN_ID", "shell")]).status.success());
    // Age the marker past the script's 30-minute limit.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(31 * 60);
    std::fs::File::options().write(true).open(sb.marker()).and_then(|f| f.set_modified(old)).expect("age the marker");
    let out = sb.make("all", &[("K8S_BUILD_RUN_ID", "shell")]);
    assert!(out.status.success(), "a marker older than 30 minutes does not block: {}", stderr(&out));
}

#[test]
fn a_failure_before_make_does_not_quote_an_earlier_attempts_log() {
    let sb = Sandbox::new();
    assert!(!sb.make("fail", &[("K8S_BUILD_RUN_ID", "run-1")]).status.success());
    // Next run: make is not reachable (no such directory), so the build fails before make.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/k8s/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--make-in")
        .arg(sb.src.join("missing"))
        .env("K8S_TEST_CACHE", &sb.cache)
        .env("K8S_BUILD_RUN_ID", "run-2")
        .output()
        .expect("run build.sh");
    assert!(!out.status.success());
    let marker = std::fs::read_to_string(sb.marker()).unwrap_or_default();
    assert!(!marker.contains("compiler says: boom"), "run-1's log is not run-2's cause: {marker}");
}

#[test]
fn a_call_without_a_run_id_always_tries_again() {
    let sb = Sandbox::new();
    assert!(!sb.make("fail", &[]).status.success());
    assert!(sb.marker().exists());
    let out = sb.make("all", &[]);
    assert!(out.status.success(), "a manual call (no run id) retries: {}", stderr(&out));
    assert!(!sb.marker().exists());
}
