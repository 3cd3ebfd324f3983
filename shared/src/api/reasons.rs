//! Every reason the agent writes, defined once: step reasons (`status.steps[].reason`), the
//! Ready condition's reasons and Event reasons. The planner, the metrics, the plugin and the
//! tests use these constants, never the strings.

// Why a step ended, or why its attempt failed.
/// The step's Job succeeded.
pub const JOB_SUCCEEDED: &str = "JobSucceeded";
/// The step's Job failed.
pub const JOB_FAILED: &str = "JobFailed";
/// The step's Job was deleted before it finished.
pub const JOB_DELETED: &str = "JobDeleted";
/// The API server refused to create the step's Job (a permanent 4xx).
pub const JOB_REJECTED: &str = "JobRejected";
/// An object of the Job's name exists and is not this flow's.
pub const NAME_CONFLICT: &str = "NameConflict";
/// The step's Job could not be built from its template.
pub const JOB_NOT_BUILT: &str = "JobNotBuilt";
/// The attempt ran past the step's `timeoutSeconds`.
pub const TIMEOUT: &str = "Timeout";
/// The Job succeeded but its declared outputs could not be read.
pub const OUTPUTS_UNAVAILABLE: &str = "OutputsUnavailable";
/// The step's `when` was false.
pub const WHEN_FALSE: &str = "WhenFalse";
/// The step's `when` failed to evaluate.
pub const WHEN_ERROR: &str = "WhenError";
/// A step it depends on failed.
pub const UPSTREAM_FAILED: &str = "UpstreamFailed";
/// Not started after a blocking failure (`executionPolicy.failFast`).
pub const FAIL_FAST: &str = "FailFast";
/// A Manual step was approved.
pub const APPROVED: &str = "Approved";
/// A Manual step waits for approval.
pub const WAITING_FOR_APPROVAL: &str = "WaitingForApproval";
/// A Manual step was rejected: it failed, and what depends on it is skipped.
pub const REJECTED: &str = "Rejected";
/// A stop request ended the step (its Job deleted, or never started); also the Ready
/// reason of a flow that a stop request ended.
pub const STOPPED: &str = "Stopped";
/// A retry request reset the step.
pub const RETRY_REQUESTED: &str = "RetryRequested";
/// A named retry request reset a running step: its Job was deleted.
pub const RETRY_RESET: &str = "RetryReset";
/// A running step's pod cannot start or keeps crashing; the step still waits for it.
pub const POD_STUCK: &str = "PodStuck";

// Why the flow is in its phase (the Ready condition), some also step reasons.
/// The flow runs.
pub const FLOW_RUNNING: &str = "FlowRunning";
/// Every step ended without a blocking failure.
pub const FLOW_SUCCEEDED: &str = "FlowSucceeded";
/// A step failed and blocked the flow.
pub const FLOW_FAILED: &str = "FlowFailed";
/// The spec is invalid.
pub const VALIDATION_FAILED: &str = "ValidationFailed";
/// The dependencies form a cycle.
pub const DAG_CYCLE: &str = "DAGCycle";
/// The flow ran past `activeDeadlineSeconds`.
pub const ACTIVE_DEADLINE_EXCEEDED: &str = "ActiveDeadlineExceeded";
/// The flow used all retries of `executionPolicy.backoffLimit`.
pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
/// A newer flow with `concurrencyPolicy: Replace` took over.
pub const REPLACED: &str = "Replaced";
/// The API server refused a resource template's object.
pub const RESOURCE_REJECTED: &str = "ResourceRejected";
/// The flow waits for an older flow of its `concurrencyKey`.
pub const WAITING_FOR_CONCURRENCY: &str = "WaitingForConcurrency";
/// `spec.suspend` is true.
pub const FLOW_SUSPENDED: &str = "FlowSuspended";
/// Manual steps wait and nothing else runs.
pub const FLOW_PAUSED: &str = "FlowPaused";
/// The status was over its budget and was trimmed (the `StatusTrimmed` condition).
pub const STATUS_BUDGET_EXCEEDED: &str = "StatusBudgetExceeded";

// Event reasons (besides the flow reasons above, which Events reuse).
/// A step failed for good.
pub const STEP_FAILED: &str = "StepFailed";
/// A step will be tried again.
pub const STEP_RETRY: &str = "StepRetry";
/// A step's attempt timed out.
pub const STEP_TIMEOUT: &str = "StepTimeout";
/// A step was skipped.
pub const STEP_SKIPPED: &str = "StepSkipped";
/// A Manual step was approved.
pub const STEP_APPROVED: &str = "StepApproved";
/// A Manual step waits for approval.
pub const STEP_PENDING_APPROVAL: &str = "StepPendingApproval";
/// A step's pod cannot start (unschedulable, image pull, configuration errors) or keeps
/// crashing.
pub const STEP_STUCK: &str = "StepStuck";
/// An approval request named no step of the flow.
pub const APPROVAL_REJECTED: &str = "ApprovalRejected";
/// A Manual step was rejected.
pub const STEP_REJECTED: &str = "StepRejected";
/// A stop request was carried out.
pub const FLOW_STOPPED: &str = "FlowStopped";
/// A rejection request named no Manual step of the flow.
pub const REJECTION_REFUSED: &str = "RejectionRefused";
/// A retry request could not be carried out.
pub const RETRY_REJECTED: &str = "RetryRejected";
/// The flow started.
pub const FLOW_STARTED: &str = "FlowStarted";
/// The flow resumed after a suspension or pause.
pub const FLOW_RESUMED: &str = "FlowResumed";
/// The flow waits (concurrency).
pub const FLOW_WAITING: &str = "FlowWaiting";
