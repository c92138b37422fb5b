#!/usr/bin/env bash
# Builds kube-apiserver v1.20.2 from Debian bookworm's `kubernetes` SOURCE package, offline apart
# from the Debian mirror, and caches it outside the repository:
#
#   ${K8S_TEST_CACHE:-$HOME/.cache/llm-scaler}/k8s-1.20.2/bin/kube-apiserver
#
# Why from source: there is no Docker, kind, k3s or Go module proxy here, and Debian ships the
# full upstream tree with vendored dependencies (docs/testing.md says how, and why 1.20.2).
#
# Idempotent: exits at once when the cached binary exists and runs. Concurrent callers (parallel
# test binaries) serialise on a lock file, so only one builds. Needs root only to apt-get install
# missing build tools; the build itself touches nothing outside the cache directory.
#
# Independent of its caller: `make` runs under `env -i` with an environment this script builds
# (build_env below). A caller's OUT_DIR (cargo sets it in every test process), MAKEFLAGS, GOFLAGS,
# GOPATH, GOBIN, CDPATH, ... never reach the Kubernetes Makefile, which honours several of them
# (OUT_DIR moves its whole output tree).
#
# A failed build fails once per run: the cause is written to $CACHE/build-failed together with
# the caller's run id (K8S_BUILD_RUN_ID; the test harness passes one per `cargo test` run). A
# later call with the same run id repeats that cause at once instead of unpacking and compiling
# again; a call with another run id (or none) removes the marker and tries again.
#
# Options (environment):
#   K8S_TEST_CACHE     cache root (default $HOME/.cache/llm-scaler)
#   K8S_EXTRA_WHAT     extra targets, e.g. "cmd/kube-controller-manager cmd/kube-scheduler"
#   K8S_KEEP_SOURCE=1  keep the unpacked source tree after a successful build (for debugging)
#   K8S_BUILD_RUN_ID   identifies one test run for the failure marker (see above); a marker
#                      older than 30 minutes is ignored
#
# Test hook (tests/build_script.rs): `build.sh --make-in DIR [TARGET]` runs `make` in DIR
# exactly as the real build does (same environment, same logging, same failure marker) and
# nothing else, so a test can prove with a tiny Makefile that a hostile caller's environment
# changes nothing, without rebuilding Kubernetes.
set -Eeuo pipefail
# `cd` with CDPATH set prints the directory, and may resolve relative paths elsewhere.
unset CDPATH

readonly SRC_PACKAGE=kubernetes
readonly SRC_VERSION=1.20.5+really1.20.2-1.1+deb12u1
readonly ORIG_TARBALL=kubernetes_1.20.5+really1.20.2.orig.tar.gz
readonly GO_BIN=/usr/lib/go-1.19/bin
readonly REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

CACHE_ROOT="${K8S_TEST_CACHE:-$HOME/.cache/llm-scaler}"
CACHE="$CACHE_ROOT/k8s-1.20.2"
BIN="$CACHE/bin"
WHAT="cmd/kube-apiserver ${K8S_EXTRA_WHAT:-}"

log() { printf '[k8s-build] %s\n' "$*" >&2; }
die() {
	printf '[k8s-build] ERROR: %s\n' "$*" >&2
	record_failure "$*"
	exit 1
}

# Writes the failure marker (only once the cache is locked, see main, and once per call).
LOCKED=0
RECORDED=0
record_failure() {
	((LOCKED && !RECORDED)) || return 0
	RECORDED=1
	{
		printf 'run=%s\n' "${K8S_BUILD_RUN_ID:-}"
		printf 'when=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		printf 'error=%s\n' "$1"
		if [[ -s "$CACHE/build.log" ]]; then
			printf -- '--- last lines of %s ---\n' "$CACHE/build.log"
			tail -n 40 "$CACHE/build.log"
		fi
	} >"$CACHE/build-failed.tmp" && mv -f "$CACHE/build-failed.tmp" "$CACHE/build-failed"
}

# Fails at once when an earlier attempt of the same run failed; otherwise clears the marker. A
# marker older than MARKER_TTL_MIN minutes is stale whatever its run id (a shell that runs test
# binaries by hand keeps one parent, hence one run id, for hours).
MARKER_TTL_MIN=30
check_earlier_failure() {
	local marker="$CACHE/build-failed"
	[[ -f "$marker" ]] || return 0
	if [[ -n "$(find "$marker" -mmin +"$MARKER_TTL_MIN" 2>/dev/null)" ]]; then
		rm -f "$marker"
		return 0
	fi
	local run
	run=$(sed -n 's/^run=//p' "$marker" | head -n1)
	if [[ -n "${K8S_BUILD_RUN_ID:-}" && "$run" == "$K8S_BUILD_RUN_ID" ]]; then
		printf '[k8s-build] ERROR: an earlier attempt in this run (%s) failed; not building again. Its cause:\n' "$run" >&2
		sed -e '1,/^when=/d' -e 's/^error=//' "$marker" >&2
		printf '[k8s-build] (marker: %s; the next run tries again)\n' "$marker" >&2
		RECORDED=1
		exit 1
	fi
	rm -f "$marker"
}

# True when every requested binary is in the cache and runs.
cached() {
	local target name
	for target in $WHAT; do
		name="${target##*/}"
		[[ -x "$BIN/$name" ]] || return 1
		"$BIN/$name" --version >/dev/null 2>&1 || return 1
	done
}

# Installs the Debian build/run dependencies that are missing (root only).
ensure_tools() {
	local missing=()
	[[ -x "$GO_BIN/go" ]] || missing+=(golang-1.19-go)
	command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
	command -v rsync >/dev/null 2>&1 || missing+=(rsync)
	[[ -d "$REFLECT2_SRC" ]] || missing+=(golang-github-modern-go-reflect2-dev)
	command -v openssl >/dev/null 2>&1 || missing+=(openssl)
	command -v make >/dev/null 2>&1 || missing+=(make)
	((${#missing[@]} == 0)) && return 0
	[[ $(id -u) == 0 ]] || die "missing Debian packages: ${missing[*]}; install them as root: apt-get install -y ${missing[*]}"
	log "installing ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
		log "install failed; refreshing the package lists and retrying"
		apt-get update >&2 || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
			die "apt-get install ${missing[*]} failed"
	fi
}

# Prints the Debian mirror URI serving bookworm/main, read from the machine's own apt sources
# (deb822 *.sources files and one-line *.list files), never hard-coded.
debian_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f "$f" ]] || continue
		# Paragraphs are separated by blank lines; pick one with Suites containing "bookworm".
		awk '
			BEGIN { RS = ""; FS = "\n" }
			{
				uris = ""; suites = ""; comps = ""; types = ""
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^URIs:/)       { uris = $i;   sub(/^URIs:[ \t]*/, "", uris) }
					if ($i ~ /^Suites:/)     { suites = " " $i " " }
					if ($i ~ /^Components:/) { comps = " " $i " " }
					if ($i ~ /^Types:/)      { types = " " $i " " }
				}
				if (uris != "" && suites ~ /[ \t]bookworm[ \t]/ && comps ~ /[ \t]main[ \t]/ && types ~ /[ \t]deb(-src)?[ \t]/) {
					split(uris, u, /[ \t]+/); print u[1]; exit
				}
			}' "$f"
	done | head -n1 | grep . && return 0
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f "$f" ]] || continue
		# deb [options] URI SUITE COMPONENTS...
		awk '$1 == "deb" || $1 == "deb-src" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == "bookworm") { for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit } }
			}' "$f"
	done | head -n1 | grep . && return 0
	return 1
}

# Downloads the source package into $CACHE/download (kept, so a failed build does not refetch).
fetch_source() {
	local dl="$CACHE/download"
	if [[ -f "$dl/$ORIG_TARBALL" ]]; then
		log "source tarball already downloaded: $dl/$ORIG_TARBALL"
		return 0
	fi
	local mirror
	mirror=$(debian_mirror) || die "no Debian mirror for bookworm/main found in /etc/apt/sources.list{,.d/}; cannot fetch the $SRC_PACKAGE source package"
	log "Debian mirror from apt sources: $mirror"
	# A private apt configuration: the machine's /etc/apt is left untouched.
	local apt="$CACHE/apt"
	mkdir -p "$apt/sources" "$apt/lists/partial" "$apt/cache/archives/partial" "$dl"
	cat >"$apt/sources/debian-src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: bookworm
Components: main
Signed-By: $KEYRING
EOF
	local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/sources"
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
	log "apt-get update (deb-src only, private lists)"
	apt-get "${opts[@]}" update >&2 || die "apt-get update of the private deb-src list failed (mirror $mirror)"
	log "downloading source package $SRC_PACKAGE=$SRC_VERSION (about 34 MB)"
	(cd "$dl" && apt-get "${opts[@]}" source --download-only "$SRC_PACKAGE=$SRC_VERSION" >&2) ||
		die "apt-get source $SRC_PACKAGE=$SRC_VERSION failed (is that version still on $mirror?)"
	[[ -f "$dl/$ORIG_TARBALL" ]] || die "apt-get source did not produce $dl/$ORIG_TARBALL"
}

# The whole environment `make` sees, one NAME=value per line. Nothing is inherited from the
# caller except what is named here; PATH is rebuilt from fixed directories.
build_env() {
	local src=$1
	printf '%s\n' \
		"PATH=$GO_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		"HOME=$CACHE/build/home" \
		"GOPATH=$src/.go" \
		"GOCACHE=$CACHE/build/home/gocache" \
		"GOTMPDIR=" \
		"GOFLAGS=" \
		"GOPROXY=off" \
		"GO111MODULE=off" \
		"CGO_ENABLED=0" \
		"LANG=C.UTF-8" \
		"LC_ALL=C.UTF-8" \
		"TMPDIR=$CACHE/build/tmp" \
		"TERM=dumb"
}

# Runs `make ARGS...` in DIR under `env -i` with build_env, its output teed into
# $CACHE/build.log (the failure marker quotes its tail).
run_make() {
	local dir=$1
	shift
	mkdir -p "$CACHE/build/home" "$CACHE/build/tmp"
	local env_lines=()
	mapfile -t env_lines < <(build_env "$dir")
	(cd "$dir" && env -i "${env_lines[@]}" make "$@") 2>&1 | tee "$CACHE/build.log" >&2
}

# Unpacks, applies the reflect2 fix and builds in $CACHE/build; installs binaries into $BIN.
build() {
	local work="$CACHE/build"
	rm -rf "$work"
	mkdir -p "$work"
	log "unpacking $ORIG_TARBALL"
	tar -xzf "$CACHE/download/$ORIG_TARBALL" -C "$work"
	local src
	src=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n1)
	[[ -n "$src" && -f "$src/Makefile" ]] || die "unexpected layout of $ORIG_TARBALL (no Makefile under $work)"

	# The vendored reflect2 v1.0.1 crashes under Go >= 1.18 (fatal error: fault in
	# runtime.mapiternext on the first request carrying a map); Debian's 1.0.2 does not.
	log "replacing vendored github.com/modern-go/reflect2 with Debian's $(basename "$REFLECT2_SRC") (1.0.2)"
	rm -rf "$src/vendor/github.com/modern-go/reflect2"
	rsync -a --exclude '*_test.go' "$REFLECT2_SRC/" "$src/vendor/github.com/modern-go/reflect2/"

	# GOPATH-mode build as Debian's rules do; `go build -mod=vendor` does not work for this tree.
	mkdir -p "$src/.go/src/k8s.io"
	ln -sfn ../../.. "$src/.go/src/k8s.io/kubernetes"
	log "building $WHAT with Go 1.19 (3-6 min on 2 cores)"
	local started=$SECONDS
	run_make "$src" WHAT="$WHAT" || die "make WHAT=\"$WHAT\" failed in $src (tree kept for inspection)"
	log "build took $((SECONDS - started)) s"

	mkdir -p "$BIN"
	local target name
	for target in $WHAT; do
		name="${target##*/}"
		[[ -x "$src/_output/bin/$name" ]] || die "build finished but $src/_output/bin/$name is missing"
		install -m 0755 "$src/_output/bin/$name" "$BIN/$name.tmp"
		mv -f "$BIN/$name.tmp" "$BIN/$name"
	done
	if [[ "${K8S_KEEP_SOURCE:-0}" != 1 ]]; then
		rm -rf "$work"
	fi
}

lock_cache() {
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.build.lock"
	if ! flock -n 9; then
		log "another build holds $CACHE/.build.lock; waiting for it"
		flock 9
	fi
	LOCKED=1
	# The marker quotes build.log: a log from an earlier attempt must never pass for this one's.
	rm -f "$CACHE/build.log"
}

# Any other failure under `set -e` (tar, rsync, install, ...) also leaves the marker.
LAST_COMMAND=
trap 'LAST_COMMAND=$BASH_COMMAND' ERR
trap 'status=$?; ((status == 0)) || record_failure "exited with status $status (last failing command: ${LAST_COMMAND:-unknown})"' EXIT

main() {
	if [[ "${1:-}" == --make-in ]]; then
		lock_cache
		check_earlier_failure
		[[ -d "${2:-}" ]] || die "usage: $0 --make-in DIR [MAKE-ARGS...] (no directory ${2:-})"
		local dir
		dir=$(cd "$2" && pwd)
		shift 2
		run_make "$dir" "$@" || die "make $* failed in $dir"
		return 0
	fi
	[[ $# == 0 ]] || die "unknown arguments: $*"
	lock_cache
	if cached; then
		rm -f "$CACHE/build-failed"
		log "cached: $BIN ($(${BIN}/kube-apiserver --version 2>&1))"
	else
		check_earlier_failure
		ensure_tools
		fetch_source
		build
		cached || die "built binaries in $BIN do not run"
		log "installed into $BIN: $("$BIN/kube-apiserver" --version 2>&1)"
	fi
	# Run-time dependencies of the test harness, also when the binaries were cached earlier.
	ensure_tools
	echo "$BIN"
}

main "$@"
