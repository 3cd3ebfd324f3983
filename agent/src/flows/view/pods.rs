//! What a flow's pods tell its planner, by Job: the succeeded pods' termination messages, why
//! a pod is stuck, how a failed one failed. Pure functions over the cached Jobs and pods.

use std::collections::BTreeMap;

use jobflow::planner::{PodTrouble, pod_failure, pod_trouble, termination_message};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

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

/// How a failed pod of each of `jobs` failed, by Job name (see [`by_job`]).
pub fn pod_failures<'a>(
    jobs: &[&'a Job],
    pods: impl IntoIterator<Item = &'a Pod>,
) -> BTreeMap<String, String> {
    by_job(jobs, pods, pod_failure)
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

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::testing::{job, pod};

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
