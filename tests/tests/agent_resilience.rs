//! The agent survives what production throws at it, end to end with the real `jobflow-agent`:
//! a kill -9 in the middle of many flows, a leader that dies while a standby waits, a leader
//! frozen past its Lease that comes back after the takeover, and running
//! under the least-privilege RBAC of `deploy/agent/rbac.yaml` instead of cluster-admin.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use futures::{FutureExt as _, StreamExt as _};
use jobflow::api::{FlowPhase, JobFlow, StepPhase, reasons};
use jobflow::labels;
use jobflow_tests::agent::{AgentProcess, LOG_TAIL_LINES, run_with_agent};
use jobflow_tests::flows::{
    FlowBuilder, StepBuilder, events_for, flow_jobs, job_args, phase, readable_job_name,
    ready_message, real_job_name, resource_object_name, step_status, wait_for_flow,
    wait_for_job_deletion, wait_for_phase,
};
use jobflow_tests::{
    FakePod, POLL, TestNamespace, install_crd, job_condition, kubeconfig_path, manifest,
    run_in_namespace, wait_for, wait_for_deletion, wait_for_object,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, PersistentVolumeClaim, Secret, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Runs `body`; if it fails or panics, prints the last lines of `agent`'s log first (for agents
/// a test starts itself: `run_with_agent` only prints its own agent's log).
async fn logging_failure<T>(
    agent: &AgentProcess,
    body: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    if !matches!(outcome, Ok(Ok(_))) {
        agent.dump_log_tail(LOG_TAIL_LINES);
    }
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// What a watch on the namespace's Jobs saw: every UID each Job name had, and the Jobs deleted.
/// A Job created twice under one name shows as two UIDs, even if the first was gone by the end.
#[derive(Debug, Default)]
struct JobHistory {
    uids: BTreeMap<String, BTreeSet<String>>,
    deleted: BTreeSet<String>,
}

/// Watches the Jobs of `jobs` until the returned task is aborted.
fn record_jobs(jobs: Api<Job>) -> (Arc<Mutex<JobHistory>>, tokio::task::JoinHandle<()>) {
    let history = Arc::new(Mutex::new(JobHistory::default()));
    let writer = Arc::clone(&history);
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(jobs, watcher::Config::default()));
        while let Some(event) = events.next().await {
            let mut history = writer.lock().unwrap_or_else(PoisonError::into_inner);
            match event {
                Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) => {
                    history
                        .uids
                        .entry(job.name_any())
                        .or_default()
                        .insert(job.uid().unwrap_or_default());
                }
                Ok(watcher::Event::Delete(job)) => {
                    history.deleted.insert(job.name_any());
                }
                // The watcher retries by itself; the final listing still checks every Job.
                Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => {}
            }
        }
    });
    (history, task)
}

/// A small diamond: a, then b and c side by side, then d; 1-2 s pods.
fn diamond(name: &str) -> JobFlow {
    let pod = |millis| FakePod::succeed().running_for(Duration::from_millis(millis));
    FlowBuilder::new(name)
        .step(StepBuilder::new("a", &pod(1000)))
        .step(StepBuilder::new("b", &pod(2000)).after(&["a"]))
        .step(StepBuilder::new("c", &pod(1500)).after(&["a"]))
        .step(StepBuilder::new("d", &pod(1000)).after(&["b", "c"]))
        .build()
}

const DIAMOND_STEPS: [&str; 4] = ["a", "b", "c", "d"];

#[tokio::test]
async fn kill_9_mid_run_finishes_every_flow_without_duplicate_jobs() -> anyhow::Result<()> {
    const FLOWS: usize = 20;
    let total_jobs = FLOWS * DIAMOND_STEPS.len();
    run_with_agent("kill-9-mid-run", |ns, first| async move {
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let (history, watch) = record_jobs(jobs.clone());
        let names: Vec<String> = (0..FLOWS).map(|i| format!("flow-{i:02}")).collect();
        for name in &names {
            flows.create(&PostParams::default(), &diamond(name)).await?;
        }

        // Kill the agent once a good part of the Jobs exist, while much is left to do: right
        // after the watch shows a new Job, which is when the agent may be between creating
        // Jobs and writing the status that records them.
        let created = wait_for(
            "a third of the flows' Jobs to exist",
            Duration::from_secs(120),
            Duration::from_millis(5),
            || async {
                let count = history
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .uids
                    .len();
                Ok((count >= total_jobs / 3).then_some(count))
            },
        )
        .await?;
        first.kill_9()?;
        let finished = flows
            .list(&ListParams::default())
            .await?
            .iter()
            .filter(|flow| phase(flow).is_some_and(FlowPhase::is_terminal))
            .count();
        assert!(
            created < total_jobs && finished < FLOWS,
            "the kill came too late to prove anything: {created} of {total_jobs} Jobs, \
             {finished} of {FLOWS} flows finished"
        );

        // Informational: how many Jobs the killed agent created without recording them.
        let unrecorded = unrecorded_jobs(&flows, &jobs).await?;
        eprintln!(
            "killed the agent with {created} of {total_jobs} Jobs created and {finished} of \
             {FLOWS} flows finished; Jobs not in their flow's status: {unrecorded:?}"
        );
        // While no agent runs the running Jobs finish: the next agent finds a world that moved
        // on from the status it reads (steps Running whose Jobs completed, Jobs maybe created
        // by the killed agent whose status write never happened).
        wait_for(
            "every Job the killed agent left to finish",
            Duration::from_secs(60),
            POLL,
            || async {
                let list = jobs.list(&ListParams::default()).await?.items;
                Ok(list
                    .iter()
                    .all(|job| job_condition(job, "Complete").is_some())
                    .then_some(()))
            },
        )
        .await?;

        let second = AgentProcess::start(ns.name()).await?;
        logging_failure(
            &second,
            all_succeeded_with_one_job_per_step(&flows, &jobs, &names, &history),
        )
        .await?;
        watch.abort();
        Ok(())
    })
    .await
}

/// Every flow of `names` Succeeded, with exactly one Job per step, attempt 1, created once.
async fn all_succeeded_with_one_job_per_step(
    flows: &Api<JobFlow>,
    jobs: &Api<Job>,
    names: &[String],
    history: &Mutex<JobHistory>,
) -> anyhow::Result<()> {
    for name in names {
        let done =
            wait_for_phase(flows, name, FlowPhase::Succeeded, Duration::from_secs(180)).await?;
        for step in DIAMOND_STEPS {
            let status = step_status(&done, step)?;
            assert_eq!(
                (status.phase, status.attempt, status.retry_count),
                (StepPhase::Succeeded, 1, 0),
                "flow {name} step {step}: {status:?}"
            );
        }
    }
    // Exactly one Job per flow and step, attempt 1, each created once.
    let all = jobs.list(&ListParams::default()).await?.items;
    let found: BTreeSet<String> = all.iter().map(readable_job_name).collect();
    let expected: BTreeSet<String> = names
        .iter()
        .flat_map(|name| {
            DIAMOND_STEPS
                .iter()
                .map(move |step| format!("{name}-{step}-1"))
        })
        .collect();
    assert_eq!(
        found, expected,
        "Jobs other than one attempt-1 Job per step"
    );
    for job in &all {
        assert_eq!(
            job.labels().get(labels::ATTEMPT).map(String::as_str),
            Some("1"),
            "Job {}",
            job.name_any()
        );
    }
    let history = history.lock().unwrap_or_else(PoisonError::into_inner);
    let recreated: Vec<_> = history
        .uids
        .iter()
        .filter(|(_, uids)| uids.len() > 1)
        .collect();
    assert!(
        recreated.is_empty(),
        "Jobs created more than once: {recreated:?}"
    );
    assert!(
        history.deleted.is_empty(),
        "Jobs deleted: {:?}",
        history.deleted
    );
    Ok(())
}

/// The Jobs no step status refers to (created, but the status recording them never written).
async fn unrecorded_jobs(flows: &Api<JobFlow>, jobs: &Api<Job>) -> anyhow::Result<Vec<String>> {
    let recorded: BTreeSet<String> = flows
        .list(&ListParams::default())
        .await?
        .iter()
        .filter_map(|flow| flow.status.as_ref())
        .flat_map(|status| &status.steps)
        .filter_map(|step| step.job_ref.as_ref().map(|job| job.name.clone()))
        .collect();
    Ok(jobs
        .list(&ListParams::default())
        .await?
        .iter()
        .map(ResourceExt::name_any)
        .filter(|name| !recorded.contains(name))
        .collect())
}

/// The Lease's holder, if the Lease exists and names one.
async fn lease_holder(leases: &Api<Lease>, name: &str) -> anyhow::Result<Option<String>> {
    Ok(leases
        .get_opt(name)
        .await?
        .and_then(|lease| lease.spec?.holder_identity))
}

/// The API writes `agent` counted (`zen_flow_api_requests_total`), all series summed, with
/// `labels` narrowing them; 0 when it counted none.
async fn writes(agent: &AgentProcess, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
    Ok(agent
        .metric_value("zen_flow_api_requests_total", labels)
        .await?
        .unwrap_or(0.0))
}

fn two_steps(name: &str) -> JobFlow {
    let quick = FakePod::succeed().running_for(Duration::from_millis(500));
    FlowBuilder::new(name)
        .step(StepBuilder::new("a", &quick))
        .step(StepBuilder::new("b", &quick).after(&["a"]))
        .build()
}

#[tokio::test]
async fn standby_writes_nothing_and_takes_over_after_a_kill_9() -> anyhow::Result<()> {
    const LEASE: &str = "jobflow-agent-test";
    // The agent's Lease lasts 15 s without renewal and a standby looks every 2 s.
    const TAKEOVER: Duration = Duration::from_secs(20);
    run_in_namespace("leader-election", |ns: TestNamespace| async move {
        install_crd(&ns.client()).await?;
        let flows: Api<JobFlow> = ns.api();
        let jobs: Api<Job> = ns.api();
        let leases: Api<Lease> = ns.api();

        let leader = AgentProcess::builder(ns.name())
            .leader_election(LEASE, ns.name(), "agent-a")
            .start()
            .await?;
        logging_failure(&leader, async {
            wait_for("agent-a to hold the Lease", TAKEOVER, POLL, || async {
                Ok(
                    (lease_holder(&leases, LEASE).await?.as_deref() == Some("agent-a"))
                        .then_some(()),
                )
            })
            .await
        })
        .await?;
        // Started once the Lease is held, the standby only ever reads it.
        let standby = AgentProcess::builder(ns.name())
            .leader_election(LEASE, ns.name(), "agent-b")
            .start()
            .await?;
        logging_failure(&standby, async {
            logging_failure(&leader, async {
                flows
                    .create(&PostParams::default(), &two_steps("before"))
                    .await?;
                wait_for_phase(
                    &flows,
                    "before",
                    FlowPhase::Succeeded,
                    Duration::from_secs(60),
                )
                .await?;
                assert_eq!(
                    lease_holder(&leases, LEASE).await?.as_deref(),
                    Some("agent-a")
                );
                assert!(
                    writes(&leader, &[("resource", "jobs")]).await? >= 2.0,
                    "the leader did not count the Jobs it created"
                );
                assert!(writes(&leader, &[("resource", "jobflows")]).await? >= 1.0);
                let standby_writes = writes(&standby, &[]).await?;
                assert!(
                    standby_writes < 1.0,
                    "the standby made {standby_writes} API writes:\n{}",
                    standby.metrics_text().await?
                );
                Ok(())
            })
            .await?;

            leader.kill_9()?;
            let killed = Instant::now();
            // Applied while nobody leads: the standby must pick it up once it takes over.
            flows
                .create(&PostParams::default(), &two_steps("after"))
                .await?;
            wait_for(
                "agent-b to take the Lease over",
                TAKEOVER + Duration::from_secs(10),
                POLL,
                || async {
                    Ok(
                        (lease_holder(&leases, LEASE).await?.as_deref() == Some("agent-b"))
                            .then_some(()),
                    )
                },
            )
            .await?;
            let took = killed.elapsed();
            eprintln!("agent-b took the Lease over {took:?} after agent-a was killed");
            assert!(
                took <= TAKEOVER,
                "agent-b took the Lease {took:?} after the kill"
            );
            wait_for_phase(
                &flows,
                "after",
                FlowPhase::Succeeded,
                Duration::from_secs(60),
            )
            .await?;
            assert!(writes(&standby, &[("resource", "jobs")]).await? >= 2.0);
            // The new leader reconciles every flow first; the finished one stays as it was.
            let before_jobs: Vec<String> = flow_jobs(&jobs, "before")
                .await?
                .iter()
                .map(readable_job_name)
                .collect();
            assert_eq!(before_jobs, ["before-a-1", "before-b-1"]);
            Ok(())
        })
        .await
    })
    .await
}

/// Every status a watch saw of each flow, in order.
type StatusHistory = Arc<Mutex<BTreeMap<String, Vec<jobflow::api::JobFlowStatus>>>>;

/// Watches the flows of `flows` until the returned task is aborted.
fn record_statuses(flows: Api<JobFlow>) -> (StatusHistory, tokio::task::JoinHandle<()>) {
    let history = StatusHistory::default();
    let writer = Arc::clone(&history);
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(flows, watcher::Config::default()));
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(flow) | watcher::Event::InitApply(flow)) = event {
                let status = flow.status.clone().unwrap_or_default();
                let mut history = writer.lock().unwrap_or_else(PoisonError::into_inner);
                let seen = history.entry(flow.name_any()).or_default();
                if seen.last() != Some(&status) {
                    seen.push(status);
                }
            }
        }
    });
    (history, task)
}

/// Where a status went backwards: a terminal flow phase or step phase that changed, a flow
/// phase back to Pending, or fewer completed steps than before.
fn regressions(history: &BTreeMap<String, Vec<jobflow::api::JobFlowStatus>>) -> Vec<String> {
    let mut found = Vec::new();
    for (flow, statuses) in history {
        for (before, after) in statuses.iter().zip(statuses.iter().skip(1)) {
            let rank = |phase: Option<FlowPhase>| match phase {
                None | Some(FlowPhase::Pending) => 0,
                Some(phase) if phase.is_terminal() => 2,
                Some(_) => 1,
            };
            let terminal_changed =
                before.phase.is_some_and(FlowPhase::is_terminal) && after.phase != before.phase;
            if terminal_changed || rank(after.phase) < rank(before.phase) {
                found.push(format!(
                    "{flow}: phase {:?} -> {:?}",
                    before.phase, after.phase
                ));
            }
            let completed = |s: &jobflow::api::JobFlowStatus| {
                s.progress.as_ref().map_or(0, |p| p.completed_steps)
            };
            if completed(after) < completed(before) {
                found.push(format!(
                    "{flow}: completed steps {} -> {}",
                    completed(before),
                    completed(after)
                ));
            }
            for step in &before.steps {
                let now = after.steps.iter().find(|s| s.name == step.name);
                if step.phase.is_terminal() && now.map(|s| s.phase) != Some(step.phase) {
                    found.push(format!(
                        "{flow}: step {} {:?} -> {:?}",
                        step.name,
                        step.phase,
                        now.map(|s| s.phase)
                    ));
                }
            }
        }
    }
    found
}

/// The Events in `events`' namespace reported by `instance`.
async fn events_reported_by(events: &Api<Event>, instance: &str) -> anyhow::Result<Vec<String>> {
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|event| event.reporting_instance.as_deref() == Some(instance))
        .map(|event| {
            format!(
                "{} {} {}",
                event
                    .metadata
                    .creation_timestamp
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                event.reason.unwrap_or_default(),
                event.message.unwrap_or_default()
            )
        })
        .collect())
}

/// The API writes the agent logged (`"API write"` debug lines of `jobflow_agent::kube::call`) in
/// its log from byte `from` on.
fn logged_writes(agent: &AgentProcess, from: u64) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(agent.log_path())?;
    let start = usize::try_from(from)?.min(bytes.len());
    Ok(String::from_utf8_lossy(&bytes[start..])
        .lines()
        .filter(|line| line.contains("\"message\":\"API write\""))
        .map(str::to_owned)
        .collect())
}

/// A flow whose steps end while a frozen leader cannot see it: `slow` (then `next`) finishes
/// and `hang` times out (its failure does not fail the flow) while the leader is stopped.
fn outlives_the_leader(name: &str) -> JobFlow {
    let slow = FakePod::succeed().running_for(Duration::from_secs(16));
    let hang = FakePod::succeed().running_for(Duration::from_secs(600));
    FlowBuilder::new(name)
        .step(StepBuilder::new("slow", &slow))
        .step(StepBuilder::new("next", &FakePod::quick()).after(&["slow"]))
        .step(
            StepBuilder::new("hang", &hang)
                .timeout_seconds(20)
                .continue_on_failure(),
        )
        .build()
}

/// What a frozen agent had done when it was frozen.
struct Frozen {
    /// When it was frozen.
    at: Instant,
    /// Its API writes so far (`zen_flow_api_requests_total`, every series).
    writes: f64,
    /// The length of its log.
    log_offset: u64,
    /// How many Events it had reported.
    events: usize,
}

/// Freezes `agent` (SIGSTOP) once its write counters have not moved for half a second, so what
/// it wrote before is all counted.
async fn freeze_when_quiet(agent: &AgentProcess, events: &Api<Event>) -> anyhow::Result<Frozen> {
    let mut baseline = writes(agent, &[]).await?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = writes(agent, &[]).await?;
        if (now - baseline).abs() < 0.5 {
            break;
        }
        baseline = now;
    }
    agent.pause()?;
    let frozen = Frozen {
        at: Instant::now(),
        writes: baseline,
        log_offset: std::fs::metadata(agent.log_path())?.len(),
        events: events_reported_by(events, "agent-a").await?.len(),
    };
    eprintln!(
        "froze agent-a after {} writes and {} Events",
        frozen.writes, frozen.events
    );
    Ok(frozen)
}

/// Resumes the frozen agent-a and lists what it did that it must not have: writes logged or
/// counted after the freeze, Events published, or still running 10 s after resuming.
async fn resume_and_check(
    agent: &AgentProcess,
    frozen: &Frozen,
    events: &Api<Event>,
) -> anyhow::Result<Vec<String>> {
    agent.resume()?;
    // It must stop at once; its counters, while it still answers, must not move.
    let mut counted = Vec::new();
    let resumed = Instant::now();
    while resumed.elapsed() < Duration::from_secs(10) && agent.exit_status()?.is_none() {
        if let Ok(now) = writes(agent, &[]).await {
            counted.push(now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exited = agent.exit_status()?;
    eprintln!(
        "agent-a after resuming: exit {exited:?}, write counters read {counted:?} (frozen at {})",
        frozen.writes
    );
    // Anything agent-a sent has landed by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut problems = Vec::new();
    let logged = logged_writes(agent, frozen.log_offset)?;
    if !logged.is_empty() {
        problems.push(format!(
            "agent-a logged {} API writes after resuming:\n{}",
            logged.len(),
            logged.join("\n")
        ));
    }
    if let Some(moved) = counted
        .iter()
        .find(|now| (**now - frozen.writes).abs() > 0.5)
    {
        problems.push(format!(
            "agent-a's write counters went from {} to {moved} after resuming",
            frozen.writes
        ));
    }
    let after = events_reported_by(events, "agent-a").await?;
    if after.len() != frozen.events {
        problems.push(format!(
            "agent-a published Events after resuming: {:?}",
            &after[frozen.events.min(after.len())..]
        ));
    }
    if exited.is_none() {
        problems.push("agent-a still runs 10 s after resuming".to_owned());
    }
    Ok(problems)
}

/// Waits until `identity` holds the Lease `name`.
async fn wait_for_holder(
    leases: &Api<Lease>,
    name: &str,
    identity: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_for(
        &format!("{identity} to hold the Lease"),
        timeout,
        POLL,
        || async {
            Ok((lease_holder(leases, name).await?.as_deref() == Some(identity)).then_some(()))
        },
    )
    .await
}

/// Rule 5 of issue 7: one leader, even when the network stalls or clocks drift. A leader frozen
/// (SIGSTOP) past its Lease comes back after a standby took over: it must write nothing, even
/// though its caches are stale and its timers all fire at once, and no status goes backwards.
#[tokio::test]
async fn a_leader_frozen_past_its_lease_writes_nothing_after_the_takeover() -> anyhow::Result<()> {
    const LEASE: &str = "jobflow-agent-freeze";
    const FLOWS: usize = 6;
    // The agent's Lease lasts 15 s; a standby looks every 2 s.
    const LEASE_DURATION: Duration = Duration::from_secs(15);
    const TAKEOVER: Duration = Duration::from_secs(30);
    // Debug lines of every API write the agent makes, so its log shows any write after resume.
    const LOG_LEVEL: &str = "info,jobflow_agent::kube::call=debug";
    run_in_namespace("leader-freeze", |ns: TestNamespace| async move {
        install_crd(&ns.client()).await?;
        let flows: Api<JobFlow> = ns.api();
        let leases: Api<Lease> = ns.api();
        let events: Api<Event> = ns.api();

        let leader = AgentProcess::builder(ns.name())
            .leader_election(LEASE, ns.name(), "agent-a")
            .log_level(LOG_LEVEL)
            .start()
            .await?;
        logging_failure(
            &leader,
            wait_for_holder(&leases, LEASE, "agent-a", TAKEOVER),
        )
        .await?;
        let standby = AgentProcess::builder(ns.name())
            .leader_election(LEASE, ns.name(), "agent-b")
            .log_level(LOG_LEVEL)
            .start()
            .await?;
        let (statuses, recorder) = record_statuses(flows.clone());
        let outcome = logging_failure(
            &standby,
            logging_failure(&leader, async {
                let names: Vec<String> = (0..FLOWS).map(|i| format!("frozen-{i}")).collect();
                for name in &names {
                    flows
                        .create(&PostParams::default(), &outlives_the_leader(name))
                        .await?;
                }
                // Every flow runs its first Jobs under agent-a.
                wait_for(
                    "every flow to run slow and hang",
                    Duration::from_secs(60),
                    POLL,
                    || async {
                        for name in &names {
                            let flow = flows.get(name).await?;
                            let running = |step| {
                                step_status(&flow, step)
                                    .is_ok_and(|s| s.phase == StepPhase::Running)
                            };
                            if !(running("slow") && running("hang")) {
                                return Ok(None);
                            }
                        }
                        Ok(Some(()))
                    },
                )
                .await?;
                let frozen = freeze_when_quiet(&leader, &events).await?;
                let paused = frozen.at;
                wait_for_holder(&leases, LEASE, "agent-b", TAKEOVER).await?;
                eprintln!(
                    "agent-b took the Lease {:?} after the freeze",
                    paused.elapsed()
                );
                // agent-b acts: every flow finishes (slow, next and hang's timeout) under it.
                for name in &names {
                    wait_for_phase(&flows, name, FlowPhase::Succeeded, Duration::from_secs(60))
                        .await?;
                }
                let standby_writes = writes(&standby, &[("resource", "jobflows")]).await?;
                assert!(
                    standby_writes >= 1.0,
                    "agent-b wrote no status after taking over"
                );
                anyhow::ensure!(
                    paused.elapsed() > LEASE_DURATION,
                    "agent-a was frozen for less than the Lease duration"
                );
                eprintln!("resuming agent-a after {:?}", paused.elapsed());

                let mut problems = resume_and_check(&leader, &frozen, &events).await?;
                let backwards =
                    regressions(&statuses.lock().unwrap_or_else(PoisonError::into_inner));
                if !backwards.is_empty() {
                    problems.push(format!("statuses went backwards: {backwards:?}"));
                }
                for name in &names {
                    if phase(&flows.get(name).await?) != Some(FlowPhase::Succeeded) {
                        problems.push(format!("{name} is no longer Succeeded"));
                    }
                }
                anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
                assert_eq!(
                    lease_holder(&leases, LEASE).await?.as_deref(),
                    Some("agent-b")
                );
                Ok(())
            }),
        )
        .await;
        recorder.abort();
        outcome
    })
    .await
}

/// The value at `pointer` in `object` as a string, or "".
fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Creates the objects of `deploy/agent/rbac.yaml` for an agent living in `ns`: namespaced
/// objects move from `zen-flow-system` to `ns`; the cluster-scoped ones get a name of their own
/// (`jobflow-agent-<ns>`) and are owned by the namespace, so they go when it goes.
async fn install_rbac(ns: &TestNamespace) -> anyhow::Result<()> {
    let client = ns.client();
    let path = jobflow_tests::workspace_root().join("deploy/agent/rbac.yaml");
    let namespace = Api::<Namespace>::all(client.clone()).get(ns.name()).await?;
    let owner = OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Namespace".to_owned(),
        name: ns.name().to_owned(),
        uid: namespace.uid().unwrap_or_default(),
        ..OwnerReference::default()
    };
    let cluster_name = format!("jobflow-agent-{}", ns.name());
    let mut kinds = Vec::new();
    for mut object in manifest::objects(&path)? {
        let kind = text(&object, "/kind").to_owned();
        if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
            for subject in subjects {
                subject["namespace"] = json!(ns.name());
            }
        }
        if text(&object, "/roleRef/kind") == "ClusterRole" {
            object["roleRef"]["name"] = json!(cluster_name);
        }
        match kind.as_str() {
            "ServiceAccount" | "Role" | "RoleBinding" => {
                object["metadata"]["namespace"] = json!(ns.name());
            }
            "ClusterRole" | "ClusterRoleBinding" => {
                object["metadata"]["name"] = json!(cluster_name);
                object["metadata"]["ownerReferences"] = json!([owner]);
            }
            other => anyhow::bail!(
                "{} holds a {other}, which this test does not know",
                path.display()
            ),
        }
        let api = manifest::api_for(&client, &object);
        let object: DynamicObject = serde_json::from_value(object)?;
        api.create(&PostParams::default(), &object).await?;
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ServiceAccount"
        ],
        "{} changed: adapt this test",
        path.display()
    );
    Ok(())
}

/// Writes a kubeconfig for the same API server (and CA) as the tests' own, authenticating with
/// `token`, to `path` (readable by the owner only).
fn write_token_kubeconfig(path: &Path, token: &str, namespace: &str) -> anyhow::Result<()> {
    let admin = Kubeconfig::read_from(kubeconfig_path())?;
    let cluster = admin
        .clusters
        .first()
        .and_then(|named| named.cluster.clone())
        .context("the tests' kubeconfig names no cluster")?;
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "zen-flow-test", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": "jobflow-agent", "user": {"token": token}}],
        "contexts": [{"name": "jobflow-agent", "context": {
            "cluster": "zen-flow-test",
            "user": "jobflow-agent",
            "namespace": namespace,
        }}],
        "current-context": "jobflow-agent",
    });
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(serde_yaml_ng::to_string(&kubeconfig)?.as_bytes())?;
    Ok(())
}

/// Removes a file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn the_shipped_rbac_is_enough_to_run_a_flow() -> anyhow::Result<()> {
    run_in_namespace("shipped-rbac", |ns: TestNamespace| async move {
        install_crd(&ns.client()).await?;
        install_rbac(&ns).await?;
        let token = ns
            .api::<ServiceAccount>()
            .create_token_request(
                "jobflow-agent",
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: Vec::new(),
                        expiration_seconds: Some(3600),
                        ..TokenRequestSpec::default()
                    },
                    ..TokenRequest::default()
                },
            )
            .await?
            .status
            .context("the TokenRequest came back without a token")?
            .token;
        let path = std::env::temp_dir().join(format!("jobflow-agent-{}.kubeconfig", ns.name()));
        let _remove = RemoveOnDrop(path.clone());
        write_token_kubeconfig(&path, &token, ns.name())?;

        // The token really is the ServiceAccount's and nothing more: it may list flows but not
        // read Secrets. So whatever the agent manages below, it manages under the shipped RBAC.
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&path)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        let as_agent = Client::try_from(config)?;
        Api::<JobFlow>::namespaced(as_agent.clone(), ns.name())
            .list(&ListParams::default())
            .await
            .context("the agent's token cannot list flows")?;
        match Api::<Secret>::namespaced(as_agent, ns.name())
            .list(&ListParams::default())
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 403 => {}
            other => panic!("the agent's token may read Secrets, or failed otherwise: {other:?}"),
        }

        // Leader election on, its Lease in the agent's own namespace, as deployed.
        let agent = AgentProcess::builder(ns.name())
            .kubeconfig(&path)
            .leader_election("jobflow-agent", ns.name(), "rbac-agent")
            .start()
            .await?;
        Box::pin(logging_failure(&agent, run_rbac_flow(&ns, &agent))).await
    })
    .await
}

/// A flow that needs every permission of the agent's ClusterRole.
fn rbac_flow() -> anyhow::Result<JobFlow> {
    let templates = serde_json::from_value(json!({
        "configMapTemplates": [{"metadata": {"name": "settings"}, "data": {"mode": "rbac"}}],
        "volumeClaimTemplates": [{
            "metadata": {"name": "scratch"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}
            }
        }]
    }))?;
    let quick = FakePod::succeed().running_for(Duration::from_millis(500));
    Ok(FlowBuilder::new("rbac")
        // Outputs are read from the succeeded pod: pods get/list/watch.
        .step(
            StepBuilder::new(
                "produce",
                &quick.clone().with_output(&json!({"rows": "42"})),
            )
            .output("rows", ".rows"),
        )
        .step(
            StepBuilder::new("consume", &quick)
                .after(&["produce"])
                .args(&["load", "{{steps.produce.outputs.rows}}"]),
        )
        // A step timeout deletes its Job: jobs delete. It may fail without failing the flow.
        .step(
            StepBuilder::new(
                "slow",
                &FakePod::succeed().running_for(Duration::from_secs(600)),
            )
            .timeout_seconds(2)
            .continue_on_failure(),
        )
        // The flow deletes itself after its TTL: jobflows delete.
        .ttl_seconds_after_finished(5)
        // Resource templates: configmaps and persistentvolumeclaims create/patch.
        .with(|flow| flow.spec.resource_templates = Some(templates))
        .build())
}

/// Runs a flow that needs every permission of the ClusterRole, and checks the agent never hit a
/// refusal.
async fn run_rbac_flow(ns: &TestNamespace, agent: &AgentProcess) -> anyhow::Result<()> {
    let flows: Api<JobFlow> = ns.api();
    let jobs: Api<Job> = ns.api();
    let events: Api<Event> = ns.api();
    flows.create(&PostParams::default(), &rbac_flow()?).await?;

    let done = wait_for_flow(
        &flows,
        "rbac",
        "Succeeded",
        Duration::from_secs(60),
        |flow| match phase(flow) {
            Some(FlowPhase::Failed) => anyhow::bail!("the flow failed: {}", ready_message(flow)),
            current => Ok(current == Some(FlowPhase::Succeeded)),
        },
    )
    .await?;
    assert_eq!(
        step_status(&done, "produce")?
            .outputs
            .get("rows")
            .map(String::as_str),
        Some("42")
    );
    let slow = step_status(&done, "slow")?;
    assert_eq!(
        (slow.phase, slow.reason.as_deref()),
        (StepPhase::Failed, Some(reasons::TIMEOUT))
    );
    let consume = jobs
        .get(&real_job_name(&jobs, "rbac-consume-1").await?)
        .await?;
    assert_eq!(job_args(&consume), ["load", "42"]);
    wait_for_job_deletion(&jobs, "rbac-slow-1", Duration::from_secs(30)).await?;
    let settings = ns
        .api::<ConfigMap>()
        .get(&resource_object_name(&flows, "rbac", "settings").await?)
        .await?;
    assert_eq!(
        settings
            .data
            .unwrap_or_default()
            .get("mode")
            .map(String::as_str),
        Some("rbac")
    );
    ns.api::<PersistentVolumeClaim>()
        .get(&resource_object_name(&flows, "rbac", "scratch").await?)
        .await?;
    wait_for(
        "the agent's FlowSucceeded Event",
        Duration::from_secs(10),
        POLL,
        || async {
            let seen: Vec<String> = events_for(&events, "rbac")
                .await?
                .into_iter()
                .filter_map(|event| event.reason)
                .collect();
            Ok(seen
                .iter()
                .any(|r| r == reasons::FLOW_SUCCEEDED)
                .then_some(()))
        },
    )
    .await?;
    // The Lease of leader election, in the agent's namespace (leases get/create/update).
    wait_for_object(
        &ns.api::<Lease>(),
        "jobflow-agent",
        "the agent's Lease",
        Duration::from_secs(10),
        |lease| {
            Ok(lease
                .spec
                .as_ref()
                .and_then(|spec| spec.holder_identity.as_deref())
                == Some("rbac-agent"))
        },
    )
    .await?;
    wait_for_deletion(&flows, "rbac", Duration::from_secs(30)).await?;

    // Nothing was refused along the way: no failed reconcile, no Event that could not be sent.
    let errors = agent
        .metric_value("zen_flow_reconciliation_errors_total", &[])
        .await?
        .unwrap_or(0.0);
    let log = std::fs::read_to_string(agent.log_path())?;
    let refused: Vec<&str> = log
        .lines()
        .filter(|line| {
            let lower = line.to_ascii_lowercase();
            lower.contains("forbidden") || lower.contains("publishing an event failed")
        })
        .collect();
    assert!(
        refused.is_empty() && errors == 0.0,
        "the agent was refused something ({errors} failed reconciles):\n{}",
        refused.join("\n")
    );
    Ok(())
}
