//! Flows sharing an `executionPolicy.concurrencyKey` in a namespace, end to end with the real
//! `jobflow-agent`: Forbid makes the newer flow wait for the older one, Replace makes the older
//! one stop for the newer, and flows with different keys (or none) do not wait for each other.

use std::time::Duration;

use anyhow::Context as _;

use jobflow::api::{ConcurrencyPolicy, FlowPhase, JobFlow, StepPhase, reasons};
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, flow_completed_at, flow_jobs, phase, readable_job_name,
    ready_message, ready_reason, step_status, wait_for_flow, wait_for_phase,
};
use jobflow_tests::jobs::created_at;
use jobflow_tests::{FakePod, POLL, wait_for, wait_for_deletion};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt as _};

/// How long one flow may take; the slowest here runs ~8 s of fake pods, after waiting its turn.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A one-step flow `name` in concurrency group `key` (none when `None`) under `policy`, whose
/// step's pod runs `run_for`.
fn flow(name: &str, key: Option<&str>, policy: ConcurrencyPolicy, run_for: Duration) -> JobFlow {
    FlowBuilder::new(name)
        .step(StepBuilder::new(
            "work",
            &FakePod::succeed().running_for(run_for),
        ))
        .with(|flow| {
            flow.spec.execution_policy.concurrency_key = key.map(str::to_owned);
            flow.spec.execution_policy.concurrency_policy = policy;
        })
        .build()
}

/// Waits until flow `name` has a Job, and returns them.
async fn wait_for_jobs(jobs: &Api<Job>, name: &str) -> anyhow::Result<Vec<Job>> {
    wait_for(&format!("a Job of flow {name}"), TIMEOUT, POLL, || async {
        let list = flow_jobs(jobs, name).await?;
        Ok((!list.is_empty()).then_some(list))
    })
    .await
}

#[tokio::test]
async fn forbid_makes_the_newer_flow_wait_for_the_older() -> anyhow::Result<()> {
    run_with_agent("concurrency-forbid", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        // Older goes first by creation time, then by name: the names agree with the creation
        // order, so the test holds even when both are created within the same second.
        let first = flow(
            "a-first",
            Some("db"),
            ConcurrencyPolicy::Forbid,
            Duration::from_secs(6),
        );
        let second = flow(
            "b-second",
            Some("db"),
            ConcurrencyPolicy::Forbid,
            Duration::from_millis(500),
        );
        flows.create(&PostParams::default(), &first).await?;
        wait_for_jobs(&jobs, "a-first").await?;
        flows.create(&PostParams::default(), &second).await?;

        let waiting = wait_for_flow(
            &flows,
            "b-second",
            "Pending, waiting for a-first",
            TIMEOUT,
            |flow| Ok(phase(flow) == Some(FlowPhase::Pending)),
        )
        .await?;
        assert_eq!(ready_reason(&waiting), reasons::WAITING_FOR_CONCURRENCY);
        assert!(
            ready_message(&waiting).contains("\"a-first\""),
            "the message does not name the older flow: {}",
            ready_message(&waiting)
        );
        assert_eq!(
            step_status(&waiting, "work")?.phase,
            StepPhase::Pending,
            "{waiting:?}"
        );
        assert!(
            waiting.status.as_ref().unwrap().start_time.is_none(),
            "a waiting flow has not started"
        );
        let first_now = flows.get("a-first").await?;
        assert_eq!(
            phase(&first_now),
            Some(FlowPhase::Running),
            "the older flow ended before the newer one was seen waiting: the test proves nothing"
        );
        assert!(flow_jobs(&jobs, "b-second").await?.is_empty());

        let first_done = wait_for_phase(&flows, "a-first", FlowPhase::Succeeded, TIMEOUT).await?;
        let second_done = wait_for_phase(&flows, "b-second", FlowPhase::Succeeded, TIMEOUT).await?;
        let second_jobs = flow_jobs(&jobs, "b-second").await?;
        assert_eq!(second_jobs.len(), 1);
        // Whole seconds on the wire: the newer flow's Job cannot be older than the end of the
        // older flow.
        let (created, finished) = (
            created_at(&second_jobs[0])?,
            flow_completed_at(&first_done)?,
        );
        assert!(
            created >= finished,
            "b-second's Job was created at {created}, before a-first finished at {finished}"
        );
        assert_eq!(ready_reason(&second_done), reasons::FLOW_SUCCEEDED);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn replace_stops_the_older_flow_for_the_newer() -> anyhow::Result<()> {
    run_with_agent("concurrency-replace", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        // The older flow would run for an hour, and has a second step that must never start.
        let old = FlowBuilder::new("a-old")
            .step(StepBuilder::new(
                "long",
                &FakePod::succeed().running_for(Duration::from_secs(3600)),
            ))
            .step(StepBuilder::new("after", &FakePod::succeed()).after(&["long"]))
            .with(|flow| {
                flow.spec.execution_policy.concurrency_key = Some("deploy".to_owned());
            })
            .build();
        let new = flow(
            "b-new",
            Some("deploy"),
            ConcurrencyPolicy::Replace,
            Duration::from_millis(500),
        );
        flows.create(&PostParams::default(), &old).await?;
        let old_jobs = wait_for_jobs(&jobs, "a-old").await?;
        let old_job = readable_job_name(&old_jobs[0]);
        assert_eq!(old_job, "a-old-long-1");
        wait_for_phase(&flows, "a-old", FlowPhase::Running, TIMEOUT).await?;
        flows.create(&PostParams::default(), &new).await?;

        let replaced = wait_for_phase(&flows, "a-old", FlowPhase::Failed, TIMEOUT).await?;
        assert_eq!(ready_reason(&replaced), reasons::REPLACED);
        assert!(
            ready_message(&replaced).contains("\"b-new\""),
            "the message does not name the newer flow: {}",
            ready_message(&replaced)
        );
        let long = step_status(&replaced, "long")?;
        assert_eq!(
            (long.phase, long.reason.as_deref()),
            (StepPhase::Failed, Some(reasons::REPLACED))
        );
        let after = step_status(&replaced, "after")?;
        assert_eq!(
            (after.phase, after.reason.as_deref()),
            (StepPhase::Skipped, Some(reasons::REPLACED))
        );
        // Its running Job goes (the agent deletes it; the Job controller then its pod).
        wait_for_deletion(&jobs, &old_job, TIMEOUT).await?;

        let done = wait_for_phase(&flows, "b-new", FlowPhase::Succeeded, TIMEOUT).await?;
        let new_jobs = flow_jobs(&jobs, "b-new").await?;
        assert_eq!(new_jobs.len(), 1);
        let (created, stopped) = (created_at(&new_jobs[0])?, flow_completed_at(&replaced)?);
        assert!(
            created >= stopped,
            "b-new's Job was created at {created}, before a-old stopped at {stopped}"
        );
        assert_eq!(ready_reason(&done), reasons::FLOW_SUCCEEDED);
        assert!(
            flow_jobs(&jobs, "a-old").await?.is_empty(),
            "a-old kept a Job (its second step must never have started)"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn flows_with_different_keys_or_none_run_side_by_side() -> anyhow::Result<()> {
    run_with_agent("concurrency-independent", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let run_for = Duration::from_secs(8);
        let all = [
            flow("key-x", Some("x"), ConcurrencyPolicy::Forbid, run_for),
            flow("key-y", Some("y"), ConcurrencyPolicy::Forbid, run_for),
            flow("no-key-1", None, ConcurrencyPolicy::Forbid, run_for),
            flow("no-key-2", None, ConcurrencyPolicy::Forbid, run_for),
        ];
        for flow in &all {
            flows.create(&PostParams::default(), flow).await?;
        }
        // If any of them waited for another, their 8 s runs would not overlap: there would be no
        // moment with every flow's Job running.
        wait_for(
            "every flow's Job running at the same time",
            Duration::from_secs(30),
            POLL,
            || async {
                let list = jobs.list(&ListParams::default()).await?.items;
                let running = |flow: &JobFlow| {
                    list.iter().any(|job| {
                        readable_job_name(job) == format!("{}-work-1", flow.name_any())
                            && job.status.as_ref().is_some_and(|s| s.active == Some(1))
                    })
                };
                Ok(all.iter().all(running).then_some(()))
            },
        )
        .await?;
        for flow in &all {
            let done =
                wait_for_phase(&flows, &flow.name_any(), FlowPhase::Succeeded, TIMEOUT).await?;
            assert_eq!(ready_reason(&done), reasons::FLOW_SUCCEEDED);
        }
        Ok(())
    })
    .await
}

/// Creates `t<n>-z-first` (Forbid, its pod running `run_for`) and, once its Job exists,
/// `t<n>-a-second` (`second_policy`, a quick pod), both in concurrency group `t<n>`; tries again
/// with the next `n` until the two were created within one second, and returns their names.
///
/// creationTimestamp has whole seconds, so within one second it cannot tell which flow is older;
/// the tie then goes by name, which here sorts the newer flow first. The older flow has already
/// started by then.
async fn same_second_pair(
    flows: &Api<JobFlow>,
    jobs: &Api<Job>,
    run_for: Duration,
    second_policy: ConcurrencyPolicy,
) -> anyhow::Result<(String, String)> {
    for attempt in 0..8 {
        let key = format!("t{attempt}");
        let (first, second) = (format!("{key}-z-first"), format!("{key}-a-second"));
        let older = flow(&first, Some(&key), ConcurrencyPolicy::Forbid, run_for);
        let created = flows.create(&PostParams::default(), &older).await?;
        wait_for_jobs(jobs, &first).await?;
        let newer = flow(
            &second,
            Some(&key),
            second_policy,
            Duration::from_millis(500),
        );
        let created_second = flows.create(&PostParams::default(), &newer).await?;
        if created.metadata.creation_timestamp == created_second.metadata.creation_timestamp {
            return Ok((first, second));
        }
    }
    anyhow::bail!("could not create two flows within one second in 8 tries")
}

#[tokio::test]
async fn forbid_holds_for_a_newer_flow_created_in_the_same_second() -> anyhow::Result<()> {
    run_with_agent("concurrency-forbid-same-second", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let (first, second) = same_second_pair(
            &flows,
            &jobs,
            Duration::from_secs(4),
            ConcurrencyPolicy::Forbid,
        )
        .await?;
        let first_done = wait_for_phase(&flows, &first, FlowPhase::Succeeded, TIMEOUT).await?;
        wait_for_phase(&flows, &second, FlowPhase::Succeeded, TIMEOUT).await?;
        let second_jobs = flow_jobs(&jobs, &second).await?;
        let (created, finished) = (
            created_at(&second_jobs[0])?,
            flow_completed_at(&first_done)?,
        );
        assert!(
            created >= finished,
            "{second}'s Job was created at {created}, before {first} (created earlier, and \
             already running) finished at {finished}: two flows of one concurrencyKey ran at \
             once under Forbid"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn replace_holds_for_a_newer_flow_created_in_the_same_second() -> anyhow::Result<()> {
    run_with_agent("concurrency-replace-same-second", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let (first, second) = same_second_pair(
            &flows,
            &jobs,
            Duration::from_secs(8),
            ConcurrencyPolicy::Replace,
        )
        .await?;
        let replaced = wait_for_phase(&flows, &first, FlowPhase::Failed, TIMEOUT)
            .await
            .with_context(|| {
                format!("{first} (created earlier, already running) was not replaced by {second}")
            })?;
        assert_eq!(ready_reason(&replaced), reasons::REPLACED);
        wait_for_phase(&flows, &second, FlowPhase::Succeeded, TIMEOUT).await?;
        Ok(())
    })
    .await
}
