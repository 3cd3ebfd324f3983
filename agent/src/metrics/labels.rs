//! The bounded label values of the API call counter: which call, on which resource.

/// An API call the agent makes (the `operation` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Delete.
    Delete,
    /// Server-side apply of the status subresource.
    PatchStatus,
    /// Publishing an Event.
    CreateEvent,
    /// Create (Leases).
    Create,
    /// Replace with a resourceVersion (Leases).
    Update,
    /// A GET: confirming a step's Job is gone before failing the step, or reading the object
    /// a create found already there.
    Get,
}

impl Operation {
    /// The `operation` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::PatchStatus => "patch_status",
            Self::CreateEvent => "create_event",
            Self::Create => "create",
            Self::Update => "update",
            Self::Get => "get",
        }
    }
}

/// The resource an API call is made on (the `resource` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// batch/v1 Jobs.
    Jobs,
    /// `JobFlows`.
    JobFlows,
    /// `ConfigMaps` from resource templates.
    ConfigMaps,
    /// `PersistentVolumeClaims` from resource templates.
    PersistentVolumeClaims,
    /// Events.
    Events,
    /// The leader-election Lease.
    Leases,
    /// A resource template of another kind.
    Other,
}

impl Resource {
    /// The resource of an object of `kind`.
    pub fn of_kind(kind: &str) -> Self {
        match kind {
            "ConfigMap" => Self::ConfigMaps,
            "PersistentVolumeClaim" => Self::PersistentVolumeClaims,
            "Job" => Self::Jobs,
            "JobFlow" => Self::JobFlows,
            _ => Self::Other,
        }
    }

    /// The `resource` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jobs => "jobs",
            Self::JobFlows => "jobflows",
            Self::ConfigMaps => "configmaps",
            Self::PersistentVolumeClaims => "persistentvolumeclaims",
            Self::Events => "events",
            Self::Leases => "leases",
            Self::Other => "other",
        }
    }
}
