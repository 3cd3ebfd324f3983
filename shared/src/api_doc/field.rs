//! Walking an `openAPIV3Schema` into documented fields.

use std::fmt::Write as _;

use serde_json::Value;

use super::bounds::{EXTRA_FIELDS, limits_for};

/// One field of a schema, as the reference shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The path from the object's root, lists written `[]`: `spec.steps[].retryPolicy`.
    pub path: String,
    /// The type: `string`, `integer (int32)`, `[]object`, `map[string]string`...
    pub type_name: String,
    /// Whether the parent object requires it.
    pub required: bool,
    /// The schema's default, as compact JSON.
    pub default: Option<String>,
    /// Bounds from the schema and from `jobflow::limits`.
    pub bounds: Vec<String>,
    /// The description (whitespace collapsed to single spaces).
    pub description: String,
    /// The schema's example, as compact JSON.
    pub example: Option<String>,
}

impl Field {
    /// The field's section of the reference.
    pub fn to_markdown(&self) -> String {
        // Writing to a String cannot fail.
        let mut out = format!("\n### `{}`\n\n", self.path);
        if !self.description.is_empty() {
            let _ = writeln!(out, "{}\n", self.description);
        }
        let _ = writeln!(out, "- **Type:** `{}`", self.type_name);
        if self.required {
            out.push_str("- **Required:** yes\n");
        }
        if let Some(default) = &self.default {
            let _ = writeln!(out, "- **Default:** `{default}`");
        }
        if !self.bounds.is_empty() {
            let _ = writeln!(out, "- **Bounds:** {}", self.bounds.join("; "));
        }
        if let Some(example) = &self.example {
            let _ = writeln!(out, "- **Example:** `{example}`");
        }
        out
    }
}

/// `text` on one line, runs of whitespace (a doc comment's line breaks) as single spaces.
pub fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every field of `schema` in a stable order: the fields outside the schema first, then the
/// schema's properties depth first, sorted by name at each level.
pub fn fields_of(schema: &Value) -> Vec<Field> {
    let mut fields: Vec<Field> = EXTRA_FIELDS
        .iter()
        .map(|extra| Field {
            path: extra.path.to_owned(),
            type_name: extra.type_name.to_owned(),
            required: true,
            default: None,
            bounds: limits_for(extra.path),
            description: collapse_whitespace(extra.description),
            example: None,
        })
        .collect();
    walk("", schema, &mut fields);
    fields
}

/// Adds the properties of the object `schema` at `path` (and of its lists' items), recursing.
fn walk(path: &str, schema: &Value, fields: &mut Vec<Field>) {
    if let Some(items) = schema.get("items") {
        walk(&format!("{path}[]"), items, fields);
        return;
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut names: Vec<&String> = properties.keys().collect();
    names.sort();
    for name in names {
        let child = &properties[name.as_str()];
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        fields.push(field(&child_path, child, required.contains(&name.as_str())));
        walk(&child_path, child, fields);
    }
}

/// The documented form of the property `schema` at `path`.
fn field(path: &str, schema: &Value, required: bool) -> Field {
    let mut bounds = schema_bounds(schema);
    bounds.extend(limits_for(path));
    Field {
        path: path.to_owned(),
        type_name: type_name(schema),
        required,
        default: schema.get("default").map(Value::to_string),
        bounds,
        description: schema
            .get("description")
            .and_then(Value::as_str)
            .map(collapse_whitespace)
            .unwrap_or_default(),
        example: schema.get("example").map(Value::to_string),
    }
}

/// The type of `schema`, with its format, list item type or map value type.
fn type_name(schema: &Value) -> String {
    let base = schema.get("type").and_then(Value::as_str).unwrap_or("any");
    if base == "array" {
        let items = schema.get("items").unwrap_or(&Value::Null);
        return format!("[]{}", type_name(items));
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        return format!("map[string]{}", type_name(values));
    }
    let mut name = match schema.get("format").and_then(Value::as_str) {
        Some(format) => format!("{base} ({format})"),
        None => base.to_owned(),
    };
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        name.push_str(", any fields kept");
    }
    name
}

/// The bounds `schema` states: numeric range, lengths, item counts, pattern, allowed values.
fn schema_bounds(schema: &Value) -> Vec<String> {
    const KEYWORDS: [(&str, &str); 8] = [
        ("minimum", "minimum"),
        ("maximum", "maximum"),
        ("exclusiveMinimum", "exclusive minimum"),
        ("exclusiveMaximum", "exclusive maximum"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ];
    let mut bounds: Vec<String> = KEYWORDS
        .iter()
        .filter_map(|(key, label)| {
            schema
                .get(*key)
                .map(|value| format!("{label} {}", number(value)))
        })
        .collect();
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        bounds.push(format!("pattern `{pattern}`"));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values
            .iter()
            .map(|v| {
                format!(
                    "`{}`",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        bounds.push(format!("one of {}", values.join(", ")));
    }
    bounds
}

/// A schema number without a float's trailing `.0` (`minimum: 1.0` reads `1`).
fn number(value: &Value) -> String {
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{n:.0}"),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_lists_and_nested_objects_with_types_and_bounds() {
        let schema = json!({
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["steps"],
                    "properties": {
                        "steps": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "object", "properties": {
                                "limit": {"type": "integer", "format": "int32",
                                          "minimum": 0.0, "default": 3,
                                          "description": "The most\n new attempts."}
                            }}
                        }
                    }
                }
            }
        });
        let fields = fields_of(&schema);
        let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["metadata.name", "spec", "spec.steps", "spec.steps[].limit"]
        );
        assert!(fields[2].required);
        assert_eq!(fields[2].type_name, "[]object");
        assert_eq!(fields[2].bounds, ["min items 1"]);
        let limit = &fields[3];
        assert_eq!(limit.type_name, "integer (int32)");
        assert_eq!(limit.default.as_deref(), Some("3"));
        assert_eq!(limit.bounds[0], "minimum 0");
        assert_eq!(limit.description, "The most new attempts.");
    }
}
