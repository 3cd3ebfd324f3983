//! The Argo Workflows side of the benchmark: each load flow as the equivalent `dag` Workflow
//! (same tasks, same dependencies, same kwok pod duration annotation), and the watches that
//! record Argo's pods and Workflows into the same [`Seen`] the zen-flow watches fill, so every
//! figure is computed the same way for both engines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobflow::api::FlowPhase;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt as _};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::observe::{FlowSeen, JobSeen, Seen, follow};
use crate::shape::{dependencies, step_name};
use jobflow_tests::ANNOTATION_DURATION;

/// The label Argo puts on a Workflow's pods: the Workflow's name.
pub const WORKFLOW_LABEL: &str = "workflows.argoproj.io/workflow";
/// The annotation Argo puts on a pod: its node's name, `<workflow>.<task>` in a `dag`.
pub const NODE_NAME_ANNOTATION: &str = "workflows.argoproj.io/node-name";

/// `argoproj.io/v1alpha1` `Workflow`.
pub fn workflow_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    )
}

/// The Workflow `name` with `steps` tasks shaped like [`crate::shape::flow`]: one container
/// template `step` whose pod carries the kwok duration annotation, and a `dag` template whose
/// tasks have the same dependencies as the JobFlow's steps.
pub fn workflow(name: &str, steps: usize, pod_duration: Duration) -> DynamicObject {
    let tasks: Vec<Value> = dependencies(steps)
        .iter()
        .enumerate()
        .map(|(index, deps)| {
            let after: Vec<String> = deps.iter().map(|&d| step_name(d, steps)).collect();
            let mut task = json!({"name": step_name(index, steps), "template": "step"});
            if !after.is_empty() {
                task["dependencies"] = json!(after);
            }
            task
        })
        .collect();
    let duration = format!("{}ms", pod_duration.as_millis());
    let mut object = DynamicObject::new(name, &workflow_resource());
    object.data = json!({
        "spec": {
            "entrypoint": "flow",
            "serviceAccountName": "default",
            "templates": [
                {"name": "flow", "dag": {"tasks": tasks}},
                {
                    "name": "step",
                    "metadata": {"annotations": {ANNOTATION_DURATION: duration}},
                    "container": {"image": "busybox:1.36", "command": ["true"]},
                },
            ],
        },
    });
    object
}

/// The watches on the Argo pods and the Workflows of `namespace`, feeding `seen`.
pub fn watches(client: &Client, namespace: &str, seen: &Arc<Mutex<Seen>>) -> [JoinHandle<()>; 2] {
    let pods = watcher::watcher(
        Api::<Pod>::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(WORKFLOW_LABEL),
    );
    let resource = workflow_resource();
    let flows = watcher::watcher(
        Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource),
        watcher::Config::default(),
    );
    [
        tokio::spawn(follow(pods, Arc::clone(seen), record_pod, |seen| {
            seen.jobs_synced = true;
        })),
        tokio::spawn(follow(flows, Arc::clone(seen), record_workflow, |seen| {
            seen.flows_synced = true;
        })),
    ]
}

/// A pod as a step: its workflow and task, first seen, and first seen `Succeeded` (Argo acts
/// on the pod's phase, as zen-flow acts on the Job's `SuccessCriteriaMet`).
fn record_pod(seen: &mut Seen, pod: &Pod, now: Instant) {
    let flow = pod
        .labels()
        .get(WORKFLOW_LABEL)
        .cloned()
        .unwrap_or_default();
    let step = pod
        .annotations()
        .get(NODE_NAME_ANNOTATION)
        .map(|node| {
            node.strip_prefix(&format!("{flow}."))
                .unwrap_or(node)
                .to_owned()
        })
        .unwrap_or_default();
    let entry = seen.jobs.entry(pod.name_any()).or_insert_with(|| JobSeen {
        flow,
        step,
        added: now,
        succeeded: None,
        complete: None,
    });
    let succeeded = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref())
        == Some("Succeeded");
    if succeeded && entry.succeeded.is_none() {
        entry.succeeded = Some(now);
        entry.complete = Some(now);
    }
}

/// A Workflow as a flow: its phase, first terminal phase, status size and status changes.
fn record_workflow(seen: &mut Seen, workflow: &DynamicObject, now: Instant) {
    let entry = seen
        .flows
        .entry(workflow.name_any())
        .or_insert_with(|| FlowSeen::new(now));
    let status = workflow.data.get("status");
    let bytes = status
        .and_then(|status| serde_json::to_vec(status).ok())
        .map_or(0, |json| json.len());
    if bytes != entry.status_bytes {
        entry.status_changes += 1;
        entry.status_bytes = bytes;
    }
    let phase = status
        .and_then(|status| status.get("phase"))
        .and_then(Value::as_str);
    entry.phase = match phase {
        Some("Succeeded") => Some(FlowPhase::Succeeded),
        Some("Failed" | "Error") => Some(FlowPhase::Failed),
        Some("Running") => Some(FlowPhase::Running),
        Some("Pending") => Some(FlowPhase::Pending),
        _ => None,
    };
    status
        .and_then(|status| status.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .clone_into(&mut entry.reason);
    if entry.finished.is_none() && entry.phase.is_some_and(FlowPhase::is_terminal) {
        entry.finished = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflows_have_the_load_flows_dag() {
        let wf = workflow("load-0001", 10, Duration::from_secs(1));
        let tasks = &wf.data["spec"]["templates"][0]["dag"]["tasks"];
        assert_eq!(tasks.as_array().unwrap().len(), 10);
        assert_eq!(tasks[0]["name"], "s00");
        assert!(tasks[0].get("dependencies").is_none());
        assert_eq!(tasks[9]["dependencies"], json!(["s07", "s08"]));
        assert_eq!(
            wf.data["spec"]["templates"][1]["metadata"]["annotations"][ANNOTATION_DURATION],
            "1000ms"
        );
    }
}
