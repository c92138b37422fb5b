#!/usr/bin/env bash
# Makes a Redis 7 `redis-server` available for the batch-mode tests, from Debian's package
# (bookworm: 7.0.x), and prints its path.
#
#   scripts/redis/install.sh        # -> /usr/bin/redis-server
#
# Idempotent: exits at once when a redis-server of major version >= 7 is on PATH (or in
# /usr/bin). Otherwise installs Debian's `redis-server` with apt-get (root needed). The package's
# own service is not started here and not used: each test starts its own server on a free
# loopback port with its own settings (tests/common/redis.rs), and stops it.
#
# Concurrent callers (parallel test binaries) serialise on a lock file so only one runs apt-get.
# Independent of its caller's environment: apt-get runs with a fixed PATH and
# DEBIAN_FRONTEND=noninteractive, and nothing the caller exported (OUT_DIR, ...) is read.
set -Eeuo pipefail
unset CDPATH

log() { printf '[redis-install] %s\n' "$*" >&2; }

found() {
	local bin
	for bin in "$(command -v redis-server 2>/dev/null || true)" /usr/bin/redis-server; do
		[[ -n "$bin" && -x "$bin" ]] || continue
		# "Redis server v=7.0.15 sha=..." -> 7
		local major
		major="$("$bin" --version 2>/dev/null | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')"
		if [[ -n "$major" && "$major" -ge 7 ]]; then
			printf '%s\n' "$bin"
			return 0
		fi
	done
	return 1
}

if found; then
	exit 0
fi

LOCK="${TMPDIR:-/tmp}/llm-scaler-redis-install.lock"
exec 9>"$LOCK"
flock 9
if found; then
	exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
	log "redis-server 7 is not installed and this is not root: run 'apt-get install redis-server' as root"
	exit 1
fi
log "installing Debian's redis-server (apt-get)"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive
# The package's postinst would start its service where an init system runs; policy-rc.d says no.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$policy" ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
trap '((made_policy)) && rm -f "$policy"' EXIT
if ! apt-get install -y --no-install-recommends redis-server >&2; then
	apt-get update >&2
	apt-get install -y --no-install-recommends redis-server >&2
fi
found || { log "redis-server installed but no version >= 7 found"; exit 1; }
