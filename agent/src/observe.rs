//! What the planner is shown for one flow, built from cache contents only: pure functions over
//! the cached Jobs, Pods and flows.

use std::collections::BTreeMap;
use std::sync::Arc;

use jobflow::api::JobFlow;
use jobflow::labels;
use jobflow::planner::{Observed, PodTrouble, peers, pod_failure, pod_trouble};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// What the planner sees of `flow`, from cache contents: its Jobs, their succeeded pods'
/// termination messages, why their pods are stuck or how they failed, and its concurrency
/// peers. The slices may hold anything the caches hold; only what belongs to `flow` is taken.
pub fn observed<'a>(
    flow: &JobFlow,
    jobs: &'a [Arc<Job>],
    pods: &[Arc<Pod>],
    flows: &[Arc<JobFlow>],
) -> Observed<'a> {
    let jobs: Vec<&Job> = jobs
        .iter()
        .map(AsRef::as_ref)
        .filter(|j| is_flow_job(flow, j))
        .collect();
    Observed {
        termination_messages: termination_messages(&jobs, pods.iter().map(AsRef::as_ref)),
        pod_trouble: pod_troubles(&jobs, pods.iter().map(AsRef::as_ref)),
        pod_failures: by_job(&jobs, pods.iter().map(AsRef::as_ref), pod_failure),
        peers: peers(flow, flows.iter().map(AsRef::as_ref)),
        jobs,
        refused: BTreeMap::new(),
    }
}

/// Whether `job` is one of `flow`'s: same namespace, the flow label names it and an owner
/// reference carries its UID (so a flow re-created under the same name never adopts the Jobs
/// of its predecessor).
pub fn is_flow_job(flow: &JobFlow, job: &Job) -> bool {
    is_flow_object(flow, &job.metadata)
}

/// Whether the object with metadata `meta` is one of `flow`'s, by the rule of [`is_flow_job`].
pub fn is_flow_object(flow: &JobFlow, meta: &ObjectMeta) -> bool {
    let (Some(name), Some(uid)) = (&flow.metadata.name, &flow.metadata.uid) else {
        return false;
    };
    meta.namespace == flow.metadata.namespace
        && label(meta.labels.as_ref(), labels::FLOW) == Some(name.as_str())
        && meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| &o.uid == uid)
}

/// The termination message of each of `jobs`' succeeded pods, by Job name (see [`by_job`]).
pub fn termination_messages<'a>(
    jobs: &[&'a Job],
    pods: impl IntoIterator<Item = &'a Pod>,
) -> BTreeMap<String, String> {
    by_job(jobs, pods, |pod| {
        termination_message(pod).map(str::to_owned)
    })
}

/// Why the pod of each of `jobs` is stuck, by Job name; Jobs whose pods are fine are absent
/// (see [`by_job`]).
pub fn pod_troubles<'a>(
    jobs: &[&'a Job],
    pods: impl IntoIterator<Item = &'a Pod>,
) -> BTreeMap<String, PodTrouble> {
    by_job(jobs, pods, pod_trouble)
}

/// What `read` finds in `jobs`' pods, by Job name. A pod is a Job's when its controller
/// reference carries the Job's UID, so a flow re-created under its old name never reads its
/// predecessor's pods, whose Jobs had the same name. When several pods of a Job have something
/// to read, the one whose name sorts first is used, so the choice is stable.
fn by_job<'a, T>(
    jobs: &[&'a Job],
    pods: impl IntoIterator<Item = &'a Pod>,
    read: impl Fn(&'a Pod) -> Option<T>,
) -> BTreeMap<String, T> {
    let by_uid: BTreeMap<&str, &str> = jobs
        .iter()
        .filter_map(|j| Some((j.metadata.uid.as_deref()?, j.metadata.name.as_deref()?)))
        .collect();
    let mut found: BTreeMap<&str, (&str, T)> = BTreeMap::new();
    for pod in pods {
        let Some(pod_name) = pod.metadata.name.as_deref() else {
            continue;
        };
        let Some(job) = controller_job_uid(pod).and_then(|uid| by_uid.get(uid)) else {
            continue;
        };
        if found.get(job).is_some_and(|(kept, _)| *kept <= pod_name) {
            continue;
        }
        if let Some(value) = read(pod) {
            found.insert(job, (pod_name, value));
        }
    }
    found
        .into_iter()
        .map(|(job, (_, value))| (job.to_owned(), value))
        .collect()
}

/// The UID of the Job that controls `pod`, from its controller owner reference.
fn controller_job_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true) && owner.kind == "Job")
        .map(|owner| owner.uid.as_str())
}

/// The first non-empty termination message of a succeeded pod's containers.
pub fn termination_message(pod: &Pod) -> Option<&str> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Succeeded") {
        return None;
    }
    status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.as_deref())
        .find(|m| !m.is_empty())
}

fn label<'a>(labels: Option<&'a BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    labels?.get(key).map(String::as_str)
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use jiff::Timestamp;
    use jobflow::api::JobFlowSpec;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

    pub(crate) fn flow(name: &str, uid: &str, key: Option<&str>, created: i64) -> JobFlow {
        let mut f = JobFlow::new(name, JobFlowSpec::default());
        f.metadata.namespace = Some("ns".to_owned());
        f.metadata.uid = Some(uid.to_owned());
        f.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        f.spec.execution_policy.concurrency_key = key.map(str::to_owned);
        f
    }

    pub(crate) fn job(name: &str, flow: &str, owner_uid: &str) -> Job {
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

    pub(crate) fn pod(
        name: &str,
        job_label: (&str, &str),
        phase: &str,
        message: Option<&str>,
    ) -> Pod {
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

    #[test]
    fn observed_takes_only_what_belongs_to_the_flow() {
        let me = flow("f", "u", Some("k"), 10);
        let jobs = [
            job("f-a-1", "f", "u"),
            job("f-b-1", "f", "u"),
            job("g-a-1", "g", "v"),
        ]
        .map(Arc::new);
        let mut succeeded = pod(
            "f-a-1-x",
            ("job-name", "f-a-1"),
            "Succeeded",
            Some("{\"n\":1}"),
        );
        succeeded
            .metadata
            .labels
            .get_or_insert_default()
            .insert(labels::FLOW.to_owned(), "f".to_owned());
        let others = pod(
            "g-a-1-x",
            ("job-name", "g-a-1"),
            "Succeeded",
            Some("not mine"),
        );
        let pods = [succeeded, others].map(Arc::new);
        let flows = [
            me.clone(),
            flow("older", "o", Some("k"), 1),
            flow("free", "x", None, 1),
        ]
        .map(Arc::new);
        let o = observed(&me, &jobs, &pods, &flows);
        let names: Vec<&str> = o
            .jobs
            .iter()
            .filter_map(|j| j.metadata.name.as_deref())
            .collect();
        assert_eq!(names, ["f-a-1", "f-b-1"]);
        assert_eq!(o.termination_messages.len(), 1);
        assert_eq!(o.termination_messages["f-a-1"], "{\"n\":1}");
        assert_eq!(o.peers.len(), 1);
        assert_eq!(o.peers[0].name, "older");
    }

    #[test]
    fn flow_jobs_need_the_label_and_the_owner_uid() {
        let f = flow("f", "u1", None, 0);
        assert!(is_flow_job(&f, &job("f-a-1", "f", "u1")));
        assert!(
            !is_flow_job(&f, &job("f-a-1", "f", "old-uid")),
            "a predecessor's Job"
        );
        assert!(
            !is_flow_job(&f, &job("g-a-1", "g", "u1")),
            "another flow's label"
        );
        let mut elsewhere = job("f-a-1", "f", "u1");
        elsewhere.metadata.namespace = Some("other".to_owned());
        assert!(!is_flow_job(&f, &elsewhere));
    }

    #[test]
    fn messages_of_succeeded_pods_by_job() {
        let jobs = [job("f-a-1", "f", "u"), job("f-b-1", "f", "u")];
        let job_refs: Vec<&Job> = jobs.iter().collect();
        let pods = [
            pod(
                "f-a-1-zzz",
                ("batch.kubernetes.io/job-name", "f-a-1"),
                "Succeeded",
                Some("{\"x\":2}"),
            ),
            pod(
                "f-a-1-aaa",
                ("batch.kubernetes.io/job-name", "f-a-1"),
                "Succeeded",
                Some("{\"x\":1}"),
            ),
            pod(
                "f-b-1-aaa",
                ("job-name", "f-b-1"),
                "Succeeded",
                Some("legacy label"),
            ),
            pod(
                "f-c-1-aaa",
                ("job-name", "f-c-1"),
                "Succeeded",
                Some("not this flow's"),
            ),
            pod(
                "f-b-1-bbb",
                ("job-name", "f-b-1"),
                "Failed",
                Some("failed pods do not count"),
            ),
            pod("f-b-1-ccc", ("job-name", "f-b-1"), "Succeeded", Some("")),
            {
                // A predecessor's pod: a Job of the same name, but another UID.
                let mut old = pod(
                    "f-a-1-000",
                    ("batch.kubernetes.io/job-name", "f-a-1"),
                    "Succeeded",
                    Some("the predecessor's"),
                );
                old.metadata.owner_references.as_mut().unwrap()[0].uid = "old-uid".to_owned();
                old
            },
        ];
        let m = termination_messages(&job_refs, &pods);
        assert_eq!(m.len(), 2);
        assert_eq!(m["f-a-1"], "{\"x\":1}", "the pod whose name sorts first");
        assert_eq!(m["f-b-1"], "legacy label");
    }
}
