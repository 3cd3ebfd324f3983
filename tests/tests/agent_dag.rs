//! The agent runs DAGs: dependency order, parallel branches, `when`, continueOnFailure, output
//! parameters, the parallelism cap and finally steps, against the local control plane with the
//! real `jobflow-agent` binary (see `jobflow_tests::agent`).
//!
//! Each test runs in its own namespace with its own agent, and reads back what the API server
//! holds: the flow's status, the flow's Jobs and their timestamps.

use std::time::Duration;

use jobflow::api::{FlowPhase, JobFlow, StepPhase, reasons};
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, create_flow, flow_completed_at, flow_jobs, flow_jobs_by_name,
    job_args, job_finished_at, job_names, phase, ready_message, ready_reason, real_job_name,
    step_phase, step_status, wait_for_phase,
};
use jobflow_tests::jobs::{created_at, finished_at};
use jobflow_tests::{FakePod, POLL, wait_for};
use k8s_openapi::api::batch::v1::Job;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

/// How long any one flow may take; the slowest here runs about 10 s of fake pods.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A pod that succeeds after `seconds`.
fn runs_for(seconds: u64) -> FakePod {
    FakePod::succeed().running_for(Duration::from_secs(seconds))
}

#[tokio::test]
async fn linear_flow_creates_jobs_in_dependency_order() -> anyhow::Result<()> {
    run_with_agent("agent-linear", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("linear")
            .step(StepBuilder::new("extract", &FakePod::quick()))
            .step(StepBuilder::new("transform", &FakePod::quick()).after(&["extract"]))
            .step(StepBuilder::new("load", &FakePod::quick()).after(&["transform"]))
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "linear", FlowPhase::Succeeded, TIMEOUT).await?;
        assert_eq!(ready_reason(&done), reasons::FLOW_SUCCEEDED);
        for step in ["extract", "transform", "load"] {
            assert_eq!(
                step_phase(&done, step)?,
                (
                    StepPhase::Succeeded,
                    Some(reasons::JOB_SUCCEEDED.to_owned())
                ),
                "{step}"
            );
            assert_eq!(step_status(&done, step)?.attempt, 1, "{step}");
        }

        let by_name = flow_jobs_by_name(&jobs, "linear").await?;
        assert_eq!(
            by_name.keys().collect::<Vec<_>>(),
            ["linear-extract-1", "linear-load-1", "linear-transform-1"]
        );
        for (dependency, dependent) in [
            ("linear-extract-1", "linear-transform-1"),
            ("linear-transform-1", "linear-load-1"),
        ] {
            let finished = finished_at(&by_name[dependency])?;
            let created = created_at(&by_name[dependent])?;
            // Both have whole seconds on the wire; the dependent cannot be older.
            assert!(
                created >= finished,
                "Job {dependent} was created at {created}, before {dependency} finished at \
                 {finished}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn diamond_runs_both_branches_at_once_and_joins() -> anyhow::Result<()> {
    run_with_agent("agent-diamond", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("diamond")
            .step(StepBuilder::new("fetch", &FakePod::quick()))
            .step(StepBuilder::new("left", &runs_for(3)).after(&["fetch"]))
            .step(StepBuilder::new("right", &runs_for(3)).after(&["fetch"]))
            .step(StepBuilder::new("join", &FakePod::quick()).after(&["left", "right"]))
            .build();
        create_flow(&flows, &flow).await?;

        // Both branch Jobs exist while neither has finished: they run at once.
        let branches = wait_for("both branch Jobs to exist", TIMEOUT, POLL, || async {
            let by_name = flow_jobs_by_name(&jobs, "diamond").await?;
            Ok(by_name
                .get("diamond-left-1")
                .cloned()
                .zip(by_name.get("diamond-right-1").cloned()))
        })
        .await?;
        for job in [&branches.0, &branches.1] {
            assert!(
                job_finished_at(job).is_none(),
                "Job {} had finished before the other branch's Job existed",
                job.name_any()
            );
        }
        assert!(
            !flow_jobs_by_name(&jobs, "diamond")
                .await?
                .contains_key("diamond-join-1"),
            "join started before its dependencies ended"
        );

        let done = wait_for_phase(&flows, "diamond", FlowPhase::Succeeded, TIMEOUT).await?;
        assert_eq!(
            done.status
                .as_ref()
                .unwrap()
                .progress
                .as_ref()
                .unwrap()
                .summary,
            "4/4"
        );
        let by_name = flow_jobs_by_name(&jobs, "diamond").await?;
        let left = &by_name["diamond-left-1"];
        let right = &by_name["diamond-right-1"];
        // Overlap, from the API's own timestamps too.
        assert!(created_at(left)? < finished_at(right)?);
        assert!(created_at(right)? < finished_at(left)?);
        for branch in [left, right] {
            assert!(created_at(branch)? >= finished_at(&by_name["diamond-fetch-1"])?);
            assert!(created_at(&by_name["diamond-join-1"])? >= finished_at(branch)?);
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn when_true_runs_when_false_skips_and_downstream_still_runs() -> anyhow::Result<()> {
    run_with_agent("agent-when", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("when")
            .step(StepBuilder::new("check", &FakePod::quick()))
            .step(
                StepBuilder::new("on-success", &FakePod::quick())
                    .after(&["check"])
                    .when(r#"steps.check.phase == "Succeeded""#),
            )
            .step(
                StepBuilder::new("on-failure", &FakePod::quick())
                    .after(&["check"])
                    .when(r#"steps.check.phase == "Failed""#),
            )
            .step(StepBuilder::new("after-skipped", &FakePod::quick()).after(&["on-failure"]))
            .step(StepBuilder::new("never", &FakePod::quick()).when("false"))
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "when", FlowPhase::Succeeded, TIMEOUT).await?;
        assert_eq!(step_phase(&done, "on-success")?.0, StepPhase::Succeeded);
        for skipped in ["on-failure", "never"] {
            assert_eq!(
                step_phase(&done, skipped)?,
                (StepPhase::Skipped, Some(reasons::WHEN_FALSE.to_owned())),
                "{skipped}"
            );
            assert_eq!(step_status(&done, skipped)?.attempt, 0, "{skipped}");
        }
        assert_eq!(
            step_phase(&done, "after-skipped")?.0,
            StepPhase::Succeeded,
            "a step after one skipped by `when` still runs"
        );
        assert_eq!(
            job_names(&jobs, "when").await?,
            ["when-after-skipped-1", "when-check-1", "when-on-success-1"]
        );
        let progress = done.status.as_ref().unwrap().progress.clone().unwrap();
        assert_eq!((progress.successful_steps, progress.skipped_steps), (3, 2));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn continue_on_failure_lets_dependents_run_and_the_flow_succeed() -> anyhow::Result<()> {
    run_with_agent("agent-continue", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("tolerant")
            .step(
                StepBuilder::new("flaky", &FakePod::fail(4, "optional step broke"))
                    .continue_on_failure(),
            )
            .step(StepBuilder::new("next", &FakePod::quick()).after(&["flaky"]))
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "tolerant", FlowPhase::Succeeded, TIMEOUT).await?;
        assert_eq!(
            step_phase(&done, "flaky")?,
            (StepPhase::Failed, Some(reasons::JOB_FAILED.to_owned()))
        );
        assert_eq!(step_phase(&done, "next")?.0, StepPhase::Succeeded);
        assert_eq!(ready_reason(&done), reasons::FLOW_SUCCEEDED);
        assert!(
            ready_message(&done).contains("1 failed without blocking"),
            "{}",
            ready_message(&done)
        );
        let by_name = flow_jobs_by_name(&jobs, "tolerant").await?;
        assert!(
            created_at(&by_name["tolerant-next-1"])? >= finished_at(&by_name["tolerant-flaky-1"])?
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn output_parameters_reach_later_args_and_when() -> anyhow::Result<()> {
    run_with_agent("agent-outputs", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let producer = FakePod::succeed()
            .running_for(Duration::from_millis(500))
            .with_output(&json!({"rows": 42, "table": "users"}));
        let flow = FlowBuilder::new("outputs")
            .step(
                StepBuilder::new("count", &producer)
                    .output("rows", ".rows")
                    .output("table", ".table"),
            )
            .step(
                StepBuilder::new("load", &FakePod::quick())
                    .after(&["count"])
                    .when("int(steps.count.outputs.rows) > 10")
                    .args(&[
                        "load",
                        "--rows={{steps.count.outputs.rows}}",
                        "{{steps.count.outputs.table}}",
                    ]),
            )
            .step(
                StepBuilder::new("shard", &FakePod::quick())
                    .after(&["count"])
                    .when("int(steps.count.outputs.rows) > 1000"),
            )
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "outputs", FlowPhase::Succeeded, TIMEOUT).await?;
        let count = step_status(&done, "count")?;
        assert_eq!(count.outputs.get("rows").map(String::as_str), Some("42"));
        assert_eq!(
            count.outputs.get("table").map(String::as_str),
            Some("users")
        );
        assert_eq!(step_phase(&done, "load")?.0, StepPhase::Succeeded);
        assert_eq!(
            step_phase(&done, "shard")?,
            (StepPhase::Skipped, Some(reasons::WHEN_FALSE.to_owned()))
        );
        let load = jobs
            .get(&real_job_name(&jobs, "outputs-load-1").await?)
            .await?;
        assert_eq!(job_args(&load), ["load", "--rows=42", "users"]);
        assert_eq!(
            job_names(&jobs, "outputs").await?,
            ["outputs-count-1", "outputs-load-1"]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn parallelism_cap_is_never_exceeded() -> anyhow::Result<()> {
    run_with_agent("agent-parallelism", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let mut builder = FlowBuilder::new("capped").parallelism(2);
        for index in 0..6 {
            builder = builder.step(StepBuilder::new(&format!("s{index}"), &runs_for(1)));
        }
        create_flow(&flows, &builder.build()).await?;

        // Sample the unfinished Jobs (and the status' running count) every 100 ms until the end.
        let deadline = Instant::now() + TIMEOUT;
        let mut most_jobs = 0;
        let mut most_running = 0;
        let mut samples = 0;
        let done = loop {
            let unfinished: Vec<String> = flow_jobs(&jobs, "capped")
                .await?
                .iter()
                .filter(|job| job_finished_at(job).is_none())
                .map(ResourceExt::name_any)
                .collect();
            assert!(
                unfinished.len() <= 2,
                "{} unfinished Jobs with parallelism 2: {unfinished:?}",
                unfinished.len()
            );
            most_jobs = most_jobs.max(unfinished.len());
            let flow = flows.get("capped").await?;
            if let Some(progress) = flow.status.as_ref().and_then(|s| s.progress.as_ref()) {
                assert!(
                    progress.running_steps <= 2,
                    "status says {} steps run at once",
                    progress.running_steps
                );
                most_running = most_running.max(progress.running_steps);
            }
            samples += 1;
            if phase(&flow).is_some_and(FlowPhase::is_terminal) {
                break flow;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {TIMEOUT:?}; flow as last seen: {:?}",
                flow.status
            );
            tokio::time::sleep(POLL).await;
        };
        assert_eq!(
            phase(&done),
            Some(FlowPhase::Succeeded),
            "{:?}",
            done.status
        );
        assert_eq!(job_names(&jobs, "capped").await?.len(), 6);
        // The cap was reached, so the samples did test it.
        assert_eq!(
            most_jobs, 2,
            "never saw 2 Jobs at once in {samples} samples"
        );
        assert_eq!(most_running, 2, "status never said 2 steps run");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn finally_steps_run_after_a_failure_and_see_the_outcome() -> anyhow::Result<()> {
    run_with_agent("agent-finally", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("finale")
            .step(StepBuilder::new("work", &FakePod::fail(2, "broken")))
            .step(StepBuilder::new("after-work", &FakePod::quick()).after(&["work"]))
            .finally(
                StepBuilder::new("notify", &FakePod::quick()).when(r#"flow.phase == "Failed""#),
            )
            .finally(
                StepBuilder::new("celebrate", &FakePod::quick())
                    .when(r#"flow.phase == "Succeeded""#),
            )
            .build();
        create_flow(&flows, &flow).await?;

        let done = wait_for_phase(&flows, "finale", FlowPhase::Failed, TIMEOUT).await?;
        assert_eq!(ready_reason(&done), reasons::FLOW_FAILED);
        assert!(
            ready_message(&done).starts_with("step work failed"),
            "{}",
            ready_message(&done)
        );
        assert_eq!(
            step_phase(&done, "work")?,
            (StepPhase::Failed, Some(reasons::JOB_FAILED.to_owned()))
        );
        assert_eq!(
            step_phase(&done, "after-work")?,
            (
                StepPhase::Skipped,
                Some(reasons::UPSTREAM_FAILED.to_owned())
            )
        );
        assert_eq!(step_phase(&done, "notify")?.0, StepPhase::Succeeded);
        assert_eq!(
            step_phase(&done, "celebrate")?,
            (StepPhase::Skipped, Some(reasons::WHEN_FALSE.to_owned()))
        );
        let by_name = flow_jobs_by_name(&jobs, "finale").await?;
        assert_eq!(
            by_name.keys().collect::<Vec<_>>(),
            ["finale-notify-1", "finale-work-1"]
        );
        assert!(
            created_at(&by_name["finale-notify-1"])? >= finished_at(&by_name["finale-work-1"])?
        );
        // The flow only ended once its finally step had.
        let completed = flow_completed_at(&done)?;
        assert!(completed >= finished_at(&by_name["finale-notify-1"])?);
        Ok(())
    })
    .await
}
