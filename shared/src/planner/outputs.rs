//! Output parameters of a succeeded step, read from its pod's termination message.
//!
//! The termination message is a JSON object; `valueFrom.jsonPath` selects into it
//! (`.result`, `$.stats.rows`, `{.items[0].id}`). Paths starting with `.status` select into
//! the Job instead, which keeps old manifests working.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::api::Parameter;
use crate::limits::MAX_OUTPUT_BYTES;

/// Why outputs could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadOutputsError {
    /// The succeeded pod's termination message has not been observed.
    #[error("the succeeded pod's termination message has not been observed")]
    MessageMissing,
    /// The termination message is not a JSON object.
    #[error("the termination message is not a JSON object: {0}")]
    MessageNotJson(String),
    /// A path selected nothing.
    #[error("output parameter {name:?}: jsonPath {path:?} selects nothing")]
    NothingSelected {
        /// The parameter.
        name: String,
        /// Its path.
        path: String,
    },
}

/// The first non-empty termination message of a succeeded pod's containers.
pub fn termination_message(pod: &Pod) -> Option<&str> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Succeeded") {
        return None;
    }
    status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.as_deref())
        .find(|m| !m.is_empty())
}

/// Reads `parameters` from `termination_message` (or the Job for `.status` paths).
pub fn read_outputs(
    parameters: &[Parameter],
    termination_message: Option<&str>,
    job: &Job,
) -> Result<BTreeMap<String, String>, ReadOutputsError> {
    let mut message: Option<Value> = None;
    let mut job_json: Option<Value> = None;
    let mut outputs = BTreeMap::new();
    for parameter in parameters {
        let Some(path) = parameter
            .value_from
            .as_ref()
            .and_then(|source| source.json_path.as_deref())
        else {
            if let Some(value) = &parameter.value {
                outputs.insert(parameter.name.clone(), value.clone());
            }
            continue;
        };
        let segments = parse_path(path);
        let root = if segments
            .first()
            .is_some_and(|segment| *segment == Segment::Key("status".into()))
        {
            job_json.get_or_insert_with(|| serde_json::to_value(job).unwrap_or(Value::Null))
        } else {
            if message.is_none() {
                let text = termination_message.ok_or(ReadOutputsError::MessageMissing)?;
                let parsed: Value = serde_json::from_str(text.trim())
                    .map_err(|error| ReadOutputsError::MessageNotJson(error.to_string()))?;
                if !parsed.is_object() {
                    return Err(ReadOutputsError::MessageNotJson(
                        "expected an object".into(),
                    ));
                }
                message = Some(parsed);
            }
            message.get_or_insert(Value::Null)
        };
        let selected =
            select(root, &segments).ok_or_else(|| ReadOutputsError::NothingSelected {
                name: parameter.name.clone(),
                path: path.into(),
            })?;
        let value = match selected {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        outputs.insert(parameter.name.clone(), value);
    }
    Ok(bound_outputs(outputs))
}

/// Drops values (last names first) until names and values fit [`MAX_OUTPUT_BYTES`]; a value
/// that alone is too long is cut on a character boundary.
fn bound_outputs(mut outputs: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut total = 0;
    outputs.retain(|name, value| {
        let room = MAX_OUTPUT_BYTES.saturating_sub(total + name.len());
        if room == 0 {
            return false;
        }
        if value.len() > room {
            let cut = (0..=room)
                .rev()
                .find(|index| value.is_char_boundary(*index))
                .unwrap_or(0);
            value.truncate(cut);
        }
        total += name.len() + value.len();
        true
    });
    outputs
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Parses the JSONPath subset kubectl users write: `{.a.b[0]}`, `$.a.b`, `.a["b-c"]`.
fn parse_path(path: &str) -> Vec<Segment> {
    let trimmed = path.trim().trim_start_matches('{').trim_end_matches('}');
    let trimmed = trimmed.trim_start_matches('$');
    let mut segments = Vec::new();
    let mut chars = trimmed.chars().peekable();
    let mut key = String::new();
    while let Some(ch) = chars.next() {
        match ch {
            '.' => {
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                }
            }
            '[' => {
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                }
                let inner: String = chars.by_ref().take_while(|c| *c != ']').collect();
                let inner = inner.trim();
                match inner.parse::<usize>() {
                    Ok(index) => segments.push(Segment::Index(index)),
                    Err(_) => segments.push(Segment::Key(inner.trim_matches(['"', '\'']).into())),
                }
            }
            other => key.push(other),
        }
    }
    if !key.is_empty() {
        segments.push(Segment::Key(key));
    }
    segments
}

fn select<'a>(root: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    segments
        .iter()
        .try_fold(root, |value, segment| match segment {
            Segment::Key(key) => value.get(key.as_str()),
            Segment::Index(index) => value.get(*index),
        })
}

#[cfg(test)]
mod tests {
    use crate::api::ParameterSource;

    use super::*;

    fn output(name: &str, path: &str) -> Parameter {
        Parameter {
            name: name.into(),
            value: None,
            value_from: Some(ParameterSource {
                json_path: Some(path.into()),
                ..ParameterSource::default()
            }),
        }
    }

    #[test]
    fn reads_strings_numbers_and_nested_values() {
        let message = r#"{"rows": 42, "file": "/data/out.csv", "stats": {"tables": ["a", "b"]}}"#;
        let outputs = read_outputs(
            &[
                output("rows", ".rows"),
                output("file", "{.file}"),
                output("second", "$.stats.tables[1]"),
            ],
            Some(message),
            &Job::default(),
        )
        .unwrap();
        assert_eq!(outputs["rows"], "42");
        assert_eq!(outputs["file"], "/data/out.csv");
        assert_eq!(outputs["second"], "b");
    }

    #[test]
    fn status_paths_read_the_job() {
        let job: Job =
            serde_json::from_value(serde_json::json!({"status": {"succeeded": 1}})).unwrap();
        let outputs = read_outputs(&[output("done", ".status.succeeded")], None, &job).unwrap();
        assert_eq!(outputs["done"], "1");
    }

    #[test]
    fn missing_message_and_missing_keys_are_errors() {
        assert_eq!(
            read_outputs(&[output("rows", ".rows")], None, &Job::default()),
            Err(ReadOutputsError::MessageMissing)
        );
        assert!(matches!(
            read_outputs(&[output("rows", ".nope")], Some("{}"), &Job::default()),
            Err(ReadOutputsError::NothingSelected { .. })
        ));
        assert!(matches!(
            read_outputs(&[output("rows", ".rows")], Some("done"), &Job::default()),
            Err(ReadOutputsError::MessageNotJson(_))
        ));
    }

    #[test]
    fn outputs_are_bounded() {
        let big = "x".repeat(10_000);
        let message = serde_json::json!({"a": big, "b": "small"}).to_string();
        let outputs = read_outputs(
            &[output("a", ".a"), output("b", ".b")],
            Some(&message),
            &Job::default(),
        )
        .unwrap();
        let size: usize = outputs
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum();
        assert!(size <= MAX_OUTPUT_BYTES);
    }
}
