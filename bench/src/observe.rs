//! What the harness sees for itself: a watch on the namespace's Jobs and JobFlows, timestamped
//! with a monotonic clock as each event arrives, and the agent's memory from `/proc`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use futures::{Stream, StreamExt as _};
use jobflow::api::{FlowPhase, JobFlow, JobFlowStatus};
use jobflow::labels;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt as _};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use jobflow_tests::flows::{phase, ready_message, ready_reason};
use jobflow_tests::job_condition;

/// When the watch first saw a Job, and first saw it Complete.
#[derive(Clone, Debug)]
pub struct JobSeen {
    /// Its flow (label `workflow.kube-zen.io/flow`).
    pub flow: String,
    /// Its step (label `workflow.kube-zen.io/step`).
    pub step: String,
    /// The first event about it (its ADDED).
    pub added: Instant,
    /// The first event showing `SuccessCriteriaMet` or `Complete` True: what the agent acts on
    /// (the Job controller sets `SuccessCriteriaMet` first, and `Complete` once the pods are
    /// gone).
    pub succeeded: Option<Instant>,
    /// The first event showing its `Complete` condition True.
    pub complete: Option<Instant>,
}

/// What the watch saw of a JobFlow.
#[derive(Clone, Debug)]
pub struct FlowSeen {
    /// The first event about it.
    pub added: Instant,
    /// Its latest phase.
    pub phase: Option<FlowPhase>,
    /// The first event showing a terminal phase.
    pub finished: Option<Instant>,
    /// Its Ready condition's `reason: message`, latest.
    pub reason: String,
    /// Its latest status.
    pub status: Option<JobFlowStatus>,
    /// How many times its status was seen to change.
    pub status_changes: usize,
    /// Of those, how many only filled in `steps[].jobRef.uid` (a Job the agent had just
    /// created entering its cache).
    pub uid_only_changes: usize,
    /// The size of its latest `.status` as JSON, in bytes.
    pub status_bytes: usize,
}

impl FlowSeen {
    /// A flow first seen at `added`, nothing else known yet.
    pub fn new(added: Instant) -> Self {
        Self {
            added,
            phase: None,
            finished: None,
            reason: String::new(),
            status: None,
            status_changes: 0,
            uid_only_changes: 0,
            status_bytes: 0,
        }
    }
}

/// Everything the watches saw so far.
#[derive(Debug, Default)]
pub struct Seen {
    /// Jobs by name.
    pub jobs: BTreeMap<String, JobSeen>,
    /// JobFlows by name.
    pub flows: BTreeMap<String, FlowSeen>,
    /// Watch errors (each retried with backoff).
    pub errors: Vec<String>,
    pub(crate) jobs_synced: bool,
    pub(crate) flows_synced: bool,
}

/// The two watches, running until dropped.
pub struct Watches {
    seen: Arc<Mutex<Seen>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watches {
    /// Starts, in every namespace of `namespaces`, the watches `start` makes (the step
    /// workloads and the flows of one engine: [`zen_flow_watches`], or Argo's), and waits until
    /// every watch has listed (so later objects arrive as live events).
    pub async fn start<W>(namespaces: &[String], start: W) -> anyhow::Result<Self>
    where
        W: Fn(&str, &Arc<Mutex<Seen>>) -> Vec<JoinHandle<()>>,
    {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let tasks = namespaces
            .iter()
            .flat_map(|namespace| start(namespace, &seen))
            .collect();
        let watches = Self { seen, tasks };
        // Each watch marks its kind synced at its first InitDone: with several namespaces
        // that is early by a little, so wait a moment more for the others.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let seen = watches.lock();
                if seen.jobs_synced && seen.flows_synced {
                    break;
                }
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "the watches on {namespaces:?} did not list within 30s: {:?}",
                        seen.errors
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if namespaces.len() > 1 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(watches)
    }

    /// What was seen so far (hold it briefly: the watches wait for it).
    pub fn lock(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// zen-flow's watches in `namespace`: the agent's Jobs and the JobFlows.
pub fn zen_flow_watches(
    client: &Client,
    namespace: &str,
    seen: &Arc<Mutex<Seen>>,
) -> [JoinHandle<()>; 2] {
    let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
    let jobs = watcher::watcher(
        Api::<Job>::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(&managed),
    );
    let flows = watcher::watcher(
        Api::<JobFlow>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
    );
    [
        tokio::spawn(follow(jobs, Arc::clone(seen), record_job, |seen| {
            seen.jobs_synced = true;
        })),
        tokio::spawn(follow(flows, Arc::clone(seen), record_flow, |seen| {
            seen.flows_synced = true;
        })),
    ]
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Feeds every object of `stream` to `record` with its time of arrival, calls `synced` once
/// the initial list is done, and retries errors with backoff.
pub(crate) async fn follow<K>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send,
    seen: Arc<Mutex<Seen>>,
    record: fn(&mut Seen, &K, Instant),
    synced: fn(&mut Seen),
) {
    let mut stream = std::pin::pin!(stream.default_backoff());
    while let Some(event) = stream.next().await {
        let now = Instant::now();
        let mut seen = lock(&seen);
        match event {
            Ok(Event::Apply(object) | Event::InitApply(object)) => record(&mut seen, &object, now),
            Ok(Event::InitDone) => synced(&mut seen),
            Ok(Event::Init | Event::Delete(_)) => {}
            Err(error) => seen.errors.push(error.to_string()),
        }
    }
}

fn record_job(seen: &mut Seen, job: &Job, now: Instant) {
    let labels = job.labels();
    let entry = seen.jobs.entry(job.name_any()).or_insert_with(|| JobSeen {
        flow: labels.get(labels::FLOW).cloned().unwrap_or_default(),
        step: labels.get(labels::STEP).cloned().unwrap_or_default(),
        added: now,
        succeeded: None,
        complete: None,
    });
    let complete = job_condition(job, "Complete").is_some();
    if entry.succeeded.is_none() && (complete || job_condition(job, "SuccessCriteriaMet").is_some())
    {
        entry.succeeded = Some(now);
    }
    if entry.complete.is_none() && complete {
        entry.complete = Some(now);
    }
}

fn record_flow(seen: &mut Seen, flow: &JobFlow, now: Instant) {
    let entry = seen
        .flows
        .entry(flow.name_any())
        .or_insert_with(|| FlowSeen::new(now));
    if flow.status != entry.status {
        entry.status_bytes = flow
            .status
            .as_ref()
            .and_then(|status| serde_json::to_vec(status).ok())
            .map_or(0, |json| json.len());
        entry.status_changes += 1;
        if without_uids(flow.status.as_ref()) == without_uids(entry.status.as_ref()) {
            entry.uid_only_changes += 1;
        }
        entry.status.clone_from(&flow.status);
    }
    entry.phase = phase(flow);
    entry.reason = format!("{}: {}", ready_reason(flow), ready_message(flow));
    if entry.finished.is_none() && entry.phase.is_some_and(FlowPhase::is_terminal) {
        entry.finished = Some(now);
    }
}

/// `status` with every `steps[].jobRef.uid` removed.
fn without_uids(status: Option<&JobFlowStatus>) -> Option<JobFlowStatus> {
    let mut status = status?.clone();
    for step in &mut status.steps {
        if let Some(job) = step.job_ref.as_mut() {
            job.uid = None;
        }
    }
    Some(status)
}

/// A process's resident memory, from `/proc/<pid>/status`, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it was ever resident (the kernel's own peak).
    pub hwm_kib: u64,
}

/// Reads the memory of process `pid`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_memory(&text).with_context(|| format!("no VmRSS/VmHWM in {path}"))
}

fn parse_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
    })
}

/// The CPU time (user + system) process `pid` used so far, in seconds: `utime + stime` of
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s (`CLK_TCK` is 100 on Linux).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&text)
        .map(ticks_to_seconds)
        .with_context(|| format!("no utime/stime in {path}"))
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command (which may hold spaces) in parentheses: state is field 3,
    // utime 14 and stime 15, so 11 and 12 after the state.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[allow(clippy::cast_precision_loss, reason = "clock ticks are far below 2^52")]
fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / 100.0
}

/// Samples a process's memory every `every` until dropped: the largest `VmRSS` seen and the
/// latest `VmHWM`.
pub struct MemorySampler {
    peak: Arc<Mutex<(Memory, u64)>>,
    task: JoinHandle<()>,
}

impl MemorySampler {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32, every: Duration) -> Self {
        let peak = Arc::new(Mutex::new((Memory::default(), 0)));
        let shared = Arc::clone(&peak);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                // The process may be gone at the very end; the last good sample stands.
                let Ok(now) = memory(pid) else { continue };
                let mut peak = shared.lock().unwrap_or_else(PoisonError::into_inner);
                peak.0.rss_kib = peak.0.rss_kib.max(now.rss_kib);
                peak.0.hwm_kib = now.hwm_kib;
                peak.1 += 1;
            }
        });
        Self { peak, task }
    }

    /// The largest `VmRSS` sampled, the latest `VmHWM`, and how many samples were taken.
    pub fn peak(&self) -> (Memory, u64) {
        *self.peak.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for MemorySampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_comes_from_the_status_file() {
        let status = "Name:\tjobflow-agent\nVmPeak:\t  900 kB\nVmHWM:\t   25000 kB\n\
                      VmRSS:\t   21000 kB\nThreads:\t4\n";
        assert_eq!(
            parse_memory(status),
            Some(Memory {
                rss_kib: 21000,
                hwm_kib: 25000
            })
        );
        assert_eq!(parse_memory("Name:\tx\n"), None);
        let stat = "42 (jobflow agent) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
        let me = memory(std::process::id()).unwrap();
        assert!(me.hwm_kib >= me.rss_kib && me.rss_kib > 0);
    }
}
