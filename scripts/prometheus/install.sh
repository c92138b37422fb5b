#!/usr/bin/env bash
# Makes Prometheus 2's `promtool` (and `prometheus`) available for the alert-rule tests, from
# Debian's package (bookworm: 2.42.0), and prints their paths, one `name=path` per line:
#
#   scripts/prometheus/install.sh   # -> promtool=/usr/bin/promtool
#                                   #    prometheus=/usr/bin/prometheus
#
# Idempotent: exits at once when both binaries of major version >= 2 are on PATH (or in
# /usr/bin). Otherwise installs Debian's `prometheus` package with apt-get (root needed). The
# package's own service is not started here and not used: the tests only run `promtool check
# rules`, `promtool test rules` and `promtool check metrics` on files of this repository
# (tests/common/prometheus.rs).
#
# Concurrent callers (parallel test binaries) serialise on a lock file so only one runs apt-get.
# Independent of its caller's environment: apt-get runs with a fixed PATH and
# DEBIAN_FRONTEND=noninteractive, and nothing the caller exported (OUT_DIR, ...) is read.
set -Eeuo pipefail
unset CDPATH

log() { printf '[prometheus-install] %s\n' "$*" >&2; }

# The path of a binary `$1` whose `--version` reports major version >= 2, or nothing.
binary() {
	local bin
	for bin in "$(command -v "$1" 2>/dev/null || true)" "/usr/bin/$1"; do
		[[ -n "$bin" && -x "$bin" ]] || continue
		# "promtool, version 2.42.0+ds (branch: debian/sid, ...)" -> 2
		local major
		major="$("$bin" --version 2>&1 | sed -n 's/^[a-z]*, version \([0-9]*\)\..*/\1/p' | head -n 1)"
		if [[ -n "$major" && "$major" -ge 2 ]]; then
			printf '%s\n' "$bin"
			return 0
		fi
	done
	return 1
}

found() {
	local promtool prometheus
	promtool="$(binary promtool)" || return 1
	prometheus="$(binary prometheus)" || return 1
	printf 'promtool=%s\nprometheus=%s\n' "$promtool" "$prometheus"
}

if found; then
	exit 0
fi

LOCK="${TMPDIR:-/tmp}/llm-scaler-prometheus-install.lock"
exec 9>"$LOCK"
flock 9
if found; then
	exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
	log "promtool/prometheus 2 are not installed and this is not root: run 'apt-get install prometheus' as root"
	exit 1
fi
log "installing Debian's prometheus (apt-get)"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive
# The package's postinst would start its service where an init system runs; policy-rc.d says no.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$policy" ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
trap '((made_policy)) && rm -f "$policy"' EXIT
if ! apt-get install -y --no-install-recommends prometheus >&2; then
	apt-get update >&2
	apt-get install -y --no-install-recommends prometheus >&2
fi
found || { log "prometheus installed but no promtool/prometheus of version >= 2 found"; exit 1; }
