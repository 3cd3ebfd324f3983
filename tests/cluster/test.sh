#!/usr/bin/env bash
# The project's test command: formatting, clippy, the local control plane (with its real node), the
# binaries and images, then every test of the workspace (unit, integration and the cluster tests,
# which need the control plane), then zen-flow installed on the real node.
#
# The control plane is always stopped on exit, whatever happened (ZEN_FLOW_KEEP_CLUSTER=1 leaves
# it running, e.g. to rerun one test with `cargo test`). On failure its logs are kept in
# tests/cluster/.state/logs. ZEN_FLOW_TEST_THREADS (default 4) sets cargo test's --test-threads:
# cluster tests mostly wait on the control plane, so more threads than cores pay off.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=versions.env
source tests/cluster/versions.env
# shellcheck source=paths.sh
source tests/cluster/paths.sh

summary=()
# stage NAME CMD...: runs CMD, recording how long it took and whether it passed.
stage() {
  local name=$1 start=$SECONDS status=0
  shift
  printf '\n==> %s: %s\n' "$name" "$*" >&2
  "$@" || status=$?
  summary+=("$(printf '%-9s %5ss  %s' "$name" $((SECONDS - start)) "$([ "$status" = 0 ] && echo ok || echo "FAILED ($status)")")")
  return "$status"
}

finish() {
  local status=$?
  if [ "${ZEN_FLOW_KEEP_CLUSTER:-0}" = 1 ]; then
    echo "ZEN_FLOW_KEEP_CLUSTER=1: the control plane keeps running (stop it: bash tests/cluster/down.sh)" >&2
  elif [ "$status" = 0 ]; then
    bash tests/cluster/down.sh || true
  else
    bash tests/cluster/down.sh --keep-logs || true
  fi
  printf '\n==> summary (%ss in all)\n' "$SECONDS" >&2
  printf '%s\n' "${summary[@]}" >&2
  [ "$status" = 0 ] && echo "PASSED" >&2 || echo "FAILED" >&2
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The host's packages and toolchains first (installed as root when missing), then the check of
# that check: a hidden binary must be reported at once with its install command.
stage setup bash tests/cluster/setup.sh
stage setup-check bash tests/cluster/setup-test.sh
stage fmt cargo fmt --all -- --check
# Lints need no control plane: a lint failure is reported before minutes of cluster start-up.
stage clippy cargo clippy --workspace --all-targets -- -D warnings
# --all-targets leaves out test = false targets (tests/Cargo.toml's real_node).
stage clippy-real cargo clippy -p jobflow-tests --test real_node -- -D warnings
# Modules that import each other in a circle (tests/lint/import-cycles.py says which files).
stage imports python3 tests/lint/import-cycles.py
stage build bash tests/cluster/build.sh
stage up bash tests/cluster/up.sh
export KUBECONFIG=$CLUSTER_STATE/kubeconfig ZEN_FLOW_KUBECONFIG=$CLUSTER_STATE/kubeconfig
# The agent tests run the real target/debug/jobflow-agent (tests/src/agent/): build it first.
stage bins cargo build --workspace --bins
# The agent's image and the busybox test image, imported into the real node's containerd (the
# images test reads them; the real-node tests run them).
stage images bash tests/cluster/import-images.sh
stage test cargo test --workspace -- --test-threads="${ZEN_FLOW_TEST_THREADS:-4}"
# zen-flow installed from deploy/install.yaml on the real node, after everything else: the
# installed agent watches every namespace and would run the other tests' flows.
stage real cargo test -p jobflow-tests --test real_node -- --test-threads=1
