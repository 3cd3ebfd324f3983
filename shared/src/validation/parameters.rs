//! Input and output parameters and artifacts.

use std::path::{Component, Path};

use super::problems::Problems;
use crate::api::{Artifact, Parameter, Step};

/// Checks a step's parameters and artifact paths.
pub(super) fn check_inputs_and_outputs(step: &Step, step_path: &str, problems: &mut Problems) {
    if let Some(inputs) = &step.inputs {
        let path = format!("{step_path}.inputs");
        check_parameters(&inputs.parameters, &path, Direction::Input, problems);
        check_artifacts(&inputs.artifacts, &path, problems);
    }
    if let Some(outputs) = &step.outputs {
        let path = format!("{step_path}.outputs");
        check_parameters(&outputs.parameters, &path, Direction::Output, problems);
        check_artifacts(&outputs.artifacts, &path, problems);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

fn check_parameters(
    parameters: &[Parameter],
    path: &str,
    direction: Direction,
    problems: &mut Problems,
) {
    for (index, parameter) in parameters.iter().enumerate() {
        let path = format!("{path}.parameters[{index}]");
        let name = &parameter.name;
        if name.trim().is_empty() {
            problems.invalid(
                format!("{path}.name"),
                "a parameter needs a name; add one, e.g. name: count",
            );
        } else if let Some(earlier) = parameters[..index]
            .iter()
            .position(|other| &other.name == name)
        {
            problems.invalid(
                format!("{path}.name"),
                format!("parameter {name:?} is already defined at parameters[{earlier}]; rename or remove one"),
            );
        }
        let json_path = parameter
            .value_from
            .as_ref()
            .and_then(|source| source.json_path.as_ref());
        if direction == Direction::Output && json_path.is_none() {
            problems.invalid(
                format!("{path}.valueFrom.jsonPath"),
                format!("output parameter {name:?} is read from the pod's termination message; set valueFrom.jsonPath, e.g. jsonPath: .count"),
            );
            continue;
        }
        if json_path.is_some_and(|json_path| json_path.trim().is_empty()) {
            problems.invalid(
                format!("{path}.valueFrom.jsonPath"),
                "is empty; write a JSONPath such as .count, or remove it",
            );
        }
        check_single_source(parameter, &path, problems);
    }
}

/// Exactly one of `value`, `valueFrom.jsonPath`, `valueFrom.configMapKeyRef`,
/// `valueFrom.secretKeyRef`.
fn check_single_source(parameter: &Parameter, path: &str, problems: &mut Problems) {
    let name = &parameter.name;
    let mut sources: Vec<&str> = Vec::new();
    if parameter.value.is_some() {
        sources.push("value");
    }
    if let Some(source) = &parameter.value_from {
        if source.json_path.is_some() {
            sources.push("valueFrom.jsonPath");
        }
        if source.config_map_key_ref.is_some() {
            sources.push("valueFrom.configMapKeyRef");
        }
        if source.secret_key_ref.is_some() {
            sources.push("valueFrom.secretKeyRef");
        }
    }
    match sources.as_slice() {
        [_] => {}
        [] if parameter.value_from.is_some() => problems.invalid(
            format!("{path}.valueFrom"),
            format!("parameter {name:?} has an empty valueFrom; set exactly one of jsonPath, configMapKeyRef or secretKeyRef"),
        ),
        [] => problems.invalid(
            path,
            format!("parameter {name:?} has no value; set value, or valueFrom with one of jsonPath, configMapKeyRef or secretKeyRef"),
        ),
        several => problems.invalid(
            path,
            format!("parameter {name:?} sets {}; keep exactly one source", several.join(" and ")),
        ),
    }
}

fn check_artifacts(artifacts: &[Artifact], path: &str, problems: &mut Problems) {
    for (index, artifact) in artifacts.iter().enumerate() {
        let Some(file) = &artifact.path else {
            continue;
        };
        let path = format!("{path}.artifacts[{index}].path");
        if !file.starts_with('/') {
            problems.invalid(
                path.clone(),
                format!(
                    "artifact path {file:?} is relative; write an absolute path, e.g. /tmp/{}",
                    file.trim_start_matches("./")
                ),
            );
        }
        if Path::new(file)
            .components()
            .any(|part| part == Component::ParentDir)
        {
            problems.invalid(
                path,
                format!(
                    "artifact path {file:?} contains a '..' segment; write the path without it"
                ),
            );
        }
    }
}
