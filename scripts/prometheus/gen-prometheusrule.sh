#!/usr/bin/env bash
# Writes deploy/monitoring/prometheusrule.yaml from deploy/monitoring/rules.yaml: the same
# groups, text for text, under the `spec:` of a monitoring.coreos.com/v1 PrometheusRule, so the
# Prometheus Operator and a plain Prometheus load identical alerts. Run it after editing
# rules.yaml; tests/monitoring_rules.rs fails while the two files disagree.
#
#   scripts/prometheus/gen-prometheusrule.sh
#
# Text only (sed), no YAML tool needed: everything from rules.yaml's `groups:` line on is
# indented by two spaces, which keeps YAML block scalars intact.
set -Eeuo pipefail
unset CDPATH
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$root/deploy/monitoring/rules.yaml"
dst="$root/deploy/monitoring/prometheusrule.yaml"
grep -q '^groups:$' "$src" || { echo "$src: no top-level 'groups:' line" >&2; exit 1; }
{
	cat <<'HEADER'
# GENERATED from rules.yaml by scripts/prometheus/gen-prometheusrule.sh: edit rules.yaml, then
# run the script (tests/monitoring_rules.rs fails while the two disagree).
#
# The alerting rules of rules.yaml for the Prometheus Operator (kube-prometheus-stack): a
# PrometheusRule in the scaler's namespace. The operator loads it only when its Prometheus
# selects it: kube-prometheus-stack's default ruleSelector wants the label
# `release: <helm release name>`; add it (and allow the namespace llm-scaler in
# ruleNamespaceSelector) or set ruleSelectorNilUsesHelmValues=false. What each alert means and
# its threshold: the comments in rules.yaml and the README's alert table.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: llm-scaler
  namespace: llm-scaler
  labels:
    app.kubernetes.io/name: llm-scaler
    app.kubernetes.io/part-of: llm-scaler
spec:
HEADER
	sed -n '/^groups:$/,$p' "$src" | sed 's/^\(.\)/  \1/'
} >"$dst.tmp"
mv "$dst.tmp" "$dst"
echo "wrote $dst" >&2
