# The local control plane's one real node (sourced by up.sh and down.sh, not run).
#
# Node `zen-flow-real`: Debian's containerd and runc, a kubelet and a kube-proxy built by build.sh
# from the control plane's Kubernetes sources, a bridge CNI network, all as plain processes whose
# state lives under $CLUSTER_STATE. Pods land there only if they tolerate its taint:
#   taint  zen-flow.test/real-node=true:NoSchedule     label  type=real
#   e.g.   nodeSelector: {kubernetes.io/hostname: zen-flow-real}
#          tolerations: [{key: zen-flow.test/real-node, operator: Exists, effect: NoSchedule}]
# There is no registry: images are imported with oci.sh's import_image (the sandbox image
# registry.k8s.io/pause:3.10.1 is built here from Kubernetes' pause.c); pods use
# imagePullPolicy IfNotPresent or Never.
#
# ONE REAL NODE PER HOST. iptables, the bridge, cgroups and sysctls are host-wide, so a second
# control plane on the same host (another ZEN_FLOW_CLUSTER_STATE) must run with ZEN_FLOW_REAL_NODE=0;
# up.sh refuses otherwise, naming the state dir that owns the real node ($real_node_owner_file).
#
# Network: pods get 10.244.0.0/24 (ZEN_FLOW_POD_CIDR) on bridge zenflow0, masqueraded when they leave
# the host; kube-proxy (iptables mode) makes ClusterIPs work from pods and from the host (so
# kube-apiserver reaches webhook Services through their ClusterIP: its default resolver, verified
# with a TLS webhook pod; no --enable-aggregator-routing needed), and kube-apiserver listens on
# all addresses and advertises the host's address (ZEN_FLOW_NODE_IP, default the source address of
# the default route) as the `kubernetes` Service's endpoint.
#
# Seen with Debian's busybox-static 1.35 in pods here: `wget -T N` segfaults (plain wget works),
# and its built-in TLS fails the handshake with kube-apiserver's P-256 certificate (alert 40);
# wget over https works when an `openssl` binary is in the image (it runs `openssl s_client`).
#
# The caller provides: log, and in up.sh start, wait_for, alive, sign, write_kubeconfig, kubectl,
# $pki $logs $pids; in down.sh stop and pid_of.

REAL_NODE_NAME=zen-flow-real
REAL_NODE_TAINT_KEY=zen-flow.test/real-node
REAL_NODE_BRIDGE=zenflow0
PAUSE_IMAGE=registry.k8s.io/pause:3.10.1
# Components of the real node in start order.
real_node_components=(containerd kubelet kube-proxy)
# Host-wide (not per state dir): who owns this host's real node, and the lock guarding that claim.
real_node_owner_file=/run/zen-flow-real-node
real_node_lock_file=/run/zen-flow-real-node.lock
# The kernel settings the kubelet, kube-proxy and we change, restored by down.sh.
real_node_sysctls=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic
  kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.ipv4.conf.all.route_localnet net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait)
# Host directories the kubelet or CNI write to whatever their flags say; removed again if we made them.
real_node_host_dirs=(/var/log/containers /var/lib/cni /var/lib/kubelet /var/log/pods /run/netns)
real_node_host=$CLUSTER_STATE/host     # what the host looked like before (sysctls, dirs, cgroups)
real_node_pod_logs=$CLUSTER_STATE/pod-logs

# real_node_settings: ports and addresses from the env (a running cluster's are in ports.env).
real_node_settings() {
  KUBELET_PORT=${ZEN_FLOW_KUBELET_PORT:-10250}
  KUBELET_HEALTHZ_PORT=${ZEN_FLOW_KUBELET_HEALTHZ_PORT:-10248}
  KUBE_PROXY_METRICS_PORT=${ZEN_FLOW_KUBE_PROXY_METRICS_PORT:-10249}
  KUBE_PROXY_HEALTHZ_PORT=${ZEN_FLOW_KUBE_PROXY_HEALTHZ_PORT:-10256}
  POD_CIDR=${ZEN_FLOW_POD_CIDR:-10.244.0.0/24}
  NODE_IP=${ZEN_FLOW_NODE_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')}
  [ -n "$NODE_IP" ] || NODE_IP=$(ip -4 -o addr show scope global | awk 'NR == 1 {print $4}' | cut -d/ -f1)
  [ -n "$NODE_IP" ] || { log "no IPv4 address for the real node: set ZEN_FLOW_NODE_IP"; return 1; }
}

# real_node_ports_env: the settings to record in ports.env.
real_node_ports_env() {
  printf '%s\n' "KUBELET_PORT=$KUBELET_PORT" "KUBELET_HEALTHZ_PORT=$KUBELET_HEALTHZ_PORT" \
    "KUBE_PROXY_METRICS_PORT=$KUBE_PROXY_METRICS_PORT" "KUBE_PROXY_HEALTHZ_PORT=$KUBE_PROXY_HEALTHZ_PORT" \
    "POD_CIDR=$POD_CIDR" "NODE_IP=$NODE_IP"
}

# real_node_tools: fails naming what is missing: the host's packages by setup.sh's one list
# (with the command that installs them), and the kubelet and kube-proxy build.sh makes.
real_node_tools() {
  local tool missing=()
  ZEN_FLOW_REAL_NODE=1 bash "$(dirname "${BASH_SOURCE[0]}")/setup.sh" --check || return 1
  for tool in kubelet kube-proxy; do [ -x "$CLUSTER_BIN/$tool" ] || missing+=("$CLUSTER_BIN/$tool (build.sh)"); done
  [ "${#missing[@]}" = 0 ] && return
  log "the real node needs: ${missing[*]} (or start with ZEN_FLOW_REAL_NODE=0)"
  return 1
}

# real_node_owned: this state dir owns the host's real node.
real_node_owned() { [ "$(cat "$real_node_owner_file" 2>/dev/null)" = "$CLUSTER_STATE" ]; }

# real_node_claim: records this state dir as the host's real node, refusing when another one's
# exists. A claim whose state dir is gone is stale (its down.sh ran, or the machine was reset).
real_node_claim() {
  local owner
  (
    flock 8
    owner=$(cat "$real_node_owner_file" 2>/dev/null) || owner=""
    if [ -n "$owner" ] && [ "$owner" != "$CLUSTER_STATE" ] && [ -d "$owner" ]; then
      log "another zen-flow real node runs on this host (state $owner); only one can (iptables, the bridge"
      log "and cgroups are host-wide). Stop it (ZEN_FLOW_CLUSTER_STATE=$owner bash tests/cluster/down.sh)"
      log "or start this control plane without one: ZEN_FLOW_REAL_NODE=0"
      exit 1
    fi
    printf '%s\n' "$CLUSTER_STATE" >"$real_node_owner_file"
  ) 8>"$real_node_lock_file"
}

# real_node_pki: the real node's certificates and kubeconfigs (the CA is up.sh's).
real_node_pki() {
  sign kubelet "/O=system:nodes/CN=system:node:$REAL_NODE_NAME" "extendedKeyUsage = clientAuth"
  sign kubelet-serving "/CN=$REAL_NODE_NAME" "extendedKeyUsage = serverAuth" \
    "subjectAltName = IP:$NODE_IP, IP:127.0.0.1, DNS:$REAL_NODE_NAME"
  # kube-apiserver's client for logs/exec/port-forward; bound to system:kubelet-api-admin below.
  sign apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" "extendedKeyUsage = clientAuth"
  sign kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage = clientAuth"
  write_kubeconfig "$CLUSTER_STATE/kubelet.kubeconfig" kubelet
  write_kubeconfig "$CLUSTER_STATE/kube-proxy.kubeconfig" kube-proxy
}

# real_node_apiserver_args: kube-apiserver's flags when the real node is on (see the header).
real_node_apiserver_args() {
  printf '%s\n' --bind-address 0.0.0.0 --advertise-address "$NODE_IP" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-preferred-address-types InternalIP,Hostname
}

# real_node_save_host: records what down.sh restores: sysctls, which host dirs, cgroups and nft
# tables existed. Written once per start, before anything changes.
real_node_save_host() {
  local name dir
  mkdir -p "$real_node_host"
  for name in "${real_node_sysctls[@]}"; do
    [ -e "/proc/sys/${name//.//}" ] && printf '%s=%s\n' "$name" "$(sysctl -n "$name")"
  done >"$real_node_host/sysctl"
  for dir in "${real_node_host_dirs[@]}"; do [ -e "$dir" ] && echo "$dir"; done >"$real_node_host/dirs"
  for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io; do [ -d "$dir" ] && echo "$dir"; done \
    >"$real_node_host/cgroups" || true
  if command -v nft >/dev/null; then nft list tables >"$real_node_host/nft-tables" 2>/dev/null || true; fi
}

# real_node_sysctls_up: packet forwarding for the bridge and Services, bridged traffic through
# iptables (kube-proxy's rules must see pod-to-pod Service traffic).
real_node_sysctls_up() {
  sysctl -qw net.ipv4.ip_forward=1
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    sysctl -qw net.bridge.bridge-nf-call-iptables=1
  else
    log "warning: no br_netfilter (net.bridge.bridge-nf-call-iptables): Services between pods on the bridge may not work"
  fi
}

# real_node_cni: a bridge with host-local IPAM; its data lives under the state dir.
real_node_cni() {
  mkdir -p "$CLUSTER_STATE/cni/net.d"
  cat >"$CLUSTER_STATE/cni/net.d/10-zen-flow.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$REAL_NODE_NAME",
  "plugins": [{
    "type": "bridge", "bridge": "$REAL_NODE_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": "$CLUSTER_STATE/cni/ipam",
             "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
EOF
}

# real_node_containerd: containerd with its own root, state, socket, runc root and opt dir.
real_node_containerd() {
  local dir=$REAL_NODE_DIR/containerd
  mkdir -p "$dir"
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0
[grpc]
  address = "$CONTAINERD_SOCKET"
[ttrpc]
  address = "$CONTAINERD_SOCKET.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root here lacks CAP_SYS_RESOURCE: never set a score below containerd's own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER_STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$dir/runc"
        SystemdCgroup = false
EOF
  start containerd --config "$dir/config.toml"
  wait_for containerd "containerd serving" real_node_containerd_ready
}

# real_node_containerd_ready: containerd answers on its socket.
real_node_containerd_ready() { node_ctr version >/dev/null 2>&1; }

# pause_image: the sandbox image's tarball, built once per cache from the pause.c of the
# Kubernetes sources the control plane is built from (static, -Os, as upstream's Makefile).
pause_image() {
  local tarball=$cluster_cache/images/pause-${PAUSE_IMAGE##*:}.tar src work
  if [ ! -s "$tarball" ]; then
    src=$(GOWORK=off GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
      sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
    work=$(mktemp -d "${TMPDIR:-/tmp}/zen-flow-pause.XXXXXX")
    mkdir "$work/rootfs"
    gcc -Os -Wall -Werror -static -DVERSION="v${PAUSE_IMAGE##*:}-zen-flow" \
      -o "$work/rootfs/pause" "$src/build/pause/linux/pause.c" 2>>"$logs/pause-image.log"
    strip "$work/rootfs/pause"
    oci_image "$tarball" "$PAUSE_IMAGE" "$work/rootfs" --config.entrypoint /pause \
      --config.user 65535:65535 2>>"$logs/pause-image.log"
    rm -rf "$work"
  fi
  echo "$tarball"
}

# real_node_kubelet: a kubelet registering node zen-flow-real, tainted and labelled, serving its
# API on $NODE_IP:$KUBELET_PORT with webhook authentication and authorization.
real_node_kubelet() {
  local dir=$REAL_NODE_DIR/kubelet
  mkdir -p "$dir" "$real_node_pod_logs"
  cat >"$CLUSTER_STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
# cgroups v1 (hybrid) and no systemd on this machine kind.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
protectKernelDefaults: false
# root lacks CAP_SYS_RESOURCE: the kubelet must not lower its own OOM score.
oomScoreAdj: 0
registerWithTaints:
- {key: $REAL_NODE_TAINT_KEY, value: "true", effect: NoSchedule}
clusterDomain: cluster.local
podLogsDir: $real_node_pod_logs
# The host's disk is shared with builds (target dirs of many GB): the default thresholds (imagefs
# under 15 % free) put the node under disk pressure, which taints it and stops every pod. Evict
# only when the disk is really full.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
  imagefs.inodesFree: 1%
# Imported images cannot be pulled again: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
  start kubelet --config "$CLUSTER_STATE/kubelet.yaml" --kubeconfig "$CLUSTER_STATE/kubelet.kubeconfig" \
    --hostname-override "$REAL_NODE_NAME" --node-ip "$NODE_IP" --node-labels type=real \
    --root-dir "$dir" --cert-dir "$dir/pki"
  wait_for kubelet "kubelet healthy" curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
  wait_for kubelet "node $REAL_NODE_NAME Ready" real_node_ready
  # kube-apiserver -> kubelet with kube-apiserver's client certificate and the kubelet's webhook
  # authorization: the path of kubectl logs and exec.
  wait_for kubelet "kubelet API through kube-apiserver" real_node_kubelet_api
}

# real_node_kubelet_api: kube-apiserver reaches the kubelet's API and is authorized there.
real_node_kubelet_api() {
  kubectl get --raw "/api/v1/nodes/$REAL_NODE_NAME/proxy/healthz" --request-timeout 5s >/dev/null 2>&1
}

# real_node_ready: node zen-flow-real reports Ready.
real_node_ready() {
  [ "$(kubectl get node "$REAL_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# real_node_kube_proxy: kube-proxy in iptables mode; it leaves conntrack sysctls and route_localnet alone.
real_node_kube_proxy() {
  cat >"$CLUSTER_STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $CLUSTER_STATE/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $REAL_NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy --config "$CLUSTER_STATE/kube-proxy.yaml"
  wait_for kube-proxy "kube-proxy healthy" curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
  # Smoke: the `kubernetes` Service from the host, through kube-proxy's rules to the advertised address.
  wait_for kube-proxy "kubernetes Service (10.96.0.1) through kube-proxy" \
    curl -sf -o /dev/null --max-time 2 --cacert "$pki/ca.crt" https://10.96.0.1/readyz
}

# real_node_up: everything above, in order, once the control plane answers.
real_node_up() {
  real_node_save_host
  real_node_sysctls_up
  # kube-apiserver's kubelet client may read kubelet APIs (logs, exec, metrics), nothing else.
  kubectl create clusterrolebinding zen-flow:kube-apiserver-kubelet-client \
    --clusterrole system:kubelet-api-admin --user kube-apiserver-kubelet-client >/dev/null
  real_node_cni
  real_node_containerd
  import_image "$(pause_image)"
  log "pause image $PAUSE_IMAGE imported ($(( $(date +%s) - started ))s)"
  real_node_kubelet
  real_node_kube_proxy
}

# --- down ---

# real_node_down: stops the real node and puts the host back as real_node_save_host found it.
# Host-wide cleanup only when this state dir owns the host's real node. Each step is best effort:
# one that fails is reported and the others still run (and down.sh still stops the control plane).
real_node_down() {
  local step
  stop kube-proxy
  stop kubelet
  for step in real_node_kill_containers "stop containerd" real_node_kill_shims real_node_kill_cgroups \
    real_node_unmount; do
    $step || log "warning: $step failed"
  done
  # The sockets' folder when paths.sh put it in /run (a long state dir), once nothing is
  # mounted there.
  case $REAL_NODE_DIR in
    /run/zen-flow-*) rm -rf --one-file-system "$REAL_NODE_DIR" ;;
  esac
  real_node_owned || return 0
  for step in real_node_network_down real_node_iptables_down real_node_cgroups_down \
    real_node_host_dirs_down real_node_sysctls_down; do
    $step || log "warning: $step failed"
  done
  rm -f "$real_node_owner_file"
}

# real_node_kill_containers: kills every task of our containerd while it still runs (the kubelet
# is stopped, so nothing restarts them); its CRI plugin deletes the exited tasks, and their shims
# exit with them. Tasks still there after 5 s are deleted by force.
real_node_kill_containers() {
  pid_of containerd >/dev/null || return 0
  local id i
  for id in $(node_ctr tasks ls -q 2>/dev/null); do
    node_ctr tasks kill --all --signal SIGKILL "$id" >/dev/null 2>&1 || true
  done
  for i in $(seq 25); do
    [ -z "$(node_ctr tasks ls -q 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  for id in $(node_ctr tasks ls -q 2>/dev/null); do node_ctr tasks delete --force "$id" >/dev/null 2>&1 || true; done
}

# real_node_kill_shims: SIGKILL to the shims our containerd started that are still there
# (recognised by our socket in their command line; other containerds' shims are left alone).
real_node_kill_shims() {
  local pid cmdline
  for pid in $(pgrep -x containerd-shim-runc-v2 2>/dev/null || true); do
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    if grep -qF -- "-address $CONTAINERD_SOCKET " <<<"$cmdline"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

# real_node_kill_cgroups: SIGKILL to any process left in the kubelet's pod cgroups.
real_node_kill_cgroups() {
  local procs i
  for i in 1 2 3 4 5; do
    procs=$(find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u) || true
    [ -n "$procs" ] || return 0
    # shellcheck disable=SC2086
    kill -KILL $procs 2>/dev/null || true
    sleep 0.2
  done
}

# real_node_unmount: unmounts everything under the state dir, deepest first (the kubelet's
# root-dir bind mount, pod volumes, container root filesystems, network namespaces, shm).
real_node_unmount() {
  local mnt m i
  for i in 1 2 3; do
    # Field 5 of mountinfo is the mount point (octal escapes for spaces; ours have none).
    mnt=$(awk -v p="$CLUSTER_STATE/" -v q="$REAL_NODE_DIR/" \
      'index($5, p) == 1 || $5 == substr(p, 1, length(p) - 1) || index($5, q) == 1 || $5 == substr(q, 1, length(q) - 1) {print $5}' \
      /proc/self/mountinfo | sort -r)
    [ -n "$mnt" ] || return 0
    for m in $mnt; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
  log "warning: still mounted under $CLUSTER_STATE: $mnt"
}

# real_node_network_down: the bridge (the veths went with their network namespaces; any left are
# deleted with it) and libcni's cache entries (in /var/lib/cni whatever the config says) of our
# sandboxes.
real_node_network_down() {
  local veth id
  if ip link show "$REAL_NODE_BRIDGE" >/dev/null 2>&1; then
    for veth in $(ip -o link show master "$REAL_NODE_BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link del "$veth" 2>/dev/null || true
    done
    ip link del "$REAL_NODE_BRIDGE" || true
  fi
  for id in $(ls "$REAL_NODE_DIR/containerd/state/io.containerd.grpc.v1.cri/sandboxes" 2>/dev/null); do
    rm -f /var/lib/cni/results/"$REAL_NODE_NAME-$id"-* /var/lib/cni/results/"cni-loopback-$id"-*
  done
}

# remove_chains CMD: in every table of CMD (iptables or ip6tables), deletes the rules jumping to
# KUBE-* or CNI-* chains, then those chains.
remove_chains() {
  local cmd=$1 table rule chain chains
  command -v "$cmd" >/dev/null || return 0
  for table in $("$cmd-save" 2>/dev/null | sed -n 's/^\*//p'); do
    { "$cmd-save" -t "$table" | grep -E -- '^-A .* -j (KUBE|CNI)-' | grep -vE '^-A (KUBE|CNI)-' || true; } |
      while read -r rule; do
        # The saved rule's quoting (comments) is shell quoting.
        eval "\"\$cmd\" -w -t \"\$table\" -D ${rule#-A }" || true
      done
    chains=$("$cmd-save" -t "$table" | sed -nE 's/^:((KUBE|CNI)-[^ ]*) .*/\1/p')
    for chain in $chains; do "$cmd" -w -t "$table" -F "$chain" || true; done
    for chain in $chains; do "$cmd" -w -t "$table" -X "$chain" || true; done
  done
}

# real_node_iptables_down: kube-proxy's own cleanup, then whatever KUBE-*/CNI-* is left (the
# kubelet's canary chains, CNI masquerade chains of pods never torn down), then the nft tables
# iptables-nft created for them if they are empty now and were not there before.
real_node_iptables_down() {
  local out=/dev/null
  [ -d "$CLUSTER_STATE/logs" ] && out=$CLUSTER_STATE/logs/kube-proxy-cleanup.log
  "$CLUSTER_BIN/kube-proxy" --cleanup >>"$out" 2>&1 || true
  remove_chains iptables
  remove_chains ip6tables
  command -v nft >/dev/null || return 0
  local family name cmd rules
  nft list tables 2>/dev/null | while read -r _ family name; do
    grep -qxF "table $family $name" "$real_node_host/nft-tables" 2>/dev/null && continue
    case $family in ip) cmd=iptables-save ;; ip6) cmd=ip6tables-save ;; *) continue ;; esac
    # The rules are read whole before matching: `save | grep -q` under pipefail reads as "no
    # rules" whenever grep stops early and save gets SIGPIPE, and a table with rules would go.
    rules=$("$cmd" -t "$name" 2>/dev/null) || rules=
    if [ "$name" = kube-proxy ] || ! grep -q '^-A ' <<<"$rules"; then
      nft delete table "$family" "$name" 2>/dev/null || true
    fi
  done
}

# real_node_cgroups_down: removes the kubepods (kubelet) and k8s.io (containerd) cgroup trees in
# every hierarchy, unless they were there before.
real_node_cgroups_down() {
  local dir
  for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io; do
    [ -d "$dir" ] || continue
    grep -qxF "$dir" "$real_node_host/cgroups" 2>/dev/null && continue
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || log "warning: could not remove cgroup $dir"
  done
}

# real_node_host_dirs_down: what the kubelet left in host dirs, and those dirs if we made them.
real_node_host_dirs_down() {
  local dir link
  # The kubelet's device manager listens in /var/lib/kubelet whatever its --root-dir.
  [ -S /var/lib/kubelet/device-plugins/kubelet.sock ] && ! pid_of kubelet >/dev/null &&
    rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  for link in /var/log/containers/*.log; do
    [ -L "$link" ] && case $(readlink "$link") in "$real_node_pod_logs"/*) rm -f "$link" ;; esac
  done
  for dir in "${real_node_host_dirs[@]}"; do
    [ -d "$dir" ] || continue
    grep -qxF "$dir" "$real_node_host/dirs" 2>/dev/null && continue
    find "$dir" -depth -type d -empty -delete 2>/dev/null || log "warning: $dir is not empty; left in place"
  done
}

# real_node_sysctls_down: the kernel settings as they were before up.sh.
real_node_sysctls_down() {
  local line
  [ -f "$real_node_host/sysctl" ] || return 0
  while read -r line; do sysctl -qw "$line" || log "warning: could not restore $line"; done <"$real_node_host/sysctl"
}
