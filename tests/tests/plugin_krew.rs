//! Krew installs `kubectl jobflow` from a locally built archive (`deploy/krew/install-test.sh`:
//! Krew built from its Go module, a temporary `KREW_ROOT`), and kubectl's plugin discovery
//! then runs it.

use std::process::Command;

use anyhow::Context as _;
use jobflow_tests::plugin::plugin_binary;
use jobflow_tests::workspace_root;

#[test]
fn krew_installs_the_plugin_from_the_local_archive() -> anyhow::Result<()> {
    let binary = plugin_binary();
    anyhow::ensure!(
        binary.exists(),
        "{} does not exist; build it with `cargo build --workspace --bins`",
        binary.display()
    );
    let script = workspace_root().join("deploy/krew/install-test.sh");
    // The already built binary: a nested `cargo build` would wait for this test's own lock.
    let output = Command::new("bash")
        .arg(&script)
        .env("BINARY", &binary)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(
        output.status.success(),
        "{} failed ({})\n--- stdout\n{stdout}--- stderr\n{stderr}",
        script.display(),
        output.status
    );
    let expected = format!("plugin: kubectl-jobflow {}", env!("CARGO_PKG_VERSION"));
    anyhow::ensure!(
        stdout.lines().any(|line| line == expected),
        "`kubectl jobflow version --client` through Krew did not print {expected:?}:\n{stdout}"
    );
    Ok(())
}
