//! Unit tests of the reject and stop requests.

use super::testing::{World, flow, job_step, short, t};
use crate::api::reasons;
use crate::api::{FlowPhase, Step, StepPhase, StepType};
use crate::labels;

fn phase(world: &World) -> FlowPhase {
    world.flow.status.as_ref().unwrap().phase.unwrap()
}

fn ready_reason(world: &World) -> String {
    world.flow.status.as_ref().unwrap().conditions[0]
        .reason
        .clone()
}

fn handled(world: &World, key: &str) -> Option<String> {
    world
        .flow
        .status
        .as_ref()
        .unwrap()
        .handled_requests
        .get(key)
        .cloned()
}

fn annotate(world: &mut World, pairs: &[(&str, &str)]) {
    let annotations = world.flow.metadata.annotations.get_or_insert_default();
    for (key, value) in pairs {
        annotations.insert((*key).to_owned(), (*value).to_owned());
    }
}

fn gate(name: &str, after: &[&str]) -> Step {
    Step {
        name: name.into(),
        step_type: StepType::Manual,
        dependencies: after.iter().map(|step| (*step).to_owned()).collect(),
        ..Step::default()
    }
}

#[test]
fn a_rejected_gate_fails_with_its_message_and_skips_downstream() {
    let mut world = World::new(flow(vec![
        job_step("a", &[]),
        gate("gate", &["a"]),
        job_step("b", &["gate"]),
    ]));
    let key = format!("{}gate", labels::REJECT_PREFIX);
    // Made before the gate waits: kept, not acknowledged, until it does.
    annotate(&mut world, &[(key.as_str(), "r1")]);
    world.step_at(t(0));
    assert_eq!(handled(&world, &key), None);
    let message_key = format!("{}gate", labels::REJECT_MESSAGE_PREFIX);
    annotate(&mut world, &[(message_key.as_str(), "not on a Friday")]);
    world.finish("etl-a-1", true, t(1));
    world.step_at(t(1));
    assert_eq!(world.step("gate").phase, StepPhase::PendingApproval);
    let plan = world.step_at(t(2));
    let gate = world.step("gate");
    assert_eq!(gate.phase, StepPhase::Failed);
    assert_eq!(gate.reason.as_deref(), Some(reasons::REJECTED));
    assert_eq!(
        gate.message.as_deref(),
        Some("rejected (request \"r1\"): not on a Friday")
    );
    assert_eq!(handled(&world, &key).as_deref(), Some("r1"));
    assert!(
        plan.events
            .iter()
            .any(|event| event.reason == reasons::STEP_REJECTED)
    );
    assert!(plan.create_jobs.is_empty());
    assert_eq!(world.step("b").phase, StepPhase::Skipped);
    assert_eq!(
        world.step("b").reason.as_deref(),
        Some(reasons::UPSTREAM_FAILED)
    );
    assert_eq!(phase(&world), FlowPhase::Failed);
}

#[test]
fn a_rejection_wins_over_an_approval_and_a_job_step_cannot_be_rejected() {
    let mut world = World::new(flow(vec![gate("gate", &[]), job_step("b", &["gate"])]));
    let reject_b = format!("{}b", labels::REJECT_PREFIX);
    annotate(
        &mut world,
        &[
            (&format!("{}gate", labels::REJECT_PREFIX), "r1"),
            (&format!("{}gate", labels::APPROVE_PREFIX), "a1"),
            (&reject_b, "r2"),
        ],
    );
    let plan = world.step_at(t(0));
    world.step_at(t(1));
    assert_eq!(
        world.step("gate").reason.as_deref(),
        Some(reasons::REJECTED)
    );
    assert_eq!(world.step("b").phase, StepPhase::Skipped);
    // Refused with a warning, acknowledged so it is not repeated.
    assert_eq!(handled(&world, &reject_b).as_deref(), Some("r2"));
    assert!(
        plan.events
            .iter()
            .any(|event| event.reason == reasons::REJECTION_REFUSED)
    );
}

#[test]
fn stop_deletes_running_jobs_skips_the_rest_and_runs_finally() {
    let mut spec = flow(vec![
        job_step("a", &[]),
        job_step("b", &[]),
        job_step("c", &["a"]),
    ]);
    spec.spec.finally = vec![job_step("cleanup", &[])];
    let mut world = World::new(spec);
    world.step_at(t(0));
    world.finish("etl-b-1", true, t(1));
    world.step_at(t(1));
    assert_eq!(world.running_jobs().len(), 1);

    annotate(&mut world, &[(labels::STOP, "s1")]);
    let plan = world.step_at(t(2));
    assert_eq!(handled(&world, labels::STOP).as_deref(), Some("s1"));
    assert_eq!(plan.delete_jobs.len(), 1);
    assert_eq!(short(&plan.delete_jobs[0].name), "etl-a-1");
    assert_eq!(plan.delete_jobs[0].reason, reasons::STOPPED);
    assert_eq!(world.step("a").phase, StepPhase::Failed);
    assert_eq!(world.step("a").reason.as_deref(), Some(reasons::STOPPED));
    assert_eq!(world.step("b").phase, StepPhase::Succeeded);
    assert_eq!(world.step("c").phase, StepPhase::Skipped);
    assert_eq!(world.step("c").reason.as_deref(), Some(reasons::STOPPED));
    assert!(
        plan.events
            .iter()
            .any(|event| event.reason == reasons::FLOW_STOPPED)
    );
    // The finally step runs; the flow fails with reason Stopped only after it.
    let created: Vec<&str> = plan
        .create_jobs
        .iter()
        .map(|job| short(job.metadata.name.as_deref().unwrap()))
        .collect();
    assert_eq!(created, ["etl-cleanup-1"]);
    assert_ne!(phase(&world), FlowPhase::Failed);
    world.remove_job("etl-a-1");
    world.finish("etl-cleanup-1", true, t(3));
    world.step_at(t(3));
    assert_eq!(world.step("cleanup").phase, StepPhase::Succeeded);
    assert_eq!(phase(&world), FlowPhase::Failed);
    assert_eq!(ready_reason(&world), reasons::STOPPED);

    // Left in place, the request is not carried out again; a stop of a finished flow does
    // nothing.
    let plan = world.step_at(t(4));
    assert!(plan.delete_jobs.is_empty() && plan.create_jobs.is_empty());
    assert_eq!(ready_reason(&world), reasons::STOPPED);
}

#[test]
fn stop_ends_a_waiting_gate_and_a_flow_that_never_started() {
    let mut world = World::new(flow(vec![gate("gate", &[]), job_step("b", &["gate"])]));
    world.step_at(t(0));
    assert_eq!(phase(&world), FlowPhase::Paused);
    annotate(&mut world, &[(labels::STOP, "s1")]);
    world.step_at(t(1));
    assert_eq!(world.step("gate").phase, StepPhase::Skipped);
    assert_eq!(world.step("gate").reason.as_deref(), Some(reasons::STOPPED));
    assert_eq!(phase(&world), FlowPhase::Failed);
    assert_eq!(ready_reason(&world), reasons::STOPPED);

    let mut fresh = World::new(flow(vec![job_step("a", &[])]));
    annotate(&mut fresh, &[(labels::STOP, "s1")]);
    let plan = fresh.step_at(t(0));
    assert!(plan.create_jobs.is_empty());
    assert_eq!(fresh.step("a").phase, StepPhase::Skipped);
    assert_eq!(phase(&fresh), FlowPhase::Failed);
    assert_eq!(ready_reason(&fresh), reasons::STOPPED);
}
