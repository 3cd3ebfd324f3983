#!/usr/bin/env bash
# zen-flow end to end on the local control plane, for a newcomer to watch:
#   builds the control plane (first run only) and the agent, starts both, installs the CRD,
#   applies examples/dag-flow.yaml (fan-out, fan-in) and shows it running to Succeeded with
#   `kubectl jobflow graph` and `kubectl jobflow describe --watch` (the plugin, kubectl-jobflow),
#   then shows the agent's admission webhook (its certificates made by the agent itself, the
#   API server calling it by URL) refusing an invalid flow at `kubectl apply`.
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
webhook=127.0.0.1:${ZEN_FLOW_DEMO_WEBHOOK_PORT:-18443}
webhook_config=jobflow-validating-demo
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
    echo "  $CLUSTER_BIN/kubectl apply -f tests/cluster/demo-invalid-flow.yaml -n $namespace   # refused"
    echo "  stop: kill $agent_pid; $CLUSTER_BIN/kubectl delete validatingwebhookconfiguration $webhook_config; bash tests/cluster/down.sh"
    exit "$status"
  fi
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  "${kubectl[@]}" delete validatingwebhookconfiguration "$webhook_config" --ignore-not-found \
    --timeout=10s >/dev/null 2>&1 || true
  bash tests/cluster/down.sh >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT

say "Installing the JobFlow CRD"
"${kubectl[@]}" apply --server-side -f deploy/crds/ >/dev/null
"${kubectl[@]}" wait --for condition=Established crd/jobflows.workflow.kube-zen.io --timeout=60s >/dev/null

"${kubectl[@]}" create namespace "$namespace" --dry-run=client -o yaml | "${kubectl[@]}" apply -f - >/dev/null

say "Registering the admission webhook (by URL: https://$webhook/validate, for $namespace only)"
# As deploy/agent/webhook.yaml, but called by URL and scoped to the demo's namespace; no
# caBundle: the agent writes it.
"${kubectl[@]}" apply --server-side -f - >/dev/null <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: $webhook_config
webhooks:
  - name: validate.workflow.kube-zen.io
    clientConfig:
      url: https://$webhook/validate
    rules:
      - apiGroups: ["workflow.kube-zen.io"]
        apiVersions: ["v1alpha1"]
        resources: ["jobflows"]
        operations: ["CREATE", "UPDATE"]
        scope: Namespaced
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: $namespace
    failurePolicy: Fail
    matchPolicy: Equivalent
    sideEffects: None
    timeoutSeconds: 5
    admissionReviewVersions: ["v1"]
YAML

say "Starting jobflow-agent (log: $CLUSTER_STATE/logs/agent.log)"
# It makes its webhook certificates (Secret $namespace/jobflow-webhook-tls), writes the caBundle
# and is ready once the API server trusts what it serves.
target/debug/jobflow-agent --kubeconfig "$KUBECONFIG" --namespace "$namespace" \
  --admin-addr "$admin" --leader-election=false --lease-namespace "$namespace" \
  --webhook-addr "$webhook" --webhook-extra-san 127.0.0.1 --webhook-config "$webhook_config" \
  >"$CLUSTER_STATE/logs/agent.log" 2>&1 &
agent_pid=$!
ready=0
for _ in $(seq 300); do
  curl -fs "http://$admin/readyz" >/dev/null 2>&1 && { ready=1; break; }
  kill -0 "$agent_pid" 2>/dev/null || { tail -20 "$CLUSTER_STATE/logs/agent.log"; exit 1; }
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  echo "the agent is not ready after 60 s: $(curl -s "http://$admin/readyz")" >&2
  tail -20 "$CLUSTER_STATE/logs/agent.log" >&2
  exit 1
fi

say "Applying $flow_file"
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

say "An invalid flow is refused at kubectl apply: kubectl apply -f tests/cluster/demo-invalid-flow.yaml"
if refusal=$("${kubectl[@]}" -n "$namespace" apply -f tests/cluster/demo-invalid-flow.yaml 2>&1); then
  echo "the invalid flow was admitted" >&2
  exit 1
fi
echo "$refusal"
case $refusal in
  *'admission webhook "validate.workflow.kube-zen.io" denied the request'*) ;;
  *) echo "refused, but not by the webhook" >&2; exit 1 ;;
esac
say "The same check offline: kubectl jobflow validate -f tests/cluster/demo-invalid-flow.yaml"
"${jobflow[@]}" validate -f tests/cluster/demo-invalid-flow.yaml || true
