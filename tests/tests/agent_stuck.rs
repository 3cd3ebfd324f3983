//! A step whose pod cannot start says why (issue 7 rule 14): the real kube-scheduler leaves a pod
//! whose `nodeSelector` no node matches Unschedulable; the step's message and one Warning Event
//! say so within seconds, the step keeps waiting, and once a node matches the message clears.
//! Against the local control plane with the real `jobflow-agent` binary.

use std::time::Duration;

use jobflow::api::{FlowPhase, JobFlow, StepPhase, reasons};
use jobflow_tests::FakePod;
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, create_flow, events_for, step_status, wait_for_flow, wait_for_phase,
};
use k8s_openapi::api::core::v1::{Event, Node};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};

/// How soon a stuck step must say why: "within seconds".
const TELLS_WITHIN: Duration = Duration::from_secs(10);
/// How long any one flow may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The `StepStuck` Warning Events of flow `flow`.
async fn stuck_events(events: &Api<Event>, flow: &str) -> anyhow::Result<Vec<Event>> {
    Ok(events_for(events, flow)
        .await?
        .into_iter()
        .filter(|event| {
            event.reason.as_deref() == Some(reasons::STEP_STUCK)
                && event.type_.as_deref() == Some("Warning")
        })
        .collect())
}

/// Sets (or, with `None`, removes) label `key` on node `node`.
async fn label_node(
    nodes: &Api<Node>,
    node: &str,
    key: &str,
    value: Option<&str>,
) -> anyhow::Result<()> {
    let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_unschedulable_pod_is_told_once_and_the_message_clears_when_it_runs()
-> anyhow::Result<()> {
    run_with_agent("agent-stuck-unschedulable", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let events: Api<Event> = ns.api();
        let nodes: Api<Node> = Api::all(ns.client());
        // A label no node has, unique to this run: labelling a shared node with it later
        // changes nothing for any other test.
        let key = format!("stuck.zen-flow.test/{}", ns.name());
        let node = nodes
            .list(&ListParams::default().labels("type=kwok"))
            .await?
            .items
            .into_iter()
            .find_map(|node| node.metadata.name)
            .ok_or_else(|| anyhow::anyhow!("no kwok node to schedule on"))?;
        let selector = [(key.clone(), "yes".to_owned())].into();
        let flow = FlowBuilder::new("backup")
            .step(
                StepBuilder::new(
                    "copy",
                    &FakePod::succeed().running_for(Duration::from_secs(8)),
                )
                .pod_spec(|pod| pod.node_selector = Some(selector)),
            )
            .build();
        create_flow(&flows, &flow).await?;

        let outcome = async {
            // The scheduler's words reach the step, and the step keeps running.
            let stuck = wait_for_flow(
                &flows,
                "backup",
                "step copy to say why it is stuck",
                TELLS_WITHIN,
                |f| {
                    Ok(step_status(f, "copy")
                        .is_ok_and(|s| s.reason.as_deref() == Some(reasons::POD_STUCK)))
                },
            )
            .await?;
            let copy = step_status(&stuck, "copy")?;
            anyhow::ensure!(copy.phase == StepPhase::Running, "{copy:?}");
            let message = copy.message.as_deref().unwrap_or_default();
            anyhow::ensure!(
                message.starts_with("pod backup-copy-1-")
                    && message.contains("cannot be scheduled: ")
                    && message.contains("node affinity/selector"),
                "{message}"
            );

            // Some seconds and reconciles later: still one Event, still waiting.
            tokio::time::sleep(Duration::from_secs(4)).await;
            let told = stuck_events(&events, "backup").await?;
            anyhow::ensure!(told.len() == 1, "one StepStuck Event, got {told:?}");
            let said = told[0].message.as_deref().unwrap_or_default();
            anyhow::ensure!(
                said.starts_with("Step copy is stuck: pod backup-copy-1-")
                    && said.contains("node affinity/selector"),
                "{said}"
            );
            let still = flows.get("backup").await?;
            let copy = step_status(&still, "copy")?;
            anyhow::ensure!(
                copy.phase == StepPhase::Running
                    && copy.reason.as_deref() == Some(reasons::POD_STUCK),
                "{copy:?}"
            );

            // A node now matches: the pod runs and the message clears while the step runs.
            label_node(&nodes, &node, &key, Some("yes")).await?;
            wait_for_flow(
                &flows,
                "backup",
                "step copy to run with no stuck message",
                TELLS_WITHIN,
                |f| {
                    Ok(step_status(f, "copy").is_ok_and(|s| {
                        s.phase == StepPhase::Running && s.reason.is_none() && s.message.is_none()
                    }))
                },
            )
            .await?;
            let done = wait_for_phase(&flows, "backup", FlowPhase::Succeeded, TIMEOUT).await?;
            let copy = step_status(&done, "copy")?;
            anyhow::ensure!(
                copy.reason.as_deref() == Some(reasons::JOB_SUCCEEDED),
                "{copy:?}"
            );
            let told = stuck_events(&events, "backup").await?;
            anyhow::ensure!(told.len() == 1, "still one StepStuck Event, got {told:?}");
            Ok(())
        }
        .await;
        // The node is shared: take the label off whatever happened.
        let unlabelled = label_node(&nodes, &node, &key, None).await;
        outcome.and(unlabelled)
    })
    .await
}
