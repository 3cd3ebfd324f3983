//! Fields of a JSON document that a typed k8s-openapi value does not model.
//!
//! The typed types are those of the oldest supported Kubernetes (1.33): reading a template
//! through them drops every field they do not know, a typo as much as a field added in a newer
//! Kubernetes. [`unmodeled_fields`] finds those fields (validation warns about them) and
//! [`restore`] puts them back into a document built from the typed value (the planner keeps
//! them in the Jobs it creates, so a newer API server sees them).

use serde_json::Value;

/// One step into a JSON document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// An object's key.
    Key(String),
    /// An array element: found again by its `name` field when it has one, else by position.
    Element {
        /// Its position in the document it was found in.
        index: usize,
        /// Its `name` field, when it is an object with a string `name`.
        name: Option<String>,
    },
}

/// A field the typed value does not model, with where it is and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct UnmodeledField {
    /// The path from the document's root, the field's own key last.
    pub path: Vec<Segment>,
    /// Its value as written.
    pub value: Value,
}

impl UnmodeledField {
    /// The path as JSON names, e.g. `.spec.template.spec.containers[0].imagePullPolcy`.
    pub fn dotted_path(&self) -> String {
        self.path
            .iter()
            .map(|segment| match segment {
                Segment::Key(key) => format!(".{key}"),
                Segment::Element { index, .. } => format!("[{index}]"),
            })
            .collect()
    }
}

/// The fields of `given` that `modeled` (the same document read into a typed value and written
/// back) lacks. Null values are left out: the typed value drops them without losing anything.
pub fn unmodeled_fields(given: &Value, modeled: &Value) -> Vec<UnmodeledField> {
    let mut found = Vec::new();
    collect(given, modeled, &mut Vec::new(), &mut found);
    found
}

fn collect(
    given: &Value,
    modeled: &Value,
    path: &mut Vec<Segment>,
    found: &mut Vec<UnmodeledField>,
) {
    match (given, modeled) {
        (Value::Object(given), Value::Object(modeled)) => {
            for (key, value) in given {
                path.push(Segment::Key(key.clone()));
                match modeled.get(key) {
                    Some(kept) => collect(value, kept, path, found),
                    None if value.is_null() => {}
                    None => found.push(UnmodeledField {
                        path: path.clone(),
                        value: value.clone(),
                    }),
                }
                path.pop();
            }
        }
        (Value::Array(given), Value::Array(modeled)) => {
            for (index, (value, kept)) in given.iter().zip(modeled).enumerate() {
                path.push(Segment::Element {
                    index,
                    name: element_name(value).map(str::to_owned),
                });
                collect(value, kept, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

fn element_name(value: &Value) -> Option<&str> {
    value.get("name").and_then(Value::as_str)
}

/// Puts `fields` back into `document`, each under the same parents (array elements found by
/// name, else by position). A field whose parent `document` no longer has is left out, and a
/// field `document` already has is not overwritten.
pub fn restore(document: &mut Value, fields: &[UnmodeledField]) {
    for field in fields {
        let Some((last, parents)) = field.path.split_last() else {
            continue;
        };
        let Segment::Key(key) = last else {
            continue;
        };
        let parent = parents
            .iter()
            .try_fold(&mut *document, |node, segment| step_into(node, segment));
        if let Some(Value::Object(parent)) = parent {
            parent
                .entry(key.clone())
                .or_insert_with(|| field.value.clone());
        }
    }
}

fn step_into<'v>(node: &'v mut Value, segment: &Segment) -> Option<&'v mut Value> {
    match (node, segment) {
        (Value::Object(map), Segment::Key(key)) => map.get_mut(key),
        (
            Value::Array(items),
            Segment::Element {
                name: Some(name), ..
            },
        ) => items
            .iter_mut()
            .find(|item| element_name(item) == Some(name.as_str())),
        (Value::Array(items), Segment::Element { index, name: None }) => items.get_mut(*index),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_keys_the_typed_value_dropped_and_puts_them_back() {
        let given = json!({
            "spec": {"containers": [
                {"name": "side", "image": "a"},
                {"name": "main", "image": "b", "restartPolicyRules": [{"action": "Restart"}]}
            ], "hostnameOverride": "h", "gone": null},
            "kept": 1
        });
        let modeled = json!({
            "spec": {"containers": [{"name": "side", "image": "a"}, {"name": "main", "image": "b"}]},
            "kept": 1
        });
        let fields = unmodeled_fields(&given, &modeled);
        let paths: Vec<String> = fields.iter().map(UnmodeledField::dotted_path).collect();
        assert_eq!(
            paths,
            [
                ".spec.containers[1].restartPolicyRules",
                ".spec.hostnameOverride"
            ]
        );

        // The built document has a container more in front: elements are found by name.
        let mut built = json!({
            "spec": {"containers": [
                {"name": "init", "image": "c"},
                {"name": "side", "image": "a"},
                {"name": "main", "image": "b"}
            ]},
            "kept": 2
        });
        restore(&mut built, &fields);
        assert_eq!(
            built["spec"]["containers"][2]["restartPolicyRules"][0]["action"],
            "Restart"
        );
        assert_eq!(built["spec"]["hostnameOverride"], "h");
        assert_eq!(built["kept"], 2);
        assert!(
            built["spec"]["containers"][0]
                .get("restartPolicyRules")
                .is_none()
        );
    }

    #[test]
    fn a_field_whose_parent_is_gone_is_left_out() {
        let fields = unmodeled_fields(&json!({"a": {"x": 1}}), &json!({"a": {}}));
        let mut built = json!({"b": {}});
        restore(&mut built, &fields);
        assert_eq!(built, json!({"b": {}}));
    }
}
