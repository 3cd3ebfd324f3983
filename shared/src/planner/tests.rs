//! Unit tests of the planner's rules, one simulated world each.

use std::time::Duration;

use super::testing::{World, flow, job_step, pod_spec, short, t};
use crate::api::reasons;
use crate::api::{
    Backoff, BackoffType, ConcurrencyPolicy, FlowPhase, Parameter, ParameterSource, RetryPolicy,
    StepOutputs, StepPhase, StepType,
};
use crate::labels;

fn phase(world: &World) -> FlowPhase {
    world.flow.status.as_ref().unwrap().phase.unwrap()
}

fn reason(world: &World) -> String {
    world.flow.status.as_ref().unwrap().conditions[0]
        .reason
        .clone()
}

fn created(plan: &super::Plan) -> Vec<String> {
    plan.create_jobs
        .iter()
        .map(|job| short(job.metadata.name.as_deref().unwrap()).to_owned())
        .collect()
}

#[test]
fn linear_chain_runs_in_dependency_order_and_succeeds() {
    let mut world = World::new(flow(vec![
        job_step("a", &[]),
        job_step("b", &["a"]),
        job_step("c", &["b"]),
    ]));
    let plan = world.step_at(t(1));
    assert_eq!(created(&plan), ["etl-a-1"]);
    assert_eq!(phase(&world), FlowPhase::Running);
    assert_eq!(world.step("b").phase, StepPhase::Pending);

    world.finish("etl-a-1", true, t(2));
    assert_eq!(created(&world.step_at(t(2))), ["etl-b-1"]);
    world.finish("etl-b-1", true, t(3));
    assert_eq!(created(&world.step_at(t(3))), ["etl-c-1"]);
    world.finish("etl-c-1", true, t(4));
    let plan = world.step_at(t(4));
    assert!(plan.create_jobs.is_empty());
    assert_eq!(phase(&world), FlowPhase::Succeeded);
    assert_eq!(reason(&world), reasons::FLOW_SUCCEEDED);
    let status = world.flow.status.as_ref().unwrap();
    assert_eq!(status.completion_time.as_ref().unwrap().0, t(4));
    assert_eq!(status.start_time.as_ref().unwrap().0, t(1));
    assert_eq!(status.progress.as_ref().unwrap().summary, "3/3");
    assert!(
        plan.events
            .iter()
            .any(|event| event.reason == reasons::FLOW_SUCCEEDED)
    );
}

#[test]
fn an_unchanged_world_plans_nothing() {
    let mut world = World::new(flow(vec![job_step("a", &[]), job_step("b", &["a"])]));
    world.step_at(t(1));
    // The first look at the new Job records its UID, so a later disappearance reads as a
    // deletion rather than cache lag.
    let observed = world.step_at(t(2));
    assert!(observed.create_jobs.is_empty());
    assert!(world.step("a").job_ref.as_ref().unwrap().uid.is_some());
    let again = world.plan(t(5));
    assert!(
        again.create_jobs.is_empty() && again.delete_jobs.is_empty() && again.events.is_empty()
    );
    assert_eq!(Some(&again.status), world.flow.status.as_ref());
}

#[test]
fn jobs_carry_labels_owner_and_substituted_strings() {
    let mut world = World::new(flow(vec![job_step("a", &[])]));
    let plan = world.step_at(t(1));
    let job = &plan.create_jobs[0];
    let labels = job.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[labels::FLOW], "etl");
    assert_eq!(labels[labels::STEP], "a");
    assert_eq!(labels[labels::ATTEMPT], "1");
    assert_eq!(labels[labels::MANAGED_BY], labels::MANAGED_BY_VALUE);
    let pod_labels = job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(pod_labels[labels::MANAGED_BY], labels::MANAGED_BY_VALUE);
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("JobFlow", Some(true))
    );
    let args = pod_spec(job).containers[0].args.clone();
    assert_eq!(args.unwrap(), ["echo", "a"]);
}

#[test]
fn a_diamond_runs_both_branches_at_once_and_joins() {
    let mut world = World::new(flow(vec![
        job_step("a", &[]),
        job_step("b", &["a"]),
        job_step("c", &["a"]),
        job_step("d", &["b", "c"]),
    ]));
    world.step_at(t(1));
    world.finish("etl-a-1", true, t(2));
    assert_eq!(created(&world.step_at(t(2))), ["etl-b-1", "etl-c-1"]);
    world.finish("etl-b-1", true, t(3));
    assert!(world.step_at(t(3)).create_jobs.is_empty());
    world.finish("etl-c-1", true, t(4));
    assert_eq!(created(&world.step_at(t(4))), ["etl-d-1"]);
}

fn failing_world(fail_fast: bool) -> World {
    let mut spec = flow(vec![
        job_step("a", &[]),
        job_step("b", &["a"]),
        job_step("x", &[]),
        job_step("y", &["x"]),
    ]);
    spec.spec.execution_policy.fail_fast = fail_fast;
    let mut world = World::new(spec);
    world.step_at(t(1));
    world.finish("etl-a-1", false, t(2));
    world.step_at(t(2));
    world
}

#[test]
fn a_failure_skips_downstream_and_fail_fast_stops_new_steps() {
    let mut world = failing_world(true);
    assert_eq!(world.step("b").phase, StepPhase::Skipped);
    assert_eq!(
        world.step("b").reason.as_deref(),
        Some(reasons::UPSTREAM_FAILED)
    );
    assert!(
        world
            .step("b")
            .message
            .as_ref()
            .unwrap()
            .contains("a failed")
    );
    // x was running and finishes; y never starts.
    assert_eq!(phase(&world), FlowPhase::Running);
    world.finish("etl-x-1", true, t(3));
    let plan = world.step_at(t(3));
    assert!(plan.create_jobs.is_empty());
    assert_eq!(world.step("y").reason.as_deref(), Some(reasons::FAIL_FAST));
    assert_eq!(phase(&world), FlowPhase::Failed);
    assert_eq!(reason(&world), reasons::FLOW_FAILED);
}

#[test]
fn a_failed_step_tells_how_its_container_failed() {
    let mut world = World::new(flow(vec![job_step("a", &[]), job_step("b", &[])]));
    world.step_at(t(1));
    world.failures.insert(
        "etl-a-1".into(),
        "container main exited with code 3 (Error): disk full".into(),
    );
    world.finish("etl-a-1", false, t(2));
    world.finish("etl-b-1", false, t(2));
    world.step_at(t(2));
    let told = world.step("a").message.clone().unwrap_or_default();
    assert!(told.starts_with("Job "), "{told}");
    assert!(
        told.ends_with("; container main exited with code 3 (Error): disk full"),
        "{told}"
    );
    // A Job whose failed pod was not seen keeps the Job's own words, with nothing appended.
    let untold = world.step("b").message.clone().unwrap_or_default();
    assert!(!untold.contains("container"), "{untold}");
}

#[test]
fn without_fail_fast_an_independent_branch_finishes() {
    let mut world = failing_world(false);
    world.finish("etl-x-1", true, t(3));
    assert_eq!(created(&world.step_at(t(3))), ["etl-y-1"]);
    world.finish("etl-y-1", true, t(4));
    world.step_at(t(4));
    assert_eq!(world.step("y").phase, StepPhase::Succeeded);
    assert_eq!(phase(&world), FlowPhase::Failed);
}

#[test]
fn continue_on_failure_lets_dependents_run_and_the_flow_succeed() {
    let mut a = job_step("a", &[]);
    a.continue_on_failure = true;
    let mut world = World::new(flow(vec![a, job_step("b", &["a"])]));
    world.step_at(t(1));
    world.finish("etl-a-1", false, t(2));
    assert_eq!(created(&world.step_at(t(2))), ["etl-b-1"]);
    world.finish("etl-b-1", true, t(3));
    world.step_at(t(3));
    assert_eq!(phase(&world), FlowPhase::Succeeded);
}

#[test]
fn when_false_skips_the_step_and_dependents_still_run() {
    let mut b = job_step("b", &["a"]);
    b.when = Some("steps.a.phase == 'Failed'".into());
    let mut world = World::new(flow(vec![job_step("a", &[]), b, job_step("c", &["b"])]));
    world.step_at(t(1));
    world.finish("etl-a-1", true, t(2));
    let plan = world.step_at(t(2));
    assert_eq!(world.step("b").reason.as_deref(), Some(reasons::WHEN_FALSE));
    assert_eq!(created(&plan), ["etl-c-1"]);
}

#[test]
fn when_true_runs_the_step() {
    let mut b = job_step("b", &["a"]);
    b.when = Some("steps.a.phase == 'Succeeded'".into());
    let mut world = World::new(flow(vec![job_step("a", &[]), b]));
    world.step_at(t(1));
    world.finish("etl-a-1", true, t(2));
    assert_eq!(created(&world.step_at(t(2))), ["etl-b-1"]);
}

fn retrying(limit: i32, duration: &str) -> RetryPolicy {
    RetryPolicy {
        limit,
        backoff: Some(Backoff {
            backoff_type: BackoffType::Exponential,
            duration: duration.into(),
            factor: Some(2.0),
        }),
    }
}

#[test]
fn retries_wait_for_the_backoff_and_use_new_job_names() {
    let mut a = job_step("a", &[]);
    a.retry_policy = Some(retrying(2, "10s"));
    let mut world = World::new(flow(vec![a]));
    world.step_at(t(0));
    world.finish("etl-a-1", false, t(5));
    let plan = world.step_at(t(5));
    assert_eq!(world.step("a").phase, StepPhase::Pending);
    assert_eq!(world.step("a").retry_count, 1);
    assert_eq!(world.step("a").next_attempt_time.as_ref().unwrap().0, t(15));
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(10)));
    assert!(
        plan.events
            .iter()
            .any(|event| event.reason == reasons::STEP_RETRY)
    );

    let early = world.step_at(t(14));
    assert!(early.create_jobs.is_empty());
    assert_eq!(early.requeue_after, Some(Duration::from_secs(1)));
    assert_eq!(created(&world.step_at(t(15))), ["etl-a-2"]);
    assert_eq!(world.step("a").attempt, 2);

    // Second retry waits 20s (factor 2).
    world.finish("etl-a-2", false, t(20));
    world.step_at(t(20));
    assert_eq!(world.step("a").next_attempt_time.as_ref().unwrap().0, t(40));
    assert_eq!(created(&world.step_at(t(40))), ["etl-a-3"]);
    world.finish("etl-a-3", false, t(41));
    world.step_at(t(41));
    assert_eq!(world.step("a").phase, StepPhase::Failed);
    assert!(
        world
            .step("a")
            .message
            .as_ref()
            .unwrap()
            .contains("no retries left")
    );
    assert_eq!(phase(&world), FlowPhase::Failed);
}

#[test]
fn backoff_limit_caps_retries_across_steps() {
    let mut a = job_step("a", &[]);
    a.retry_policy = Some(RetryPolicy {
        limit: 5,
        backoff: None,
    });
    let mut b = job_step("b", &[]);
    b.retry_policy = Some(RetryPolicy {
        limit: 5,
        backoff: None,
    });
    let mut spec = flow(vec![a, b]);
    spec.spec.execution_policy.backoff_limit = 1;
    let mut world = World::new(spec);
    world.step_at(t(0));
    world.finish("etl-a-1", false, t(1));
    assert_eq!(created(&world.step_at(t(1))), ["etl-a-2"]);
    world.finish("etl-b-1", false, t(2));
    world.step_at(t(2));
    assert_eq!(world.step("b").phase, StepPhase::Failed);
    assert_eq!(
        world.step("b").reason.as_deref(),
        Some(reasons::BACKOFF_LIMIT_EXCEEDED)
    );
    world.finish("etl-a-2", true, t(3));
    world.step_at(t(3));
    assert_eq!(phase(&world), FlowPhase::Failed);
    assert_eq!(reason(&world), reasons::BACKOFF_LIMIT_EXCEEDED);
}

#[test]
fn a_step_timeout_deletes_the_job_and_fails_the_attempt() {
    let mut a = job_step("a", &[]);
    a.timeout_seconds = Some(30);
    let mut world = World::new(flow(vec![a]));
    world.step_at(t(0));
    let plan = world.step_at(t(10));
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(20)));
    let plan = world.step_at(t(30));
    assert_eq!(plan.delete_jobs.len(), 1);
    assert_eq!(plan.delete_jobs[0].reason, reasons::TIMEOUT);
    assert_eq!(world.step("a").reason.as_deref(), Some(reasons::TIMEOUT));
    assert!(
        plan.events
            .iter()
            .any(|event| event.reason == reasons::STEP_TIMEOUT)
    );
    assert_eq!(phase(&world), FlowPhase::Failed);
}

#[test]
fn the_flow_deadline_stops_everything() {
    let mut spec = flow(vec![job_step("a", &[]), job_step("b", &["a"])]);
    spec.spec.execution_policy.active_deadline_seconds = Some(60);
    let mut world = World::new(spec);
    assert_eq!(
        world.step_at(t(0)).requeue_after,
        Some(Duration::from_secs(60))
    );
    let plan = world.step_at(t(60));
    assert_eq!(short(&plan.delete_jobs[0].name), "etl-a-1");
    assert_eq!(world.step("a").phase, StepPhase::Failed);
    assert_eq!(world.step("b").phase, StepPhase::Skipped);
    assert_eq!(phase(&world), FlowPhase::Failed);
    assert_eq!(reason(&world), reasons::ACTIVE_DEADLINE_EXCEEDED);
}

#[test]
fn manual_steps_wait_for_approval_once() {
    let gate = crate::api::Step {
        name: "approve".into(),
        step_type: StepType::Manual,
        dependencies: vec!["a".into()],
        ..Default::default()
    };
    let mut world = World::new(flow(vec![
        job_step("a", &[]),
        gate,
        job_step("b", &["approve"]),
    ]));
    world.step_at(t(0));
    world.finish("etl-a-1", true, t(1));
    let plan = world.step_at(t(1));
    assert_eq!(world.step("approve").phase, StepPhase::PendingApproval);
    // A gate without a message says how to approve it, with a plugin command that exists.
    assert!(
        world
            .step("approve")
            .message
            .as_deref()
            .unwrap_or_default()
            .starts_with("approve with: kubectl jobflow approve -n default etl approve (or: "),
        "{:?}",
        world.step("approve").message
    );
    assert_eq!(phase(&world), FlowPhase::Paused);
    assert!(
        plan.events
            .iter()
            .any(|event| event.reason == reasons::STEP_PENDING_APPROVAL)
    );

    let key = format!("{}approve", labels::APPROVE_PREFIX);
    world.flow.metadata.annotations = Some([(key.clone(), "r1".to_owned())].into());
    let plan = world.step_at(t(2));
    assert_eq!(world.step("approve").phase, StepPhase::Succeeded);
    assert_eq!(created(&plan), ["etl-b-1"]);
    assert_eq!(
        world.flow.status.as_ref().unwrap().handled_requests[&key],
        "r1"
    );
    assert!(world.step_at(t(3)).events.is_empty());
}

#[test]
fn suspend_holds_new_steps_and_resume_continues() {
    let mut world = World::new(flow(vec![job_step("a", &[]), job_step("b", &["a"])]));
    world.step_at(t(0));
    world.flow.spec.suspend = Some(true);
    world.finish("etl-a-1", true, t(1));
    let plan = world.step_at(t(1));
    assert!(plan.create_jobs.is_empty());
    assert_eq!(phase(&world), FlowPhase::Suspended);
    world.flow.spec.suspend = Some(false);
    let plan = world.step_at(t(2));
    assert_eq!(created(&plan), ["etl-b-1"]);
    assert!(
        plan.events
            .iter()
            .any(|event| event.reason == reasons::FLOW_RESUMED)
    );
}

#[test]
fn parallelism_caps_running_steps() {
    let steps = (0..5).map(|i| job_step(&format!("s{i}"), &[])).collect();
    let mut spec = flow(steps);
    spec.spec.execution_policy.parallelism = Some(2);
    let mut world = World::new(spec);
    assert_eq!(created(&world.step_at(t(0))), ["etl-s0-1", "etl-s1-1"]);
    world.finish("etl-s0-1", true, t(1));
    assert_eq!(created(&world.step_at(t(1))), ["etl-s2-1"]);
}

#[test]
fn finally_steps_run_after_a_failure_and_see_the_outcome() {
    let mut spec = flow(vec![job_step("a", &[])]);
    let mut notify = job_step("notify", &[]);
    notify.when = Some("flow.phase == 'Failed'".into());
    let mut celebrate = job_step("celebrate", &[]);
    celebrate.when = Some("flow.phase == 'Succeeded'".into());
    spec.spec.finally = vec![notify, celebrate];
    let mut world = World::new(spec);
    assert_eq!(created(&world.step_at(t(0))), ["etl-a-1"]);
    world.finish("etl-a-1", false, t(1));
    assert_eq!(created(&world.step_at(t(1))), ["etl-notify-1"]);
    assert_eq!(world.step("celebrate").phase, StepPhase::Skipped);
    world.finish("etl-notify-1", true, t(2));
    world.step_at(t(2));
    assert_eq!(phase(&world), FlowPhase::Failed);
}

#[test]
fn a_deleted_job_fails_its_step_and_an_unseen_one_is_applied_again() {
    let mut world = World::new(flow(vec![job_step("a", &[]), job_step("b", &[])]));
    world.step_at(t(0));
    // b's Job never reached the cache: the plan applies it again (idempotent).
    world.remove_job("etl-b-1");
    if let Some(step) = world
        .flow
        .status
        .as_mut()
        .unwrap()
        .steps
        .iter_mut()
        .find(|s| s.name == "b")
    {
        step.job_ref.as_mut().unwrap().uid = None;
    }
    let observed_a = world.plan(t(1));
    assert_eq!(created(&observed_a), ["etl-b-1"]);
    world.apply(&observed_a, t(1));
    // a's Job was seen (uid recorded) and then deleted by someone.
    world.remove_job("etl-a-1");
    world.step_at(t(2));
    assert_eq!(world.step("a").phase, StepPhase::Failed);
    assert_eq!(
        world.step("a").reason.as_deref(),
        Some(reasons::JOB_DELETED)
    );
}

#[test]
fn a_job_created_before_a_restart_is_adopted_not_duplicated() {
    let mut world = World::new(flow(vec![job_step("a", &[])]));
    let plan = world.plan(t(0));
    // The agent created the Job, then died before writing status.
    world.apply(&plan, t(0));
    world.flow.status = None;
    let plan = world.step_at(t(1));
    assert!(plan.create_jobs.is_empty(), "{:?}", created(&plan));
    assert_eq!(world.step("a").phase, StepPhase::Running);
    assert_eq!(
        world.created.iter().map(|n| short(n)).collect::<Vec<_>>(),
        ["etl-a-1"]
    );
}

#[test]
fn invalid_and_cyclic_flows_fail_with_the_precise_reason() {
    let mut world = World::new(flow(vec![job_step("a", &["b"]), job_step("b", &["a"])]));
    world.step_at(t(0));
    assert_eq!(phase(&world), FlowPhase::Failed);
    assert_eq!(reason(&world), reasons::DAG_CYCLE);
    let message = &world.flow.status.as_ref().unwrap().conditions[0].message;
    assert!(message.contains("a -> b -> a"), "{message}");

    let mut world = World::new(flow(vec![
        job_step("a", &["transfrom"]),
        job_step("transform", &[]),
    ]));
    world.step_at(t(0));
    assert_eq!(reason(&world), reasons::VALIDATION_FAILED);
    assert!(world.jobs.is_empty());
}

#[test]
fn a_finished_flow_is_deleted_after_its_ttl() {
    let mut spec = flow(vec![job_step("a", &[])]);
    spec.spec.execution_policy.ttl_seconds_after_finished = 100;
    let mut world = World::new(spec);
    world.step_at(t(0));
    world.finish("etl-a-1", true, t(10));
    let plan = world.step_at(t(10));
    assert!(!plan.delete_flow);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(100)));
    assert!(!world.step_at(t(109)).delete_flow);
    assert!(world.step_at(t(110)).delete_flow);
}

#[test]
fn forbid_waits_for_an_older_flow_and_replace_stops_it() {
    let mut spec = flow(vec![job_step("a", &[])]);
    spec.spec.execution_policy.concurrency_key = Some("db".into());
    let mut world = World::new(spec);
    world.peers.push(super::PeerFlow {
        name: "older".into(),
        created: t(-10),
        phase: Some(FlowPhase::Running),
        policy: ConcurrencyPolicy::Forbid,
        started: true,
        current: true,
        deleting: false,
    });
    let plan = world.step_at(t(0));
    assert!(plan.create_jobs.is_empty());
    assert_eq!(phase(&world), FlowPhase::Pending);
    assert!(
        world.flow.status.as_ref().unwrap().conditions[0]
            .message
            .contains("\"older\"")
    );
    world.peers[0].phase = Some(FlowPhase::Succeeded);
    assert_eq!(created(&world.step_at(t(1))), ["etl-a-1"]);

    // A newer flow with Replace stops this one.
    world.peers.push(super::PeerFlow {
        name: "newer".into(),
        created: t(5),
        phase: Some(FlowPhase::Pending),
        policy: ConcurrencyPolicy::Replace,
        started: false,
        current: true,
        deleting: false,
    });
    let plan = world.step_at(t(6));
    assert_eq!(short(&plan.delete_jobs[0].name), "etl-a-1");
    assert_eq!(phase(&world), FlowPhase::Failed);
    assert_eq!(reason(&world), reasons::REPLACED);
}

/// The chain a -> b -> c, a succeeded at t(1) and b started.
fn chain_with_a_done() -> World {
    let mut world = World::new(flow(vec![
        job_step("a", &[]),
        job_step("b", &["a"]),
        job_step("c", &["b"]),
    ]));
    world.step_at(t(0));
    world.finish("etl-a-1", true, t(1));
    world.step_at(t(1));
    world
}

#[test]
fn a_retry_request_reruns_only_the_failed_part() {
    let mut world = chain_with_a_done();
    world.finish("etl-b-1", false, t(2));
    world.step_at(t(2));
    assert_eq!(phase(&world), FlowPhase::Failed);
    let completed_at = world.step("a").completion_time.clone();

    world.flow.metadata.annotations = Some([(labels::RETRY.to_owned(), "r1".to_owned())].into());
    let plan = world.step_at(t(3));
    assert_eq!(created(&plan), ["etl-b-2"]);
    assert_eq!(phase(&world), FlowPhase::Running);
    assert_eq!(world.step("a").completion_time, completed_at);
    world.finish("etl-b-2", true, t(4));
    assert_eq!(created(&world.step_at(t(4))), ["etl-c-1"]);
    world.finish("etl-c-1", true, t(5));
    world.step_at(t(5));
    assert_eq!(phase(&world), FlowPhase::Succeeded);
    // The request is acknowledged: it is not carried out again.
    assert!(world.step_at(t(6)).create_jobs.is_empty());
}

#[test]
fn outputs_reach_later_steps_args() {
    let mut a = job_step("a", &[]);
    a.outputs = Some(StepOutputs {
        parameters: vec![Parameter {
            name: "rows".into(),
            value: None,
            value_from: Some(ParameterSource {
                json_path: Some(".rows".into()),
                ..Default::default()
            }),
        }],
        artifacts: vec![],
    });
    let mut b = job_step("b", &["a"]);
    b.when = Some("int(steps.a.outputs.rows) > 10".into());
    b.template.as_mut().unwrap()["spec"]["template"]["spec"]["containers"][0]["args"] =
        serde_json::json!(["load", "{{steps.a.outputs.rows}}"]);
    let mut world = World::new(flow(vec![a, b]));
    world.step_at(t(0));
    world.finish("etl-a-1", true, t(1));
    // The pod's message has not reached the cache yet: wait, do not fail.
    let plan = world.step_at(t(1));
    assert_eq!(world.step("a").phase, StepPhase::Running);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(2)));
    world
        .messages
        .insert("etl-a-1".into(), r#"{"rows": 42}"#.into());
    let plan = world.step_at(t(2));
    assert_eq!(world.step("a").outputs["rows"], "42");
    let args = pod_spec(&plan.create_jobs[0]).containers[0].args.clone();
    assert_eq!(args.unwrap(), ["load", "42"]);
}

#[test]
fn secret_inputs_become_env_references_never_values() {
    let mut a = job_step("a", &[]);
    a.inputs = Some(crate::api::StepInputs {
        parameters: vec![Parameter {
            name: "DB_PASSWORD".into(),
            value: None,
            value_from: Some(ParameterSource {
                secret_key_ref: Some(crate::api::KeyRef {
                    name: "db".into(),
                    key: "password".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
        }],
        artifacts: vec![],
    });
    a.template.as_mut().unwrap()["spec"]["template"]["spec"]["containers"][0]["args"] =
        serde_json::json!(["connect", "--password={{inputs.parameters.DB_PASSWORD}}"]);
    let world = World::new(flow(vec![a]));
    let plan = world.plan(t(0));
    let container = &pod_spec(&plan.create_jobs[0]).containers[0];
    assert_eq!(
        container.args.as_ref().unwrap()[1],
        "--password=$(DB_PASSWORD)"
    );
    let env = &container.env.as_ref().unwrap()[0];
    assert_eq!(
        env.value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .key,
        "password"
    );
}

#[test]
fn timestamps_never_change_once_set() {
    let mut world = World::new(flow(vec![job_step("a", &[]), job_step("b", &["a"])]));
    world.step_at(t(0));
    let started = world.flow.status.as_ref().unwrap().start_time.clone();
    world.finish("etl-a-1", true, t(5));
    world.step_at(t(5));
    let a_done = world.step("a").completion_time.clone();
    world.finish("etl-b-1", true, t(9));
    world.step_at(t(9));
    world.step_at(t(20));
    assert_eq!(world.flow.status.as_ref().unwrap().start_time, started);
    assert_eq!(world.step("a").completion_time, a_done);
    assert_eq!(
        world
            .flow
            .status
            .as_ref()
            .unwrap()
            .completion_time
            .as_ref()
            .unwrap()
            .0,
        t(9)
    );
}

#[test]
fn a_thousand_step_status_stays_small() {
    let steps = (0..1000).map(|i| {
        let mut step = job_step(&format!("step-with-a-longish-name-{i:04}"), &[]);
        step.retry_policy = Some(retrying(1, "1s"));
        step
    });
    let mut world = World::new(flow(steps.collect()));
    world.step_at(t(0));
    for name in world.running_jobs() {
        world.finish(&name, false, t(1));
    }
    world.step_at(t(1));
    let size = serde_json::to_vec(world.flow.status.as_ref().unwrap())
        .unwrap()
        .len();
    assert!(size < 512 * 1024, "status is {size} bytes");
}

#[test]
fn when_reads_the_steps_literal_input_parameters() {
    let mut a = job_step("a", &[]);
    a.inputs = Some(crate::api::StepInputs {
        parameters: vec![Parameter {
            name: "mode".into(),
            value: Some("dry-run".into()),
            value_from: None,
        }],
        artifacts: vec![],
    });
    a.when = Some("parameters.mode == 'full'".into());
    let mut world = World::new(flow(vec![a, job_step("b", &[])]));
    let plan = world.step_at(t(0));
    assert_eq!(created(&plan), ["etl-b-1"]);
    assert_eq!(world.step("a").reason.as_deref(), Some(reasons::WHEN_FALSE));
}

#[test]
fn within_one_creation_second_a_started_flow_counts_as_older() {
    // "z-first" started; "a-second" was created in the same second and sorts first by name.
    let mut first = flow(vec![job_step("a", &[])]);
    first.metadata.name = Some("z-first".into());
    first.spec.execution_policy.concurrency_key = Some("db".into());
    let mut world = World::new(first);
    world.step_at(t(0));
    let mut second = World::new(world.flow.clone());
    second.flow.metadata.name = Some("a-second".into());
    second.flow.metadata.uid = Some("second-uid".into());
    second.flow.status = None;
    second.peers.push(super::PeerFlow {
        name: "z-first".into(),
        created: t(0),
        phase: Some(FlowPhase::Running),
        policy: ConcurrencyPolicy::Forbid,
        started: true,
        current: true,
        deleting: false,
    });
    let plan = second.step_at(t(0));
    assert!(plan.create_jobs.is_empty(), "the newer flow must wait");
    assert_eq!(phase(&second), FlowPhase::Pending);

    // The started flow does not wait for the unstarted one, whatever their names.
    world.peers.push(super::PeerFlow {
        name: "a-second".into(),
        created: t(0),
        phase: Some(FlowPhase::Pending),
        policy: ConcurrencyPolicy::Forbid,
        started: false,
        current: true,
        deleting: false,
    });
    world.step_at(t(1));
    assert_eq!(phase(&world), FlowPhase::Running);

    // Under Replace the unstarted one is the newer: the started flow stops for it.
    world.peers[0].policy = ConcurrencyPolicy::Replace;
    world.step_at(t(2));
    assert_eq!(reason(&world), reasons::REPLACED);
}

fn refusal(reason: &'static str, message: &str) -> super::Refusal {
    super::Refusal {
        reason,
        message: message.to_owned(),
    }
}

#[test]
fn a_refused_job_fails_its_attempt_and_retries_apply() {
    let mut a = job_step("a", &[]);
    a.retry_policy = Some(retrying(1, "10s"));
    let mut world = World::new(flow(vec![a, job_step("b", &[])]));
    world.refused.insert(
        "etl-a-1".into(),
        refusal(
            reasons::JOB_REJECTED,
            "Job.batch is invalid: spec.template: bad",
        ),
    );
    let plan = world.step_at(t(0));
    assert_eq!(created(&plan), ["etl-a-1", "etl-b-1"]);
    // The agent reported the refusal; the next pass fails the attempt and records b's verdict.
    let name = plan.create_jobs[0].metadata.name.clone().unwrap();
    world.refused = [(name, refusal(reasons::JOB_REJECTED, "Job.batch is invalid"))].into();
    world.finish("etl-b-1", true, t(1));
    world.step_at(t(1));
    let a = world.step("a");
    assert_eq!(a.phase, StepPhase::Pending);
    assert_eq!(a.reason.as_deref(), Some(reasons::JOB_REJECTED));
    assert!(
        a.message
            .as_deref()
            .unwrap()
            .contains("Job.batch is invalid"),
        "{a:?}"
    );
    assert_eq!(world.step("b").phase, StepPhase::Succeeded);
    assert_eq!(created(&world.step_at(t(11))), ["etl-a-2"]);
    let name = world.step("a").job_ref.clone().unwrap().name;
    world.refused.insert(
        name,
        refusal(reasons::NAME_CONFLICT, "owned by someone else"),
    );
    world.remove_job("etl-a-2");
    world.step_at(t(12));
    assert_eq!(world.step("a").phase, StepPhase::Failed);
    assert_eq!(
        world.step("a").reason.as_deref(),
        Some(reasons::NAME_CONFLICT)
    );
    assert_eq!(phase(&world), FlowPhase::Failed);
}

#[test]
fn a_refused_resource_template_fails_the_flow_before_any_job() {
    let mut f = flow(vec![job_step("a", &[])]);
    f.spec.resource_templates = Some(crate::api::ResourceTemplates {
        config_map_templates: vec![serde_json::json!({"metadata": {"name": "settings"}})],
        ..crate::api::ResourceTemplates::default()
    });
    let name = super::resource_name(&f, "settings");
    let mut world = World::new(f);
    world.refused.insert(
        name.clone(),
        refusal(reasons::RESOURCE_REJECTED, "exceeded quota: configmaps=0"),
    );
    let plan = world.step_at(t(0));
    assert!(plan.create_jobs.is_empty());
    assert!(plan.create_resources.is_empty());
    assert_eq!(phase(&world), FlowPhase::Failed);
    assert_eq!(reason(&world), reasons::RESOURCE_REJECTED);
    let message = &world.flow.status.as_ref().unwrap().conditions[0].message;
    assert!(
        message.contains(&name) && message.contains("exceeded quota"),
        "{message}"
    );
    assert_eq!(world.step("a").phase, StepPhase::Skipped);
}

#[test]
fn only_live_peers_block_or_replace() {
    let peer = |name: &str, created: i64, policy: ConcurrencyPolicy| super::PeerFlow {
        name: name.into(),
        created: t(created),
        phase: Some(FlowPhase::Pending),
        policy,
        started: false,
        current: true,
        deleting: false,
    };
    let not_live = |policy: ConcurrencyPolicy, created: i64| {
        let no_status = super::PeerFlow {
            phase: None,
            current: false,
            ..peer("no-status", created, policy)
        };
        let invalid = super::PeerFlow {
            phase: Some(FlowPhase::Failed),
            ..peer("invalid", created, policy)
        };
        let edited = super::PeerFlow {
            current: false,
            ..peer("edited", created, policy)
        };
        let deleting = super::PeerFlow {
            deleting: true,
            ..peer("deleting", created, policy)
        };
        vec![no_status, invalid, edited, deleting]
    };

    // Older peers that are not live do not make a Forbid flow wait.
    let mut spec = flow(vec![job_step("a", &[])]);
    spec.spec.execution_policy.concurrency_key = Some("db".into());
    let mut world = World::new(spec);
    world.peers = not_live(ConcurrencyPolicy::Forbid, -10);
    assert_eq!(created(&world.step_at(t(0))), ["etl-a-1"]);
    assert_eq!(phase(&world), FlowPhase::Running);

    // Newer Replace peers that are not live do not stop it.
    world.peers = not_live(ConcurrencyPolicy::Replace, 10);
    let plan = world.step_at(t(11));
    assert!(plan.delete_jobs.is_empty(), "{:?}", plan.delete_jobs);
    assert_eq!(phase(&world), FlowPhase::Running);

    // The same peer once judged (a status for its current spec) does.
    world
        .peers
        .push(peer("judged", 10, ConcurrencyPolicy::Replace));
    world.step_at(t(12));
    assert_eq!(reason(&world), reasons::REPLACED);
}

#[test]
fn a_started_flow_goes_before_an_older_unstarted_one() {
    // "young" started while "old" had no status yet (the agent judged it first); "old" waits.
    let mut spec = flow(vec![job_step("a", &[])]);
    spec.spec.execution_policy.concurrency_key = Some("db".into());
    let mut world = World::new(spec);
    world.peers.push(super::PeerFlow {
        name: "young".into(),
        created: t(30),
        phase: Some(FlowPhase::Running),
        policy: ConcurrencyPolicy::Forbid,
        started: true,
        current: true,
        deleting: false,
    });
    let plan = world.step_at(t(40));
    assert!(plan.create_jobs.is_empty());
    assert_eq!(phase(&world), FlowPhase::Pending);
}

#[test]
fn a_flow_that_failed_validation_runs_once_its_spec_is_fixed() {
    let mut world = World::new(flow(vec![job_step("a", &["transfrom"])]));
    world.step_at(t(0));
    assert_eq!(reason(&world), reasons::VALIDATION_FAILED);
    let status = world.flow.status.as_ref().unwrap();
    assert!(
        status.start_time.is_none(),
        "an invalid flow never started, so its spec may still change"
    );
    let old = world.flow.clone();

    // The user fixes the dependency: the update is allowed, and the new generation runs.
    world.flow.spec.steps[0].dependencies.clear();
    world.flow.metadata.generation = Some(2);
    crate::validation::validate_update(&old, &world.flow).unwrap();
    let plan = world.step_at(t(5));
    assert_eq!(created(&plan), ["etl-a-1"]);
    assert_eq!(phase(&world), FlowPhase::Running);
    let status = world.flow.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.start_time.as_ref().map(|time| time.0), Some(t(5)));

    // An unchanged invalid flow stays failed.
    let mut world = World::new(flow(vec![job_step("a", &["transfrom"])]));
    world.step_at(t(0));
    let plan = world.step_at(t(5));
    assert!(plan.create_jobs.is_empty());
    assert_eq!(reason(&world), reasons::VALIDATION_FAILED);
}

#[test]
fn a_named_retry_deletes_the_jobs_of_running_steps_it_resets() {
    let mut world = chain_with_a_done();
    world.step_at(t(2));
    assert_eq!(world.step("b").phase, StepPhase::Running);
    let running = world.job("etl-b-1").unwrap().metadata.name.clone().unwrap();

    // The request id is opaque: `date -Iseconds` has colons.
    let id = "2026-12-02T06:00:00+00:00";
    world.flow.metadata.annotations =
        Some([(format!("{}a", labels::RETRY_PREFIX), id.to_owned())].into());
    let plan = world.step_at(t(3));
    assert_eq!(
        plan.delete_jobs
            .iter()
            .map(|deletion| (deletion.name.as_str(), deletion.reason))
            .collect::<Vec<_>>(),
        [(running.as_str(), reasons::RETRY_RESET)],
        "b's running Job must go before b starts again"
    );
    assert_eq!(created(&plan), ["etl-a-2"]);
    assert_eq!(world.step("b").phase, StepPhase::Pending);
    assert_eq!(
        world.flow.status.as_ref().unwrap().handled_requests[&format!("{}a", labels::RETRY_PREFIX)],
        id
    );
    // Carried out once.
    assert!(world.step_at(t(4)).delete_jobs.is_empty());
}

#[test]
fn a_flow_wide_retry_request_id_is_opaque() {
    let mut world = World::new(flow(vec![job_step("a", &[])]));
    world.step_at(t(0));
    world.finish("etl-a-1", false, t(1));
    world.step_at(t(1));
    assert_eq!(phase(&world), FlowPhase::Failed);
    world.flow.metadata.annotations = Some(
        [(
            labels::RETRY.to_owned(),
            "2026-12-02T06:00:00+00:00".to_owned(),
        )]
        .into(),
    );
    assert_eq!(created(&world.step_at(t(2))), ["etl-a-2"]);
}

#[test]
fn a_retried_flow_waits_its_turn_and_its_deadline_counts_from_the_new_run() {
    let mut spec = flow(vec![job_step("a", &[])]);
    spec.spec.execution_policy.active_deadline_seconds = Some(100);
    spec.spec.execution_policy.concurrency_key = Some("db".into());
    let mut world = World::new(spec);
    world.step_at(t(0));
    world.finish("etl-a-1", false, t(10));
    world.step_at(t(10));
    assert_eq!(phase(&world), FlowPhase::Failed);

    // Meanwhile a newer flow of the same key started.
    world.peers.push(super::PeerFlow {
        name: "newer".into(),
        created: t(20),
        phase: Some(FlowPhase::Running),
        policy: ConcurrencyPolicy::Forbid,
        started: true,
        current: true,
        deleting: false,
    });
    world.flow.metadata.annotations = Some([(labels::RETRY.to_owned(), "r1".to_owned())].into());
    let plan = world.step_at(t(500));
    assert!(
        plan.create_jobs.is_empty(),
        "the retried flow must wait for \"newer\""
    );
    assert_eq!(phase(&world), FlowPhase::Pending);
    assert!(
        world.flow.status.as_ref().unwrap().conditions[0]
            .message
            .contains("\"newer\"")
    );

    // Its turn comes long after its first deadline: the new run has a deadline of its own.
    world.peers[0].phase = Some(FlowPhase::Succeeded);
    assert_eq!(created(&world.step_at(t(600))), ["etl-a-2"]);
    assert_eq!(phase(&world), FlowPhase::Running);
    let status = world.flow.status.as_ref().unwrap();
    assert_eq!(status.start_time.as_ref().map(|time| time.0), Some(t(600)));
    world.step_at(t(650));
    assert_eq!(phase(&world), FlowPhase::Running);
    world.step_at(t(700));
    assert_eq!(reason(&world), reasons::ACTIVE_DEADLINE_EXCEEDED);
}

#[test]
fn the_status_stays_within_its_budget_dropping_the_earliest_finished_first() {
    // 300 steps, each with 4 KiB of outputs: 1.2 MiB of outputs alone.
    let steps: Vec<_> = (0..300)
        .map(|i| {
            let mut step = job_step(&format!("s{i:03}"), &[]);
            step.outputs = Some(StepOutputs {
                parameters: vec![Parameter {
                    name: "blob".into(),
                    value: None,
                    value_from: Some(ParameterSource {
                        json_path: Some(".blob".into()),
                        ..ParameterSource::default()
                    }),
                }],
                artifacts: vec![],
            });
            step
        })
        .collect();
    let mut world = World::new(flow(steps));
    world.step_at(t(0));
    let blob = "x".repeat(4000);
    for (i, name) in world.running_jobs().into_iter().enumerate() {
        world
            .messages
            .insert(name.clone(), format!("{{\"blob\": \"{blob}\"}}"));
        // The steps finish one second apart, s000 first.
        let at = t(1 + i64::try_from(i).unwrap());
        world.finish(&name, true, at);
        world.step_at(at);
    }
    assert_eq!(phase(&world), FlowPhase::Succeeded);
    let status = world.flow.status.as_ref().unwrap();
    let size = serde_json::to_vec(status).unwrap().len();
    assert!(size <= super::MAX_STATUS_BYTES, "status is {size} bytes");
    assert!(
        world.step("s000").outputs.is_empty(),
        "the earliest finished step's outputs go first"
    );
    assert_eq!(world.step("s299").outputs["blob"], blob, "the latest stay");
    let trimmed = status
        .conditions
        .iter()
        .find(|condition| condition.type_ == crate::api::conditions::STATUS_TRIMMED)
        .expect("a StatusTrimmed condition");
    assert_eq!(trimmed.reason, reasons::STATUS_BUDGET_EXCEEDED);
    assert!(trimmed.message.contains("512 KiB"), "{}", trimmed.message);
    assert_eq!(reason(&world), reasons::FLOW_SUCCEEDED, "Ready stays first");
}

#[test]
fn handled_requests_are_forgotten_once_their_annotation_is_gone() {
    let mut manual = job_step("gate", &[]);
    manual.step_type = StepType::Manual;
    manual.template = None;
    let mut world = World::new(flow(vec![manual]));
    world.step_at(t(0));
    let key = format!("{}gate", labels::APPROVE_PREFIX);
    world.flow.metadata.annotations = Some([(key.clone(), "r1".to_owned())].into());
    world.step_at(t(1));
    assert!(
        world
            .flow
            .status
            .as_ref()
            .unwrap()
            .handled_requests
            .contains_key(&key)
    );
    world.flow.metadata.annotations = None;
    world.step_at(t(2));
    assert!(
        world
            .flow
            .status
            .as_ref()
            .unwrap()
            .handled_requests
            .is_empty()
    );
}

fn trouble(headline: &str, detail: &str) -> super::PodTrouble {
    super::PodTrouble {
        headline: headline.to_owned(),
        message: format!("{headline}: {detail}"),
    }
}

fn stuck_events(plan: &super::Plan) -> Vec<&super::PlannedEvent> {
    plan.events
        .iter()
        .filter(|event| event.reason == reasons::STEP_STUCK)
        .collect()
}

#[test]
fn a_stuck_pod_is_told_once_and_the_message_clears_when_it_starts() {
    let mut world = World::new(flow(vec![job_step("a", &[])]));
    world.step_at(t(0));
    let unschedulable = trouble(
        "pod etl-a-1-x7k2p cannot be scheduled",
        "0/3 nodes are available: persistentvolumeclaim \"backup-pvc\" not found",
    );
    world
        .troubles
        .insert("etl-a-1".into(), unschedulable.clone());
    let plan = world.step_at(t(1));
    let events = stuck_events(&plan);
    assert_eq!(events.len(), 1);
    assert!(events[0].warning);
    assert_eq!(events[0].step.as_deref(), Some("a"));
    assert!(
        events[0].message.contains("backup-pvc"),
        "{}",
        events[0].message
    );
    let step = world.step("a");
    assert_eq!(step.phase, StepPhase::Running);
    assert_eq!(step.reason.as_deref(), Some(reasons::POD_STUCK));
    assert_eq!(
        step.message.as_deref(),
        Some(unschedulable.message.as_str())
    );

    // Reconciled again, and again with the scheduler's words changed: no new Event.
    assert!(stuck_events(&world.step_at(t(2))).is_empty());
    world.troubles.insert(
        "etl-a-1".into(),
        trouble(
            "pod etl-a-1-x7k2p cannot be scheduled",
            "0/4 nodes are available",
        ),
    );
    assert!(stuck_events(&world.step_at(t(3))).is_empty());
    assert!(
        world
            .step("a")
            .message
            .as_deref()
            .unwrap()
            .ends_with("0/4 nodes are available")
    );

    // Another cause: one more Event.
    world.troubles.insert(
        "etl-a-1".into(),
        trouble(
            "container main cannot start (CreateContainerConfigError)",
            "secret \"db\" not found",
        ),
    );
    assert_eq!(stuck_events(&world.step_at(t(4))).len(), 1);

    // The pod starts: the message clears, the step still runs.
    world.troubles.clear();
    let plan = world.step_at(t(5));
    assert!(plan.events.is_empty());
    let step = world.step("a");
    assert_eq!(step.phase, StepPhase::Running);
    assert_eq!(step.reason, None);
    assert_eq!(step.message, None);
    let again = world.plan(t(6));
    assert!(again.events.is_empty());
    assert_eq!(Some(&again.status), world.flow.status.as_ref());

    // Stuck again later: told again.
    world.troubles.insert("etl-a-1".into(), unschedulable);
    assert_eq!(stuck_events(&world.step_at(t(7))).len(), 1);
    world.finish("etl-a-1", true, t(8));
    world.step_at(t(8));
    assert_eq!(
        world.step("a").reason.as_deref(),
        Some(reasons::JOB_SUCCEEDED)
    );
}

#[test]
fn a_stuck_step_keeps_waiting_until_its_timeout_which_says_why() {
    let mut a = job_step("a", &[]);
    a.timeout_seconds = Some(30);
    let mut world = World::new(flow(vec![a]));
    world.step_at(t(0));
    world.troubles.insert(
        "etl-a-1".into(),
        trouble(
            "image \"busybox:nope\" of container main cannot be pulled (ErrImagePull)",
            "not found",
        ),
    );
    let plan = world.step_at(t(10));
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(20)));
    assert!(plan.delete_jobs.is_empty());
    assert_eq!(world.step("a").phase, StepPhase::Running);
    world.step_at(t(30));
    let step = world.step("a");
    assert_eq!(step.phase, StepPhase::Failed);
    assert_eq!(step.reason.as_deref(), Some(reasons::TIMEOUT));
    let message = step.message.as_deref().unwrap();
    assert!(
        message.contains("timeoutSeconds (30s)") && message.contains("busybox:nope"),
        "{message}"
    );
}

#[test]
fn a_long_stuck_message_is_bounded() {
    let mut world = World::new(flow(vec![job_step("a", &[])]));
    world.step_at(t(0));
    world.troubles.insert(
        "etl-a-1".into(),
        trouble("pod etl-a-1-x cannot be scheduled", &"x".repeat(5000)),
    );
    assert_eq!(stuck_events(&world.step_at(t(1))).len(), 1);
    let message = world.step("a").message.clone().unwrap();
    assert!(message.len() <= super::state::MAX_STEP_MESSAGE);
    // The cut message still tells the same cause: no second Event.
    assert!(stuck_events(&world.step_at(t(2))).is_empty());
}

#[test]
fn a_flow_created_suspended_has_not_started_until_resumed() {
    let mut spec = flow(vec![job_step("a", &[])]);
    spec.spec.suspend = Some(true);
    let mut world = World::new(spec);
    let plan = world.step_at(t(0));
    assert!(plan.create_jobs.is_empty());
    assert_eq!(phase(&world), FlowPhase::Suspended);
    assert!(
        world.flow.status.as_ref().unwrap().start_time.is_none(),
        "a flow suspended before it started may still be changed"
    );
    world.flow.spec.suspend = Some(false);
    assert_eq!(created(&world.step_at(t(5))), ["etl-a-1"]);
    let status = world.flow.status.as_ref().unwrap();
    assert_eq!(status.start_time.as_ref().map(|time| time.0), Some(t(5)));
}
