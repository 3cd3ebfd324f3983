//! A small simulated world for planner tests: a flow, the Jobs that exist, and a clock.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::{CompiledFlow, Observed, PeerFlow, Plan, PodTrouble, Refusal, plan};
use crate::api::{JobFlow, JobFlowSpec, Step, StepStatus};

/// The simulated clock's start.
pub fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

/// A Job step running busybox.
pub fn job_step(name: &str, dependencies: &[&str]) -> Step {
    Step {
        name: name.into(),
        dependencies: dependencies.iter().map(|d| (*d).to_owned()).collect(),
        template: Some(serde_json::json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {"template": {"spec": {
                "containers": [{"name": "main", "image": "busybox:latest", "args": ["echo", "{{step.name}}"]}],
                "restartPolicy": "Never"
            }}}
        })),
        ..Step::default()
    }
}

/// A flow named `etl` in `default` with the given steps, as read from the API server.
pub fn flow(steps: Vec<Step>) -> JobFlow {
    let mut flow = JobFlow::new(
        "etl",
        JobFlowSpec {
            steps,
            ..JobFlowSpec::default()
        },
    );
    flow.metadata = ObjectMeta {
        name: Some("etl".into()),
        namespace: Some("default".into()),
        uid: Some("0b9f6c1e-flow".into()),
        generation: Some(1),
        creation_timestamp: Some(Time(t(0))),
        ..ObjectMeta::default()
    };
    flow
}

/// The pod spec of a planned Job.
pub fn pod_spec(job: &Job) -> &k8s_openapi::api::core::v1::PodSpec {
    job.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

/// The readable part of a Job name, without the hash: `etl-a-1` for `etl-a-1-k2j4xz`.
pub fn short(name: &str) -> &str {
    name.rsplit_once('-').map_or(name, |(readable, _)| readable)
}

/// Whether `job` is named `name`, in full or by its short name.
fn is_named(job: &Job, name: &str) -> bool {
    job.metadata
        .name
        .as_deref()
        .is_some_and(|full| full == name || short(full) == name)
}

/// A flow, the Jobs that exist for it, and the pods' termination messages.
pub struct World {
    pub flow: JobFlow,
    pub jobs: Vec<Job>,
    pub messages: BTreeMap<String, String>,
    /// Why a Job's pod is stuck, by Job name (full or short).
    pub troubles: BTreeMap<String, PodTrouble>,
    /// How a Job's failed pod failed, by Job name (full or short).
    pub failures: BTreeMap<String, String>,
    pub peers: Vec<PeerFlow>,
    /// Objects the API server refused, by name (full or short).
    pub refused: BTreeMap<String, Refusal>,
    /// Every Job name ever created, in order.
    pub created: Vec<String>,
}

impl World {
    pub fn new(flow: JobFlow) -> Self {
        Self {
            flow,
            jobs: Vec::new(),
            messages: BTreeMap::new(),
            troubles: BTreeMap::new(),
            failures: BTreeMap::new(),
            peers: Vec::new(),
            refused: BTreeMap::new(),
            created: Vec::new(),
        }
    }

    /// Plans at `now` against what the world holds.
    pub fn plan(&self, now: Timestamp) -> Plan {
        let compiled = CompiledFlow::compile(&self.flow);
        let observed = Observed {
            jobs: self.jobs.iter().collect(),
            termination_messages: self.by_full_name(&self.messages),
            pod_trouble: self.by_full_name(&self.troubles),
            pod_failures: self.by_full_name(&self.failures),
            peers: self.peers.clone(),
            refused: self.refused.clone(),
        };
        plan(&self.flow, compiled.as_ref(), &observed, now)
    }

    /// `by_job` keyed by full Job names (tests may key it by a Job's short name, `etl-a-1`).
    fn by_full_name<T: Clone>(&self, by_job: &BTreeMap<String, T>) -> BTreeMap<String, T> {
        by_job
            .iter()
            .map(|(name, value)| {
                let full = self.job(name).and_then(|job| job.metadata.name.clone());
                (full.unwrap_or_else(|| name.clone()), value.clone())
            })
            .collect()
    }

    /// Carries a plan out the way the agent and the API server would (refused Jobs are not
    /// created).
    pub fn apply(&mut self, plan: &Plan, now: Timestamp) {
        for job in &plan.create_jobs {
            let name = job.metadata.name.clone().unwrap();
            if self.refused.contains_key(&name) || self.refused.contains_key(short(&name)) {
                continue;
            }
            if self.job(&name).is_none() {
                // What the API server stores: the manifest the agent applies.
                let mut job: Job = serde_json::from_value(job.manifest().clone()).unwrap();
                job.metadata.uid = Some(format!("uid-{name}"));
                job.metadata.creation_timestamp = Some(Time(now));
                self.jobs.push(job);
                self.created.push(name);
            }
        }
        for deletion in &plan.delete_jobs {
            self.jobs
                .retain(|job| job.metadata.name.as_deref() != Some(deletion.name.as_str()));
        }
        self.flow.status = Some(plan.status.clone());
    }

    /// Plans at `now` and carries the plan out.
    pub fn step_at(&mut self, now: Timestamp) -> Plan {
        let plan = self.plan(now);
        self.apply(&plan, now);
        plan
    }

    /// The Job named `name`, in full or by its short name (`etl-a-1`).
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|job| is_named(job, name))
    }

    /// Removes Job `name` (in full or by its short name), as someone deleting it would.
    pub fn remove_job(&mut self, name: &str) {
        self.jobs.retain(|job| !is_named(job, name));
    }

    /// Gives Job `name` the Job controller's verdict.
    pub fn finish(&mut self, name: &str, succeeded: bool, now: Timestamp) {
        let job = self
            .jobs
            .iter_mut()
            .find(|job| is_named(job, name))
            .unwrap();
        let kind = if succeeded { "Complete" } else { "Failed" };
        job.status = Some(JobStatus {
            conditions: Some(vec![JobCondition {
                type_: kind.into(),
                status: "True".into(),
                reason: (!succeeded).then(|| "BackoffLimitExceeded".into()),
                message: (!succeeded).then(|| "Job has reached the specified backoff limit".into()),
                ..JobCondition::default()
            }]),
            completion_time: succeeded.then_some(Time(now)),
            ..JobStatus::default()
        });
    }

    /// Names of Jobs without a verdict.
    pub fn running_jobs(&self) -> Vec<String> {
        self.jobs
            .iter()
            .filter(|job| job.status.is_none())
            .map(|job| job.metadata.name.clone().unwrap())
            .collect()
    }

    pub fn step(&self, name: &str) -> &StepStatus {
        let status = self.flow.status.as_ref().unwrap();
        status.steps.iter().find(|step| step.name == name).unwrap()
    }
}
