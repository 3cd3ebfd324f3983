//! A flow's spec compiled once per generation.

use crate::api::JobFlow;
use crate::dag::Dag;
use crate::validation::{ValidationErrors, validate};
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
    /// Validates `flow` and compiles its DAG and `when` expressions.
    pub fn compile(flow: &JobFlow) -> Result<Self, ValidationErrors> {
        validate(flow)?;
        // Validation already proved both of these succeed; their errors are reported again
        // through validation's wording should that ever change.
        let dag = Dag::build(&flow.spec).map_err(|_| validation_errors(flow))?;
        let whens = flow
            .all_steps()
            .map(|step| step.when.as_deref().map(When::parse).transpose())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| validation_errors(flow))?;
        Ok(Self { dag, whens })
    }
}

fn validation_errors(flow: &JobFlow) -> ValidationErrors {
    validate(flow).err().unwrap_or_default()
}
