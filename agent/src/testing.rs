//! Objects for the unit tests: flows, Jobs and pods as the API server would return them.

use jiff::Timestamp;
use jobflow::api::{JobFlow, JobFlowSpec, Step};
use jobflow::labels;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde_json::json;

/// A flow in namespace `ns` with `uid`, an optional concurrency key, created at second `created`.
pub fn flow(name: &str, uid: &str, key: Option<&str>, created: i64) -> JobFlow {
    let mut f = JobFlow::new(name, JobFlowSpec::default());
    f.metadata.namespace = Some("ns".to_owned());
    f.metadata.uid = Some(uid.to_owned());
    f.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
    f.spec.execution_policy.concurrency_key = key.map(str::to_owned);
    f
}

/// A Job of the flow labelled `flow`, owned by the flow with `owner_uid`; its UID is `uid-<name>`.
pub fn job(name: &str, flow: &str, owner_uid: &str) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            uid: Some(format!("uid-{name}")),
            namespace: Some("ns".to_owned()),
            labels: Some([(labels::FLOW.to_owned(), flow.to_owned())].into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "workflow.kube-zen.io/v1alpha1".to_owned(),
                kind: "JobFlow".to_owned(),
                name: flow.to_owned(),
                uid: owner_uid.to_owned(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        ..Job::default()
    }
}

/// A pod of the Job `job_label.1` (labelled `job_label.0`) in `phase`, its container terminated with `message`.
pub fn pod(name: &str, job_label: (&str, &str), phase: &str, message: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("ns".to_owned()),
            labels: Some([(job_label.0.to_owned(), job_label.1.to_owned())].into()),
            // The Job controller's reference to the Job of that name (see `job`).
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".to_owned(),
                kind: "Job".to_owned(),
                name: job_label.1.to_owned(),
                uid: format!("uid-{}", job_label.1),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some(phase.to_owned()),
            container_statuses: Some(vec![ContainerStatus {
                name: "main".to_owned(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        message: message.map(str::to_owned),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

/// A flow with two steps and a finally step, one of them without a template (manual), at
/// `generation` (resourceVersion 1).
pub fn with_templates(generation: i64) -> JobFlow {
    let mut f = flow("f", "u", None, 0);
    f.metadata.generation = Some(generation);
    f.metadata.resource_version = Some("1".into());
    let step = |name: &str, template: Option<serde_json::Value>| {
        let mut step: Step = serde_json::from_value(json!({"name": name})).unwrap();
        step.template = template;
        step
    };
    let job = |arg: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "args": [arg]}]}}}})
    };
    f.spec.steps = vec![step("a", Some(job("a"))), step("gate", None)];
    f.spec.finally = vec![step("z", Some(job("{{steps.a.phase}}")))];
    f
}

/// `flow` as JSON, to compare flows whole.
pub fn json_of(flow: &JobFlow) -> serde_json::Value {
    serde_json::to_value(flow).unwrap()
}
