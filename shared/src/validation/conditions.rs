//! `when` conditions: they compile, and the steps they read exist and have ended by the time
//! the condition is evaluated (they are upstream of the step, or regular steps read by a
//! finally step).

use std::collections::{HashMap, HashSet};

use super::LocatedStep;
use super::graph::unknown_step_message;
use super::problems::Problems;
use crate::when::When;

/// Checks the `when` of one step; returns it parsed (None for a step without one or whose
/// `when` does not parse).
pub(super) fn check_condition(
    located: &LocatedStep<'_>,
    steps: &[LocatedStep<'_>],
    index_by_name: &HashMap<&str, usize>,
    problems: &mut Problems,
) -> Option<When> {
    let source = located.step.when.as_ref()?;
    let path = format!("{}.when", located.path);
    match When::parse(source) {
        Err(error) => {
            problems.invalid(path, error.to_string());
            None
        }
        Ok(when) => {
            for name in when.referenced_steps() {
                let Some(&index) = index_by_name.get(name.as_str()) else {
                    problems.invalid(
                        path.clone(),
                        format!("the condition reads {}", unknown_step_message(&name, steps)),
                    );
                    continue;
                };
                if !ended_before(located, &steps[index], steps, index_by_name) {
                    problems.invalid(
                        path.clone(),
                        format!(
                            "the condition reads step {name:?}, which may not have ended when this step \
                             is ready; add {name:?} to this step's dependencies"
                        ),
                    );
                }
            }
            Some(when)
        }
    }
}

/// Whether `other` has ended whenever `located` is ready: it is upstream of `located`, or a
/// regular step read by a finally step.
pub(super) fn ended_before(
    located: &LocatedStep<'_>,
    other: &LocatedStep<'_>,
    steps: &[LocatedStep<'_>],
    index_by_name: &HashMap<&str, usize>,
) -> bool {
    (located.finally && !other.finally)
        || upstream_of(located, steps, index_by_name).contains(other.step.name.as_str())
}

/// The names of every step `located` depends on, directly or through others.
fn upstream_of<'a>(
    located: &LocatedStep<'a>,
    steps: &[LocatedStep<'a>],
    index_by_name: &HashMap<&str, usize>,
) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    let mut stack: Vec<&'a str> = located
        .step
        .dependencies
        .iter()
        .map(String::as_str)
        .collect();
    while let Some(name) = stack.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(&index) = index_by_name.get(name) {
            stack.extend(steps[index].step.dependencies.iter().map(String::as_str));
        }
    }
    seen
}
