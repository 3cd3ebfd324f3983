//! `kubectl jobflow get` (and `--watch`), `describe`, `graph` (both also `--watch`) and `logs` against the real API server and `jobflow-agent`: what
//! they print matches what the cluster holds.

use std::time::Duration;

use jobflow::api::{FlowPhase, JobFlow, reasons};
use jobflow_tests::FakePod;
use jobflow_tests::agent::run_with_agent;
use jobflow_tests::flows::{FlowBuilder, StepBuilder, phase, step_status, wait_for_phase};
use jobflow_tests::plugin::{kubectl_jobflow, spawn_kubectl_jobflow};
use kube::Api;
use kube::api::PostParams;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long a flow here may take; the slowest runs ~4 s of fake pods.
const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn get_and_describe_show_what_the_cluster_holds() -> anyhow::Result<()> {
    run_with_agent("plugin-get", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let flow = FlowBuilder::new("etl")
            .step(StepBuilder::new("extract", &FakePod::quick()))
            .step(StepBuilder::new("load", &FakePod::quick()).after(&["extract"]))
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        let done = wait_for_phase(&flows, "etl", FlowPhase::Succeeded, TIMEOUT).await?;

        let table = kubectl_jobflow(ns.name(), &["get"]).await?.expect_code(0)?;
        let row = table
            .stdout
            .lines()
            .find(|line| line.starts_with("etl "))
            .unwrap_or_default();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells.get(1..3),
            Some(&["Succeeded", "2/2"][..]),
            "{}",
            table.stdout
        );

        // -o json is the object as the API server has it.
        let json = kubectl_jobflow(ns.name(), &["get", "etl", "-o", "json"])
            .await?
            .expect_code(0)?;
        let shown: JobFlow = serde_json::from_str(&json.stdout)?;
        assert_eq!(shown.status, done.status);
        let names = kubectl_jobflow(ns.name(), &["list", "-o", "name"])
            .await?
            .expect_code(0)?;
        assert_eq!(names.stdout, "jobflow.workflow.kube-zen.io/etl\n");

        let described = kubectl_jobflow(ns.name(), &["describe", "etl"])
            .await?
            .expect_code(0)?;
        let text = &described.stdout;
        assert!(text.contains("Phase:       Succeeded"), "{text}");
        for step in ["extract", "load"] {
            let job = step_status(&done, step)?
                .job_ref
                .clone()
                .unwrap_or_default()
                .name;
            assert!(!job.is_empty());
            let line = text
                .lines()
                .find(|line| line.trim_start().starts_with(&format!("{step} ")))
                .unwrap_or_default();
            assert!(line.contains("Succeeded") && line.contains(&job), "{text}");
        }
        assert!(
            text.contains(reasons::FLOW_STARTED),
            "no Events shown:\n{text}"
        );

        let missing = kubectl_jobflow(ns.name(), &["describe", "nope"])
            .await?
            .expect_code(3)?;
        assert!(
            missing
                .stderr
                .contains(&format!("jobflow {}/nope not found", ns.name()))
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn describe_watch_redraws_until_the_flow_ends() -> anyhow::Result<()> {
    run_with_agent("plugin-watch", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let flow = FlowBuilder::new("slow")
            .step(StepBuilder::new(
                "wait",
                &FakePod::succeed().running_for(Duration::from_secs(3)),
            ))
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        let (watched, graphed) = tokio::time::timeout(TIMEOUT, async {
            tokio::join!(
                kubectl_jobflow(ns.name(), &["describe", "slow", "--watch"]),
                kubectl_jobflow(ns.name(), &["graph", "slow", "--watch"]),
            )
        })
        .await?;
        let (watched, graphed) = (watched?.expect_code(0)?, graphed?.expect_code(0)?);
        // graph --watch drew the step running, then succeeded, and stopped by itself.
        let drawings: Vec<&str> = graphed.stdout.split("\n\n").collect();
        assert!(drawings.len() >= 2, "{}", graphed.stdout);
        assert!(
            drawings.iter().any(|d| d.contains("Running")),
            "{}",
            graphed.stdout
        );
        assert!(
            drawings.last().is_some_and(|d| d.contains("Succeeded")),
            "{}",
            graphed.stdout
        );
        // It returned because the flow ended, and drew more than once on the way.
        let now = flows.get("slow").await?;
        assert_eq!(phase(&now), Some(FlowPhase::Succeeded));
        assert!(
            watched.stdout.matches("Name:").count() >= 2,
            "{}",
            watched.stdout
        );
        assert!(
            watched
                .stdout
                .trim_end()
                .lines()
                .any(|l| l.contains("Phase:       Succeeded"))
        );

        // A failed flow ends the watch with exit 1.
        let failing = FlowBuilder::new("broken")
            .step(StepBuilder::new("bad", &FakePod::fail(3, "boom")))
            .build();
        flows.create(&PostParams::default(), &failing).await?;
        let failed = tokio::time::timeout(
            TIMEOUT,
            kubectl_jobflow(ns.name(), &["describe", "broken", "-w"]),
        )
        .await??
        .expect_code(1)?;
        assert!(
            failed.stdout.contains("kubectl jobflow retry broken"),
            "{}",
            failed.stdout
        );
        assert_eq!(phase(&flows.get("broken").await?), Some(FlowPhase::Failed));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn logs_name_each_step_and_say_when_a_pod_has_none() -> anyhow::Result<()> {
    run_with_agent("plugin-logs", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let flow = FlowBuilder::new("etl")
            .step(StepBuilder::new("extract", &FakePod::quick()))
            .step(
                StepBuilder::new(
                    "load",
                    &FakePod::succeed().running_for(Duration::from_secs(3)),
                )
                .after(&["extract"]),
            )
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        wait_for_flow_step_running(&flows).await?;

        // -f follows until the flow ends, load's pod included.
        let followed =
            tokio::time::timeout(TIMEOUT, kubectl_jobflow(ns.name(), &["logs", "etl", "-f"]))
                .await??
                .expect_code(0)?;
        assert_eq!(phase(&flows.get("etl").await?), Some(FlowPhase::Succeeded));
        assert!(
            followed.stdout.contains("[load/main]"),
            "{}",
            followed.stdout
        );

        let logs = kubectl_jobflow(ns.name(), &["logs", "etl"])
            .await?
            .expect_code(0)?;
        for step in ["extract", "load"] {
            let line = logs
                .stdout
                .lines()
                .find(|line| line.starts_with(&format!("[{step}/main] ")))
                .unwrap_or_default();
            // Simulated pods serve no logs: the plugin says so, naming the pod.
            assert!(
                line.contains(&format!("pod etl-{step}-1")),
                "{}",
                logs.stdout
            );
        }
        let one = kubectl_jobflow(ns.name(), &["logs", "etl", "--step", "load"])
            .await?
            .expect_code(0)?;
        assert!(!one.stdout.contains("[extract/"), "{}", one.stdout);
        kubectl_jobflow(ns.name(), &["logs", "etl", "--step", "nope"])
            .await?
            .expect_code(3)?;
        Ok(())
    })
    .await
}

/// Waits until step extract has run, so the flow has a pod to show.
async fn wait_for_flow_step_running(flows: &Api<JobFlow>) -> anyhow::Result<()> {
    jobflow_tests::flows::wait_for_flow(flows, "etl", "extract to start", TIMEOUT, |flow| {
        Ok(flow
            .status
            .as_ref()
            .and_then(|status| status.steps.first())
            .is_some_and(|step| step.attempt > 0))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn get_watch_prints_each_change_and_graph_colours_live_steps() -> anyhow::Result<()> {
    run_with_agent("plugin-get-watch", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let mut watch = spawn_kubectl_jobflow(ns.name(), &["get", "--watch"])?;
        let stdout = watch
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        // The empty listing comes first, so the watch is running before the flow exists.
        let first = tokio::time::timeout(TIMEOUT, lines.next_line()).await??;
        assert_eq!(
            first.as_deref(),
            Some(&*format!("No jobflows found in namespace {}.", ns.name()))
        );
        let flow = FlowBuilder::new("etl")
            .step(StepBuilder::new("extract", &FakePod::quick()))
            .step(StepBuilder::new("load", &FakePod::quick()).after(&["extract"]))
            .build();
        flows.create(&PostParams::default(), &flow).await?;
        let mut seen = Vec::new();
        let finished = tokio::time::timeout(TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                let done = line.contains("Succeeded");
                seen.push(line);
                if done {
                    return anyhow::Ok(());
                }
            }
            anyhow::bail!("get --watch ended early")
        })
        .await;
        anyhow::ensure!(matches!(finished, Ok(Ok(()))), "{finished:?}: {seen:?}");
        assert!(
            seen.iter()
                .any(|line| line.starts_with("etl") && line.contains("Running")),
            "{seen:?}"
        );
        assert!(
            seen.last().is_some_and(|line| line.contains("2/2")),
            "{seen:?}"
        );
        drop(watch);
        assert_eq!(phase(&flows.get("etl").await?), Some(FlowPhase::Succeeded));

        let graph = kubectl_jobflow(ns.name(), &["graph", "etl"])
            .await?
            .expect_code(0)?;
        let load = graph
            .stdout
            .lines()
            .find(|line| line.contains("load"))
            .unwrap_or_default();
        assert!(
            load.contains("Succeeded") && load.contains("← extract"),
            "{}",
            graph.stdout
        );
        let dot = kubectl_jobflow(ns.name(), &["graph", "etl", "--format", "dot"])
            .await?
            .expect_code(0)?;
        assert!(
            dot.stdout
                .contains("\"load\" [label=\"load\\nSucceeded\", color=green]"),
            "{}",
            dot.stdout
        );
        Ok(())
    })
    .await
}
