//! JSON Schema: services and bounties describe their input and output with one, and every
//! run's input and every delivery's output is checked against it (SPEC §4).
//!
//! The validator is built without remote `$ref` resolution (the crate's HTTP and file
//! resolvers are compiled out), so a schema can never make the server fetch anything; a
//! schema that needs a remote document is refused when it is published.

use serde_json::Value;

use crate::Invalid;

/// The largest schema accepted, serialised; larger ones are refused as unreasonable.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// A schema that was checked against its meta-schema and compiles.
#[derive(Debug)]
pub struct Schema(jsonschema::Validator);

impl Schema {
    /// Checks `value` as a JSON Schema. An empty object (`{}`) accepts everything; the
    /// boolean schemas `true` and `false` are refused (the API documents schemas as objects,
    /// and `{}` and `{"not": {}}` say the same).
    pub fn compile(value: &Value) -> Result<Self, Invalid> {
        if !value.is_object() {
            return Err(Invalid::field("", "must be a JSON Schema (an object)"));
        }
        if value.to_string().len() > MAX_SCHEMA_BYTES {
            return Err(Invalid::field("", format!("must be at most {MAX_SCHEMA_BYTES} bytes")));
        }
        if let Err(e) = jsonschema::meta::validate(value) {
            return Err(Invalid::field(e.instance_path().to_string(), e.to_string()));
        }
        jsonschema::validator_for(value)
            .map(Self)
            .map_err(|e| Invalid::field("", format!("is not a usable JSON Schema: {e}")))
    }

    /// Every way `instance` fails the schema, each at the JSON pointer of the failing part
    /// (`/prompt`, `/items/2`; the empty path is the whole document).
    pub fn check(&self, instance: &Value) -> Result<(), Invalid> {
        let mut inv = Invalid::default();
        for e in self.0.iter_errors(instance) {
            inv.push(e.instance_path().to_string(), e.to_string());
        }
        inv.finish(|| ())
    }
}

/// Checks `instance` against the schema `schema` (a stored, already-accepted one), naming
/// failures `{field}{pointer}`, e.g. `input_data/prompt`.
pub fn check(schema: &Value, instance: &Value, field: &str) -> Result<(), Invalid> {
    // A boolean schema stored before they were refused at publishing still means what it
    // says: `true` accepts everything, `false` nothing.
    let compiled = match schema {
        Value::Bool(b) => jsonschema::validator_for(&Value::Bool(*b))
            .map(Schema)
            .map_err(|e| Invalid::field("", format!("is not a usable JSON Schema: {e}"))),
        other => Schema::compile(other),
    };
    compiled.and_then(|s| s.check(instance)).map_err(|e| e.at(field))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn failing_parts_are_named_by_json_pointer() {
        let schema = json!({
            "type": "object",
            "required": ["prompt"],
            "properties": {"prompt": {"type": "string"}, "n": {"type": "integer", "maximum": 4}}
        });
        let err = check(&schema, &json!({"prompt": 5, "n": 9}), "input_data").unwrap_err();
        let mut paths: Vec<_> = err.0.iter().map(|e| e.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["input_data/n", "input_data/prompt"]);
        let missing = check(&schema, &json!({}), "input_data").unwrap_err();
        assert_eq!(missing.0[0].path, "input_data");
        assert!(check(&schema, &json!({"prompt": "city"}), "input_data").is_ok());
        assert!(check(&json!({}), &json!([1, 2]), "x").is_ok(), "the empty schema accepts anything");
    }

    #[test]
    fn bad_and_remote_schemas_are_refused() {
        assert!(Schema::compile(&json!({"type": "no-such-type"})).is_err());
        assert!(Schema::compile(&json!("string")).is_err());
        assert!(Schema::compile(&json!(true)).is_err(), "the document says a schema is an object");
        assert!(Schema::compile(&json!(false)).is_err());
        assert!(Schema::compile(&json!({"$ref": "https://example.com/schema.json"})).is_err());
        assert!(Schema::compile(&json!({"type": "object", "properties": {"a": {"type": "string"}}})).is_ok());
    }
}
