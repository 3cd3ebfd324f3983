//! How kwok "runs" a pod, set through annotations read by `tests/cluster/kwok-stages.yaml`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// How long the pod runs before it ends, as a Go duration (`"1500ms"`, `"5s"`); default 1s.
pub const ANNOTATION_DURATION: &str = "zen-flow.test/duration";
/// `"true"`: the pod ends Failed (whoever owns it) instead of Succeeded.
pub const ANNOTATION_FAIL: &str = "zen-flow.test/fail";
/// With [`ANNOTATION_FAIL`]: every container's exit code (an integer); default 1.
pub const ANNOTATION_EXIT_CODE: &str = "zen-flow.test/exit-code";
/// With [`ANNOTATION_FAIL`]: every container's termination message; default empty.
pub const ANNOTATION_MESSAGE: &str = "zen-flow.test/message";
/// Without [`ANNOTATION_FAIL`]: every container's termination message on success (a step's
/// output parameters, a JSON object); default empty.
pub const ANNOTATION_OUTPUT: &str = "zen-flow.test/output";

/// What a fake pod does once Running: succeed (the default) or fail, after a while.
///
/// Only pods owned by a Job finish by succeeding; a failing pod fails whoever owns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakePod {
    duration: Option<Duration>,
    failure: Option<(i32, String)>,
    output: Option<String>,
}

impl FakePod {
    /// Exits 0 after the default 1 s.
    pub fn succeed() -> Self {
        Self::default()
    }

    /// Exits 0 after half a second: a step that should just get out of the way.
    pub fn quick() -> Self {
        Self::succeed().running_for(Duration::from_millis(500))
    }

    /// Exits with `exit_code` and termination message `message` (every container).
    pub fn fail(exit_code: i32, message: impl Into<String>) -> Self {
        Self {
            failure: Some((exit_code, message.into())),
            ..Self::default()
        }
    }

    /// Runs for `duration` (millisecond precision) before it ends.
    #[must_use]
    pub fn running_for(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// On success, every container's termination message is `output` (as JSON).
    #[must_use]
    pub fn with_output(mut self, output: &serde_json::Value) -> Self {
        self.output = Some(output.to_string());
        self
    }

    /// The pod annotations that make kwok act this out.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        if let Some(duration) = self.duration {
            annotations.insert(
                ANNOTATION_DURATION.to_owned(),
                format!("{}ms", duration.as_millis()),
            );
        }
        if let Some((exit_code, message)) = &self.failure {
            annotations.insert(ANNOTATION_FAIL.to_owned(), "true".to_owned());
            annotations.insert(ANNOTATION_EXIT_CODE.to_owned(), exit_code.to_string());
            annotations.insert(ANNOTATION_MESSAGE.to_owned(), message.clone());
        }
        if let Some(output) = &self.output {
            annotations.insert(ANNOTATION_OUTPUT.to_owned(), output.clone());
        }
        annotations
    }
}

/// A Job named `name` with one pod (container `main`, an image never pulled), restart policy
/// Never and backoffLimit 0, whose pod behaves as `pod` says. Tests adjust the rest.
pub fn fake_job(name: &str, pod: &FakePod) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    annotations: Some(pod.annotations()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    containers: vec![Container {
                        name: "main".to_owned(),
                        image: Some("zen-flow.test/fake:latest".to_owned()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The Job's condition of type `type_` if its status is True (e.g. `Complete`, `Failed`).
pub fn job_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|condition| condition.type_ == type_ && condition.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_say_what_was_asked() {
        assert!(FakePod::succeed().annotations().is_empty());
        let failing = FakePod::fail(3, "boom").running_for(Duration::from_millis(1500));
        let annotations = failing.annotations();
        assert_eq!(annotations[ANNOTATION_FAIL], "true");
        assert_eq!(annotations[ANNOTATION_EXIT_CODE], "3");
        assert_eq!(annotations[ANNOTATION_MESSAGE], "boom");
        assert_eq!(annotations[ANNOTATION_DURATION], "1500ms");
        let output = FakePod::succeed().with_output(&serde_json::json!({"a": "1"}));
        assert_eq!(output.annotations()[ANNOTATION_OUTPUT], r#"{"a":"1"}"#);
        assert!(!output.annotations().contains_key(ANNOTATION_FAIL));
    }
}
