//! Property tests: random DAGs up to 500 steps with random Job outcomes.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::testing::{World, flow, job_step, t};
use super::{CompiledFlow, Observed, Plan, plan};
use crate::api::reasons;
use crate::api::{FlowPhase, RetryPolicy, Step, StepPhase};

/// A random flow: each step depends on up to three earlier ones.
fn random_flow() -> impl Strategy<Value = (Vec<Step>, bool)> {
    (1usize..500).prop_flat_map(|size| {
        let steps = (0..size)
            .map(|index| {
                let dependencies = proptest::collection::vec(0..index.max(1), 0..=3.min(index));
                (dependencies, any::<bool>(), 0..3i32)
                    .prop_map(move |(dependencies, continue_on_failure, retries)| {
                        let names: BTreeSet<String> = dependencies
                            .into_iter()
                            .filter(|d| *d < index)
                            .map(|d| format!("s{d}"))
                            .collect();
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        let mut step = job_step(&format!("s{index}"), &names);
                        step.continue_on_failure = continue_on_failure && index % 4 == 0;
                        step.retry_policy = (retries > 0).then_some(RetryPolicy {
                            limit: retries,
                            backoff: None,
                        });
                        step
                    })
                    .boxed()
            })
            .collect::<Vec<_>>();
        (steps, any::<bool>())
    })
}

fn plan_world(world: &World, compiled: &CompiledFlow, now: jiff::Timestamp) -> Plan {
    let observed = Observed {
        jobs: world.jobs.iter().collect(),
        ..Observed::default()
    };
    plan(&world.flow, Ok(compiled), &observed, now)
}

/// Whether `dependency` lets its dependents start.
fn satisfied(world: &World, step: &Step, dependency: &str) -> bool {
    let status = world.step(dependency);
    let spec = world
        .flow
        .spec
        .steps
        .iter()
        .find(|s| s.name == dependency)
        .unwrap();
    let _ = step;
    match status.phase {
        StepPhase::Succeeded => true,
        StepPhase::Skipped => status.reason.as_deref() == Some(reasons::WHEN_FALSE),
        StepPhase::Failed => spec.continue_on_failure,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_flow_ends_with_each_job_made_once_after_its_dependencies(
        (steps, fail_fast) in random_flow(),
        seed in any::<u64>(),
    ) {
        let mut spec = flow(steps);
        spec.spec.execution_policy.fail_fast = fail_fast;
        spec.spec.execution_policy.backoff_limit = 1_000;
        let compiled = CompiledFlow::compile(&spec).unwrap();
        let size = spec.spec.steps.len();
        let mut world = World::new(spec);
        let mut random = seed | 1;
        let mut next = move || { random ^= random << 13; random ^= random >> 7; random ^= random << 17; random };
        for round in 0..(4 * i64::try_from(size).unwrap() + 10) {
            let now = t(round);
            let plan = plan_world(&world, &compiled, now);
            for job in &plan.create_jobs {
                let name = job.metadata.name.clone().unwrap();
                prop_assert!(world.job(&name).is_none(), "Job {} created twice", name);
            }
            world.apply(&plan, now);
            for job in &plan.create_jobs {
                let step_name = &job.metadata.labels.as_ref().unwrap()[crate::labels::STEP];
                let step = world.flow.spec.steps.iter().find(|s| &s.name == step_name).unwrap().clone();
                for dependency in &step.dependencies {
                    prop_assert!(satisfied(&world, &step, dependency), "{} started before {} allowed it", step.name, dependency);
                }
            }
            // The next pass records the new Jobs' UIDs; after it, planning the same world
            // changes nothing.
            let observe = plan_world(&world, &compiled, now);
            prop_assert!(observe.create_jobs.is_empty() && observe.delete_jobs.is_empty());
            world.apply(&observe, now);
            let again = plan_world(&world, &compiled, now);
            prop_assert!(again.create_jobs.is_empty() && again.delete_jobs.is_empty());
            prop_assert!(Some(&again.status) == world.flow.status.as_ref(), "planning an unchanged world changed its status");

            let phase = world.flow.status.as_ref().unwrap().phase.unwrap();
            if phase.is_terminal() {
                prop_assert!(world.running_jobs().is_empty());
                let unique: BTreeSet<&String> = world.created.iter().collect();
                prop_assert_eq!(unique.len(), world.created.len());
                return Ok(());
            }
            prop_assert_eq!(phase, FlowPhase::Running);
            let running = world.running_jobs();
            prop_assert!(!running.is_empty(), "flow is stuck in round {}", round);
            for name in running {
                if next() % 10 < 7 {
                    world.finish(&name, next() % 4 != 0, now);
                }
            }
        }
        prop_assert!(false, "the flow did not finish");
    }
}
