//! `get|list [FLOW]`: flows as `kubectl get jobflows` shows them, in every output format.

use std::collections::HashMap;
use std::io::Write;

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use jobflow::api::{FlowPhase, JobFlow, conditions};
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use crate::Verdict;
use crate::cli::{GetArgs, OutputFormat};
use crate::connect::Cluster;
use crate::error::Error;
use crate::{table, time};

/// Lists or shows flows, then follows changes with `--watch`.
pub async fn run(args: &GetArgs, cluster: &Cluster, out: &mut dyn Write) -> Result<Verdict, Error> {
    let api: Api<JobFlow> = if args.all_namespaces {
        Api::all(cluster.client.clone())
    } else {
        cluster.flows()
    };
    let scope = if args.all_namespaces {
        "all namespaces".to_owned()
    } else {
        format!("namespace {}", cluster.namespace)
    };
    let mut flows = if let Some(name) = &args.flow {
        vec![cluster.flow(name).await?]
    } else {
        let mut params = ListParams::default();
        if let Some(selector) = &args.selector {
            params = params.labels(selector);
        }
        let list = api.list(&params).await.map_err(|source| Error::Api {
            action: format!("list jobflows in {scope}"),
            source,
        })?;
        list.items
    };
    flows.sort_by_key(|flow| (flow.namespace(), flow.name_any()));
    let now = Timestamp::now();
    let single = args.flow.is_some();
    match args.output {
        OutputFormat::Table | OutputFormat::Wide => {
            if flows.is_empty() {
                writeln!(out, "No jobflows found in {scope}.")?;
            } else {
                let text = render_table(&flows, args.all_namespaces, args.output, now);
                out.write_all(text.as_bytes())?;
            }
        }
        format => write_objects(&flows, single, format, out)?,
    }
    if args.watch {
        out.flush()?;
        watch(args, &api, &flows, out).await?;
    }
    Ok(Verdict::Positive)
}

/// The table of `flows` at `now`: a NAMESPACE column with `all_namespaces`, more columns
/// when `format` is [`OutputFormat::Wide`].
pub fn render_table(
    flows: &[JobFlow],
    all_namespaces: bool,
    format: OutputFormat,
    now: Timestamp,
) -> String {
    let columns = Columns {
        namespace: all_namespaces,
        wide: format == OutputFormat::Wide,
    };
    table::render(&columns.headers(), &columns.rows(flows, now))
}

/// Which columns `get` shows.
struct Columns {
    namespace: bool,
    wide: bool,
}

impl Columns {
    fn new(args: &GetArgs) -> Self {
        Self {
            namespace: args.all_namespaces,
            wide: args.output == OutputFormat::Wide,
        }
    }

    fn headers(&self) -> Vec<&'static str> {
        let mut headers = Vec::new();
        if self.namespace {
            headers.push("namespace");
        }
        headers.extend(["name", "phase", "progress", "age"]);
        if self.wide {
            headers.extend(["running", "failed", "started", "completed", "message"]);
        }
        headers
    }

    fn rows(&self, flows: &[JobFlow], now: Timestamp) -> Vec<Vec<String>> {
        flows.iter().map(|flow| self.row(flow, now)).collect()
    }

    /// One flow's cells, as the CRD's printer columns define them.
    fn row(&self, flow: &JobFlow, now: Timestamp) -> Vec<String> {
        let status = flow.status.clone().unwrap_or_default();
        let mut row = Vec::new();
        if self.namespace {
            row.push(flow.namespace().unwrap_or_default());
        }
        row.push(flow.name_any());
        row.push(status.phase.map_or("", |phase| phase.as_str()).to_owned());
        row.push(
            status
                .progress
                .as_ref()
                .map(|progress| progress.summary.clone())
                .unwrap_or_default(),
        );
        row.push(time::age(flow.metadata.creation_timestamp.as_ref(), now));
        if self.wide {
            let progress = status.progress.clone().unwrap_or_default();
            row.push(progress.running_steps.to_string());
            row.push(progress.failed_steps.to_string());
            row.push(optional_age(status.start_time.as_ref(), now));
            row.push(optional_age(status.completion_time.as_ref(), now));
            row.push(
                status
                    .conditions
                    .iter()
                    .find(|condition| condition.type_ == conditions::READY)
                    .map(|condition| condition.message.clone())
                    .unwrap_or_default(),
            );
        }
        row
    }
}

fn optional_age(
    time: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    now: Timestamp,
) -> String {
    time.map_or_else(String::new, |time| time::age(Some(time), now))
}

/// A flow as `kubectl get -o json|yaml` shows it: with its kind, without managed fields.
pub fn object(flow: &JobFlow) -> serde_json::Value {
    let mut flow = flow.clone();
    flow.metadata.managed_fields = None;
    let mut value = serde_json::to_value(&flow).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "apiVersion".to_owned(),
            format!("{}/v1alpha1", jobflow::api::GROUP).into(),
        );
        map.insert("kind".to_owned(), "JobFlow".into());
    }
    value
}

/// Writes flows as JSON, YAML or names: one flow as itself, several as a `List`.
fn write_objects(
    flows: &[JobFlow],
    single: bool,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), Error> {
    if format == OutputFormat::Name {
        for flow in flows {
            writeln!(out, "jobflow.{}/{}", jobflow::api::GROUP, flow.name_any())?;
        }
        return Ok(());
    }
    let value = match (single, flows) {
        (true, [flow]) => object(flow),
        _ => serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": flows.iter().map(object).collect::<Vec<_>>(),
            "metadata": {"resourceVersion": ""},
        }),
    };
    let text = if format == OutputFormat::Json {
        let mut text = serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?;
        text.push('\n');
        text
    } else {
        serde_yaml_ng::to_string(&value).map_err(std::io::Error::other)?
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Prints a line (or an object) each time a flow's phase or progress changes.
async fn watch(
    args: &GetArgs,
    api: &Api<JobFlow>,
    listed: &[JobFlow],
    out: &mut dyn Write,
) -> Result<(), Error> {
    let mut config = watcher::Config::default();
    if let Some(name) = &args.flow {
        config = config.fields(&format!("metadata.name={name}"));
    }
    if let Some(selector) = &args.selector {
        config = config.labels(selector);
    }
    let columns = Columns::new(args);
    // The listing above showed these states; only changes follow.
    let mut seen: HashMap<String, ChangeKey> = listed
        .iter()
        .map(|flow| {
            (
                flow.uid().unwrap_or_else(|| flow.name_any()),
                change_key(flow),
            )
        })
        .collect();
    let mut stream = watcher(api.clone(), config).applied_objects().boxed();
    while let Some(flow) = stream.try_next().await.map_err(|source| Error::Api {
        action: "watch jobflows".to_owned(),
        source: kube::Error::Service(Box::new(source)),
    })? {
        let key = change_key(&flow);
        let id = flow.uid().unwrap_or_else(|| flow.name_any());
        if seen.get(&id) == Some(&key) {
            continue;
        }
        seen.insert(id, key);
        match args.output {
            OutputFormat::Table | OutputFormat::Wide => {
                let cells = columns.row(&flow, Timestamp::now());
                writeln!(out, "{}", cells.join("   ").trim_end())?;
            }
            format => write_objects(std::slice::from_ref(&flow), true, format, out)?,
        }
        out.flush()?;
    }
    Ok(())
}

/// What a watched line shows: the phase and the progress.
type ChangeKey = (Option<&'static str>, Option<String>);

fn change_key(flow: &JobFlow) -> ChangeKey {
    let status = flow.status.as_ref();
    (
        status.and_then(|s| s.phase).map(FlowPhase::as_str),
        status
            .and_then(|s| s.progress.as_ref())
            .map(|progress| progress.summary.clone()),
    )
}
