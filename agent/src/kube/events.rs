//! Events on flows, one `events.k8s.io/v1` Event per planned event (which the planner keeps to
//! what people act on, see [`PlannedEvent`]); `apply` sends them from a background task.
//!
//! The planner emits an event only when something happens (a step starts, fails, is retried),
//! so each is created as it is. kube-runtime's `Recorder` would fold events that share reason,
//! action and object into one series keeping only the first note, and a retried step's second
//! attempt would vanish from `kubectl describe`.

use jiff::Timestamp;
use jobflow::api::JobFlow;
use jobflow::planner::PlannedEvent;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

/// The most bytes of an Event note the API server accepts.
pub const MAX_NOTE: usize = 1024;

/// Who reports the Events.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
}

impl EventPublisher {
    /// A publisher reporting as `controller` (e.g. `jobflow-agent`) from `instance` (this replica).
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.to_owned(),
        }
    }

    /// Creates a Warning (or Normal) Event about the object `regarding`, in `namespace` (for a
    /// cluster-scoped object, `default`).
    pub async fn publish_about(
        &self,
        regarding: ObjectReference,
        namespace: &str,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!(
                    "{}-",
                    regarding.name.as_deref().unwrap_or("object")
                )),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(truncate(note, MAX_NOTE).to_owned()),
            action: Some(action.to_owned()),
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            event_time: Some(MicroTime(Timestamp::now())),
            ..Event::default()
        };
        Api::<Event>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &event)
            .await
            .map(drop)
    }

    /// The Event for `planned` on `flow`, stamped now.
    pub fn event(&self, flow: &JobFlow, planned: &PlannedEvent) -> Event {
        event_for(
            flow,
            planned,
            &self.controller,
            &self.instance,
            Timestamp::now(),
        )
    }

    /// Creates `event` (made by [`Self::event`]) in its namespace.
    pub async fn create(&self, event: &Event) -> Result<(), kube::Error> {
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        Api::<Event>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), event)
            .await
            .map(drop)
    }
}

/// The Event for `planned` on `flow`, reported by `controller`/`instance` at `now`.
pub fn event_for(
    flow: &JobFlow,
    planned: &PlannedEvent,
    controller: &str,
    instance: &str,
    now: Timestamp,
) -> Event {
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", flow.name_any())),
            namespace: flow.namespace(),
            ..ObjectMeta::default()
        },
        type_: Some(if planned.warning { "Warning" } else { "Normal" }.to_owned()),
        reason: Some(planned.reason.to_owned()),
        note: Some(truncate(&planned.message, MAX_NOTE).to_owned()),
        action: Some(
            planned
                .step
                .as_ref()
                .map_or_else(|| "Reconcile".to_owned(), |step| format!("Step {step}")),
        ),
        regarding: Some(flow.object_ref(&())),
        reporting_controller: Some(controller.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        event_time: Some(MicroTime(now)),
        ..Event::default()
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let cut = (0..=max)
        .rev()
        .find(|index| text.is_char_boundary(*index))
        .unwrap_or(0);
    &text[..cut]
}

#[cfg(test)]
mod tests {
    use jobflow::api::{JobFlow, JobFlowSpec};

    use super::*;

    #[test]
    fn step_events_name_the_step_and_keep_their_note() {
        let mut flow = JobFlow::new("etl", JobFlowSpec::default());
        flow.metadata.namespace = Some("data".into());
        let planned = PlannedEvent {
            warning: true,
            reason: "StepFailed",
            step: Some("load".into()),
            message: "é".repeat(800),
        };
        let event = event_for(
            &flow,
            &planned,
            "jobflow-agent",
            "pod-1",
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.action.as_deref(), Some("Step load"));
        assert_eq!(event.metadata.generate_name.as_deref(), Some("etl-"));
        assert_eq!(event.regarding.unwrap().name.as_deref(), Some("etl"));
        assert!(event.note.unwrap().len() <= MAX_NOTE);
    }
}
