#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd, kwok) and the real node's kubelet and kube-proxy from source through the Go module proxy. Each part lives in a small wrapper module
# because upstream's go.mod maps its staging modules to local folders, which `go install pkg@v`
# refuses. Binaries land outside the repository (never committed) in a per-version cache folder,
# and a part whose binary already reports the right version is not rebuilt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
source "$here/paths.sh"

export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$CLUSTER_BIN" "$CLUSTER_SRC"
# One build at a time per cache (two test runs at once would otherwise build into the same files).
exec 9>"$cluster_cache/build.lock"
flock 9

log() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# has_version BINARY WANT: true when BINARY exists and prints WANT in its version output.
# The output is read whole before matching (a `| grep -q` under pipefail fails on SIGPIPE).
has_version() {
  local printed
  [ -x "$CLUSTER_BIN/$1" ] && printed=$("$CLUSTER_BIN/$1" $3 2>/dev/null) && grep -q -- "$2" <<<"$printed"
}

# wrapper_module DIR MODULE VERSION TOOL...: a go.mod that requires MODULE@VERSION and lists TOOLs.
wrapper_module() {
  local dir=$1 module=$2 version=$3; shift 3
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init "zen-flow.local/build/$(basename "$dir")" >/dev/null 2>&1
  go mod edit -require="$module@$version"
  for tool in "$@"; do go mod edit -tool="$tool"; done
}

build_kubernetes() {
  local names=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy) all=1 name
  for name in "${names[@]}"; do
    has_version "$name" "$K8S_VERSION" --version || has_version "$name" "$K8S_VERSION" "version --client" || all=0
  done
  if [ "$all" = 1 ]; then log "kubernetes $K8S_VERSION: up to date"; return; fi
  log "kubernetes $K8S_VERSION: building ${names[*]}"
  local dir="$CLUSTER_SRC/kubernetes" minor staging upstream_mod
  wrapper_module "$dir" k8s.io/kubernetes "$K8S_VERSION" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
  # Staging modules k8s.io/<m> are published as k8s.io/<m> v0.<minor>.<patch>.
  staging=v0.${K8S_VERSION#v1.}
  upstream_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  for module in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$upstream_mod"); do
    go mod edit -replace="$module=$module@$staging"
  done
  go mod tidy
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local stamp="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  go build -trimpath -ldflags "-s -w$stamp" -o "$CLUSTER_BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
}

build_etcd() {
  if has_version etcd "${ETCD_VERSION#v}" --version; then log "etcd $ETCD_VERSION: up to date"; return; fi
  log "etcd $ETCD_VERSION: building"
  wrapper_module "$CLUSTER_SRC/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
  go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$CLUSTER_BIN/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  if has_version kwok "$KWOK_VERSION" --version; then log "kwok $KWOK_VERSION: up to date"; return; fi
  log "kwok $KWOK_VERSION: building"
  wrapper_module "$CLUSTER_SRC/kwok" sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
  go mod tidy
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    -o "$CLUSTER_BIN/kwok" sigs.k8s.io/kwok/cmd/kwok
}

start=$(date +%s)
build_etcd
build_kwok
build_kubernetes
log "control plane binaries ready in $CLUSTER_BIN ($(( $(date +%s) - start ))s)"
