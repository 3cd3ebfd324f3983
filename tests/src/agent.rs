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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::{TestNamespace, install_crd, kubeconfig_path, run_in_namespace, workspace_root};

/// How long the agent may take to sync its watch caches and answer `/readyz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`AgentProcess::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How many lines of the agent's log [`run_with_agent`] prints when a test fails.
pub const LOG_TAIL_LINES: usize = 200;

/// When set to `1`, [`run_with_agent`] keeps the agent's log of a passed test (it always keeps
/// the log of a failed one, and prints its tail).
pub const KEEP_AGENT_LOGS_ENV: &str = "ZEN_FLOW_KEEP_AGENT_LOGS";

/// How long one admin HTTP request may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Tells apart the log files of the agents one test process starts.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// The path of the `jobflow-agent` binary the tests run: `$CARGO_TARGET_DIR/debug/jobflow-agent`
/// (a relative `CARGO_TARGET_DIR` is taken from the workspace root), else
/// `<workspace>/target/debug/jobflow-agent`.
pub fn agent_binary() -> PathBuf {
    debug_binary("jobflow-agent")
}

/// The path of the workspace's debug binary `name`: `$CARGO_TARGET_DIR/debug/<name>` (a
/// relative `CARGO_TARGET_DIR` is taken from the workspace root), else
/// `<workspace>/target/debug/<name>`.
pub fn debug_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(
            || workspace_root().join("target"),
            |dir| workspace_root().join(PathBuf::from(dir)),
        );
    target.join("debug").join(name)
}

/// Leader election settings for an agent started by [`AgentBuilder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease's name (`--lease-name`).
    pub lease_name: String,
    /// The Lease's namespace (`--lease-namespace`).
    pub lease_namespace: String,
    /// This agent's identity in the Lease (`--identity`).
    pub identity: String,
}

/// Builds the command line of an [`AgentProcess`]; [`AgentProcess::start`] is the common case.
#[derive(Clone, Debug)]
#[must_use]
pub struct AgentBuilder {
    namespaces: Vec<String>,
    kubeconfig: Option<PathBuf>,
    leader_election: Option<LeaderElection>,
    log_level: String,
    extra_args: Vec<String>,
    env: BTreeMap<String, String>,
    wait_ready: bool,
    ready_timeout: Duration,
    binary: Option<PathBuf>,
}

impl AgentBuilder {
    /// An agent watching `namespace` only, leader election off, log level `info`, that
    /// [`start`](Self::start) waits for until `/readyz` answers 200.
    pub fn new(namespace: &str) -> Self {
        Self {
            namespaces: vec![namespace.to_owned()],
            kubeconfig: None,
            leader_election: None,
            log_level: "info".to_owned(),
            extra_args: Vec::new(),
            env: BTreeMap::new(),
            wait_ready: true,
            ready_timeout: READY_TIMEOUT,
            binary: None,
        }
    }

    /// Runs this agent binary instead of [`agent_binary`] (e.g. a release build for a benchmark).
    pub fn binary(mut self, path: &Path) -> Self {
        self.binary = Some(path.to_owned());
        self
    }

    /// Also watches `namespace` (one more `--namespace`).
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespaces.push(namespace.to_owned());
        self
    }

    /// Connects with the kubeconfig at `path` instead of the tests' admin one (e.g. a
    /// ServiceAccount token, to run under the agent's own RBAC).
    pub fn kubeconfig(mut self, path: &Path) -> Self {
        self.kubeconfig = Some(path.to_owned());
        self
    }

    /// Runs the controllers only while holding the Lease `lease_name` in `lease_namespace`,
    /// as `identity` (`--leader-election=true --lease-name --lease-namespace --identity`).
    pub fn leader_election(
        mut self,
        lease_name: &str,
        lease_namespace: &str,
        identity: &str,
    ) -> Self {
        self.leader_election = Some(LeaderElection {
            lease_name: lease_name.to_owned(),
            lease_namespace: lease_namespace.to_owned(),
            identity: identity.to_owned(),
        });
        self
    }

    /// The `--log-level` filter (`tracing` `EnvFilter` syntax), e.g. `"info,jobflow_agent=debug"`.
    pub fn log_level(mut self, filter: &str) -> Self {
        filter.clone_into(&mut self.log_level);
        self
    }

    /// One more command-line argument, passed after the harness's own.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// More command-line arguments, passed after the harness's own.
    pub fn args_from(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.extra_args.extend(args);
        self
    }

    /// An environment variable of the agent process.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Whether [`start`](Self::start) waits for `/readyz` to answer 200 (default true). Without
    /// it, `start` only waits for the admin port to answer at all (`/healthz`).
    pub fn wait_ready(mut self, wait: bool) -> Self {
        self.wait_ready = wait;
        self
    }

    /// How long [`start`](Self::start) waits for the agent (default [`READY_TIMEOUT`]).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The arguments the agent is started with, admin address aside.
    fn args(&self, admin: SocketAddr) -> Vec<String> {
        let mut args = vec![
            "--kubeconfig".to_owned(),
            self.kubeconfig
                .clone()
                .unwrap_or_else(kubeconfig_path)
                .display()
                .to_string(),
            "--admin-addr".to_owned(),
            admin.to_string(),
            "--log-format".to_owned(),
            "json".to_owned(),
            "--log-level".to_owned(),
            self.log_level.clone(),
        ];
        for namespace in &self.namespaces {
            args.push("--namespace".to_owned());
            args.push(namespace.clone());
        }
        match &self.leader_election {
            None => args.push("--leader-election=false".to_owned()),
            Some(election) => args.extend([
                "--leader-election=true".to_owned(),
                "--lease-name".to_owned(),
                election.lease_name.clone(),
                "--lease-namespace".to_owned(),
                election.lease_namespace.clone(),
                "--identity".to_owned(),
                election.identity.clone(),
            ]),
        }
        // The webhook is off unless a test asks for it: agents run side by side here, and one
        // serving on the default port (and writing certificates) would get in the others' way.
        if !self
            .extra_args
            .iter()
            .any(|arg| arg.starts_with("--webhook-addr"))
        {
            args.push("--webhook-addr=".to_owned());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Starts the agent and waits until it is ready (see [`wait_ready`](Self::wait_ready)).
    ///
    /// Fails, with the log's tail, when the binary is missing, the process exits, or it is not
    /// ready in time; the process is killed then.
    pub async fn start(self) -> anyhow::Result<AgentProcess> {
        let binary = self.binary.clone().unwrap_or_else(agent_binary);
        if !binary.exists() {
            anyhow::bail!(
                "the agent binary {} does not exist: build it first with `cargo build -p \
                 jobflow-agent` (or `cargo build --workspace --bins`)",
                binary.display()
            );
        }
        let admin = free_port().context("finding a free port for the agent's admin address")?;
        let serial = STARTED.fetch_add(1, Ordering::Relaxed);
        let log_path = std::env::temp_dir().join(format!(
            "jobflow-agent-{}-{}-{serial}.log",
            self.namespaces.first().map_or("all", String::as_str),
            std::process::id(),
        ));
        let log = File::create(&log_path)
            .with_context(|| format!("creating the agent log {}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .with_context(|| format!("opening the agent log {}", log_path.display()))?;
        let args = self.args(admin);
        let mut command = Command::new(&binary);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // Flags win over JOBFLOW_* variables, but an unset flag must not come from our env.
        remove_jobflow_env(&mut command);
        command.envs(&self.env);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let agent = AgentProcess {
            child: Mutex::new(child),
            admin,
            log_path,
            args,
        };
        let path = if self.wait_ready {
            "/readyz"
        } else {
            "/healthz"
        };
        if let Err(error) = agent.wait_for_status(path, self.ready_timeout).await {
            let tail = agent.log_tail(LOG_TAIL_LINES);
            agent.kill();
            return Err(error.context(format!(
                "starting the agent ({} {}); last lines of its log {}:\n{tail}",
                binary.display(),
                agent.args.join(" "),
                agent.log_path.display()
            )));
        }
        Ok(agent)
    }
}

/// A running `jobflow-agent`; killed (SIGKILL) when dropped.
///
/// Every method takes `&self`, so tests can share it (e.g. as the `Arc` [`run_with_agent`]
/// hands out).
#[derive(Debug)]
pub struct AgentProcess {
    child: Mutex<Child>,
    admin: SocketAddr,
    log_path: PathBuf,
    args: Vec<String>,
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
    async fn wait_for_status(&self, path: &str, timeout: Duration) -> anyhow::Result<()> {
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
    fn kill(&self) {
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

/// One sample of the Prometheus text format: series name, labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series name, e.g. `zen_flow_api_requests_total`.
    pub name: String,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Parses the Prometheus text exposition format (comments and blank lines skipped; a trailing
/// timestamp ignored).
pub fn parse_metrics(text: &str) -> anyhow::Result<Vec<Sample>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_sample(line).with_context(|| format!("parsing metric line {line:?}")))
        .collect()
}

/// The sum of the samples named `name` whose labels include every pair of `labels`.
pub fn sum_matching(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
        .map(|sample| sample.value)
        .reduce(|sum, value| sum + value)
}

fn parse_sample(line: &str) -> anyhow::Result<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .context("no value")?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let mut chars = after_brace.char_indices().peekable();
        let end = loop {
            // Skip separators, find `key="value"` or the closing brace.
            while chars
                .next_if(|(_, c)| *c == ',' || c.is_whitespace())
                .is_some()
            {}
            let Some(&(start, c)) = chars.peek() else {
                anyhow::bail!("unterminated label set");
            };
            if c == '}' {
                break start + 1;
            }
            let mut key = String::new();
            while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
                key.push(c);
            }
            anyhow::ensure!(chars.next().is_some(), "label {key} without a value");
            anyhow::ensure!(
                chars.next().map(|(_, c)| c) == Some('"'),
                "label {key} without a quoted value"
            );
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => anyhow::bail!("unterminated value of label {key}"),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => anyhow::bail!("unterminated value of label {key}"),
                    },
                    Some((_, c)) => value.push(c),
                }
            }
            labels.insert(key.trim().to_owned(), value);
        };
        rest = &after_brace[end..];
    }
    let value = rest
        .split_whitespace()
        .next()
        .context("no value after the series")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .with_context(|| format!("value {other:?} is not a number"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// Keeps every `JOBFLOW_*` variable of this process's environment from reaching `command`, so
/// that the agent it starts is configured by its flags alone.
pub fn remove_jobflow_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("JOBFLOW_") {
            command.env_remove(name);
        }
    }
}

/// A loopback address with a port nobody listened on a moment ago.
pub fn free_port() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

/// A minimal HTTP/1.1 GET of `path` on `addr` (`Connection: close`, at most [`HTTP_TIMEOUT`]):
/// the status code and the body. Enough for the agent's admin port (`/readyz`, `/metrics`);
/// fails on a chunked response rather than return it undecoded.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .with_context(|| format!("GET http://{addr}{path} took over {HTTP_TIMEOUT:?}"))?
        .with_context(|| format!("GET http://{addr}{path}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET http://{addr}{path}: no end of headers in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("GET http://{addr}{path}: no status in {head:?}"))?;
    anyhow::ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "GET http://{addr}{path}: chunked responses are not supported"
    );
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_series_with_and_without_labels() {
        let text = "# HELP x y\n# TYPE zen_flow_api_requests_total counter\n\
            zen_flow_api_requests_total{operation=\"patch_status\",resource=\"jobflows\"} 7\n\
            zen_flow_api_requests_total{operation=\"apply\",resource=\"jobs\"} 3\n\
            zen_flow_api_requests_total{operation=\"apply\",resource=\"configmaps\"} 2\n\
            zen_flow_workqueue_depth 0\n\
            weird{msg=\"a \\\"q\\\", b\\\\c\"} 1.5e3 1700000000\n\
            zen_flow_x_bucket{le=\"+Inf\"} +Inf\n";
        let samples = parse_metrics(text).unwrap();
        assert_eq!(samples.len(), 6);
        assert_eq!(
            sum_matching(
                &samples,
                "zen_flow_api_requests_total",
                &[("operation", "patch_status")]
            ),
            Some(7.0)
        );
        assert_eq!(
            sum_matching(
                &samples,
                "zen_flow_api_requests_total",
                &[("operation", "apply")]
            ),
            Some(5.0)
        );
        assert_eq!(
            sum_matching(&samples, "zen_flow_api_requests_total", &[]),
            Some(12.0)
        );
        assert_eq!(
            sum_matching(&samples, "zen_flow_workqueue_depth", &[]),
            Some(0.0)
        );
        assert_eq!(
            sum_matching(
                &samples,
                "zen_flow_api_requests_total",
                &[("operation", "delete")]
            ),
            None
        );
        assert_eq!(samples[4].labels["msg"], "a \"q\", b\\c");
        assert!((samples[4].value - 1500.0).abs() < f64::EPSILON);
        assert!(samples[5].value.is_infinite());
        assert!(parse_metrics("broken{a=\"1\" 2").is_err());
    }

    #[test]
    fn args_name_the_namespace_and_the_election() {
        let admin: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        let plain = AgentBuilder::new("ns1").args(admin);
        assert!(plain.contains(&"--leader-election=false".to_owned()));
        assert!(
            plain.contains(&"--webhook-addr=".to_owned()),
            "webhook off by default"
        );
        let serving = AgentBuilder::new("ns1")
            .arg("--webhook-addr=127.0.0.1:1")
            .args(admin);
        assert!(!serving.contains(&"--webhook-addr=".to_owned()));
        assert!(plain.windows(2).any(|w| w == ["--namespace", "ns1"]));
        assert!(
            plain
                .windows(2)
                .any(|w| w == ["--admin-addr", "127.0.0.1:1234"])
        );
        let elected = AgentBuilder::new("ns1")
            .namespace("ns2")
            .leader_election("lease", "ns1", "agent-a")
            .arg("--concurrency=1")
            .args(admin);
        assert!(elected.contains(&"--leader-election=true".to_owned()));
        assert!(elected.windows(2).any(|w| w == ["--namespace", "ns2"]));
        assert!(elected.windows(2).any(|w| w == ["--identity", "agent-a"]));
        assert_eq!(elected.last().unwrap(), "--concurrency=1");
    }
}
