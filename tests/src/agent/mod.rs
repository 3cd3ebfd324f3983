//! The real `jobflow-agent` binary as a child process, for end-to-end tests.
//!
//! [`AgentProcess::start`] runs `<target>/debug/jobflow-agent` against the test control plane,
//! watching one namespace, with leader election off, JSON logs to a file under the system temp
//! dir and the admin port on a free loopback port; it returns once `/readyz` answers 200.
//! [`AgentProcess::builder`] adds more namespaces, leader election (for two agents sharing one
//! Lease) or any other flag; the admission webhook is off (`--webhook-addr=`) unless a test
//! passes its own `--webhook-addr`. [`run_with_agent`] wraps [`run_in_namespace`]: CRD installed, one
//! agent started, and the agent's log tail printed when the test fails.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use jobflow_tests::agent::run_with_agent;
//! run_with_agent("my-agent-test", |ns, agent| async move {
//!     // ... create a JobFlow in `ns`, wait for its status ...
//!     let patches = agent.metric_value("zen_flow_api_requests_total", &[("operation", "patch_status")]).await?;
//!     Ok(())
//! })
//! .await
//! # }
//! ```
//!
//! - `builder.rs`: the command line ([`AgentBuilder`]) and where the binary is.
//! - `process.rs`: the running child ([`AgentProcess`]): signals, admin requests, its log.
//! - `prometheus.rs`: the Prometheus text format of `/metrics`.
//! - `http.rs`: a free loopback port and a minimal HTTP/1.1 GET.

mod builder;
mod http;
mod process;
mod prometheus;

use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;

use crate::{TestNamespace, install_crd, run_in_namespace};

pub use builder::{AgentBuilder, LeaderElection, agent_binary, debug_binary, remove_jobflow_env};
pub use http::{HTTP_TIMEOUT, free_port, http_get};
pub use process::AgentProcess;
pub use prometheus::{Sample, parse_metrics, sum_matching};

/// How long the agent may take to sync its watch caches and answer `/readyz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`AgentProcess::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How many lines of the agent's log [`run_with_agent`] prints when a test fails.
pub const LOG_TAIL_LINES: usize = 200;

/// When set to `1`, [`run_with_agent`] keeps the agent's log of a passed test (it always keeps
/// the log of a failed one, and prints its tail).
pub const KEEP_AGENT_LOGS_ENV: &str = "ZEN_FLOW_KEEP_AGENT_LOGS";

/// Runs `body` in a fresh namespace (see [`run_in_namespace`]) with the JobFlow CRD installed
/// and an agent ([`AgentProcess::start`]) watching that namespace. When the body fails or
/// panics, the last [`LOG_TAIL_LINES`] lines of the agent's log are printed to stderr (before
/// the namespace dump), and the log is kept; the log of a passed test is deleted unless
/// [`KEEP_AGENT_LOGS_ENV`]`=1`.
///
/// The agent runs until `body`'s future has finished (this function keeps its own reference),
/// then it is killed; so `|ns, _agent| async move { .. }` is fine even though `_agent` is dropped
/// as soon as the closure returns its future. Stop it earlier with [`AgentProcess::stop`] or
/// [`AgentProcess::kill_9`].
pub async fn run_with_agent<F, Fut>(test: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(TestNamespace, Arc<AgentProcess>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_in_namespace(test, |ns| async move {
        install_crd(&ns.client()).await?;
        let agent = Arc::new(AgentProcess::start(ns.name()).await?);
        let log_path = agent.log_path().to_owned();
        let outcome = AssertUnwindSafe(body(ns, Arc::clone(&agent)))
            .catch_unwind()
            .await;
        drop(agent);
        if matches!(outcome, Ok(Ok(()))) {
            if std::env::var(KEEP_AGENT_LOGS_ENV).is_ok_and(|value| value == "1") {
                eprintln!("agent log kept: {}", log_path.display());
            } else {
                // Passed: nobody will read it, and hundreds would pile up in the temp dir.
                let _ = std::fs::remove_file(&log_path);
            }
        } else {
            eprintln!(
                "--- last {LOG_TAIL_LINES} lines of the agent log {}\n{}",
                log_path.display(),
                log_tail(&log_path, LOG_TAIL_LINES)
            );
        }
        match outcome {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
    .await
}

/// The last `lines` lines of the file at `path` (or why it could not be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Err(error) => format!("(cannot read {}: {error})", path.display()),
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let mut out = String::new();
            for line in &all[all.len().saturating_sub(lines)..] {
                let _ = writeln!(out, "{line}");
            }
            out
        }
    }
}
