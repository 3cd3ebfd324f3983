//! Label, annotation and field-manager names shared by the agent, the webhook and the plugin.

/// Label on a step's Job and its pods: the flow's name.
pub const FLOW: &str = "workflow.kube-zen.io/flow";
/// Label on a step's Job and its pods: the step's name.
pub const STEP: &str = "workflow.kube-zen.io/step";
/// Label on a step's Job and its pods: the attempt number, from 1.
pub const ATTEMPT: &str = "workflow.kube-zen.io/attempt";
/// Label on everything the agent creates; the agent watches Jobs by this label only.
pub const MANAGED_BY: &str = "workflow.kube-zen.io/managed-by";
/// The value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "jobflow-agent";
/// The server-side apply field manager of everything the agent writes.
pub const FIELD_MANAGER: &str = "jobflow-agent";

/// Annotation prefix of approval requests: `approve.workflow.kube-zen.io/<step>: <request id>`.
pub const APPROVE_PREFIX: &str = "approve.workflow.kube-zen.io/";
/// Annotation of a retry request: `<request id>` (any text) retries the failed and skipped
/// steps of a finished flow.
pub const RETRY: &str = "workflow.kube-zen.io/retry";
/// Annotation prefix of a named retry: `retry.workflow.kube-zen.io/<step>: <request id>`
/// retries that step and everything downstream of it.
pub const RETRY_PREFIX: &str = "retry.workflow.kube-zen.io/";

/// Annotation prefix of rejection requests: `reject.workflow.kube-zen.io/<step>: <request id>`
/// fails that Manual step (reason `Rejected`) once it waits; what depends on it is skipped.
pub const REJECT_PREFIX: &str = "reject.workflow.kube-zen.io/";
/// Annotation prefix of a rejection's optional reason for people:
/// `reject-message.workflow.kube-zen.io/<step>: <text>`, shown as the step's message.
pub const REJECT_MESSAGE_PREFIX: &str = "reject-message.workflow.kube-zen.io/";
/// Annotation of a stop request: `<request id>` deletes the running Jobs, skips the steps
/// that have not started (reason `Stopped`), runs the finally steps and fails the flow with
/// reason `Stopped`.
pub const STOP: &str = "workflow.kube-zen.io/stop";
