//! Schema helpers for fields whose OpenAPI shape schemars cannot derive.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object kept as given: the API server prunes none of its fields.
pub fn preserved_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A list of objects kept as given.
pub fn preserved_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}
