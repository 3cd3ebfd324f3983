//! A running agent: [`AgentProcess`], its signals, its admin port and its log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

use super::{
    AgentBuilder, LOG_TAIL_LINES, STOP_TIMEOUT, http_get, log_tail, parse_metrics, sum_matching,
};

/// A running `jobflow-agent`; killed (SIGKILL) when dropped.
///
/// Every method takes `&self`, so tests can share it (e.g. as the `Arc` [`run_with_agent`](super::run_with_agent)
/// hands out).
#[derive(Debug)]
pub struct AgentProcess {
    pub(super) child: Mutex<Child>,
    pub(super) admin: SocketAddr,
    pub(super) log_path: PathBuf,
    pub(super) args: Vec<String>,
}

impl AgentProcess {
    /// Starts an agent watching `namespace` with leader election off, and waits until it is
    /// ready. See [`AgentBuilder`] for more settings.
    pub async fn start(namespace: &str) -> anyhow::Result<Self> {
        AgentBuilder::new(namespace).start().await
    }

    /// A builder for an agent watching `namespace`.
    pub fn builder(namespace: &str) -> AgentBuilder {
        AgentBuilder::new(namespace)
    }

    /// The agent's OS process id.
    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// The address of its admin port (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The file holding its stdout and stderr (JSON log lines); kept after the process ends.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The command-line arguments it was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Its exit status if it has exited.
    pub fn exit_status(&self) -> anyhow::Result<Option<ExitStatus>> {
        self.child()
            .try_wait()
            .context("checking whether the agent exited")
    }

    /// Fails, with the log's tail, if the agent is no longer running.
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        match self.exit_status()? {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "the agent exited ({status}); last lines of its log {}:\n{}",
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            ),
        }
    }

    /// `GET path` on the admin port: the status code and the body.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(self.admin, path).await
    }

    /// The `/metrics` page (Prometheus text format).
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        let (status, body) = self.get("/metrics").await?;
        if status != 200 {
            anyhow::bail!("GET /metrics answered {status}: {body}");
        }
        Ok(body)
    }

    /// The value of metric `name` (exact series name, e.g. `zen_flow_api_requests_total` or
    /// `zen_flow_step_duration_seconds_count`) summed over every series whose labels include all
    /// of `labels`; `None` when no series matches. Counters not yet incremented have no series.
    pub async fn metric_value(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<Option<f64>> {
        let text = self.metrics_text().await?;
        let samples = parse_metrics(&text)?;
        Ok(sum_matching(&samples, name, labels))
    }

    /// The last `lines` lines of the agent's log (or why it could not be read).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// Prints the last `lines` lines of the agent's log to stderr, e.g. in a test's error path.
    pub fn dump_log_tail(&self, lines: usize) {
        eprintln!(
            "--- last {lines} lines of the agent log {}\n{}",
            self.log_path.display(),
            self.log_tail(lines)
        );
    }

    /// Kills the agent with SIGKILL (no clean shutdown, the Lease is not released) and reaps it.
    pub fn kill_9(&self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child();
        if let Some(status) = child
            .try_wait()
            .context("checking whether the agent exited")?
        {
            return Ok(status);
        }
        child.kill().context("sending SIGKILL to the agent")?;
        child.wait().context("waiting for the killed agent")
    }

    /// Sends SIGTERM and waits for the agent to exit (a clean shutdown releases the Lease);
    /// after [`STOP_TIMEOUT`] it is killed and this fails.
    pub async fn stop(&self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exit_status()? {
            return Ok(status);
        }
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("running `kill -TERM` on the agent")?;
        if !sent.success() {
            anyhow::bail!("`kill -TERM {pid}` failed: {sent}");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                anyhow::bail!(
                    "the agent did not exit within {STOP_TIMEOUT:?} of SIGTERM and was killed; \
                     last lines of its log {}:\n{}",
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Freezes the agent with SIGSTOP (as a stalled VM or a long pause would): it runs nothing,
    /// renews nothing and answers nothing until [`resume`](Self::resume).
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Lets a [`pause`](Self::pause)d agent run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    /// Sends `SIG<name>` with `kill`, failing if the agent exited already.
    fn signal(&self, name: &str) -> anyhow::Result<()> {
        self.ensure_running()?;
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .with_context(|| format!("running `kill -{name}` on the agent"))?;
        anyhow::ensure!(sent.success(), "`kill -{name} {pid}` failed: {sent}");
        Ok(())
    }

    /// Polls `path` until it answers 200, failing early if the process exits.
    pub(super) async fn wait_for_status(
        &self,
        path: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            if let Some(status) = self.exit_status()? {
                anyhow::bail!("the agent exited ({status}) before {path} answered 200");
            }
            match self.get(path).await {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => last = format!("{status}: {}", body.trim_end()),
                Err(error) => last = format!("{error:#}"),
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "timed out after {timeout:?} waiting for {path} to answer 200 (last: {last})"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills and reaps the process, ignoring errors (it may be gone already).
    pub(super) fn kill(&self) {
        let mut child = self.child();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// The child process (a poisoned lock is still usable: a `Child` has no invariant to break).
    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
