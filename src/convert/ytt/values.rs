//! ytt's data values, worked out once at conversion: the schema's defaults, every `#@data/values`
//! document overlaid in order with ytt's rules (maps merge, array items append, `@overlay/match
//! missing_ok=True`, `@overlay/replace`, `@overlay/remove`), then the data-values flags given to
//! `convert`. The result is the converted project's values file; the schema's types become its
//! values schema, so a value of the wrong type is refused at render time as ytt refuses it.

use serde_json::{Map, Value as Json, json};

use super::lines::{annotations_by_line, first_code};
use super::starlark::{Expr, parse_expr};
use super::template::DataDocument;
use crate::yaml::{Node, NodeValue, Scalar, parse_stream};

/// A refusal in a data document: (label of the file, line, why).
pub type Refused = (String, usize, String);

/// The type a schema gives a data value.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    String,
    Integer,
    Boolean,
    Float,
    Map(Vec<(String, Declared)>),
    Array(Box<Declared>),
    Any,
}

/// A declared data value: its type, default, and whether null is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub ty: Type,
    pub default: Json,
    pub nullable: bool,
}

fn parse_root(label: &str, document: &DataDocument) -> Result<Option<Node>, Refused> {
    if let Some((line, what)) = first_code(&document.text) {
        return Err((
            label.to_owned(),
            line,
            format!("{what} in a data values or schema document"),
        ));
    }
    let docs = parse_stream(&document.text, &mut |_| Ok(None))
        .map_err(|e| (label.to_owned(), e.mark.line, format!("invalid YAML: {}", e.message)))?;
    Ok(docs.into_iter().next().map(|d| d.root).filter(|root| !root.is_null()))
}

/// Literal values in annotations (`@schema/default ["a"]`): strings, numbers, booleans, None,
/// lists and dicts of them.
fn literal(e: &Expr) -> Option<Json> {
    Some(match e {
        Expr::Str(s) => Json::String(s.clone()),
        Expr::Int(i) => json!(i),
        Expr::Bool(b) => Json::Bool(*b),
        Expr::None => Json::Null,
        Expr::List(items) | Expr::Tuple(items) => Json::Array(items.iter().map(literal).collect::<Option<_>>()?),
        Expr::Dict(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let Expr::Str(k) = k else { return None };
                map.insert(k.clone(), literal(v)?);
            }
            Json::Object(map)
        }
        _ => return None,
    })
}

/// Reads the schema document into declarations.
pub fn read_schema(label: &str, document: &DataDocument) -> Result<Declared, Refused> {
    let annotations = annotations_by_line(&document.text);
    let root = parse_root(label, document)?;
    let Some(root) = root else {
        return Ok(Declared {
            ty: Type::Map(Vec::new()),
            default: json!({}),
            nullable: false,
        });
    };
    if !matches!(root.value, NodeValue::Map(_)) {
        return Err((
            label.into(),
            root.mark.line,
            "a schema document that is not a map".into(),
        ));
    }
    declare(label, &root, &[], &annotations)
}

fn declare(
    label: &str,
    node: &Node,
    annotations: &[(String, String)],
    all: &std::collections::HashMap<usize, Vec<(String, String)>>,
) -> Result<Declared, Refused> {
    let refuse = |why: String| (label.to_owned(), node.mark.line, why);
    let mut nullable = false;
    let mut any = false;
    let mut default: Option<Json> = None;
    for (name, args) in annotations {
        match name.as_str() {
            "schema/nullable" if args.is_empty() => nullable = true,
            "schema/type" => {
                let compact: String = args.chars().filter(|c| !c.is_whitespace()).collect();
                match compact.as_str() {
                    "any=True" => any = true,
                    "any=False" => {}
                    _ => return Err(refuse(format!("@schema/type {args}"))),
                }
            }
            "schema/default" => {
                let value = parse_expr(args)
                    .ok()
                    .and_then(|e| literal(&e))
                    .ok_or_else(|| refuse("@schema/default with anything but a literal value".into()))?;
                default = Some(value);
            }
            "schema/desc" | "schema/title" | "schema/examples" | "schema/deprecated" | "overlay/match" => {}
            other => {
                return Err(refuse(format!(
                    "the annotation @{other} in a schema (validations do not convert)"
                )));
            }
        }
    }
    if any {
        let value = node.to_json().map_err(|e| refuse(e.to_string()))?;
        return Ok(Declared {
            ty: Type::Any,
            default: if nullable { Json::Null } else { default.unwrap_or(value) },
            nullable,
        });
    }
    let declared = match &node.value {
        NodeValue::Scalar(scalar) => {
            let (ty, value) = match scalar {
                Scalar::String(s) => (Type::String, Json::String(s.clone())),
                Scalar::Bool(b) => (Type::Boolean, Json::Bool(*b)),
                Scalar::Int(i) => (Type::Integer, json!(i)),
                Scalar::UInt(u) => (Type::Integer, json!(u)),
                Scalar::Float(_) => {
                    return Err(refuse(
                        "a float in a schema (ytt and kdeploy write floats differently)".into(),
                    ));
                }
                Scalar::Null => {
                    return Err(refuse(
                        "null in a schema without @schema/nullable (ytt refuses it too)".into(),
                    ));
                }
            };
            Declared {
                ty,
                default: value,
                nullable,
            }
        }
        NodeValue::Map(entries) => {
            let mut declared = Vec::new();
            let mut defaults = Map::new();
            for (key, entry) in entries {
                let child = declare(
                    label,
                    &entry.value,
                    all.get(&entry.key_mark.line).map(Vec::as_slice).unwrap_or(&[]),
                    all,
                )?;
                defaults.insert(key.clone(), child.default.clone());
                declared.push((key.clone(), child));
            }
            Declared {
                ty: Type::Map(declared),
                default: Json::Object(defaults),
                nullable,
            }
        }
        NodeValue::Seq(items) => {
            let [item] = items.as_slice() else {
                return Err(refuse(
                    "an array in a schema with other than exactly one item (ytt refuses it too)".into(),
                ));
            };
            let item = declare(
                label,
                item,
                all.get(&item.mark.line).map(Vec::as_slice).unwrap_or(&[]),
                all,
            )?;
            Declared {
                ty: Type::Array(Box::new(item)),
                default: json!([]),
                nullable,
            }
        }
    };
    let mut declared = declared;
    if let Some(d) = default {
        let mut d = d;
        fill_defaults(&mut d, &declared);
        check(&d, &declared, "").map_err(|why| refuse(format!("@schema/default: {why}")))?;
        declared.default = d;
    }
    if nullable {
        declared.default = Json::Null;
    }
    Ok(declared)
}

/// Adds the schema's defaults to what a value leaves out: missing map keys, and the keys of every
/// array item, as ytt does.
pub fn fill_defaults(value: &mut Json, declared: &Declared) {
    match (&declared.ty, value) {
        (Type::Map(entries), Json::Object(map)) => {
            for (key, child) in entries {
                match map.get_mut(key) {
                    Some(v) => fill_defaults(v, child),
                    None => {
                        map.insert(key.clone(), child.default.clone());
                    }
                }
            }
        }
        (Type::Array(item), Json::Array(items)) => {
            for v in items {
                if v.is_object() && matches!(item.ty, Type::Map(_)) {
                    fill_defaults(v, item);
                }
            }
        }
        _ => {}
    }
}

/// Whether `value` has the declared type; the message names the path.
pub fn check(value: &Json, declared: &Declared, path: &str) -> Result<(), String> {
    let at = if path.is_empty() {
        "the data values".to_owned()
    } else {
        path.to_owned()
    };
    if value.is_null() {
        return if declared.nullable || declared.ty == Type::Any {
            Ok(())
        } else {
            Err(format!("{at} is null, which the schema does not allow"))
        };
    }
    let wrong = |expected: &str| Err(format!("{at} is {}, the schema says {expected}", kind(value)));
    match (&declared.ty, value) {
        (Type::Any, _) => Ok(()),
        (Type::String, Json::String(_)) | (Type::Boolean, Json::Bool(_)) => Ok(()),
        (Type::Integer, Json::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        (Type::Float, Json::Number(_)) => Ok(()),
        (Type::Map(entries), Json::Object(map)) => {
            for (key, v) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match entries.iter().find(|(k, _)| k == key) {
                    Some((_, child)) => check(v, child, &child_path)?,
                    None => return Err(format!("{child_path} is not declared in the schema")),
                }
            }
            Ok(())
        }
        (Type::Array(item), Json::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                check(v, item, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Type::String, _) => wrong("a string"),
        (Type::Integer, _) => wrong("an integer"),
        (Type::Boolean, _) => wrong("a boolean"),
        (Type::Float, _) => wrong("a float"),
        (Type::Map(_), _) => wrong("a map"),
        (Type::Array(_), _) => wrong("an array"),
    }
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a float",
        Json::Number(_) => "an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "a map",
    }
}

/// The JSON Schema (2020-12) kdeploy checks the values against: ytt's types, no undeclared keys,
/// and every key of an array item required (ytt fills them from the schema; kdeploy does not, so a
/// missing one is an error rather than a different value).
pub fn json_schema(declared: &Declared) -> Json {
    let mut schema = type_schema(declared, false);
    if let Json::Object(map) = &mut schema {
        map.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        map.insert(
            "description".into(),
            json!("Written by `kdeploy convert ytt` from the ytt data values schema."),
        );
    }
    schema
}

fn type_schema(declared: &Declared, in_item: bool) -> Json {
    let mut schema = match &declared.ty {
        Type::Any => return json!({}),
        Type::String => json!({"type": "string"}),
        Type::Integer => json!({"type": "integer"}),
        Type::Boolean => json!({"type": "boolean"}),
        Type::Float => json!({"type": "number"}),
        Type::Map(entries) => {
            let properties: Map<String, Json> = entries
                .iter()
                .map(|(k, v)| (k.clone(), type_schema(v, in_item)))
                .collect();
            let mut schema = json!({"type": "object", "properties": properties, "additionalProperties": false});
            if in_item {
                schema["required"] = json!(entries.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
            }
            schema
        }
        Type::Array(item) => json!({"type": "array", "items": type_schema(item, true)}),
    };
    if declared.nullable {
        let ty = schema["type"].clone();
        schema["type"] = json!([ty, "null"]);
    }
    schema
}

/// Overlays one `#@data/values` document onto `base` with ytt's rules.
pub fn overlay_document(
    base: &mut Json,
    label: &str,
    document: &DataDocument,
    schema: Option<&Declared>,
    first: bool,
) -> Result<(), Refused> {
    for (name, args) in &document.annotations {
        if name == "data/values" && !args.is_empty() {
            return Err((label.into(), document.line, format!("@data/values {args}")));
        }
    }
    let Some(root) = parse_root(label, document)? else {
        return Ok(());
    };
    let annotations = annotations_by_line(&document.text);
    if !matches!(root.value, NodeValue::Map(_)) {
        return Err((
            label.into(),
            root.mark.line,
            "a data values document that is not a map".into(),
        ));
    }
    if !base.is_object() {
        *base = json!({});
    }
    // Without a schema, the first document declares the data values.
    let adds_freely = schema.is_none() && first;
    overlay(base, &root, label, &annotations, adds_freely, schema)
}

fn overlay(
    base: &mut Json,
    node: &Node,
    label: &str,
    annotations: &std::collections::HashMap<usize, Vec<(String, String)>>,
    adds_freely: bool,
    schema: Option<&Declared>,
) -> Result<(), Refused> {
    let NodeValue::Map(entries) = &node.value else {
        *base = node
            .to_json()
            .map_err(|e| (label.to_owned(), node.mark.line, e.to_string()))?;
        return Ok(());
    };
    let Json::Object(map) = base else {
        *base = node
            .to_json()
            .map_err(|e| (label.to_owned(), node.mark.line, e.to_string()))?;
        return Ok(());
    };
    for (key, entry) in entries {
        let line = entry.key_mark.line;
        let refuse = |why: String| (label.to_owned(), line, why);
        let mut action = "merge";
        let mut missing_ok = false;
        for (name, args) in annotations.get(&line).map(Vec::as_slice).unwrap_or(&[]) {
            let compact: String = args.chars().filter(|c| !c.is_whitespace()).collect();
            match (name.as_str(), compact.as_str()) {
                ("overlay/match", "missing_ok=True") => missing_ok = true,
                ("overlay/match", "") => {}
                ("overlay/replace", "") => action = "replace",
                ("overlay/replace", "or_add=True") => {
                    action = "replace";
                    missing_ok = true;
                }
                ("overlay/remove", "") => action = "remove",
                ("overlay/merge", "") => {}
                (name, _) => return Err(refuse(format!("@{name} {args} on a data value"))),
            }
        }
        let child_schema = match schema.map(|s| &s.ty) {
            Some(Type::Map(declared)) => match declared.iter().find(|(k, _)| k == key) {
                Some((_, d)) => Some(d),
                None => return Err(refuse(format!("{key} is not declared in the schema (ytt refuses it)"))),
            },
            Some(Type::Any) | None => None,
            Some(_) => {
                return Err(refuse(format!(
                    "{key} set on a data value the schema does not declare as a map"
                )));
            }
        };
        let exists = map.contains_key(key);
        if !exists && !adds_freely && !missing_ok && schema.is_none() {
            return Err(refuse(format!(
                "{key} is not among the data values yet (ytt refuses it: add #@overlay/match missing_ok=True)"
            )));
        }
        let value = entry.value.to_json().map_err(|e| refuse(e.to_string()))?;
        match action {
            "remove" => {
                if !exists && !missing_ok {
                    return Err(refuse(format!(
                        "@overlay/remove of {key}, which is not there (ytt refuses it)"
                    )));
                }
                map.remove(key);
            }
            "replace" => {
                let mut value = value;
                if let Some(d) = child_schema {
                    fill_defaults(&mut value, d);
                }
                map.insert(key.clone(), value);
            }
            _ => {
                let slot = map.entry(key.clone()).or_insert(Json::Null);
                match (&entry.value.value, &mut *slot) {
                    (NodeValue::Map(_), Json::Object(_)) => {
                        overlay(slot, &entry.value, label, annotations, adds_freely, child_schema)?;
                    }
                    (NodeValue::Seq(items), Json::Array(existing)) => {
                        // ytt appends array items by default.
                        for item in items {
                            if annotations.get(&item.mark.line).is_some_and(|a| !a.is_empty()) {
                                return Err((
                                    label.to_owned(),
                                    item.mark.line,
                                    "an overlay annotation on an array item of a data value".into(),
                                ));
                            }
                            let mut v = item.to_json().map_err(|e| refuse(e.to_string()))?;
                            if let Some(Declared { ty: Type::Array(d), .. }) = child_schema {
                                fill_defaults(&mut v, d);
                            }
                            existing.push(v);
                        }
                    }
                    _ => {
                        let mut value = value;
                        if let Some(d) = child_schema {
                            fill_defaults(&mut value, d);
                        }
                        *slot = value;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `overlay` applied as kdeploy merges flags: maps merge deeply, anything else replaces.
pub fn merge_flags(base: &mut Json, flags: &Json) {
    match (base, flags) {
        (Json::Object(b), Json::Object(f)) => {
            for (k, v) in f {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge_flags(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (base, flags) => *base = flags.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> DataDocument {
        DataDocument {
            text: text.to_owned(),
            annotations: vec![("data/values".into(), String::new())],
            line: 1,
        }
    }

    #[test]
    fn data_values_overlay_as_ytt_does() {
        // From carvel.dev/ytt/docs/latest/ytt-data-values ("Splitting Data Values Overlays into multiple files").
        let mut base = json!({});
        overlay_document(
            &mut base,
            "a",
            &doc("key1: val1\nkey2:\n  nested: val2\nkey3:\nkey4:\nlist: [a]\n"),
            None,
            true,
        )
        .unwrap();
        overlay_document(
            &mut base,
            "b",
            &doc(
                "key3: new-val3\n#@overlay/remove\nkey4:\n#@overlay/match missing_ok=True\nkey5: new-val5\nlist: [b]\n",
            ),
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            base,
            json!({"key1": "val1", "key2": {"nested": "val2"}, "key3": "new-val3", "key5": "new-val5", "list": ["a", "b"]})
        );
        let e = overlay_document(&mut base, "c", &doc("typo: 1\n"), None, false).unwrap_err();
        assert!(e.2.contains("missing_ok"), "{e:?}");
    }

    #[test]
    fn schema_defaults_types_and_items() {
        // From carvel.dev/ytt/docs/latest/lang-ref-ytt-schema ("Defaults for Arrays", "@schema/nullable").
        let schema = read_schema(
            "s",
            &doc("app_domains:\n- \"\"\ndatabases:\n- name: \"\"\n  port: 5432\n#@schema/nullable\naws:\n  username: admin\n#@schema/default [\"x\"]\ntags:\n- \"\"\n"),
        )
        .unwrap();
        assert_eq!(
            schema.default,
            json!({"app_domains": [], "databases": [], "aws": null, "tags": ["x"]})
        );
        let mut values = schema.default.clone();
        overlay_document(
            &mut values,
            "v",
            &doc("databases:\n- name: core\n"),
            Some(&schema),
            false,
        )
        .unwrap();
        assert_eq!(values["databases"], json!([{"name": "core", "port": 5432}]));
        assert!(
            check(&json!({"app_domains": [1]}), &schema, "")
                .unwrap_err()
                .contains("app_domains[0]")
        );
        let js = json_schema(&schema);
        assert_eq!(
            js["properties"]["databases"]["items"]["required"],
            json!(["name", "port"])
        );
        assert_eq!(js["properties"]["aws"]["type"], json!(["object", "null"]));
    }
}
