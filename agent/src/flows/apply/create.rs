//! Creating the objects a plan asks for. Objects are created, never applied over: a create
//! cannot take over an object of the same name that another flow or a user owns. An object that
//! exists already is this flow's only if its controller owner reference carries the flow's UID
//! (a Job created before a crash); anything else is a name conflict. A permanent refusal (a 4xx
//! other than 409 and 429) is the planner's to judge; transient errors end the reconcile.

use jobflow::api::{JobFlow, reasons};
use jobflow::labels::FIELD_MANAGER;
use jobflow::planner::Refusal;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

use crate::kube::call::{CallError, Calls};
use crate::metrics::{Operation, Resource as Res};

/// The outcome of creating an object the API server did not refuse with a transient error.
pub enum Created<T> {
    /// Created now, or found already created by this flow.
    Ours(T),
    /// Refused for good: the object's name and why.
    Refused(String, Refusal),
}

/// What to create: the object `name` of `api`'s resource, its manifest (posted as is, so fields
/// our typed models do not know reach the API server), its kind for messages and the planner
/// reason a permanent refusal gets.
pub struct Create<'a, T: Resource> {
    /// Where.
    pub api: &'a Api<T>,
    /// The object's name.
    pub name: &'a str,
    /// The whole object.
    pub manifest: &'a serde_json::Value,
    /// Its kind, for messages.
    pub kind: &'a str,
    /// Its resource, for the metrics.
    pub resource: Res,
    /// The reason of a permanent refusal.
    pub reason: &'static str,
}

impl<T> Create<'_, T>
where
    T: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    /// Creates the object for `flow`, or finds it already created by `flow`.
    pub async fn run(&self, calls: &Calls, flow: &JobFlow) -> Result<Created<T>, CallError> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let body = serde_json::to_vec(self.manifest).map_err(kube::Error::SerdeError)?;
        let request = kube::core::Request::new(self.api.resource_url())
            .create(&params, body)
            .map_err(kube::Error::BuildRequest)?;
        let client = self.api.clone().into_client();
        let error = match calls
            .write(
                Operation::Create,
                self.resource,
                client.request::<T>(request),
            )
            .await
        {
            Ok(created) => return Ok(Created::Ours(created)),
            Err(error) => error,
        };
        if error.is_already_exists() {
            let existing = calls.read(self.resource, self.api.get(self.name)).await?;
            return Ok(match foreign_owner(flow, existing.meta()) {
                None => Created::Ours(existing),
                Some(owner) => self.refused(
                    if self.reason == reasons::JOB_REJECTED {
                        reasons::NAME_CONFLICT
                    } else {
                        self.reason
                    },
                    format!(
                        "a {kind} named {name} already exists and belongs to {owner}, not to \
                         this flow; delete or rename that {kind}, or rename the flow",
                        kind = self.kind,
                        name = self.name,
                    ),
                ),
            });
        }
        match error.permanent_refusal() {
            Some(message) => Ok(self.refused(
                self.reason,
                format!(
                    "the API server refused {} {}: {message}",
                    self.kind, self.name
                ),
            )),
            None => Err(error),
        }
    }

    fn refused(&self, reason: &'static str, message: String) -> Created<T> {
        Created::Refused(self.name.to_owned(), Refusal { reason, message })
    }
}

/// Who controls an existing object, if not `flow` (`None` when it is the flow's own).
fn foreign_owner(flow: &JobFlow, meta: &ObjectMeta) -> Option<String> {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true));
    match controller {
        Some(owner) if Some(&owner.uid) == flow.metadata.uid.as_ref() => None,
        Some(owner) => Some(format!("{} {} (uid {})", owner.kind, owner.name, owner.uid)),
        None => Some("no controller (someone created it by hand)".to_owned()),
    }
}
