#!/usr/bin/env bash
# Starts the local control plane for the tests and the demo: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (fake nodes whose pods act out a kubelet's
# lifecycle, see kwok-stages.yaml), all as plain processes on 127.0.0.1; and one real node,
# `zen-flow-real` (containerd, kubelet, bridge CNI, kube-proxy; see real-node.sh for its taint,
# label and images), unless ZEN_FLOW_REAL_NODE=0.
#
# Idempotent: when the control plane is already up and healthy it only prints the kubeconfig path.
# A half-started or crashed one is stopped (down.sh) and started afresh.
# The last line of stdout is the admin kubeconfig's path; progress goes to stderr.
#
# Ports (override with the env variable if one is taken):
#   ZEN_FLOW_ETCD_PORT=23790 ZEN_FLOW_ETCD_PEER_PORT=23800 ZEN_FLOW_APISERVER_PORT=6443
#   ZEN_FLOW_KCM_PORT=10357 ZEN_FLOW_SCHEDULER_PORT=10359
# and with the real node (containerd has only a unix socket under the state dir, and a streaming
# port on 127.0.0.1 the kernel picks):
#   ZEN_FLOW_KUBELET_PORT=10250 ZEN_FLOW_KUBELET_HEALTHZ_PORT=10248
#   ZEN_FLOW_KUBE_PROXY_METRICS_PORT=10249 ZEN_FLOW_KUBE_PROXY_HEALTHZ_PORT=10256
#
# The real node (ZEN_FLOW_REAL_NODE, default 1; 0 starts only the kwok control plane as before):
# ONE PER HOST, since iptables, its bridge, cgroups and sysctls are host-wide; a second control
# plane on this host (another ZEN_FLOW_CLUSTER_STATE) needs ZEN_FLOW_REAL_NODE=0, else up.sh fails
# naming the one that runs. With it kube-apiserver listens on all addresses and advertises
# ZEN_FLOW_NODE_IP (default: the default route's source address) so pods reach the `kubernetes`
# Service; ZEN_FLOW_POD_CIDR (default 10.244.0.0/24) is the pods' network. Unset, a running control
# plane is kept as it was started; set, a running one started otherwise is restarted.
# ZEN_FLOW_UP_TIMEOUT (seconds, default 120) bounds each wait.
#
# Benchmark settings (bench/compare.sh; defaults unchanged when unset):
#   ZEN_FLOW_AUDIT=1: kube-apiserver writes an audit log at Metadata level for every request
#     (all verbs, RequestReceived stage omitted) to $CLUSTER_STATE/logs/audit.log, policy in
#     $CLUSTER_STATE/audit-policy.yaml: who (user, userAgent) did what (verb, resource) is exact there.
#   ZEN_FLOW_KCM_QPS / ZEN_FLOW_KCM_BURST: kube-controller-manager's --kube-api-qps/--kube-api-burst
#     (its defaults 20/30 make its Job controller the bottleneck of any Job-heavy run);
#   ZEN_FLOW_KCM_JOB_SYNCS: its --concurrent-job-syncs (default 5).
#   The values used are written to $CLUSTER_STATE/bench.env.
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
pki=$CLUSTER_STATE/pki
logs=$CLUSTER_STATE/logs
pids=$CLUSTER_STATE/pids
kubeconfig=$CLUSTER_STATE/kubeconfig
timeout=${ZEN_FLOW_UP_TIMEOUT:-120}
# Components in start order; down.sh stops them in reverse.
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { printf '[up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# alive NAME: the process recorded for NAME runs and is still NAME (not a reused PID).
alive() {
  local pid exe
  pid=$(cat "$pids/$1.pid" 2>/dev/null) || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "${exe% (deleted)}" = "$(bin_of "$1")" ]
}

kubectl() { "$CLUSTER_BIN/kubectl" --kubeconfig "$kubeconfig" "$@"; }

apiserver_ready() {
  curl -sf --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null
}

# The ports of a running control plane are the ones it was started with, not today's env.
if [ -f "$CLUSTER_STATE/ports.env" ]; then
  # shellcheck source=/dev/null
  source "$CLUSTER_STATE/ports.env"
  healthy=1
  REAL_NODE=${REAL_NODE:-0}
  if [ -n "${ZEN_FLOW_REAL_NODE:-}" ] && [ "$([ "$ZEN_FLOW_REAL_NODE" = 0 ] && echo 0 || echo 1)" != "$REAL_NODE" ]; then
    log "running with ZEN_FLOW_REAL_NODE=$REAL_NODE, asked for $ZEN_FLOW_REAL_NODE: restarting"
    healthy=0
  fi
  [ "$REAL_NODE" = 1 ] && components+=("${real_node_components[@]}")
  for name in "${components[@]}"; do alive "$name" || healthy=0; done
  if [ "$healthy" = 1 ] && apiserver_ready && { [ "$REAL_NODE" = 0 ] || real_node_ready; }; then
    log "already up"
    echo "$kubeconfig"
    exit 0
  fi
fi
if [ -e "$CLUSTER_STATE" ]; then
  log "stopping a previous control plane that is not healthy"
  bash "$here/down.sh"
fi

ETCD_PORT=${ZEN_FLOW_ETCD_PORT:-23790}
ETCD_PEER_PORT=${ZEN_FLOW_ETCD_PEER_PORT:-23800}
APISERVER_PORT=${ZEN_FLOW_APISERVER_PORT:-6443}
KCM_PORT=${ZEN_FLOW_KCM_PORT:-10357}
SCHEDULER_PORT=${ZEN_FLOW_SCHEDULER_PORT:-10359}
REAL_NODE=1
[ "${ZEN_FLOW_REAL_NODE:-1}" = 0 ] && REAL_NODE=0
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

for name in "${components[@]}" kubectl; do
  [ -x "$CLUSTER_BIN/$name" ] || { log "missing $CLUSTER_BIN/$name: run tests/cluster/build.sh first"; exit 1; }
done
ports=("$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT")
if [ "$REAL_NODE" = 1 ]; then
  real_node_settings
  real_node_tools
  components+=("${real_node_components[@]}")
  ports+=("$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT" "$KUBE_PROXY_METRICS_PORT" "$KUBE_PROXY_HEALTHZ_PORT")
fi
if [ "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" != "${#ports[@]}" ]; then
  # Else a health check could be answered by another component on the same port.
  log "the ports must differ: ${ports[*]}"
  exit 1
fi
for port in "${ports[@]}"; do
  if [ -n "$(ss -Htln "sport = :$port")" ]; then
    log "port $port is already in use; pick another with the ZEN_FLOW_*_PORT variables (see $0)"
    exit 1
  fi
done
# Before anything is started, so a refusal leaves the other real node alone.
[ "$REAL_NODE" = 0 ] || real_node_claim

# A failed start leaves nothing running, but keeps the logs to read.
trap 'status=$?; if [ "$status" != 0 ]; then bash "$here/down.sh" --keep-logs; fi' EXIT

started=$(date +%s)
mkdir -p "$pki" "$logs" "$pids" "$CLUSTER_STATE/etcd"
chmod 700 "$CLUSTER_STATE"
cat >"$CLUSTER_STATE/ports.env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
KCM_PORT=$KCM_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
REAL_NODE=$REAL_NODE
EOF
[ "$REAL_NODE" = 0 ] || real_node_ports_env >>"$CLUSTER_STATE/ports.env"

# --- PKI: a throwaway CA per start, so nothing secret outlives the control plane. ---
# EC keys because they are generated instantly; the service-account key is RSA as usual.
cat >"$pki/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
EOF
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key" 2>>"$logs/pki.log"
openssl req -x509 -new -config "$pki/openssl.cnf" -extensions ca -key "$pki/ca.key" \
  -subj "/CN=zen-flow-test-ca" -days 3650 -out "$pki/ca.crt" 2>>"$logs/pki.log"

# sign NAME SUBJECT EXTENSIONS...: NAME.key and NAME.crt signed by the CA.
sign() {
  local name=$1 subject=$2; shift 2
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key" 2>>"$logs/pki.log"
  openssl req -new -config "$pki/openssl.cnf" -key "$pki/$name.key" -subj "$subject" 2>>"$logs/pki.log" |
    openssl x509 -req -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 365 -out "$pki/$name.crt" -extfile <(printf '%s\n' "basicConstraints = critical, CA:FALSE" \
      "keyUsage = critical, digitalSignature" "authorityKeyIdentifier = keyid" "$@") 2>>"$logs/pki.log"
}
apiserver_ips="IP:127.0.0.1, IP:10.96.0.1"
# With the real node, pods reach kube-apiserver at the host's address (the `kubernetes` Service's endpoint).
[ "$REAL_NODE" = 0 ] || apiserver_ips+=", IP:$NODE_IP"
sign apiserver "/CN=kube-apiserver" "extendedKeyUsage = serverAuth" \
  "subjectAltName = $apiserver_ips, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local"
# Each client is the user the default RBAC bootstrap policy grants its permissions to.
sign admin "/O=system:masters/CN=zen-flow-admin" "extendedKeyUsage = clientAuth"
sign controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage = clientAuth"
sign scheduler "/CN=system:kube-scheduler" "extendedKeyUsage = clientAuth"
# The aggregation layer's client. Mostly so the controller-manager and scheduler, which read the
# request-header CA to authenticate their own callers, find one instead of logging errors.
sign front-proxy-client "/CN=front-proxy-client" "extendedKeyUsage = clientAuth"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>>"$logs/pki.log"
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# write_kubeconfig FILE USER: a self-contained kubeconfig (certificates inlined) for USER.
write_kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: zen-flow-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$pki/$2.crt")
    client-key-data: $(base64 -w0 "$pki/$2.key")
contexts:
- name: zen-flow-test
  context:
    cluster: zen-flow-test
    user: $2
current-context: zen-flow-test
EOF
  chmod 600 "$1"
}
write_kubeconfig "$kubeconfig" admin
write_kubeconfig "$CLUSTER_STATE/controller-manager.kubeconfig" controller-manager
write_kubeconfig "$CLUSTER_STATE/scheduler.kubeconfig" scheduler
[ "$REAL_NODE" = 0 ] || real_node_pki

# start NAME ARGS...: runs $CLUSTER_BIN/NAME in its own session (so it outlives this script and
# a Ctrl-C here), logging to logs/NAME.log; the process writes its own PID before exec'ing. It
# does not inherit the lock's fd 9, or the lock would be held for as long as it runs.
start() {
  local name=$1; shift
  setsid bash -c 'echo $$ >"$0" && exec "$@"' "$pids/$name.pid" "$(bin_of "$name")" "$@" \
    </dev/null >"$logs/$name.log" 2>&1 9>&- &
}

# wait_for NAME WHAT CMD...: runs CMD until it succeeds; fails with NAME's log tail if NAME's
# process exits or $timeout passes.
wait_for() {
  local name=$1 what=$2 deadline=$(( $(date +%s) + timeout )); shift 2
  until "$@"; do
    # Checked twice: between writing its PID and exec'ing, a process does not look like NAME yet.
    if [ -f "$pids/$name.pid" ] && ! alive "$name" && sleep 0.5 && ! alive "$name"; then
      log "$name exited while waiting for $what; last lines of $logs/$name.log:"
      tail -n 40 "$logs/$name.log" >&2
      exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what; last lines of $logs/$name.log:"
      tail -n 40 "$logs/$name.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  log "$what ($(( $(date +%s) - started ))s)"
}

# --- etcd: one member on loopback, no fsync (the data dies with the control plane anyway). ---
start etcd --name zen-flow --data-dir "$CLUSTER_STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "zen-flow=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level warn
wait_for etcd "etcd healthy" curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

# Optional audit log and controller-manager client limits (see the header).
audit_args=()
if [ "${ZEN_FLOW_AUDIT:-0}" = 1 ]; then
  cat >"$CLUSTER_STATE/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
EOF
  audit_args=(--audit-policy-file "$CLUSTER_STATE/audit-policy.yaml" --audit-log-path "$logs/audit.log"
    --audit-log-maxsize 0 --audit-log-format json)
fi
kcm_args=()
[ -z "${ZEN_FLOW_KCM_QPS:-}" ] || kcm_args+=(--kube-api-qps "$ZEN_FLOW_KCM_QPS")
[ -z "${ZEN_FLOW_KCM_BURST:-}" ] || kcm_args+=(--kube-api-burst "$ZEN_FLOW_KCM_BURST")
[ -z "${ZEN_FLOW_KCM_JOB_SYNCS:-}" ] || kcm_args+=(--concurrent-job-syncs "$ZEN_FLOW_KCM_JOB_SYNCS")
cat >"$CLUSTER_STATE/bench.env" <<EOF
AUDIT=${ZEN_FLOW_AUDIT:-0}
KCM_QPS=${ZEN_FLOW_KCM_QPS:-20}
KCM_BURST=${ZEN_FLOW_KCM_BURST:-30}
KCM_JOB_SYNCS=${ZEN_FLOW_KCM_JOB_SYNCS:-5}
EOF

# --- kube-apiserver. Without the real node the advertised address is loopback too, which the
# endpoint reconciler would refuse to publish; nothing then reaches the API through the
# `kubernetes` Service, so it is off. With it, see real_node_apiserver_args. PodNodeSelector and
# PodTolerationRestriction let a namespace send its pods to the real node (annotations
# scheduler.alpha.kubernetes.io/node-selector and .../defaultTolerations; the demo does). ---
if [ "$REAL_NODE" = 0 ]; then
  apiserver_net=(--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --endpoint-reconciler-type none)
else
  mapfile -t apiserver_net < <(real_node_apiserver_args)
fi
start kube-apiserver \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  "${apiserver_net[@]}" --secure-port "$APISERVER_PORT" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" \
  --requestheader-client-ca-file "$pki/ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
  --authorization-mode Node,RBAC \
  --enable-admission-plugins PodNodeSelector,PodTolerationRestriction \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --allow-privileged=true --profiling=false \
  --cert-dir "$CLUSTER_STATE/apiserver-certs" ${audit_args[@]+"${audit_args[@]}"}
wait_for kube-apiserver "kube-apiserver ready" apiserver_ready

# --- kube-controller-manager: every default controller (job, garbage collector, namespace,
# serviceaccount and serviceaccount-token, ttl-after-finished, node lifecycle, ...). ---
start kube-controller-manager \
  --kubeconfig "$CLUSTER_STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$CLUSTER_STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$CLUSTER_STATE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$CLUSTER_STATE/kcm-certs" \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --controllers '*' --leader-elect=false --profiling=false ${kcm_args[@]+"${kcm_args[@]}"}

start kube-scheduler \
  --kubeconfig "$CLUSTER_STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$CLUSTER_STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$CLUSTER_STATE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --cert-dir "$CLUSTER_STATE/scheduler-certs" \
  --leader-elect=false --profiling=false

# kwok serves no kubelet API (no --server-address/--node-port): the tests need no logs or exec.
# A /16 pod CIDR so pod IPs never run out however many pods the tests leave behind.
# Node Leases: without them (kwok's default when its config file has no KwokConfiguration) the
# node lifecycle controller sees no heartbeat for 50 s and marks every node NotReady, over and over.
start kwok --kubeconfig "$kubeconfig" --config "$here/kwok-stages.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr 10.0.0.1/16 --node-lease-duration-seconds 40

kubectl apply -f "$here/nodes.yaml" >/dev/null
nodes_ready() {
  local want ready
  want=$(grep -c '^kind: Node' "$here/nodes.yaml")
  ready=$(kubectl get nodes -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)
  [ "$ready" = "$want" ]
}
wait_for kube-controller-manager "kube-controller-manager healthy" \
  curl -sfk -o /dev/null --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
wait_for kube-scheduler "kube-scheduler healthy" curl -sfk -o /dev/null --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz"
wait_for kwok "kwok nodes Ready" nodes_ready
# Pods are refused in a namespace until the controller-manager has created its default
# ServiceAccount; wait for the `default` namespace's so the cluster is usable at once.
default_service_account() { kubectl get serviceaccount default -n default -o name >/dev/null 2>&1; }
wait_for kube-controller-manager "ServiceAccount default/default" default_service_account
[ "$REAL_NODE" = 0 ] || real_node_up

# A component that died after its check passed (e.g. lost a port race) must not go unnoticed.
for name in "${components[@]}"; do
  alive "$name" || { log "$name is not running; last lines of $logs/$name.log:"; tail -n 40 "$logs/$name.log" >&2; exit 1; }
done
log "control plane ready in $(( $(date +%s) - started ))s (logs: $logs)"
echo "$kubeconfig"
