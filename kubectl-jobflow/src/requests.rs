//! `approve`, `reject`, `retry`, `suspend`, `resume`, `stop`: requests through the agent's
//! protocol.
//!
//! Approvals, rejections, retries and stops are annotations on the flow with a fresh request id, which the agent
//! acknowledges in `status.handledRequests`; suspend and resume set `spec.suspend`, which the
//! agent acknowledges by observing the new generation. `--wait` polls for that.

use std::io::Write;
use std::time::Duration;

use jiff::Timestamp;
use jobflow::api::{FlowPhase, JobFlow, StepPhase, StepType};
use jobflow::labels;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::Verdict;
use crate::cli::{ApproveArgs, RejectArgs, RetryArgs, SuspendArgs, WaitArgs};
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
    if !wait.wait {
        return Ok(Verdict::Positive);
    }
    let what = format!("the agent to carry out the {}", decision.noun());
    let flow = wait_for(cluster, flow_name, wait, &what, |flow| {
        handled(flow, &key, &id)
    })
    .await?;
    writeln!(
        out,
        "step {step_name:?} {}; it is {}, the flow {}",
        decision.past(),
        step_phase(&flow, step_name).map_or_else(|| "Pending".to_owned(), style::step_phase),
        style::flow_phase(flow.status.as_ref().and_then(|status| status.phase))
    )?;
    Ok(Verdict::Positive)
}

/// `stop FLOW`.
pub async fn stop(
    args: &SuspendArgs,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let flow = cluster.flow(&args.flow).await?;
    let target = qualified(cluster, &args.flow);
    if let Some(phase) = flow
        .status
        .as_ref()
        .and_then(|status| status.phase)
        .filter(|phase| phase.is_terminal())
    {
        return Err(Error::Refused(format!(
            "jobflow {target} has finished ({}); there is nothing to stop",
            phase.as_str()
        )));
    }
    let id = fresh_request_id();
    annotate(
        cluster,
        &args.flow,
        &[(labels::STOP.to_owned(), id.clone())],
    )
    .await?;
    writeln!(
        out,
        "jobflow {target}: stop requested ({}={id}); running Jobs are deleted, the rest skipped, finally steps run",
        labels::STOP
    )?;
    if !args.wait.wait {
        return Ok(Verdict::Positive);
    }
    let flow = wait_for(
        cluster,
        &args.flow,
        args.wait,
        "the flow to stop:",
        |flow| {
            handled(flow, labels::STOP, &id)
                && flow
                    .status
                    .as_ref()
                    .and_then(|status| status.phase)
                    .is_some_and(FlowPhase::is_terminal)
        },
    )
    .await?;
    writeln!(
        out,
        "the flow is {}",
        style::flow_phase(flow.status.as_ref().and_then(|status| status.phase))
    )?;
    Ok(Verdict::Positive)
}

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
    if !args.wait.wait {
        return Ok(Verdict::Positive);
    }
    let flow = wait_for(
        cluster,
        &args.flow,
        args.wait,
        "the agent to retry",
        |flow| keys.iter().all(|key| handled(flow, key, &id)),
    )
    .await?;
    let status = flow.status.clone().unwrap_or_default();
    let reset: Vec<&str> = status
        .steps
        .iter()
        .filter(|step| !step.phase.is_terminal())
        .map(|step| step.name.as_str())
        .collect();
    writeln!(
        out,
        "retry carried out; the flow is {}, steps to run again: {}",
        style::flow_phase(status.phase),
        if reset.is_empty() {
            "none (see the flow's Events)".to_owned()
        } else {
            reset.join(", ")
        }
    )?;
    Ok(Verdict::Positive)
}

/// `suspend FLOW` (`suspend` true) and `resume FLOW` (false).
pub async fn set_suspend(
    args: &SuspendArgs,
    suspend: bool,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let flow = cluster.flow(&args.flow).await?;
    let target = qualified(cluster, &args.flow);
    let verb = if suspend { "suspend" } else { "resume" };
    let phase = flow.status.as_ref().and_then(|status| status.phase);
    if let Some(phase) = phase.filter(|phase| phase.is_terminal()) {
        return Err(Error::Refused(format!(
            "jobflow {target} has finished ({}); there is nothing to {verb}",
            phase.as_str()
        )));
    }
    if flow.spec.suspend.unwrap_or(false) == suspend {
        writeln!(
            out,
            "jobflow {target} is already {}",
            if suspend {
                "suspended"
            } else {
                "not suspended"
            }
        )?;
        return Ok(Verdict::Positive);
    }
    let patched = cluster
        .flows()
        .patch(
            &args.flow,
            &patch_params(),
            &Patch::Merge(json!({"spec": {"suspend": suspend}})),
        )
        .await
        .map_err(|source| Error::Api {
            action: format!("{verb} jobflow {target}"),
            source,
        })?;
    let generation = patched.metadata.generation.unwrap_or(0);
    writeln!(
        out,
        "jobflow {target}: {} (spec.suspend={suspend})",
        if suspend {
            "suspended; running Jobs finish, no new step starts"
        } else {
            "resumed"
        }
    )?;
    if !args.wait.wait {
        return Ok(Verdict::Positive);
    }
    let flow = wait_for(
        cluster,
        &args.flow,
        args.wait,
        "the agent to see the change",
        |flow| {
            let status = flow.status.as_ref();
            let observed = status
                .and_then(|status| status.observed_generation)
                .unwrap_or(0);
            let phase = status.and_then(|status| status.phase);
            observed >= generation && (phase == Some(FlowPhase::Suspended)) == suspend
        },
    )
    .await?;
    writeln!(
        out,
        "the flow is {}",
        style::flow_phase(flow.status.as_ref().and_then(|status| status.phase))
    )?;
    Ok(Verdict::Positive)
}

/// `namespace/name`.
fn qualified(cluster: &Cluster, flow: &str) -> String {
    format!("{}/{flow}", cluster.namespace)
}

/// The step called `name` (regular or finally), or [`Error::StepNotFound`].
fn find_step<'a>(
    flow: &'a JobFlow,
    target: &str,
    name: &str,
) -> Result<&'a jobflow::api::Step, Error> {
    let mut steps = flow.spec.steps.iter().chain(&flow.spec.finally);
    steps
        .find(|step| step.name == name)
        .ok_or_else(|| Error::StepNotFound {
            flow: target.to_owned(),
            step: name.to_owned(),
            known: flow
                .spec
                .steps
                .iter()
                .chain(&flow.spec.finally)
                .map(|step| step.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The step's phase in the status, if the status has it.
fn step_phase(flow: &JobFlow, step: &str) -> Option<StepPhase> {
    flow.status
        .as_ref()?
        .steps
        .iter()
        .find(|status| status.name == step)
        .map(|status| status.phase)
}

/// True when the agent has acknowledged request `id` under `key`.
fn handled(flow: &JobFlow, key: &str, id: &str) -> bool {
    flow.status
        .as_ref()
        .and_then(|status| status.handled_requests.get(key))
        .is_some_and(|handled| handled == id)
}

/// Sets annotations (a merge patch, as `kubectl annotate --overwrite`).
async fn annotate(cluster: &Cluster, flow: &str, pairs: &[(String, String)]) -> Result<(), Error> {
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
async fn wait_for(
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

/// Merge patches under the plugin's field manager.
fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}
