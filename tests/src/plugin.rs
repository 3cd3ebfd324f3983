//! Runs the built `kubectl-jobflow` binary against the local control plane, as a user would.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::kubeconfig_path;

/// What one run of a command (the plugin, kubectl) printed and how it exited.
#[derive(Clone, Debug)]
pub struct CommandRun {
    /// The program's file name, for messages.
    pub program: String,
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CommandRun {
    /// The run of `program` that produced `output`.
    pub fn new(program: &std::path::Path, output: &std::process::Output) -> Self {
        Self {
            program: program.file_name().map_or_else(
                || program.display().to_string(),
                |name| name.to_string_lossy().into_owned(),
            ),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Fails with the whole transcript unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> anyhow::Result<Self> {
        anyhow::ensure!(
            self.code == code,
            "{} exited {} (wanted {code})\n--- stdout\n{}--- stderr\n{}",
            self.program,
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }
}

/// The path of the plugin binary: `<target>/debug/kubectl-jobflow` (build it with
/// `cargo build --workspace --bins`).
pub fn plugin_binary() -> PathBuf {
    crate::agent::debug_binary("kubectl-jobflow")
}

/// Starts `kubectl-jobflow` as [`kubectl_jobflow()`] does, with stdout piped, for commands that
/// run until stopped (`get --watch`); the process is killed when the handle is dropped.
pub fn spawn_kubectl_jobflow(
    namespace: &str,
    args: &[&str],
) -> anyhow::Result<tokio::process::Child> {
    let binary = plugin_binary();
    tokio::process::Command::new(&binary)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(["-n", namespace])
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// Runs `kubectl-jobflow --kubeconfig <the tests' kubeconfig> -n <namespace> args...`
/// without colour.
pub async fn kubectl_jobflow(namespace: &str, args: &[&str]) -> anyhow::Result<CommandRun> {
    let binary = plugin_binary();
    anyhow::ensure!(
        binary.exists(),
        "{} does not exist; build it with `cargo build --workspace --bins`",
        binary.display()
    );
    let output = tokio::process::Command::new(&binary)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(["-n", namespace])
        .args(args)
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    Ok(CommandRun::new(&binary, &output))
}
