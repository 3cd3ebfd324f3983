//! `stop`: the stop annotation, and waiting for the flow to end.

use std::io::Write;

use jobflow::api::FlowPhase;
use jobflow::labels;

use super::{annotate, finish, flow_is, fresh_request_id, handled, qualified};
use crate::Verdict;
use crate::cli::SuspendArgs;
use crate::connect::Cluster;
use crate::error::Error;

/// `stop FLOW`.
pub async fn stop(
    args: &SuspendArgs,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let flow = cluster.flow(&args.flow).await?;
    let target = qualified(cluster, &args.flow);
    if let Some(phase) = flow
        .status
        .as_ref()
        .and_then(|status| status.phase)
        .filter(|phase| phase.is_terminal())
    {
        return Err(Error::Refused(format!(
            "jobflow {target} has finished ({}); there is nothing to stop",
            phase.as_str()
        )));
    }
    let id = fresh_request_id();
    annotate(
        cluster,
        &args.flow,
        &[(labels::STOP.to_owned(), id.clone())],
    )
    .await?;
    writeln!(
        out,
        "jobflow {target}: stop requested ({}={id}); running Jobs are deleted, the rest skipped, finally steps run",
        labels::STOP
    )?;
    finish(
        cluster,
        &args.flow,
        args.wait,
        "the flow to stop:",
        |flow| {
            handled(flow, labels::STOP, &id)
                && flow
                    .status
                    .as_ref()
                    .and_then(|status| status.phase)
                    .is_some_and(FlowPhase::is_terminal)
        },
        out,
        flow_is,
    )
    .await
}
