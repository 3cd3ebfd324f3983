//! Step names, dependencies and cycles: the one place they are resolved, for validation and
//! for [`Dag::build`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::names::{closest, step_name_problem};
use super::problems::Problems;
use super::{LocatedStep, ValidationErrors, locate_steps};
use crate::api::JobFlowSpec;
use crate::dag::{Dag, Ordered, find_cycles};

/// Why a flow's steps do not form a DAG: the problems validation finds in their names and
/// dependencies, each at its field path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problems}")]
pub struct BuildDagError {
    /// The problems, at least one.
    pub problems: ValidationErrors,
}

impl Dag {
    /// Builds the graph of `spec.steps` followed by `spec.finally`, once validation's graph
    /// check passes: names valid and unique, dependencies listed once, naming other steps a step
    /// may wait for, and no cycle.
    pub fn build(spec: &JobFlowSpec) -> Result<Self, BuildDagError> {
        let mut problems = Problems::default();
        let (_, ordered) = check_graph(&locate_steps(spec), &mut problems);
        problems
            .into_report()
            .into_result()
            .map_err(|problems| BuildDagError { problems })?;
        Ok(Self::from_ordered(spec, ordered))
    }
}

/// Checks that names are valid and unique, that dependencies name other steps a step may wait
/// for, and that no steps wait for each other in a circle. Returns the index of the first step
/// with each name, and the good dependencies ordered (the DAG of a valid flow).
pub(super) fn check_graph<'a>(
    steps: &[LocatedStep<'a>],
    problems: &mut Problems,
) -> (HashMap<&'a str, usize>, Ordered) {
    let index_by_name = check_names(steps, problems);
    let mut edges: Vec<Vec<usize>> = Vec::with_capacity(steps.len());
    for (index, located) in steps.iter().enumerate() {
        edges.push(check_dependencies(
            index,
            located,
            steps,
            &index_by_name,
            problems,
        ));
    }
    let ordered = Ordered::new(edges);
    // Most flows have no cycle, which ordering them already shows: only a flow whose order
    // leaves steps out is searched for its cycles.
    let cycles = if ordered.has_cycle() {
        find_cycles(&ordered.dependencies)
    } else {
        Vec::new()
    };
    for cycle in cycles {
        let Some(&start) = cycle.first() else {
            continue;
        };
        let names: Vec<&str> = cycle
            .iter()
            .map(|&index| steps[index].step.name.as_str())
            .collect();
        problems.cycle(
            format!("{}.dependencies", steps[start].path),
            format!(
                "dependency cycle {}; remove one of these dependencies so the steps can run in order",
                names.join(" -> ")
            ),
        );
    }
    (index_by_name, ordered)
}

/// The index of the first step with each name; reports bad and repeated names.
fn check_names<'a>(steps: &[LocatedStep<'a>], problems: &mut Problems) -> HashMap<&'a str, usize> {
    let mut index_by_name: HashMap<&'a str, usize> = HashMap::with_capacity(steps.len());
    for (index, located) in steps.iter().enumerate() {
        let name = located.step.name.as_str();
        // Paths are only written out for a problem: most flows have none.
        let path = || format!("{}.name", located.path);
        if let Some(message) = step_name_problem(name) {
            problems.invalid(path(), message);
        }
        match index_by_name.entry(name) {
            Entry::Occupied(first) => problems.invalid(
                path(),
                format!(
                    "step name {name:?} is already used by {}; give every step (in steps and finally) a unique name",
                    steps[*first.get()].path
                ),
            ),
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
        }
    }
    index_by_name
}

/// Reports bad dependencies of one step and returns the good ones, without repeats.
fn check_dependencies(
    index: usize,
    located: &LocatedStep<'_>,
    steps: &[LocatedStep<'_>],
    index_by_name: &HashMap<&str, usize>,
    problems: &mut Problems,
) -> Vec<usize> {
    let step_name = &located.step.name;
    let mut edges = Vec::with_capacity(located.step.dependencies.len());
    for (position, dependency) in located.step.dependencies.iter().enumerate() {
        let path = || format!("{}.dependencies[{position}]", located.path);
        if let Some(earlier) = located.step.dependencies[..position]
            .iter()
            .position(|other| other == dependency)
        {
            problems.invalid(
                path(),
                format!(
                    "{dependency:?} is already listed at dependencies[{earlier}]; remove this entry"
                ),
            );
            continue;
        }
        if dependency == step_name {
            problems.invalid(
                path(),
                format!("step {step_name:?} depends on itself; remove this dependency"),
            );
            continue;
        }
        let Some(&target) = index_by_name.get(dependency.as_str()) else {
            problems.invalid(path(), unknown_step_message(dependency, steps));
            continue;
        };
        if !located.finally && steps[target].finally {
            problems.invalid(
                path(),
                format!(
                    "step {step_name:?} cannot depend on finally step {dependency:?}: finally steps run after every regular step; remove the dependency or move {step_name:?} to finally"
                ),
            );
            continue;
        }
        if target != index {
            edges.push(target);
        }
    }
    edges
}

/// `unknown step "x"`, with the closest existing name when one is near enough.
pub(super) fn unknown_step_message(name: &str, steps: &[LocatedStep<'_>]) -> String {
    let names = steps.iter().map(|located| located.step.name.as_str());
    match closest(name, names) {
        Some(suggestion) => format!("unknown step {name:?} (did you mean {suggestion:?}?)"),
        None => format!(
            "unknown step {name:?}; name one of this flow's steps ({}) or remove it",
            list_names(steps)
        ),
    }
}

/// Up to eight step names, then how many more.
fn list_names(steps: &[LocatedStep<'_>]) -> String {
    const SHOWN: usize = 8;
    let mut listed: Vec<String> = steps
        .iter()
        .take(SHOWN)
        .map(|located| located.step.name.clone())
        .collect();
    if steps.len() > SHOWN {
        listed.push(format!("and {} more", steps.len() - SHOWN));
    }
    listed.join(", ")
}
