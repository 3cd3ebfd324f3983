//! What a failed pod's containers said: the exit code, the kubelet's reason and the
//! termination message, so a failed step tells why in its own status.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// The longest termination message quoted in a step's status; longer ones are cut at a
/// character boundary and marked. The kubelet itself keeps at most 4096 bytes.
pub const MAX_FAILURE_MESSAGE: usize = 1024;

/// Why a failed pod's container failed, in words for a step's message, e.g.
/// `container main exited with code 3 (Error): disk full`. `None` unless the pod failed and
/// one of its containers terminated with a non-zero exit code; init containers come first,
/// as they run first.
pub fn pod_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Failed") {
        return None;
    }
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(container_failure)
}

/// How one container failed, from its terminated state.
fn container_failure(container: &ContainerStatus) -> Option<String> {
    let terminated = container.state.as_ref()?.terminated.as_ref()?;
    if terminated.exit_code == 0 {
        return None;
    }
    let mut words = format!(
        "container {} exited with code {}",
        container.name, terminated.exit_code
    );
    if let Some(reason) = terminated.reason.as_deref().filter(|r| !r.is_empty()) {
        words = format!("{words} ({reason})");
    }
    if let Some(message) = terminated.message.as_deref().map(str::trim)
        && !message.is_empty()
    {
        words.push_str(": ");
        words.push_str(cut(message, MAX_FAILURE_MESSAGE));
        if message.len() > MAX_FAILURE_MESSAGE {
            words.push_str(" [cut]");
        }
    }
    Some(words)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, PodStatus};

    fn terminated(
        name: &str,
        code: i32,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    reason: reason.map(Into::into),
                    message: message.map(Into::into),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn pod(phase: &str, init: Vec<ContainerStatus>, main: Vec<ContainerStatus>) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                init_container_statuses: Some(init),
                container_statuses: Some(main),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn a_failed_container_tells_its_code_reason_and_message() {
        let p = pod(
            "Failed",
            vec![],
            vec![terminated("main", 3, Some("Error"), Some("disk full\n"))],
        );
        assert_eq!(
            pod_failure(&p).as_deref(),
            Some("container main exited with code 3 (Error): disk full")
        );
    }

    #[test]
    fn an_oom_kill_without_a_message_tells_the_reason() {
        let p = pod(
            "Failed",
            vec![],
            vec![terminated("main", 137, Some("OOMKilled"), None)],
        );
        assert_eq!(
            pod_failure(&p).as_deref(),
            Some("container main exited with code 137 (OOMKilled)")
        );
    }

    #[test]
    fn the_failed_init_container_comes_first_and_clean_exits_are_skipped() {
        let p = pod(
            "Failed",
            vec![
                terminated("fetch", 0, Some("Completed"), None),
                terminated("check", 2, None, Some("no input")),
            ],
            vec![terminated("main", 1, None, None)],
        );
        assert_eq!(
            pod_failure(&p).as_deref(),
            Some("container check exited with code 2: no input")
        );
    }

    #[test]
    fn pods_that_did_not_fail_tell_nothing() {
        let running = pod("Running", vec![], vec![terminated("main", 1, None, None)]);
        let succeeded = pod(
            "Succeeded",
            vec![],
            vec![terminated("main", 0, None, Some("{}"))],
        );
        assert_eq!(pod_failure(&running), None);
        assert_eq!(pod_failure(&succeeded), None);
        assert_eq!(pod_failure(&pod("Failed", vec![], vec![])), None);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_FAILURE_MESSAGE);
        let p = pod(
            "Failed",
            vec![],
            vec![terminated("main", 1, None, Some(&long))],
        );
        let words = pod_failure(&p).unwrap_or_default();
        assert!(words.ends_with(" [cut]"), "{words}");
        assert!(words.len() < MAX_FAILURE_MESSAGE + 64, "{}", words.len());
    }
}
