//! Structural schemas, as the Kubernetes API server reads them, and validation against them.
//!
//! One representation serves every origin: the OpenAPI v3 definitions of the built-in kinds (embedded,
//! or served by a cluster at `/openapi/v3`) and the `openAPIV3Schema` of CustomResourceDefinitions (in
//! the stream, in a cluster, or in schema folders). [`SchemaSet`] compiles them into an arena of
//! [`Schema`] nodes, references resolved, so that validating an object is a walk with no lookups by name.
//!
//! The rules follow the API server, not JSON Schema: a field set to `null` is a field left out; typed
//! objects refuse fields they do not declare (as `kubectl apply`'s default `--validate=strict` makes the
//! server do), unless `x-kubernetes-preserve-unknown-fields` says otherwise; `int-or-string` and
//! quantities take what Kubernetes' own decoders take; lists marked `set` or `map` refuse repeats, as
//! server-side apply does. A message never quotes the value it refuses: the value may be a secret.

use std::collections::HashMap;

use serde_json::Value as Json;

/// Index of a [`Schema`] in its [`SchemaSet`].
pub type SchemaId = u32;

/// Which JSON types a schema admits; none set means any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Types(u8);

impl Types {
    const OBJECT: u8 = 1;
    const ARRAY: u8 = 2;
    const STRING: u8 = 4;
    const INTEGER: u8 = 8;
    const NUMBER: u8 = 16;
    const BOOLEAN: u8 = 32;

    fn named(name: &str) -> u8 {
        match name {
            "object" => Self::OBJECT,
            "array" => Self::ARRAY,
            "string" => Self::STRING,
            "integer" => Self::INTEGER,
            "number" => Self::NUMBER,
            "boolean" => Self::BOOLEAN,
            _ => 0,
        }
    }

    fn admits(self, value: &Json) -> bool {
        if self.0 == 0 {
            return true;
        }
        let bit = match value {
            Json::Object(_) => Self::OBJECT,
            Json::Array(_) => Self::ARRAY,
            Json::String(_) => Self::STRING,
            Json::Bool(_) => Self::BOOLEAN,
            Json::Number(n) if is_integral(n) => Self::INTEGER | Self::NUMBER,
            Json::Number(_) => Self::NUMBER,
            Json::Null => return true,
        };
        self.0 & bit != 0
    }

    fn describe(self) -> String {
        let names = [
            (Self::OBJECT, "a map"),
            (Self::ARRAY, "a list"),
            (Self::STRING, "a string"),
            (Self::INTEGER, "an integer"),
            (Self::NUMBER, "a number"),
            (Self::BOOLEAN, "a boolean"),
        ];
        let wanted: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| self.0 & bit != 0 && !(*bit == Self::INTEGER && self.0 & Self::NUMBER != 0))
            .map(|(_, name)| *name)
            .collect();
        wanted.join(" or ")
    }
}

fn is_integral(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.3e18)
}

/// What a value is called in a message: its type, never its content.
pub fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Object(_) => "a map",
        Json::Array(_) => "a list",
        Json::String(_) => "a string",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if is_integral(n) => "an integer",
        Json::Number(_) => "a number",
        Json::Null => "null",
    }
}

/// Fields an object may have beyond its declared properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Additional {
    /// None: an undeclared field is an error.
    Closed,
    /// Any field, unchecked.
    Open,
    /// Any field, each checked against the schema.
    Each(SchemaId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Formats checked as the API server checks them; other formats are accepted as they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Int32,
    Int64,
    Byte,
    DateTime,
    Date,
    Uuid,
    Ipv4,
    Ipv6,
    Cidr,
    Mac,
}

impl Format {
    fn named(name: &str) -> Option<Format> {
        Some(match name {
            "int32" => Format::Int32,
            "int64" => Format::Int64,
            "byte" => Format::Byte,
            "date-time" | "datetime" => Format::DateTime,
            "date" => Format::Date,
            "uuid" | "uuid3" | "uuid4" | "uuid5" => Format::Uuid,
            "ipv4" => Format::Ipv4,
            "ipv6" => Format::Ipv6,
            "cidr" => Format::Cidr,
            "mac" => Format::Mac,
            _ => return None,
        })
    }
}

/// Values whose decoding Kubernetes does itself, beyond JSON types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    IntOrString,
    Quantity,
}

/// One node of a compiled schema.
#[derive(Debug, Clone)]
pub struct Schema {
    pub types: Types,
    pub special: Option<Special>,
    pub properties: HashMap<String, SchemaId, foldhash::fast::FixedState>,
    pub additional: Additional,
    pub items: Option<SchemaId>,
    pub required: Vec<String>,
    pub enumeration: Option<Vec<Json>>,
    pub format: Option<Format>,
    pub minimum: Option<(f64, bool)>,
    pub maximum: Option<(f64, bool)>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub pattern: Option<regex::Regex>,
    pub list: ListType,
    /// `x-kubernetes-embedded-resource`: a whole object, whose apiVersion, kind and metadata are implied.
    pub embedded: bool,
    /// The value a missing list-map key takes (a container port's protocol).
    pub default: Option<Json>,
    /// `allOf`, `anyOf`, `oneOf` and `not` of structural schemas: more rules on the same value.
    pub all_of: Vec<SchemaId>,
    pub any_of: Vec<SchemaId>,
    pub one_of: Vec<SchemaId>,
    pub not: Option<SchemaId>,
}

impl Default for Schema {
    fn default() -> Self {
        Schema {
            types: Types::default(),
            special: None,
            properties: HashMap::default(),
            additional: Additional::Open,
            items: None,
            required: Vec::new(),
            enumeration: None,
            format: None,
            minimum: None,
            maximum: None,
            min_length: None,
            max_length: None,
            min_items: None,
            max_items: None,
            min_properties: None,
            max_properties: None,
            pattern: None,
            list: ListType::Atomic,
            embedded: false,
            default: None,
            all_of: Vec::new(),
            any_of: Vec::new(),
            one_of: Vec::new(),
            not: None,
        }
    }
}

/// Where a schema comes from decides how a bare `type: object` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Built-in kinds' OpenAPI: an object with no properties is free-form (`FieldsV1`, `RawExtension`).
    BuiltIn,
    /// A CRD's structural schema: fields not declared are pruned, so strict validation refuses them.
    Structural,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// Compiled schemas, and named definitions waiting to be compiled: a definition is compiled the
/// first time something needs it (a kind in the manifest, a reference), so a render pays for the few
/// dozen definitions its kinds use, not for all of Kubernetes.
#[derive(Debug, Default, Clone)]
pub struct SchemaSet {
    nodes: Vec<Schema>,
    definitions: HashMap<String, SchemaId>,
    pending: HashMap<String, Pending>,
}

/// A definition not yet compiled: parsed already, or still JSON text (the embedded schemas, parsed
/// one by one as kinds need them).
#[derive(Debug, Clone)]
pub enum Pending {
    Parsed(Json),
    Text(Box<serde_json::value::RawValue>),
}

/// The name an OpenAPI `$ref` points at.
fn reference_name(reference: &str) -> &str {
    reference
        .strip_prefix("#/components/schemas/")
        .or_else(|| reference.strip_prefix("#/definitions/"))
        .unwrap_or(reference)
}

impl SchemaSet {
    pub fn new() -> SchemaSet {
        SchemaSet::default()
    }

    pub fn get(&self, id: SchemaId) -> &Schema {
        &self.nodes[id as usize]
    }

    /// A definition, compiled now if it was waiting; none if there is no such definition.
    pub fn definition(&mut self, name: &str) -> Result<Option<SchemaId>, SchemaError> {
        if let Some(id) = self.definitions.get(name) {
            return Ok(Some(*id));
        }
        let schema = match self.pending.remove(name) {
            None => return Ok(None),
            Some(Pending::Parsed(schema)) => schema,
            Some(Pending::Text(text)) => serde_json::from_str(text.get())
                .map_err(|e| SchemaError(format!("the definition of {name} does not parse: {e}")))?,
        };
        let id = self.push(Schema::default());
        self.definitions.insert(name.to_owned(), id);
        let compiled = self.compile_node(&schema, Dialect::BuiltIn, 0)? as usize;
        // A definition compiled to a node of its own moves into its slot; one that is only a
        // reference to another is a copy of it.
        let mut node = if compiled > id as usize && compiled == self.nodes.len() - 1 {
            self.nodes.pop().unwrap_or_default()
        } else {
            self.nodes[compiled].clone()
        };
        if name.ends_with(".pkg.api.resource.Quantity") {
            node = Schema {
                special: Some(Special::Quantity),
                ..Schema::default()
            };
        } else if name.ends_with(".pkg.util.intstr.IntOrString") {
            node = Schema {
                special: Some(Special::IntOrString),
                ..Schema::default()
            };
        }
        self.nodes[id as usize] = node;
        Ok(Some(id))
    }

    /// Compiles every definition still waiting.
    pub fn compile_all(&mut self) -> Result<(), SchemaError> {
        let names: Vec<String> = self.pending.keys().cloned().collect();
        for name in names {
            self.definition(&name)?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds named OpenAPI definitions (`components.schemas`), to be compiled when first needed;
    /// references between them resolve among these and the ones added before.
    pub fn add_definitions(&mut self, definitions: impl IntoIterator<Item = (String, Pending)>) {
        for (name, schema) in definitions {
            if !self.definitions.contains_key(&name) {
                self.pending.entry(name).or_insert(schema);
            }
        }
    }

    /// Compiles one schema that is not a named definition (a CRD version's `openAPIV3Schema`).
    pub fn add_schema(&mut self, schema: &Json, dialect: Dialect) -> Result<SchemaId, SchemaError> {
        self.compile_node(schema, dialect, 0)
    }

    fn push(&mut self, schema: Schema) -> SchemaId {
        self.nodes.push(schema);
        (self.nodes.len() - 1) as SchemaId
    }

    fn compile_node(&mut self, schema: &Json, dialect: Dialect, depth: usize) -> Result<SchemaId, SchemaError> {
        if depth > 64 {
            return Err(SchemaError("a schema nested more than 64 levels deep".into()));
        }
        let Some(map) = schema.as_object() else {
            // `true`/`false` as a schema (additionalProperties, items).
            return Ok(self.push(Schema::default()));
        };
        if let Some(reference) = map.get("$ref").and_then(Json::as_str) {
            return self.resolve(reference);
        }
        // `allOf: [{$ref}]` is how OpenAPI v3 puts a default or description beside a reference.
        if let Some(Json::Array(all)) = map.get("allOf")
            && all.len() == 1
            && let Some(reference) = all[0].get("$ref").and_then(Json::as_str)
            && !map.contains_key("type")
            && !map.contains_key("properties")
        {
            return self.resolve(reference);
        }
        let mut node = Schema::default();
        match map.get("type") {
            Some(Json::String(name)) => node.types = Types(Types::named(name)),
            Some(Json::Array(names)) => {
                node.types = Types(
                    names
                        .iter()
                        .filter_map(Json::as_str)
                        .map(Types::named)
                        .fold(0, |a, b| a | b),
                )
            }
            _ => {}
        }
        let flag = |key: &str| map.get(key).and_then(Json::as_bool).unwrap_or(false);
        if flag("x-kubernetes-int-or-string") || map.get("format").and_then(Json::as_str) == Some("int-or-string") {
            node.special = Some(Special::IntOrString);
            node.types = Types::default();
        }
        node.format = map.get("format").and_then(Json::as_str).and_then(Format::named);
        node.embedded = flag("x-kubernetes-embedded-resource");
        let preserve = flag("x-kubernetes-preserve-unknown-fields");
        let mut properties = HashMap::default();
        if let Some(Json::Object(declared)) = map.get("properties") {
            for (name, sub) in declared {
                let id = self.compile_node(sub, dialect, depth + 1)?;
                properties.insert(name.clone(), id);
            }
        }
        node.additional = match map.get("additionalProperties") {
            Some(Json::Bool(false)) => Additional::Closed,
            Some(Json::Bool(true)) => Additional::Open,
            Some(sub @ Json::Object(_)) => Additional::Each(self.compile_node(sub, dialect, depth + 1)?),
            _ if preserve => Additional::Open,
            _ if !properties.is_empty() => Additional::Closed,
            _ if dialect == Dialect::Structural && node.types.0 == Types::OBJECT && !node.embedded => {
                Additional::Closed
            }
            _ => Additional::Open,
        };
        node.properties = properties;
        if let Some(items) = map.get("items").filter(|i| i.is_object()) {
            node.items = Some(self.compile_node(items, dialect, depth + 1)?);
        }
        if let Some(Json::Array(required)) = map.get("required") {
            node.required = required.iter().filter_map(Json::as_str).map(str::to_owned).collect();
        }
        if let Some(Json::Array(values)) = map.get("enum") {
            node.enumeration = Some(values.clone());
        }
        let number = |key: &str| map.get(key).and_then(Json::as_f64);
        let count = |key: &str| map.get(key).and_then(Json::as_u64);
        node.minimum = number("minimum").map(|m| (m, flag("exclusiveMinimum")));
        node.maximum = number("maximum").map(|m| (m, flag("exclusiveMaximum")));
        node.min_length = count("minLength");
        node.max_length = count("maxLength");
        node.min_items = count("minItems");
        node.max_items = count("maxItems");
        node.min_properties = count("minProperties");
        node.max_properties = count("maxProperties");
        // ECMA-262 patterns that Rust's regex cannot compile (look-around, back-references) are left to
        // the API server.
        node.pattern = map
            .get("pattern")
            .and_then(Json::as_str)
            .and_then(|p| regex::Regex::new(p).ok());
        node.list = match map.get("x-kubernetes-list-type").and_then(Json::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                map.get("x-kubernetes-list-map-keys")
                    .and_then(Json::as_array)
                    .map(|keys| keys.iter().filter_map(Json::as_str).map(str::to_owned).collect())
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        };
        node.default = map.get("default").filter(|d| !d.is_object() && !d.is_array()).cloned();
        for (key, target) in [("allOf", 0), ("anyOf", 1), ("oneOf", 2)] {
            if let Some(Json::Array(subs)) = map.get(key) {
                let mut ids = Vec::with_capacity(subs.len());
                for sub in subs {
                    ids.push(self.compile_node(sub, dialect, depth + 1)?);
                }
                match target {
                    0 => node.all_of = ids,
                    1 => node.any_of = ids,
                    _ => node.one_of = ids,
                }
            }
        }
        // Built-in OpenAPI spells these two with `oneOf`; read them as the decoders do.
        if dialect == Dialect::BuiltIn && !node.one_of.is_empty() {
            node.one_of.clear();
        }
        if let Some(sub) = map.get("not").filter(|n| n.is_object()) {
            node.not = Some(self.compile_node(sub, dialect, depth + 1)?);
        }
        Ok(self.push(node))
    }

    fn resolve(&mut self, reference: &str) -> Result<SchemaId, SchemaError> {
        let name = reference_name(reference);
        self.definition(name)?
            .ok_or_else(|| SchemaError(format!("the schema refers to `{name}`, which is not defined")))
    }
}

/// One step of a path into an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A path into an object, `spec.template.spec.containers[0].name`.
pub fn path_text(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Step::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

/// One thing wrong with an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: Vec<Step>,
    /// True when the path's last key is itself the mistake (an unknown field): point at the key.
    pub at_key: bool,
    pub message: String,
}

/// A step of the path being walked, borrowed from the value: owned only when something is reported.
#[derive(Debug, Clone, Copy)]
enum StepRef<'v> {
    Key(&'v str),
    Index(usize),
}

/// Walks a value against a schema, collecting every violation.
pub struct Validator<'s, 'v> {
    set: &'s SchemaSet,
    /// The schema of `metadata` in embedded resources and custom resources (ObjectMeta).
    object_meta: Option<SchemaId>,
    path: Vec<StepRef<'v>>,
    pub violations: Vec<Violation>,
}

/// Stops a hostile or broken document from producing an unbounded report.
const MAX_VIOLATIONS: usize = 200;

impl<'s, 'v> Validator<'s, 'v> {
    pub fn new(set: &'s SchemaSet, object_meta: Option<SchemaId>) -> Validator<'s, 'v> {
        Validator {
            set,
            object_meta,
            path: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn report(&mut self, at_key: bool, message: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(Violation {
                path: self
                    .path
                    .iter()
                    .map(|step| match step {
                        StepRef::Key(key) => Step::Key((*key).to_owned()),
                        StepRef::Index(i) => Step::Index(*i),
                    })
                    .collect(),
                at_key,
                message,
            });
        }
    }

    /// Validates a whole object: a built-in kind's top-level schema, or a custom resource's
    /// `openAPIV3Schema` (whose `metadata` is ObjectMeta, whatever the CRD says).
    pub fn object(&mut self, value: &'v Json, schema: SchemaId, custom: bool) {
        self.path.clear();
        if custom {
            self.resource(value, schema);
        } else {
            self.value(value, schema);
        }
    }

    /// A whole resource: apiVersion, kind and metadata as the API server reads them, the rest by `schema`.
    fn resource(&mut self, value: &'v Json, schema: SchemaId) {
        let Json::Object(map) = value else {
            return self.value(value, schema);
        };
        let node = self.set.get(schema);
        for (key, field) in map {
            self.path.push(StepRef::Key(key));
            match key.as_str() {
                "apiVersion" | "kind" if !field.is_string() && !field.is_null() => {
                    self.report(false, format!("must be a string, not {}", type_name(field)))
                }
                "apiVersion" | "kind" => {}
                "metadata" => match self.object_meta {
                    Some(meta) => self.value(field, meta),
                    None => {
                        if !field.is_object() && !field.is_null() {
                            self.report(false, format!("must be a map, not {}", type_name(field)))
                        }
                    }
                },
                _ => match node.properties.get(key.as_str()) {
                    Some(&sub) => self.value(field, sub),
                    None => self.additional(node.additional, key, field),
                },
            }
            self.path.pop();
        }
        self.required(node, map);
        self.object_rules(node, map);
    }

    fn additional(&mut self, additional: Additional, key: &str, field: &'v Json) {
        match additional {
            Additional::Open => {}
            Additional::Each(sub) => self.value(field, sub),
            Additional::Closed => self.report(true, format!("unknown field `{key}`")),
        }
    }

    fn required(&mut self, node: &Schema, map: &serde_json::Map<String, Json>) {
        for name in &node.required {
            if !map.contains_key(name.as_str()) {
                self.report(false, format!("missing required field `{name}`"));
            }
        }
    }

    fn object_rules(&mut self, node: &Schema, map: &serde_json::Map<String, Json>) {
        let count = map.len() as u64;
        if let Some(min) = node.min_properties.filter(|&m| count < m) {
            self.report(false, format!("must have at least {min} field(s), has {count}"));
        }
        if let Some(max) = node.max_properties.filter(|&m| count > m) {
            self.report(false, format!("may have at most {max} field(s), has {count}"));
        }
    }

    pub fn value(&mut self, value: &'v Json, schema: SchemaId) {
        // A field set to null is a field left out, to the API server's decoders and to CRD pruning.
        if value.is_null() {
            return;
        }
        let node = self.set.get(schema);
        if node.embedded {
            return self.resource(value, schema);
        }
        match node.special {
            Some(Special::IntOrString) => {
                if !(value.is_string() || matches!(value, Json::Number(n) if is_integral(n))) {
                    self.report(
                        false,
                        format!("must be an integer or a string, not {}", type_name(value)),
                    );
                }
                return self.value_rules(node, value);
            }
            Some(Special::Quantity) => {
                match value {
                    Json::String(text) if !is_quantity(text) => self.report(
                        false,
                        "is not a quantity: quantities are a number with an optional suffix (100m, 1.5, 2Gi, 1e3)"
                            .to_owned(),
                    ),
                    Json::String(_) | Json::Number(_) => {}
                    other => self.report(
                        false,
                        format!("must be a quantity (a string or a number), not {}", type_name(other)),
                    ),
                }
                return;
            }
            None => {}
        }
        if !node.types.admits(value) {
            return self.report(
                false,
                format!("must be {}, not {}", node.types.describe(), type_name(value)),
            );
        }
        match value {
            Json::Object(map) => {
                for (key, field) in map {
                    self.path.push(StepRef::Key(key));
                    match node.properties.get(key.as_str()) {
                        Some(&sub) => self.value(field, sub),
                        None => self.additional(node.additional, key, field),
                    }
                    self.path.pop();
                }
                self.required(node, map);
                self.object_rules(node, map);
            }
            Json::Array(items) => {
                if let Some(sub) = node.items {
                    for (i, item) in items.iter().enumerate() {
                        self.path.push(StepRef::Index(i));
                        self.value(item, sub);
                        self.path.pop();
                    }
                }
                self.list_rules(node, items);
            }
            _ => self.scalar_rules(node, value),
        }
        self.value_rules(node, value);
    }

    fn list_rules(&mut self, node: &Schema, items: &'v [Json]) {
        let count = items.len() as u64;
        if let Some(min) = node.min_items.filter(|&m| count < m) {
            self.report(false, format!("must have at least {min} item(s), has {count}"));
        }
        if let Some(max) = node.max_items.filter(|&m| count > m) {
            self.report(false, format!("may have at most {max} item(s), has {count}"));
        }
        match &node.list {
            ListType::Atomic => {}
            ListType::Set => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(first) = items[..i].iter().position(|earlier| earlier == item) {
                        self.path.push(StepRef::Index(i));
                        self.report(
                            false,
                            format!("repeats item [{first}] of a list whose items must be unique"),
                        );
                        self.path.pop();
                    }
                }
            }
            ListType::Map(keys) if !keys.is_empty() => {
                let item_schema = node.items.map(|id| self.set.get(id));
                let key_of = |item: &Json| -> Option<Vec<Json>> {
                    keys.iter()
                        .map(|key| {
                            item.get(key).filter(|v| !v.is_null()).cloned().or_else(|| {
                                let property = item_schema?.properties.get(key.as_str())?;
                                self.set.get(*property).default.clone()
                            })
                        })
                        .collect()
                };
                let identities: Vec<Option<Vec<Json>>> = items.iter().map(key_of).collect();
                for (i, identity) in identities.iter().enumerate() {
                    let Some(identity) = identity else { continue };
                    if let Some(first) = identities[..i]
                        .iter()
                        .position(|earlier| earlier.as_ref() == Some(identity))
                    {
                        let described: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
                        self.path.push(StepRef::Index(i));
                        self.report(
                            false,
                            format!(
                                "has the same {} as item [{first}]; server-side apply refuses repeated keys in this list",
                                described.join(" and ")
                            ),
                        );
                        self.path.pop();
                    }
                }
            }
            ListType::Map(_) => {}
        }
    }

    fn scalar_rules(&mut self, node: &Schema, value: &Json) {
        match value {
            Json::String(text) => {
                let length = text.chars().count() as u64;
                if let Some(min) = node.min_length.filter(|&m| length < m) {
                    self.report(false, format!("must be at least {min} character(s) long, is {length}"));
                }
                if let Some(max) = node.max_length.filter(|&m| length > m) {
                    self.report(false, format!("may be at most {max} character(s) long, is {length}"));
                }
                if let Some(pattern) = &node.pattern
                    && !pattern.is_match(text)
                {
                    self.report(false, format!("does not match the pattern `{}`", pattern.as_str()));
                }
                if let Some(format) = node.format
                    && !string_has_format(text, format)
                {
                    self.report(false, format!("is not a valid {}", format_name(format)));
                }
            }
            Json::Number(n) => {
                if let Some(f) = n.as_f64() {
                    if let Some((min, exclusive)) = node.minimum
                        && (f < min || exclusive && f == min)
                    {
                        let word = if exclusive { "greater than" } else { "at least" };
                        self.report(false, format!("must be {word} {min}"));
                    }
                    if let Some((max, exclusive)) = node.maximum
                        && (f > max || exclusive && f == max)
                    {
                        let word = if exclusive { "less than" } else { "at most" };
                        self.report(false, format!("must be {word} {max}"));
                    }
                }
                let out_of_range = match node.format {
                    Some(Format::Int32) => {
                        n.as_i64().is_none_or(|i| i32::try_from(i).is_err())
                            && n.as_f64().is_none_or(|f| f.fract() == 0.0)
                    }
                    Some(Format::Int64) => n.as_i64().is_none() && n.as_f64().is_none_or(|f| f.fract() == 0.0),
                    _ => false,
                };
                if out_of_range && node.types.0 & Types::INTEGER != 0 {
                    let range = if node.format == Some(Format::Int32) { "32" } else { "64" };
                    self.report(false, format!("is beyond the range of a {range}-bit integer"));
                }
            }
            _ => {}
        }
    }

    /// Rules that apply to a value of any type: enum, and the combinators.
    fn value_rules(&mut self, node: &Schema, value: &'v Json) {
        if let Some(allowed) = &node.enumeration
            && !allowed.iter().any(|a| a == value)
        {
            let listed: Vec<String> = allowed.iter().take(12).map(enum_text).collect();
            let more = if allowed.len() > 12 { ", ..." } else { "" };
            self.report(false, format!("must be one of {}{more}", listed.join(", ")));
        }
        for &sub in &node.all_of {
            self.value(value, sub);
        }
        if !node.any_of.is_empty() && !node.any_of.iter().any(|&sub| self.passes(value, sub)) {
            self.report(false, "matches none of the schemas listed in anyOf".to_owned());
        }
        if !node.one_of.is_empty() {
            let matched = node.one_of.iter().filter(|&&sub| self.passes(value, sub)).count();
            if matched != 1 {
                self.report(
                    false,
                    format!("must match exactly one of the schemas listed in oneOf, matches {matched}"),
                );
            }
        }
        if let Some(sub) = node.not
            && self.passes(value, sub)
        {
            self.report(false, "matches the schema it must not match (not)".to_owned());
        }
    }

    /// Whether `value` passes `schema`, without reporting anything.
    fn passes(&self, value: &'v Json, schema: SchemaId) -> bool {
        let mut probe = Validator::new(self.set, self.object_meta);
        probe.value(value, schema);
        probe.violations.is_empty()
    }
}

fn enum_text(value: &Json) -> String {
    match value {
        Json::String(s) => format!("`{s}`"),
        other => other.to_string(),
    }
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Int32 => "32-bit integer",
        Format::Int64 => "64-bit integer",
        Format::Byte => "base64 text (format byte)",
        Format::DateTime => "RFC 3339 date and time",
        Format::Date => "date (YYYY-MM-DD)",
        Format::Uuid => "UUID",
        Format::Ipv4 => "IPv4 address",
        Format::Ipv6 => "IPv6 address",
        Format::Cidr => "CIDR",
        Format::Mac => "MAC address",
    }
}

fn string_has_format(text: &str, format: Format) -> bool {
    use base64::Engine;
    match format {
        Format::Int32 | Format::Int64 => true,
        Format::Byte => base64::engine::general_purpose::STANDARD.decode(text).is_ok(),
        Format::DateTime => is_date_time(text),
        Format::Date => is_date(text),
        Format::Uuid => is_uuid(text),
        Format::Ipv4 => text.parse::<std::net::Ipv4Addr>().is_ok(),
        Format::Ipv6 => text.parse::<std::net::Ipv6Addr>().is_ok(),
        Format::Cidr => {
            text.split_once('/').is_some_and(
                |(ip, bits)| match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
                    (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
                    (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
                    _ => false,
                },
            )
        }
        Format::Mac => {
            let parts: Vec<&str> = text.split([':', '-']).collect();
            matches!(parts.len(), 6 | 8 | 20)
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        }
    }
}

fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0..4, 5..7, 8..10]
            .iter()
            .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit))
        && (1..=12).contains(&text[5..7].parse::<u8>().unwrap_or(0))
        && (1..=31).contains(&text[8..10].parse::<u8>().unwrap_or(0))
}

/// RFC 3339: `2026-12-01T10:00:00Z`, with optional fractional seconds and a numeric offset.
fn is_date_time(text: &str) -> bool {
    if text.len() < 20 || !text.is_char_boundary(10) || !is_date(&text[..10]) {
        return false;
    }
    let rest = &text.as_bytes()[10..];
    if !matches!(rest[0], b'T' | b't' | b' ') {
        return false;
    }
    let time = &rest[1..];
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if time.len() < 9
        || time[2] != b':'
        || time[5] != b':'
        || !digits(&time[0..2])
        || !digits(&time[3..5])
        || !digits(&time[6..8])
    {
        return false;
    }
    let mut zone = &time[8..];
    if zone.first() == Some(&b'.') {
        let fraction = zone[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if fraction == 0 {
            return false;
        }
        zone = &zone[1 + fraction..];
    }
    match zone {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

fn is_uuid(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// What `resource.ParseQuantity` accepts: a signed decimal number, then a binary suffix (Ki … Ei), a
/// decimal suffix (n, u, m, k, M, G, T, P, E) or an exponent (e3, E-2).
pub fn is_quantity(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let number_start = i;
    let mut digits = 0;
    let mut dot = false;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => digits += 1,
            b'.' if !dot => dot = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 || i == number_start {
        return false;
    }
    let suffix = &text[i..];
    match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        _ => {
            let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
                return false;
            };
            let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            !exponent.is_empty() && exponent.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn structural(schema: Json) -> (SchemaSet, SchemaId) {
        let mut set = SchemaSet::new();
        let id = set.add_schema(&schema, Dialect::Structural).unwrap();
        (set, id)
    }

    fn messages(set: &SchemaSet, id: SchemaId, value: Json) -> Vec<String> {
        let mut validator = Validator::new(set, None);
        validator.value(&value, id);
        validator
            .violations
            .iter()
            .map(|v| format!("{}: {}", path_text(&v.path), v.message))
            .collect()
    }

    #[test]
    fn quantities_are_read_as_kubernetes_parses_them() {
        for good in [
            "1", "100m", "1.5", "2Gi", "1e3", "+3", "-1", ".5", "5.", "1E-2", "0.1Ki", "250M",
        ] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Gi", "1 Gi", "1gi", "1.2.3", "1e", "abc", "1KiB", "1e3.5"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn int_or_string_takes_both_and_nothing_else() {
        let (set, id) = structural(json!({"x-kubernetes-int-or-string": true}));
        assert!(messages(&set, id, json!(8080)).is_empty());
        assert!(messages(&set, id, json!("http")).is_empty());
        assert!(messages(&set, id, json!("25%")).is_empty());
        assert_eq!(
            messages(&set, id, json!(true)),
            [": must be an integer or a string, not a boolean"]
        );
        assert_eq!(
            messages(&set, id, json!(1.5)),
            [": must be an integer or a string, not a number"]
        );
    }

    #[test]
    fn nulls_are_fields_left_out_and_empty_maps_are_maps() {
        let (set, id) = structural(json!({
            "type": "object",
            "properties": {"replicas": {"type": "integer"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}
        }));
        assert!(messages(&set, id, json!({"replicas": null, "labels": null})).is_empty());
        assert!(messages(&set, id, json!({"labels": {}})).is_empty());
        assert_eq!(
            messages(&set, id, json!({"labels": []})),
            ["labels: must be a map, not a list"]
        );
    }

    #[test]
    fn preserve_unknown_fields_keeps_declared_fields_checked() {
        let (set, id) = structural(json!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"size": {"type": "integer"}}
        }));
        assert!(messages(&set, id, json!({"anything": {"deep": 1}})).is_empty());
        assert_eq!(
            messages(&set, id, json!({"size": "big"})),
            ["size: must be an integer, not a string"]
        );
    }

    #[test]
    fn a_bare_object_in_a_structural_schema_takes_no_fields_but_an_embedded_resource_does() {
        let (set, id) = structural(json!({
            "type": "object",
            "properties": {
                "bare": {"type": "object"},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
            }
        }));
        assert_eq!(
            messages(&set, id, json!({"bare": {"x": 1}})),
            ["bare.x: unknown field `x`"]
        );
        assert!(
            messages(
                &set,
                id,
                json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}}})
            )
            .is_empty()
        );
    }

    #[test]
    fn list_map_keys_that_repeat_are_refused_with_defaults_taken_into_account() {
        let mut set = SchemaSet::new();
        let definitions = json!({
            "Port": {"type": "object", "required": ["containerPort"], "properties": {
                "containerPort": {"type": "integer", "format": "int32"},
                "protocol": {"type": "string", "default": "TCP"}}},
            "Ports": {"type": "array", "items": {"$ref": "#/components/schemas/Port"},
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["containerPort", "protocol"]}
        });
        set.add_definitions(
            definitions
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, schema)| (name.clone(), Pending::Parsed(schema.clone()))),
        );
        let id = set.definition("Ports").unwrap().unwrap();
        assert!(
            messages(
                &set,
                id,
                json!([{"containerPort": 53}, {"containerPort": 53, "protocol": "UDP"}])
            )
            .is_empty()
        );
        assert_eq!(
            messages(
                &set,
                id,
                json!([{"containerPort": 53}, {"containerPort": 53, "protocol": "TCP"}])
            ),
            [
                "[1]: has the same `containerPort` and `protocol` as item [0]; server-side apply refuses repeated keys in this list"
            ]
        );
        assert_eq!(
            messages(&set, id, json!([{"containerPort": 4294967296i64}])),
            ["[0].containerPort: is beyond the range of a 32-bit integer"]
        );
    }

    #[test]
    fn enums_limits_patterns_and_formats() {
        let (set, id) = structural(json!({
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["Fast", "Safe"]},
                "count": {"type": "integer", "minimum": 1, "maximum": 5},
                "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$"},
                "when": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "maxItems": 3}
            }
        }));
        assert!(messages(&set, id, json!({"mode": "Fast", "count": 5, "name": "abc", "when": "2026-12-01T10:00:00.5+01:00", "tags": ["a", "b"]})).is_empty());
        assert_eq!(
            messages(
                &set,
                id,
                json!({"mode": "fast", "count": 0, "name": "ABCD", "when": "yesterday", "tags": ["a", "a"]})
            ),
            [
                "mode: must be one of `Fast`, `Safe`",
                "count: must be at least 1",
                "name: may be at most 3 character(s) long, is 4",
                "name: does not match the pattern `^[a-z]+$`",
                "when: is not a valid RFC 3339 date and time",
                "tags[1]: repeats item [0] of a list whose items must be unique",
            ]
        );
    }
}
