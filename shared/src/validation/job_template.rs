//! A Job step's template: a batch/v1 Job with at least one container, each named with an image,
//! a restart policy a Job allows, and labels and annotations Kubernetes accepts. Fields the
//! typed Job of Kubernetes 1.33 does not know are warned about (they are passed on as written).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::metadata::{check_annotations, check_labels};
use super::problems::Problems;

/// Checks `template` (found at `path`) is a batch/v1 Job that can run; the typed Job when it
/// reads as one.
pub(super) fn check_job_template(
    template: &Value,
    path: &str,
    problems: &mut Problems,
) -> Option<Job> {
    let Some(fields) = template.as_object() else {
        problems.invalid(
            path,
            "must be an object: a whole batch/v1 Job (apiVersion, kind, spec.template.spec.containers)",
        );
        return None;
    };
    // Fast path, taken by every valid template: read the Job straight from the borrowed value.
    // Only a template that fails is copied and read again to find the failing field's path.
    let fits =
        |field: &str, expected: &str| fields.get(field).is_none_or(|given| given == expected);
    // The fields the typed Job drops are noted while it is read, not found afterwards by
    // writing the Job back to JSON and comparing.
    let mut unmodeled = Vec::new();
    if fits("kind", "Job")
        && fits("apiVersion", "batch/v1")
        && let Ok(job) = serde_ignored::deserialize(template, |field| {
            unmodeled.push(segments(&field));
        })
    {
        check_job(&job, path, problems);
        warn_unmodeled(template, &unmodeled, path, problems);
        return Some(job);
    }
    let mut fields = fields.clone();
    // Checked here with clearer words than the Job's own deserializer has.
    check_type_field(fields.remove("kind"), "kind", "Job", path, problems);
    check_type_field(
        fields.remove("apiVersion"),
        "apiVersion",
        "batch/v1",
        path,
        problems,
    );
    match serde_path_to_error::deserialize::<_, Job>(Value::Object(fields)) {
        Err(error) => {
            let at = error.path().to_string();
            let at = if at == "." {
                String::new()
            } else {
                format!(".{at}")
            };
            problems.invalid(
                format!("{path}{at}"),
                format!(
                    "{}; fix it so the template is a valid batch/v1 Job",
                    error.inner()
                ),
            );
            None
        }
        Ok(job) => {
            check_job(&job, path, problems);
            Some(job)
        }
    }
}

/// Warns about each field of `template` that the typed Job read from it dropped, at the
/// `fields` found while reading it. Null values are left out: dropping them loses nothing.
fn warn_unmodeled(template: &Value, fields: &[Vec<Segment>], path: &str, problems: &mut Problems) {
    for field in fields {
        if value_at(template, field).is_none_or(Value::is_null) {
            continue;
        }
        problems.warn(
            format!("{path}{}", dotted(field)),
            "is not a field of a batch/v1 Job in Kubernetes 1.33, the oldest version zen-flow supports; \
             it is passed on as written: if it is a typo the API server refuses the Job, so fix the \
             spelling; if it is a newer field, run the flow only on clusters that know it",
        );
    }
}

/// One step from a template's root to a field the typed Job dropped.
enum Segment {
    Key(String),
    Index(usize),
}

/// The steps from the root to `field`, as JSON keys and array positions.
fn segments(field: &serde_ignored::Path<'_>) -> Vec<Segment> {
    let mut found = Vec::new();
    let mut at = field;
    loop {
        match at {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                found.push(Segment::Index(*index));
                at = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                found.push(Segment::Key(key.clone()));
                at = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => at = parent,
        }
    }
    found.reverse();
    found
}

fn value_at<'v>(template: &'v Value, field: &[Segment]) -> Option<&'v Value> {
    field
        .iter()
        .try_fold(template, |node, segment| match segment {
            Segment::Key(key) => node.get(key.as_str()),
            Segment::Index(index) => node.get(*index),
        })
}

/// The path as JSON names, e.g. `.spec.template.spec.containers[0].imagePullPolcy`.
fn dotted(field: &[Segment]) -> String {
    field
        .iter()
        .map(|segment| match segment {
            Segment::Key(key) => format!(".{key}"),
            Segment::Index(index) => format!("[{index}]"),
        })
        .collect()
}

fn check_type_field(
    value: Option<Value>,
    field: &str,
    expected: &str,
    path: &str,
    problems: &mut Problems,
) {
    match value {
        None => {}
        Some(Value::String(given)) if given == expected => {}
        Some(other) => problems.invalid(
            format!("{path}.{field}"),
            format!("must be {expected:?} (a step runs a batch/v1 Job), got {other}; set {field}: {expected} or leave it out"),
        ),
    }
}

fn check_job(job: &Job, path: &str, problems: &mut Problems) {
    check_meta(Some(&job.metadata), path, ".metadata", problems);
    if job
        .spec
        .as_ref()
        .is_some_and(|spec| spec.ttl_seconds_after_finished.is_some())
    {
        problems.warn(
            format!("{path}.spec.ttlSecondsAfterFinished"),
            "is ignored: the agent removes it so a finished Job is not deleted before the flow \
             has recorded its result; executionPolicy.ttlSecondsAfterFinished deletes the flow \
             and its Jobs",
        );
    }
    check_meta(
        job.spec
            .as_ref()
            .and_then(|spec| spec.template.metadata.as_ref()),
        path,
        ".spec.template.metadata",
        problems,
    );
    let pod = job
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref());
    let Some(pod) = pod else {
        problems.invalid(
            format!("{path}.spec.template.spec"),
            "is missing; a Job template needs spec.template.spec.containers with at least one container",
        );
        return;
    };
    let pod_path = || format!("{path}.spec.template.spec");
    match pod.restart_policy.as_deref() {
        Some("OnFailure" | "Never") => {}
        Some(policy) => problems.invalid(
            format!("{}.restartPolicy", pod_path()),
            format!("a Job's pods cannot use restartPolicy {policy:?}; use OnFailure or Never"),
        ),
        None => problems.invalid(
            format!("{}.restartPolicy", pod_path()),
            "is missing; Kubernetes refuses a Job whose pods do not set restartPolicy OnFailure or Never (a pod's default, Always, is not allowed); add restartPolicy: Never",
        ),
    }
    if pod.containers.is_empty() {
        problems.invalid(
            format!("{}.containers", pod_path()),
            "a Job needs at least one container; add one with a name and an image, e.g. {name: main, image: busybox:latest}",
        );
    }
    for (index, container) in pod.containers.iter().enumerate() {
        let container_path = || format!("{}.containers[{index}]", pod_path());
        if container.name.trim().is_empty() {
            problems.invalid(
                format!("{}.name", container_path()),
                "a container needs a name; add one, e.g. name: main",
            );
        }
        if container
            .image
            .as_deref()
            .is_none_or(|image| image.trim().is_empty())
        {
            problems.invalid(
                format!("{}.image", container_path()),
                "a container needs an image; add one, e.g. image: busybox:latest",
            );
        }
    }
}

/// Checks the labels and annotations of `meta` (found at `{path}{field}`).
fn check_meta(meta: Option<&ObjectMeta>, path: &str, field: &str, problems: &mut Problems) {
    let Some(meta) = meta else {
        return;
    };
    if let Some(labels) = &meta.labels {
        check_labels(labels, &format!("{path}{field}.labels"), problems);
    }
    if let Some(annotations) = &meta.annotations {
        check_annotations(annotations, &format!("{path}{field}.annotations"), problems);
    }
}
