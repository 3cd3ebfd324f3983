//! `suspend` and `resume`: `spec.suspend`, acknowledged by the observed generation.

use std::io::Write;

use jobflow::api::FlowPhase;
use kube::api::Patch;
use serde_json::json;

use super::{finish, flow_is, patch_params, qualified};
use crate::Verdict;
use crate::cli::SuspendArgs;
use crate::connect::Cluster;
use crate::error::Error;

/// `suspend FLOW` (`suspend` true) and `resume FLOW` (false).
pub async fn set_suspend(
    args: &SuspendArgs,
    suspend: bool,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let flow = cluster.flow(&args.flow).await?;
    let target = qualified(cluster, &args.flow);
    let verb = if suspend { "suspend" } else { "resume" };
    let phase = flow.status.as_ref().and_then(|status| status.phase);
    if let Some(phase) = phase.filter(|phase| phase.is_terminal()) {
        return Err(Error::Refused(format!(
            "jobflow {target} has finished ({}); there is nothing to {verb}",
            phase.as_str()
        )));
    }
    if flow.spec.suspend.unwrap_or(false) == suspend {
        writeln!(
            out,
            "jobflow {target} is already {}",
            if suspend {
                "suspended"
            } else {
                "not suspended"
            }
        )?;
        return Ok(Verdict::Positive);
    }
    let patched = cluster
        .flows()
        .patch(
            &args.flow,
            &patch_params(),
            &Patch::Merge(json!({"spec": {"suspend": suspend}})),
        )
        .await
        .map_err(|source| Error::Api {
            action: format!("{verb} jobflow {target}"),
            source,
        })?;
    let generation = patched.metadata.generation.unwrap_or(0);
    writeln!(
        out,
        "jobflow {target}: {} (spec.suspend={suspend})",
        if suspend {
            "suspended; running Jobs finish, no new step starts"
        } else {
            "resumed"
        }
    )?;
    finish(
        cluster,
        &args.flow,
        args.wait,
        "the agent to see the change",
        |flow| {
            let status = flow.status.as_ref();
            let observed = status
                .and_then(|status| status.observed_generation)
                .unwrap_or(0);
            let phase = status.and_then(|status| status.phase);
            observed >= generation && (phase == Some(FlowPhase::Suspended)) == suspend
        },
        out,
        flow_is,
    )
    .await
}
