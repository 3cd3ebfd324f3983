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

/// Numbers at and past every limit: zero, the edges of the valid range, the integer extremes.
fn extreme_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(i32::MIN),
        Just(-1),
        Just(0),
        Just(1),
        Just(crate::limits::MAX_STEP_RETRIES),
        Just(crate::limits::MAX_BACKOFF_LIMIT),
        Just(i32::MAX - 1),
        Just(i32::MAX),
        any::<i32>(),
    ]
}

fn extreme_i64() -> impl Strategy<Value = i64> {
    use crate::limits::{MAX_SECONDS, MAX_TTL_SECONDS};
    prop_oneof![
        Just(i64::MIN),
        Just(0),
        Just(1),
        Just(MAX_SECONDS),
        Just(MAX_TTL_SECONDS),
        Just(MAX_TTL_SECONDS + 1),
        Just(i64::MAX),
        any::<i64>(),
    ]
}

fn extreme_factor() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        Just(Some(f64::NAN)),
        Just(Some(f64::INFINITY)),
        Just(Some(-1.0)),
        Just(Some(1.0)),
        Just(Some(crate::limits::MAX_BACKOFF_FACTOR)),
        Just(Some(1e300)),
        any::<f64>().prop_map(Some),
    ]
}

fn extreme_duration() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1ns".to_owned()),
        Just("10s".to_owned()),
        Just("24h".to_owned()),
        Just("24h0m0.000000001s".to_owned()),
        Just("1000000h".to_owned()),
        Just("99999999999999999999h".to_owned()),
        "[0-9]{1,20}(ns|ms|s|m|h)",
    ]
}

/// A one-step flow whose numbers are extreme, with a status whose counters are too (as an older
/// release or a hand-edited status could leave them).
fn extreme_flow() -> impl Strategy<Value = crate::api::JobFlow> {
    use crate::api::{Backoff, BackoffType, JobFlowStatus, StepStatus};
    (
        (extreme_i32(), extreme_i32(), extreme_i32()),
        (extreme_i64(), extreme_i64(), extreme_i64()),
        (extreme_factor(), extreme_duration(), 0..3usize),
        (extreme_i32(), extreme_i32()),
    )
        .prop_map(
            |(
                (limit, backoff_limit, parallelism),
                (timeout, deadline, ttl),
                (factor, duration, kind),
                (retry_count, attempt),
            )| {
                let mut step = job_step("a", &[]);
                step.timeout_seconds = Some(timeout);
                step.retry_policy = Some(RetryPolicy {
                    limit,
                    backoff: Some(Backoff {
                        backoff_type: [
                            BackoffType::Exponential,
                            BackoffType::Linear,
                            BackoffType::Fixed,
                        ][kind],
                        duration,
                        factor,
                    }),
                });
                let mut spec = flow(vec![step]);
                let policy = &mut spec.spec.execution_policy;
                policy.backoff_limit = backoff_limit;
                policy.parallelism = Some(parallelism);
                policy.active_deadline_seconds = Some(deadline);
                policy.ttl_seconds_after_finished = ttl;
                spec.status = Some(JobFlowStatus {
                    steps: vec![StepStatus {
                        name: "a".into(),
                        retry_count,
                        attempt,
                        ..StepStatus::default()
                    }],
                    ..JobFlowStatus::default()
                });
                spec
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No number, however extreme, panics validation or the planner, and no requeue is longer
    /// than the cap: validation refuses what is out of range, the planner clamps what got past.
    #[test]
    fn extreme_numbers_never_panic_and_every_requeue_is_capped(
        spec in extreme_flow(),
        failures in 0..4usize,
        offset in prop_oneof![Just(0i64), Just(3_600), Just(400 * 86_400), Just(200 * 365 * 86_400)],
    ) {
        use crate::limits::{MAX_BACKOFF, MAX_REQUEUE};
        let compiled = CompiledFlow::compile(&spec);
        if compiled.is_ok() {
            let policy = &spec.spec.execution_policy;
            prop_assert!(policy.ttl_seconds_after_finished <= crate::limits::MAX_TTL_SECONDS);
            let retry = spec.spec.steps[0].retry_policy.as_ref().unwrap();
            prop_assert!(super::backoff(retry, i32::MAX) <= MAX_BACKOFF);
        }
        let mut world = World::new(spec);
        let mut now = t(0);
        for round in 0..=failures {
            let plan = world.step_at(now);
            if let Some(wait) = plan.requeue_after {
                prop_assert!(wait <= MAX_REQUEUE, "requeue after {wait:?}");
                prop_assert!(wait >= std::time::Duration::from_secs(1));
            }
            for name in world.running_jobs() {
                world.finish(&name, false, now);
            }
            now = t(offset.saturating_mul(i64::try_from(round).unwrap() + 1).min(200_000_000_000));
        }
    }
}
