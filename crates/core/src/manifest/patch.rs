//! The project's own changes to objects it did not write: `patches:` (JSON merge patch, RFC 7386;
//! JSON patch, RFC 6902; strategic merge patch for built-in kinds) and common `labels:`. They apply
//! to the objects of every source, after namespaces are defaulted and before the objects are checked,
//! so that someone else's YAML can be adjusted without forking it.
//!
//! A patch whose target matches no object is an error: a typo in a target must not pass silently.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::{Object, Problem, group_of};

/// Which objects a patch applies to. Every field given must match; `name` and `namespace` may end in
/// `*` to match a prefix.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTarget {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Equality-based label selector, as kustomize spells it: `labelSelector: app=web,tier!=back`.
    #[serde(rename = "labelSelector")]
    pub label_selector: Option<String>,
}

/// How a patch changes its targets.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOperation {
    /// JSON merge patch (RFC 7386): maps merge, `null` removes a key, anything else replaces.
    Merge(Json),
    /// JSON patch (RFC 6902): `add`, `remove`, `replace`, `move`, `copy` and `test` operations.
    Json6902(Vec<Json>),
    /// Strategic merge patch, as `kubectl patch --type strategic` for built-in kinds: lists of
    /// containers, env, ports, volumes and the like merge by their key; `$patch: delete|replace`.
    Strategic(Json),
}

/// How many objects a patch must match: `1` (exactly one), `"2+"` (at least two), `[0, 1]` (any of
/// these counts). By default at least one, so that a typo in a target cannot pass silently; ytt's
/// overlays count the same way (`expects`), and `kdeploy convert ytt` writes theirs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Expects {
    /// Exactly this many.
    Count(usize),
    /// `"N+"`: at least N.
    AtLeast(#[schemars(regex(pattern = r"^[0-9]+\+$"))] String),
    /// Any of these counts.
    AnyOf(Vec<usize>),
}

impl Default for Expects {
    fn default() -> Self {
        Expects::AtLeast("1+".into())
    }
}

impl Expects {
    /// Whether `matched` objects is what is expected; `None` when the value itself is malformed.
    pub fn allows(&self, matched: usize) -> Option<bool> {
        Some(match self {
            Expects::Count(n) => matched == *n,
            Expects::AtLeast(text) => matched >= text.strip_suffix('+')?.parse::<usize>().ok()?,
            Expects::AnyOf(counts) => counts.contains(&matched),
        })
    }

    fn describe(&self) -> String {
        match self {
            Expects::Count(n) => format!("exactly {n}"),
            Expects::AtLeast(text) => format!("at least {}", text.trim_end_matches('+')),
            Expects::AnyOf(counts) => {
                let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
                format!("one of {}", counts.join(", "))
            }
        }
    }
}

/// One entry of `patches:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// Where the patch was written, for messages (`kdeploy.yaml patches[2]`).
    pub origin: String,
    pub target: PatchTarget,
    pub operation: PatchOperation,
    pub expects: Expects,
}

/// Patches and labels, applied together to the objects of every source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shaping {
    pub patches: Vec<Patch>,
    /// Added to every object's `metadata.labels` (never to selectors or templates).
    pub labels: BTreeMap<String, String>,
}

impl Shaping {
    /// Applies every patch, then the labels; returns what went wrong, each naming the patch and the object.
    pub fn apply(&self, objects: &mut [Object]) -> Vec<Problem> {
        let mut problems = Vec::new();
        for patch in &self.patches {
            let mut matched = 0;
            for object in objects.iter_mut() {
                if !patch.target.matches(object) {
                    continue;
                }
                matched += 1;
                let reference = object.reference();
                if let Err(message) = patch.apply_to(&mut object.value) {
                    problems.push(Problem {
                        source: object.source.clone(),
                        message: format!("{} cannot be applied to {reference}: {message}", patch.origin),
                    });
                }
            }
            let allowed = patch.expects.allows(matched);
            if allowed == Some(true) {
                continue;
            }
            let message = match (&patch.expects, allowed) {
                (Expects::AtLeast(text), None) => {
                    format!("`expects: {text}` is not a count, \"N+\" or a list of counts")
                }
                (_, None) => unreachable!("only \"N+\" can be malformed"),
                (_, Some(_)) if matched == 0 => format!(
                    "this patch matches no object (target {}); check its kind, name and namespace",
                    patch.target.describe()
                ),
                (_, Some(_)) => format!(
                    "this patch matches {matched} objects (target {}) where it expects {}",
                    patch.target.describe(),
                    patch.expects.describe()
                ),
            };
            problems.push(Problem {
                source: super::Source {
                    template: patch.origin.clone().into(),
                    document: 1,
                    line: 1,
                    rendered: false,
                    source: 0,
                    list_item: None,
                },
                message,
            });
        }
        if !self.labels.is_empty() {
            for object in objects.iter_mut() {
                let Some(metadata) = object.value.get_mut("metadata").and_then(Json::as_object_mut) else {
                    continue;
                };
                let labels = metadata.entry("labels").or_insert_with(|| Json::Object(Map::new()));
                if !labels.is_object() {
                    *labels = Json::Object(Map::new());
                }
                if let Some(labels) = labels.as_object_mut() {
                    for (key, value) in &self.labels {
                        labels.insert(key.clone(), Json::String(value.clone()));
                    }
                }
            }
        }
        problems
    }
}

impl PatchTarget {
    fn matches(&self, object: &Object) -> bool {
        let (group, version) = object
            .api_version()
            .rsplit_once('/')
            .unwrap_or(("", object.api_version()));
        let labels = object.value.pointer("/metadata/labels").and_then(Json::as_object);
        self.group.as_deref().is_none_or(|g| g == group)
            && self.version.as_deref().is_none_or(|v| v == version)
            && self.kind.as_deref().is_none_or(|k| k == object.kind())
            && self.name.as_deref().is_none_or(|n| glob(n, object.name()))
            && self
                .namespace
                .as_deref()
                .is_none_or(|n| object.namespace().is_some_and(|ns| glob(n, ns)))
            && self.label_selector.as_deref().is_none_or(|selector| {
                let label = |key: &str| labels.and_then(|l| l.get(key.trim())).and_then(Json::as_str);
                selector
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .all(|term| {
                        if let Some((key, value)) = term.split_once("!=") {
                            label(key) != Some(value.trim())
                        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                            label(key) == Some(value.trim())
                        } else {
                            label(term).is_some()
                        }
                    })
            })
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("group", &self.group),
            ("version", &self.version),
            ("kind", &self.kind),
            ("name", &self.name),
            ("namespace", &self.namespace),
            ("labelSelector", &self.label_selector),
        ] {
            if let Some(value) = value {
                parts.push(format!("{name}={value}"));
            }
        }
        if parts.is_empty() {
            "any object".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => text.starts_with(prefix),
        None => pattern == text,
    }
}

impl Patch {
    fn apply_to(&self, object: &mut Json) -> Result<(), String> {
        match &self.operation {
            PatchOperation::Merge(patch) => {
                merge_patch(object, patch);
                Ok(())
            }
            PatchOperation::Json6902(operations) => {
                // All or nothing: a failing operation leaves the object as it was.
                let mut patched = object.clone();
                for (i, operation) in operations.iter().enumerate() {
                    json_patch_operation(&mut patched, operation).map_err(|e| format!("operation {}: {e}", i + 1))?;
                }
                *object = patched;
                Ok(())
            }
            PatchOperation::Strategic(patch) => {
                let api_version = object.get("apiVersion").and_then(Json::as_str).unwrap_or_default();
                let kind = object.get("kind").and_then(Json::as_str).unwrap_or_default();
                if !is_builtin(api_version) {
                    return Err(format!(
                        "strategic merge is defined for built-in kinds only, not {kind} ({api_version}); use `merge:` or `json6902:`"
                    ));
                }
                *object = strategic_merge(object.clone(), patch, "")?;
                Ok(())
            }
        }
    }
}

/// RFC 7386.
pub fn merge_patch(target: &mut Json, patch: &Json) {
    let Json::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Json::Object(Map::new());
    }
    let Json::Object(map) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Json::Null), value);
        }
    }
}

/// One RFC 6902 operation.
fn json_patch_operation(document: &mut Json, operation: &Json) -> Result<(), String> {
    let field = |name: &str| {
        operation
            .get(name)
            .and_then(Json::as_str)
            .ok_or_else(|| format!("needs a string `{name}`"))
    };
    let op = field("op")?;
    let path = field("path")?;
    let value = || {
        operation
            .get("value")
            .cloned()
            .ok_or_else(|| "needs a `value`".to_owned())
    };
    match op {
        "add" => add(document, path, value()?),
        "remove" => remove(document, path).map(drop),
        "replace" => {
            let slot = resolve_mut(document, path)?;
            *slot = value()?;
            Ok(())
        }
        "move" => {
            let from = field("from")?;
            if path.starts_with(&format!("{from}/")) {
                return Err(format!("cannot move {from} into itself ({path})"));
            }
            let moved = remove(document, from)?;
            add(document, path, moved)
        }
        "copy" => {
            let copied = resolve_mut(document, field("from")?)?.clone();
            add(document, path, copied)
        }
        "test" => {
            let actual = resolve_mut(document, path)?;
            let expected = value()?;
            if *actual == expected {
                Ok(())
            } else {
                Err(format!("test failed at {path}: the value is {actual}, not {expected}"))
            }
        }
        other => Err(format!("unknown op `{other}` (add, remove, replace, move, copy, test)")),
    }
}

fn pointer_tokens(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path `{path}` must start with `/`"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn resolve_mut<'a>(document: &'a mut Json, path: &str) -> Result<&'a mut Json, String> {
    let mut current = document;
    for token in pointer_tokens(path)? {
        current = match current {
            Json::Object(map) => map.get_mut(&token),
            Json::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path {path} does not exist (at `{token}`)"))?;
    }
    Ok(current)
}

fn split_parent(path: &str) -> Result<(String, String), String> {
    let mut tokens = pointer_tokens(path)?;
    let last = tokens
        .pop()
        .ok_or_else(|| "the whole object cannot be added or removed".to_owned())?;
    let parent = tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect();
    Ok((parent, last))
}

fn add(document: &mut Json, path: &str, value: Json) -> Result<(), String> {
    let (parent, last) = split_parent(path)?;
    match resolve_mut(document, &parent)? {
        Json::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Json::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| format!("{path}: `{last}` is not an index of a list of {}", items.len()))?
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("{path}: the parent is not a map or a list")),
    }
}

fn remove(document: &mut Json, path: &str) -> Result<Json, String> {
    let (parent, last) = split_parent(path)?;
    let missing = || format!("path {path} does not exist");
    match resolve_mut(document, &parent)? {
        Json::Object(map) => map.shift_remove(&last).ok_or_else(missing),
        Json::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => Ok(items.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

/// API groups served by Kubernetes itself, whose types have strategic-merge metadata.
fn is_builtin(api_version: &str) -> bool {
    let group = group_of(api_version);
    group.is_empty()
        || !group.contains('.')
        || group.ends_with(".k8s.io") && !group.ends_with(".x-k8s.io") && group != "gateway.networking.k8s.io"
}

/// The key by which a list's items merge in a strategic merge patch, from Kubernetes' own types
/// (`patchMergeKey`); None for lists that the patch replaces.
fn merge_key(path: &str, field: &str, sample: Option<&Json>) -> Option<&'static str> {
    let has = |key: &str| sample.and_then(|s| s.get(key)).is_some();
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "readinessGates"
        | "resourceClaims"
        | "schedulingGates" => match field {
            "readinessGates" => "conditionType",
            _ => "name",
        },
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" if path.contains("containers") || has("containerPort") => "containerPort",
        "ports" => "port",
        "conditions" => "type",
        _ => return None,
    })
}

/// Lists of scalars that merge as sets rather than being replaced.
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

fn strategic_merge(target: Json, patch: &Json, path: &str) -> Result<Json, String> {
    let Json::Object(patch_map) = patch else {
        return Ok(patch.clone());
    };
    if patch_map.get("$patch").and_then(Json::as_str) == Some("replace") {
        let mut replacement = patch_map.clone();
        replacement.shift_remove("$patch");
        return Ok(Json::Object(replacement));
    }
    let mut map = match target {
        Json::Object(map) => map,
        _ => Map::new(),
    };
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue;
        }
        let child_path = format!("{path}/{key}");
        if value.is_null() {
            map.shift_remove(key);
            continue;
        }
        let existing = map.shift_remove(key).unwrap_or(Json::Null);
        let merged = match (existing, value) {
            (Json::Array(current), Json::Array(items)) => Json::Array(merge_list(current, items, &child_path, key)?),
            (existing, Json::Object(_)) => strategic_merge(existing, value, &child_path)?,
            (_, other) => other.clone(),
        };
        map.insert(key.clone(), merged);
    }
    Ok(Json::Object(map))
}

fn merge_list(current: Vec<Json>, patch: &[Json], path: &str, field: &str) -> Result<Vec<Json>, String> {
    if patch
        .iter()
        .any(|item| item.get("$patch").and_then(Json::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .cloned()
            .collect());
    }
    if is_set_list(field) {
        let mut merged = current;
        for item in patch {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
        }
        return Ok(merged);
    }
    let Some(key) = merge_key(path, field, patch.first().or(current.first())) else {
        return Ok(patch.to_vec());
    };
    let mut merged = current;
    for item in patch {
        let Some(wanted) = item.get(key) else {
            return Err(format!("an item of {path} has no `{key}`, the key its items merge by"));
        };
        let position = merged.iter().position(|existing| existing.get(key) == Some(wanted));
        let delete = item.get("$patch").and_then(Json::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                merged.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                let existing = std::mem::take(&mut merged[i]);
                merged[i] = strategic_merge(existing, item, &format!("{path}[{key}={wanted}]"))?;
            }
            (None, false) => merged.push(strategic_merge(Json::Null, item, path)?),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expects_counts_matches_as_ytt_does() {
        let parse = |v| serde_json::from_value::<Expects>(v).unwrap();
        assert_eq!(Expects::default().allows(0), Some(false));
        assert_eq!(Expects::default().allows(3), Some(true));
        assert_eq!(parse(json!(1)).allows(2), Some(false));
        assert_eq!(parse(json!("2+")).allows(2), Some(true));
        assert_eq!(parse(json!([0, 1])).allows(0), Some(true));
        assert_eq!(parse(json!("two")).allows(2), None);
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_operations_and_failures() {
        let mut doc = json!({"spec": {"args": ["a", "b"], "x/y": 1}});
        for op in [
            json!({"op": "add", "path": "/spec/args/-", "value": "c"}),
            json!({"op": "add", "path": "/spec/args/0", "value": "first"}),
            json!({"op": "replace", "path": "/spec/x~1y", "value": 2}),
            json!({"op": "copy", "from": "/spec/x~1y", "path": "/spec/z"}),
            json!({"op": "move", "from": "/spec/z", "path": "/spec/w"}),
            json!({"op": "remove", "path": "/spec/args/1"}),
            json!({"op": "test", "path": "/spec/w", "value": 2}),
        ] {
            json_patch_operation(&mut doc, &op).unwrap();
        }
        assert_eq!(doc, json!({"spec": {"args": ["first", "b", "c"], "x/y": 2, "w": 2}}));
        let err =
            json_patch_operation(&mut doc, &json!({"op": "replace", "path": "/spec/nope", "value": 1})).unwrap_err();
        assert!(err.contains("/spec/nope"), "{err}");
        let err = json_patch_operation(&mut doc, &json!({"op": "test", "path": "/spec/w", "value": 3})).unwrap_err();
        assert!(err.contains("test failed"), "{err}");
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_honours_directives() {
        let target = json!({"spec": {"template": {"spec": {
            "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "side:1"}
            ],
            "tolerations": [{"key": "x"}]
        }}}});
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}]},
                {"name": "sidecar", "$patch": "delete"},
                {"name": "extra", "image": "extra:1"}
            ],
            "tolerations": [{"key": "y"}]
        }}}});
        let merged = strategic_merge(target, &patch, "").unwrap();
        assert_eq!(
            merged,
            json!({"spec": {"template": {"spec": {
                "containers": [
                    {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "3"}], "ports": [{"containerPort": 80}]},
                    {"name": "extra", "image": "extra:1"}
                ],
                "tolerations": [{"key": "y"}]
            }}}})
        );
    }

    #[test]
    fn label_selectors_match_by_equality() {
        let object = Object {
            value: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web", "tier": "front"}}}),
            source: super::super::Source {
                template: "t.yaml".into(),
                document: 1,
                line: 1,
                rendered: false,
                source: 0,
                list_item: None,
            },
        };
        let target = |selector: &str| PatchTarget {
            label_selector: Some(selector.to_owned()),
            ..PatchTarget::default()
        };
        assert!(target("app=web,tier=front").matches(&object));
        assert!(target("app=web,tier!=back").matches(&object));
        assert!(!target("app=db").matches(&object));
        assert!(target("app").matches(&object));
        let named = PatchTarget {
            kind: Some("Deployment".into()),
            name: Some("web-*".into()),
            group: Some("apps".into()),
            ..PatchTarget::default()
        };
        assert!(named.matches(&object));
    }
}
