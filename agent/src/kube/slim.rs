//! The forms in which the caches hold Jobs and pods: metadata and status only.
//!
//! A `k8s_openapi` Job is 2.6 KB before any field is set (its spec holds a whole pod template
//! inline) and a Pod 2.2 KB, whatever [`super::strip`] leaves in them. The planner reads
//! neither spec, so the caches hold these types instead (about 0.6 and 0.8 KB), and the watch
//! never builds the specs at all: serde skips what a type does not name. A reconcile turns the
//! few objects of its own flow back into Jobs and Pods for the planner.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher::Event;
use serde::Deserialize;

/// A cached Job: its metadata and status.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CachedJob {
    /// The Job's metadata.
    pub metadata: ObjectMeta,
    /// The Job's status.
    pub status: Option<JobStatus>,
}

/// A cached pod: its metadata and status.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CachedPod {
    /// The pod's metadata.
    pub metadata: ObjectMeta,
    /// The pod's status.
    pub status: Option<PodStatus>,
}

impl CachedJob {
    /// The Job the planner reads (no spec).
    pub fn job(&self) -> Job {
        Job {
            metadata: self.metadata.clone(),
            spec: None,
            status: self.status.clone(),
        }
    }
}

impl From<Job> for CachedJob {
    fn from(job: Job) -> Self {
        Self {
            metadata: job.metadata,
            status: job.status,
        }
    }
}

impl CachedPod {
    /// The pod the planner reads (no spec).
    pub fn pod(&self) -> Pod {
        Pod {
            metadata: self.metadata.clone(),
            spec: None,
            status: self.status.clone(),
        }
    }
}

impl From<Pod> for CachedPod {
    fn from(pod: Pod) -> Self {
        Self {
            metadata: pod.metadata,
            status: pod.status,
        }
    }
}

/// `event` with its pod as the planner reads it.
pub fn pod_event(event: &Event<CachedPod>) -> Event<Pod> {
    match event {
        Event::Apply(pod) => Event::Apply(pod.pod()),
        Event::InitApply(pod) => Event::InitApply(pod.pod()),
        Event::Delete(pod) => Event::Delete(pod.pod()),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// Implements [`Resource`] for a cached type as for the `k8s_openapi` type it stands for.
macro_rules! resource_as {
    ($cached:ty, $full:ty) => {
        impl Resource for $cached {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind((): &()) -> Cow<'_, str> {
                <$full as Resource>::kind(&())
            }

            fn group((): &()) -> Cow<'_, str> {
                <$full as Resource>::group(&())
            }

            fn version((): &()) -> Cow<'_, str> {
                <$full as Resource>::version(&())
            }

            fn api_version((): &()) -> Cow<'_, str> {
                <$full as Resource>::api_version(&())
            }

            fn plural((): &()) -> Cow<'_, str> {
                <$full as Resource>::plural(&())
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource_as!(CachedJob, Job);
resource_as!(CachedPod, Pod);

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn cached_types_address_the_same_resources() {
        assert_eq!(
            CachedJob::url_path(&(), Some("ns")),
            Job::url_path(&(), Some("ns"))
        );
        assert_eq!(
            CachedPod::url_path(&(), Some("ns")),
            Pod::url_path(&(), Some("ns"))
        );
        assert_eq!(CachedJob::api_version(&()), "batch/v1");
        assert_eq!(CachedPod::kind(&()), "Pod");
    }

    #[test]
    fn the_watch_reads_metadata_and_status_and_skips_the_spec() {
        let job: CachedJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "f-a-1", "uid": "u"},
            "spec": {"template": {"spec": {"containers": [{"name": "main"}]}}},
            "status": {"succeeded": 1}
        }))
        .unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("f-a-1"));
        assert_eq!(job.status.as_ref().unwrap().succeeded, Some(1));
        let full = job.job();
        assert_eq!(full.spec, None);
        assert_eq!(full.metadata.uid.as_deref(), Some("u"));
        assert!(
            size_of::<CachedJob>() * 3 < size_of::<Job>(),
            "the point of this type"
        );
        assert!(size_of::<CachedPod>() * 2 < size_of::<Pod>());
    }
}
