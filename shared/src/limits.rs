//! Every bound on a number, a size or a duration of a flow, in one place.
//!
//! Validation refuses values past these, so no input parks a flow for years or overflows the
//! planner's arithmetic; the planner still clamps (a flow accepted by an older release, or one
//! that got past an absent webhook, must not break it either). The README documents them. The
//! module stands beside `validation`, `planner` and `when` and imports none of them, so each
//! can read it without closing a circle.

use std::time::Duration;

/// The longest `timeoutSeconds` or `activeDeadlineSeconds`: 30 days.
pub const MAX_SECONDS: i64 = 30 * 24 * 3600;

/// The longest `ttlSecondsAfterFinished`: 365 days.
pub const MAX_TTL_SECONDS: i64 = 365 * 24 * 3600;

/// The longest wait between two attempts of a step (`retryPolicy.backoff.duration`, and any
/// wait it grows to): 24 hours.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// The largest `retryPolicy.backoff.factor`.
pub const MAX_BACKOFF_FACTOR: f64 = 10.0;

/// The most retries of one step (`retryPolicy.limit`).
pub const MAX_STEP_RETRIES: i32 = 100;

/// The most retries across all steps of a flow (`executionPolicy.backoffLimit`).
pub const MAX_BACKOFF_LIMIT: i32 = 10_000;

/// The most bytes of outputs kept per step (names and values): the planner drops values past
/// it, and a `when` expression's cost assumes no list or map read from outputs is longer.
pub const MAX_OUTPUT_BYTES: usize = 4 * 1024;

/// The longest flow name (`metadata.name`): the agent puts the name in the label
/// `workflow.kube-zen.io/flow` on every Job and pod, and a label value is at most 63 characters.
pub const MAX_FLOW_NAME: usize = 63;

/// The longest step name (`steps[].name`, `finally[].name`): Job names are
/// `<flow>-<step>-<attempt>` and must fit in 63 characters.
pub const MAX_STEP_NAME_LENGTH: usize = 48;

/// The longest the agent waits before looking at a flow again, whatever is due: a flow whose
/// next event is days away is still looked at hourly, and no timer is set past tokio's horizon.
pub const MAX_REQUEUE: Duration = Duration::from_secs(3600);
