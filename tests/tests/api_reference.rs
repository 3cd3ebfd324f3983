//! `kubectl explain` shows a field's description as `docs/api.md` gives it: both come from the
//! CRD schema, whose descriptions are the API types' doc comments. Needs the local control
//! plane (`tests/cluster/up.sh`) and its pinned kubectl; fails, never skips, without them.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use jobflow::api_doc::{API_DOC_PATH, collapse_whitespace};
use jobflow_tests::install::kubectl;
use jobflow_tests::{POLL, client, install_crd, workspace_root};

/// How long the API server may take to publish a new CRD's schema to `kubectl explain`.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// The field checked: the reference's path and `kubectl explain`'s for it.
const FIELD: &str = "spec.steps[].retryPolicy";
const EXPLAIN_FIELD: &str = "jobflow.spec.steps.retryPolicy";

/// The description `docs/api.md` gives the field at `path`: the paragraph under its heading.
fn reference_description(path: &str) -> anyhow::Result<String> {
    let file = workspace_root().join(API_DOC_PATH);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let heading = format!("### `{path}`\n\n");
    let start = text
        .find(&heading)
        .with_context(|| format!("{API_DOC_PATH} has no heading for {path}"))?
        + heading.len();
    let paragraph = text[start..].split("\n\n").next().unwrap_or_default();
    anyhow::ensure!(
        !paragraph.is_empty() && !paragraph.starts_with("- **Type:**"),
        "{API_DOC_PATH} gives {path} no description"
    );
    Ok(collapse_whitespace(paragraph))
}

#[tokio::test]
async fn kubectl_explain_shows_the_reference_description() -> anyhow::Result<()> {
    let want = reference_description(FIELD)?;
    install_crd(&client().await?).await?;
    let api_version = format!("--api-version={}/v1alpha1", jobflow::api::GROUP);
    let deadline = Instant::now() + PUBLISH_TIMEOUT;
    loop {
        let run = kubectl(&["explain", EXPLAIN_FIELD, &api_version]).await?;
        // kubectl wraps and indents the text: compare with whitespace collapsed.
        if run.code == 0 && collapse_whitespace(&run.stdout).contains(&want) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after {PUBLISH_TIMEOUT:?}, `kubectl explain {EXPLAIN_FIELD} {api_version}` does not \
             show the description {API_DOC_PATH} gives {FIELD}:\n  {want}\nexit {}\n--- stdout\n\
             {}--- stderr\n{}",
            run.code,
            run.stdout,
            run.stderr
        );
        tokio::time::sleep(POLL * 10).await;
    }
}
