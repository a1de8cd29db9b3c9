//! The YAML data model at the centre of kdeploy.
//!
//! Values files and rendered templates are parsed into [`Node`] trees that remember where every
//! value came from ([`Mark`]), with plain scalars resolved the way kubectl reads them
//! ([`resolve`]). Trees become `serde_json::Value`s for the later stages, and [`emit`] writes YAML that
//! YAML 1.1 (kubectl) and YAML 1.2 parsers read as the same values.

pub mod emit;
mod parse;
pub mod resolve;

pub use parse::limits;
pub use parse::{
    Document, JsonDocument, ParseError, ScalarEvent, ScalarHook, ScalarStyle, TAB_INDENT_MESSAGE, parse_stream,
    parse_stream_in, parse_stream_json,
};
pub use resolve::Schema;

use indexmap::IndexMap;
use serde_json::Value as Json;

/// Every document of `text` as JSON, read with kubectl's rules: straight into JSON where the text
/// allows it ([`parse_stream_json`]), through marked trees otherwise; an error says where.
pub fn json_documents(text: &str) -> Result<Vec<JsonDocument>, ParseError> {
    if let Some(documents) = parse_stream_json(text, &mut |_| Ok(None)) {
        return Ok(documents);
    }
    parse_stream_to_json(text, &mut |_| Ok(None))
}

/// Every document of `text` through the full path ([`parse_stream`]), then as JSON: what
/// [`parse_stream_json`] leaves to it. A float JSON cannot carry is an error with its position.
pub fn parse_stream_to_json(text: &str, hook: &mut ScalarHook<'_>) -> Result<Vec<JsonDocument>, ParseError> {
    parse_stream(text, hook)?
        .into_iter()
        .map(|document| {
            let root = document.root.into_json().map_err(|e| ParseError {
                message: e.to_string(),
                mark: e.mark,
            })?;
            Ok(JsonDocument {
                root,
                mark: document.mark,
            })
        })
        .collect()
}

/// A position in YAML text; line and column count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Mapping),
}

/// A mapping keeps its keys in document order. Keys are strings, as Kubernetes objects need.
///
/// Hashed with foldhash (hashbrown's own hasher) rather than SipHash: every key of every rendered
/// document is hashed here, and SipHash was a visible part of a 10,000-object render. foldhash is
/// seeded per process, so keys cannot be crafted in advance to collide.
pub type Mapping = IndexMap<String, Entry, foldhash::fast::RandomState>;

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key_mark: Mark,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    String(String),
}

/// A float that JSON, and so the Kubernetes API, cannot carry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{value} at line {}, column {} cannot be represented in Kubernetes JSON; quote it to make it a string", mark.line, mark.column)]
pub struct NonFiniteFloat {
    pub value: String,
    pub mark: Mark,
}

impl Node {
    pub fn new(value: NodeValue, mark: Mark) -> Self {
        Node { value, mark }
    }

    /// Builds a tree from JSON, every node marked with `mark` (used for values inserted by templates).
    pub fn from_json(json: &Json, mark: Mark) -> Node {
        let value = match json {
            Json::Null => NodeValue::Scalar(Scalar::Null),
            Json::Bool(b) => NodeValue::Scalar(Scalar::Bool(*b)),
            Json::Number(n) => NodeValue::Scalar(if let Some(i) = n.as_i64() {
                Scalar::Int(i)
            } else if let Some(u) = n.as_u64() {
                Scalar::UInt(u)
            } else {
                Scalar::Float(n.as_f64().unwrap_or(f64::NAN))
            }),
            Json::String(s) => NodeValue::Scalar(Scalar::String(s.clone())),
            Json::Array(items) => NodeValue::Seq(items.iter().map(|item| Node::from_json(item, mark)).collect()),
            Json::Object(map) => NodeValue::Map(
                map.iter()
                    .map(|(k, v)| {
                        let entry = Entry {
                            key_mark: mark,
                            value: Node::from_json(v, mark),
                        };
                        (k.clone(), entry)
                    })
                    .collect(),
            ),
        };
        Node { value, mark }
    }

    pub fn to_json(&self) -> Result<Json, NonFiniteFloat> {
        Ok(match &self.value {
            NodeValue::Scalar(scalar) => scalar_to_json(scalar, self.mark)?,
            NodeValue::Seq(items) => Json::Array(items.iter().map(Node::to_json).collect::<Result<_, _>>()?),
            NodeValue::Map(map) => Json::Object(
                map.iter()
                    .map(|(k, entry)| Ok((k.clone(), entry.value.to_json()?)))
                    .collect::<Result<_, NonFiniteFloat>>()?,
            ),
        })
    }

    /// The tree as JSON, taking it: strings and keys move instead of being copied.
    pub fn into_json(self) -> Result<Json, NonFiniteFloat> {
        Ok(match self.value {
            NodeValue::Scalar(Scalar::String(s)) => Json::String(s),
            NodeValue::Scalar(scalar) => scalar_to_json(&scalar, self.mark)?,
            NodeValue::Seq(items) => Json::Array(items.into_iter().map(Node::into_json).collect::<Result<_, _>>()?),
            NodeValue::Map(map) => {
                let mut object = serde_json::Map::with_capacity(map.len());
                for (key, entry) in map {
                    object.insert(key, entry.value.into_json()?);
                }
                Json::Object(object)
            }
        })
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Scalar(Scalar::Null))
    }

    /// Visits every leaf (scalar, empty list or empty map) with its dotted path below `prefix`.
    pub fn for_each_leaf(&self, prefix: &str, visit: &mut dyn FnMut(&str, &Node)) {
        match &self.value {
            NodeValue::Map(map) if !map.is_empty() => {
                for (key, entry) in map {
                    entry.value.for_each_leaf(&join_path(prefix, key), visit);
                }
            }
            NodeValue::Seq(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    item.for_each_leaf(&format!("{prefix}[{i}]"), visit);
                }
            }
            _ => visit(prefix, self),
        }
    }
}

/// Appends `key` to a dotted path in place (`a` + `b` -> `a.b`), as [`join_path`] does.
pub fn push_path_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// `a` + `b` -> `a.b`; an empty prefix gives `b`.
pub fn join_path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn scalar_to_json(scalar: &Scalar, mark: Mark) -> Result<Json, NonFiniteFloat> {
    Ok(match scalar {
        Scalar::Null => Json::Null,
        Scalar::Bool(b) => Json::Bool(*b),
        Scalar::Int(i) => Json::from(*i),
        Scalar::UInt(u) => Json::from(*u),
        Scalar::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => {
                return Err(NonFiniteFloat {
                    value: f.to_string(),
                    mark,
                });
            }
        },
        Scalar::String(s) => Json::String(s.clone()),
    })
}
