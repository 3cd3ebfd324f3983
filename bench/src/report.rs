//! The run's figures, computed from what was observed, printed as a table or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::observe::{JobSeen, Seen};
use crate::shape::{dependencies, step_name};
use crate::stats::{HistogramSummary, Percentiles};

/// Everything a load run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// What ran.
    pub setup: Setup,
    /// Wall time from the first flow created to the last flow seen Succeeded (or to the timeout).
    pub wall_seconds: f64,
    /// Flows finished per second of wall time.
    pub flows_per_second: f64,
    /// Flows finished per minute of wall time.
    pub flows_per_minute: f64,
    /// Per flow: the flow seen -> its first step workload (Job, or Argo pod) seen.
    pub time_to_first_job: Percentiles,
    /// Per flow: the size of its last status seen, as JSON. The values are bytes, not the
    /// milliseconds [`Percentiles`]' field names say.
    pub status_bytes: Percentiles,
    /// The controller processes measured (one agent, several shards, or Argo's controller).
    pub processes: Vec<ProcessFigures>,
    /// How many flows were seen Succeeded.
    pub succeeded: usize,
    /// The flows not Succeeded at the end: `name: phase (reason: message)`.
    pub not_succeeded: Vec<String>,
    /// How many step Jobs the watch saw (expected: flows x steps).
    pub jobs_seen: usize,
    /// The agent's API writes (`zen_flow_api_requests_total`) during the run.
    pub agent_writes: Writes,
    /// The API server's own count of writes to Jobs and JobFlows (every client; the metric has
    /// no user-agent label), when its `/metrics` could be read.
    pub apiserver_writes: Option<Vec<ApiserverWrites>>,
    /// The agent's memory.
    pub memory: MemoryReport,
    /// Latencies measured by the harness's watch.
    pub latency: Latencies,
    /// `zen_flow_reconciliation_duration_seconds` during the run.
    pub reconcile: Option<HistogramSummary>,
    /// `zen_flow_reconciliation_errors_total` during the run, by error.
    pub reconcile_errors: BTreeMap<String, f64>,
    /// Lines logged by the agent at WARN and at ERROR.
    pub agent_log_warn_error: (usize, usize),
    /// Errors of the harness's watches (each retried).
    pub watch_errors: Vec<String>,
}

/// What ran, and on what.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Setup {
    /// Flows applied.
    pub flows: usize,
    /// Steps per flow.
    pub steps: usize,
    /// Dependency edges per flow.
    pub edges_per_flow: usize,
    /// Steps on the longest chain of a flow.
    pub critical_path_steps: usize,
    /// How long each pod runs.
    pub pod_duration_ms: u64,
    /// The namespace.
    pub namespace: String,
    /// The agent binary and its extra arguments.
    pub agent: String,
    /// The agent's log file.
    pub agent_log: String,
    /// `/proc/loadavg` before the run.
    pub load_before: String,
    /// `/proc/loadavg` after the run.
    pub load_after: String,
    /// The named scenario, if one was given.
    pub scenario: Option<crate::scenario::Scenario>,
    /// The engine driven.
    pub engine: crate::engine::Engine,
    /// How the flows were created.
    pub arrival: Option<crate::scenario::Arrival>,
    /// Every namespace of the run (one per agent shard).
    pub namespaces: Vec<String>,
    /// Wall clock (Unix seconds) when the first flow was created: the start of the audit window.
    pub started_unix: f64,
    /// Wall clock (Unix seconds) at the end of the settle time: the end of the audit window.
    pub ended_unix: f64,
}

/// One controller process's resources over the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessFigures {
    /// What it is (`jobflow-agent <namespace>`, `workflow-controller`).
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// `VmRSS` before the first flow, KiB.
    pub idle_rss_kib: u64,
    /// The larger of `VmHWM` at the end and the largest sampled `VmRSS`, KiB.
    pub peak_rss_kib: u64,
    /// CPU seconds (user + system) used during the run, from `/proc/<pid>/stat`.
    pub cpu_seconds: f64,
}

/// The agent's API writes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Writes {
    /// By operation and resource.
    pub rows: Vec<WriteRow>,
    /// All of them.
    pub total: f64,
    /// `total / (flows * steps)`.
    pub per_step: f64,
    /// Writes made after the last flow was seen Succeeded (during the settle time).
    pub after_finish: f64,
    /// JobFlow status changes the harness's watch saw (each is one status write).
    pub status_changes_seen: usize,
    /// Of those, the ones that only filled in `steps[].jobRef.uid`.
    pub uid_only_status_changes: usize,
}

/// The agent's writes of one operation on one resource.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WriteRow {
    /// `apply`, `patch_status`, `create_event`, `delete`...
    pub operation: String,
    /// `jobs`, `jobflows`, `events`...
    pub resource: String,
    /// Requests.
    pub count: f64,
}

/// One row of the API server's `apiserver_request_total`, grown during the run.
#[derive(Clone, Debug, Serialize)]
pub struct ApiserverWrites {
    /// `APPLY`, `POST`, `PUT`, `PATCH`, `DELETE`...
    pub verb: String,
    /// `jobs` or `jobflows`.
    pub resource: String,
    /// `status` or empty.
    pub subresource: String,
    /// The HTTP code.
    pub code: String,
    /// Requests.
    pub count: f64,
}

/// The agent's memory, in KiB.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemoryReport {
    /// `VmRSS` once ready, before any flow.
    pub idle_rss_kib: u64,
    /// `VmHWM` at the end: the kernel's peak.
    pub peak_hwm_kib: u64,
    /// The largest `VmRSS` sampled.
    pub max_sampled_rss_kib: u64,
    /// `VmRSS` at the end.
    pub final_rss_kib: u64,
    /// Samples taken.
    pub samples: u64,
}

/// Latencies, as the harness's watch saw them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latencies {
    /// Per dependency edge: the dependency's Job seen `Complete` -> the dependent's Job seen.
    pub complete_to_dependent: Percentiles,
    /// Per dependency edge: the dependency's Job seen succeeded (`SuccessCriteriaMet`, which the
    /// agent acts on, or `Complete`) -> the dependent's Job seen.
    pub succeeded_to_dependent: Percentiles,
    /// Per step with dependencies: its last dependency seen succeeded -> its Job seen. This is
    /// the agent's own reaction time; an edge's figure also holds the wait for the other
    /// dependencies.
    pub last_succeeded_to_dependent: Percentiles,
    /// Per step with dependencies: its last dependency seen `Complete` -> its Job seen.
    pub last_complete_to_dependent: Percentiles,
    /// Per Job: seen -> seen succeeded (scheduler, kwok, the pod's run and the Job
    /// controller: the cluster's part of a step).
    pub job_added_to_succeeded: Percentiles,
    /// Per Job: seen succeeded -> seen `Complete` (the Job controller's and kwok's part).
    pub succeeded_to_complete: Percentiles,
    /// Per flow: the flow seen -> each root step's Job seen.
    pub flow_to_root_job: Percentiles,
    /// Per flow: the flow seen -> the flow seen Succeeded.
    pub flow_duration: Percentiles,
    /// Dependency edges whose ends were not both seen.
    pub missing_edges: usize,
}

/// Milliseconds from `from` to `to`, negative when `to` came first.
fn millis(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(after) => after.as_secs_f64() * 1000.0,
        None => -(from.duration_since(to).as_secs_f64() * 1000.0),
    }
}

/// Per-edge and per-step latencies from a dependency's end (as `end` reads it) to its
/// dependent's Job; `None` when an end was not seen.
#[derive(Default)]
struct EdgeLatencies {
    edges: Vec<f64>,
    last: Vec<f64>,
    missing: usize,
}

impl EdgeLatencies {
    fn add(&mut self, ends: &[Option<Instant>], dependent: Instant) {
        let seen: Vec<Instant> = ends.iter().flatten().copied().collect();
        self.missing += ends.len() - seen.len();
        self.edges
            .extend(seen.iter().map(|&end| millis(end, dependent)));
        if seen.len() == ends.len()
            && let Some(&latest) = seen.iter().max()
        {
            self.last.push(millis(latest, dependent));
        }
    }
}

/// The latencies of `flows`, each of `steps` steps, from what the watches saw.
pub fn latencies(seen: &Seen, flows: &[String], steps: usize) -> Latencies {
    // The first Job of each (flow, step): retries would add more, the first is the one created
    // when the step became ready.
    let mut first: BTreeMap<(&str, &str), &JobSeen> = BTreeMap::new();
    for job in seen.jobs.values() {
        first
            .entry((job.flow.as_str(), job.step.as_str()))
            .and_modify(|kept| {
                if job.added < kept.added {
                    *kept = job;
                }
            })
            .or_insert(job);
    }
    let deps = dependencies(steps);
    let names: Vec<String> = (0..steps).map(|i| step_name(i, steps)).collect();
    let (mut by_success, mut by_complete) = (EdgeLatencies::default(), EdgeLatencies::default());
    let (mut roots, mut durations) = (Vec::new(), Vec::new());
    let (mut runs, mut gaps) = (Vec::new(), Vec::new());
    let mut missing_edges = 0;
    for flow in flows {
        let job = |step: usize| first.get(&(flow.as_str(), names[step].as_str()));
        let flow_seen = seen.flows.get(flow);
        if let Some(flow_seen) = flow_seen
            && let Some(finished) = flow_seen.finished
        {
            durations.push(millis(flow_seen.added, finished));
        }
        for (step, step_deps) in deps.iter().enumerate() {
            let Some(dependent) = job(step) else {
                missing_edges += step_deps.len();
                continue;
            };
            if let Some(succeeded) = dependent.succeeded {
                runs.push(millis(dependent.added, succeeded));
                if let Some(complete) = dependent.complete {
                    gaps.push(millis(succeeded, complete));
                }
            }
            if step_deps.is_empty() {
                if let Some(flow_seen) = flow_seen {
                    roots.push(millis(flow_seen.added, dependent.added));
                }
                continue;
            }
            let ends = |end: fn(&JobSeen) -> Option<Instant>| -> Vec<Option<Instant>> {
                step_deps
                    .iter()
                    .map(|&d| job(d).and_then(|j| end(j)))
                    .collect()
            };
            by_success.add(&ends(|j| j.succeeded), dependent.added);
            by_complete.add(&ends(|j| j.complete), dependent.added);
        }
    }
    Latencies {
        complete_to_dependent: Percentiles::of(by_complete.edges),
        succeeded_to_dependent: Percentiles::of(by_success.edges),
        last_succeeded_to_dependent: Percentiles::of(by_success.last),
        last_complete_to_dependent: Percentiles::of(by_complete.last),
        job_added_to_succeeded: Percentiles::of(runs),
        succeeded_to_complete: Percentiles::of(gaps),
        flow_to_root_job: Percentiles::of(roots),
        flow_duration: Percentiles::of(durations),
        missing_edges: missing_edges + by_complete.missing,
    }
}

/// Per flow of `flows`: from the flow seen to its first step workload seen.
pub fn first_jobs(seen: &Seen, flows: &[String]) -> Percentiles {
    let mut first: BTreeMap<&str, Instant> = BTreeMap::new();
    for job in seen.jobs.values() {
        first
            .entry(job.flow.as_str())
            .and_modify(|at| *at = (*at).min(job.added))
            .or_insert(job.added);
    }
    Percentiles::of(
        flows
            .iter()
            .filter_map(|flow| {
                Some(millis(
                    seen.flows.get(flow)?.added,
                    *first.get(flow.as_str())?,
                ))
            })
            .collect(),
    )
}

/// Per flow of `flows`: the size of its last status seen, in bytes.
pub fn status_sizes(seen: &Seen, flows: &[String]) -> Percentiles {
    Percentiles::of(
        flows
            .iter()
            .filter_map(|flow| Some(to_f64(seen.flows.get(flow)?.status_bytes)))
            .collect(),
    )
}

/// Seconds as a float, for the report.
pub fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

impl Report {
    /// The report as a readable table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let s = &self.setup;
        let _ = writeln!(out, "jobflow-agent load run");
        let _ = writeln!(
            out,
            "  {} flows x {} steps ({} edges/flow, critical path {} steps), pods run {} ms",
            s.flows, s.steps, s.edges_per_flow, s.critical_path_steps, s.pod_duration_ms
        );
        let _ = writeln!(out, "  namespace {}, agent {}", s.namespace, s.agent);
        let _ = writeln!(out, "  agent log {}", s.agent_log);
        let _ = writeln!(out, "  load average before: {}", s.load_before);
        let _ = writeln!(out, "  load average after:  {}", s.load_after);
        let _ = writeln!(out, "\nthroughput");
        let _ = writeln!(out, "  wall time            {:>10.2} s", self.wall_seconds);
        let _ = writeln!(
            out,
            "  flows/s              {:>10.3}  ({:.1} flows/min)",
            self.flows_per_second, self.flows_per_minute
        );
        let f = &self.time_to_first_job;
        let _ = writeln!(
            out,
            "  time to first Job    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} flows)",
            f.p50_ms, f.p99_ms, f.max_ms, f.count
        );
        let b = &self.status_bytes;
        let _ = writeln!(
            out,
            "  status bytes/flow    p50 {:.0}, max {:.0}",
            b.p50_ms, b.max_ms
        );
        for p in &self.processes {
            let _ = writeln!(
                out,
                "  process {} (pid {}): peak RSS {:.1} MiB, idle {:.1} MiB, CPU {:.2} s",
                p.name,
                p.pid,
                kib_to_mib(p.peak_rss_kib),
                kib_to_mib(p.idle_rss_kib),
                p.cpu_seconds
            );
        }
        let _ = writeln!(
            out,
            "  succeeded            {:>10} / {}",
            self.succeeded, s.flows
        );
        let _ = writeln!(
            out,
            "  step Jobs seen       {:>10} / {}",
            self.jobs_seen,
            s.flows * s.steps
        );
        for problem in &self.not_succeeded {
            let _ = writeln!(out, "  NOT SUCCEEDED: {problem}");
        }
        self.render_writes(&mut out);
        self.render_memory_and_latency(&mut out);
        if let Some(r) = &self.reconcile {
            let _ = writeln!(
                out,
                "\nreconcile duration (agent histogram; quantiles interpolated in buckets)"
            );
            let _ = writeln!(
                out,
                "  count {:.0}, mean {:.2} ms, p50 ~{:.2} ms, p90 ~{:.2} ms, p99 ~{:.2} ms",
                r.count, r.mean_ms, r.p50_ms, r.p90_ms, r.p99_ms
            );
        }
        let _ = writeln!(out, "\noddities");
        let _ = writeln!(
            out,
            "  reconcile errors {:?}; agent log lines WARN {} ERROR {}; watch errors {}",
            self.reconcile_errors,
            self.agent_log_warn_error.0,
            self.agent_log_warn_error.1,
            self.watch_errors.len()
        );
        out
    }

    fn render_memory_and_latency(&self, out: &mut String) {
        let m = &self.memory;
        let _ = writeln!(out, "\nagent memory (/proc/<pid>/status)");
        let mib = |kib: u64| format!("{:>10.1} MiB", kib_to_mib(kib));
        let _ = writeln!(out, "  idle VmRSS           {}", mib(m.idle_rss_kib));
        let _ = writeln!(out, "  peak VmHWM           {}", mib(m.peak_hwm_kib));
        let _ = writeln!(
            out,
            "  max sampled VmRSS    {} ({} samples, 200 ms apart)",
            mib(m.max_sampled_rss_kib),
            m.samples
        );
        let _ = writeln!(out, "  final VmRSS          {}", mib(m.final_rss_kib));
        let l = &self.latency;
        let _ = writeln!(
            out,
            "\nlatency (ms, harness watch)          count      p50      p90      p99      max"
        );
        let _ = writeln!(
            out,
            "  (succeeded = SuccessCriteriaMet or Complete seen, whichever first)"
        );
        for (name, p) in [
            ("edge: dep Complete -> Job ADDED", &l.complete_to_dependent),
            (
                "edge: dep succeeded -> Job ADDED",
                &l.succeeded_to_dependent,
            ),
            (
                "step: last dep Complete -> ADDED",
                &l.last_complete_to_dependent,
            ),
            (
                "step: last dep succeeded -> ADDED",
                &l.last_succeeded_to_dependent,
            ),
            ("Job ADDED -> succeeded", &l.job_added_to_succeeded),
            ("Job succeeded -> Complete", &l.succeeded_to_complete),
            ("flow ADDED -> root Job ADDED", &l.flow_to_root_job),
            ("flow ADDED -> flow Succeeded", &l.flow_duration),
        ] {
            let _ = writeln!(
                out,
                "  {name:<34} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
            );
        }
        if l.missing_edges > 0 {
            let _ = writeln!(out, "  edges with an end not seen: {}", l.missing_edges);
        }
    }

    fn render_writes(&self, out: &mut String) {
        let w = &self.agent_writes;
        let steps = self.setup.flows * self.setup.steps;
        let _ = writeln!(
            out,
            "\nagent API writes (zen_flow_api_requests_total)    count   per step"
        );
        for row in &w.rows {
            let _ = writeln!(
                out,
                "  {:<46} {:>6.0} {:>10.3}",
                format!("{} {}", row.operation, row.resource),
                row.count,
                per(row.count, steps)
            );
        }
        let _ = writeln!(
            out,
            "  {:<46} {:>6.0} {:>10.3}",
            "total", w.total, w.per_step
        );
        let _ = writeln!(
            out,
            "  of which after the last flow Succeeded: {:.0}",
            w.after_finish
        );
        let _ = writeln!(
            out,
            "  JobFlow status changes seen by the watch: {} ({:.3} per step), of which {} only \
             filled in steps[].jobRef.uid",
            w.status_changes_seen,
            per(to_f64(w.status_changes_seen), steps),
            w.uid_only_status_changes
        );
        if let Some(rows) = &self.apiserver_writes {
            let _ = writeln!(
                out,
                "\nAPI server writes to Jobs/JobFlows (apiserver_request_total, all clients)"
            );
            for row in rows {
                let resource = if row.subresource.is_empty() {
                    row.resource.clone()
                } else {
                    format!("{}/{}", row.resource, row.subresource)
                };
                let _ = writeln!(
                    out,
                    "  {:<46} {:>6.0}",
                    format!("{} {resource} {}", row.verb, row.code),
                    row.count
                );
            }
        }
    }
}

/// `count` as a float.
pub fn to_f64(count: usize) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let count = count as f64;
    count
}

/// `count / steps`, 0 without steps.
pub fn per(count: f64, steps: usize) -> f64 {
    let steps = to_f64(steps);
    if steps > 0.0 { count / steps } else { 0.0 }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "memory sizes are far below 2^52 KiB"
)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::FlowSeen;
    use jobflow::api::FlowPhase;

    fn job(seen: &mut Seen, flow: &str, step: &str, added: Instant, succeeded: Option<Instant>) {
        seen.jobs.insert(
            format!("{flow}-{step}-1"),
            JobSeen {
                flow: flow.to_owned(),
                step: step.to_owned(),
                added,
                succeeded,
                complete: succeeded.map(|at| at + Duration::from_millis(500)),
            },
        );
    }

    #[test]
    fn latencies_follow_the_dependency_edges() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut seen = Seen::default();
        seen.flows.insert(
            "f".to_owned(),
            FlowSeen {
                added: t0,
                phase: Some(FlowPhase::Succeeded),
                finished: Some(at(5000)),
                reason: String::new(),
                status: None,
                status_changes: 0,
                uid_only_changes: 0,
                status_bytes: 10,
            },
        );
        // 3 steps: s00 and s01 roots, s02 joins both.
        job(&mut seen, "f", "s00", at(10), Some(at(1000)));
        job(&mut seen, "f", "s01", at(20), Some(at(2000)));
        job(&mut seen, "f", "s02", at(2050), Some(at(4000)));
        let l = latencies(&seen, &["f".to_owned()], 3);
        assert_eq!(l.succeeded_to_dependent.count, 2);
        assert!((l.succeeded_to_dependent.max_ms - 1050.0).abs() < 1e-6);
        assert!((l.succeeded_to_dependent.p50_ms - 50.0).abs() < 1e-6);
        assert_eq!(l.last_succeeded_to_dependent.count, 1);
        assert!((l.last_succeeded_to_dependent.max_ms - 50.0).abs() < 1e-6);
        // s02 was created before s01's Complete was seen.
        assert!((l.last_complete_to_dependent.max_ms + 450.0).abs() < 1e-6);
        assert!((l.succeeded_to_complete.p50_ms - 500.0).abs() < 1e-6);
        assert!((l.flow_to_root_job.max_ms - 20.0).abs() < 1e-6);
        assert!((l.flow_duration.p50_ms - 5000.0).abs() < 1e-6);
        assert_eq!(l.missing_edges, 0);
        let first = first_jobs(&seen, &["f".to_owned()]);
        assert!((first.max_ms - 10.0).abs() < 1e-6);
        assert!((status_sizes(&seen, &["f".to_owned()]).max_ms - 10.0).abs() < 1e-6);
        let none = latencies(&seen, &["g".to_owned()], 3);
        assert_eq!(none.missing_edges, 2);
    }

    #[test]
    fn the_table_names_every_section() {
        let text = Report::default().render();
        for section in ["throughput", "agent API writes", "agent memory", "latency"] {
            assert!(text.contains(section), "{text}");
        }
    }
}
