//! No confused deputy: the agent creates Jobs (and ConfigMaps, PVCs) for a flow, so the user who
//! creates the flow must be allowed to create them in its namespace. Asked of the API server
//! with a SubjectAccessReview from the request's userInfo; the rules here are pure.

use std::fmt;

use jobflow::api::JobFlow;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use super::API_TIMEOUT;
use crate::kube::call::{CallError, timed};

/// A permission the agent would use on the creator's behalf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// The verb.
    pub verb: &'static str,
    /// The API group (`""` for core).
    pub group: &'static str,
    /// The resource.
    pub resource: &'static str,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        write!(f, "{} {} ({group})", self.verb, self.resource)
    }
}

const JOBS: Permission = Permission {
    verb: "create",
    group: "batch",
    resource: "jobs",
};
const CONFIG_MAPS: Permission = Permission {
    verb: "create",
    group: "",
    resource: "configmaps",
};
const CLAIMS: Permission = Permission {
    verb: "create",
    group: "",
    resource: "persistentvolumeclaims",
};

/// What creating `flow` lets the agent create: Jobs always (which covers running as any
/// ServiceAccount of the namespace), ConfigMaps and PVCs when it has such templates.
pub fn required(flow: &JobFlow) -> Vec<Permission> {
    let mut required = vec![JOBS];
    if let Some(templates) = &flow.spec.resource_templates {
        if !templates.config_map_templates.is_empty() {
            required.push(CONFIG_MAPS);
        }
        if !templates.volume_claim_templates.is_empty() {
            required.push(CLAIMS);
        }
    }
    required
}

/// The denial for a creator who lacks `missing` in `namespace`.
pub fn denial(user: &UserInfo, namespace: &str, missing: &[Permission]) -> String {
    let user = user.username.as_deref().unwrap_or("(unknown user)");
    let missing = missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "user {user:?} may not {missing} in namespace {namespace:?}, which the agent would do \
         for this flow; ask for that permission (RBAC), or run the agent with \
         --webhook-access-check=false if JobFlow creation is a deliberate delegation"
    )
}

/// Why the permissions could not be checked (the webhook then denies: it fails closed).
#[derive(Debug, thiserror::Error)]
#[error("checking whether the creator may {permission} in namespace {namespace}")]
pub struct AccessError {
    /// The permission asked about.
    pub permission: Permission,
    /// The namespace.
    pub namespace: String,
    /// What went wrong.
    pub source: CallError,
}

/// The permissions of `required` that `user` lacks in `namespace`.
pub async fn missing(
    api: &Api<SubjectAccessReview>,
    user: &UserInfo,
    namespace: &str,
    required: &[Permission],
) -> Result<Vec<Permission>, AccessError> {
    let mut missing = Vec::new();
    for permission in required {
        let review = review(user, namespace, *permission);
        let answer = timed(API_TIMEOUT, api.create(&PostParams::default(), &review))
            .await
            .map_err(|source| AccessError {
                permission: *permission,
                namespace: namespace.to_owned(),
                source,
            })?;
        if !answer.status.is_some_and(|status| status.allowed) {
            missing.push(*permission);
        }
    }
    Ok(missing)
}

/// The review asking whether `user` may use `permission` in `namespace`.
pub fn review(user: &UserInfo, namespace: &str, permission: Permission) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some(permission.verb.to_owned()),
                group: Some(permission.group.to_owned()),
                resource: Some(permission.resource.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jobflow::api::{JobFlowSpec, ResourceTemplates};

    #[test]
    fn jobs_always_config_maps_and_claims_with_templates() {
        let mut flow = JobFlow::new("f", JobFlowSpec::default());
        assert_eq!(required(&flow), [JOBS]);
        flow.spec.resource_templates = Some(ResourceTemplates {
            config_map_templates: vec![serde_json::json!({})],
            volume_claim_templates: vec![serde_json::json!({})],
        });
        assert_eq!(required(&flow), [JOBS, CONFIG_MAPS, CLAIMS]);
    }

    #[test]
    fn the_denial_names_the_user_the_permission_and_the_way_out() {
        let user = UserInfo {
            username: Some("alice".to_owned()),
            ..UserInfo::default()
        };
        let text = denial(&user, "team-a", &[JOBS, CONFIG_MAPS]);
        assert!(
            text.starts_with(
                "user \"alice\" may not create jobs (batch), create configmaps (core) in namespace \"team-a\""
            ),
            "{text}"
        );
        assert!(text.contains("--webhook-access-check=false"));
    }

    #[test]
    fn the_review_carries_the_requests_user() {
        let user = UserInfo {
            username: Some("alice".to_owned()),
            groups: Some(vec!["devs".to_owned()]),
            uid: Some("u1".to_owned()),
            ..UserInfo::default()
        };
        let review = review(&user, "ns", JOBS);
        assert_eq!(review.spec.user.as_deref(), Some("alice"));
        assert_eq!(review.spec.groups, Some(vec!["devs".to_owned()]));
        let attributes = review.spec.resource_attributes.unwrap();
        assert_eq!(attributes.verb.as_deref(), Some("create"));
        assert_eq!(attributes.group.as_deref(), Some("batch"));
        assert_eq!(attributes.resource.as_deref(), Some("jobs"));
        assert_eq!(attributes.namespace.as_deref(), Some("ns"));
    }
}
