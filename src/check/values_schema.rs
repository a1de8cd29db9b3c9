//! Values schemas (`values_schema:` in kdeploy.yaml, per target too): the merged values checked
//! against a JSON Schema (2020-12 unless it says otherwise; YAML or JSON, as Helm's values.schema.json)
//! before anything renders, each error naming where the value was set: `values/prod.yaml:3:11`,
//! `--data-value-yaml replicas`, `env APP_REPLICAS`. A message never quotes the value: it may have come
//! from a secret store. `kdeploy values --schema` starts one from the values at hand ([`infer`]).
//!
//! The schema is compiled by the `jsonschema` crate with patterns on the linear-time `regex` engine
//! and no way to fetch what a `$ref` names: a schema from an untrusted repository can neither stall
//! validation nor send a request.

use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value as Json, json};

use crate::values::Origin;

#[derive(Debug, thiserror::Error)]
pub enum ValuesSchemaError {
    #[error("values schema {}: {message}", path.display())]
    Schema { path: std::path::PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Reads and compiles the schema at `path`.
pub fn load(path: &Path) -> Result<jsonschema::Validator, ValuesSchemaError> {
    let fail = |message: String| ValuesSchemaError::Schema {
        path: path.to_path_buf(),
        message,
    };
    let text = crate::trust::read_text(path, "values schema", crate::trust::policy().limits.max_text_file_bytes)
        .map_err(|e| fail(e.to_string()))?;
    let mut documents = crate::yaml::json_documents(&text).map_err(|e| fail(e.at(path)))?;
    if documents.len() != 1 {
        return Err(fail(format!("holds {} documents; a schema is one", documents.len())));
    }
    let schema = documents.remove(0).root;
    jsonschema::options()
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&schema)
        .map_err(|e| fail(format!("is not a valid JSON Schema: {e}")))
}

/// `a.b[0]` from the JSON pointer `/a/b/0` (indexes of lists as `[i]`, as values are shown elsewhere).
fn dotted(value: &Json, pointer: &jsonschema::paths::Location) -> String {
    let mut path = String::new();
    let mut node = Some(value);
    for segment in pointer {
        let text = segment.to_string();
        match node {
            Some(Json::Array(items)) => {
                path.push_str(&format!("[{text}]"));
                node = text.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            _ => {
                crate::yaml::push_path_key(&mut path, &text);
                node = node.and_then(|n| n.get(&text));
            }
        }
    }
    path
}

/// What the error says, from the schema's side only: never the value.
fn describe(kind: &ValidationErrorKind) -> String {
    match kind {
        ValidationErrorKind::Type { kind } => format!("must be of type {}", type_text(kind)),
        ValidationErrorKind::Required { property } => format!("is missing the required key {property}"),
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            format!("has key(s) the schema does not allow: {}", unexpected.join(", "))
        }
        ValidationErrorKind::Enum { options } => format!("must be one of {options}"),
        ValidationErrorKind::Constant { expected_value } => format!("must be {expected_value}"),
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        ValidationErrorKind::MinLength { limit } => format!("must be at least {limit} character(s) long"),
        ValidationErrorKind::MaxLength { limit } => format!("may be at most {limit} character(s) long"),
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} item(s)"),
        ValidationErrorKind::MaxItems { limit } => format!("may have at most {limit} item(s)"),
        ValidationErrorKind::MinProperties { limit } => format!("must have at least {limit} key(s)"),
        ValidationErrorKind::MaxProperties { limit } => format!("may have at most {limit} key(s)"),
        ValidationErrorKind::Pattern { pattern } => format!("does not match the pattern `{pattern}`"),
        ValidationErrorKind::Format { format } => format!("is not a valid {format}"),
        ValidationErrorKind::UniqueItems => "must not repeat an item".to_owned(),
        ValidationErrorKind::MultipleOf { .. } => "is not a multiple the schema allows (multipleOf)".to_owned(),
        ValidationErrorKind::FalseSchema => "is not allowed here (the schema is `false`)".to_owned(),
        other => format!("does not meet the schema ({})", other.keyword()),
    }
}

fn type_text(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(one) => one.to_string(),
        jsonschema::error::TypeKind::Multiple(set) => {
            let names: Vec<String> = set.iter().map(|t| t.to_string()).collect();
            names.join(" or ")
        }
    }
}

/// Validates `values`; `origin_of` says where the value at a dotted path was set.
pub fn validate(
    validator: &jsonschema::Validator,
    schema_path: &Path,
    values: &Json,
    origin_of: &dyn Fn(&str) -> Option<Origin>,
) -> Result<(), ValuesSchemaError> {
    let mut lines = Vec::new();
    for error in validator.iter_errors(values).take(100) {
        let path = dotted(values, error.instance_path());
        let shown = if path.is_empty() {
            "the values".to_owned()
        } else {
            format!("`{path}`")
        };
        let at = origin_of(&path).map_or_else(String::new, |o| format!("{o}: "));
        lines.push(format!("{at}{shown} {}", describe(error.kind())));
    }
    if lines.is_empty() {
        return Ok(());
    }
    Err(ValuesSchemaError::Invalid(format!(
        "the values do not meet the schema {} ({} problem{}):\n  {}",
        schema_path.display(),
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        lines.join("\n  ")
    )))
}

/// A starting schema for `values`: each key with the type it has now, objects closed to other keys,
/// lists typed by their first item. Types only: a value never appears in it.
pub fn infer(values: &Json) -> Json {
    let mut schema = infer_node(values);
    if let Json::Object(map) = &mut schema {
        map.shift_insert(
            0,
            "$schema".to_owned(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
    }
    schema
}

fn infer_node(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            let properties: Map<String, Json> = map.iter().map(|(k, v)| (k.clone(), infer_node(v))).collect();
            json!({"type": "object", "properties": properties, "additionalProperties": false})
        }
        Json::Array(items) => match items.first() {
            Some(first) => json!({"type": "array", "items": infer_node(first)}),
            None => json!({"type": "array"}),
        },
        Json::String(_) => json!({"type": "string"}),
        Json::Bool(_) => json!({"type": "boolean"}),
        Json::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "integer"}),
        Json::Number(_) => json!({"type": "number"}),
        Json::Null => json!({"type": "null"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(schema: Json, values: Json) -> Result<(), String> {
        let validator = jsonschema::validator_for(&schema).unwrap();
        let origin = |path: &str| {
            (path == "replicas").then(|| Origin::Flag {
                flag: "--data-value-yaml",
                argument: "replicas".to_owned(),
            })
        };
        validate(&validator, Path::new("values.schema.yaml"), &values, &origin).map_err(|e| e.to_string())
    }

    #[test]
    fn errors_name_the_origin_and_never_the_value() {
        let schema = json!({"type": "object", "properties": {
            "replicas": {"type": "integer", "minimum": 1},
            "image": {"type": "object", "required": ["tag"], "properties": {"tag": {"type": "string"}}},
            "token": {"type": "string", "pattern": "^[a-f0-9]+$"}}});
        assert_eq!(
            check(
                schema.clone(),
                json!({"replicas": 2, "image": {"tag": "1.0"}, "token": "abc"})
            ),
            Ok(())
        );
        let error = check(schema, json!({"replicas": 0, "image": {}, "token": "s3cret-canary"})).unwrap_err();
        assert!(
            error.contains("--data-value-yaml replicas: `replicas` must be at least 1"),
            "{error}"
        );
        assert!(error.contains("`image` is missing the required key \"tag\""), "{error}");
        assert!(error.contains("`token` does not match the pattern"), "{error}");
        assert!(!error.contains("s3cret-canary"), "{error}");
    }

    #[test]
    fn an_inferred_schema_accepts_the_values_it_came_from_and_names_no_value() {
        let values =
            json!({"replicas": 2, "ratio": 0.5, "image": {"tag": "secret-looking"}, "hosts": ["a"], "on": true});
        let schema = infer(&values);
        assert!(!schema.to_string().contains("secret-looking"));
        assert_eq!(check(schema.clone(), values), Ok(()));
        assert!(check(schema, json!({"replicas": "2"})).is_err());
    }

    #[test]
    fn remote_references_are_never_fetched() {
        let schema = json!({"$ref": "https://example.invalid/schema.json"});
        assert!(jsonschema::options().build(&schema).is_err());
    }
}
