//! Input and output parameters; artifacts, which are refused until they work; env inputs whose
//! names clash with the template's own env.

use k8s_openapi::api::batch::v1::Job;

use super::problems::Problems;
use crate::api::{Artifact, Parameter, Step};

/// Checks a step's parameters, and that it declares no artifacts.
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
    if artifacts.is_empty() {
        return;
    }
    let names: Vec<&str> = artifacts
        .iter()
        .map(|artifact| artifact.name.as_str())
        .collect();
    problems.invalid(
        format!("{path}.artifacts"),
        format!(
            "artifacts ({}) are not supported yet: nothing would store or fetch them; share files \
             through a volume claim template instead: declare it under \
             spec.resourceTemplates.volumeClaimTemplates and mount it, by its name, as a \
             persistentVolumeClaim volume in the steps that write and read the files; then remove \
             artifacts",
            names.join(", ")
        ),
    );
}

/// Rejects a container env var named like one of the step's Secret or ConfigMap inputs: the
/// agent adds those as env vars of every container and init container.
pub(super) fn check_env_clashes(
    step: &Step,
    job: &Job,
    template_path: &str,
    problems: &mut Problems,
) {
    let inputs: Vec<&str> = step
        .inputs
        .iter()
        .flat_map(|inputs| &inputs.parameters)
        .filter(|parameter| parameter.is_env_input())
        .map(|parameter| parameter.name.as_str())
        .collect();
    let Some(pod) = job
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
    else {
        return;
    };
    if inputs.is_empty() {
        return;
    }
    let groups = [
        ("containers", Some(&pod.containers)),
        ("initContainers", pod.init_containers.as_ref()),
    ];
    for (field, containers) in groups {
        for (index, container) in containers.into_iter().flatten().enumerate() {
            for (at, var) in container.env.iter().flatten().enumerate() {
                if inputs.contains(&var.name.as_str()) {
                    problems.invalid(
                        format!("{template_path}.spec.template.spec.{field}[{index}].env[{at}].name"),
                        format!(
                            "env {:?} clashes with the input parameter of that name, which the agent adds to every container as an env var from its Secret or ConfigMap; rename the env var or the input",
                            var.name
                        ),
                    );
                }
            }
        }
    }
}
