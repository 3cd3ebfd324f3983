//! IO tests of one reconcile against the mock API server ([`super::mock`]): the exact requests
//! it sends, in order, and what it returns, when the API server refuses, conflicts, never
//! answers, or leadership ends halfway.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use jiff::Timestamp;
use jobflow::api::{JobFlow, JobFlowStatus, StepPhase, StepStatus, reasons};
use jobflow::planner::{self, CompiledFlow, Observed};
use kube::runtime::controller::Action;

use super::error::Error;
use super::mock::{Harness, JOBS, flow_of, job_path, job_step, status_path};
use crate::kube::call::{CALL_TIMEOUT, CallError};
use crate::kube::leadership::{Lapsed, Leadership};

/// The status of step `name`.
fn step<'a>(status: &'a JobFlowStatus, name: &str) -> &'a StepStatus {
    status
        .steps
        .iter()
        .find(|step| step.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {status:?}"))
}

/// The name and UID of the Job step `name` runs.
fn job_of(status: &JobFlowStatus, name: &str) -> (String, Option<String>) {
    let job = step(status, name)
        .job_ref
        .as_ref()
        .expect("a Job reference");
    (job.name.clone(), job.uid.clone())
}

#[tokio::test(start_paused = true)]
async fn a_refused_job_create_is_kept_and_fails_its_step_in_the_next_plan() {
    let mut h = Harness::new(Leadership::unelected());
    let stored = flow_of(vec![job_step("a", &[]), job_step("b", &[])]);
    let flow = h.put_flow(stored.clone());
    let run = h.reconcile(&flow);

    // The two roots' Jobs go out side by side; a's is created, b's refused as invalid.
    let first = h.server.expect(Method::POST, JOBS).await;
    let second = h.server.expect(Method::POST, JOBS).await;
    let (a, b) = if first.name().starts_with("f-a-") {
        (first, second)
    } else {
        (second, first)
    };
    let (a_name, b_name) = (a.name(), b.name());
    assert!(b_name.starts_with("f-b-"), "{b_name}");
    a.created("uid-a");
    b.fail(
        422,
        "Invalid",
        "metadata.labels: Invalid value: must be no more than 63 characters",
    );

    // The status is still written, recording a's Job with its UID.
    let status = h.server.expect(Method::PATCH, &status_path("f")).await;
    let written = status.written(&stored, "2");
    assert_eq!(step(&written, "a").phase, StepPhase::Running);
    assert_eq!(job_of(&written, "a"), (a_name, Some("uid-a".to_owned())));
    assert_eq!(job_of(&written, "b"), (b_name.clone(), None));
    assert_eq!(h.server.events().await, [reasons::FLOW_STARTED]);
    let action = run.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(Duration::from_millis(100)));
    let refused = h.ctx.caches.index.refused(&flow);
    assert_eq!(refused.keys().collect::<Vec<_>>(), [&b_name]);
    assert_eq!(refused[&b_name].reason, reasons::JOB_REJECTED);
    assert!(refused[&b_name].message.contains("63 characters"));

    // The next plan (from the status just written, the cache not caught up) fails b with the
    // refusal, and creates nothing.
    let run = h.reconcile(&flow);
    let status = h.server.expect(Method::PATCH, &status_path("f")).await;
    let written = status.written(&stored, "3");
    let b = step(&written, "b");
    assert_eq!(b.phase, StepPhase::Failed);
    assert_eq!(b.reason.as_deref(), Some(reasons::JOB_REJECTED));
    assert!(
        b.message
            .as_deref()
            .unwrap_or_default()
            .contains("63 characters")
    );
    assert_eq!(step(&written, "a").phase, StepPhase::Running);
    assert_eq!(h.server.events().await, [reasons::STEP_FAILED]);
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_conflicting_status_write_fails_the_reconcile_before_any_event() {
    let mut h = Harness::new(Leadership::unelected());
    let stored = flow_of(vec![job_step("a", &[])]);
    let flow = h.put_flow(stored.clone());
    let run = h.reconcile(&flow);
    h.server.expect(Method::POST, JOBS).await.created("uid-a");
    h.server
        .expect(Method::PATCH, &status_path("f"))
        .await
        .fail(409, "Conflict", "the object has been modified");
    let error = run.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, Error::PatchStatus { source } if source.status().is_some_and(|s| s.code == 409)),
        "{error:?}"
    );
    assert_eq!(error.metric_label(), "patch_status");
    // Not even from the background: the Events wait for a status write that succeeds.
    h.server.quiet().await;

    // The retry adopts the Job created (no second create), writes the status, then publishes.
    let run = h.reconcile(&flow);
    let status = h.server.expect(Method::PATCH, &status_path("f")).await;
    let written = status.written(&stored, "2");
    assert_eq!(job_of(&written, "a").1.as_deref(), Some("uid-a"));
    assert_eq!(h.server.events().await, [reasons::FLOW_STARTED]);
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_job_create_that_never_answers_times_out_after_the_status_write() {
    let mut h = Harness::new(Leadership::unelected());
    let stored = flow_of(vec![job_step("a", &[])]);
    let flow = h.put_flow(stored.clone());
    let started = tokio::time::Instant::now();
    let run = h.reconcile(&flow);
    let create = h.server.expect(Method::POST, JOBS).await;
    let name = create.name();
    let _open = create.hang();

    // After the call's timeout the status is written anyway: the step Running, its Job named
    // but without a UID (so the next plan applies it again rather than calling it deleted).
    let status = h.server.expect(Method::PATCH, &status_path("f")).await;
    assert!(started.elapsed() >= CALL_TIMEOUT, "{:?}", started.elapsed());
    let written = status.written(&stored, "2");
    assert_eq!(step(&written, "a").phase, StepPhase::Running);
    assert_eq!(job_of(&written, "a"), (name.clone(), None));
    assert_eq!(h.server.events().await, [reasons::FLOW_STARTED]);
    let error = run.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, Error::CreateJob { name: failed, source: CallError::TimedOut { timeout } }
            if *failed == name && *timeout == CALL_TIMEOUT),
        "{error:?}"
    );

    // The retry creates the same Job again; it exists (the lost create reached the server), is
    // the flow's own, and its UID reaches the status.
    let run = h.reconcile(&flow);
    let again = h.server.expect(Method::POST, JOBS).await;
    assert_eq!(again.name(), name);
    let mut existing = again.body.clone();
    again.fail(409, "AlreadyExists", "jobs.batch already exists");
    existing["metadata"]["uid"] = "uid-a".into();
    h.server
        .expect(Method::GET, &job_path(&name))
        .await
        .answer(StatusCode::OK, &existing);
    let status = h.server.expect(Method::PATCH, &status_path("f")).await;
    let written = status.written(&stored, "3");
    assert_eq!(job_of(&written, "a"), (name, Some("uid-a".to_owned())));
    assert!(h.server.events().await.is_empty(), "the flow started once");
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_leadership_lost_during_a_write_stops_every_later_write() {
    let leadership = Leadership::elected();
    leadership.renewed(Instant::now(), Duration::from_secs(60));
    let mut h = Harness::new(leadership);
    let flow = h.put_flow(flow_of(vec![job_step("a", &[])]));
    let run = h.reconcile(&flow);
    let create = h.server.expect(Method::POST, JOBS).await;
    h.leadership.lapse();
    create.created("uid-a");
    let error = run.await.unwrap().unwrap_err();
    assert_eq!(error.metric_label(), "confirm_leadership");
    assert!(
        matches!(
            &error,
            Error::PatchStatus {
                source: CallError::Lapsed(Lapsed::HoldLease)
            }
        ),
        "{error:?}"
    );
    // No status write, no Event.
    h.server.quiet().await;
}

/// The flow `f` with one step `a` whose Job (named as the planner names it) the status records
/// as Running with UID `uid-a`; and that Job as the API server holds it.
fn running_a() -> (JobFlow, serde_json::Value) {
    let mut flow = flow_of(vec![job_step("a", &[])]);
    let compiled = CompiledFlow::compile(&flow).unwrap();
    let plan = planner::plan(&flow, Ok(&compiled), &Observed::default(), Timestamp::now());
    let mut status = plan.status;
    let mut job = plan.create_jobs[0].manifest().clone();
    job["metadata"]["uid"] = "uid-a".into();
    job["metadata"]["resourceVersion"] = "5".into();
    status.steps[0].job_ref.as_mut().unwrap().uid = Some("uid-a".to_owned());
    flow.status = Some(status);
    (flow, job)
}

#[tokio::test(start_paused = true)]
async fn a_job_the_cache_lacks_but_the_api_server_has_is_not_replaced() {
    let mut h = Harness::new(Leadership::unelected());
    let (stored, job) = running_a();
    let (name, _) = job_of(stored.status.as_ref().unwrap(), "a");
    let flow = h.put_flow(stored);
    let run = h.reconcile(&flow);
    h.server
        .expect(Method::GET, &job_path(&name))
        .await
        .answer(StatusCode::OK, &job);
    // The step keeps running on its Job: no new Job, no status change, no Event.
    h.server.quiet().await;
    run.await.unwrap().unwrap();
    // The Job read stands in for the cache: the next reconcile does not read it again.
    let run = h.reconcile(&flow);
    h.server.quiet().await;
    run.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_job_the_api_server_lacks_or_holds_under_another_uid_fails_its_step() {
    for answer in ["404", "another uid"] {
        let mut h = Harness::new(Leadership::unelected());
        let (stored, mut job) = running_a();
        let (name, _) = job_of(stored.status.as_ref().unwrap(), "a");
        let flow = h.put_flow(stored.clone());
        let run = h.reconcile(&flow);
        let get = h.server.expect(Method::GET, &job_path(&name)).await;
        if answer == "404" {
            get.fail(404, "NotFound", "jobs.batch not found");
        } else {
            job["metadata"]["uid"] = "uid-other".into();
            get.answer(StatusCode::OK, &job);
        }
        let status = h.server.expect(Method::PATCH, &status_path("f")).await;
        let written = status.written(&stored, "2");
        let a = step(&written, "a");
        assert_eq!(a.phase, StepPhase::Failed, "{answer}");
        assert_eq!(a.reason.as_deref(), Some(reasons::JOB_DELETED), "{answer}");
        assert_eq!(
            h.server.events().await,
            [reasons::STEP_FAILED, reasons::FLOW_FAILED],
            "{answer}"
        );
        run.await.unwrap().unwrap();
    }
}
