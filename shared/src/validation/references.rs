//! `{{...}}` references in templates and input values: an input parameter the step declares,
//! an output parameter a step declares that has ended by the time this step starts.

use std::collections::HashMap;

use super::LocatedStep;
use super::conditions::ended_before;
use super::graph::unknown_step_message;
use super::problems::Problems;
use crate::references::{Reference, split_braces, strings};

/// Checks the references of one step's template and literal input values.
pub(super) fn check_references(
    located: &LocatedStep<'_>,
    steps: &[LocatedStep<'_>],
    index_by_name: &HashMap<&str, usize>,
    problems: &mut Problems,
) {
    let step = located.step;
    // Paths are only written out for a problem: most texts hold no reference to check.
    if let Some(template) = &step.template {
        let path = || format!("{}.template", located.path);
        for text in strings(template) {
            check_text(text, &path, located, steps, index_by_name, problems);
        }
    }
    let inputs = step.inputs.iter().flat_map(|inputs| &inputs.parameters);
    for (index, parameter) in inputs.enumerate() {
        if let Some(value) = &parameter.value {
            let path = || format!("{}.inputs.parameters[{index}].value", located.path);
            check_text(value, &path, located, steps, index_by_name, problems);
        }
    }
}

fn check_text(
    text: &str,
    path: &impl Fn() -> String,
    located: &LocatedStep<'_>,
    steps: &[LocatedStep<'_>],
    index_by_name: &HashMap<&str, usize>,
    problems: &mut Problems,
) {
    // A text without `{{` has no reference; most template strings are such.
    if !text.contains('{') {
        return;
    }
    for braces in split_braces(text).0 {
        // Only inputs and step outputs name something to check; the other references
        // (`step.name`, `flow.name`, ...) and foreign braces are not read further.
        if !(braces.inner.starts_with("inputs.") || braces.inner.starts_with("steps.")) {
            continue;
        }
        match Reference::parse(braces.inner) {
            Some(Reference::Input(name)) => {
                let declared = located
                    .step
                    .inputs
                    .iter()
                    .flat_map(|inputs| &inputs.parameters)
                    .any(|parameter| parameter.name == name);
                if !declared {
                    problems.invalid(
                        path(),
                        format!(
                            "{} names input parameter {name:?}, which this step does not declare; add it under inputs.parameters or fix the name",
                            braces.whole
                        ),
                    );
                }
            }
            Some(Reference::StepOutput { step, name }) => {
                if let Some(why) = output_problem(step, name, located, steps, index_by_name) {
                    problems.invalid(path(), format!("{} {why}", braces.whole));
                }
            }
            _ => {}
        }
    }
}

/// Why `{{steps.<step>.outputs.<name>}}` cannot be resolved when `located` starts.
fn output_problem(
    step: &str,
    name: &str,
    located: &LocatedStep<'_>,
    steps: &[LocatedStep<'_>],
    index_by_name: &HashMap<&str, usize>,
) -> Option<String> {
    let Some(&index) = index_by_name.get(step) else {
        return Some(format!("reads {}", unknown_step_message(step, steps)));
    };
    if !ended_before(located, &steps[index], steps, index_by_name) {
        return Some(format!(
            "reads step {step:?}, which may not have ended when this step starts; add {step:?} to this step's dependencies"
        ));
    }
    let declared: Vec<&str> = steps[index]
        .step
        .outputs
        .iter()
        .flat_map(|outputs| &outputs.parameters)
        .map(|parameter| parameter.name.as_str())
        .collect();
    if declared.contains(&name) {
        return None;
    }
    Some(if declared.is_empty() {
        format!(
            "reads output {name:?} of step {step:?}, which declares no output parameters; declare it under that step's outputs.parameters"
        )
    } else {
        format!(
            "reads output {name:?} of step {step:?}, which declares only {}; use one of those or declare {name:?}",
            declared.join(", ")
        )
    })
}
