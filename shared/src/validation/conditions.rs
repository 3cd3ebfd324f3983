//! `when` conditions: they compile, and the steps they read exist and have ended by the time
//! the condition is evaluated (they are upstream of the step, or regular steps read by a
//! finally step).

use std::collections::{HashMap, HashSet};

use super::LocatedStep;
use super::graph::unknown_step_message;
use super::problems::Problems;
use crate::when::When;

/// Checks every step's `when`.
pub(super) fn check_conditions(
    steps: &[LocatedStep<'_>],
    index_by_name: &HashMap<&str, usize>,
    problems: &mut Problems,
) {
    for located in steps {
        let Some(source) = &located.step.when else {
            continue;
        };
        let path = format!("{}.when", located.path);
        match When::parse(source) {
            Err(error) => problems.invalid(path, error.to_string()),
            Ok(when) => {
                let upstream = upstream_of(located, steps, index_by_name);
                for name in when.referenced_steps() {
                    let Some(&index) = index_by_name.get(name.as_str()) else {
                        problems.invalid(
                            path.clone(),
                            format!("the condition reads {}", unknown_step_message(&name, steps)),
                        );
                        continue;
                    };
                    let ended_by_then = upstream.contains(name.as_str())
                        || (located.finally && !steps[index].finally);
                    if !ended_by_then {
                        problems.invalid(
                            path.clone(),
                            format!(
                                "the condition reads step {name:?}, which may not have ended when this step \
                                 is ready; add {name:?} to this step's dependencies"
                            ),
                        );
                    }
                }
            }
        }
    }
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
