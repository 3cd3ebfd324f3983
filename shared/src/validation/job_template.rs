//! A Job step's template: a batch/v1 Job with at least one container, each named with an image.

use k8s_openapi::api::batch::v1::Job;
use serde::Deserialize;
use serde_json::Value;

use super::problems::Problems;

/// Checks `template` (found at `path`) is a batch/v1 Job that can run.
pub(super) fn check_job_template(template: &Value, path: &str, problems: &mut Problems) {
    let Some(fields) = template.as_object() else {
        problems.invalid(
            path,
            "must be an object: a whole batch/v1 Job (apiVersion, kind, spec.template.spec.containers)",
        );
        return;
    };
    // Fast path, taken by every valid template: read the Job straight from the borrowed value.
    // Only a template that fails is copied and read again to find the failing field's path.
    let fits =
        |field: &str, expected: &str| fields.get(field).is_none_or(|given| given == expected);
    if fits("kind", "Job")
        && fits("apiVersion", "batch/v1")
        && let Ok(job) = Job::deserialize(template)
    {
        check_job(&job, path, problems);
        return;
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
        }
        Ok(job) => check_job(&job, path, problems),
    }
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
    if let Some(policy) = &pod.restart_policy
        && policy != "OnFailure"
        && policy != "Never"
    {
        problems.invalid(
            format!("{}.restartPolicy", pod_path()),
            format!("a Job's pods cannot use restartPolicy {policy:?}; use OnFailure or Never"),
        );
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
