//! The problems validation finds, each tied to the field that has it.

use std::fmt;

/// Everything validation found: problems make a flow invalid, warnings do not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationReport {
    /// What makes the flow invalid.
    pub problems: Vec<FieldProblem>,
    /// What the flow may run with but its author should know, e.g. template fields that
    /// Kubernetes 1.33 does not know (a typo, or a newer field passed on as written).
    pub warnings: Vec<FieldProblem>,
}

impl ValidationReport {
    /// Ok when there is no problem (warnings or not), else every problem.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors {
                problems: self.problems,
            })
        }
    }
}

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
    /// Not a problem: something the author should know (only in warnings).
    Warning,
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
    warnings: Vec<FieldProblem>,
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

    /// Records a warning at `path`.
    pub(super) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(FieldProblem {
            path: path.into(),
            message: message.into(),
            kind: ProblemKind::Warning,
        });
    }

    /// Adds the problems and warnings of `other` after these.
    pub(super) fn append(&mut self, mut other: Self) {
        self.found.append(&mut other.found);
        self.warnings.append(&mut other.warnings);
    }

    fn push(&mut self, path: String, message: String, kind: ProblemKind) {
        self.found.push(FieldProblem {
            path,
            message,
            kind,
        });
    }

    /// Ok when nothing was found, else every problem.
    #[cfg(test)]
    pub(super) fn into_result(self) -> Result<(), ValidationErrors> {
        self.into_report().into_result()
    }

    /// The problems and warnings found.
    pub(super) fn into_report(self) -> ValidationReport {
        ValidationReport {
            problems: self.found,
            warnings: self.warnings,
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
    fn warnings_do_not_make_a_flow_invalid() {
        let mut problems = Problems::default();
        problems.warn("spec.steps[0].template.spec.x", "unknown");
        let report = problems.into_report();
        assert_eq!(report.warnings.len(), 1);
        assert_eq!(report.warnings[0].kind, ProblemKind::Warning);
        assert_eq!(report.into_result(), Ok(()));
    }

    #[test]
    fn no_problem_is_ok_and_invalid_is_no_cycle() {
        assert_eq!(Problems::default().into_result(), Ok(()));
        let mut problems = Problems::default();
        problems.invalid("spec.steps[0].name", "bad");
        assert!(!problems.into_result().unwrap_err().has_cycle());
    }
}
