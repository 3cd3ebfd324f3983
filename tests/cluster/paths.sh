# Paths shared by the control-plane scripts (sourced, not run).
# Binaries are cached per version outside the repository so every clone (and CI) reuses them.
cluster_cache=${ZEN_FLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zen-flow}
CLUSTER_BIN=${ZEN_FLOW_CLUSTER_BIN:-$cluster_cache/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION}
CLUSTER_SRC=$cluster_cache/src
# Runtime state (PKI, etcd data, logs, PIDs, kubeconfig) of one running control plane.
CLUSTER_STATE=${ZEN_FLOW_CLUSTER_STATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.state}
# The real node's folders that hold unix sockets: containerd's (root, state, socket) and the
# kubelet's root-dir. A socket's path has at most 107 bytes, so a state dir deeper than 60
# characters (a CI checkout's) keeps them in /run/zen-flow-<hash of the state dir>/ instead;
# down.sh removes that folder.
REAL_NODE_DIR=$CLUSTER_STATE
if [ "${#CLUSTER_STATE}" -gt 60 ]; then
  REAL_NODE_DIR=/run/zen-flow-$(printf '%s' "$CLUSTER_STATE" | cksum | cut -d' ' -f1)
fi
# The real node's containerd (see real-node.sh; oci.sh's import_image imports into it).
CONTAINERD_SOCKET=$REAL_NODE_DIR/containerd/containerd.sock

# bin_of NAME: the binary component NAME runs: Debian's containerd for the real node's runtime,
# else the one built by build.sh. PID checks compare /proc/PID/exe with it.
bin_of() {
  case $1 in
    containerd) readlink -f "$(command -v containerd)" ;;
    *) echo "$CLUSTER_BIN/$1" ;;
  esac
}

# lock_cluster: serializes up.sh and down.sh runs on the same CLUSTER_STATE (two test runs at once
# must not stop each other's half-started control plane). The lock lives outside CLUSTER_STATE,
# which down.sh removes; a nested call (up.sh running down.sh) already holds it through fd 9.
lock_cluster() {
  [ -n "${ZEN_FLOW_CLUSTER_LOCKED:-}" ] && return
  exec 9>"${TMPDIR:-/tmp}/zen-flow-cluster-$(printf '%s' "$CLUSTER_STATE" | cksum | cut -d' ' -f1).lock"
  flock 9
  export ZEN_FLOW_CLUSTER_LOCKED=1
}
