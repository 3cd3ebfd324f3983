//! `retry`: the whole-flow or named retry annotations.

use std::io::Write;

use jobflow::api::{FlowPhase, StepPhase};
use jobflow::labels;

use super::{annotate, find_step, finish, fresh_request_id, handled, qualified, step_phase};
use crate::Verdict;
use crate::cli::RetryArgs;
use crate::connect::Cluster;
use crate::error::Error;
use crate::style;

/// `retry FLOW [--step S]...`.
pub async fn retry(
    args: &RetryArgs,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let flow = cluster.flow(&args.flow).await?;
    let target = qualified(cluster, &args.flow);
    let phase = flow.status.as_ref().and_then(|status| status.phase);
    let keys: Vec<String> = if args.steps.is_empty() {
        match phase {
            Some(FlowPhase::Failed) => vec![labels::RETRY.to_owned()],
            Some(FlowPhase::Succeeded) => {
                return Err(Error::Refused(format!(
                    "jobflow {target} Succeeded: nothing failed to retry; to run a step again use `kubectl jobflow retry {} --step STEP`",
                    args.flow
                )));
            }
            other => {
                return Err(Error::Refused(format!(
                    "jobflow {target} is {} and has not finished; a retry without --step applies to a finished flow (name steps with --step to re-run them now)",
                    other.map_or("not started", FlowPhase::as_str)
                )));
            }
        }
    } else {
        let mut keys = Vec::new();
        for step in &args.steps {
            find_step(&flow, &target, step)?;
            let phase = step_phase(&flow, step);
            if !phase.is_some_and(StepPhase::is_terminal) {
                return Err(Error::Refused(format!(
                    "step {step:?} of jobflow {target} is {} and has not ended; only an ended step can be retried",
                    phase.map_or("Pending", StepPhase::as_str)
                )));
            }
            keys.push(format!("{}{step}", labels::RETRY_PREFIX));
        }
        keys
    };
    let id = fresh_request_id();
    let pairs: Vec<(String, String)> = keys.iter().map(|key| (key.clone(), id.clone())).collect();
    annotate(cluster, &args.flow, &pairs).await?;
    let what = if args.steps.is_empty() {
        "the failed and skipped steps".to_owned()
    } else {
        format!("{} and everything downstream", args.steps.join(", "))
    };
    writeln!(
        out,
        "jobflow {target}: retry of {what} requested (request {id})"
    )?;
    finish(
        cluster,
        &args.flow,
        args.wait,
        "the agent to retry",
        |flow| keys.iter().all(|key| handled(flow, key, &id)),
        out,
        |flow| {
            let status = flow.status.clone().unwrap_or_default();
            let reset: Vec<&str> = status
                .steps
                .iter()
                .filter(|step| !step.phase.is_terminal())
                .map(|step| step.name.as_str())
                .collect();
            format!(
                "retry carried out; the flow is {}, steps to run again: {}",
                style::flow_phase(status.phase),
                if reset.is_empty() {
                    "none (see the flow's Events)".to_owned()
                } else {
                    reset.join(", ")
                }
            )
        },
    )
    .await
}
