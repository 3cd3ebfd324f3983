#!/usr/bin/env bash
# Writes a kubeconfig per benchmark client, each a user of its own signed by the running control
# plane's throwaway CA, so the API server's audit log tells their requests apart:
# zen-flow-agent-0, zen-flow-agent-1 (one per agent shard) and argo-workflow-controller. They are
# in system:masters: RBAC does not change how many requests a controller makes, and this is a
# local benchmark (the shipped agent has its own narrow ClusterRole). Usage: users.sh NAME...
# Prints nothing; the files are $ZEN_FLOW_CLUSTER_STATE/bench-users/NAME.kubeconfig.
set -euo pipefail
source "$(dirname "$0")/env.sh"
state=$ZEN_FLOW_CLUSTER_STATE pki=$ZEN_FLOW_CLUSTER_STATE/pki out=$ZEN_FLOW_CLUSTER_STATE/bench-users
mkdir -p "$out"
chmod 700 "$out"

# user NAME: a client certificate and a kubeconfig for user NAME (namespace argo by default,
# which only Argo's controller reads: its own install namespace).
user() {
  local name=$1 port
  port=$(sed -n 's/^APISERVER_PORT=//p' "$state/ports.env")
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/$name.key" 2>/dev/null
  openssl req -new -key "$out/$name.key" -subj "/O=system:masters/CN=$name" 2>/dev/null |
    openssl x509 -req -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 7 -out "$out/$name.crt" \
      -extfile <(printf '%s\n' "basicConstraints = critical, CA:FALSE" "keyUsage = critical, digitalSignature" \
        "extendedKeyUsage = clientAuth") 2>/dev/null
  cat >"$out/$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$out/$name.crt")
    client-key-data: $(base64 -w0 "$out/$name.key")
contexts:
- name: bench
  context:
    cluster: bench
    user: $name
    namespace: argo
current-context: bench
KC
  chmod 600 "$out/$name.kubeconfig"
}

for name in "$@"; do user "$name"; done
