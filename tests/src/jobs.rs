//! Readers of Jobs and their pods that several tests share.

use anyhow::Context as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, ResourceExt as _};

use crate::flows::job_finished_at;

/// When the Job was created (its `metadata.creationTimestamp`); fails when it has none.
pub fn created_at(job: &Job) -> anyhow::Result<Timestamp> {
    Ok(job
        .metadata
        .creation_timestamp
        .as_ref()
        .with_context(|| format!("Job {} has no creationTimestamp", job.name_any()))?
        .0)
}

/// When the Job controller gave its verdict on the Job ([`job_finished_at`]); fails while the
/// Job has not finished.
pub fn finished_at(job: &Job) -> anyhow::Result<Timestamp> {
    job_finished_at(job).with_context(|| format!("Job {} has not finished", job.name_any()))
}

/// The pods of Job `job` (the Job controller labels them with its name).
pub async fn pods_of(pods: &Api<Pod>, job: &str) -> anyhow::Result<Vec<Pod>> {
    let selector = format!("batch.kubernetes.io/job-name={job}");
    Ok(pods
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("listing the pods of Job {job}"))?
        .items)
}
