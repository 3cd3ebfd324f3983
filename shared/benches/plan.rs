//! Benchmarks: validate + build the DAG + plan, for flows of 10 to 10,000 steps.
//!
//! Run with `cargo bench -p jobflow --bench plan`. Each flow is a layered DAG (step i depends on
//! steps i/2 and i/3) observed half-way: the first half of the steps succeeded,
//! their Jobs are in the cache, and the planner must start the next wave.

// A benchmark whose setup fails must stop loudly rather than measure nothing.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use jobflow::api::{JobFlow, JobFlowSpec, Step};
use jobflow::planner::{BuiltJob, CompiledFlow, Observed, plan};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

fn step(index: usize) -> Step {
    // A wide DAG of depth about log2(size): step i depends on steps i/2 and i/3.
    let mut dependencies = Vec::new();
    if index > 0 {
        dependencies.push(format!("s{}", index / 2));
        if index / 3 != index / 2 {
            dependencies.push(format!("s{}", index / 3));
        }
    }
    Step {
        name: format!("s{index}"),
        dependencies,
        template: Some(serde_json::json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {"template": {"spec": {
                "containers": [{"name": "main", "image": "busybox:latest", "args": ["echo", "{{step.name}}"]}],
                "restartPolicy": "Never"
            }}}
        })),
        ..Step::default()
    }
}

/// A flow of `size` steps whose first half has run and succeeded.
fn half_done(size: usize, now: Timestamp) -> (JobFlow, Vec<Job>) {
    let mut flow = JobFlow::new(
        "bench",
        JobFlowSpec {
            steps: (0..size).map(step).collect(),
            ..JobFlowSpec::default()
        },
    );
    flow.metadata = ObjectMeta {
        name: Some("bench".into()),
        namespace: Some("default".into()),
        uid: Some("bench-uid".into()),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    let mut jobs = Vec::new();
    let mut now = now;
    let compiled = CompiledFlow::compile(&flow).expect("the benchmark flow is valid");
    for _ in 0..size {
        let observed = Observed {
            jobs: jobs.iter().collect(),
            ..Observed::default()
        };
        let next = plan(&flow, Ok(&compiled), &observed, now);
        flow.status = Some(next.status);
        let done = flow
            .status
            .as_ref()
            .map_or(0, |s| s.progress.as_ref().map_or(0, |p| p.completed_steps));
        let wave = next.create_jobs.len();
        // The wave just started has already completed when the benchmark looks, so the
        // measured plan records its results and starts the next wave.
        for mut job in next.create_jobs.into_iter().map(BuiltJob::into_job) {
            job.metadata.uid = Some(format!(
                "uid-{}",
                job.metadata.name.clone().unwrap_or_default()
            ));
            job.status = Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    ..JobCondition::default()
                }]),
                completion_time: Some(Time(now)),
                ..JobStatus::default()
            });
            jobs.push(job);
        }
        if usize::try_from(done).unwrap_or(0) >= size / 2 || wave == 0 {
            break;
        }
        now = now
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap_or(now);
    }
    (flow, jobs)
}

fn validate_build_and_plan(c: &mut Criterion) {
    let now = Timestamp::from_second(1_800_000_000).expect("a valid timestamp");
    for size in [10, 50, 1_000, 10_000] {
        let (flow, jobs) = half_done(size, now);
        let observed = Observed {
            jobs: jobs.iter().collect(),
            ..Observed::default()
        };
        let compiled = CompiledFlow::compile(&flow).expect("the benchmark flow is valid");
        c.benchmark_group("validate_dag_plan").bench_with_input(
            BenchmarkId::from_parameter(size),
            &size,
            |b, _| {
                b.iter(|| {
                    let compiled = CompiledFlow::compile(black_box(&flow));
                    black_box(plan(&flow, compiled.as_ref(), &observed, now))
                });
            },
        );
        // The agent compiles once per generation; each reconcile after that only plans.
        c.benchmark_group("compile").bench_with_input(
            BenchmarkId::from_parameter(size),
            &size,
            |b, _| {
                b.iter(|| CompiledFlow::compile(black_box(&flow)));
            },
        );
        c.benchmark_group("plan").bench_with_input(
            BenchmarkId::from_parameter(size),
            &size,
            |b, _| {
                b.iter(|| black_box(plan(&flow, Ok(&compiled), &observed, now)));
            },
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = validate_build_and_plan
}
criterion_main!(benches);
