//! `approve`, `reject`, `retry`, `suspend`, `resume`, `stop`: requests through the agent's
//! protocol.
//!
//! Approvals, rejections, retries and stops are annotations on the flow with a fresh request id, which the agent
//! acknowledges in `status.handledRequests`; suspend and resume set `spec.suspend`, which the
//! agent acknowledges by observing the new generation. `--wait` polls for that.

mod gate;
mod retry;
mod stop;
mod suspend;

use std::io::Write;
use std::time::Duration;

use jiff::Timestamp;
use jobflow::api::{JobFlow, StepPhase};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

pub use gate::{approve, reject};
pub use retry::retry;
pub use stop::stop;
pub use suspend::set_suspend;

use crate::Verdict;
use crate::cli::WaitArgs;
use crate::connect::Cluster;
use crate::error::Error;
use crate::style;

/// The field manager of the plugin's writes.
pub const FIELD_MANAGER: &str = "kubectl-jobflow";

/// How often `--wait` looks at the flow.
const POLL: Duration = Duration::from_millis(500);

/// A request id no earlier request can have had: the time to the nanosecond.
pub fn fresh_request_id() -> String {
    format!("kubectl-jobflow-{}", Timestamp::now().as_nanosecond())
}

/// `namespace/name`.
pub(crate) fn qualified(cluster: &Cluster, flow: &str) -> String {
    format!("{}/{flow}", cluster.namespace)
}

/// The step called `name` (regular or finally), or [`Error::StepNotFound`].
pub(crate) fn find_step<'a>(
    flow: &'a JobFlow,
    target: &str,
    name: &str,
) -> Result<&'a jobflow::api::Step, Error> {
    flow.all_steps()
        .find(|step| step.name == name)
        .ok_or_else(|| Error::StepNotFound {
            flow: target.to_owned(),
            step: name.to_owned(),
            known: flow
                .all_steps()
                .map(|step| step.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The step's phase in the status, if the status has it.
pub(crate) fn step_phase(flow: &JobFlow, step: &str) -> Option<StepPhase> {
    flow.status
        .as_ref()?
        .steps
        .iter()
        .find(|status| status.name == step)
        .map(|status| status.phase)
}

/// True when the agent has acknowledged request `id` under `key`.
pub(crate) fn handled(flow: &JobFlow, key: &str, id: &str) -> bool {
    flow.status
        .as_ref()
        .and_then(|status| status.handled_requests.get(key))
        .is_some_and(|handled| handled == id)
}

/// Sets annotations (a merge patch, as `kubectl annotate --overwrite`).
pub(crate) async fn annotate(
    cluster: &Cluster,
    flow: &str,
    pairs: &[(String, String)],
) -> Result<(), Error> {
    let annotations: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(key, value)| (key.clone(), serde_json::Value::from(value.as_str())))
        .collect();
    cluster
        .flows()
        .patch(
            flow,
            &patch_params(),
            &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .map_err(|source| Error::Api {
            action: format!("annotate jobflow {}", qualified(cluster, flow)),
            source,
        })?;
    Ok(())
}

/// Polls the flow until `done` holds; a timeout is a refusal that says what was awaited.
pub(crate) async fn wait_for(
    cluster: &Cluster,
    flow: &str,
    wait: WaitArgs,
    what: &str,
    done: impl Fn(&JobFlow) -> bool,
) -> Result<JobFlow, Error> {
    let deadline = tokio::time::Instant::now() + wait.timeout;
    loop {
        let current = cluster.flow(flow).await?;
        if done(&current) {
            return Ok(current);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Refused(format!(
                "waited {:?} for {what} jobflow {}/{}; is jobflow-agent running? (the request stays on the flow)",
                wait.timeout,
                cluster.namespace,
                current.name_any()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The end of a request: without `--wait` it is done; with it, waits until `done` holds (see
/// [`wait_for`]) and writes what `report` says of the flow then.
pub(crate) async fn finish(
    cluster: &Cluster,
    flow: &str,
    wait: WaitArgs,
    what: &str,
    done: impl Fn(&JobFlow) -> bool,
    out: &mut dyn Write,
    report: impl FnOnce(&JobFlow) -> String,
) -> Result<Verdict, Error> {
    if !wait.wait {
        return Ok(Verdict::Positive);
    }
    let flow = wait_for(cluster, flow, wait, what, done).await?;
    writeln!(out, "{}", report(&flow))?;
    Ok(Verdict::Positive)
}

/// `the flow is <phase>`: what a request says once the agent carried it out.
pub(crate) fn flow_is(flow: &JobFlow) -> String {
    format!(
        "the flow is {}",
        style::flow_phase(flow.status.as_ref().and_then(|status| status.phase))
    )
}

/// Merge patches under the plugin's field manager.
pub(crate) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}
