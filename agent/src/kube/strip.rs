//! What the caches keep of each object: only what the planner and the triggers read, so a
//! cluster with many Jobs and pods costs little memory.

use jobflow::api::JobFlow;
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodCondition,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::slim::{CachedJob, CachedPod};

/// The annotation `kubectl apply` keeps a full copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Flows keep their spec, status, labels and annotations; managed fields and kubectl's copy of
/// the object go.
pub fn flow(flow: &mut JobFlow) {
    flow.metadata.managed_fields = None;
    if let Some(annotations) = flow.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// A Job the API server returned to a create or a GET (standing in for the cache until the
/// watch shows it), kept as the cache keeps Jobs: see [`cached_job`].
pub fn job(job: Job) -> CachedJob {
    let mut cached = CachedJob::from(job);
    cached_job(&mut cached);
    cached
}

/// Cached Jobs (which have no spec) keep their identity, labels, annotations, owners,
/// timestamps and status.
pub fn cached_job(job: &mut CachedJob) {
    keep_identity(&mut job.metadata, true);
    keep_job_status(job.status.as_mut());
}

fn keep_job_status(status: Option<&mut JobStatus>) {
    if let Some(status) = status {
        status.uncounted_terminated_pods = None;
    }
}

/// Pods keep their identity, labels and owners, their phase, their containers' exit codes,
/// termination reasons and messages and what tells why a pod is stuck (see [`jobflow::planner::pod_trouble`]): the
/// `PodScheduled` condition, each container's image, restart count and waiting state; nothing
/// else (a cached pod has no spec).
pub fn pod(pod: &mut CachedPod) {
    keep_identity(&mut pod.metadata, false);
    pod.status = pod.status.take().map(|status| PodStatus {
        phase: status.phase,
        conditions: status.conditions.map(|conditions| {
            conditions
                .into_iter()
                .filter(|c| c.type_ == "PodScheduled")
                .map(|c| PodCondition {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                    ..PodCondition::default()
                })
                .collect()
        }),
        init_container_statuses: status.init_container_statuses.map(keep_containers),
        container_statuses: status.container_statuses.map(keep_containers),
        ..PodStatus::default()
    });
}

fn keep_containers(containers: Vec<ContainerStatus>) -> Vec<ContainerStatus> {
    containers.into_iter().map(keep_container).collect()
}

fn keep_container(c: ContainerStatus) -> ContainerStatus {
    ContainerStatus {
        name: c.name,
        image: c.image,
        restart_count: c.restart_count,
        state: c.state.map(|state| ContainerState {
            terminated: state.terminated.map(|t| ContainerStateTerminated {
                exit_code: t.exit_code,
                reason: t.reason,
                message: t.message,
                ..ContainerStateTerminated::default()
            }),
            waiting: state.waiting.map(|w| ContainerStateWaiting {
                reason: w.reason,
                message: w.message,
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

fn keep_identity(meta: &mut ObjectMeta, keep_annotations: bool) {
    let kept = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        generation: meta.generation.take(),
        labels: meta.labels.take(),
        annotations: if keep_annotations {
            meta.annotations.take()
        } else {
            None
        },
        owner_references: meta.owner_references.take(),
        creation_timestamp: meta.creation_timestamp.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        ..ObjectMeta::default()
    };
    *meta = kept;
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    /// `pod` as the pod cache holds it, read back as the planner reads it.
    fn stripped(pod: k8s_openapi::api::core::v1::Pod) -> k8s_openapi::api::core::v1::Pod {
        let mut cached = CachedPod::from(pod);
        super::pod(&mut cached);
        cached.pod()
    }

    fn heavy_template() -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".to_owned(),
                    image: Some("busybox".to_owned()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    #[test]
    fn jobs_lose_template_and_managed_fields_but_keep_what_the_planner_reads() {
        let mut j = crate::testing::job("f-a-1", "f", "u");
        j.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        j.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        j.spec = Some(JobSpec {
            template: heavy_template(),
            backoff_limit: Some(2),
            ..JobSpec::default()
        });
        j.status = Some(JobStatus {
            succeeded: Some(1),
            conditions: Some(vec![JobCondition {
                type_: "Complete".to_owned(),
                status: "True".to_owned(),
                ..JobCondition::default()
            }]),
            ..JobStatus::default()
        });
        let before = j.clone();
        let j = job(j);
        let mut cached = CachedJob::from(before.clone());
        cached_job(&mut cached);
        assert_eq!(cached.metadata, j.metadata, "one rule for both forms");
        assert_eq!(cached.status, j.status);
        assert_eq!(j.metadata.managed_fields, None);
        assert_eq!(j.job().spec, None, "the pod template goes");
        assert_eq!(j.status, before.status);
        assert_eq!(j.metadata.labels, before.metadata.labels);
        assert_eq!(j.metadata.annotations, before.metadata.annotations);
        assert_eq!(
            j.metadata.owner_references,
            before.metadata.owner_references
        );
    }

    #[test]
    fn pods_keep_phase_and_termination_message_only() {
        let mut p = crate::testing::pod("p", ("job-name", "j"), "Succeeded", Some("out"));
        p.spec = Some(PodSpec::default());
        p.metadata.annotations = Some([("big".to_owned(), "x".repeat(1000))].into());
        let p = stripped(p);
        assert_eq!(p.spec, None);
        assert_eq!(p.metadata.annotations, None);
        assert_eq!(p.metadata.labels.as_ref().unwrap()["job-name"], "j");
        assert_eq!(jobflow::planner::termination_message(&p), Some("out"));
    }

    #[test]
    fn pods_keep_what_tells_why_they_are_stuck() {
        use k8s_openapi::api::core::v1::ContainerStateRunning;
        let waiting = |name: &str, reason: &str, message: &str| ContainerStatus {
            name: name.to_owned(),
            image: "busybox:nope".to_owned(),
            image_id: "sha256:big".to_owned(),
            restart_count: 4,
            ready: true,
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.to_owned()),
                    message: Some(message.to_owned()),
                }),
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        };
        let condition = |type_: &str, reason: &str| PodCondition {
            type_: type_.to_owned(),
            status: "False".to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(format!("{type_} is false")),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            )),
            ..PodCondition::default()
        };
        let mut p = crate::testing::pod("p", ("job-name", "j"), "Pending", None);
        let status = p.status.as_mut().unwrap();
        status.conditions = Some(vec![
            condition("PodScheduled", "Unschedulable"),
            condition("Ready", "ContainersNotReady"),
        ]);
        status.init_container_statuses =
            Some(vec![waiting("init", "ImagePullBackOff", "back-off")]);
        status.container_statuses = Some(vec![waiting("main", "CrashLoopBackOff", "again")]);
        status.host_ip = Some("10.0.0.1".to_owned());
        let before = jobflow::planner::pod_trouble(&p);
        let p = stripped(p);
        assert_eq!(jobflow::planner::pod_trouble(&p), before);
        let status = p.status.as_ref().unwrap();
        let conditions = status.conditions.as_ref().unwrap();
        assert_eq!(conditions.len(), 1, "only PodScheduled");
        assert_eq!(conditions[0].last_transition_time, None);
        assert_eq!(status.host_ip, None);
        let main = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(main.image, "busybox:nope");
        assert_eq!(main.restart_count, 4);
        assert_eq!(main.image_id, "");
        assert!(!main.ready);
        let state = main.state.as_ref().unwrap();
        assert_eq!(state.running, None);
        assert_eq!(
            state.waiting.as_ref().unwrap().message.as_deref(),
            Some("again")
        );
        let init = &status.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            init.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ImagePullBackOff")
        );
    }

    #[test]
    fn flows_lose_managed_fields_and_last_applied() {
        let mut f = crate::testing::flow("f", "u", None, 0);
        f.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        f.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_owned(), "{}".to_owned()),
                (
                    "approve.workflow.kube-zen.io/gate".to_owned(),
                    "r1".to_owned(),
                ),
            ]
            .into(),
        );
        flow(&mut f);
        assert_eq!(f.metadata.managed_fields, None);
        assert_eq!(f.metadata.annotations.unwrap().len(), 1);
    }
}
