#!/usr/bin/env bash
# zen-flow end to end on the local control plane, for a newcomer to watch:
#   builds the control plane (first run only) and the agent, starts both, installs the CRD,
#   applies examples/dag-flow.yaml (fan-out, fan-in) and shows it running to Succeeded.
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

say "Building the control plane (cached after the first run) and the agent"
bash tests/cluster/build.sh
cargo build --quiet -p jobflow-agent

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

say "Watching $flow (steps start as their dependencies succeed)"
phase=
for _ in $(seq 120); do
  phase=$("${kubectl[@]}" -n "$namespace" get jobflow "$flow" -o jsonpath='{.status.phase}')
  steps=$("${kubectl[@]}" -n "$namespace" get jobflow "$flow" \
    -o jsonpath='{range .status.steps[*]}{.name}={.phase}  {end}')
  printf '%(%H:%M:%S)T  %-10s %s\n' -1 "${phase:-Pending}" "$steps"
  case $phase in Succeeded | Failed) break ;; esac
  sleep 1
done

say "The flow, its Jobs and its Events"
"${kubectl[@]}" -n "$namespace" get jobflow "$flow" -o wide
"${kubectl[@]}" -n "$namespace" get jobs -l "workflow.kube-zen.io/flow=$flow" \
  --sort-by=.metadata.creationTimestamp
"${kubectl[@]}" -n "$namespace" get events --field-selector "involvedObject.kind=JobFlow" \
  --sort-by=.lastTimestamp -o custom-columns=REASON:.reason,MESSAGE:.message 2>/dev/null | tail -n 15

say "Agent metrics (API writes it made)"
curl -s "http://$admin/metrics" | grep -E '^zen_flow_api_requests_total' || true

[ "$phase" = Succeeded ] || { echo "the flow did not succeed (phase: ${phase:-none})" >&2; exit 1; }
say "$flow Succeeded"
