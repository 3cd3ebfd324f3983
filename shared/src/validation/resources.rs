//! `spec.resourceTemplates`: each template names its object, and names are unique per kind.

use std::collections::HashSet;

use super::names::is_dns_label;
use super::problems::Problems;
use crate::api::ResourceTemplates;

/// Checks the flow's PersistentVolumeClaim and ConfigMap templates.
pub(super) fn check_resource_templates(
    templates: Option<&ResourceTemplates>,
    problems: &mut Problems,
) {
    let Some(templates) = templates else {
        return;
    };
    let kinds = [
        ("volumeClaimTemplates", &templates.volume_claim_templates),
        ("configMapTemplates", &templates.config_map_templates),
    ];
    for (field, objects) in kinds {
        let mut seen = HashSet::new();
        for (index, object) in objects.iter().enumerate() {
            let path = format!("spec.resourceTemplates.{field}[{index}].metadata.name");
            match object.pointer("/metadata/name").and_then(|name| name.as_str()) {
                None => problems.invalid(
                    path,
                    "is missing; name the object (it is created as <flow>-<name>), e.g. name: scratch",
                ),
                Some(name) if !is_dns_label(name) || name.len() > 63 => problems.invalid(
                    path,
                    format!(
                        "{name:?} is not a DNS-1123 label; use lowercase letters, digits and '-', \
                         starting and ending with a letter or digit"
                    ),
                ),
                Some(name) if !seen.insert(name) => {
                    problems.invalid(path, format!("{name:?} is used twice; give each template its own name"));
                }
                Some(_) => {}
            }
        }
    }
}
