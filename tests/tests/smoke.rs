//! Smoke tests of the local control plane itself (`tests/cluster/up.sh`): the Job controller,
//! kwok's pod stages, the garbage collector, namespace deletion and the `JobFlow` CRD behave as
//! the zen-flow tests rely on. They fail, never skip, when the control plane is not running.

// Test code: a failed unwrap or assert is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jobflow::api::{
    Condition, FlowPhase, JobFlow, JobFlowSpec, JobFlowStatus, JobRef, Progress, Step, StepPhase,
    StepStatus,
};
use jobflow_tests::jobs::pods_of;
use jobflow_tests::{
    FIELD_MANAGER, FakePod, POLL, TestNamespace, fake_job, install_crd, job_condition,
    run_in_namespace, wait_for, wait_for_deletion, wait_for_object,
};
use k8s_openapi::api::batch::v1::{
    Job, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource as _, ResourceExt as _};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Every container's `state.terminated`, failing the test if a container has none.
fn terminated(pod: &Pod) -> Vec<ContainerStateTerminated> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    assert!(
        !statuses.is_empty(),
        "pod {} has no container statuses",
        pod.name_any()
    );
    statuses
        .into_iter()
        .map(|status| {
            status
                .state
                .and_then(|state| state.terminated)
                .unwrap_or_else(|| {
                    panic!(
                        "container {} of pod {} is not terminated",
                        status.name,
                        pod.name_any()
                    )
                })
        })
        .collect()
}

/// Waits for Job `name` to have condition `wanted` (True); the opposite end fails at once.
async fn wait_for_job_end(jobs: &Api<Job>, name: &str, wanted: &str) -> anyhow::Result<Job> {
    let other = if wanted == "Complete" {
        "Failed"
    } else {
        "Complete"
    };
    wait_for_object(
        jobs,
        name,
        &format!("Job {name} to be {wanted}"),
        TIMEOUT,
        |job| {
            if let Some(condition) = job_condition(job, other) {
                anyhow::bail!("Job {name} ended {other} instead: {condition:?}");
            }
            Ok(job_condition(job, wanted).is_some())
        },
    )
    .await
}

/// Waits until one of Job `job`'s pods is Running, and returns it.
async fn wait_for_running_pod(pods: &Api<Pod>, job: &str) -> anyhow::Result<Pod> {
    wait_for(
        &format!("a Running pod of Job {job}"),
        TIMEOUT,
        POLL,
        || async {
            Ok(pods_of(pods, job)
                .await?
                .into_iter()
                .find(|pod| phase(pod) == Some("Running")))
        },
    )
    .await
}

#[tokio::test]
async fn job_runs_to_complete_through_kwok() -> anyhow::Result<()> {
    run_in_namespace("job-completes", |ns| async move {
        let jobs: Api<Job> = ns.api();
        let pods: Api<Pod> = ns.api();
        let output = json!({"answer": "42", "quoted": "it's \"q\" <&>"});
        let run_for = Duration::from_secs(2);
        let job = fake_job(
            "completes",
            &FakePod::succeed().running_for(run_for).with_output(&output),
        );

        let created = Instant::now();
        jobs.create(&PostParams::default(), &job).await?;
        // Pending -> Running (kwok's pod-create and pod-ready), then Succeeded after `run_for`.
        let running = wait_for_running_pod(&pods, "completes").await?;
        let job = wait_for_job_end(&jobs, "completes", "Complete").await?;
        assert!(
            created.elapsed() >= run_for,
            "the Job completed after {:?}, before its pod's {run_for:?} run",
            created.elapsed()
        );
        assert_eq!(job.status.as_ref().unwrap().succeeded, Some(1));

        let pod = pods.get(&running.name_any()).await?;
        assert_eq!(phase(&pod), Some("Succeeded"));
        for state in terminated(&pod) {
            assert_eq!(state.exit_code, 0);
            assert_eq!(state.reason.as_deref(), Some("Completed"));
            let message: serde_json::Value =
                serde_json::from_str(state.message.as_deref().unwrap_or_default())?;
            assert_eq!(
                message, output,
                "the termination message carries the output"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn failed_pod_fails_job_after_backoff_limit() -> anyhow::Result<()> {
    run_in_namespace("job-fails", |ns| async move {
        let jobs: Api<Job> = ns.api();
        let pods: Api<Pod> = ns.api();
        // backoffLimit 0 (fake_job's default): the first failure fails the Job.
        let job = fake_job("fails", &FakePod::fail(3, "exit three"));
        jobs.create(&PostParams::default(), &job).await?;

        let job = wait_for_job_end(&jobs, "fails", "Failed").await?;
        let failed = job_condition(&job, "Failed").unwrap();
        assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(job.status.as_ref().unwrap().failed, Some(1));

        let pods = pods_of(&pods, "fails").await?;
        assert_eq!(pods.len(), 1, "no retry with backoffLimit 0");
        assert_eq!(phase(&pods[0]), Some("Failed"));
        for state in terminated(&pods[0]) {
            assert_eq!(state.exit_code, 3);
            assert_eq!(state.message.as_deref(), Some("exit three"));
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn pod_failure_policy_fails_job_on_exit_code() -> anyhow::Result<()> {
    run_in_namespace("pod-failure-policy", |ns| async move {
        let jobs: Api<Job> = ns.api();
        let mut job = fake_job("policy", &FakePod::fail(3, "fatal"));
        let spec = job.spec.as_mut().unwrap();
        // Retries are allowed, so only the FailJob rule can fail the Job at the first failure.
        spec.backoff_limit = Some(6);
        spec.pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".to_owned(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    operator: "In".to_owned(),
                    values: vec![3],
                    ..PodFailurePolicyOnExitCodesRequirement::default()
                }),
                ..PodFailurePolicyRule::default()
            }],
        });
        jobs.create(&PostParams::default(), &job).await?;

        let job = wait_for_job_end(&jobs, "policy", "Failed").await?;
        let failed = job_condition(&job, "Failed").unwrap();
        assert_eq!(failed.reason.as_deref(), Some("PodFailurePolicy"));
        assert!(
            failed
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("exit code 3"),
            "{failed:?}"
        );
        assert_eq!(
            job.status.as_ref().unwrap().failed,
            Some(1),
            "no retry after FailJob"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn garbage_collector_deletes_jobs_of_a_deleted_owner() -> anyhow::Result<()> {
    run_in_namespace("gc", |ns| async move {
        let config_maps: Api<ConfigMap> = ns.api();
        let jobs: Api<Job> = ns.api();
        let pods: Api<Pod> = ns.api();
        let owner = config_maps
            .create(
                &PostParams::default(),
                &ConfigMap {
                    metadata: ObjectMeta {
                        name: Some("owner".to_owned()),
                        ..ObjectMeta::default()
                    },
                    ..ConfigMap::default()
                },
            )
            .await?;
        // Pods that are still running when their Job goes: kwok must terminate them too.
        let long = FakePod::succeed().running_for(Duration::from_secs(3600));
        let mut owned_job = fake_job("owned", &long);
        owned_job.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "ConfigMap".to_owned(),
            name: owner.name_any(),
            uid: owner.uid().unwrap(),
            ..OwnerReference::default()
        }]);
        jobs.create(&PostParams::default(), &owned_job).await?;
        // Not owned: must survive, so the test fails if everything just gets deleted.
        jobs.create(&PostParams::default(), &fake_job("bystander", &long))
            .await?;
        wait_for_running_pod(&pods, "owned").await?;
        wait_for_running_pod(&pods, "bystander").await?;

        config_maps
            .delete("owner", &DeleteParams::background())
            .await?;
        wait_for_deletion(&jobs, "owned", TIMEOUT).await?;
        wait_for(
            "the pods of Job owned to be deleted",
            TIMEOUT,
            POLL,
            || async { Ok(pods_of(&pods, "owned").await?.is_empty().then_some(())) },
        )
        .await?;
        assert!(
            jobs.get_opt("bystander").await?.is_some(),
            "a Job without owner was deleted"
        );
        assert_eq!(pods_of(&pods, "bystander").await?.len(), 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn namespace_deletion_finishes_with_running_pods() -> anyhow::Result<()> {
    run_in_namespace("namespace-deletion", |ns| async move {
        let jobs: Api<Job> = ns.api();
        let pods: Api<Pod> = ns.api();
        let long = FakePod::succeed().running_for(Duration::from_secs(3600));
        jobs.create(&PostParams::default(), &fake_job("long", &long))
            .await?;
        wait_for_running_pod(&pods, "long").await?;
        // Only ends when kwok terminates and removes the pod, the Job controller drops its
        // finalizer, and the namespace controller sees everything gone.
        ns.delete_and_wait(Duration::from_secs(90)).await
    })
    .await
}

const MISSING_KUBECONFIG: &str = "/nonexistent/zen-flow/kubeconfig";

#[tokio::test]
async fn cluster_tests_fail_without_a_control_plane() {
    // Run in a child process: the kubeconfig location is process-wide (an env variable).
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            "--nocapture",
            "probe_client_with_missing_kubeconfig",
            "--ignored",
        ])
        .env(jobflow_tests::KUBECONFIG_ENV, MISSING_KUBECONFIG)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the probe did not run: {stdout}"
    );
}

/// Run by `cluster_tests_fail_without_a_control_plane` only (ignored otherwise).
#[tokio::test]
#[ignore = "run by cluster_tests_fail_without_a_control_plane with a missing kubeconfig"]
async fn probe_client_with_missing_kubeconfig() {
    // Run with --include-ignored against the real control plane, there is nothing to probe.
    if std::env::var(jobflow_tests::KUBECONFIG_ENV).as_deref() != Ok(MISSING_KUBECONFIG) {
        return;
    }
    let error = jobflow_tests::client()
        .await
        .err()
        .expect("no client without a kubeconfig");
    let message = format!("{error:#}");
    assert!(message.contains(MISSING_KUBECONFIG), "{message}");
    assert!(message.contains("tests/cluster/up.sh"), "{message}");
    let error = run_in_namespace("never-runs", |_| async { Ok(()) })
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("no control plane"),
        "{error:#}"
    );
}

/// A time with whole seconds: the API serializes times to the second.
fn time(second: i64) -> Time {
    Time(Timestamp::from_second(second).unwrap())
}

#[tokio::test]
async fn jobflow_crd_is_established_and_keeps_every_status_field() -> anyhow::Result<()> {
    run_in_namespace("jobflow-crd", |ns: TestNamespace| async move {
        let names = install_crd(&ns.client()).await?;
        assert!(
            names
                .iter()
                .any(|name| name == "jobflows.workflow.kube-zen.io"),
            "{names:?}"
        );

        let flows: Api<JobFlow> = ns.api();
        let template = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "build"},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "zen-flow.test/fake:latest"}],
            }}},
        });
        let flow = JobFlow::new(
            "sample",
            JobFlowSpec {
                steps: vec![Step {
                    name: "build".to_owned(),
                    template: Some(template),
                    ..Step::default()
                }],
                ..JobFlowSpec::default()
            },
        );
        let created = flows.create(&PostParams::default(), &flow).await?;

        // Every field set, so a field the CRD's schema forgot would be pruned and show here.
        let status = JobFlowStatus {
            phase: Some(FlowPhase::Running),
            observed_generation: created.metadata.generation,
            conditions: vec![Condition {
                type_: "Ready".to_owned(),
                status: "False".to_owned(),
                reason: "StepsRunning".to_owned(),
                message: "1 of 1 steps running".to_owned(),
                last_transition_time: time(1_800_000_000),
                observed_generation: created.metadata.generation,
            }],
            start_time: Some(time(1_800_000_001)),
            completion_time: Some(time(1_800_000_060)),
            progress: Some(Progress {
                completed_steps: 1,
                total_steps: 2,
                successful_steps: 1,
                failed_steps: 3,
                skipped_steps: 4,
                running_steps: 5,
                summary: "1/2".to_owned(),
            }),
            steps: vec![StepStatus {
                name: "build".to_owned(),
                phase: StepPhase::Running,
                reason: Some("Retrying".to_owned()),
                attempt: 2,
                retry_count: 1,
                job_ref: Some(JobRef {
                    api_version: Some("batch/v1".to_owned()),
                    kind: Some("Job".to_owned()),
                    name: "sample-build-2".to_owned(),
                    namespace: Some(ns.name().to_owned()),
                    uid: Some("0c6e3f5a-7a1e-4d8e-9d36-2b1f0d0c9e11".to_owned()),
                }),
                start_time: Some(time(1_800_000_002)),
                completion_time: Some(time(1_800_000_050)),
                next_attempt_time: Some(time(1_800_000_010)),
                message: Some("attempt 1 failed: exit code 3".to_owned()),
                outputs: BTreeMap::from([("digest".to_owned(), "sha256:abc".to_owned())]),
            }],
            handled_requests: BTreeMap::from([(
                "workflow.kube-zen.io/retry".to_owned(),
                "2026-01-01T00:00:00Z".to_owned(),
            )]),
        };
        let patch = json!({
            "apiVersion": JobFlow::api_version(&()),
            "kind": JobFlow::kind(&()),
            "status": status,
        });
        let patched = flows
            .patch_status(
                "sample",
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        assert_eq!(
            patched.status.as_ref(),
            Some(&status),
            "status as returned by the patch"
        );
        let read = flows.get("sample").await?;
        assert_eq!(read.status, Some(status), "status as read back");
        assert_eq!(read.spec, flow.spec, "the status patch left the spec alone");
        Ok(())
    })
    .await
}
