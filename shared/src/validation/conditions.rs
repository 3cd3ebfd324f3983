//! `when` conditions: they compile, and the steps they read exist.

use std::collections::HashMap;

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
                for name in when.referenced_steps() {
                    if !index_by_name.contains_key(name.as_str()) {
                        problems.invalid(
                            path.clone(),
                            format!("the condition reads {}", unknown_step_message(&name, steps)),
                        );
                    }
                }
            }
        }
    }
}
