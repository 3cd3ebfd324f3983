//! JobFlow builders and status readers for tests, so a test reads like the scenario it tests:
//!
//! ```no_run
//! use std::time::Duration;
//! use jobflow_tests::FakePod;
//! use jobflow_tests::flows::{FlowBuilder, StepBuilder};
//!
//! let flow = FlowBuilder::new("etl")
//!     .step(StepBuilder::new("extract", &FakePod::succeed().running_for(Duration::from_secs(2))))
//!     .step(StepBuilder::new("load", &FakePod::fail(3, "disk full")).after(&["extract"]))
//!     .fail_fast(false)
//!     .build();
//! ```
//!
//! Every step's template is a Job whose pod kwok acts out as its [`FakePod`] says (the
//! annotations go on `spec.template.metadata.annotations`), with `backoffLimit: 0` so a failing
//! pod fails its Job at once (the Job controller's own pod retries would take 10 s and more).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use jobflow::api::{
    Backoff, BackoffType, Condition, FlowPhase, JobFlow, JobFlowSpec, Parameter, ParameterSource,
    RetryPolicy, Step, StepOutputs, StepPhase, StepStatus,
};
use jobflow::labels;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PodSpec};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

use crate::wait::{POLL, wait_for, wait_for_object};
use crate::{FakePod, fake_job};

/// The real node `tests/cluster/up.sh` registers.
pub const REAL_NODE: &str = "zen-flow-real";
/// The taint that keeps everything but our real workloads off the real node.
pub const REAL_NODE_TAINT: &str = "zen-flow.test/real-node";
/// The test image with busybox, as `deploy/images/build.sh` names it.
pub const BUSYBOX: &str = "busybox:1.35.0";

/// The image of every fake container (never pulled: kwok runs nothing).
pub const FAKE_IMAGE: &str = "zen-flow.test/fake:latest";

/// Builds a [`Step`] whose Job runs one fake pod.
#[derive(Clone, Debug)]
#[must_use]
pub struct StepBuilder {
    step: Step,
    job: Job,
}

impl StepBuilder {
    /// A Job step named `name` whose pod (container `main`) behaves as `pod` says; the Job has
    /// `backoffLimit: 0` and restart policy Never.
    pub fn new(name: &str, pod: &FakePod) -> Self {
        let mut job = fake_job(name, pod);
        // The agent names the Job; a name in the template would only be overwritten.
        job.metadata.name = None;
        Self {
            step: Step {
                name: name.to_owned(),
                ..Step::default()
            },
            job,
        }
    }

    /// A Job step named `name` whose pod runs `script` with `sh -c` in the real busybox image
    /// ([`BUSYBOX`]) on the real node `zen-flow-real` (it tolerates the node's
    /// taint and selects it); `backoffLimit: 0`, restart policy Never, as [`StepBuilder::new`].
    pub fn real(name: &str, script: &str) -> Self {
        use k8s_openapi::api::core::v1::Toleration;
        let mut real = Self::new(name, &FakePod::succeed());
        // No kwok annotations: a real kubelet runs this pod.
        if let Some(spec) = real.job.spec.as_mut() {
            spec.template.metadata = None;
        }
        real.pod_spec(|pod| {
            if let Some(main) = pod.containers.first_mut() {
                main.image = Some(BUSYBOX.to_owned());
                main.image_pull_policy = Some("IfNotPresent".to_owned());
                main.command = Some(vec!["sh".to_owned(), "-c".to_owned()]);
                main.args = Some(vec![script.to_owned()]);
            }
            pod.node_selector =
                Some([("kubernetes.io/hostname".to_owned(), REAL_NODE.to_owned())].into());
            pod.tolerations = Some(vec![Toleration {
                key: Some(REAL_NODE_TAINT.to_owned()),
                operator: Some("Exists".to_owned()),
                effect: Some("NoSchedule".to_owned()),
                ..Toleration::default()
            }]);
        })
    }

    /// Depends on `steps` (added to any dependencies already set).
    pub fn after(mut self, steps: &[&str]) -> Self {
        self.step
            .dependencies
            .extend(steps.iter().map(|step| (*step).to_owned()));
        self
    }

    /// Runs only when the CEL expression `when` is true (else Skipped, reason WhenFalse).
    pub fn when(mut self, when: &str) -> Self {
        self.step.when = Some(when.to_owned());
        self
    }

    /// A failure of this step blocks neither its dependents nor the flow.
    pub fn continue_on_failure(mut self) -> Self {
        self.step.continue_on_failure = true;
        self
    }

    /// Up to `limit` new attempts after a failure, with no wait in between.
    pub fn retries(mut self, limit: i32) -> Self {
        self.step.retry_policy = Some(RetryPolicy {
            limit,
            backoff: None,
        });
        self
    }

    /// Up to `limit` new attempts after a failure, each after a fixed `backoff` (a duration such
    /// as `"3s"`).
    pub fn retries_with_fixed_backoff(mut self, limit: i32, backoff: &str) -> Self {
        self.step.retry_policy = Some(RetryPolicy {
            limit,
            backoff: Some(Backoff {
                backoff_type: BackoffType::Fixed,
                duration: backoff.to_owned(),
                factor: None,
            }),
        });
        self
    }

    /// Sets the retry policy as given.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.step.retry_policy = Some(policy);
        self
    }

    /// Each attempt may run `seconds`; then its Job is deleted and the attempt fails (Timeout).
    pub fn timeout_seconds(mut self, seconds: i64) -> Self {
        self.step.timeout_seconds = Some(seconds);
        self
    }

    /// The container's args; `{{...}}` references (e.g. `{{steps.a.outputs.rows}}`) are
    /// substituted by the agent.
    pub fn args(mut self, args: &[&str]) -> Self {
        if let Some(container) = self
            .job
            .spec
            .as_mut()
            .and_then(|spec| spec.template.spec.as_mut())
            .and_then(|pod| pod.containers.first_mut())
        {
            container.args = Some(args.iter().map(|arg| (*arg).to_owned()).collect());
        }
        self
    }

    /// Declares output parameter `name`, read with `json_path` (e.g. `".rows"`) from the
    /// succeeded pod's termination message (see [`FakePod::with_output`]).
    pub fn output(mut self, name: &str, json_path: &str) -> Self {
        self.step
            .outputs
            .get_or_insert_with(StepOutputs::default)
            .parameters
            .push(Parameter {
                name: name.to_owned(),
                value: None,
                value_from: Some(ParameterSource {
                    json_path: Some(json_path.to_owned()),
                    ..ParameterSource::default()
                }),
            });
        self
    }

    /// The Job's `spec.backoffLimit` (default 0 here): pod retries by the Job controller.
    pub fn job_backoff_limit(mut self, limit: i32) -> Self {
        if let Some(spec) = self.job.spec.as_mut() {
            spec.backoff_limit = Some(limit);
        }
        self
    }

    /// Changes the pod spec of the step's Job (e.g. a `nodeSelector`).
    pub fn pod_spec(mut self, change: impl FnOnce(&mut PodSpec)) -> Self {
        if let Some(pod) = self
            .job
            .spec
            .as_mut()
            .and_then(|spec| spec.template.spec.as_mut())
        {
            change(pod);
        }
        self
    }

    /// Changes the step in ways the builder does not cover.
    pub fn with(mut self, change: impl FnOnce(&mut Step)) -> Self {
        change(&mut self.step);
        self
    }

    /// The step, its template the Job as JSON (`apiVersion`, `kind` and `spec`).
    pub fn build(self) -> Step {
        let mut template = serde_json::to_value(&self.job).unwrap_or_default();
        if let Some(object) = template.as_object_mut() {
            object.insert("apiVersion".to_owned(), "batch/v1".into());
            object.insert("kind".to_owned(), "Job".into());
            object.remove("metadata");
            object.remove("status");
        }
        Step {
            template: Some(template),
            ..self.step
        }
    }
}

impl From<StepBuilder> for Step {
    fn from(builder: StepBuilder) -> Self {
        builder.build()
    }
}

/// Builds a [`JobFlow`].
#[derive(Clone, Debug)]
#[must_use]
pub struct FlowBuilder {
    flow: JobFlow,
}

impl FlowBuilder {
    /// A flow named `name` with no steps yet and the default execution policy.
    pub fn new(name: &str) -> Self {
        Self {
            flow: JobFlow::new(
                name,
                JobFlowSpec {
                    steps: Vec::new(),
                    ..JobFlowSpec::default()
                },
            ),
        }
    }

    /// Adds a regular step.
    pub fn step(mut self, step: impl Into<Step>) -> Self {
        self.flow.spec.steps.push(step.into());
        self
    }

    /// Adds a finally step (runs once every regular step ended; `when` may read `flow.phase`).
    pub fn finally(mut self, step: impl Into<Step>) -> Self {
        self.flow.spec.finally.push(step.into());
        self
    }

    /// At most `cap` steps run at once.
    pub fn parallelism(mut self, cap: i32) -> Self {
        self.flow.spec.execution_policy.parallelism = Some(cap);
        self
    }

    /// Whether a blocking failure stops new steps from starting (default true).
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.flow.spec.execution_policy.fail_fast = fail_fast;
        self
    }

    /// The most retries across all steps (`executionPolicy.backoffLimit`).
    pub fn backoff_limit(mut self, limit: i32) -> Self {
        self.flow.spec.execution_policy.backoff_limit = limit;
        self
    }

    /// The flow fails `seconds` after it started (`executionPolicy.activeDeadlineSeconds`).
    pub fn active_deadline_seconds(mut self, seconds: i64) -> Self {
        self.flow.spec.execution_policy.active_deadline_seconds = Some(seconds);
        self
    }

    /// The flow is deleted `seconds` after it finished.
    pub fn ttl_seconds_after_finished(mut self, seconds: i64) -> Self {
        self.flow.spec.execution_policy.ttl_seconds_after_finished = seconds;
        self
    }

    /// Changes the flow in ways the builder does not cover.
    pub fn with(mut self, change: impl FnOnce(&mut JobFlow)) -> Self {
        change(&mut self.flow);
        self
    }

    /// The flow.
    pub fn build(self) -> JobFlow {
        self.flow
    }
}

/// The flow's phase, if the agent wrote one.
pub fn phase(flow: &JobFlow) -> Option<FlowPhase> {
    flow.status.as_ref()?.phase
}

/// The flow's Ready condition, if any.
pub fn ready_condition(flow: &JobFlow) -> Option<&Condition> {
    flow.status
        .as_ref()?
        .conditions
        .iter()
        .find(|condition| condition.type_ == "Ready")
}

/// The Ready condition's reason, or `""`.
pub fn ready_reason(flow: &JobFlow) -> &str {
    ready_condition(flow).map_or("", |condition| condition.reason.as_str())
}

/// The Ready condition's message, or `""`.
pub fn ready_message(flow: &JobFlow) -> &str {
    ready_condition(flow).map_or("", |condition| condition.message.as_str())
}

/// The status of step `name`, failing when the flow has none.
pub fn step_status<'a>(flow: &'a JobFlow, name: &str) -> anyhow::Result<&'a StepStatus> {
    flow.status
        .as_ref()
        .and_then(|status| status.steps.iter().find(|step| step.name == name))
        .with_context(|| {
            format!(
                "flow {} has no status for step {name}: {:?}",
                flow.name_any(),
                flow.status
            )
        })
}

/// The phase and reason of step `name`, e.g. `(Skipped, Some("WhenFalse"))`.
pub fn step_phase(flow: &JobFlow, name: &str) -> anyhow::Result<(StepPhase, Option<String>)> {
    let step = step_status(flow, name)?;
    Ok((step.phase, step.reason.clone()))
}

/// Waits until the flow `name` satisfies `done` (an `Err` from it ends the wait at once).
pub async fn wait_for_flow(
    flows: &Api<JobFlow>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl FnMut(&JobFlow) -> anyhow::Result<bool>,
) -> anyhow::Result<JobFlow> {
    wait_for_object(flows, name, &format!("flow {name}: {what}"), timeout, done).await
}

/// Waits until the flow `name` is in `phase`; any other terminal phase ends the wait at once.
pub async fn wait_for_phase(
    flows: &Api<JobFlow>,
    name: &str,
    wanted: FlowPhase,
    timeout: Duration,
) -> anyhow::Result<JobFlow> {
    wait_for_flow(
        flows,
        name,
        &format!("phase {}", wanted.as_str()),
        timeout,
        |flow| match phase(flow) {
            Some(current) if current == wanted => Ok(true),
            Some(current) if current.is_terminal() => anyhow::bail!(
                "flow {name} ended {} ({}: {}) instead of {}",
                current.as_str(),
                ready_reason(flow),
                ready_message(flow),
                wanted.as_str()
            ),
            _ => Ok(false),
        },
    )
    .await
}

/// Waits until step `step` of flow `name` waits for retry number `retries` (phase Pending,
/// `retryCount == retries`), and returns the flow. Fails at once when the step or the flow ends,
/// or the step is already past that retry: the wait could never end then.
pub async fn wait_for_retry(
    flows: &Api<JobFlow>,
    name: &str,
    step: &str,
    retries: i32,
    timeout: Duration,
) -> anyhow::Result<JobFlow> {
    wait_for_flow(
        flows,
        name,
        &format!("step {step} waiting for retry {retries}"),
        timeout,
        |flow| {
            let Ok(status) = step_status(flow, step) else {
                return Ok(false);
            };
            if status.phase.is_terminal()
                || status.retry_count > retries
                || phase(flow).is_some_and(FlowPhase::is_terminal)
            {
                anyhow::bail!(
                    "step {step} can no longer wait for retry {retries}: it is {} after {} \
                     retries ({:?}: {:?}), flow {:?}",
                    status.phase.as_str(),
                    status.retry_count,
                    status.reason,
                    status.message,
                    phase(flow)
                );
            }
            Ok(status.phase == StepPhase::Pending && status.retry_count == retries)
        },
    )
    .await
}

/// Waits until the flow `name` is Succeeded or Failed, and returns it.
pub async fn wait_for_finished(
    flows: &Api<JobFlow>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<JobFlow> {
    wait_for_flow(flows, name, "Succeeded or Failed", timeout, |flow| {
        Ok(phase(flow).is_some_and(FlowPhase::is_terminal))
    })
    .await
}

/// The Jobs of flow `flow` (label `workflow.kube-zen.io/flow=<flow>`), oldest first (by
/// creationTimestamp, then name).
pub async fn flow_jobs(jobs: &Api<Job>, flow: &str) -> anyhow::Result<Vec<Job>> {
    let mut list = jobs
        .list(&ListParams::default().labels(&format!("{}={flow}", labels::FLOW)))
        .await
        .with_context(|| format!("listing the Jobs of flow {flow}"))?
        .items;
    list.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref(),
            a.metadata.name.as_ref(),
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref(),
                b.metadata.name.as_ref(),
            ))
    });
    Ok(list)
}

/// A step Job's readable name, `<flow>-<step>-<attempt>` from its labels: the real name ends
/// with a hash (`jobflow::planner::job_name`), which tests need not spell out.
pub fn readable_job_name(job: &Job) -> String {
    let label = |key: &str| {
        job.labels()
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("<no {key}>"))
    };
    format!(
        "{}-{}-{}",
        label(labels::FLOW),
        label(labels::STEP),
        label(labels::ATTEMPT)
    )
}

/// The real name of the Job of `attempt` of `step` in flow `flow` (read from the API server for
/// its UID), as the agent names it.
pub async fn step_job_name(
    flows: &Api<JobFlow>,
    flow: &str,
    step: &str,
    attempt: i32,
) -> anyhow::Result<String> {
    let flow = flows
        .get(flow)
        .await
        .with_context(|| format!("reading flow {flow}"))?;
    Ok(jobflow::planner::job_name(&flow, step, attempt))
}

/// A Job name without its hash: `etl-load-1` for `etl-load-1-k2j4xz` (e.g. a step's `jobRef`).
pub fn without_hash(name: &str) -> &str {
    name.rsplit_once('-').map_or(name, |(readable, _)| readable)
}

/// The real name of the Job whose readable name is `readable` (`<flow>-<step>-<attempt>`), if
/// there is one yet.
pub async fn find_job_name(jobs: &Api<Job>, readable: &str) -> anyhow::Result<Option<String>> {
    let list = jobs
        .list(&ListParams::default().labels(labels::MANAGED_BY))
        .await
        .context("listing Jobs")?;
    Ok(list
        .items
        .iter()
        .find(|job| readable_job_name(job) == readable)
        .map(ResourceExt::name_any))
}

/// The real name of the Job whose readable name is `readable`; an error when there is none.
pub async fn real_job_name(jobs: &Api<Job>, readable: &str) -> anyhow::Result<String> {
    find_job_name(jobs, readable)
        .await?
        .with_context(|| format!("no Job {readable}-<hash>"))
}

/// Waits until no Job reads `readable` (`<flow>-<step>-<attempt>`): it was deleted, or never was.
pub async fn wait_for_job_deletion(
    jobs: &Api<Job>,
    readable: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_for(
        &format!("Job {readable} to be deleted"),
        timeout,
        POLL,
        || async {
            let list = jobs
                .list(&ListParams::default().labels(labels::MANAGED_BY))
                .await?;
            Ok((!list
                .items
                .iter()
                .any(|job| readable_job_name(job) == readable))
            .then_some(()))
        },
    )
    .await
}

/// The real name of resource template `template`'s object in flow `flow` (read for its UID).
pub async fn resource_object_name(
    flows: &Api<JobFlow>,
    flow: &str,
    template: &str,
) -> anyhow::Result<String> {
    let flow = flows
        .get(flow)
        .await
        .with_context(|| format!("reading flow {flow}"))?;
    Ok(jobflow::planner::resource_name(&flow, template))
}

/// The readable names (`<flow>-<step>-<attempt>`) of flow `flow`'s Jobs, sorted.
pub async fn job_names(jobs: &Api<Job>, flow: &str) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = flow_jobs(jobs, flow)
        .await?
        .iter()
        .map(readable_job_name)
        .collect();
    names.sort();
    Ok(names)
}

/// Creates `flow` in `flows`, saying which flow failed to be created.
pub async fn create_flow(flows: &Api<JobFlow>, flow: &JobFlow) -> anyhow::Result<()> {
    flows
        .create(&PostParams::default(), flow)
        .await
        .with_context(|| format!("creating flow {}", flow.name_any()))?;
    Ok(())
}

/// The Jobs of `flow` by readable name (`<flow>-<step>-<attempt>`).
pub async fn flow_jobs_by_name(
    jobs: &Api<Job>,
    flow: &str,
) -> anyhow::Result<BTreeMap<String, Job>> {
    Ok(flow_jobs(jobs, flow)
        .await?
        .into_iter()
        .map(|job| (readable_job_name(&job), job))
        .collect())
}

/// The Job's container args (first container), or empty.
pub fn job_args(job: &Job) -> Vec<String> {
    job.spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers.first())
        .and_then(|container| container.args.clone())
        .unwrap_or_default()
}

/// The Job controller's verdict conditions: the interim `SuccessCriteriaMet` and
/// `FailureTarget` (set first, while pods may still be terminating) and the final `Complete` and
/// `Failed`. The agent acts on the first of them, as the planner's `job_outcome` does.
pub const VERDICT_CONDITIONS: [&str; 4] =
    ["SuccessCriteriaMet", "FailureTarget", "Complete", "Failed"];

/// When flow `flow` finished (`status.completionTime`), failing when it has not.
pub fn flow_completed_at(flow: &JobFlow) -> anyhow::Result<k8s_openapi::jiff::Timestamp> {
    Ok(flow
        .status
        .as_ref()
        .and_then(|status| status.completion_time.as_ref())
        .with_context(|| format!("flow {} has no completionTime", flow.name_any()))?
        .0)
}

/// When the Job controller gave its verdict on the Job: the earliest transition time of a True
/// [`VERDICT_CONDITIONS`] condition (else `status.completionTime`); `None` while it runs.
///
/// Compare a dependent's creationTimestamp with this, not with the final `Complete`/`Failed`:
/// the agent rightly starts the next step as soon as `SuccessCriteriaMet`/`FailureTarget` show.
pub fn job_finished_at(job: &Job) -> Option<k8s_openapi::jiff::Timestamp> {
    let status = job.status.as_ref()?;
    status
        .conditions
        .iter()
        .flatten()
        .filter(|condition| {
            VERDICT_CONDITIONS.contains(&condition.type_.as_str()) && condition.status == "True"
        })
        .filter_map(|condition| condition.last_transition_time.as_ref())
        .map(|time| time.0)
        .min()
        .or_else(|| status.completion_time.as_ref().map(|time| time.0))
}

/// The Events about the object named `name` (any kind) in `events`' namespace, oldest first.
pub async fn events_for(events: &Api<Event>, name: &str) -> anyhow::Result<Vec<Event>> {
    let mut list: Vec<Event> = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .with_context(|| format!("listing the Events of {name}"))?
        .items;
    list.sort_by_key(|event| {
        event
            .last_timestamp
            .clone()
            .or_else(|| {
                event
                    .event_time
                    .as_ref()
                    .map(|t| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.0))
            })
            .or_else(|| event.first_timestamp.clone())
    });
    Ok(list)
}

/// The reasons of `events`, in order.
pub fn event_reasons(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| event.reason.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ANNOTATION_DURATION, ANNOTATION_FAIL};

    #[test]
    fn steps_carry_the_fake_pod_in_a_job_template() {
        let step = StepBuilder::new(
            "load",
            &FakePod::fail(2, "no").running_for(Duration::from_secs(3)),
        )
        .after(&["extract"])
        .args(&["load", "{{steps.extract.outputs.rows}}"])
        .output("rows", ".rows")
        .retries_with_fixed_backoff(2, "3s")
        .build();
        assert_eq!(step.dependencies, ["extract"]);
        let template = step.template.unwrap();
        assert_eq!(template["apiVersion"], "batch/v1");
        assert_eq!(template["kind"], "Job");
        assert!(template.get("metadata").is_none());
        assert_eq!(template["spec"]["backoffLimit"], 0);
        let annotations = &template["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations[ANNOTATION_FAIL], "true");
        assert_eq!(annotations[ANNOTATION_DURATION], "3000ms");
        assert_eq!(
            template["spec"]["template"]["spec"]["containers"][0]["args"][1],
            "{{steps.extract.outputs.rows}}"
        );
        assert_eq!(step.outputs.unwrap().parameters[0].name, "rows");
        let retry = step.retry_policy.unwrap();
        assert_eq!(retry.limit, 2);
        assert_eq!(retry.backoff.unwrap().backoff_type, BackoffType::Fixed);
    }

    #[test]
    fn flows_collect_steps_and_policy() {
        let flow = FlowBuilder::new("f")
            .step(StepBuilder::new("a", &FakePod::succeed()))
            .finally(StepBuilder::new("z", &FakePod::succeed()).when("flow.phase == 'Failed'"))
            .parallelism(2)
            .fail_fast(false)
            .build();
        assert_eq!(flow.spec.steps.len(), 1);
        assert_eq!(flow.spec.finally.len(), 1);
        assert_eq!(flow.spec.execution_policy.parallelism, Some(2));
        assert!(!flow.spec.execution_policy.fail_fast);
        assert_eq!(flow.name_any(), "f");
    }
}
