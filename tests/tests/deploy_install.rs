//! `deploy/install.yaml` is what `deploy/render.sh` renders from the kustomize base, and every
//! RBAC rule of the base names the agent's code that needs it. No control plane needed (the
//! render uses the project's pinned kubectl, which `tests/cluster/build.sh` builds).

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::Context as _;
use jobflow_tests::workspace_root;

/// The base's RBAC sources, whose rules must each say which code needs them.
const RBAC_SOURCES: &[&str] = &["deploy/agent/rbac.yaml", "deploy/agent/webhook-rbac.yaml"];

#[test]
fn the_committed_install_is_rendered_from_the_base() -> anyhow::Result<()> {
    let script = workspace_root().join("deploy/render.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("--check")
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "`bash deploy/render.sh --check` failed ({}): deploy/install.yaml is not what the base \
         renders; run `bash deploy/render.sh` and commit it\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The `agent/src/...` paths named in `comment`.
fn code_paths(comment: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut rest = comment;
    while let Some(at) = rest.find("agent/src/") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "/_.-".contains(c)))
            .unwrap_or(tail.len());
        paths.insert(tail[..end].trim_end_matches('.').to_owned());
        rest = &tail[end..];
    }
    paths
}

#[test]
fn every_rbac_rule_names_the_code_that_needs_it() -> anyhow::Result<()> {
    let root = workspace_root();
    let mut rules = 0;
    for source in RBAC_SOURCES {
        let text = std::fs::read_to_string(root.join(source))
            .with_context(|| format!("reading {source}"))?;
        let mut comment = String::new();
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if let Some(text) = trimmed.strip_prefix('#') {
                comment.push_str(text);
                comment.push('\n');
                continue;
            }
            if trimmed.starts_with("- apiGroups:") {
                rules += 1;
                let paths = code_paths(&comment);
                anyhow::ensure!(
                    !paths.is_empty(),
                    "{source}:{}: the rule has no comment naming the agent's code that needs it \
                     (agent/src/<file>.rs)",
                    number + 1
                );
                for path in paths {
                    anyhow::ensure!(
                        root.join(&path).is_file(),
                        "{source}:{}: the rule's comment names {path}, which does not exist",
                        number + 1
                    );
                }
            }
            comment.clear();
        }
    }
    anyhow::ensure!(
        rules >= 10,
        "found only {rules} RBAC rules: did the layout change?"
    );
    Ok(())
}
