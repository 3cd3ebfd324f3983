//! `approve` and `reject`: decisions on a Manual step, through its approve/reject annotation.

use std::io::Write;

use jobflow::api::{StepPhase, StepType};
use jobflow::labels;

use super::{annotate, find_step, finish, fresh_request_id, handled, qualified, step_phase};
use crate::Verdict;
use crate::cli::{ApproveArgs, RejectArgs, WaitArgs};
use crate::connect::Cluster;
use crate::error::Error;
use crate::style;

/// `approve FLOW STEP`.
pub async fn approve(
    args: &ApproveArgs,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    decide(
        Decision::Approve,
        &args.flow,
        &args.step,
        &[],
        args.wait,
        cluster,
        out,
    )
    .await
}

/// `reject FLOW STEP [--message M]`.
pub async fn reject(
    args: &RejectArgs,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let message_key = format!("{}{}", labels::REJECT_MESSAGE_PREFIX, args.step);
    let extra: Vec<(String, String)> = args
        .message
        .iter()
        .map(|message| (message_key.clone(), message.clone()))
        .collect();
    decide(
        Decision::Reject,
        &args.flow,
        &args.step,
        &extra,
        args.wait,
        cluster,
        out,
    )
    .await
}

/// What is decided about a Manual step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Approve,
    Reject,
}

impl Decision {
    fn prefix(self) -> &'static str {
        match self {
            Self::Approve => labels::APPROVE_PREFIX,
            Self::Reject => labels::REJECT_PREFIX,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Approve => "approval",
            Self::Reject => "rejection",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Reject => "rejected",
        }
    }
}

/// Approves or rejects Manual step `step` (with `extra` annotations set alongside).
async fn decide(
    decision: Decision,
    flow_name: &str,
    step_name: &str,
    extra: &[(String, String)],
    wait: WaitArgs,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let flow = cluster.flow(flow_name).await?;
    let target = qualified(cluster, flow_name);
    let step = find_step(&flow, &target, step_name)?;
    if step.step_type != StepType::Manual {
        return Err(Error::Refused(format!(
            "step {step_name:?} of jobflow {target} is not a Manual step; only Manual steps wait for approval"
        )));
    }
    let phase = step_phase(&flow, step_name);
    if phase.is_some_and(StepPhase::is_terminal) {
        return Err(Error::Refused(format!(
            "step {step_name:?} of jobflow {target} has already ended ({}); retry it with `kubectl jobflow retry {flow_name} --step {step_name}`",
            phase.map_or("", StepPhase::as_str),
        )));
    }
    let key = format!("{}{step_name}", decision.prefix());
    let id = fresh_request_id();
    let mut pairs = vec![(key.clone(), id.clone())];
    pairs.extend(extra.iter().cloned());
    annotate(cluster, flow_name, &pairs).await?;
    writeln!(
        out,
        "jobflow {target}: {} of step {step_name:?} requested ({key}={id})",
        decision.noun()
    )?;
    if phase != Some(StepPhase::PendingApproval) {
        writeln!(
            out,
            "step {step_name:?} is {} and does not wait yet; the {} applies when it does",
            phase.map_or("Pending", StepPhase::as_str),
            decision.noun()
        )?;
    }
    let what = format!("the agent to carry out the {}", decision.noun());
    finish(
        cluster,
        flow_name,
        wait,
        &what,
        |flow| handled(flow, &key, &id),
        out,
        |flow| {
            format!(
                "step {step_name:?} {}; it is {}, the flow {}",
                decision.past(),
                step_phase(flow, step_name).map_or_else(|| "Pending".to_owned(), style::step_phase),
                style::flow_phase(flow.status.as_ref().and_then(|status| status.phase))
            )
        },
    )
    .await
}
