#!/usr/bin/env bash
# Stops exactly the processes up.sh started (by their PID files, checking each PID still runs the
# binary it was recorded for) and removes the control plane's state. Safe to run when nothing runs.
# The real node (real-node.sh) goes first: kube-proxy, kubelet, its containers and their shims,
# containerd; then its mounts, bridge, iptables chains, cgroups and the sysctls it changed, so the
# host is left as up.sh found it.
#   --keep-logs   keep $CLUSTER_STATE/logs for a post-mortem (everything else is removed)
# ZEN_FLOW_DOWN_TIMEOUT (seconds, default 15): how long a process gets after SIGTERM before SIGKILL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=paths.sh
source "$here/paths.sh"
# shellcheck source=oci.sh
source "$here/oci.sh"
# shellcheck source=real-node.sh
source "$here/real-node.sh"

lock_cluster
keep_logs=0
[ "${1:-}" = --keep-logs ] && keep_logs=1
grace=${ZEN_FLOW_DOWN_TIMEOUT:-15}
pids=$CLUSTER_STATE/pids

log() { printf '[down %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# pid_of NAME: NAME's PID if that process still runs $CLUSTER_BIN/NAME (a binary rebuilt while it
# ran shows as "... (deleted)").
pid_of() {
  local pid exe
  pid=$(cat "$pids/$1.pid" 2>/dev/null) || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "${exe% (deleted)}" = "$(bin_of "$1")" ] && echo "$pid"
}

# stop NAME...: SIGTERM to each, then wait; SIGKILL whatever is left after $grace seconds.
stop() {
  local name pid left deadline=$(( $(date +%s) + grace ))
  for name in "$@"; do
    if pid=$(pid_of "$name"); then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  while :; do
    left=()
    for name in "$@"; do pid_of "$name" >/dev/null && left+=("$name"); done
    [ "${#left[@]}" = 0 ] && return
    if [ "$(date +%s)" -ge "$deadline" ]; then
      for name in "${left[@]}"; do
        if pid=$(pid_of "$name"); then
          log "$name did not stop within ${grace}s: SIGKILL"
          kill -KILL "$pid" 2>/dev/null || true
        fi
      done
      sleep 0.2
      return
    fi
    sleep 0.1
  done
}

if [ -d "$CLUSTER_STATE" ] || real_node_owned; then
  real_node_down
fi
if [ -d "$pids" ]; then
  # Clients of the API server first, so none of them logs a storm of connection errors.
  stop kwok kube-scheduler kube-controller-manager
  stop kube-apiserver
  stop etcd
fi

case "$CLUSTER_STATE" in
  "" | /) log "refusing to remove CLUSTER_STATE='$CLUSTER_STATE'"; exit 1 ;;
esac
if [ -d "$CLUSTER_STATE" ]; then
  if [ "$keep_logs" = 1 ]; then
    find "$CLUSTER_STATE" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf --one-file-system {} +
    log "stopped; logs kept in $CLUSTER_STATE/logs"
  else
    # Never through a mount real_node_down could not remove (a pod's hostPath, say).
    rm -rf --one-file-system "$CLUSTER_STATE"
    log "stopped"
  fi
fi
