#!/usr/bin/env bash
# Stops exactly the processes up.sh started (by their PID files, checking each PID still runs the
# binary it was recorded for) and removes the control plane's state. Safe to run when nothing runs.
#   --keep-logs   keep $CLUSTER_STATE/logs for a post-mortem (everything else is removed)
# ZEN_FLOW_DOWN_TIMEOUT (seconds, default 15): how long a process gets after SIGTERM before SIGKILL.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=paths.sh
source "$here/paths.sh"

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
  [ "${exe% (deleted)}" = "$CLUSTER_BIN/$1" ] && echo "$pid"
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
    find "$CLUSTER_STATE" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
    log "stopped; logs kept in $CLUSTER_STATE/logs"
  else
    rm -rf "$CLUSTER_STATE"
    log "stopped"
  fi
fi
