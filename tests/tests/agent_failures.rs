//! How the agent handles failure: failFast on and off, retries with backoff, the flow's retry
//! budget, step timeouts, the flow deadline, invalid and cyclic flows, and Jobs deleted by
//! someone else; against the local control plane with the real `jobflow-agent` binary.

use std::time::Duration;

use jobflow::api::{FlowPhase, JobFlow, StepPhase, reasons};
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, create_flow, event_reasons, events_for, flow_completed_at,
    flow_jobs_by_name, job_names, ready_message, ready_reason, real_job_name, step_phase,
    step_status, wait_for_flow, wait_for_job_deletion, wait_for_phase, wait_for_retry,
    without_hash,
};
use jobflow_tests::jobs::{created_at, finished_at};
use jobflow_tests::{FakePod, POLL, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::SignedDuration;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

/// How long any one flow may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A pod that succeeds after `millis` milliseconds.
fn succeeds_after(millis: u64) -> FakePod {
    FakePod::succeed().running_for(Duration::from_millis(millis))
}

/// A pod that fails with exit code 3 after `millis` milliseconds.
fn fails_after(millis: u64) -> FakePod {
    FakePod::fail(3, "exit three").running_for(Duration::from_millis(millis))
}

/// Waits until the flow `flow` has recorded an Event with `reason`, and returns its Events.
async fn wait_for_event(
    events: &Api<Event>,
    flow: &str,
    reason: &str,
) -> anyhow::Result<Vec<Event>> {
    wait_for(
        &format!("a {reason} Event on flow {flow}"),
        Duration::from_secs(30),
        POLL,
        || async {
            let list = events_for(events, flow).await?;
            Ok(event_reasons(&list)
                .iter()
                .any(|r| r == reason)
                .then_some(list))
        },
    )
    .await
}

/// Two branches: `a` fails after 1 s and `b` depends on it; `x` runs 3 s and `y` depends on it.
fn failing_flow(name: &str, fail_fast: bool) -> JobFlow {
    FlowBuilder::new(name)
        .step(StepBuilder::new("a", &fails_after(1000)))
        .step(StepBuilder::new("b", &succeeds_after(500)).after(&["a"]))
        .step(StepBuilder::new("x", &succeeds_after(3000)))
        .step(StepBuilder::new("y", &succeeds_after(500)).after(&["x"]))
        .fail_fast(fail_fast)
        .build()
}

#[tokio::test]
async fn without_fail_fast_a_failure_skips_downstream_and_the_other_branch_finishes()
-> anyhow::Result<()> {
    run_with_agent("agent-no-fail-fast", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        create_flow(&flows, &failing_flow("branches", false)).await?;

        let done = wait_for_phase(&flows, "branches", FlowPhase::Failed, TIMEOUT).await?;
        assert_eq!(ready_reason(&done), reasons::FLOW_FAILED);
        assert!(
            ready_message(&done).starts_with("step a failed"),
            "{}",
            ready_message(&done)
        );
        assert_eq!(
            step_phase(&done, "a")?,
            (StepPhase::Failed, Some(reasons::JOB_FAILED.to_owned()))
        );
        let a = step_status(&done, "a")?;
        assert!(
            a.message
                .as_deref()
                .unwrap_or_default()
                .contains("branches-a-1"),
            "{a:?}"
        );
        assert_eq!(
            step_phase(&done, "b")?,
            (
                StepPhase::Skipped,
                Some(reasons::UPSTREAM_FAILED.to_owned())
            )
        );
        assert!(
            step_status(&done, "b")?
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("dependency a failed"),
            "{:?}",
            step_status(&done, "b")?
        );
        assert_eq!(step_phase(&done, "x")?.0, StepPhase::Succeeded);
        assert_eq!(
            step_phase(&done, "y")?.0,
            StepPhase::Succeeded,
            "without failFast the independent branch runs to its end"
        );
        assert_eq!(
            job_names(&jobs, "branches").await?,
            ["branches-a-1", "branches-x-1", "branches-y-1"]
        );
        // y started after a had failed: failFast off really let a new step start.
        let by_name = flow_jobs_by_name(&jobs, "branches").await?;
        assert!(created_at(&by_name["branches-y-1"])? >= finished_at(&by_name["branches-a-1"])?);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn with_fail_fast_a_failure_starts_no_new_step() -> anyhow::Result<()> {
    run_with_agent("agent-fail-fast", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        create_flow(&flows, &failing_flow("halt", true)).await?;

        let done = wait_for_phase(&flows, "halt", FlowPhase::Failed, TIMEOUT).await?;
        assert_eq!(ready_reason(&done), reasons::FLOW_FAILED);
        assert_eq!(
            step_phase(&done, "b")?,
            (
                StepPhase::Skipped,
                Some(reasons::UPSTREAM_FAILED.to_owned())
            )
        );
        assert_eq!(
            step_phase(&done, "x")?.0,
            StepPhase::Succeeded,
            "a step already running when the failure came finishes"
        );
        assert_eq!(
            step_phase(&done, "y")?,
            (StepPhase::Skipped, Some(reasons::FAIL_FAST.to_owned()))
        );
        assert!(
            step_status(&done, "y")?
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("step a failed and executionPolicy.failFast is on"),
            "{:?}",
            step_status(&done, "y")?
        );
        assert_eq!(
            job_names(&jobs, "halt").await?,
            ["halt-a-1", "halt-x-1"],
            "y must never get a Job"
        );
        // The flow ended only once x had: a running step is not abandoned.
        let by_name = flow_jobs_by_name(&jobs, "halt").await?;
        let completed = flow_completed_at(&done)?;
        assert!(completed >= finished_at(&by_name["halt-x-1"])?);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn retries_wait_for_the_backoff_before_a_new_attempt_job() -> anyhow::Result<()> {
    run_with_agent("agent-retry-backoff", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let events: Api<Event> = ns.api();
        let flow = FlowBuilder::new("retry")
            .step(StepBuilder::new("flaky", &fails_after(500)).retries_with_fixed_backoff(1, "3s"))
            .build();
        create_flow(&flows, &flow).await?;

        // Between the attempts the step waits, Pending, with the time of its next attempt.
        let waiting = wait_for_retry(&flows, "retry", "flaky", 1, TIMEOUT).await?;
        let between = step_status(&waiting, "flaky")?;
        assert_eq!(between.reason.as_deref(), Some(reasons::JOB_FAILED));
        assert!(between.next_attempt_time.is_some(), "{between:?}");
        assert!(
            between
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("retry 1 of 1 in 3s"),
            "{between:?}"
        );

        let done = wait_for_phase(&flows, "retry", FlowPhase::Failed, TIMEOUT).await?;
        let flaky = step_status(&done, "flaky")?;
        assert_eq!((flaky.attempt, flaky.retry_count), (2, 1), "{flaky:?}");
        assert_eq!(flaky.reason.as_deref(), Some(reasons::JOB_FAILED));
        assert!(
            flaky
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("no retries left"),
            "{flaky:?}"
        );
        assert_eq!(
            flaky.job_ref.as_ref().map(|job| without_hash(&job.name)),
            Some("retry-flaky-2")
        );

        let by_name = flow_jobs_by_name(&jobs, "retry").await?;
        assert_eq!(
            by_name.keys().collect::<Vec<_>>(),
            ["retry-flaky-1", "retry-flaky-2"]
        );
        let second = &by_name["retry-flaky-2"];
        assert_eq!(
            second
                .labels()
                .get(jobflow::labels::ATTEMPT)
                .map(String::as_str),
            Some("2")
        );
        let failed = finished_at(&by_name["retry-flaky-1"])?;
        let retried = created_at(second)?;
        let wait = retried.duration_since(failed);
        // Whole seconds on the wire: the backoff counts from when the agent saw the failure.
        assert!(
            wait >= SignedDuration::from_secs(3),
            "attempt 2 was created {wait} after attempt 1 failed ({failed} -> {retried}), \
             before the 3s backoff"
        );
        assert!(
            wait <= SignedDuration::from_secs(10),
            "attempt 2 came {wait} after attempt 1 failed: the agent did not requeue at the \
             backoff's end"
        );
        let events = wait_for_event(&events, "retry", reasons::STEP_RETRY).await?;
        assert!(
            events.iter().any(|e| e
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("retry 1 of 1 in 3s")),
            "{:?}",
            event_reasons(&events)
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn backoff_limit_stops_retries_across_steps() -> anyhow::Result<()> {
    run_with_agent("agent-backoff-limit", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        // Each step could retry 5 times, but the flow allows 1 retry in all. `fast` fails first
        // (twice, before `slow` fails once), so it takes the one retry.
        let flow = FlowBuilder::new("budget")
            .step(StepBuilder::new("fast", &fails_after(300)).retries(5))
            .step(StepBuilder::new("slow", &fails_after(6000)).retries(5))
            .backoff_limit(1)
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "budget", FlowPhase::Failed, TIMEOUT).await?;
        assert_eq!(
            ready_reason(&done),
            reasons::BACKOFF_LIMIT_EXCEEDED,
            "{:?}",
            done.status
        );
        for step in ["fast", "slow"] {
            let status = step_status(&done, step)?;
            assert_eq!(status.phase, StepPhase::Failed, "{status:?}");
            assert_eq!(
                status.reason.as_deref(),
                Some(reasons::BACKOFF_LIMIT_EXCEEDED),
                "{status:?}"
            );
            assert!(
                status
                    .message
                    .as_deref()
                    .unwrap_or_default()
                    .contains("the flow used all 1 retries of executionPolicy.backoffLimit"),
                "{status:?}"
            );
        }
        assert_eq!(step_status(&done, "fast")?.retry_count, 1);
        assert_eq!(step_status(&done, "slow")?.retry_count, 0);
        assert_eq!(
            job_names(&jobs, "budget").await?,
            ["budget-fast-1", "budget-fast-2", "budget-slow-1"]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_step_timeout_deletes_the_job_and_fails_the_step() -> anyhow::Result<()> {
    run_with_agent("agent-step-timeout", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let events: Api<Event> = ns.api();
        let flow = FlowBuilder::new("slow")
            .step(StepBuilder::new("crawl", &succeeds_after(30_000)).timeout_seconds(2))
            .build();
        create_flow(&flows, &flow).await?;

        // Well before the pod's 30 s are up.
        let done =
            wait_for_phase(&flows, "slow", FlowPhase::Failed, Duration::from_secs(20)).await?;
        let crawl = step_status(&done, "crawl")?;
        assert_eq!(
            (crawl.phase, crawl.reason.as_deref()),
            (StepPhase::Failed, Some(reasons::TIMEOUT)),
            "{crawl:?}"
        );
        assert!(
            crawl
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("timeoutSeconds (2s)"),
            "{crawl:?}"
        );
        let ran = crawl
            .completion_time
            .as_ref()
            .unwrap()
            .0
            .duration_since(crawl.start_time.as_ref().unwrap().0);
        assert!(
            ran >= SignedDuration::from_secs(2) && ran < SignedDuration::from_secs(15),
            "the step ran {ran}"
        );
        assert_eq!(ready_reason(&done), reasons::FLOW_FAILED);
        wait_for_job_deletion(&jobs, "slow-crawl-1", Duration::from_secs(30)).await?;
        let events = wait_for_event(&events, "slow", reasons::STEP_TIMEOUT).await?;
        assert!(
            event_reasons(&events)
                .iter()
                .any(|r| r == reasons::STEP_FAILED)
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_flow_deadline_stops_the_flow_and_deletes_running_jobs() -> anyhow::Result<()> {
    run_with_agent("agent-flow-deadline", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("deadline")
            .step(StepBuilder::new("long", &succeeds_after(30_000)))
            .step(StepBuilder::new("quick", &succeeds_after(500)))
            .step(StepBuilder::new("later", &succeeds_after(500)).after(&["long"]))
            .active_deadline_seconds(3)
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(
            &flows,
            "deadline",
            FlowPhase::Failed,
            Duration::from_secs(20),
        )
        .await?;
        assert_eq!(
            ready_reason(&done),
            reasons::ACTIVE_DEADLINE_EXCEEDED,
            "{:?}",
            done.status
        );
        assert!(
            ready_message(&done).contains("activeDeadlineSeconds (3s)"),
            "{}",
            ready_message(&done)
        );
        let status = done.status.as_ref().unwrap();
        let ran = status
            .completion_time
            .as_ref()
            .unwrap()
            .0
            .duration_since(status.start_time.as_ref().unwrap().0);
        assert!(
            ran >= SignedDuration::from_secs(3) && ran < SignedDuration::from_secs(15),
            "the flow ran {ran}"
        );
        assert_eq!(
            step_phase(&done, "long")?,
            (
                StepPhase::Failed,
                Some(reasons::ACTIVE_DEADLINE_EXCEEDED.to_owned())
            )
        );
        assert_eq!(
            step_phase(&done, "later")?,
            (
                StepPhase::Skipped,
                Some(reasons::ACTIVE_DEADLINE_EXCEEDED.to_owned())
            )
        );
        wait_for_job_deletion(&jobs, "deadline-long-1", Duration::from_secs(30)).await?;
        // `quick` (a 0.5 s pod) has normally finished by the deadline and keeps its Job; on a
        // loaded machine it may still run then, and is stopped like `long`. Either way the rule
        // holds: finished steps stay, running ones fail and lose their Job, nothing new starts.
        match step_phase(&done, "quick")? {
            (StepPhase::Succeeded, _) => assert_eq!(
                job_names(&jobs, "deadline").await?,
                ["deadline-quick-1"],
                "the finished Job stays, the running one is deleted, no new one starts"
            ),
            (StepPhase::Failed, Some(reason)) if reason == reasons::ACTIVE_DEADLINE_EXCEEDED => {
                wait_for_job_deletion(&jobs, "deadline-quick-1", Duration::from_secs(30)).await?;
                assert!(job_names(&jobs, "deadline").await?.is_empty());
            }
            other => panic!("step quick ended {other:?}"),
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_invalid_flow_fails_with_the_precise_message() -> anyhow::Result<()> {
    run_with_agent("agent-invalid", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("typo")
            .step(StepBuilder::new("extract", &succeeds_after(500)))
            .step(StepBuilder::new("transform", &succeeds_after(500)).after(&["extract"]))
            .step(StepBuilder::new("load", &succeeds_after(500)).after(&["transfrom"]))
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "typo", FlowPhase::Failed, TIMEOUT).await?;
        assert_eq!(ready_reason(&done), reasons::VALIDATION_FAILED);
        let message = ready_message(&done);
        assert!(message.contains(r#"unknown step "transfrom""#), "{message}");
        assert!(message.contains(r#"did you mean "transform""#), "{message}");
        assert!(
            message.contains("spec.steps[2].dependencies[0]"),
            "{message}"
        );
        assert!(
            job_names(&jobs, "typo").await?.is_empty(),
            "an invalid flow ran Jobs"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_cyclic_flow_fails_with_the_cycle() -> anyhow::Result<()> {
    run_with_agent("agent-cycle", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("loop")
            .step(StepBuilder::new("a", &succeeds_after(500)).after(&["b"]))
            .step(StepBuilder::new("b", &succeeds_after(500)).after(&["a"]))
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "loop", FlowPhase::Failed, TIMEOUT).await?;
        assert_eq!(ready_reason(&done), reasons::DAG_CYCLE);
        assert!(
            ready_message(&done).contains("a -> b -> a"),
            "{}",
            ready_message(&done)
        );
        assert!(
            job_names(&jobs, "loop").await?.is_empty(),
            "a cyclic flow ran Jobs"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_job_deleted_while_running_fails_its_step() -> anyhow::Result<()> {
    run_with_agent("agent-job-deleted", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("victim")
            .step(StepBuilder::new("long", &succeeds_after(30_000)))
            .step(StepBuilder::new("next", &succeeds_after(500)).after(&["long"]))
            .build();
        create_flow(&flows, &flow).await?;

        // Once the agent has seen the Job (its UID is in status), a disappearance is a deletion.
        let running = wait_for_flow(&flows, "victim", "long's Job UID in status", TIMEOUT, |f| {
            Ok(step_status(f, "long").is_ok_and(|s| {
                s.phase == StepPhase::Running && s.job_ref.as_ref().is_some_and(|j| j.uid.is_some())
            }))
        })
        .await?;
        let job = jobs
            .get(&real_job_name(&jobs, "victim-long-1").await?)
            .await?;
        assert_eq!(
            step_status(&running, "long")?.job_ref.as_ref().unwrap().uid,
            job.uid()
        );
        jobs.delete(&job.name_any(), &DeleteParams::background())
            .await?;

        let done =
            wait_for_phase(&flows, "victim", FlowPhase::Failed, Duration::from_secs(20)).await?;
        let long = step_status(&done, "long")?;
        assert_eq!(
            (long.phase, long.reason.as_deref()),
            (StepPhase::Failed, Some(reasons::JOB_DELETED)),
            "{long:?}"
        );
        let deleted = format!("Job {} was deleted before it finished", job.name_any());
        assert!(
            long.message
                .as_deref()
                .unwrap_or_default()
                .contains(&deleted),
            "{long:?}"
        );
        assert_eq!(
            step_phase(&done, "next")?,
            (
                StepPhase::Skipped,
                Some(reasons::UPSTREAM_FAILED.to_owned())
            )
        );
        // Not re-created behind the user's back.
        assert!(job_names(&jobs, "victim").await?.is_empty());
        Ok(())
    })
    .await
}
