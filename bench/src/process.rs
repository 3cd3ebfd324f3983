//! The agent under load: a `jobflow-agent` binary (any build) started as a child process.
//!
//! It starts the binary it is given (a measurement wants the release build) with the flags of
//! [`jobflow_tests::agent::AgentProcess`] (one namespace, leader election off, JSON logs to a
//! file, the admin port on a free loopback port, the admission webhook off unless an extra
//! argument sets `--webhook-addr`), logging to `/tmp/jobflow-agent-<namespace>.log` as
//! docs/load.md says.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

use jobflow_tests::agent::{
    LOG_TAIL_LINES, STOP_TIMEOUT, Sample, free_port, http_get, log_tail, parse_metrics,
    remove_jobflow_env,
};

/// How long the agent may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running agent; killed when dropped.
pub struct Agent {
    child: Child,
    admin: SocketAddr,
    log_path: PathBuf,
}

impl Agent {
    /// Starts `binary` watching `namespace` through `kubeconfig`, with `extra` arguments last,
    /// and waits until `/readyz` answers 200.
    pub async fn start(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let admin = free_port().context("finding a free port for the agent's admin address")?;
        let log_path = std::env::temp_dir().join(format!("jobflow-agent-{namespace}.log"));
        let log = File::create(&log_path)
            .with_context(|| format!("creating the agent log {}", log_path.display()))?;
        let log_err = log.try_clone().context("opening the agent log twice")?;
        let mut command = Command::new(binary);
        command
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", namespace, "--leader-election=false"])
            .args(["--admin-addr", &admin.to_string()])
            .args(["--log-format", "json", "--log-level", "info"]);
        // The admission webhook is off unless asked for: shards and other engineers' agents
        // would fight over its port, and the load runs measure the controller.
        if !extra.iter().any(|arg| arg.starts_with("--webhook-addr")) {
            command.arg("--webhook-addr=");
        }
        command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // Only our flags: no JOBFLOW_* setting may leak in from this environment.
        remove_jobflow_env(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut agent = Self {
            child,
            admin,
            log_path,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = agent.child.try_wait()? {
                anyhow::bail!(
                    "the agent exited ({status}) before it was ready; its log {}:\n{}",
                    agent.log_path.display(),
                    agent.log_tail()
                );
            }
            if matches!(agent.get("/readyz").await, Ok((200, _))) {
                return Ok(agent);
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the agent was not ready within {READY_TIMEOUT:?}; its log {}:\n{}",
                    agent.log_path.display(),
                    agent.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log file (JSON lines).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path, LOG_TAIL_LINES)
    }

    /// Its `/metrics`, parsed.
    pub async fn metrics(&self) -> anyhow::Result<Vec<Sample>> {
        let (status, body) = self.get("/metrics").await?;
        anyhow::ensure!(status == 200, "GET /metrics answered {status}: {body}");
        parse_metrics(&body)
    }

    /// SIGTERM, then waits for it to exit (SIGKILL after [`STOP_TIMEOUT`]).
    pub async fn stop(mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("running kill -TERM on the agent")?;
        anyhow::ensure!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                anyhow::bail!("the agent did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A minimal HTTP/1.1 GET on the admin port: status and body.
    async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(self.admin, path).await
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
