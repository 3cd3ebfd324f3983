//! `describe FLOW`: everything about one flow on one screen, optionally redrawn until it ends.

use std::fmt::Write as _;

use jiff::Timestamp;
use jobflow::api::{FlowPhase, JobFlow, JobFlowStatus, StepPhase, StepStatus};
use jobflow::labels;
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::cli::DescribeArgs;
use crate::connect::Cluster;
use crate::error::Error;
use crate::watch::{self, Redraw};
use crate::{Output, Verdict, style, table, time};

/// How many of the latest Events are shown.
const EVENTS_SHOWN: usize = 10;

/// Describes the flow once, or redraws it until it ends with `--watch`.
pub async fn run(
    args: &DescribeArgs,
    cluster: &Cluster,
    output: &mut Output<'_>,
) -> Result<Verdict, Error> {
    let mut redraw = Redraw::default();
    loop {
        let flow = cluster.flow(&args.flow).await?;
        let events = events(cluster, &args.flow).await?;
        let text = render(&flow, &events, Timestamp::now());
        if !args.watch {
            output.out.write_all(text.as_bytes())?;
            return Ok(Verdict::Positive);
        }
        redraw.draw(output, text)?;
        if let Some(verdict) = watch::ended(flow.status.as_ref().and_then(|status| status.phase)) {
            return Ok(verdict);
        }
        tokio::time::sleep(watch::REDRAW).await;
    }
}

/// The flow's Events, oldest first.
async fn events(cluster: &Cluster, flow: &str) -> Result<Vec<Event>, Error> {
    let api: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let params = ListParams::default().fields(&format!(
        "involvedObject.kind=JobFlow,involvedObject.name={flow}"
    ));
    let mut events = api
        .list(&params)
        .await
        .map_err(|source| Error::Api {
            action: format!("list the Events of jobflow {}/{flow}", cluster.namespace),
            source,
        })?
        .items;
    events.sort_by_key(event_time);
    Ok(events)
}

/// When an Event last happened, as seconds since the epoch.
fn event_time(event: &Event) -> i64 {
    event
        .last_timestamp
        .as_ref()
        .map(|time| time.0)
        .or_else(|| event.event_time.as_ref().map(|time| time.0))
        .or_else(|| {
            event
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|time| time.0)
        })
        .map_or(0, Timestamp::as_second)
}

/// The description of `flow` with its `events` (oldest first), at `now`.
pub fn render(flow: &JobFlow, events: &[Event], now: Timestamp) -> String {
    let status = flow.status.clone().unwrap_or_default();
    let name = flow.name_any();
    let namespace = flow.namespace().unwrap_or_default();
    let mut text = String::new();
    write_header(&mut text, flow, &status, now);

    section(&mut text, "Conditions");
    let conditions: Vec<Vec<String>> = status
        .conditions
        .iter()
        .map(|condition| {
            vec![
                condition.type_.clone(),
                condition.status.clone(),
                condition.reason.clone(),
                time::age(Some(&condition.last_transition_time), now),
                condition.message.clone(),
            ]
        })
        .collect();
    indented(
        &mut text,
        &["type", "status", "reason", "age", "message"],
        &conditions,
    );

    section(&mut text, "Steps");
    let steps = step_rows(flow, &status.steps, now);
    indented(
        &mut text,
        &[
            "step", "phase", "attempt", "job", "duration", "reason", "message",
        ],
        &steps,
    );

    let outputs: Vec<String> = status
        .steps
        .iter()
        .flat_map(|step| {
            step.outputs
                .iter()
                .map(move |(key, value)| format!("  {}.{key} = {value}", step.name))
        })
        .collect();
    if !outputs.is_empty() {
        section(&mut text, "Outputs");
        for line in outputs {
            let _ = writeln!(text, "{line}");
        }
    }

    let requests = requests(flow, &status.handled_requests);
    if !requests.is_empty() {
        section(&mut text, "Requests");
        indented(&mut text, &["annotation", "request", "state"], &requests);
    }

    write_events(&mut text, events, now);

    for hint in next_steps(&name, &namespace, status.phase, &status.steps) {
        let _ = writeln!(text, "{hint}");
    }
    text
}

/// Name, namespace, phase, progress and times.
fn write_header(text: &mut String, flow: &JobFlow, status: &JobFlowStatus, now: Timestamp) {
    let field = |text: &mut String, label: &str, value: &str| {
        let _ = writeln!(text, "{:<12} {value}", format!("{label}:"));
    };
    field(text, "Name", &flow.name_any());
    field(text, "Namespace", &flow.namespace().unwrap_or_default());
    field(text, "Phase", &style::flow_phase(status.phase));
    if let Some(progress) = &status.progress {
        field(
            text,
            "Progress",
            &format!(
                "{} ({} succeeded, {} failed, {} skipped, {} running)",
                progress.summary,
                progress.successful_steps,
                progress.failed_steps,
                progress.skipped_steps,
                progress.running_steps
            ),
        );
    }
    if let Some(deleted) = &flow.metadata.deletion_timestamp {
        let finalizers = flow.metadata.finalizers.clone().unwrap_or_default();
        let mut line = time::stamp(Some(deleted), now);
        if !finalizers.is_empty() {
            let _ = write!(line, ", waiting for finalizers {}", finalizers.join(", "));
        }
        field(text, "Deleting", &line);
    }
    if flow.spec.suspend == Some(true) {
        field(text, "Suspend", "true");
    }
    field(
        text,
        "Created",
        &time::stamp(flow.metadata.creation_timestamp.as_ref(), now),
    );
    field(
        text,
        "Started",
        &time::stamp(status.start_time.as_ref(), now),
    );
    field(
        text,
        "Completed",
        &time::stamp(status.completion_time.as_ref(), now),
    );
    if let (Some(start), Some(end)) = (&status.start_time, &status.completion_time) {
        field(
            text,
            "Duration",
            &time::duration(Some(start), Some(end), now),
        );
    }
}

/// The latest Events.
fn write_events(text: &mut String, events: &[Event], now: Timestamp) {
    section(text, "Events");
    let shown = &events[events.len().saturating_sub(EVENTS_SHOWN)..];
    let events: Vec<Vec<String>> = shown
        .iter()
        .map(|event| {
            vec![
                time::human(now.as_second() - event_time(event)),
                event.type_.clone().unwrap_or_default(),
                event.reason.clone().unwrap_or_default(),
                event.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    indented(text, &["age", "type", "reason", "message"], &events);
}

fn section(text: &mut String, title: &str) {
    let _ = writeln!(text, "{}", style::heading(&format!("{title}:")));
}

/// A table indented under its section, or `  <none>`.
fn indented(text: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        text.push_str("  <none>\n");
        return;
    }
    for line in table::render(headers, rows).lines() {
        let _ = writeln!(text, "  {line}");
    }
}

/// One row per step, in declaration order, from the status when it has the step.
fn step_rows(flow: &JobFlow, statuses: &[StepStatus], now: Timestamp) -> Vec<Vec<String>> {
    flow.all_steps()
        .map(|step| {
            let status = statuses.iter().find(|status| status.name == step.name);
            let Some(status) = status else {
                return vec![step.name.clone(), "Pending".to_owned(), "0".to_owned()];
            };
            vec![
                status.name.clone(),
                status.phase.as_str().to_owned(),
                status.attempt.to_string(),
                status
                    .job_ref
                    .as_ref()
                    .map(|job| job.name.clone())
                    .unwrap_or_default(),
                time::duration(
                    status.start_time.as_ref(),
                    status.completion_time.as_ref(),
                    now,
                ),
                status.reason.clone().unwrap_or_default(),
                one_line(status.message.as_deref().unwrap_or_default()),
            ]
        })
        .collect()
}

/// A message on one line, at most 80 characters.
fn one_line(message: &str) -> String {
    let flat = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 80 {
        let cut: String = flat.chars().take(79).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// The flow's request annotations and whether the agent has carried each out.
fn requests(
    flow: &JobFlow,
    handled: &std::collections::BTreeMap<String, String>,
) -> Vec<Vec<String>> {
    flow.annotations()
        .iter()
        .filter(|(key, _)| {
            key.starts_with(labels::APPROVE_PREFIX)
                || key.starts_with(labels::REJECT_PREFIX)
                || key.starts_with(labels::RETRY_PREFIX)
                || key.as_str() == labels::RETRY
                || key.as_str() == labels::STOP
        })
        .map(|(key, request)| {
            let state = if handled.get(key) == Some(request) {
                "handled"
            } else {
                "pending"
            };
            vec![key.clone(), request.clone(), state.to_owned()]
        })
        .collect()
}

/// What the user can do next, as plugin commands.
fn next_steps(
    name: &str,
    namespace: &str,
    phase: Option<FlowPhase>,
    steps: &[StepStatus],
) -> Vec<String> {
    let mut hints = Vec::new();
    for step in steps
        .iter()
        .filter(|step| step.phase == StepPhase::PendingApproval)
    {
        hints.push(format!(
            "Waiting for approval: kubectl jobflow approve {name} {step} -n {namespace} \
             (or: kubectl jobflow reject {name} {step} -n {namespace} --message WHY)",
            step = step.name
        ));
    }
    if phase == Some(FlowPhase::Failed) {
        hints.push(format!(
            "To run the failed part again: kubectl jobflow retry {name} -n {namespace}"
        ));
    }
    if phase == Some(FlowPhase::Suspended) {
        hints.push(format!(
            "Suspended: kubectl jobflow resume {name} -n {namespace}"
        ));
    }
    hints
}
