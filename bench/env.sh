# Settings shared by the bench scripts (sourced, not run): a control plane of the benchmark's own
# (state dir and ports apart from the default one and from other engineers' test clusters, no
# real node), with the audit log on and kube-controller-manager's client limits raised.
# Every variable can be overridden from the environment.
export ZEN_FLOW_CLUSTER_STATE=${ZEN_FLOW_CLUSTER_STATE:-/tmp/zf-bench}
export ZEN_FLOW_REAL_NODE=0
export ZEN_FLOW_ETCD_PORT=${ZEN_FLOW_ETCD_PORT:-24790}
export ZEN_FLOW_ETCD_PEER_PORT=${ZEN_FLOW_ETCD_PEER_PORT:-24800}
export ZEN_FLOW_APISERVER_PORT=${ZEN_FLOW_APISERVER_PORT:-8443}
export ZEN_FLOW_KCM_PORT=${ZEN_FLOW_KCM_PORT:-12357}
export ZEN_FLOW_SCHEDULER_PORT=${ZEN_FLOW_SCHEDULER_PORT:-12359}
export ZEN_FLOW_AUDIT=1
# Production clusters raise these (the defaults, 20/30 and 5 Job syncs, make the Job controller
# set the wall time of any Job-heavy run; Argo creates pods itself and would not pay it).
export ZEN_FLOW_KCM_QPS=${ZEN_FLOW_KCM_QPS:-200}
export ZEN_FLOW_KCM_BURST=${ZEN_FLOW_KCM_BURST:-300}
export ZEN_FLOW_KCM_JOB_SYNCS=${ZEN_FLOW_KCM_JOB_SYNCS:-20}
# Argo's client limits: its defaults, and "equal": zen-flow's agent (kube-rs) has no client-side
# rate limiter, so equal means Argo's limiter raised until it never binds.
export ARGO_DEFAULT_QPS=20 ARGO_DEFAULT_BURST=30
export ARGO_EQUAL_QPS=${ARGO_EQUAL_QPS:-1000} ARGO_EQUAL_BURST=${ARGO_EQUAL_BURST:-2000}
# Argo's metrics port (its health port, 6060, is fixed: one Argo controller per host at a time).
export ARGO_METRICS_PORT=${ARGO_METRICS_PORT:-19090}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
KUBECTL=$(source "$REPO_DIR/tests/cluster/versions.env" && source "$REPO_DIR/tests/cluster/paths.sh" && echo "$CLUSTER_BIN/kubectl")
export BENCH_DIR REPO_DIR KUBECTL
