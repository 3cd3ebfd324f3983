//! The API reference `docs/api.md`, generated from the served CRDs' `openAPIV3Schema`: every
//! field path with its type, default, bounds and description (the Rust doc comment).

mod bounds;
mod field;

use std::fmt::Write as _;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::crd::{CRD_PATH, jobflow_crd};

pub use field::{Field, collapse_whitespace, fields_of};

/// Where the generated reference is committed, relative to the repository root.
pub const API_DOC_PATH: &str = "docs/api.md";

/// The command that regenerates [`API_DOC_PATH`].
pub const API_DOC_COMMAND: &str = "cargo run -p jobflow --bin crdgen -- --api-doc";

/// Every CRD zen-flow serves (those committed under `deploy/crds/`).
pub fn served_crds() -> Vec<CustomResourceDefinition> {
    vec![jobflow_crd()]
}

/// Errors rendering the reference.
#[derive(Debug, thiserror::Error)]
pub enum RenderApiDocError {
    /// A CRD could not be turned into JSON to walk its schema.
    #[error("serializing a CRD to JSON")]
    Serialize(#[from] serde_json::Error),
}

/// The reference for every served CRD, exactly as committed at [`API_DOC_PATH`].
pub fn render_api_doc() -> Result<String, RenderApiDocError> {
    let mut out = format!(
        "# API reference\n\n\
         Generated from the CRD schema (`{CRD_PATH}`) by `{API_DOC_COMMAND}`; do not edit.\n\
         Descriptions are the doc comments of the Rust types in `shared/src/api/`. Bounds come \
         from the schema, and from `jobflow::limits` where validation enforces more than the \
         schema states.\n"
    );
    for crd in served_crds() {
        let crd = serde_json::to_value(crd)?;
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let versions = crd["spec"]["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for version in versions {
            let name = version["name"].as_str().unwrap_or_default();
            let schema = &version["schema"]["openAPIV3Schema"];
            render_version(&mut out, kind, &format!("{group}/{name}"), schema);
        }
    }
    Ok(out)
}

/// Appends one served version's section: its description, then every field.
fn render_version(out: &mut String, kind: &str, api_version: &str, schema: &Value) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "\n## {kind} (`{api_version}`)\n");
    if let Some(description) = schema["description"].as_str() {
        let _ = writeln!(out, "{}", collapse_whitespace(description));
    }
    for field in fields_of(schema) {
        out.push_str(&field.to_markdown());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed reference must be what the CRD generates: run the regenerate command
    /// after changing the API.
    #[test]
    fn committed_api_doc_matches_the_crd() {
        crate::crd::tests::assert_committed(
            API_DOC_PATH,
            &render_api_doc().unwrap(),
            API_DOC_COMMAND,
        );
    }

    #[test]
    fn reference_shows_path_default_bounds_and_description() {
        let doc = render_api_doc().unwrap();
        let start = doc.find("### `spec.steps[].retryPolicy.limit`").unwrap();
        let section = &doc[start..doc[start + 1..].find("\n### ").unwrap() + start];
        assert!(
            section.contains("The most new attempts after the first."),
            "{section}"
        );
        assert!(section.contains("**Default:** `3`"), "{section}");
        assert!(section.contains("minimum 0"), "{section}");
        assert!(section.contains("MAX_STEP_RETRIES"), "{section}");
        assert!(doc.contains("### `metadata.name`"));
        assert!(doc.contains("at most 63 characters"));
    }
}
