//! Issue 7's rules that need a real API server, end to end with the real `jobflow-agent`: an
//! invalid flow fixed in place runs (the CRD's immutability rule lets it), a named retry on a
//! running flow deletes the Jobs it resets, a peer being deleted blocks nobody, and deleted flows
//! leave nothing behind in the agent.

use std::collections::BTreeSet;
use std::time::Duration;

use jobflow::api::{ConcurrencyPolicy, FlowPhase, JobFlow, StepPhase, reasons};
use jobflow::labels;
use jobflow_tests::agent::{AgentProcess, run_with_agent};
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, create_flow, flow_jobs, phase, readable_job_name, ready_reason,
    step_status, wait_for_flow, wait_for_phase,
};
use jobflow_tests::{FakePod, POLL, wait_for};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Failed on 36d953f: the agent gave the invalid flow a startTime when it failed it, so the
/// API server refused the corrected spec ("spec is immutable once the flow has started").
#[tokio::test]
async fn an_invalid_flow_is_fixed_in_place_and_runs() -> anyhow::Result<()> {
    run_with_agent("fix-invalid", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let flow = FlowBuilder::new("typo")
            .step(StepBuilder::new("extract", &FakePod::quick()))
            .step(StepBuilder::new("load", &FakePod::quick()).after(&["extrct"]))
            .build();
        create_flow(&flows, &flow).await?;
        let failed = wait_for_phase(&flows, "typo", FlowPhase::Failed, TIMEOUT).await?;
        assert_eq!(ready_reason(&failed), reasons::VALIDATION_FAILED);
        let status = failed.status.as_ref().expect("a status");
        assert!(status.start_time.is_none(), "{status:?}");

        // The user corrects the dependency and applies again: the API server accepts it.
        let mut fixed = failed.clone();
        fixed.spec.steps[1].dependencies = vec!["extract".to_owned()];
        fixed.status = None;
        let generation = flows
            .replace("typo", &PostParams::default(), &fixed)
            .await?
            .metadata
            .generation;
        let done = wait_for_flow(
            &flows,
            "typo",
            "the fixed generation Succeeded",
            TIMEOUT,
            |f| {
                let current = f.status.as_ref().and_then(|s| s.observed_generation) == generation;
                match phase(f) {
                    Some(FlowPhase::Failed) if current => {
                        anyhow::bail!("the fixed flow failed: {}", ready_reason(f))
                    }
                    found => Ok(current && found == Some(FlowPhase::Succeeded)),
                }
            },
        )
        .await?;
        assert_eq!(step_status(&done, "load")?.phase, StepPhase::Succeeded);

        // Once it ran, its spec is fixed again.
        let mut changed = done.clone();
        changed.spec.steps[0].continue_on_failure = true;
        let refused = flows
            .replace("typo", &PostParams::default(), &changed)
            .await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("immutable")),
            "{refused:?}"
        );
        Ok(())
    })
    .await
}

/// Failed on 36d953f: `retry: <id>:a` on a running flow reset b to Pending while b's Job kept
/// running, untracked, and b's next attempt ran beside it; and an id with a colon (as
/// `date -Iseconds` makes) was read as a list of steps.
#[tokio::test]
async fn a_named_retry_on_a_running_flow_deletes_the_jobs_it_resets() -> anyhow::Result<()> {
    run_with_agent("retry-running", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let flow = FlowBuilder::new("chain")
            .step(StepBuilder::new("a", &FakePod::quick()))
            .step(
                StepBuilder::new("b", &FakePod::succeed().running_for(Duration::from_secs(6)))
                    .after(&["a"]),
            )
            .build();
        create_flow(&flows, &flow).await?;
        let running = wait_for_flow(
            &flows,
            "chain",
            "b running with its Job seen",
            TIMEOUT,
            |f| {
                Ok(step_status(f, "b").is_ok_and(|s| {
                    s.phase == StepPhase::Running
                        && s.job_ref.as_ref().is_some_and(|j| j.uid.is_some())
                }))
            },
        )
        .await?;
        let first_b = step_status(&running, "b")?
            .job_ref
            .as_ref()
            .map(|job| job.name.clone())
            .expect("b's Job");

        let key = format!("{}a", labels::RETRY_PREFIX);
        let id = "2026-12-02T06:00:00+00:00";
        flows
            .patch(
                "chain",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {key.as_str(): id}}})),
            )
            .await?;

        // Until the flow ends, b never has two unfinished attempts at once.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let done = loop {
            let unfinished: Vec<String> = flow_jobs(&jobs, "chain")
                .await?
                .iter()
                .filter(|job| {
                    readable_job_name(job).starts_with("chain-b-")
                        && job.metadata.deletion_timestamp.is_none()
                        && job.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0
                })
                .map(ResourceExt::name_any)
                .collect();
            assert!(
                unfinished.len() <= 1,
                "two attempts of b run: {unfinished:?}"
            );
            let flow = flows.get("chain").await?;
            if phase(&flow) == Some(FlowPhase::Succeeded) {
                break flow;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the flow did not end"
            );
            tokio::time::sleep(POLL).await;
        };
        let status = done.status.as_ref().expect("a status");
        assert_eq!(
            status.handled_requests.get(&key).map(String::as_str),
            Some(id)
        );
        assert_eq!(step_status(&done, "a")?.attempt, 2);
        assert_eq!(step_status(&done, "b")?.attempt, 2);
        let names: BTreeSet<String> = flow_jobs(&jobs, "chain")
            .await?
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        assert!(
            !names.contains(&first_b),
            "b's first Job was not deleted: {names:?}"
        );
        Ok(())
    })
    .await
}

/// Failed on 36d953f: an older flow of the key that was being deleted (a finalizer holds it)
/// still counted as running, so the newer Forbid flow waited for it.
#[tokio::test]
async fn a_peer_being_deleted_does_not_block_a_forbid_flow() -> anyhow::Result<()> {
    const FINALIZER: &str = "zen-flow.test/hold";
    run_with_agent("peer-deleting", |ns, _agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let keyed = |name: &str, pod: &FakePod| {
            FlowBuilder::new(name)
                .step(StepBuilder::new("work", pod))
                .with(|flow| {
                    let policy = &mut flow.spec.execution_policy;
                    policy.concurrency_key = Some("db".to_owned());
                    policy.concurrency_policy = ConcurrencyPolicy::Forbid;
                    flow.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
                })
                .build()
        };
        let old = keyed(
            "old",
            &FakePod::succeed().running_for(Duration::from_secs(30)),
        );
        create_flow(&flows, &old).await?;
        wait_for_phase(&flows, "old", FlowPhase::Running, TIMEOUT).await?;
        flows.delete("old", &DeleteParams::default()).await?;
        wait_for_flow(&flows, "old", "old being deleted", TIMEOUT, |f| {
            Ok(f.metadata.deletion_timestamp.is_some())
        })
        .await?;

        let mut new = keyed("new", &FakePod::quick());
        new.metadata.finalizers = None;
        create_flow(&flows, &new).await?;
        let done = wait_for_phase(&flows, "new", FlowPhase::Succeeded, TIMEOUT).await?;
        assert_eq!(ready_reason(&done), reasons::FLOW_SUCCEEDED);
        assert!(
            flows
                .get("old")
                .await?
                .metadata
                .deletion_timestamp
                .is_some(),
            "old must still be there (being deleted) for this to prove anything"
        );
        flows
            .patch(
                "old",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await?;
        Ok(())
    })
    .await
}

/// Failed on 36d953f: the Jobs of a deleted flow are deleted after it, and each of their
/// delete events queued the gone flow for a reconcile that never came, so the work-queue
/// gauge grew with every deleted flow.
#[tokio::test]
async fn deleted_flows_leave_no_state_behind() -> anyhow::Result<()> {
    const FLOWS: usize = 100;
    run_with_agent("state-freed", |ns, agent| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let baseline = state(&agent).await?;
        for i in 0..FLOWS {
            let flow = FlowBuilder::new(&format!("f{i:03}"))
                .step(StepBuilder::new(
                    "work",
                    &FakePod::succeed().running_for(Duration::from_secs(120)),
                ))
                .build();
            create_flow(&flows, &flow).await?;
        }
        wait_for(
            "a Job for every flow",
            Duration::from_secs(120),
            POLL,
            || async {
                let n = jobs.list(&ListParams::default()).await?.items.len();
                Ok((n == FLOWS).then_some(()))
            },
        )
        .await?;
        // Background deletion: the flows go first, their Jobs after them.
        flows
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await?;
        wait_for(
            "every flow and Job gone",
            Duration::from_secs(120),
            POLL,
            || async {
                let left = flows.list(&ListParams::default()).await?.items.len()
                    + jobs.list(&ListParams::default()).await?.items.len();
                Ok((left == 0).then_some(()))
            },
        )
        .await?;
        let settled = wait_for(
            "the agent's queue and per-flow maps back at their baseline",
            Duration::from_secs(90),
            POLL,
            || async {
                let now = state(&agent).await?;
                Ok((now == baseline).then_some(now))
            },
        )
        .await;
        assert!(
            settled.is_ok(),
            "baseline {baseline:?}, now {:?}",
            state(&agent).await?
        );
        Ok(())
    })
    .await
}

/// The work-queue depth and the size of each per-flow map, from the agent's metrics.
async fn state(agent: &AgentProcess) -> anyhow::Result<[u64; 4]> {
    let value = |name: &'static str, map: Option<&'static str>| async move {
        let labels: Vec<(&str, &str)> = map.map(|map| ("map", map)).into_iter().collect();
        anyhow::Ok(agent.metric_value(name, &labels).await?.unwrap_or(0.0))
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok([
        value("zen_flow_workqueue_depth", None).await? as u64,
        value("zen_flow_state_entries", Some("flow_states")).await? as u64,
        value("zen_flow_state_entries", Some("written")).await? as u64,
        value("zen_flow_state_entries", Some("applied")).await? as u64,
    ])
}
