//! `version`: the plugin's version, and the CRD's and the agent's when the cluster answers.

use std::io::Write;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;

use crate::Verdict;
use crate::connect::Cluster;
use crate::error::{self, Error};

/// The CRD's name.
const CRD: &str = "jobflows.workflow.kube-zen.io";

/// The label the agent's Deployment carries (`deploy/agent/deployment.yaml`).
const AGENT_SELECTOR: &str = "app.kubernetes.io/name=jobflow-agent";

/// Prints the versions; an unreachable cluster is reported, not an error.
pub async fn run(cluster: Option<&Cluster>, out: &mut dyn Write) -> Result<Verdict, Error> {
    writeln!(out, "plugin: kubectl-jobflow {}", env!("CARGO_PKG_VERSION"))?;
    let Some(cluster) = cluster else {
        return Ok(Verdict::Positive);
    };
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    match crds.get(CRD).await {
        Ok(crd) => {
            let served: Vec<String> = crd
                .spec
                .versions
                .iter()
                .filter(|version| version.served)
                .map(|version| {
                    if version.storage {
                        format!("{} (storage)", version.name)
                    } else {
                        version.name.clone()
                    }
                })
                .collect();
            writeln!(out, "crd:    {CRD} {}", served.join(", "))?;
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            writeln!(
                out,
                "crd:    not installed (kubectl apply --server-side -f deploy/crds/)"
            )?;
        }
        Err(source) => {
            let failure = Error::Api {
                action: format!("get customresourcedefinition {CRD}"),
                source,
            };
            writeln!(out, "crd:    unknown ({})", error::chain(&failure))?;
            return Ok(Verdict::Positive);
        }
    }
    let deployments: Api<Deployment> = Api::all(cluster.client.clone());
    match deployments
        .list(&ListParams::default().labels(AGENT_SELECTOR))
        .await
    {
        Ok(list) if list.items.is_empty() => {
            writeln!(out, "agent:  no Deployment labelled {AGENT_SELECTOR}")?;
        }
        Ok(list) => {
            for deployment in list.items {
                let images: Vec<String> = deployment
                    .spec
                    .iter()
                    .flat_map(|spec| spec.template.spec.iter())
                    .flat_map(|pod| pod.containers.iter())
                    .filter_map(|container| container.image.clone())
                    .collect();
                writeln!(
                    out,
                    "agent:  {}/{} {}",
                    deployment.metadata.namespace.unwrap_or_default(),
                    deployment.metadata.name.unwrap_or_default(),
                    images.join(", ")
                )?;
            }
        }
        Err(source) => {
            let failure = Error::Api {
                action: "list the agent's Deployments".to_owned(),
                source,
            };
            writeln!(out, "agent:  unknown ({})", error::chain(&failure))?;
        }
    }
    Ok(Verdict::Positive)
}
