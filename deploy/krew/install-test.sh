#!/usr/bin/env bash
# Installs kubectl-jobflow with Krew itself from a locally built archive, into a temporary
# KREW_ROOT, and runs `kubectl jobflow version` through kubectl's plugin discovery.
#
# Krew is built from its Go module (sigs.k8s.io/krew, cached in ~/.cache/zen-flow/krew-bin);
# kubectl is the one tests/cluster/build.sh built, or any kubectl on PATH. BINARY=<path> packs
# an already built kubectl-jobflow (see release.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
krew_version=v0.4.3
cache="${ZEN_FLOW_CACHE:-$HOME/.cache/zen-flow}/krew-bin"
krew="$cache/krew"
# `go install` sets no version into the binary, so a marker file says which one it is.
if ! [ -x "$krew" ] || [ "$(cat "$cache/krew.version" 2>/dev/null)" != "$krew_version" ]; then
  mkdir -p "$cache"
  (cd "$(mktemp -d)" && GOBIN="$cache" GOFLAGS= go install "sigs.k8s.io/krew/cmd/krew@$krew_version")
  echo "$krew_version" > "$cache/krew.version"
fi

kubectl="$(ls "${ZEN_FLOW_CACHE:-$HOME/.cache/zen-flow}"/bin/*/kubectl 2>/dev/null | head -n 1 || true)"
[ -n "$kubectl" ] || kubectl="$(command -v kubectl || true)"
[ -n "$kubectl" ] || { echo "no kubectl: run tests/cluster/build.sh" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
PROFILE="${PROFILE:-debug}" bash "$root/deploy/krew/release.sh" "$work/dist" >/dev/null
archive="$(ls "$work"/dist/kubectl-jobflow-*.tar.gz)"

export KREW_ROOT="$work/krew"
# Krew refuses to run without a kubectl on PATH; a plugin is found on PATH as kubectl-<name>.
mkdir -p "$work/path"
ln -s "$kubectl" "$work/path/kubectl"
export PATH="$KREW_ROOT/bin:$work/path:/usr/bin:/bin"
"$krew" install --manifest="$work/dist/jobflow.yaml" --archive="$archive" </dev/null
# (`krew list` needs the plugin index, which is not fetched here; the receipt is what it reads.)
[ -f "$KREW_ROOT/receipts/jobflow.yaml" ] || { echo "krew kept no receipt for jobflow" >&2; exit 1; }
[ -L "$KREW_ROOT/bin/kubectl-jobflow" ] || { echo "no kubectl-jobflow link in $KREW_ROOT/bin" >&2; exit 1; }
plugins="$(kubectl plugin list 2>/dev/null || true)"
grep -q "$KREW_ROOT/bin/kubectl-jobflow" <<<"$plugins" || { echo "kubectl does not find the plugin: $plugins" >&2; exit 1; }
kubectl jobflow version --client
