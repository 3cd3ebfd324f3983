//! A flow's life around its steps: TTL deletion with garbage collection of its Jobs, a status
//! that keeps every field through the API server, and no status write when nothing changed;
//! against the local control plane with the real `jobflow-agent` binary.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use jobflow::api::{FlowPhase, JobFlow, JobFlowStatus, reasons};
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, create_flow, flow_completed_at, flow_jobs, flow_jobs_by_name,
    wait_for_phase, wait_for_retry, without_hash,
};
use jobflow_tests::{FakePod, POLL, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tokio::time::Instant;

/// How long any one flow may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// `value` at the `/`-separated JSON pointer `pointer`, failing with the whole status when absent.
fn field<'a>(status: &'a Value, pointer: &str) -> anyhow::Result<&'a Value> {
    status
        .pointer(pointer)
        .filter(|value| !value.is_null())
        .with_context(|| format!("status has no {pointer}: {status:#}"))
}

/// `value` at `pointer` as a string.
fn string<'a>(status: &'a Value, pointer: &str) -> anyhow::Result<&'a str> {
    field(status, pointer)?
        .as_str()
        .with_context(|| format!("status {pointer} is not a string: {status:#}"))
}

/// `value` at `pointer` as an RFC 3339 time.
fn time(status: &Value, pointer: &str) -> anyhow::Result<Timestamp> {
    let text = string(status, pointer)?;
    text.parse()
        .with_context(|| format!("status {pointer} = {text:?} is not a time"))
}

/// The step named `name` in the raw status.
fn raw_step<'a>(status: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    field(status, "/steps")?
        .as_array()
        .context("status.steps is not a list")?
        .iter()
        .find(|step| step["name"] == name)
        .with_context(|| format!("status has no step {name}: {status:#}"))
}

/// Checks every field of each step of the finished flow `fields` in its raw `status`.
fn check_steps(
    status: &Value,
    started: Timestamp,
    jobs: &BTreeMap<String, Job>,
) -> anyhow::Result<()> {
    for (name, phase, attempt, retries, job) in [
        ("produce", "Succeeded", 1, 0, "fields-produce-1"),
        ("consume", "Succeeded", 1, 0, "fields-consume-1"),
        ("flaky", "Failed", 2, 1, "fields-flaky-2"),
    ] {
        let step = raw_step(status, name)?;
        assert_eq!(string(step, "/phase")?, phase, "{step:#}");
        assert!(!string(step, "/reason")?.is_empty(), "{step:#}");
        assert!(!string(step, "/message")?.is_empty(), "{step:#}");
        assert_eq!(field(step, "/attempt")?, attempt, "{step:#}");
        assert_eq!(field(step, "/retryCount")?, retries, "{step:#}");
        assert_eq!(without_hash(string(step, "/jobRef/name")?), job, "{step:#}");
        let uid = jobs
            .get(job)
            .and_then(ResourceExt::uid)
            .with_context(|| format!("no Job {job} among {:?}", jobs.keys()))?;
        assert_eq!(string(step, "/jobRef/uid")?, uid, "{step:#}");
        let step_started = time(step, "/startTime")?;
        let step_completed = time(step, "/completionTime")?;
        assert!(started <= step_started && step_started <= step_completed);
        assert!(step.get("nextAttemptTime").is_none(), "{step:#}");
    }
    assert_eq!(
        string(raw_step(status, "produce")?, "/outputs/digest")?,
        "sha256:abc"
    );

    Ok(())
}

#[tokio::test]
async fn ttl_deletes_the_flow_and_garbage_collection_its_jobs() -> anyhow::Result<()> {
    run_with_agent("agent-ttl", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let pods: Api<Pod> = ns.api();
        let flow = FlowBuilder::new("ephemeral")
            .step(StepBuilder::new("a", &FakePod::quick()))
            .step(StepBuilder::new("b", &FakePod::quick()).after(&["a"]))
            .ttl_seconds_after_finished(2)
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "ephemeral", FlowPhase::Succeeded, TIMEOUT).await?;
        let completed = flow_completed_at(&done)?;
        let owned = flow_jobs(&jobs, "ephemeral").await?;
        assert_eq!(owned.len(), 2);
        for job in &owned {
            let reference = &job.owner_references()[0];
            assert_eq!((reference.kind.as_str(), reference.uid.as_str()), ("JobFlow", done.uid().unwrap().as_str()));
        }

        // The flow stays for its 2 s TTL (counted in the whole seconds of completionTime), then
        // goes.
        let expires = completed + SignedDuration::from_secs(2);
        wait_for("the flow to be deleted after its TTL", Duration::from_secs(30), POLL, || async {
            let present = flows.get_opt("ephemeral").await?.is_some();
            let now = Timestamp::now();
            if !present && now < expires {
                anyhow::bail!(
                    "flow deleted at {now}, before its TTL ended at {expires} (completed {completed})"
                );
            }
            Ok((!present).then_some(()))
        })
        .await?;

        // Its Jobs and their pods follow through the garbage collector.
        wait_for("the flow's Jobs to be garbage-collected", Duration::from_secs(60), POLL, || async {
            Ok(flow_jobs(&jobs, "ephemeral").await?.is_empty().then_some(()))
        })
        .await?;
        let selector = format!("{}=ephemeral", jobflow::labels::FLOW);
        wait_for("the flow's pods to be gone", Duration::from_secs(60), POLL, || async {
            Ok(pods
                .list(&ListParams::default().labels(&selector))
                .await?
                .items
                .is_empty()
                .then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn status_keeps_every_field_through_the_api_server() -> anyhow::Result<()> {
    run_with_agent("agent-status-fields", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let raw: Api<DynamicObject> =
            Api::namespaced_with(ns.client(), ns.name(), &ApiResource::erase::<JobFlow>(&()));
        let flow = FlowBuilder::new("fields")
            .step(
                StepBuilder::new(
                    "produce",
                    &FakePod::quick().with_output(&json!({"digest": "sha256:abc"})),
                )
                .output("digest", ".digest"),
            )
            .step(StepBuilder::new("consume", &FakePod::quick()).after(&["produce"]))
            // Fails twice, tolerated: shows the retry fields on the way.
            .step(
                StepBuilder::new("flaky", &FakePod::fail(3, "exit three"))
                    .retries_with_fixed_backoff(1, "2s")
                    .continue_on_failure(),
            )
            .build();
        create_flow(&flows, &flow).await?;

        // While flaky waits for its retry: nextAttemptTime, retryCount and the reason are stored.
        wait_for_retry(&flows, "fields", "flaky", 1, TIMEOUT).await?;
        let waiting = raw.get("fields").await?;
        let waiting_status = &waiting.data["status"];
        let flaky = raw_step(waiting_status, "flaky")?;
        time(flaky, "/nextAttemptTime")?;
        assert_eq!(field(flaky, "/retryCount")?, 1);
        assert_eq!(string(flaky, "/reason")?, reasons::JOB_FAILED);
        assert!(
            string(flaky, "/message")?.contains("retry 1 of 1 in 2s"),
            "{flaky:#}"
        );

        wait_for_phase(&flows, "fields", FlowPhase::Succeeded, TIMEOUT).await?;
        let object = raw.get("fields").await?;
        let status = &object.data["status"];
        let generation = object.metadata.generation.context("no generation")?;

        assert_eq!(string(status, "/phase")?, "Succeeded");
        assert_eq!(field(status, "/observedGeneration")?, generation);
        let started = time(status, "/startTime")?;
        let completed = time(status, "/completionTime")?;
        assert!(started <= completed);

        let conditions = field(status, "/conditions")?
            .as_array()
            .context("conditions")?;
        assert_eq!(conditions.len(), 1, "{status:#}");
        let ready = &conditions[0];
        assert_eq!(string(ready, "/type")?, "Ready");
        assert_eq!(string(ready, "/status")?, "True");
        assert_eq!(string(ready, "/reason")?, reasons::FLOW_SUCCEEDED);
        assert!(!string(ready, "/message")?.is_empty());
        time(ready, "/lastTransitionTime")?;
        assert_eq!(field(ready, "/observedGeneration")?, generation);

        let progress = field(status, "/progress")?;
        for (key, expected) in [
            ("completedSteps", 3),
            ("totalSteps", 3),
            ("successfulSteps", 2),
            ("failedSteps", 1),
            ("skippedSteps", 0),
            ("runningSteps", 0),
        ] {
            assert_eq!(
                field(progress, &format!("/{key}"))?,
                expected,
                "progress.{key}"
            );
        }
        assert_eq!(string(progress, "/summary")?, "3/3");

        check_steps(status, started, &flow_jobs_by_name(&jobs, "fields").await?)?;

        // Nothing unknown and nothing lost: the typed status reads the stored one exactly.
        let typed: JobFlowStatus = serde_json::from_value(status.clone())?;
        assert_eq!(&serde_json::to_value(&typed)?, status);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn no_status_patch_when_nothing_changed() -> anyhow::Result<()> {
    run_with_agent("agent-no-op-patch", |ns, agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let flow = FlowBuilder::new("settled")
            .step(StepBuilder::new("a", &FakePod::quick()))
            .step(StepBuilder::new("b", &FakePod::quick()).after(&["a"]))
            .build();
        create_flow(&flows, &flow).await?;
        wait_for_phase(&flows, "settled", FlowPhase::Succeeded, TIMEOUT).await?;

        // The counter grows before each write is sent, so the write of Succeeded is counted.
        let patches = || async {
            agent
                .metric_value(
                    "zen_flow_api_requests_total",
                    &[("operation", "patch_status")],
                )
                .await?
                .context("no patch_status series although the agent wrote status")
        };
        let reconciles = || async {
            agent
                .metric_value("zen_flow_reconciliation_duration_seconds_count", &[])
                .await?
                .context("no reconciliation_duration series")
        };
        let before = patches().await?;
        assert!(
            before >= 3.0,
            "only {before} status writes for a two-step flow"
        );
        let reconciled_before = reconciles().await?;

        // A change that is none for the status: the agent reconciles and must write nothing.
        flows
            .patch(
                "settled",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"zen-flow.test/poke": "1"}}})),
            )
            .await?;
        let window = Duration::from_secs(3);
        let end = Instant::now() + window;
        while Instant::now() < end {
            let now = patches().await?;
            assert!(
                (now - before).abs() < f64::EPSILON,
                "the agent patched the status of a settled flow: {before} -> {now} patch_status \
                 requests"
            );
            tokio::time::sleep(POLL).await;
        }
        let reconciled_after = reconciles().await?;
        assert!(
            reconciled_after > reconciled_before,
            "no reconcile ran in the {window:?} window ({reconciled_before} -> \
             {reconciled_after}), so it tested nothing"
        );
        let flow = flows.get("settled").await?;
        assert_eq!(
            flow.status.as_ref().and_then(|s| s.phase),
            Some(FlowPhase::Succeeded)
        );
        Ok(())
    })
    .await
}
