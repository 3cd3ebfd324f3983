//! What the agent keeps of one cached flow between its reconciles: its templates, the spec
//! compiled for its generation, how many reconciles failed in a row, the objects the API server
//! refused to create, and what it wrote that the cache does not show yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use jobflow::api::JobFlow;
use jobflow::planner::{CompiledFlow, Refusal};
use jobflow::validation::ValidationErrors;

use super::overlay::Overlay;
use super::templates::Templates;
use crate::kube::slim::CachedJob;

/// A compiled spec, or why the spec is invalid.
pub type Compiled = Arc<Result<CompiledFlow, ValidationErrors>>;

/// The most refusals kept per flow. Each attempt of a step has its own Job name and attempts are
/// bounded by validation, so this is never reached by a valid flow; it bounds memory anyway.
pub const MAX_REFUSALS: usize = 1024;

/// The state of one flow (one UID).
#[derive(Debug)]
pub struct FlowState {
    /// The flow's UID: a flow re-created under the same name starts from a new state.
    pub uid: String,
    /// The step templates of the cached generation (the cached flow holds `None`).
    pub templates: Option<Templates>,
    /// The generation compiled, and the result.
    pub compiled: Option<(Option<i64>, Compiled)>,
    /// Reconciles failed in a row.
    pub failures: u32,
    /// Objects the API server refused for good, by name.
    pub refused: BTreeMap<String, Refusal>,
    /// The flow as our last status write returned it.
    pub written: Overlay<JobFlow>,
    /// The Jobs we created or confirmed.
    pub jobs: Overlay<CachedJob>,
}

impl FlowState {
    /// The empty state of the flow with `uid`.
    pub fn new(uid: String) -> Self {
        Self {
            uid,
            templates: None,
            compiled: None,
            failures: 0,
            refused: BTreeMap::new(),
            written: Overlay::default(),
            jobs: Overlay::default(),
        }
    }

    /// The compiled spec of `generation`, if kept.
    pub fn compiled_for(&self, generation: Option<i64>) -> Option<Compiled> {
        self.compiled
            .as_ref()
            .filter(|(kept, _)| *kept == generation)
            .map(|(_, compiled)| Arc::clone(compiled))
    }

    /// Remembers objects the API server refused to create, keeping at most [`MAX_REFUSALS`].
    pub fn refuse(&mut self, refused: impl IntoIterator<Item = (String, Refusal)>) {
        for (name, refusal) in refused {
            if self.refused.len() >= MAX_REFUSALS {
                self.refused.pop_first();
            }
            self.refused.insert(name, refusal);
        }
    }
}
