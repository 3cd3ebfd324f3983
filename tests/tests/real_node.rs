//! zen-flow as users run it: `deploy/install.yaml` applied server-side, the agent's two
//! replicas on the real node `zen-flow-real` from the image `deploy/images/build.sh` builds,
//! under restricted pod security and the real authorizer, with steps that are real busybox
//! containers.
//!
//! Needs the real node (`tests/cluster/up.sh` starts it unless `ZEN_FLOW_REAL_NODE=0`) and the
//! images imported there (`bash tests/cluster/import-images.sh`). Not part of `cargo test
//! --workspace`: the installed agent watches every namespace, so it would run the other tests'
//! flows beside their own agents. `tests/cluster/test.sh` runs it after them, one test at a
//! time (the failover test deletes the leader):
//! `cargo test -p jobflow-tests --test real_node -- --test-threads=1`.

use std::time::Duration;

use anyhow::Context as _;
use jobflow::api::{FlowPhase, JobFlow, StepPhase};
use jobflow_tests::admission_load::{Load, expected_denial, refused_flow};
use jobflow_tests::flows::{FlowBuilder, StepBuilder, create_flow, step_status, wait_for_phase};
use jobflow_tests::install::{
    AGENT_NAMESPACE, AGENT_SELECTOR, REAL_NODE, agent_pods, install, kubectl, leader,
    wait_for_leader,
};
use jobflow_tests::plugin::kubectl_jobflow;
use jobflow_tests::{POLL, TestNamespace, client, run_in_namespace, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};

/// How long a flow of a few real containers may take (each pod starts in about a second).
const FLOW_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn the_install_runs_on_the_real_node_under_restricted_pod_security() -> anyhow::Result<()> {
    let client = client().await?;
    install(&client).await?;
    let namespace = Api::<Namespace>::all(client.clone())
        .get(AGENT_NAMESPACE)
        .await?;
    assert_eq!(
        namespace
            .labels()
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted"),
        "the agent's namespace enforces the restricted pod security standard"
    );
    let pods = agent_pods(&client).await?;
    assert_eq!(pods.len(), 2, "two replicas");
    for pod in &pods {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        assert_eq!(
            node,
            Some(REAL_NODE),
            "{} runs on the real node",
            pod.name_any()
        );
        let ready = pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready, "{} is Ready", pod.name_any());
    }
    // The namespace really enforces it: a pod the restricted standard forbids is refused.
    let refused = kubectl(&[
        "-n",
        AGENT_NAMESPACE,
        "run",
        "privileged-probe",
        "--image=busybox:1.35.0",
        "--dry-run=server",
        "--overrides={\"spec\":{\"hostNetwork\":true}}",
    ])
    .await?;
    assert_ne!(
        refused.code, 0,
        "a hostNetwork pod was admitted: {refused:?}"
    );
    assert!(
        refused.stderr.contains("violates PodSecurity \"restricted"),
        "{}",
        refused.stderr
    );
    // Exactly one leader, and it is one of the two pods.
    let holder = wait_for_leader(&client).await?;
    assert!(pods.iter().any(|pod| pod.name_any() == holder));
    report_memory().await;
    Ok(())
}

/// Prints each agent pod's working set as the kubelet measures it (the note's figure).
async fn report_memory() {
    let path = format!("/api/v1/nodes/{REAL_NODE}/proxy/stats/summary");
    let Ok(run) = kubectl(&["get", "--raw", &path]).await else {
        return;
    };
    let Ok(summary) = serde_json::from_str::<serde_json::Value>(&run.stdout) else {
        eprintln!("no stats summary: {}", run.stderr);
        return;
    };
    for pod in summary["pods"].as_array().into_iter().flatten() {
        if pod["podRef"]["namespace"] == AGENT_NAMESPACE {
            let bytes = pod["memory"]["workingSetBytes"]
                .as_f64()
                .unwrap_or_default();
            eprintln!(
                "agent pod {}: working set {:.1} MiB",
                pod["podRef"]["name"],
                bytes / 1024.0 / 1024.0
            );
        }
    }
}

#[tokio::test]
async fn real_containers_pass_outputs_and_a_failure_tells_its_exit_code() -> anyhow::Result<()> {
    let client = client().await?;
    install(&client).await?;
    run_in_namespace("real-steps", |ns: TestNamespace| async move {
        let flow = FlowBuilder::new("real")
            .step(
                StepBuilder::real(
                    "produce",
                    r#"echo producing; printf '{"greeting":"hello"}' > /dev/termination-log"#,
                )
                .output("greeting", ".greeting"),
            )
            .step(
                StepBuilder::real("consume", "echo got {{steps.produce.outputs.greeting}}")
                    .after(&["produce"]),
            )
            .step(StepBuilder::real(
                "break",
                "echo breaking; printf 'disk full' > /dev/termination-log; exit 3",
            ))
            .fail_fast(false)
            .build();
        let flows: Api<JobFlow> = ns.api();
        create_flow(&flows, &flow).await?;
        let done = wait_for_phase(&flows, "real", FlowPhase::Failed, FLOW_TIMEOUT).await?;
        let produce = step_status(&done, "produce")?;
        assert_eq!(produce.phase, StepPhase::Succeeded);
        assert_eq!(
            produce.outputs.get("greeting").map(String::as_str),
            Some("hello")
        );
        assert_eq!(step_status(&done, "consume")?.phase, StepPhase::Succeeded);
        let broken = step_status(&done, "break")?;
        assert_eq!(broken.phase, StepPhase::Failed);
        let message = broken.message.as_deref().unwrap_or_default();
        assert!(
            message.contains("container main exited with code 3 (Error): disk full"),
            "the step's message tells the container's exit code and message: {message}"
        );
        // The real output, through the plugin.
        let logs = kubectl_jobflow(ns.name(), &["logs", "real"])
            .await?
            .expect_code(0)?;
        for line in ["producing", "got hello", "breaking"] {
            assert!(logs.stdout.contains(line), "{line:?} in:\n{}", logs.stdout);
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn deleting_the_leader_pod_hands_over_and_the_flow_finishes_once() -> anyhow::Result<()> {
    let client = client().await?;
    install(&client).await?;
    let old = wait_for_leader(&client).await?;
    run_in_namespace("real-failover", |ns: TestNamespace| async move {
        let flow = FlowBuilder::new("handover")
            .step(StepBuilder::real("one", "sleep 4"))
            .step(StepBuilder::real("two", "sleep 4").after(&["one"]))
            .step(StepBuilder::real("three", "echo done").after(&["two"]))
            .build();
        let flows: Api<JobFlow> = ns.api();
        create_flow(&flows, &flow).await?;
        let jobs: Api<Job> = ns.api();
        wait_for("the first step's Job", FLOW_TIMEOUT, POLL, || async {
            Ok((!jobs.list(&ListParams::default()).await?.items.is_empty()).then_some(()))
        })
        .await?;
        let pods: Api<Pod> = Api::namespaced(ns.client(), AGENT_NAMESPACE);
        pods.delete(&old, &DeleteParams::default().grace_period(0))
            .await
            .with_context(|| format!("deleting the leader pod {old}"))?;
        let new = wait_for(
            "another pod to lead",
            Duration::from_secs(60),
            POLL,
            || async { Ok(leader(&ns.client()).await?.filter(|pod| *pod != old)) },
        )
        .await?;
        eprintln!("leader {old} deleted, {new} leads");
        let done = wait_for_phase(&flows, "handover", FlowPhase::Succeeded, FLOW_TIMEOUT).await?;
        assert_eq!(
            jobflow_tests::flows::phase(&done),
            Some(FlowPhase::Succeeded)
        );
        let created: Vec<String> = jobs
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        assert_eq!(
            created.len(),
            3,
            "one Job per step, none twice: {created:?}"
        );
        Ok(())
    })
    .await?;
    // The Deployment puts a second replica back.
    install(&client).await
}

#[tokio::test]
async fn the_webhook_refuses_through_its_service_and_a_rotation_loses_no_admission()
-> anyhow::Result<()> {
    let client = client().await?;
    install(&client).await?;
    run_in_namespace("real-webhook", |ns: TestNamespace| async move {
        let flows: Api<JobFlow> = ns.api();
        let refused = refused_flow("refused");
        let denial = expected_denial(&refused)?;
        let file = std::env::temp_dir().join(format!("{}-refused.json", ns.name()));
        std::fs::write(&file, serde_json::to_vec(&refused)?)?;
        let path = file.to_string_lossy().into_owned();
        let applied = kubectl(&["-n", ns.name(), "apply", "-f", &path]).await?;
        let _ = std::fs::remove_file(&file);
        assert_ne!(applied.code, 0, "the invalid flow was admitted");
        assert!(applied.stderr.contains(&denial), "{}", applied.stderr);

        let load = Load::start(flows.clone())?;
        for args in [&["cert-rotate"][..], &["cert-rotate", "--ca"][..]] {
            let mut args = args.to_vec();
            args.extend([
                "--agent-namespace",
                AGENT_NAMESPACE,
                "--wait",
                "--timeout",
                "90s",
            ]);
            kubectl_jobflow(ns.name(), &args).await?.expect_code(0)?;
        }
        // Admissions keep flowing a little after the switch, on the new certificates.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let report = load.stop().await?;
        eprintln!("rotation under admissions: {}", report.summary());
        report.check(100)
    })
    .await
}

/// The agent's pods stay selectable by the label the install gives them.
#[test]
fn the_selector_matches_the_install() -> anyhow::Result<()> {
    let install =
        std::fs::read_to_string(jobflow_tests::workspace_root().join("deploy/install.yaml"))?;
    let (key, value) = AGENT_SELECTOR
        .split_once('=')
        .context("a key=value selector")?;
    assert!(install.contains(&format!("{key}: {value}")));
    Ok(())
}
