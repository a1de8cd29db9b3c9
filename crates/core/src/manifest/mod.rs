//! The rendered stream as Kubernetes objects: checked, defaulted, ordered and written out.
//!
//! [`Manifest::from_documents`] takes the template stage's documents, drops the empty ones, unpacks
//! `List`s, checks that every object has `apiVersion`, `kind` and `metadata.name` and that no two
//! objects share kind, namespace and name, gives namespaced objects without a namespace the default
//! one, and orders them: Namespaces and CRDs first, then phase by phase ([`phase`]) in a fixed kind
//! order, template order within a kind. Every problem is reported at once, each with the template and
//! document it came from.

pub mod checksum;
mod kinds;
pub mod patch;
pub mod phase;

pub use kinds::rank as kind_rank;
pub use patch::{Patch, PatchOperation, PatchTarget, Shaping};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value as Json};

use crate::template::RenderedDocument;
use crate::yaml::emit::{EmitError, json_to_yaml};

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub template: PathBuf,
    /// Which document of the template's output, from 1.
    pub document: usize,
    /// Line where the document starts: of the rendered output, or of the file as written.
    pub line: usize,
    /// Whether `line` counts rendered output (templates, helm) or the file (plain manifests).
    pub rendered: bool,
    /// The project source it came from (its position in the list).
    pub source: usize,
    /// Its position among the `items` of a `List` document, when it came in one.
    pub list_item: Option<usize>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = if self.rendered { "rendered line" } else { "line" };
        write!(
            f,
            "{} (document {}, {line} {})",
            self.template.display(),
            self.document,
            self.line
        )
    }
}

/// What identifies an object in a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ObjectRef {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} (namespace {ns})", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// One Kubernetes object of the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub value: Json,
    pub source: Source,
}

impl Object {
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        group_of(self.api_version())
    }

    pub fn reference(&self) -> ObjectRef {
        ObjectRef {
            group: self.group().to_owned(),
            kind: self.kind().to_owned(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }
}

impl Object {
    /// `value` as the first document rendered from `t.yaml`, for the unit tests of this crate and of
    /// the `kdeploy` crate above it.
    #[doc(hidden)]
    pub fn rendered_for_test(value: Json) -> Object {
        Object {
            value,
            source: Source {
                template: "t.yaml".into(),
                document: 1,
                line: 1,
                rendered: true,
                source: 0,
                list_item: None,
            },
        }
    }
}

/// Sets `metadata.namespace` right after `metadata.name`, where people look for it.
fn set_namespace(object: &mut Json, namespace: &str) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Json::as_object_mut) {
        let at = metadata.keys().position(|k| k == "name").map_or(0, |i| i + 1);
        metadata.shift_insert(at, "namespace".to_owned(), Json::String(namespace.to_owned()));
    }
}

/// What identifies an object in a cluster, borrowed: group, kind, namespace and name.
fn identity(object: &Object) -> (&str, &str, Option<&str>, &str) {
    (object.group(), object.kind(), object.namespace(), object.name())
}

fn identity_hash(object: &Object) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    identity(object).hash(&mut hasher);
    hasher.finish()
}

fn same_identity(a: &Object, b: &Object) -> bool {
    identity(a) == identity(b)
}

/// The API group of an apiVersion (`""` for the core group).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// A problem with one document or object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub source: Source,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}", problems_text(.0))]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Emit(#[from] EmitError),
}

fn problems_text(problems: &[Problem]) -> String {
    let mut text = format!(
        "the rendered manifest has {} problem{}:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str(&format!("\n  {}: {}", problem.source, problem.message));
    }
    text
}

/// The objects to deploy, validated and in creation order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    pub objects: Vec<Object>,
}

impl Manifest {
    /// Builds the manifest; `default_namespace` goes to namespaced objects that have none.
    pub fn from_documents(
        documents: Vec<RenderedDocument>,
        default_namespace: Option<&str>,
    ) -> Result<Manifest, ManifestError> {
        Manifest::from_documents_shaped(documents, default_namespace, &Shaping::default())
    }

    /// Builds the manifest as [`Manifest::from_documents`] does, applying the project's patches and
    /// common labels after namespaces are defaulted and before objects are checked for duplicates.
    pub fn from_documents_shaped(
        documents: Vec<RenderedDocument>,
        default_namespace: Option<&str>,
        shaping: &Shaping,
    ) -> Result<Manifest, ManifestError> {
        // Each document is read, checked and placed on its own: on every core, in order.
        let unpacked = crate::parallel::map_owned(documents, |document| {
            let source = Source {
                template: document.template,
                document: document.index,
                line: document.line,
                rendered: document.rendered,
                source: document.source,
                list_item: None,
            };
            let mut objects = Vec::new();
            let mut problems = Vec::new();
            unpack(document.value, &source, &mut objects, &mut problems);
            (objects, problems, document.namespace)
        });
        let mut problems = Vec::new();
        let mut objects = Vec::new();
        let mut source_namespaces: Vec<Option<String>> = Vec::new();
        for (found, trouble, namespace) in unpacked {
            source_namespaces.resize(objects.len() + found.len(), namespace);
            objects.extend(found);
            problems.extend(trouble);
        }
        let custom_cluster_scoped = cluster_scoped_custom_kinds(&objects);
        let mut placed: Vec<(&mut Object, Option<String>)> = objects.iter_mut().zip(source_namespaces).collect();
        let misplaced = crate::parallel::map_mut(&mut placed, |(object, source_namespace)| {
            let cluster_scoped = kinds::is_builtin_cluster_scoped(object.group(), object.kind())
                || custom_cluster_scoped
                    .iter()
                    .any(|(group, kind)| group == object.group() && kind == object.kind());
            if cluster_scoped && object.namespace().is_some() {
                return Some(Problem {
                    source: object.source.clone(),
                    message: format!("{} is cluster-scoped but sets metadata.namespace", object.reference()),
                });
            }
            if !cluster_scoped
                && object.namespace().is_none()
                && let Some(namespace) = source_namespace.as_deref().or(default_namespace)
            {
                set_namespace(&mut object.value, namespace);
            }
            None
        });
        problems.extend(misplaced.into_iter().flatten());
        problems.extend(shaping.apply(&mut objects));
        // What ordering and the check for repeats need, read on every core: each object's phase and
        // kind rank, and a hash of its identity (group, kind, namespace, name).
        let keys = crate::parallel::map(&objects, |object| {
            let first = matches!(object.kind(), "Namespace" | "CustomResourceDefinition");
            let phase = phase::phase_of(&object.value);
            let order = (
                if first {
                    i32::MIN
                } else {
                    *phase.as_ref().unwrap_or(&phase::MAIN)
                },
                kinds::rank(object.kind()),
            );
            (order, identity_hash(object), phase.err())
        });
        for (object, (_, _, bad_phase)) in objects.iter().zip(&keys) {
            if let Some(message) = bad_phase {
                problems.push(Problem {
                    source: object.source.clone(),
                    message: format!("{}: {message}", object.reference()),
                });
            }
        }
        // Objects are compared only where their hashes meet: a repeat, or (in theory) a collision,
        // which falls back to comparing with every earlier object.
        let mut first_with_hash: HashMap<u64, usize> = HashMap::with_capacity(objects.len());
        for (index, (_, hash, _)) in keys.iter().enumerate() {
            let object = &objects[index];
            let first = match first_with_hash.entry(*hash) {
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    vacant.insert(index);
                    None
                }
                std::collections::hash_map::Entry::Occupied(occupied) => {
                    let candidate = *occupied.get();
                    if same_identity(&objects[candidate], object) {
                        Some(candidate)
                    } else {
                        objects[..index]
                            .iter()
                            .position(|earlier| same_identity(earlier, object))
                    }
                }
            };
            if let Some(first) = first {
                problems.push(Problem {
                    source: object.source.clone(),
                    message: format!(
                        "{} is defined twice; first in {}",
                        object.reference(),
                        objects[first].source
                    ),
                });
            }
        }
        if !problems.is_empty() {
            return Err(ManifestError::Invalid(problems));
        }
        // Namespaces and CRDs before every phase, then phase by phase, each in kind order: the order
        // apply takes them in, so the diff and a piped `kubectl apply` see it too. Stable, so objects
        // of one kind keep the order they were written in.
        let mut ordered: Vec<((i32, usize), Object)> =
            keys.into_iter().map(|(order, _, _)| order).zip(objects).collect();
        ordered.sort_by_key(|(order, _)| *order);
        let objects = ordered.into_iter().map(|(_, object)| object).collect();
        Ok(Manifest { objects })
    }

    /// A YAML stream, one document an object.
    pub fn to_yaml(&self) -> Result<String, ManifestError> {
        // Each document is written on its own, on every core, and joined in order.
        let documents = crate::parallel::map(&self.objects, |o| json_to_yaml(&o.value));
        let mut text = String::with_capacity(documents.iter().flatten().map(|d| d.len() + 4).sum());
        for document in documents {
            text.push_str("---\n");
            text.push_str(&document?);
        }
        Ok(text)
    }

    /// A `v1` `List` holding every object, as kubectl writes and reads it.
    pub fn to_json(&self) -> String {
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": self.objects.iter().map(|o| &o.value).collect::<Vec<_>>(),
        });
        let mut text = serde_json::to_string_pretty(&list).unwrap_or_default();
        text.push('\n');
        text
    }
}

impl Manifest {
    /// The objects that name no namespace but are not known to be cluster-scoped (a built-in kind, or
    /// a custom kind whose CRD in this manifest says so).
    pub fn without_namespace(&self) -> Vec<&Object> {
        let custom_cluster_scoped = cluster_scoped_custom_kinds(&self.objects);
        self.objects
            .iter()
            .filter(|o| o.namespace().is_none())
            .filter(|o| {
                !kinds::is_builtin_cluster_scoped(o.group(), o.kind())
                    && !custom_cluster_scoped
                        .iter()
                        .any(|(group, kind)| group == o.group() && kind == o.kind())
            })
            .collect()
    }

    /// Where a string for which `is_secret` holds appears outside a Secret's `data` or `stringData`:
    /// (object, dotted path).
    pub fn secret_placements(&self, is_secret: &(dyn Fn(&str) -> bool + Sync)) -> Vec<(ObjectRef, String)> {
        let per_object = crate::parallel::map(&self.objects, |object| {
            let mut found = Vec::new();
            let in_secret = object.kind() == "Secret" && object.group().is_empty();
            let mut visit = |path: &str, value: &Json| {
                let allowed = in_secret && (path.starts_with("data.") || path.starts_with("stringData."));
                if !allowed && value.as_str().is_some_and(is_secret) {
                    found.push((object.reference(), path.to_owned()));
                }
            };
            walk_strings(&object.value, &mut String::new(), &mut visit);
            found
        });
        per_object.into_iter().flatten().collect()
    }
}

/// Visits every scalar with its dotted path. The path is one buffer, grown and cut back on the way: a
/// walk of thousands of objects allocates no string per node.
fn walk_strings(value: &Json, path: &mut String, visit: &mut dyn FnMut(&str, &Json)) {
    let depth = path.len();
    match value {
        Json::Object(map) => {
            for (key, value) in map {
                push_key(path, key);
                walk_strings(value, path, visit);
                path.truncate(depth);
            }
        }
        Json::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                push_index(path, i);
                walk_strings(value, path, visit);
                path.truncate(depth);
            }
        }
        other => visit(path, other),
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn push_index(path: &mut String, index: usize) {
    use std::fmt::Write as _;
    let _ = write!(path, "[{index}]");
}

/// Adds the objects of one document (a `List` holds several), or problems.
fn unpack(value: Json, source: &Source, objects: &mut Vec<Object>, problems: &mut Vec<Problem>) {
    let mut problem = |message: String| {
        problems.push(Problem {
            source: source.clone(),
            message,
        })
    };
    let map = match value {
        Json::Null => return,
        Json::Object(map) if map.is_empty() => return,
        Json::Object(map) => map,
        other => {
            return problem(format!(
                "a document must be a Kubernetes object (a mapping), not {}",
                describe(&other)
            ));
        }
    };
    let is_list = map
        .get("kind")
        .and_then(Json::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && map.get("items").is_some_and(Json::is_array)
        && !map.contains_key("metadata");
    if is_list {
        if let Some(Json::Array(items)) = map.get("items") {
            for (i, item) in items.iter().enumerate() {
                let in_list = Source {
                    list_item: source.list_item.or(Some(i)),
                    ..source.clone()
                };
                unpack(item.clone(), &in_list, objects, problems);
            }
        }
        return;
    }
    if let Err(message) = check_object(&map) {
        return problem(message);
    }
    let mut path = String::new();
    if map.iter().any(|(k, v)| {
        path.clear();
        path.push_str(k);
        find_beyond_int64(v, &mut path)
    }) {
        return problem(format!(
            "the integer at {path} is beyond the int64 range Kubernetes stores; quote it to keep it as a string"
        ));
    }
    objects.push(Object {
        value: Json::Object(map),
        source: source.clone(),
    });
}

fn check_object(map: &Map<String, Json>) -> Result<(), String> {
    let label = || {
        let kind = map.get("kind").and_then(Json::as_str).unwrap_or("object");
        match map.get("metadata").and_then(|m| m.get("name")).and_then(Json::as_str) {
            Some(name) => format!("{kind}/{name}"),
            None => kind.to_owned(),
        }
    };
    let non_empty_string = |value: Option<&Json>| value.and_then(Json::as_str).is_some_and(|s| !s.trim().is_empty());
    if !non_empty_string(map.get("apiVersion")) {
        return Err(format!("{} has no apiVersion", label()));
    }
    if !non_empty_string(map.get("kind")) {
        return Err(format!("{} has no kind", label()));
    }
    let api_version = map.get("apiVersion").and_then(Json::as_str).unwrap_or_default();
    if !is_api_version(api_version) {
        return Err(format!(
            "{} has apiVersion `{api_version}`, which is not `VERSION` or `GROUP/VERSION`",
            label()
        ));
    }
    let kind = map.get("kind").and_then(Json::as_str).unwrap_or_default();
    if !(kind.starts_with(|c: char| c.is_ascii_alphabetic())
        && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Err(format!(
            "{} has kind `{kind}`, which is not a kind name (letters and digits)",
            label()
        ));
    }
    let Some(metadata) = map.get("metadata").and_then(Json::as_object) else {
        return Err(format!("{} has no metadata", label()));
    };
    for field in ["labels", "annotations"] {
        match metadata.get(field) {
            None | Some(Json::Null) => {}
            Some(Json::Object(entries)) => {
                if let Some((key, value)) = entries.iter().find(|(_, v)| !v.is_string()) {
                    return Err(format!(
                        "{} has metadata.{field}.{key} = {}, but {field} hold strings only: quote it",
                        label(),
                        describe(value)
                    ));
                }
            }
            Some(other) => {
                return Err(format!(
                    "{} has metadata.{field} as {}, but it must be a mapping of strings",
                    label(),
                    describe(other)
                ));
            }
        }
    }
    if !non_empty_string(metadata.get("name")) {
        let hint = if metadata.contains_key("generateName") {
            " (generateName cannot be used with server-side apply)"
        } else {
            ""
        };
        return Err(format!("{} has no metadata.name{hint}", label()));
    }
    if let Some(namespace) = metadata.get("namespace")
        && !non_empty_string(Some(namespace))
    {
        return Err(format!(
            "{} has a metadata.namespace that is not a non-empty string",
            label()
        ));
    }
    Ok(())
}

/// `v1`, or `group/version` with a DNS-subdomain group and a DNS-label version, as the API server
/// accepts them.
fn is_api_version(text: &str) -> bool {
    let is_version = |v: &str| {
        v.starts_with(|c: char| c.is_ascii_lowercase())
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    match text.split_once('/') {
        None => is_version(text),
        Some((group, version)) => {
            !group.is_empty()
                && group
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && is_version(version)
        }
    }
}

/// The path of the first integer above `i64::MAX`, which the API server would turn into a float.
fn find_beyond_int64(value: &Json, path: &mut String) -> bool {
    let depth = path.len();
    match value {
        Json::Number(n) => n.is_u64() && n.as_i64().is_none(),
        Json::Array(items) => items.iter().enumerate().any(|(i, v)| {
            push_index(path, i);
            find_beyond_int64(v, path) || {
                path.truncate(depth);
                false
            }
        }),
        Json::Object(map) => map.iter().any(|(k, v)| {
            push_key(path, k);
            find_beyond_int64(v, path) || {
                path.truncate(depth);
                false
            }
        }),
        _ => false,
    }
}

fn describe(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// Kinds that CRDs in the manifest define as cluster-scoped: (group, kind).
fn cluster_scoped_custom_kinds(objects: &[Object]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition" && o.group() == "apiextensions.k8s.io")
        .filter(|o| o.value["spec"]["scope"].as_str() == Some("Cluster"))
        .filter_map(|o| {
            let group = o.value["spec"]["group"].as_str()?;
            let kind = o.value["spec"]["names"]["kind"].as_str()?;
            Some((group.to_owned(), kind.to_owned()))
        })
        .collect()
}

/// Counts of objects by kind, for summaries.
pub fn count_by_kind(objects: &[Object]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for object in objects {
        *counts.entry(object.kind().to_owned()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Json, index: usize) -> RenderedDocument {
        RenderedDocument {
            template: PathBuf::from("t.yaml"),
            index,
            line: index,
            rendered: true,
            value,
            ..RenderedDocument::default()
        }
    }

    fn object(kind: &str, name: &str) -> Json {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}})
    }

    #[test]
    fn orders_namespaces_and_crds_first_and_defaults_namespaces() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Cluster", "names": {"kind": "Widget"}}});
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        let docs = vec![
            doc(object("ConfigMap", "c"), 1),
            doc(Json::Null, 2),
            doc(widget, 3),
            doc(crd, 4),
            doc(object("Namespace", "ns"), 5),
        ];
        let manifest = Manifest::from_documents(docs, Some("app")).unwrap();
        let order: Vec<&str> = manifest.objects.iter().map(Object::kind).collect();
        assert_eq!(order, ["Namespace", "CustomResourceDefinition", "ConfigMap", "Widget"]);
        assert_eq!(manifest.objects[2].namespace(), Some("app"));
        assert_eq!(manifest.objects[0].namespace(), None, "Namespaces are cluster-scoped");
        assert_eq!(
            manifest.objects[3].namespace(),
            None,
            "the CRD says Widgets are cluster-scoped"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_source() {
        let docs = vec![
            doc(json!({"kind": "ConfigMap", "metadata": {"name": "a"}}), 1),
            doc(json!("just text"), 2),
            doc(object("ConfigMap", "dup"), 3),
            doc(object("ConfigMap", "dup"), 4),
            doc(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "p-"}}),
                5,
            ),
        ];
        let Err(ManifestError::Invalid(problems)) = Manifest::from_documents(docs, None) else {
            panic!()
        };
        let messages: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.source.document, p.message))
            .collect();
        assert_eq!(messages[0], "1: ConfigMap/a has no apiVersion");
        assert!(messages[1].starts_with("2: a document must be a Kubernetes object"));
        assert!(
            messages[2].starts_with("5: Pod has no metadata.name (generateName"),
            "{messages:?}"
        );
        assert!(
            messages[3].starts_with("4: ConfigMap/dup is defined twice; first in t.yaml (document 3"),
            "{messages:?}"
        );
    }

    #[test]
    fn only_the_same_group_kind_namespace_and_name_is_a_repeat() {
        let in_namespace = |ns: &str, name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}});
        let distinct = vec![
            doc(in_namespace("a", "x"), 1),
            doc(in_namespace("b", "x"), 2),
            doc(object("Secret", "x"), 3),
            doc(
                json!({"apiVersion": "other.example/v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a"}}),
                4,
            ),
        ];
        assert_eq!(Manifest::from_documents(distinct, None).unwrap().objects.len(), 4);
        // A large manifest, so the check runs on several threads: three copies give two problems,
        // each naming the first.
        let mut many: Vec<RenderedDocument> = (0..1000)
            .map(|i| doc(in_namespace("a", &format!("c{i}")), i + 1))
            .collect();
        many.push(doc(in_namespace("a", "c500"), 1001));
        many.push(doc(in_namespace("a", "c500"), 1002));
        let Err(ManifestError::Invalid(problems)) = Manifest::from_documents(many, None) else {
            panic!("repeats were not found")
        };
        let messages: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.source.document, p.message))
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        for (message, document) in messages.iter().zip([1001, 1002]) {
            assert!(
                message.starts_with(&format!(
                    "{document}: ConfigMap/c500 (namespace a) is defined twice; first in t.yaml (document 501"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn secret_placements_name_the_path_of_each_place() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "open"}, {"name": "Y", "value": "s3cret"}]}]}});
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"k": "s3cret"}},
            "stringData": {"k": "s3cret"}});
        let manifest = Manifest::from_documents(vec![doc(pod, 1), doc(secret, 2)], None).unwrap();
        let mut found: Vec<String> = manifest
            .secret_placements(&|text| text == "s3cret")
            .into_iter()
            .map(|(object, path)| format!("{}/{} {path}", object.kind, object.name))
            .collect();
        found.sort();
        assert_eq!(
            found,
            ["Pod/p spec.containers[0].env[1].value", "Secret/s metadata.labels.k"]
        );
    }

    #[test]
    fn integers_beyond_int64_are_refused() {
        let big = json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "a"}, "spec": {"n": u64::MAX}});
        let Err(ManifestError::Invalid(problems)) = Manifest::from_documents(vec![doc(big, 1)], None) else {
            panic!()
        };
        assert!(problems[0].message.contains("at spec.n is"), "{}", problems[0].message);
        let in_list = json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "a"},
            "spec": {"ok": [1, 2], "list": [{"x": 1}, {"x": u64::MAX}]}});
        let Err(ManifestError::Invalid(problems)) = Manifest::from_documents(vec![doc(in_list, 1)], None) else {
            panic!()
        };
        assert!(
            problems[0].message.contains("at spec.list[1].x is"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn lists_are_unpacked() {
        let list =
            json!({"apiVersion": "v1", "kind": "List", "items": [object("ConfigMap", "a"), object("Secret", "b")]});
        let manifest = Manifest::from_documents(vec![doc(list, 1)], None).unwrap();
        assert_eq!(manifest.objects.len(), 2);
        assert_eq!(manifest.objects[0].kind(), "Secret");
    }
}
