#!/usr/bin/env bash
# zen-flow end to end, installed the way users install it, for a newcomer to watch:
#   builds the local control plane (first run only) with its one real node (containerd and a
#   kubelet on this machine), the agent's image and a busybox image (no Docker, no registry:
#   deploy/images/build.sh), imports them into the node, applies deploy/install.yaml with
#   `kubectl apply --server-side` (through tests/cluster/install, which pins the agent to the
#   real node), waits for the agent's two replicas, then runs examples/dag-flow.yaml (fan-out,
#   fan-in, an output parameter) as real busybox containers, shown live with the plugin
#   (`kubectl jobflow graph`, `describe --watch`, `logs`), and ends with an invalid flow refused
#   at `kubectl apply` by the agent's admission webhook, called through its Service.
# ZEN_FLOW_KEEP_CLUSTER=1 leaves everything running afterwards, to explore with kubectl (the
# script prints how); otherwise the control plane and the real node are stopped at the end.
# ZEN_FLOW_DEMO_FLOW picks another example (default examples/dag-flow.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=versions.env
source tests/cluster/versions.env
# shellcheck source=paths.sh
source tests/cluster/paths.sh

flow_file=${ZEN_FLOW_DEMO_FLOW:-examples/dag-flow.yaml}
namespace=zen-flow-demo
agent_namespace=zen-flow-system
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Checking this machine's packages (installs what is missing when run as root)"
bash tests/cluster/setup.sh

say "Building the control plane and its real node's kubelet (cached after the first run), and the plugin"
bash tests/cluster/build.sh
cargo build --quiet -p kubectl-jobflow
jobflow=(target/debug/kubectl-jobflow)

say "Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) and the real node zen-flow-real"
bash tests/cluster/up.sh >/dev/null
export KUBECONFIG=$CLUSTER_STATE/kubeconfig
kubectl=("$CLUSTER_BIN/kubectl")

cleanup() {
  local status=$?
  if [ "${ZEN_FLOW_KEEP_CLUSTER:-0}" = 1 ]; then
    say "Left running (ZEN_FLOW_KEEP_CLUSTER=1)"
    echo "  export KUBECONFIG=$KUBECONFIG PATH=$CLUSTER_BIN:\$PATH"
    echo "  kubectl -n $agent_namespace get pods -o wide"
    echo "  kubectl -n $namespace get jobflows,jobs,pods -o wide"
    echo "  target/debug/kubectl-jobflow -n $namespace describe <flow>"
    echo "  target/debug/kubectl-jobflow cert-status"
    echo "  kubectl apply -f tests/cluster/demo-invalid-flow.yaml -n $namespace   # refused"
    echo "  stop: bash tests/cluster/down.sh"
    exit "$status"
  fi
  if [ "$status" != 0 ]; then
    echo "--- the agent's pods and their last log lines" >&2
    "${kubectl[@]}" -n "$agent_namespace" get pods -o wide >&2 2>&1 || true
    "${kubectl[@]}" -n "$agent_namespace" logs -l app.kubernetes.io/name=jobflow-agent --tail 20 >&2 2>&1 || true
  fi
  bash tests/cluster/down.sh >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT

say "Building zen-flow's images and importing them into the real node: bash tests/cluster/import-images.sh"
bash tests/cluster/import-images.sh

say "Installing zen-flow: kubectl apply --server-side -k tests/cluster/install   (deploy/install.yaml, pinned to the real node)"
"${kubectl[@]}" apply --server-side -k tests/cluster/install
say "Waiting for the agent's Deployment (two replicas, one leader, restricted pod security)"
"${kubectl[@]}" -n "$agent_namespace" rollout status deployment/jobflow-agent --timeout=180s
"${kubectl[@]}" -n "$agent_namespace" get pods -o wide
holder=$("${kubectl[@]}" -n "$agent_namespace" get lease jobflow-agent -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
echo "leader (Lease jobflow-agent): ${holder:-none yet}"

say "The webhook's certificates, made by the agent itself: kubectl jobflow cert-status"
# Ready replicas serve certificates the API server already trusts; the leader writes the caBundle.
"${jobflow[@]}" cert-status || true

say "A namespace for the demo whose pods run on the real node"
# Flows stay as users write them: the namespace gives their pods the real node's toleration
# and node selector (the API server's PodTolerationRestriction and PodNodeSelector plugins).
"${kubectl[@]}" apply --server-side -f - <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
  annotations:
    scheduler.alpha.kubernetes.io/node-selector: kubernetes.io/hostname=zen-flow-real
    scheduler.alpha.kubernetes.io/defaultTolerations: '[{"key":"zen-flow.test/real-node","operator":"Exists","effect":"NoSchedule"}]'
YAML

# Ready pods are not yet a reachable webhook: until the EndpointSlice controller and kube-proxy
# catch up, the API server's call to the Service is refused, and so (failurePolicy: Fail) is the
# flow. A server-side dry run goes through admission exactly as the apply below will.
for _ in $(seq 60); do
  admitted=$("${kubectl[@]}" -n "$namespace" apply --dry-run=server -f "$flow_file" 2>&1) && break
  case $admitted in *"failed calling webhook"*) sleep 1 ;; *) echo "$admitted" >&2; exit 1 ;; esac
done

say "Applying $flow_file"
flow=$("${kubectl[@]}" -n "$namespace" apply -f "$flow_file" -o jsonpath='{.metadata.name}')

say "Its DAG: kubectl jobflow graph $flow"
"${jobflow[@]}" -n "$namespace" graph "$flow"

say "Watching it: kubectl jobflow describe $flow --watch (steps start as their dependencies succeed)"
# Redraws on a terminal, appends each change otherwise; ends when the flow does (exit 1 if it
# Failed, which the phase check below reports).
timeout 240 "${jobflow[@]}" -n "$namespace" describe "$flow" --watch || true
phase=$("${kubectl[@]}" -n "$namespace" get jobflow "$flow" -o jsonpath='{.status.phase}')

say "The flow, its Jobs and pods (on the real node), and its Events"
"${jobflow[@]}" -n "$namespace" get "$flow" -o wide
"${kubectl[@]}" -n "$namespace" get pods -o wide --sort-by=.metadata.creationTimestamp
"${kubectl[@]}" -n "$namespace" get events --field-selector "involvedObject.kind=JobFlow" \
  --sort-by=.lastTimestamp -o custom-columns=REASON:.reason,MESSAGE:.message 2>/dev/null | tail -n 15

say "What the containers printed: kubectl jobflow logs $flow"
"${jobflow[@]}" -n "$namespace" logs "$flow"

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
