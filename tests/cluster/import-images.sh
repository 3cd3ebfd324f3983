#!/usr/bin/env bash
# Builds zen-flow's images (deploy/images/build.sh: the agent and the busybox step image) and
# imports both into the running real node's containerd, namespace k8s.io, under the names their
# archives carry (docker.io/library/jobflow-agent:<version>, docker.io/library/busybox:1.35.0).
# Pods then run them with imagePullPolicy IfNotPresent or Never: there is no registry.
#
# Usage: bash tests/cluster/import-images.sh   (after `bash tests/cluster/up.sh`)
#
# Importing an unchanged archive again is cheap: containerd already has its blobs.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=versions.env
source tests/cluster/versions.env
# shellcheck source=paths.sh
source tests/cluster/paths.sh
# oci.sh (the real node's helpers) brings import_image; without it, ctr is called directly below.
# shellcheck source=oci.sh
[ -f tests/cluster/oci.sh ] && source tests/cluster/oci.sh
socket=${CONTAINERD_SOCKET:-$CLUSTER_STATE/containerd/containerd.sock}
cache=${ZEN_FLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zen-flow}
images=${ZEN_FLOW_IMAGES_DIR:-$cache/images}

# log MSG...: progress on stderr, like the cluster scripts.
log() { printf '[import-images] %s\n' "$*" >&2; }

# node_running: true when the real node's containerd answers on its socket.
node_running() {
  [ -S "$socket" ] && ctr --address "$socket" version >/dev/null 2>&1
}

# import TARBALL: into the node's containerd, through oci.sh's import_image when it is there.
import() {
  if declare -F import_image >/dev/null; then
    CONTAINERD_SOCKET=$socket import_image "$1"
  else
    ctr --address "$socket" --namespace k8s.io images import --platform linux/amd64 "$1" >/dev/null
  fi
}

# ref_of TARBALL: the image name an oci-archive's index records (what the import registers).
ref_of() {
  tar -xOf "$1" index.json | grep -o '"org.opencontainers.image.ref.name":"[^"]*"' | cut -d'"' -f4
}

if ! node_running; then
  log "no real node: containerd does not answer on $socket; start it with: bash tests/cluster/up.sh"
  exit 1
fi
bash deploy/images/build.sh
for tarball in "$images/jobflow-agent.tar" "$images/busybox.tar"; do
  ref=$(ref_of "$tarball")
  import "$tarball"
  # The name must be exactly what pods ask for, or the kubelet reports ErrImageNeverPull.
  # The list is read whole before matching: `ctr ... | grep -q` under pipefail fails whenever grep
  # stops at an early match and ctr gets SIGPIPE (busybox sorts first: CI failed on exactly that).
  listed=$(ctr --address "$socket" --namespace k8s.io images ls -q)
  grep -qxF "$ref" <<<"$listed" || {
    log "$tarball imported, but containerd has no image named $ref"
    exit 1
  }
  log "imported $ref"
done
