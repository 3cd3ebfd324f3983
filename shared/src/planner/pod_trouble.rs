//! Why a pod cannot start or keep running, read from its status in words a user acts on.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// Waiting reasons of a container whose image cannot be pulled.
const IMAGE_REASONS: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// Waiting reasons of a container the kubelet cannot create or start (a missing Secret or
/// ConfigMap, a bad command).
const START_REASONS: [&str; 3] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];
/// The waiting reason of a container restarted again and again.
const CRASH_LOOP: &str = "CrashLoopBackOff";

/// Why a pod is stuck.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodTrouble {
    /// What is stuck, e.g. `pod etl-a-1-x7k2p cannot be scheduled`: the same while the cause
    /// stays, however Kubernetes' own words, back-offs and restart counts change.
    pub headline: String,
    /// The headline with Kubernetes' reason and words, e.g. `image "busybox:nope" cannot be
    /// pulled (ErrImagePull): ...`.
    pub message: String,
}

impl PodTrouble {
    /// `headline`, then Kubernetes' reason in parentheses and its words after a colon.
    fn new(headline: String, cause: Option<&str>, detail: Option<&str>) -> Self {
        let mut message = headline.clone();
        if let Some(cause) = cause {
            message = format!("{message} ({cause})");
        }
        if let Some(detail) = detail.map(str::trim).filter(|detail| !detail.is_empty()) {
            message.push_str(": ");
            message.push_str(detail);
        }
        Self { headline, message }
    }

    /// Whether `message` (a step's status message) already tells of this trouble's cause.
    pub fn is_told_by(&self, message: &str) -> bool {
        message
            .strip_prefix(self.headline.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', ' ']))
    }
}

/// Why `pod` is stuck, if it is: the scheduler cannot place it, an image cannot be pulled, a
/// container cannot be created (e.g. a missing Secret or ConfigMap) or keeps crashing. A pod
/// that finished, or is merely starting, is not stuck.
pub fn pod_trouble(pod: &Pod) -> Option<PodTrouble> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let unschedulable = status.conditions.iter().flatten().find(|condition| {
        condition.type_ == "PodScheduled"
            && condition.status == "False"
            && condition.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(condition) = unschedulable {
        return Some(PodTrouble::new(
            format!("pod {name} cannot be scheduled"),
            None,
            condition.message.as_deref(),
        ));
    }
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(container_trouble)
}

/// Why one container is stuck, from its waiting state.
fn container_trouble(container: &ContainerStatus) -> Option<PodTrouble> {
    let waiting = container.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    let name = &container.name;
    let headline = if IMAGE_REASONS.contains(&reason) {
        let image = &container.image;
        format!("image \"{image}\" of container {name} cannot be pulled")
    } else if START_REASONS.contains(&reason) {
        format!("container {name} cannot start")
    } else if reason == CRASH_LOOP {
        format!("container {name} keeps crashing")
    } else {
        return None;
    };
    let cause = if reason == CRASH_LOOP {
        let restarts = container.restart_count;
        let plural = if restarts == 1 { "" } else { "s" };
        format!("{reason}, {restarts} restart{plural}")
    } else {
        reason.to_owned()
    };
    Some(PodTrouble::new(
        headline,
        Some(&cause),
        waiting.message.as_deref(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateWaiting, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(phase: &str, status: PodStatus) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("etl-load-1-x7k2p".into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..status
            }),
        }
    }

    fn waiting(reason: &str, message: Option<&str>, restarts: i32) -> ContainerStatus {
        ContainerStatus {
            name: "main".into(),
            image: "busybox:nope".into(),
            restart_count: restarts,
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: message.map(Into::into),
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn with_containers(phase: &str, containers: Vec<ContainerStatus>) -> Pod {
        pod(
            phase,
            PodStatus {
                container_statuses: Some(containers),
                ..PodStatus::default()
            },
        )
    }

    fn message(pod: &Pod) -> String {
        pod_trouble(pod).unwrap().message
    }

    #[test]
    fn an_unschedulable_pod_says_what_the_scheduler_said() {
        let stuck = pod(
            "Pending",
            PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "False".into(),
                    reason: Some("Unschedulable".into()),
                    message: Some(
                        "0/3 nodes are available: persistentvolumeclaim \"backup-pvc\" not found."
                            .into(),
                    ),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            },
        );
        assert_eq!(
            message(&stuck),
            "pod etl-load-1-x7k2p cannot be scheduled: 0/3 nodes are available: \
             persistentvolumeclaim \"backup-pvc\" not found."
        );
    }

    #[test]
    fn an_image_that_cannot_be_pulled_is_named() {
        let pull = with_containers(
            "Pending",
            vec![waiting("ErrImagePull", Some("rpc error: not found"), 0)],
        );
        assert_eq!(
            message(&pull),
            "image \"busybox:nope\" of container main cannot be pulled (ErrImagePull): rpc error: not found"
        );
        let back_off = with_containers(
            "Pending",
            vec![waiting(
                "ImagePullBackOff",
                Some("Back-off pulling image \"busybox:nope\""),
                0,
            )],
        );
        let (first, then) = (pod_trouble(&pull).unwrap(), pod_trouble(&back_off).unwrap());
        assert_eq!(
            first.headline, then.headline,
            "the same cause in other words"
        );
        assert!(then.is_told_by(&first.message));
    }

    #[test]
    fn a_missing_secret_or_config_map_is_named() {
        let config = with_containers(
            "Pending",
            vec![waiting(
                "CreateContainerConfigError",
                Some("secret \"db\" not found"),
                0,
            )],
        );
        assert_eq!(
            message(&config),
            "container main cannot start (CreateContainerConfigError): secret \"db\" not found"
        );
    }

    #[test]
    fn a_crash_loop_counts_its_restarts() {
        let crashing = with_containers(
            "Running",
            vec![waiting(
                "CrashLoopBackOff",
                Some("back-off 2m40s restarting failed container=main"),
                5,
            )],
        );
        assert_eq!(
            message(&crashing),
            "container main keeps crashing (CrashLoopBackOff, 5 restarts): back-off 2m40s \
             restarting failed container=main"
        );
        let once = with_containers("Running", vec![waiting("CrashLoopBackOff", None, 1)]);
        assert_eq!(
            message(&once),
            "container main keeps crashing (CrashLoopBackOff, 1 restart)"
        );
        assert!(pod_trouble(&once).unwrap().is_told_by(&message(&crashing)));
    }

    #[test]
    fn init_containers_count_too() {
        let stuck = pod(
            "Pending",
            PodStatus {
                init_container_statuses: Some(vec![ContainerStatus {
                    name: "init".into(),
                    ..waiting("ImagePullBackOff", None, 0)
                }]),
                container_statuses: Some(vec![waiting("PodInitializing", None, 0)]),
                ..PodStatus::default()
            },
        );
        assert_eq!(
            message(&stuck),
            "image \"busybox:nope\" of container init cannot be pulled (ImagePullBackOff)"
        );
    }

    #[test]
    fn starting_running_and_finished_pods_are_not_stuck() {
        let creating = with_containers("Pending", vec![waiting("ContainerCreating", None, 0)]);
        assert_eq!(pod_trouble(&creating), None);
        let running = with_containers(
            "Running",
            vec![ContainerStatus {
                name: "main".into(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }],
        );
        assert_eq!(pod_trouble(&running), None);
        let failed = with_containers("Failed", vec![waiting("CrashLoopBackOff", None, 3)]);
        assert_eq!(pod_trouble(&failed), None);
        assert_eq!(pod_trouble(&Pod::default()), None);
    }

    #[test]
    fn a_headline_is_told_only_by_its_own_message() {
        let trouble = PodTrouble::new("container main cannot start".into(), None, Some("x"));
        assert!(trouble.is_told_by("container main cannot start (CreateContainerError): y"));
        assert!(!trouble.is_told_by("container main-2 cannot start: x"));
        assert!(!trouble.is_told_by("Job etl-a-1 failed"));
    }
}
