//! Reading flow manifests: files or stdin (`-`), each with one or more YAML documents.

use std::io::Read;
use std::path::Path;

use jobflow::api::JobFlow;
use serde::Deserialize;

use crate::error::Error;

/// One YAML document of a file, parsed or not.
pub struct Document {
    /// Its position in the file, from 1.
    pub index: usize,
    /// What the document holds.
    pub content: Content,
}

/// What a document holds.
pub enum Content {
    /// A JobFlow.
    Flow(Box<JobFlow>),
    /// Another kind of object (a file may hold a flow's ConfigMaps too): `Kind name`.
    Other(String),
    /// Not a well-formed JobFlow: why, with the field path when serde knows it.
    Invalid(String),
}

/// Reads `path` (`-` is stdin) as text.
pub fn read(path: &Path, stdin: &mut dyn Read) -> Result<String, Error> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        stdin.read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|mut file| file.read_to_string(&mut text))
    };
    read.map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text)
}

/// Every non-empty document of `text`, each parsed as a JobFlow.
pub fn documents(text: &str) -> Vec<Document> {
    let mut documents = Vec::new();
    for (offset, deserializer) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let index = offset + 1;
        let value = match serde_json::Value::deserialize(deserializer) {
            Ok(serde_json::Value::Null) => continue,
            Ok(value) => value,
            Err(error) => {
                documents.push(Document {
                    index,
                    content: Content::Invalid(format!("not YAML: {error}")),
                });
                // The parser cannot resynchronise after a syntax error.
                break;
            }
        };
        documents.push(Document {
            index,
            content: to_flow(value),
        });
    }
    documents
}

fn to_flow(value: serde_json::Value) -> Content {
    let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str);
    let kind = text("kind");
    let api_version = text("apiVersion");
    let expected = format!("{}/v1alpha1", jobflow::api::GROUP);
    if let (Some(kind), Some(_)) = (kind, api_version)
        && kind != "JobFlow"
    {
        let name = value
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("<no name>");
        return Content::Other(format!("{kind} {name}"));
    }
    if kind != Some("JobFlow") || api_version != Some(expected.as_str()) {
        return Content::Invalid(format!(
            "not a JobFlow: kind {}, apiVersion {} (expected kind JobFlow, apiVersion {expected})",
            kind.unwrap_or("<none>"),
            api_version.unwrap_or("<none>"),
        ));
    }
    match serde_path_to_error::deserialize(value) {
        Ok(flow) => Content::Flow(Box::new(flow)),
        Err(error) => {
            let path = error.path().to_string();
            Content::Invalid(format!("{path}: {}", error.into_inner()))
        }
    }
}

/// Exactly one flow from `path`, for commands that draw or act on one.
pub fn one_flow(path: &Path, stdin: &mut dyn Read) -> Result<JobFlow, Error> {
    let text = read(path, stdin)?;
    let mut documents = documents(&text);
    let parse_error = |message: String| Error::ParseFile {
        path: path.to_path_buf(),
        message,
    };
    let mut flows = Vec::new();
    for document in documents.drain(..) {
        match document.content {
            Content::Flow(flow) => flows.push(flow),
            Content::Other(_) => {}
            Content::Invalid(message) => {
                return Err(parse_error(format!(
                    "document {}: {message}",
                    document.index
                )));
            }
        }
    }
    match (flows.pop(), flows.len()) {
        (Some(flow), 0) => Ok(*flow),
        (None, _) => Err(parse_error("holds no JobFlow".to_owned())),
        (Some(_), more) => Err(parse_error(format!(
            "holds {} JobFlows; this command takes one",
            more + 1
        ))),
    }
}
