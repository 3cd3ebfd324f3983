#!/usr/bin/env bash
# Installs Argo Workflows' CRDs (from the v4.0.5 module's manifests in the Go module cache) and
# its ConfigMap into the benchmark's control plane, and starts or stops its workflow-controller
# as a host process (cluster-wide install: it watches every namespace; namespace `argo` holds
# its ConfigMap). Usage:
#   controller.sh start QPS BURST   prints the controller's PID; log in $STATE/logs/argo-*.log
#   controller.sh stop              stops the controller this script started
# Everything else is Argo's default: 32 workflow workers, no pod GC, no archive, leader
# election off (one replica; LEADER_ELECTION_DISABLE=true, as its docs say for a single one).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../env.sh"
state=$ZEN_FLOW_CLUSTER_STATE
pidfile=$state/pids/argo-workflow-controller.pid

# kubectl ARGS...: against the benchmark's control plane as admin.
kubectl() { "$KUBECTL" --kubeconfig "$state/kubeconfig" "$@"; }

# install: the CRDs as Argo's cluster install has them (manifests/base/crds/full, applied
# server-side: they are too large for client-side apply's annotation) and the ConfigMap, whose
# only setting moves the metrics to a free port.
install() {
  local module crd
  module=$(go env GOMODCACHE)/github.com/argoproj/argo-workflows/v4@${ARGO_VERSION:-v4.0.5}
  for crd in "$module"/manifests/base/crds/full/argoproj.io_*.yaml; do
    kubectl apply --server-side -f "$crd" >/dev/null
  done
  # `kubectl wait` fails at once on a CRD whose status has no conditions yet (seen under load),
  # so poll for Established instead, at most 120 s.
  local name deadline=$(( $(date +%s) + 120 ))
  for name in workflows.argoproj.io workflowtaskresults.argoproj.io; do
    until [ "$(kubectl get crd "$name" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" = True ]; do
      [ "$(date +%s)" -lt "$deadline" ] || { echo "CRD $name not Established in 120s" >&2; exit 1; }
      sleep 0.5
    done
  done
  kubectl create namespace argo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply -f - >/dev/null <<CM
apiVersion: v1
kind: ConfigMap
metadata:
  name: workflow-controller-configmap
  namespace: argo
data:
  metricsConfig: |
    enabled: true
    port: $ARGO_METRICS_PORT
CM
}

# start QPS BURST: install, then run the controller in its own session; prints its PID once
# its health endpoint answers.
start() {
  local qps=$1 burst=$2 bin log
  bin=$(bash "$here/build.sh" | tail -1)
  install
  bash "$here/../users.sh" argo-workflow-controller
  log=$state/logs/argo-workflow-controller-qps$qps.log
  LEADER_ELECTION_DISABLE=true setsid "$bin" \
    --kubeconfig "$state/bench-users/argo-workflow-controller.kubeconfig" \
    --configmap workflow-controller-configmap --executor-image quay.io/argoproj/argoexec:v4.0.5 \
    --qps "$qps" --burst "$burst" --loglevel info \
    </dev/null >"$log" 2>&1 &
  echo $! >"$pidfile"
  local deadline=$(( $(date +%s) + 60 ))
  until curl -sf -o /dev/null --max-time 2 http://127.0.0.1:6060/healthz; do
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 "$log" >&2; exit 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "workflow-controller not healthy in 60s" >&2; tail -20 "$log" >&2; exit 1; }
    sleep 0.5
  done
  cat "$pidfile"
}

# stop: SIGTERM to the controller this script started, then wait for it.
stop() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case ${1:-} in
  start) start "${2:?QPS}" "${3:?BURST}" ;;
  stop) stop ;;
  *) echo "usage: $0 start QPS BURST | stop" >&2; exit 2 ;;
esac
