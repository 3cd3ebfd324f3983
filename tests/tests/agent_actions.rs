//! What people do to a running flow, end to end with the real `jobflow-agent`: approve a Manual
//! step, suspend and resume, retry a failed flow. Requests are annotations on the flow
//! (`approve.workflow.kube-zen.io/<step>`, `workflow.kube-zen.io/retry`), acknowledged in
//! `status.handledRequests` so that a request left in place is carried out once.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use jobflow::api::{FlowPhase, JobFlow, Step, StepPhase, StepStatus, StepType, reasons};
use jobflow::labels;
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, events_for, find_job_name, flow_jobs, phase, readable_job_name,
    ready_message, ready_reason, step_job_name, step_status, wait_for_flow, wait_for_phase,
};
use jobflow_tests::jobs::pods_of;
use jobflow_tests::{FakePod, POLL, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::time::Instant;

/// How long one flow (or one change of it) may take; the slowest here runs ~10 s of fake pods.
const TIMEOUT: Duration = Duration::from_secs(60);

/// How long "nothing happens" is watched for, once a positive sign shows the agent has seen
/// the state in question (so this is a margin against a late, wrong action, not the proof).
const QUIET: Duration = Duration::from_secs(3);

/// A Manual step after `after`, showing `message` while it waits.
fn manual(name: &str, after: &[&str], message: &str) -> Step {
    Step {
        name: name.to_owned(),
        step_type: StepType::Manual,
        message: Some(message.to_owned()),
        dependencies: after.iter().map(|step| (*step).to_owned()).collect(),
        ..Step::default()
    }
}

/// Sets annotations on the flow (a merge patch, as `kubectl annotate --overwrite` does).
async fn annotate(flows: &Api<JobFlow>, name: &str, pairs: &[(&str, &str)]) -> anyhow::Result<()> {
    let annotations: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), Value::from(*value)))
        .collect();
    flows
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
        )
        .await?;
    Ok(())
}

/// The request `key` the agent acknowledged in `status.handledRequests`.
fn handled<'a>(flow: &'a JobFlow, key: &str) -> Option<&'a str> {
    flow.status
        .as_ref()?
        .handled_requests
        .get(key)
        .map(String::as_str)
}

/// The names of the flow's Jobs, sorted.
async fn job_names(jobs: &Api<Job>, flow: &str) -> anyhow::Result<BTreeSet<String>> {
    Ok(flow_jobs(jobs, flow)
        .await?
        .iter()
        .map(readable_job_name)
        .collect())
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

/// Fails if `check` turns false (or errs) at any poll during `window`.
async fn holds_for<F, Fut>(what: &str, window: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let end = Instant::now() + window;
    while Instant::now() < end {
        anyhow::ensure!(check().await?, "{what} stopped holding within {window:?}");
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// The notes (messages) of the flow's Events with `reason`.
async fn event_notes(events: &Api<Event>, flow: &str, reason: &str) -> anyhow::Result<Vec<String>> {
    Ok(events_for(events, flow)
        .await?
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some(reason))
        .map(|event| event.message.unwrap_or_default())
        .collect())
}

/// Reopens the gate of flow `release` (a retry request naming it resets it and what follows),
/// then checks that the approval `approve: r1`, still on the flow and already handled, does not
/// approve it a second time.
async fn reopened_gate_ignores_the_handled_approval(
    flows: &Api<JobFlow>,
    jobs: &Api<Job>,
    events: &Api<Event>,
    approve: &str,
) -> anyhow::Result<()> {
    let retry_gate = format!("{}gate", labels::RETRY_PREFIX);
    annotate(flows, "release", &[(retry_gate.as_str(), "again")]).await?;
    let reopened = wait_for_flow(
        flows,
        "release",
        "the gate to wait for approval again after retry request retry.../gate=again",
        TIMEOUT,
        |flow| {
            Ok(handled(flow, &retry_gate) == Some("again")
                && phase(flow) == Some(FlowPhase::Paused)
                && step_status(flow, "gate")?.phase == StepPhase::PendingApproval)
        },
    )
    .await?;
    assert_eq!(step_status(&reopened, "deploy")?.phase, StepPhase::Pending);

    // The same approval again, next to an approval of a step that does not exist: the agent
    // acknowledges the latter (with a warning), which proves it planned the flow with r1
    // present, and r1 still approved nothing.
    let stray = format!("{}no-such-step", labels::APPROVE_PREFIX);
    annotate(flows, "release", &[(approve, "r1"), (&stray, "w1")]).await?;
    let seen = wait_for_flow(
        flows,
        "release",
        "the approval of a missing step to be acknowledged",
        TIMEOUT,
        |flow| Ok(handled(flow, &stray) == Some("w1")),
    )
    .await?;
    assert_eq!(
        step_status(&seen, "gate")?.phase,
        StepPhase::PendingApproval,
        "approval r1 was carried out twice"
    );
    assert_eq!(phase(&seen), Some(FlowPhase::Paused));
    assert_eq!(handled(&seen, approve), Some("r1"));
    // The Event is published after the status write that acknowledged the request.
    wait_for(
        "an ApprovalRejected Event naming no-such-step",
        TIMEOUT,
        POLL,
        || async {
            let rejected = event_notes(events, "release", reasons::APPROVAL_REJECTED).await?;
            Ok(rejected
                .iter()
                .any(|note| note.contains("no-such-step"))
                .then_some(()))
        },
    )
    .await?;
    holds_for(
        "the gate waiting, with no second deploy Job",
        QUIET,
        || async {
            let flow = flows.get("release").await?;
            Ok(
                step_status(&flow, "gate")?.phase == StepPhase::PendingApproval
                    && !job_names(jobs, "release")
                        .await?
                        .contains("release-deploy-2"),
            )
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn manual_approval_releases_the_next_step_once_per_request() -> anyhow::Result<()> {
    run_with_agent("manual-approval", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let events: Api<Event> = ns.api();
        let flow = FlowBuilder::new("release")
            .step(StepBuilder::new("build", &FakePod::quick()))
            .step(manual("gate", &["build"], "ship release 1.2?"))
            .step(StepBuilder::new("deploy", &FakePod::quick()).after(&["gate"]))
            .build();
        flows.create(&PostParams::default(), &flow).await?;

        // Once build succeeded the gate waits, and nothing else can run: the flow is Paused.
        let paused = wait_for_phase(&flows, "release", FlowPhase::Paused, TIMEOUT).await?;
        let gate = step_status(&paused, "gate")?;
        assert_eq!(gate.phase, StepPhase::PendingApproval);
        assert_eq!(gate.reason.as_deref(), Some(reasons::WAITING_FOR_APPROVAL));
        assert_eq!(gate.message.as_deref(), Some("ship release 1.2?"));
        assert_eq!(step_status(&paused, "build")?.phase, StepPhase::Succeeded);
        assert_eq!(ready_reason(&paused), reasons::FLOW_PAUSED);
        assert!(
            ready_message(&paused).contains("gate"),
            "{}",
            ready_message(&paused)
        );
        assert_eq!(
            job_names(&jobs, "release").await?,
            names(&["release-build-1"]),
            "deploy must not start before the approval"
        );

        let approve = format!("{}gate", labels::APPROVE_PREFIX);
        annotate(&flows, "release", &[(&approve, "r1")]).await?;
        let done = wait_for_phase(&flows, "release", FlowPhase::Succeeded, TIMEOUT).await?;
        let gate = step_status(&done, "gate")?;
        assert_eq!(gate.phase, StepPhase::Succeeded);
        assert_eq!(gate.reason.as_deref(), Some(reasons::APPROVED));
        assert!(
            gate.message.as_deref().unwrap_or_default().contains("r1"),
            "{gate:?}"
        );
        assert_eq!(step_status(&done, "deploy")?.phase, StepPhase::Succeeded);
        assert_eq!(handled(&done, &approve), Some("r1"));
        assert_eq!(
            job_names(&jobs, "release").await?,
            names(&["release-build-1", "release-deploy-1"])
        );
        let approved = event_notes(&events, "release", reasons::STEP_APPROVED).await?;
        assert!(
            approved.iter().any(|note| note.contains("\"r1\"")),
            "no StepApproved Event for r1: {approved:?}"
        );

        reopened_gate_ignores_the_handled_approval(&flows, &jobs, &events, &approve).await?;

        // A new request id approves it.
        annotate(&flows, "release", &[(&approve, "r2")]).await?;
        let done = wait_for_flow(
            &flows,
            "release",
            "Succeeded after approval r2",
            TIMEOUT,
            |flow| {
                Ok(handled(flow, &approve) == Some("r2")
                    && phase(flow) == Some(FlowPhase::Succeeded))
            },
        )
        .await?;
        assert_eq!(step_status(&done, "deploy")?.attempt, 2);
        assert_eq!(step_status(&done, "build")?.attempt, 1, "build ran again");
        assert_eq!(
            job_names(&jobs, "release").await?,
            names(&["release-build-1", "release-deploy-1", "release-deploy-2"])
        );
        Ok(())
    })
    .await
}

/// A merge patch of the flow's spec that the API server must refuse once the flow started.
async fn assert_spec_change_rejected(
    flows: &Api<JobFlow>,
    name: &str,
    what: &str,
    spec: Value,
) -> anyhow::Result<()> {
    let result = flows
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await;
    match result {
        Ok(flow) => anyhow::bail!(
            "changing {what} of a started flow was accepted (generation now {:?})",
            flow.metadata.generation
        ),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "changing {what}: {status:?}");
            assert!(
                status
                    .message
                    .contains("immutable once the flow has started"),
                "changing {what}: {}",
                status.message
            );
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// The CRD's transition rule: once `flow` started, every change of its spec but
/// `spec.suspend` is refused.
async fn only_suspend_may_change(flows: &Api<JobFlow>, flow: &JobFlow) -> anyhow::Result<()> {
    let mut steps = serde_json::to_value(&flow.spec.steps)?;
    assert_spec_change_rejected(
        flows,
        &flow.name_any(),
        "executionPolicy.backoffLimit",
        json!({"executionPolicy": {"backoffLimit": 1}}),
    )
    .await?;
    steps[1]["dependencies"] = json!([]);
    assert_spec_change_rejected(
        flows,
        &flow.name_any(),
        "a step's dependencies",
        json!({"steps": steps.clone()}),
    )
    .await?;
    let mut retimed = serde_json::to_value(&flow.spec.steps)?;
    retimed[1]["template"]["spec"]["template"]["metadata"]["annotations"]
        [jobflow_tests::ANNOTATION_DURATION] = json!("9s");
    assert_spec_change_rejected(
        flows,
        &flow.name_any(),
        "a step's Job template",
        json!({"steps": retimed}),
    )
    .await?;
    let extra = serde_json::to_value(Step::from(StepBuilder::new("cleanup", &FakePod::quick())))?;
    assert_spec_change_rejected(
        flows,
        &flow.name_any(),
        "finally",
        json!({"finally": [extra]}),
    )
    .await?;
    assert_spec_change_rejected(
        flows,
        &flow.name_any(),
        "resourceTemplates",
        json!({"resourceTemplates": {"configMapTemplates": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
        ]}}),
    )
    .await?;
    // Resuming does not let another change ride along.
    assert_spec_change_rejected(
        flows,
        &flow.name_any(),
        "suspend together with a step",
        json!({"suspend": false, "steps": steps}),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn suspend_holds_new_steps_and_is_the_only_change_allowed_once_started() -> anyhow::Result<()>
{
    run_with_agent("suspend-resume", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let events: Api<Event> = ns.api();
        // a runs long enough for the suspension to land while it runs.
        let flow = FlowBuilder::new("nightly")
            .step(StepBuilder::new(
                "a",
                &FakePod::succeed().running_for(Duration::from_secs(6)),
            ))
            .step(StepBuilder::new("b", &FakePod::quick()).after(&["a"]))
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        wait_for("a's Job", TIMEOUT, POLL, || async {
            Ok(job_names(&jobs, "nightly")
                .await?
                .contains("nightly-a-1")
                .then_some(()))
        })
        .await?;

        let suspended = flows
            .patch(
                "nightly",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"suspend": true}})),
            )
            .await?;
        assert_eq!(suspended.spec.suspend, Some(true));
        let generation = suspended.metadata.generation;

        // The running Job finishes; the step after it must not start.
        let held = wait_for_flow(
            &flows,
            "nightly",
            "Suspended with a Succeeded",
            TIMEOUT,
            |flow| {
                Ok(phase(flow) == Some(FlowPhase::Suspended)
                    && step_status(flow, "a")?.phase == StepPhase::Succeeded)
            },
        )
        .await?;
        assert_eq!(ready_reason(&held), reasons::FLOW_SUSPENDED);
        assert_eq!(
            held.status.as_ref().unwrap().observed_generation,
            generation
        );
        assert_eq!(step_status(&held, "b")?.phase, StepPhase::Pending);
        // The status that recorded a's success was written after that pass's Jobs were created,
        // so b's Job would exist by now if the agent had started it.
        assert_eq!(job_names(&jobs, "nightly").await?, names(&["nightly-a-1"]));
        holds_for("no Job for b while suspended", QUIET, || async {
            Ok(!job_names(&jobs, "nightly").await?.contains("nightly-b-1"))
        })
        .await?;

        only_suspend_may_change(&flows, &flow).await?;
        let unchanged = flows.get("nightly").await?;
        assert_eq!(unchanged.metadata.generation, generation);
        assert_eq!(unchanged.spec.suspend, Some(true));

        let resumed = flows
            .patch(
                "nightly",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"suspend": false}})),
            )
            .await?;
        assert_eq!(resumed.spec.suspend, Some(false));
        let done = wait_for_phase(&flows, "nightly", FlowPhase::Succeeded, TIMEOUT).await?;
        assert_eq!(step_status(&done, "b")?.phase, StepPhase::Succeeded);
        assert_eq!(
            job_names(&jobs, "nightly").await?,
            names(&["nightly-a-1", "nightly-b-1"])
        );
        assert_eq!(done.spec.steps, flow.spec.steps, "a rejected change stuck");
        for reason in [reasons::FLOW_SUSPENDED, reasons::FLOW_RESUMED] {
            let notes = event_notes(&events, "nightly", reason).await?;
            assert!(!notes.is_empty(), "no {reason} Event");
        }
        Ok(())
    })
    .await
}

fn job_uid(jobs: &[Job], name: &str) -> Option<String> {
    jobs.iter()
        .find(|job| readable_job_name(job) == name)
        .and_then(|job| job.metadata.uid.clone())
}

/// In the succeeded flow `pipeline`, a retry request naming step c runs c again (and what
/// follows it: nothing), and leaves a (`a_before`, its status) and b alone.
async fn named_retry_reruns_only_that_step(
    flows: &Api<JobFlow>,
    jobs: &Api<Job>,
    a_before: &StepStatus,
) -> anyhow::Result<()> {
    let retry_c = format!("{}c", labels::RETRY_PREFIX);
    annotate(flows, "pipeline", &[(retry_c.as_str(), "r2")]).await?;
    let again = wait_for_flow(
        flows,
        "pipeline",
        "Succeeded after retry request retry.../c=r2",
        TIMEOUT,
        |flow| {
            Ok(handled(flow, &retry_c) == Some("r2") && phase(flow) == Some(FlowPhase::Succeeded))
        },
    )
    .await?;
    assert_eq!(step_status(&again, "c")?.attempt, 2);
    assert_eq!(step_status(&again, "b")?.attempt, 2, "b ran again");
    assert_eq!(step_status(&again, "a")?, a_before, "a was touched");
    assert_eq!(
        job_names(jobs, "pipeline").await?,
        names(&[
            "pipeline-a-1",
            "pipeline-b-1",
            "pipeline-b-2",
            "pipeline-c-1",
            "pipeline-c-2"
        ])
    );
    Ok(())
}

#[tokio::test]
async fn retry_of_a_failed_flow_reruns_only_the_failed_part() -> anyhow::Result<()> {
    run_with_agent("retry-failed", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let pods: Api<Pod> = ns.api();
        let events: Api<Event> = ns.api();
        // The spec cannot change once the flow started, and every attempt of b gets the same
        // template, so b's first attempt is made to fail from outside: its pod is deleted while
        // it runs (kwok then fails it with exit code 137, as a kubelet would, and backoffLimit 0
        // fails the Job). The retried attempt is left alone and succeeds. That way the retry
        // must succeed where the first run failed, and the test can tell which Jobs ran again.
        let flow = FlowBuilder::new("pipeline")
            .step(StepBuilder::new("a", &FakePod::quick()))
            .step(
                StepBuilder::new("b", &FakePod::succeed().running_for(Duration::from_secs(5)))
                    .after(&["a"]),
            )
            .step(StepBuilder::new("c", &FakePod::quick()).after(&["b"]))
            .build();
        flows.create(&PostParams::default(), &flow).await?;

        let running = wait_for("a Running pod of pipeline-b-1", TIMEOUT, POLL, || async {
            let Some(job) = find_job_name(&jobs, "pipeline-b-1").await? else {
                return Ok(None);
            };
            Ok(pods_of(&pods, &job).await?.into_iter().find(|pod| {
                pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            }))
        })
        .await?;
        pods.delete(&running.name_any(), &DeleteParams::default())
            .await?;

        let failed = wait_for_phase(&flows, "pipeline", FlowPhase::Failed, TIMEOUT).await?;
        assert_eq!(ready_reason(&failed), reasons::FLOW_FAILED);
        let a_before = step_status(&failed, "a")?.clone();
        assert_eq!(a_before.phase, StepPhase::Succeeded);
        let b = step_status(&failed, "b")?;
        assert_eq!(
            (b.phase, b.reason.as_deref()),
            (StepPhase::Failed, Some(reasons::JOB_FAILED))
        );
        let c = step_status(&failed, "c")?;
        assert_eq!(
            (c.phase, c.reason.as_deref()),
            (StepPhase::Skipped, Some(reasons::UPSTREAM_FAILED))
        );
        let before = flow_jobs(&jobs, "pipeline").await?;
        let a_uid = job_uid(&before, "pipeline-a-1").expect("a's Job");

        annotate(&flows, "pipeline", &[(labels::RETRY, "r1")]).await?;
        let done = wait_for_flow(
            &flows,
            "pipeline",
            "Succeeded after retry request r1",
            TIMEOUT,
            |flow| {
                if handled(flow, labels::RETRY) != Some("r1") {
                    return Ok(false);
                }
                match phase(flow) {
                    Some(FlowPhase::Failed) => {
                        anyhow::bail!("the retried flow failed again: {}", ready_message(flow))
                    }
                    current => Ok(current == Some(FlowPhase::Succeeded)),
                }
            },
        )
        .await?;
        // a kept its result: same attempt, same completion time, and its Job was not recreated.
        assert_eq!(step_status(&done, "a")?, &a_before, "a was touched");
        let b = step_status(&done, "b")?;
        assert_eq!(
            (b.phase, b.attempt, b.retry_count),
            (StepPhase::Succeeded, 2, 0)
        );
        let c = step_status(&done, "c")?;
        assert_eq!((c.phase, c.attempt), (StepPhase::Succeeded, 1));
        let after = flow_jobs(&jobs, "pipeline").await?;
        assert_eq!(
            after.iter().map(readable_job_name).collect::<BTreeSet<_>>(),
            names(&[
                "pipeline-a-1",
                "pipeline-b-1",
                "pipeline-b-2",
                "pipeline-c-1"
            ])
        );
        assert_eq!(
            job_uid(&after, "pipeline-a-1"),
            Some(a_uid),
            "a's Job was recreated"
        );
        let retries = event_notes(&events, "pipeline", reasons::STEP_RETRY).await?;
        assert!(
            retries
                .iter()
                .any(|note| note.contains("b, c") && note.contains("\"r1\"")),
            "no StepRetry Event for b and c: {retries:?}"
        );

        named_retry_reruns_only_that_step(&flows, &jobs, &a_before).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn events_tell_what_needs_a_look_and_not_the_routine() -> anyhow::Result<()> {
    run_with_agent("event-messages", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let events: Api<Event> = ns.api();
        // flaky fails twice (one retry), without failing the flow.
        let flow = FlowBuilder::new("chain")
            .step(StepBuilder::new("first", &FakePod::quick()))
            .step(StepBuilder::new("second", &FakePod::quick()).after(&["first"]))
            .step(
                StepBuilder::new("flaky", &FakePod::fail(3, "flaky"))
                    .retries(1)
                    .continue_on_failure(),
            )
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        wait_for_phase(&flows, "chain", FlowPhase::Succeeded, TIMEOUT).await?;
        // Events are how people follow a flow (`kubectl describe`): the flow's start and end,
        // and each attempt that failed, naming its own Job, not folded into an earlier Event of
        // the same reason. A step that starts or succeeds is routine: the status tells it, and
        // an Event for it would cost two API writes per step.
        let job = |step: &'static str, attempt: i32| {
            let flows = flows.clone();
            async move { step_job_name(&flows, "chain", step, attempt).await }
        };
        let wanted = [
            (reasons::FLOW_STARTED, "steps done".to_owned()),
            (
                reasons::STEP_RETRY,
                format!(
                    "Step flaky failed (JobFailed): Job {}",
                    job("flaky", 1).await?
                ),
            ),
            (
                reasons::STEP_FAILED,
                format!(
                    "Step flaky failed (JobFailed): Job {}",
                    job("flaky", 2).await?
                ),
            ),
            (reasons::FLOW_SUCCEEDED, "2 of 3 steps succeeded".to_owned()),
        ];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut missing = Vec::new();
            for (reason, text) in &wanted {
                let notes = event_notes(&events, "chain", reason).await?;
                if !notes.iter().any(|note| note.contains(text.as_str())) {
                    missing.push(format!(
                        "{reason} {text:?} (the {reason} Events say {notes:?})"
                    ));
                }
            }
            if missing.is_empty() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "Events missing after the flow succeeded: {}",
                missing.join("; ")
            );
            tokio::time::sleep(POLL).await;
        }
        for routine in ["StepCreated", "StepSucceeded"] {
            let notes = event_notes(&events, "chain", routine).await?;
            anyhow::ensure!(notes.is_empty(), "routine {routine} Events: {notes:?}");
        }
        Ok(())
    })
    .await
}
