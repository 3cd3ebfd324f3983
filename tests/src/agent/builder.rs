//! The agent's command line: [`AgentBuilder`] (namespaces, leader election, flags, environment)
//! and where the binary under test is.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context as _;

use super::{AgentProcess, LOG_TAIL_LINES, READY_TIMEOUT, free_port};
use crate::{kubeconfig_path, workspace_root};

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

/// Keeps every `JOBFLOW_*` variable of this process's environment from reaching `command`, so
/// that the agent it starts is configured by its flags alone.
pub fn remove_jobflow_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("JOBFLOW_") {
            command.env_remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
