#!/usr/bin/env bash
# Builds kube-apiserver v1.20.2 from Debian bookworm's `kubernetes` SOURCE package, offline apart
# from the Debian mirror, and caches it outside the repository:
#
#   ${K8S_TEST_CACHE:-$HOME/.cache/llm-scaler}/k8s-1.20.2/bin/kube-apiserver
#
# Why from source: there is no Docker, kind, k3s or Go module proxy here, and Debian ships the
# full upstream tree with vendored dependencies (see /work/shared/spec/kubernetes-testing.md).
#
# Idempotent: exits at once when the cached binary exists and runs. Concurrent callers (parallel
# test binaries) serialise on a lock file, so only one builds. Needs root only to apt-get install
# missing build tools; the build itself touches nothing outside the cache directory.
#
# Options (environment):
#   K8S_TEST_CACHE   cache root (default $HOME/.cache/llm-scaler)
#   K8S_EXTRA_WHAT     extra targets, e.g. "cmd/kube-controller-manager cmd/kube-scheduler"
#   K8S_KEEP_SOURCE=1  keep the unpacked source tree after a successful build (for debugging)
set -euo pipefail

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
	exit 1
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
	mkdir -p "$src/.go/src/k8s.io" "$work/home"
	ln -sfn ../../.. "$src/.go/src/k8s.io/kubernetes"
	log "building $WHAT with Go 1.19 (about 5 min on 2 cores)"
	local started=$SECONDS
	(
		cd "$src"
		export GOPATH="$src/.go" PATH="$GO_BIN:$PATH" CGO_ENABLED=0 GOPROXY=off GOFLAGS= GO111MODULE=off \
			HOME="$work/home" GOCACHE="$work/home/gocache"
		make WHAT="$WHAT" >&2
	) || die "make WHAT=\"$WHAT\" failed in $src (log above; tree kept for inspection)"
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

main() {
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.build.lock"
	if ! flock -n 9; then
		log "another build holds $CACHE/.build.lock; waiting for it"
		flock 9
	fi
	if cached; then
		log "cached: $BIN ($(${BIN}/kube-apiserver --version 2>&1))"
	else
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
