//! Values schemas (`values_schema:` in kdeploy.yaml, per target too): the merged values checked
//! against a JSON Schema (2020-12 unless it says otherwise; YAML or JSON, as Helm's values.schema.json)
//! before anything renders, each error naming where the value was set: `values/prod.yaml:3:11`,
//! `--data-value-yaml replicas`, `env APP_REPLICAS`. A message never quotes the value: it may have come
//! from a secret store. `kdeploy values --schema` starts one from the values at hand ([`infer`]).
//!
//! The schema is compiled by the `boon` crate, whose patterns run on the linear-time `regex` engine,
//! with a loader that refuses every `$ref` to another document: a schema from an untrusted repository
//! can neither stall validation nor read a file or send a request.

use std::path::Path;

use boon::ErrorKind;
use serde_json::{Map, Value as Json, json};

use crate::values::Origin;

#[derive(Debug, thiserror::Error)]
pub enum ValuesSchemaError {
    #[error("values schema {}: {message}", path.display())]
    Schema { path: std::path::PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// A compiled values schema.
pub struct ValuesSchema {
    schemas: boon::Schemas,
    root: boon::SchemaIndex,
}

/// Every `$ref` to a document other than the schema itself is refused, never fetched or read.
struct NoLoader;

impl boon::UrlLoader for NoLoader {
    fn load(&self, url: &str) -> Result<Json, Box<dyn std::error::Error>> {
        Err(format!("{url} is another document; a values schema must be whole in itself").into())
    }
}

/// Compiles `schema`, read from `label` (the name errors give it).
pub fn compile(schema: Json, label: &str) -> Result<ValuesSchema, String> {
    let mut compiler = boon::Compiler::new();
    compiler.use_loader(Box::new(NoLoader));
    compiler.enable_format_assertions();
    let location = "file:///values.schema.json";
    compiler.add_resource(location, schema).map_err(|e| e.to_string())?;
    let mut schemas = boon::Schemas::new();
    let root = compiler
        .compile(location, &mut schemas)
        .map_err(|e| format!("is not a valid JSON Schema: {}", chain(&e).replace(location, label)))?;
    Ok(ValuesSchema { schemas, root })
}

/// An error and its causes, `: `-joined.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Reads and compiles the schema at `path`.
pub fn load(path: &Path) -> Result<ValuesSchema, ValuesSchemaError> {
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
    compile(documents.remove(0).root, &path.display().to_string()).map_err(fail)
}

/// `a.b[0]`, as values are shown elsewhere.
fn dotted(location: &boon::InstanceLocation<'_>) -> String {
    let mut path = String::new();
    for token in &location.tokens {
        match token {
            boon::InstanceToken::Prop(key) => crate::yaml::push_path_key(&mut path, key),
            boon::InstanceToken::Item(index) => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// What the error says, from the schema's side only: never the value.
fn describe(kind: &ErrorKind<'_, '_>) -> String {
    let listed = |values: &[Json]| values.iter().map(Json::to_string).collect::<Vec<_>>().join(", ");
    match kind {
        ErrorKind::Type { want, .. } => {
            let names: Vec<String> = want.iter().map(|t| t.to_string()).collect();
            format!("must be of type {}", names.join(" or "))
        }
        ErrorKind::Required { want } => format!("is missing the required key(s) {}", want.join(", ")),
        ErrorKind::AdditionalProperties { got } => {
            let keys: Vec<&str> = got.iter().map(|k| k.as_ref()).collect();
            format!("has key(s) the schema does not allow: {}", keys.join(", "))
        }
        ErrorKind::Enum { want } => format!("must be one of {}", listed(want)),
        ErrorKind::Const { want } => format!("must be {want}"),
        ErrorKind::Minimum { want, .. } => format!("must be at least {want}"),
        ErrorKind::Maximum { want, .. } => format!("must be at most {want}"),
        ErrorKind::ExclusiveMinimum { want, .. } => format!("must be greater than {want}"),
        ErrorKind::ExclusiveMaximum { want, .. } => format!("must be less than {want}"),
        ErrorKind::MultipleOf { want, .. } => format!("must be a multiple of {want}"),
        ErrorKind::MinLength { want, .. } => format!("must be at least {want} character(s) long"),
        ErrorKind::MaxLength { want, .. } => format!("may be at most {want} character(s) long"),
        ErrorKind::MinItems { want, .. } => format!("must have at least {want} item(s)"),
        ErrorKind::MaxItems { want, .. } => format!("may have at most {want} item(s)"),
        ErrorKind::MinProperties { want, .. } => format!("must have at least {want} key(s)"),
        ErrorKind::MaxProperties { want, .. } => format!("may have at most {want} key(s)"),
        ErrorKind::Pattern { want, .. } => format!("does not match the pattern `{want}`"),
        ErrorKind::Format { want, .. } => format!("is not a valid {want}"),
        ErrorKind::UniqueItems { got } => format!("repeats item [{}] at [{}]", got[0], got[1]),
        ErrorKind::DependentRequired { prop, missing } | ErrorKind::Dependency { prop, missing } => {
            format!("has `{prop}`, which needs {}", missing.join(", "))
        }
        ErrorKind::FalseSchema => "is not allowed here (the schema is `false`)".to_owned(),
        ErrorKind::Not => "matches the schema it must not match (not)".to_owned(),
        ErrorKind::AnyOf => "matches none of the schemas listed in anyOf".to_owned(),
        ErrorKind::OneOf(None) => "matches none of the schemas listed in oneOf".to_owned(),
        ErrorKind::OneOf(Some((a, b))) => format!("matches both schemas {a} and {b} of oneOf; one is allowed"),
        ErrorKind::PropertyName { prop } => format!("has a key the schema's propertyNames refuses: {prop}"),
        _ => "does not meet the schema".to_owned(),
    }
}

/// The errors that say something: the leaves of boon's tree of causes.
fn leaves<'e, 's, 'v>(error: &'e boon::ValidationError<'s, 'v>, out: &mut Vec<&'e boon::ValidationError<'s, 'v>>) {
    if error.causes.is_empty() {
        out.push(error);
    }
    for cause in &error.causes {
        leaves(cause, out);
    }
}

/// Validates `values`; `origin_of` says where the value at a dotted path was set.
pub fn validate(
    schema: &ValuesSchema,
    schema_path: &Path,
    values: &Json,
    origin_of: &dyn Fn(&str) -> Option<Origin>,
) -> Result<(), ValuesSchemaError> {
    let Err(error) = schema.schemas.validate(values, schema.root) else {
        return Ok(());
    };
    let mut found = Vec::new();
    leaves(&error, &mut found);
    let lines: Vec<String> = found
        .iter()
        .take(100)
        .map(|error| {
            let path = dotted(&error.instance_location);
            let shown = if path.is_empty() {
                "the values".to_owned()
            } else {
                format!("`{path}`")
            };
            let at = origin_of(&path).map_or_else(String::new, |o| format!("{o}: "));
            format!("{at}{shown} {}", describe(&error.kind))
        })
        .collect();
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
        let validator = compile(schema, "values.schema.yaml").unwrap();
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
        assert!(error.contains("`image` is missing the required key(s) tag"), "{error}");
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
    fn other_documents_are_never_read_or_fetched() {
        for reference in [
            "https://example.invalid/schema.json",
            "file:///etc/passwd",
            "other.json",
        ] {
            let error = compile(json!({"$ref": reference}), "values.schema.yaml").err().unwrap();
            assert!(error.contains("must be whole in itself"), "{reference}: {error}");
        }
    }
}
