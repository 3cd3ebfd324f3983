#!/usr/bin/env bash
# The side-by-side benchmark of issue #11, in one command:
#   bash bench/compare.sh [SCENARIO...]     (default: 10x5 burst100 100x10 dag50 sustained)
# SCENARIO is a jobflow-load --scenario (10x5 100x10 1000x20 dag50 burst100 sustained) or
# `shards` (burst100 with two agents, one namespace each: docs/benchmarks.md, "Past one agent").
#
# It builds what it needs (release jobflow-agent and jobflow-load; Argo's workflow-controller
# v4.0.5 from the Go module proxy into the cache), starts a FRESH control plane of its own
# (bench/env.sh: /tmp/zf-bench, ports apart from the default, audit log on, controller-manager
# client QPS/burst raised), and runs every scenario with
#   1. zen-flow (jobflow-agent, default flags),
#   2. Argo at its defaults (--qps 20 --burst 30),
#   3. Argo at "equal client QPS" (--qps 1000 --burst 2000: the agent has no client-side limiter),
# one after the other on that control plane, waiting between runs until the previous run's
# namespaces are gone. Each run's JSON (jobflow-load --json plus the audit log's per-client
# counts, bench/audit.py) goes to docs/bench/raw/CONFIG-SCENARIO.json; then bench/table.py
# writes docs/bench/table.md (zen-flow / Argo ratios) and bench/plot.py docs/bench/scaling.png.
# The control plane is stopped at the end unless BENCH_KEEP=1.
# Knobs: BENCH_OUT (docs/bench), BENCH_TIMEOUT (900s per run), BENCH_RATE (60/min) and
# BENCH_MINUTES (2) for `sustained`, BENCH_CONFIGS ("zen-flow argo-default argo-equal"),
# BENCH_SKIP_BUILD=1 (use the binaries already built), BENCH_AGENT / BENCH_LOAD (their paths).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"
state=$ZEN_FLOW_CLUSTER_STATE
out=${BENCH_OUT:-$REPO_DIR/docs/bench}
raw=$out/raw
timeout=${BENCH_TIMEOUT:-900s}
read -r -a configs <<<"${BENCH_CONFIGS:-zen-flow argo-default argo-equal}"
if [ "$#" -gt 0 ]; then scenarios=("$@"); else scenarios=(10x5 burst100 100x10 dag50 sustained); fi
load=${BENCH_LOAD:-$REPO_DIR/target/release/jobflow-load}
agent=${BENCH_AGENT:-$REPO_DIR/target/release/jobflow-agent}
mkdir -p "$raw"

# log MSG: progress on stderr.
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# kubectl ARGS...: against the benchmark's control plane as admin.
kubectl() { "$KUBECTL" --kubeconfig "$state/kubeconfig" "$@"; }

# build: the release agent and harness, and Argo's controller (BENCH_SKIP_BUILD=1 keeps the
# binaries there are, e.g. to add a scenario measured with the same agent build).
build() {
  if [ "${BENCH_SKIP_BUILD:-0}" = 1 ] && [ -x "$agent" ] && [ -x "$load" ]; then
    log "BENCH_SKIP_BUILD=1: using the existing $agent and $load"
    return
  fi
  log "building the release agent and jobflow-load"
  (cd "$REPO_DIR" && cargo build -q --release -p jobflow-agent -p jobflow-bench --bin jobflow-agent --bin jobflow-load)
  log "building Argo's workflow-controller (cached after the first time)"
  bash "$here/argo/build.sh" >/dev/null
}

# fresh_cluster: stops any previous benchmark control plane and starts a new one.
fresh_cluster() {
  bash "$REPO_DIR/tests/cluster/down.sh" >/dev/null 2>&1 || true
  bash "$REPO_DIR/tests/cluster/up.sh" >/dev/null
  bash "$here/users.sh" zen-flow-agent-0 zen-flow-agent-1
  log "control plane up: $(tr '\n' ' ' <"$state/bench.env")"
}

# wait_quiet: until no namespace of an earlier run is left (their garbage collection would
# otherwise load the API server during the next run), at most 10 minutes.
wait_quiet() {
  local deadline=$(( $(date +%s) + 600 ))
  while [ -n "$(kubectl get namespaces -l zen-flow.test=true -o name 2>/dev/null)" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then log "namespaces still terminating after 600s; going on"; return; fi
    sleep 2
  done
}

# meta CONFIG SCENARIO QPS BURST: the bench's own facts about a run, as JSON: the commit, whether
# agent/ or shared/ had uncommitted changes when the agent was built, the control plane's settings.
meta() {
  local commit dirty
  commit=$(git -C "$REPO_DIR" rev-parse --short HEAD)
  dirty=$(git -C "$REPO_DIR" status --porcelain -- agent shared | wc -l)
  python3 - "$@" "$state/bench.env" "$commit" "$dirty" <<'PY'
import json, os, sys
config, scenario, qps, burst, env, commit, dirty = sys.argv[1:8]
kcm = dict(line.strip().split("=", 1) for line in open(env) if "=" in line)
print(json.dumps({"config": config, "scenario": scenario, "controller_qps": qps,
                  "controller_burst": burst, "control_plane": kcm, "commit": commit,
                  "uncommitted_agent_or_shared_files": int(dirty), "cpus": os.cpu_count()}))
PY
}

# run_one CONFIG SCENARIO [ARGS...]: one jobflow-load run into raw/CONFIG-SCENARIO.json, with
# its audit figures; a run whose flows did not all succeed still writes its report.
run_one() {
  local config=$1 scenario=$2; shift 2
  local json=$raw/$config-$scenario.json errlog=$raw/$config-$scenario.log before after status=0
  local args=(--json --kubeconfig "$state/kubeconfig" --timeout "$timeout" --settle 5s "$@")
  local name=$scenario
  case $scenario in
    shards) args+=(--scenario burst100 --shards 2
      --agent-kubeconfig "$state/bench-users/zen-flow-agent-0.kubeconfig"
      --agent-kubeconfig "$state/bench-users/zen-flow-agent-1.kubeconfig") ;;
    sustained) args+=(--scenario sustained --rate "${BENCH_RATE:-60/min}" --minutes "${BENCH_MINUTES:-2}") ;;
    *) args+=(--scenario "$scenario") ;;
  esac
  wait_quiet
  before=$(stat -c %s "$state/logs/audit.log")
  log "$config $name: running (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$load" "${args[@]}" >"$json.tmp" 2>"$errlog" || status=$?
  after=$(stat -c %s "$state/logs/audit.log")
  if ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$json.tmp" 2>/dev/null; then
    log "$config $name: no report (exit $status); see $errlog"
    rm -f "$json.tmp"
    return 0
  fi
  python3 "$here/audit.py" "$json.tmp" "$state/logs/audit.log" "$before" "$after"
  BENCH_META=$(meta "$config" "$name" "${qps:-}" "${burst:-}") python3 - "$json.tmp" <<'PY'
import json, os, sys
report = json.load(open(sys.argv[1]))
report["bench"] = json.loads(os.environ["BENCH_META"])
json.dump(report, open(sys.argv[1], "w"), indent=2)
PY
  mv "$json.tmp" "$json"
  log "$config $name: exit $status, $(python3 "$here/summary.py" "$json")"
}

# zen_flow: every scenario with jobflow-agent (one agent per shard, user zen-flow-agent-N).
zen_flow() {
  local scenario qps="" burst=""
  for scenario in "${scenarios[@]}"; do
    if [ "$scenario" = shards ]; then
      run_one zen-flow "$scenario" --engine zen-flow --agent "$agent"
    else
      run_one zen-flow "$scenario" --engine zen-flow --agent "$agent" \
        --agent-kubeconfig "$state/bench-users/zen-flow-agent-0.kubeconfig"
    fi
  done
}

# argo CONFIG QPS BURST: every scenario (but `shards`) with Argo's controller at QPS/BURST.
argo() {
  local config=$1 qps=$2 burst=$3 pid scenario
  pid=$(bash "$here/argo/controller.sh" start "$qps" "$burst")
  log "$config: workflow-controller pid $pid (--qps $qps --burst $burst)"
  for scenario in "${scenarios[@]}"; do
    [ "$scenario" = shards ] && continue
    run_one "$config" "$scenario" --engine argo --controller-pid "$pid"
  done
  wait_quiet
  bash "$here/argo/controller.sh" stop
}

trap 'bash "$here/argo/controller.sh" stop || true; [ "${BENCH_KEEP:-0}" = 1 ] || bash "$REPO_DIR/tests/cluster/down.sh" >/dev/null 2>&1 || true' EXIT
build
fresh_cluster
for config in "${configs[@]}"; do
  case $config in
    zen-flow) zen_flow ;;
    argo-default) argo argo-default "$ARGO_DEFAULT_QPS" "$ARGO_DEFAULT_BURST" ;;
    argo-equal) argo argo-equal "$ARGO_EQUAL_QPS" "$ARGO_EQUAL_BURST" ;;
    *) log "unknown config $config"; exit 2 ;;
  esac
done
python3 "$here/table.py" "$raw" >"$out/table.md"
# The plot needs matplotlib: Debian's python3-matplotlib is for /usr/bin/python3, which may not
# be the python3 first on PATH.
plot_python=python3
python3 -c 'import matplotlib' 2>/dev/null || plot_python=/usr/bin/python3
"$plot_python" "$here/plot.py" "$raw" "$out/scaling.png" || log "no plot (matplotlib missing?)"
cat "$out/table.md"
