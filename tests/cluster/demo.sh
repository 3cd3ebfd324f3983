#!/usr/bin/env bash
# zen-flow end to end on the local control plane, for a newcomer to watch:
#   builds the control plane (first run only) and the agent, starts both, installs the CRD,
#   applies examples/dag-flow.yaml (fan-out, fan-in) and shows it running to Succeeded with
#   `kubectl jobflow graph` and `kubectl jobflow describe --watch` (the plugin, kubectl-jobflow).
# ZEN_FLOW_KEEP_CLUSTER=1 leaves the control plane and the agent running afterwards, to explore
# with kubectl (the script prints how); otherwise everything is stopped at the end.
# ZEN_FLOW_DEMO_FLOW picks another example (default examples/dag-flow.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=versions.env
source tests/cluster/versions.env
# shellcheck source=paths.sh
source tests/cluster/paths.sh

flow_file=${ZEN_FLOW_DEMO_FLOW:-examples/dag-flow.yaml}
namespace=zen-flow-demo
admin=127.0.0.1:${ZEN_FLOW_DEMO_ADMIN_PORT:-18080}
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Building the control plane (cached after the first run), the agent and the plugin"
bash tests/cluster/build.sh
cargo build --quiet -p jobflow-agent -p kubectl-jobflow
jobflow=(target/debug/kubectl-jobflow)

say "Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
bash tests/cluster/up.sh >/dev/null
export KUBECONFIG=$CLUSTER_STATE/kubeconfig
kubectl=("$CLUSTER_BIN/kubectl")

agent_pid=
cleanup() {
  local status=$?
  if [ "${ZEN_FLOW_KEEP_CLUSTER:-0}" = 1 ]; then
    say "Left running (ZEN_FLOW_KEEP_CLUSTER=1)"
    echo "  export KUBECONFIG=$KUBECONFIG"
    echo "  $CLUSTER_BIN/kubectl -n $namespace get jobflows,jobs -o wide"
    echo "  target/debug/kubectl-jobflow -n $namespace describe <flow>"
    echo "  curl -s http://$admin/metrics | grep zen_flow_"
    echo "  stop: kill $agent_pid; bash tests/cluster/down.sh"
    exit "$status"
  fi
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  bash tests/cluster/down.sh >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT

say "Installing the JobFlow CRD"
"${kubectl[@]}" apply --server-side -f deploy/crds/ >/dev/null
"${kubectl[@]}" wait --for condition=Established crd/jobflows.workflow.kube-zen.io --timeout=60s >/dev/null

say "Starting jobflow-agent (log: $CLUSTER_STATE/logs/agent.log)"
target/debug/jobflow-agent --kubeconfig "$KUBECONFIG" --namespace "$namespace" \
  --admin-addr "$admin" --leader-election=false >"$CLUSTER_STATE/logs/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do
  curl -fs "http://$admin/readyz" >/dev/null 2>&1 && break
  kill -0 "$agent_pid" 2>/dev/null || { tail -20 "$CLUSTER_STATE/logs/agent.log"; exit 1; }
  sleep 0.2
done

say "Applying $flow_file"
"${kubectl[@]}" create namespace "$namespace" --dry-run=client -o yaml | "${kubectl[@]}" apply -f - >/dev/null
flow=$("${kubectl[@]}" -n "$namespace" apply -f "$flow_file" -o jsonpath='{.metadata.name}')

say "Its DAG: kubectl jobflow graph $flow"
"${jobflow[@]}" -n "$namespace" graph "$flow"

say "Watching it: kubectl jobflow describe $flow --watch (steps start as their dependencies succeed)"
# Redraws on a terminal, appends each change otherwise; ends when the flow does (exit 1 if it
# Failed, which the phase check below reports).
timeout 150 "${jobflow[@]}" -n "$namespace" describe "$flow" --watch || true
phase=$("${kubectl[@]}" -n "$namespace" get jobflow "$flow" -o jsonpath='{.status.phase}')

say "The flow, its DAG, its Jobs and its Events"
"${jobflow[@]}" -n "$namespace" get "$flow" -o wide
"${jobflow[@]}" -n "$namespace" graph "$flow"
"${kubectl[@]}" -n "$namespace" get jobs -l "workflow.kube-zen.io/flow=$flow" \
  --sort-by=.metadata.creationTimestamp
"${kubectl[@]}" -n "$namespace" get events --field-selector "involvedObject.kind=JobFlow" \
  --sort-by=.lastTimestamp -o custom-columns=REASON:.reason,MESSAGE:.message 2>/dev/null | tail -n 15

say "Agent metrics (API writes it made)"
curl -s "http://$admin/metrics" | grep -E '^zen_flow_api_requests_total' || true

[ "$phase" = Succeeded ] || { echo "the flow did not succeed (phase: ${phase:-none})" >&2; exit 1; }
say "$flow Succeeded"
