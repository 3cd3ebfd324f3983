//! `logs FLOW [--step S]... [-f] [--attempt N]`: the step pods' logs, each line prefixed by
//! `[step/container]`, latest attempt by default; `-f` follows them, and the pods of steps
//! that start later, until the flow ends.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use jobflow::api::{JobFlow, StepStatus};
use jobflow::labels;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};
use tokio::sync::mpsc;

use crate::Verdict;
use crate::cli::LogsArgs;
use crate::connect::Cluster;
use crate::error::Error;

/// How often `-f` looks for new pods and for the end of the flow.
const POLL: Duration = Duration::from_secs(1);

/// Prints the logs, or follows them with `-f`.
pub async fn run(
    args: &LogsArgs,
    cluster: &Cluster,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let flow = cluster.flow(&args.flow).await?;
    for step in &args.steps {
        let known = flow.all_steps();
        if !known.clone().any(|spec| &spec.name == step) {
            return Err(Error::StepNotFound {
                flow: format!("{}/{}", cluster.namespace, args.flow),
                step: step.clone(),
                known: known
                    .map(|spec| spec.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    if !args.follow {
        let mut printed_any = false;
        for (step, attempt) in targets(&flow, args) {
            printed_any = true;
            for pod in step_pods(&pods, &args.flow, &step, attempt).await? {
                print_pod(&pods, &step, &pod, out).await?;
            }
        }
        if !printed_any {
            writeln!(out, "jobflow {}: no step has started yet", args.flow)?;
        }
        return Ok(Verdict::Positive);
    }
    follow(args, cluster, &pods, out).await
}

/// The steps to show and the attempt of each: `--attempt`, else the latest.
fn targets(flow: &JobFlow, args: &LogsArgs) -> Vec<(String, i32)> {
    let statuses: &[StepStatus] = flow.status.as_ref().map_or(&[], |status| &status.steps);
    statuses
        .iter()
        .filter(|step| args.steps.is_empty() || args.steps.contains(&step.name))
        .filter(|step| step.attempt > 0)
        .map(|step| (step.name.clone(), args.attempt.unwrap_or(step.attempt)))
        .collect()
}

/// The pods of one attempt of one step.
async fn step_pods(
    pods: &Api<Pod>,
    flow: &str,
    step: &str,
    attempt: i32,
) -> Result<Vec<Pod>, Error> {
    let selector = format!(
        "{}={flow},{}={step},{}={attempt}",
        labels::FLOW,
        labels::STEP,
        labels::ATTEMPT
    );
    let mut list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::Api {
            action: format!("list the pods of step {step} attempt {attempt}"),
            source,
        })?
        .items;
    list.sort_by_key(|pod| pod.metadata.creation_timestamp.as_ref().map(|time| time.0));
    Ok(list)
}

fn containers(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|spec| spec.containers.iter())
        .map(|container| container.name.clone())
        .collect()
}

/// Prints every container's log of `pod`, or says why there is none.
async fn print_pod(
    pods: &Api<Pod>,
    step: &str,
    pod: &Pod,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let name = pod.name_any();
    for container in containers(pod) {
        let params = LogParams {
            container: Some(container.clone()),
            ..LogParams::default()
        };
        match pods.logs(&name, &params).await {
            Ok(text) if text.is_empty() => {
                writeln!(out, "[{step}/{container}] (pod {name} logged nothing)")?;
            }
            Ok(text) => {
                for line in text.lines() {
                    writeln!(out, "[{step}/{container}] {line}")?;
                }
            }
            Err(error) => writeln!(out, "[{step}/{container}] {}", no_logs(&name, &error))?,
        }
    }
    Ok(())
}

/// Why a pod has no logs, for people.
fn no_logs(pod: &str, error: &kube::Error) -> String {
    let why = match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    };
    format!(
        "pod {pod} has no logs to show: {why} (a pending pod has none yet; a simulated node serves none)"
    )
}

/// Follows the logs of every selected step's latest pods, starting streams for pods that
/// appear, until the flow has ended and every stream is done.
async fn follow(
    args: &LogsArgs,
    cluster: &Cluster,
    pods: &Api<Pod>,
    out: &mut dyn Write,
) -> Result<Verdict, Error> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<String>();
    let mut streamed: BTreeSet<(String, String)> = BTreeSet::new();
    loop {
        let flow = cluster.flow(&args.flow).await?;
        for (step, attempt) in targets(&flow, args) {
            for pod in step_pods(pods, &args.flow, &step, attempt).await? {
                let running = pod
                    .status
                    .as_ref()
                    .and_then(|status| status.phase.as_deref())
                    .is_some_and(|phase| phase != "Pending");
                for container in containers(&pod) {
                    let key = (pod.name_any(), container.clone());
                    if !running || streamed.contains(&key) {
                        continue;
                    }
                    streamed.insert(key);
                    let task = stream_container(
                        pods.clone(),
                        step.clone(),
                        pod.name_any(),
                        container,
                        sender.clone(),
                    );
                    tokio::spawn(task);
                }
            }
        }
        let ended = flow
            .status
            .as_ref()
            .and_then(|status| status.phase)
            .is_some_and(jobflow::api::FlowPhase::is_terminal);
        let deadline = tokio::time::sleep(POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                line = receiver.recv() => match line {
                    Some(line) => {
                        writeln!(out, "{line}")?;
                        out.flush()?;
                    }
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        if ended {
            // Drain what the streams of finished pods still send, then stop.
            drop(sender);
            while let Some(line) = receiver.recv().await {
                writeln!(out, "{line}")?;
            }
            return Ok(Verdict::Positive);
        }
    }
}

/// Streams one container's log as prefixed lines into `sender`.
async fn stream_container(
    pods: Api<Pod>,
    step: String,
    pod: String,
    container: String,
    sender: mpsc::UnboundedSender<String>,
) {
    let params = LogParams {
        container: Some(container.clone()),
        follow: true,
        ..LogParams::default()
    };
    let prefix = format!("[{step}/{container}]");
    match pods.log_stream(&pod, &params).await {
        Ok(reader) => {
            let mut lines = reader.lines();
            loop {
                match lines.try_next().await {
                    Ok(Some(line)) => {
                        let _ = sender.send(format!("{prefix} {line}"));
                    }
                    Ok(None) => break,
                    Err(error) => {
                        let _ = sender
                            .send(format!("{prefix} (log stream of pod {pod} ended: {error})"));
                        break;
                    }
                }
            }
        }
        Err(error) => {
            let _ = sender.send(format!("{prefix} {}", no_logs(&pod, &error)));
        }
    }
}
