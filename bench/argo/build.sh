#!/usr/bin/env bash
# Builds Argo Workflows' workflow-controller (module github.com/argoproj/argo-workflows/v4) from
# the Go module proxy into the zen-flow cache, for local side-by-side benchmarking only: it is
# never shipped or committed. Like tests/cluster/build.sh it uses a small wrapper module, since
# upstream's go.mod carries replace directives that `go install pkg@version` refuses; those
# replaces are copied into the wrapper so the build resolves the same versions upstream does.
# The last line of stdout is the binary's path; the CRDs live in the module cache (see crds.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ARGO_VERSION=${ARGO_VERSION:-v4.0.5}
cache=${ZEN_FLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zen-flow}
ARGO_BIN=$cache/bin/argo-$ARGO_VERSION
src=$cache/src/argo-$ARGO_VERSION
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

# log MSG: progress on stderr.
log() { printf '[argo-build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# build: the wrapper module and the binary, unless the binary already exists.
build() {
  if [ -x "$ARGO_BIN/workflow-controller" ]; then log "workflow-controller $ARGO_VERSION: up to date"; return; fi
  mkdir -p "$ARGO_BIN" && rm -rf "$src" && mkdir -p "$src" && cd "$src"
  go mod init zen-flow.local/build/argo >/dev/null 2>&1
  go mod edit -require="github.com/argoproj/argo-workflows/v4@$ARGO_VERSION"
  local upstream_mod line
  upstream_mod=$(go mod download -json "github.com/argoproj/argo-workflows/v4@$ARGO_VERSION" |
    sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  # Upstream's replace directives (single-line and block form) apply only to the main module,
  # so they are repeated here.
  while read -r line; do
    [ -n "$line" ] && go mod edit -replace="$line"
  done < <(awk '
    /^replace \(/ {blk=1; next}
    blk && /^\)/ {blk=0; next}
    blk {print; next}
    /^replace / {sub(/^replace /, ""); print}
  ' "$upstream_mod" | sed 's/\/\/.*//' | awk 'NF {gsub(/ *=> */, "="); gsub(/ +/, "@"); print}' |
    grep -v '=\.' || true)
  go mod edit -tool=github.com/argoproj/argo-workflows/v4/cmd/workflow-controller
  go mod tidy
  log "building workflow-controller $ARGO_VERSION"
  go build -trimpath -ldflags "-s -w -X github.com/argoproj/argo-workflows/v4.version=$ARGO_VERSION" \
    -o "$ARGO_BIN/workflow-controller" github.com/argoproj/argo-workflows/v4/cmd/workflow-controller
}

start=$(date +%s)
build
log "ready ($(( $(date +%s) - start ))s)"
echo "$ARGO_BIN/workflow-controller"
