//! The problems validation finds, each tied to the field that has it.

use std::fmt;

/// Every problem found in a flow, grouped by check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    /// The problems, at least one when returned as an error.
    pub problems: Vec<FieldProblem>,
}

/// One problem: where it is, what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field, with the API's JSON names, e.g. `spec.steps[2].dependencies[0]`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The kind of problem.
    pub kind: ProblemKind,
}

/// The kind of a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A field has a value it may not have.
    Invalid,
    /// Steps depend on each other in a circle.
    Cycle,
}

impl ValidationErrors {
    /// True when one of the problems is a dependency cycle.
    pub fn has_cycle(&self) -> bool {
        self.problems
            .iter()
            .any(|problem| problem.kind == ProblemKind::Cycle)
    }
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Collects problems while the checks run.
#[derive(Debug, Default)]
pub(super) struct Problems {
    found: Vec<FieldProblem>,
}

impl Problems {
    /// Records an invalid value at `path`.
    pub(super) fn invalid(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(path.into(), message.into(), ProblemKind::Invalid);
    }

    /// Records a dependency cycle at `path`.
    pub(super) fn cycle(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.push(path.into(), message.into(), ProblemKind::Cycle);
    }

    fn push(&mut self, path: String, message: String, kind: ProblemKind) {
        self.found.push(FieldProblem {
            path,
            message,
            kind,
        });
    }

    /// Ok when nothing was found, else every problem.
    pub(super) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors {
                problems: self.found,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_one_problem_per_line() {
        let mut problems = Problems::default();
        problems.invalid("spec.steps", "a flow needs at least one step");
        problems.cycle("spec.steps[0].dependencies", "dependency cycle a -> b -> a");
        let errors = problems.into_result().unwrap_err();
        assert_eq!(
            errors.to_string(),
            "spec.steps: a flow needs at least one step\n\
             spec.steps[0].dependencies: dependency cycle a -> b -> a"
        );
        assert!(errors.has_cycle());
    }

    #[test]
    fn no_problem_is_ok_and_invalid_is_no_cycle() {
        assert_eq!(Problems::default().into_result(), Ok(()));
        let mut problems = Problems::default();
        problems.invalid("spec.steps[0].name", "bad");
        assert!(!problems.into_result().unwrap_err().has_cycle());
    }
}
