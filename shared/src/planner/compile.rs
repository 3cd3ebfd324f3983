//! A flow's spec compiled once per generation.

use crate::api::JobFlow;
use crate::dag::Dag;
use crate::validation::{ValidationErrors, check};
use crate::when::When;

/// A flow's spec compiled once per generation: its DAG and its `when` expressions.
#[derive(Debug)]
pub struct CompiledFlow {
    /// The step graph (regular steps, then finally steps).
    pub dag: Dag,
    /// Each step's parsed `when`, by DAG index; None runs the step unconditionally.
    pub whens: Vec<Option<When>>,
}

impl CompiledFlow {
    /// Validates `flow` and compiles its DAG and `when` expressions. Both come from what
    /// validation resolved and parsed on the way; nothing is resolved or parsed twice.
    pub fn compile(flow: &JobFlow) -> Result<Self, ValidationErrors> {
        let checked = check(flow)?;
        Ok(Self {
            dag: Dag::from_ordered(&flow.spec, checked.ordered),
            whens: checked.whens,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::planner::testing::{flow, job_step};

    proptest! {
        /// The DAG kept from validation is the one `Dag::build` makes, finally steps included,
        /// and the `when`s are those of the steps.
        #[test]
        fn the_kept_dag_is_the_built_one(
            edges in proptest::collection::vec(proptest::collection::vec(0usize..64, 0..4), 1..64),
            finally_count in 0usize..4,
        ) {
            let regular = edges.len();
            let mut steps = Vec::new();
            for (index, targets) in edges.iter().enumerate() {
                // Up to three earlier steps, each once; repeats and later ones are dropped.
                let mut names: Vec<String> = Vec::new();
                for target in targets.iter().filter(|&&target| target < index) {
                    let name = format!("s{target}");
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let mut step = job_step(&format!("s{index}"), &names);
                if index % 3 == 1 {
                    step.when = Some("true".into());
                }
                steps.push(step);
            }
            let mut flow = flow(steps);
            flow.spec.finally = (0..finally_count)
                .map(|index| {
                    let earlier = format!("f{}", index.saturating_sub(1));
                    let last = format!("s{}", regular - 1);
                    let dependencies: Vec<&str> = if index == 0 { vec![&last] } else { vec![&earlier, &last] };
                    job_step(&format!("f{index}"), &dependencies)
                })
                .collect();
            let compiled = CompiledFlow::compile(&flow).unwrap();
            prop_assert_eq!(&compiled.dag, &Dag::build(&flow.spec).unwrap());
            let kept: Vec<bool> = compiled.whens.iter().map(Option::is_some).collect();
            let declared: Vec<bool> = flow.all_steps().map(|step| step.when.is_some()).collect();
            prop_assert_eq!(kept, declared);
        }
    }
}
