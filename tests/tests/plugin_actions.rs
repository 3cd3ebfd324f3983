//! `kubectl jobflow approve`, `reject`, `retry`, `suspend`, `resume` and `stop` against the real API server and
//! `jobflow-agent`: each goes through the annotation protocol (or `spec.suspend`), and the
//! cluster shows the result afterwards.

use std::time::Duration;

use jobflow::api::{FlowPhase, JobFlow, Step, StepPhase, StepType, reasons};
use jobflow::labels;
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, find_job_name, phase, step_status, wait_for_flow, wait_for_phase,
};
use jobflow_tests::plugin::kubectl_jobflow;
use jobflow_tests::{FakePod, POLL};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::PostParams;

/// How long a flow (or one change of it) may take.
const TIMEOUT: Duration = Duration::from_secs(60);

fn manual(name: &str, after: &[&str]) -> Step {
    Step {
        name: name.to_owned(),
        step_type: StepType::Manual,
        message: Some("ship it?".to_owned()),
        dependencies: after.iter().map(|step| (*step).to_owned()).collect(),
        ..Step::default()
    }
}

/// The request the agent acknowledged under `key`.
fn handled(flow: &JobFlow, key: &str) -> Option<String> {
    flow.status.as_ref()?.handled_requests.get(key).cloned()
}

/// The phase of step `step`, or None before the agent wrote it.
fn step_is(flow: &JobFlow, step: &str, wanted: StepPhase) -> bool {
    flow.status
        .as_ref()
        .and_then(|status| status.steps.iter().find(|s| s.name == step))
        .is_some_and(|status| status.phase == wanted)
}

fn annotation(flow: &JobFlow, key: &str) -> Option<String> {
    flow.metadata.annotations.as_ref()?.get(key).cloned()
}

#[tokio::test]
async fn approve_releases_the_gate_through_an_acknowledged_request() -> anyhow::Result<()> {
    run_with_agent("plugin-approve", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let flow = FlowBuilder::new("release")
            .step(StepBuilder::new("build", &FakePod::quick()))
            .step(manual("gate", &["build"]))
            .step(StepBuilder::new("deploy", &FakePod::quick()).after(&["gate"]))
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        wait_for_phase(&flows, "release", FlowPhase::Paused, TIMEOUT).await?;

        // Refusals first: a step that is not Manual (1), a step that does not exist (3).
        let not_manual = kubectl_jobflow(ns.name(), &["approve", "release", "build"]).await?;
        let not_manual = not_manual.expect_code(1)?;
        assert!(
            not_manual.stderr.contains("not a Manual step"),
            "{}",
            not_manual.stderr
        );
        let missing = kubectl_jobflow(ns.name(), &["approve", "release", "gaet"]).await?;
        assert!(
            missing
                .expect_code(3)?
                .stderr
                .contains("build, gate, deploy")
        );
        let key = format!("{}gate", labels::APPROVE_PREFIX);
        assert_eq!(annotation(&flows.get("release").await?, &key), None);

        let approved = kubectl_jobflow(ns.name(), &["approve", "release", "gate", "--wait"])
            .await?
            .expect_code(0)?;
        assert!(
            approved.stdout.contains("step \"gate\" approved"),
            "{}",
            approved.stdout
        );
        let after = flows.get("release").await?;
        let request = annotation(&after, &key).unwrap_or_default();
        assert!(request.starts_with("kubectl-jobflow-"), "{request:?}");
        assert_eq!(handled(&after, &key), Some(request));
        assert_eq!(step_status(&after, "gate")?.phase, StepPhase::Succeeded);
        assert_eq!(
            step_status(&after, "gate")?.reason.as_deref(),
            Some(reasons::APPROVED)
        );
        wait_for_phase(&flows, "release", FlowPhase::Succeeded, TIMEOUT).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn retry_reruns_the_failed_part_or_the_named_steps() -> anyhow::Result<()> {
    run_with_agent("plugin-retry", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("etl")
            .step(StepBuilder::new("extract", &FakePod::quick()))
            .step(StepBuilder::new("load", &FakePod::fail(2, "disk full")).after(&["extract"]))
            .build();
        flows.create(&PostParams::default(), &flow).await?;

        // While it runs, a whole-flow retry is refused and leaves no annotation.
        let early = kubectl_jobflow(ns.name(), &["retry", "etl"]).await?;
        if phase(&flows.get("etl").await?).is_some_and(|phase| !phase.is_terminal()) {
            assert_eq!(early.code, 1, "{early:?}");
            assert_eq!(annotation(&flows.get("etl").await?, labels::RETRY), None);
        }
        wait_for_phase(&flows, "etl", FlowPhase::Failed, TIMEOUT).await?;
        if early.code == 0 {
            // The flow had already failed: the early retry was legitimate; let it settle.
            wait_for_flow(
                &flows,
                "etl",
                "the early retry to be handled",
                TIMEOUT,
                |flow| {
                    Ok(handled(flow, labels::RETRY).is_some()
                        && phase(flow) == Some(FlowPhase::Failed))
                },
            )
            .await?;
        }

        let retried = kubectl_jobflow(ns.name(), &["retry", "etl", "--wait"])
            .await?
            .expect_code(0)?;
        assert!(
            retried.stdout.contains("retry carried out"),
            "{}",
            retried.stdout
        );
        let after = flows.get("etl").await?;
        let request = annotation(&after, labels::RETRY).unwrap_or_default();
        assert!(request.starts_with("kubectl-jobflow-"), "{request:?}");
        assert_eq!(handled(&after, labels::RETRY), Some(request));
        // A new attempt of load: its Job etl-load-2 (or later) exists; extract kept its result.
        wait_for_flow(&flows, "etl", "load to start attempt 2", TIMEOUT, |flow| {
            Ok(step_status(flow, "load")?.attempt >= 2)
        })
        .await?;
        assert_eq!(step_status(&after, "extract")?.attempt, 1);
        assert!(find_job_name(&jobs, "etl-load-2").await?.is_some());
        let failed = wait_for_phase(&flows, "etl", FlowPhase::Failed, TIMEOUT).await?;

        // Named retry of extract: it and everything downstream run again.
        assert_eq!(step_status(&failed, "extract")?.phase, StepPhase::Succeeded);
        kubectl_jobflow(ns.name(), &["retry", "etl", "--step", "extract", "--wait"])
            .await?
            .expect_code(0)?;
        let key = format!("{}extract", labels::RETRY_PREFIX);
        let after = flows.get("etl").await?;
        assert_eq!(handled(&after, &key), annotation(&after, &key));
        wait_for_flow(&flows, "etl", "extract attempt 2", TIMEOUT, |flow| {
            Ok(step_status(flow, "extract")?.attempt >= 2)
        })
        .await?;
        assert!(find_job_name(&jobs, "etl-extract-2").await?.is_some());
        let missing = kubectl_jobflow(ns.name(), &["retry", "etl", "--step", "nope"]).await?;
        missing.expect_code(3)?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn suspend_holds_new_steps_and_resume_releases_them() -> anyhow::Result<()> {
    run_with_agent("plugin-suspend", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("nightly")
            .step(StepBuilder::new(
                "first",
                &FakePod::succeed().running_for(Duration::from_secs(3)),
            ))
            .step(StepBuilder::new("second", &FakePod::quick()).after(&["first"]))
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        wait_for_flow(&flows, "nightly", "first to run", TIMEOUT, |flow| {
            Ok(step_is(flow, "first", StepPhase::Running))
        })
        .await?;

        let suspended = kubectl_jobflow(ns.name(), &["suspend", "nightly", "--wait"])
            .await?
            .expect_code(0)?;
        assert!(
            suspended.stdout.contains("the flow is Suspended"),
            "{}",
            suspended.stdout
        );
        let after = flows.get("nightly").await?;
        assert_eq!(after.spec.suspend, Some(true));
        assert_eq!(phase(&after), Some(FlowPhase::Suspended));

        // first finishes; second does not start while suspended.
        wait_for_flow(&flows, "nightly", "first to succeed", TIMEOUT, |flow| {
            Ok(step_is(flow, "first", StepPhase::Succeeded))
        })
        .await?;
        let quiet_until = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < quiet_until {
            assert_eq!(find_job_name(&jobs, "nightly-second-1").await?, None);
            assert_eq!(
                phase(&flows.get("nightly").await?),
                Some(FlowPhase::Suspended)
            );
            tokio::time::sleep(POLL).await;
        }
        let again = kubectl_jobflow(ns.name(), &["suspend", "nightly"])
            .await?
            .expect_code(0)?;
        assert!(
            again.stdout.contains("already suspended"),
            "{}",
            again.stdout
        );

        let resumed = kubectl_jobflow(ns.name(), &["resume", "nightly", "--wait"])
            .await?
            .expect_code(0)?;
        assert!(
            !resumed.stdout.contains("the flow is Suspended"),
            "{}",
            resumed.stdout
        );
        assert_eq!(flows.get("nightly").await?.spec.suspend, Some(false));
        wait_for_phase(&flows, "nightly", FlowPhase::Succeeded, TIMEOUT).await?;
        assert!(find_job_name(&jobs, "nightly-second-1").await?.is_some());

        // A finished flow cannot be suspended.
        let late = kubectl_jobflow(ns.name(), &["suspend", "nightly"])
            .await?
            .expect_code(1)?;
        assert!(late.stderr.contains("has finished"), "{}", late.stderr);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn reject_fails_the_gate_with_the_message_and_skips_downstream() -> anyhow::Result<()> {
    run_with_agent("plugin-reject", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("release")
            .step(manual("gate", &[]))
            .step(StepBuilder::new("deploy", &FakePod::quick()).after(&["gate"]))
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        wait_for_phase(&flows, "release", FlowPhase::Paused, TIMEOUT).await?;

        let rejected = kubectl_jobflow(
            ns.name(),
            &[
                "reject",
                "release",
                "gate",
                "--message",
                "not on a Friday",
                "--wait",
            ],
        )
        .await?
        .expect_code(0)?;
        assert!(
            rejected.stdout.contains("step \"gate\" rejected"),
            "{}",
            rejected.stdout
        );
        let after = wait_for_phase(&flows, "release", FlowPhase::Failed, TIMEOUT).await?;
        let key = format!("{}gate", labels::REJECT_PREFIX);
        assert_eq!(handled(&after, &key), annotation(&after, &key));
        let gate = step_status(&after, "gate")?;
        assert_eq!(gate.phase, StepPhase::Failed);
        assert_eq!(gate.reason.as_deref(), Some(reasons::REJECTED));
        assert!(
            gate.message
                .as_deref()
                .unwrap_or_default()
                .ends_with(": not on a Friday"),
            "{:?}",
            gate.message
        );
        let deploy = step_status(&after, "deploy")?;
        assert_eq!(deploy.phase, StepPhase::Skipped);
        assert_eq!(find_job_name(&jobs, "release-deploy-1").await?, None);
        // An ended gate cannot be rejected again.
        kubectl_jobflow(ns.name(), &["reject", "release", "gate"])
            .await?
            .expect_code(1)?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn stop_deletes_the_running_job_skips_the_rest_and_runs_finally() -> anyhow::Result<()> {
    run_with_agent("plugin-stop", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("long")
            .step(StepBuilder::new(
                "work",
                &FakePod::succeed().running_for(Duration::from_secs(60)),
            ))
            .step(StepBuilder::new("after", &FakePod::quick()).after(&["work"]))
            .finally(StepBuilder::new("cleanup", &FakePod::quick()))
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        wait_for_flow(&flows, "long", "work to run", TIMEOUT, |flow| {
            Ok(step_is(flow, "work", StepPhase::Running))
        })
        .await?;
        let work_job = find_job_name(&jobs, "long-work-1").await?;
        assert!(work_job.is_some());

        let stopped = kubectl_jobflow(ns.name(), &["stop", "long", "--wait"])
            .await?
            .expect_code(0)?;
        assert!(
            stopped.stdout.contains("the flow is Failed"),
            "{}",
            stopped.stdout
        );
        let after = flows.get("long").await?;
        assert_eq!(phase(&after), Some(FlowPhase::Failed));
        let ready = after.status.as_ref().and_then(|status| {
            status
                .conditions
                .iter()
                .find(|condition| condition.type_ == "Ready")
        });
        assert_eq!(
            ready.map(|condition| condition.reason.as_str()),
            Some(reasons::STOPPED)
        );
        assert_eq!(
            step_status(&after, "work")?.reason.as_deref(),
            Some(reasons::STOPPED)
        );
        assert_eq!(step_status(&after, "after")?.phase, StepPhase::Skipped);
        assert_eq!(
            step_status(&after, "after")?.reason.as_deref(),
            Some(reasons::STOPPED)
        );
        assert_eq!(step_status(&after, "cleanup")?.phase, StepPhase::Succeeded);
        // The running Job is gone (or going: deleted with background propagation).
        let job = jobs.get_opt(&work_job.unwrap_or_default()).await?;
        assert!(
            job.is_none_or(|job| job.metadata.deletion_timestamp.is_some()),
            "the work Job was not deleted"
        );
        kubectl_jobflow(ns.name(), &["stop", "long"])
            .await?
            .expect_code(1)?;
        Ok(())
    })
    .await
}
