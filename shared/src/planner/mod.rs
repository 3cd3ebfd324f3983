//! The pure planner: (flow, observed world, now) -> what to do and what the status must read.
//!
//! The agent feeds it what its watch caches show and the current time, then carries the plan
//! out. Nothing here reads a clock or talks to the network.

mod backoff;
mod budget;
mod compile;
mod concurrency;
mod flow_status;
mod job_builder;
mod job_outcome;
mod naming;
mod outputs;
#[cfg(test)]
mod peer_tests;
mod pod_failure;
mod pod_trouble;
#[cfg(test)]
mod properties;
mod readiness;
mod requests;
mod resources;
mod run;
mod running;
mod schedule;
mod state;
#[cfg(test)]
mod stop_reject_tests;
mod stop_request;
mod stuck;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod transitions;

pub use backoff::backoff;
pub use budget::MAX_STATUS_BYTES;
pub use compile::CompiledFlow;
pub use concurrency::peers;
pub use job_builder::{BuildJobError, BuiltJob, build_job};
pub use job_outcome::{JobOutcome, job_outcome};
pub use naming::{MAX_JOB_NAME, job_name, resource_name};
pub use outputs::{ReadOutputsError, read_outputs, termination_message};
pub use pod_failure::{MAX_FAILURE_MESSAGE, pod_failure};
pub use pod_trouble::{PodTrouble, pod_trouble};
pub use readiness::ready_steps;
pub use resources::resource_objects;
pub use transitions::{Transitions, transitions};

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;

use state::Planning;

use crate::api::{ConcurrencyPolicy, FlowPhase, JobFlow, JobFlowStatus};
use crate::validation::ValidationErrors;

/// What the agent observed for one flow, from its caches.
#[derive(Clone, Debug, Default)]
pub struct Observed<'a> {
    /// The Jobs owned by the flow (label `workflow.kube-zen.io/flow`), any attempt.
    pub jobs: Vec<&'a Job>,
    /// The termination message of the succeeded pod of each Job, by Job name.
    pub termination_messages: BTreeMap<String, String>,
    /// Why the pod of a Job is stuck ([`pod_trouble`]), by Job name; Jobs whose pods are fine
    /// are absent.
    pub pod_trouble: BTreeMap<String, PodTrouble>,
    /// How a failed pod of a Job failed ([`pod_failure`]), by Job name.
    pub pod_failures: BTreeMap<String, String>,
    /// Other flows in the namespace with the same `concurrencyKey`.
    pub peers: Vec<PeerFlow>,
    /// Objects of this flow the API server refused to create for good, by name (a step's Job
    /// or a resource template's object): the planner fails the attempt or the flow.
    pub refused: BTreeMap<String, Refusal>,
}

/// Why the API server would not create an object of the flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// [`JOB_REJECTED`](crate::api::reasons::JOB_REJECTED), [`NAME_CONFLICT`](crate::api::reasons::NAME_CONFLICT)
    /// or [`RESOURCE_REJECTED`](crate::api::reasons::RESOURCE_REJECTED).
    pub reason: &'static str,
    /// What the API server said, or who owns the object of that name.
    pub message: String,
}

/// Another flow sharing this flow's `concurrencyKey`, as the concurrency rules judge it
/// ([`PeerFlow::of`] reads one from its object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerFlow {
    /// Its name.
    pub name: String,
    /// When it was created; the older flow goes first.
    pub created: Timestamp,
    /// Its phase (None before the agent first wrote its status).
    pub phase: Option<FlowPhase>,
    /// Its own `concurrencyPolicy`: an older flow stops itself for a newer `Replace` peer.
    pub policy: ConcurrencyPolicy,
    /// Whether it has started (`status.startTime` is set). A started flow goes before any
    /// flow that has not, whatever their creation times.
    pub started: bool,
    /// Whether its status describes its current spec (`status.observedGeneration` is its
    /// `metadata.generation`): an unstarted flow edited since is judged again before it counts.
    pub current: bool,
    /// Whether it is being deleted.
    pub deleting: bool,
}

/// One Event to record on the flow.
///
/// Events are for what a person follows or acts on: each change of the flow's phase (started,
/// waiting, suspended, paused, resumed, succeeded, failed) and each step transition that needs
/// a look (failed, retried, timed out, skipped, stuck, waiting for approval, approved,
/// rejected) and each request handled. A step that starts or succeeds is routine and has no
/// Event: the status records it, the step's Job carries the Job controller's own Events, and
/// the flow's `FlowSucceeded` counts the steps. A flow that succeeds thus costs two Events,
/// whatever its size, where one per step start and end cost two per step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// A CamelCase reason, e.g. `StepFailed`.
    pub reason: &'static str,
    /// The step the event is about, if any. Events of different steps must stay apart: the
    /// agent's recorder merges events that share reason, action and object into one series.
    pub step: Option<String>,
    /// A sentence for people.
    pub message: String,
}

/// A Job to delete, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDeletion {
    /// The Job's name.
    pub name: String,
    /// Why it is deleted (Timeout, ActiveDeadlineExceeded, Replaced).
    pub reason: &'static str,
}

/// What must happen next for one flow.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Complete batch/v1 Jobs to create (their manifests; created, never applied over).
    pub create_jobs: Vec<BuiltJob>,
    /// Jobs to delete (background propagation).
    pub delete_jobs: Vec<JobDeletion>,
    /// PersistentVolumeClaims and ConfigMaps from `resourceTemplates`, complete objects to create.
    pub create_resources: Vec<serde_json::Value>,
    /// The status the flow must have; equal to the current one when nothing changed.
    pub status: JobFlowStatus,
    /// Events to record.
    pub events: Vec<PlannedEvent>,
    /// When to look again even if nothing is observed to change.
    pub requeue_after: Option<Duration>,
    /// The flow's TTL has expired: delete the flow (its Jobs follow by garbage collection).
    pub delete_flow: bool,
    /// What changed from the flow's status to [`Plan::status`], for the agent's metrics.
    pub transitions: Transitions,
}

/// Plans one reconcile of `flow`.
///
/// `compiled` is the flow's spec compiled once per generation (or why it is invalid); `now` is
/// the current time, the only clock the planner knows.
pub fn plan(
    flow: &JobFlow,
    compiled: Result<&CompiledFlow, &ValidationErrors>,
    observed: &Observed<'_>,
    now: Timestamp,
) -> Plan {
    // Status times have whole seconds on the wire; planning with the same precision keeps an
    // unchanged world's status equal to the one read back.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let mut planning = Planning::new(flow, observed, now);
    if flow.metadata.deletion_timestamp.is_none() {
        match compiled {
            Ok(compiled) => planning.run(compiled),
            Err(errors) => planning.fail_invalid(errors),
        }
    }
    planning.finish()
}
