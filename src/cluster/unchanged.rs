//! Proving an object unchanged without asking the server. Every object kdeploy applies carries the
//! digest of what was sent ([`DIGEST_ANNOTATION`]). When the live object (listed with the ApplySet)
//! carries the digest of what would be sent now, *and* kdeploy's own managedFields entry still covers
//! every field the manifest sets, applying it again changes nothing: kdeploy would send what it sent
//! before, and no other manager has taken a field from it since (a change by `kubectl edit`, a
//! controller's update or another manager's forced apply moves the field out of kdeploy's entry). Such
//! an object needs no dry run. Anything that cannot be proven this way (another version, a list element
//! whose key is ambiguous, a field the entry does not name) is dry-run as before.
//!
//! What the shortcut gives up is the server's fresh look at an unchanged object: an admission policy
//! added since the last apply is not asked about it. `--full-dry-run` asks anyway.

use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::Sha256;

use super::FIELD_MANAGER;

/// The digest of the object as kdeploy last applied it (its namespace and this annotation left out).
pub const DIGEST_ANNOTATION: &str = "kdeploy.dev/applied-digest";

/// Sets the object's digest annotation to the digest of the rest of it, keyed with `key`.
pub fn stamp(object: &mut Json, key: &[u8]) {
    let value = digest(object, key);
    let Some(metadata) = object.get_mut("metadata").and_then(Json::as_object_mut) else {
        return;
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Json::Object(Default::default()));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(DIGEST_ANNOTATION.to_owned(), Json::String(value));
    }
}

/// The digest recorded on an object, if any.
pub fn recorded(object: &Json) -> Option<&str> {
    object["metadata"]["annotations"][DIGEST_ANNOTATION].as_str()
}

/// `hmac-sha256:` and 32 hex digits: the HMAC under `key` (the ApplySet's, kept in its parent Secret)
/// of the object in a canonical form (keys sorted), without its namespace (which the object is found
/// by) and without the digest annotation itself. Keyed, it tells nothing about a Secret's value to
/// whoever may read the object's annotations but not that key.
pub fn digest(object: &Json, key: &[u8]) -> String {
    let mut buffer = Vec::with_capacity(1024);
    write_canonical(object, Place::Top, &mut buffer);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&buffer);
    format!("hmac-sha256:{}", crate::util::hex(&mac.finalize().into_bytes()[..16]))
}

/// Where a map sits, as far as [`digest`]'s exclusions care.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Top,
    Metadata,
    Annotations,
    Elsewhere,
}

/// Writes `value` as compact JSON with sorted keys, leaving out what [`digest`] excludes. The form is
/// recorded in clusters (as digests), so it must never change: see the test that pins it.
fn write_canonical(value: &Json, place: Place, out: &mut Vec<u8>) {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map
                .iter()
                .filter(|(key, value)| {
                    !match (place, key.as_str()) {
                        (Place::Metadata, "namespace") | (Place::Annotations, DIGEST_ANNOTATION) => true,
                        // Annotations that only held the digest are as none.
                        (Place::Metadata, "annotations") => value
                            .as_object()
                            .is_some_and(|a| a.keys().all(|k| k == DIGEST_ANNOTATION)),
                        _ => false,
                    }
                })
                .collect();
            entries.sort_unstable_by_key(|(key, _)| *key);
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(key, out);
                out.push(b':');
                let below = match (place, key.as_str()) {
                    (Place::Top, "metadata") => Place::Metadata,
                    (Place::Metadata, "annotations") => Place::Annotations,
                    _ => Place::Elsewhere,
                };
                write_canonical(value, below, out);
            }
            out.push(b'}');
        }
        Json::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, Place::Elsewhere, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// A string or scalar as compact JSON, straight into `out`.
fn write_scalar(value: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    // Writing a string or a JSON scalar into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Whether applying `manifest` (stamped) over `live` is provably a no-op: the same digest, the same
/// apiVersion, and kdeploy's apply entry in `live`'s managedFields still owning every field set.
pub fn proven_unchanged(manifest: &Json, live: &Json) -> bool {
    let Some(wanted) = recorded(manifest) else {
        return false;
    };
    if recorded(live) != Some(wanted) || live["apiVersion"] != manifest["apiVersion"] {
        return false;
    }
    if live["metadata"]["deletionTimestamp"].is_string() {
        return false;
    }
    let Some(entry) = live["metadata"]["managedFields"].as_array().and_then(|entries| {
        entries.iter().find(|e| {
            e["manager"] == FIELD_MANAGER
                && e["operation"] == "Apply"
                && e.get("subresource")
                    .is_none_or(|s| s.as_str().is_none_or(str::is_empty))
        })
    }) else {
        return false;
    };
    if entry["apiVersion"] != manifest["apiVersion"] || entry["fieldsType"] != "FieldsV1" {
        return false;
    }
    let Some(manifest_fields) = manifest.as_object() else {
        return false;
    };
    let fields = &entry["fieldsV1"];
    manifest_fields.iter().all(|(key, value)| match key.as_str() {
        // The object's identity, not fields anyone owns.
        "apiVersion" | "kind" => true,
        "metadata" => value.as_object().is_some_and(|metadata| {
            metadata.iter().all(|(key, value)| match key.as_str() {
                "name" | "namespace" => true,
                _ => owns_field(key, value, &fields["f:metadata"]),
            })
        }),
        _ => owns_field(key, value, fields),
    })
}

/// Whether the fieldsV1 node `fields` (of a map) holds field `key` with everything `value` sets.
fn owns_field(key: &str, value: &Json, fields: &Json) -> bool {
    let Some(node) = fields.get(format!("f:{key}")) else {
        return false;
    };
    owns_value(value, node)
}

/// Whether the fieldsV1 node `node` covers everything `value` sets.
fn owns_value(value: &Json, node: &Json) -> bool {
    let Some(children) = node.as_object() else {
        return false;
    };
    // An empty node owns the value whole: a scalar, or an atomic map or list.
    if children.is_empty() {
        return true;
    }
    match value {
        Json::Object(map) => map.iter().all(|(key, value)| owns_field(key, value, node)),
        Json::Array(items) => items.iter().all(|item| owns_element(item, node)),
        // A scalar where the server tracks members: a different shape than applied. Not provable.
        _ => false,
    }
}

/// Whether the list node `list` holds element `item`: a scalar as `v:<json>`, a map as the one
/// `k:{...}` entry whose key fields agree with it (a key field the element leaves out was defaulted by
/// the server, like a port's protocol; if two entries would then fit, nothing is proven).
fn owns_element(item: &Json, list: &Json) -> bool {
    let Some(entries) = list.as_object() else {
        return false;
    };
    match item {
        Json::Object(element) => {
            let mut fitting = entries.iter().filter_map(|(name, node)| {
                let key: serde_json::Map<String, Json> = serde_json::from_str(name.strip_prefix("k:")?).ok()?;
                let agrees = key
                    .iter()
                    .all(|(field, wanted)| element.get(field).is_none_or(|value| value == wanted))
                    && key.keys().any(|field| element.contains_key(field));
                agrees.then_some(node)
            });
            match (fitting.next(), fitting.next()) {
                (Some(node), None) => owns_value(item, node),
                _ => false,
            }
        }
        scalar => entries.contains_key(&format!("v:{scalar}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"the ApplySet's key";

    fn service() -> Json {
        let mut object = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"applyset.kubernetes.io/part-of": "id"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}});
        stamp(&mut object, KEY);
        object
    }

    /// The live object as the server keeps it after kdeploy applied `manifest`.
    fn live(manifest: &Json, fields: Json) -> Json {
        let mut live = manifest.clone();
        live["metadata"]["managedFields"] = json!([{"manager": "kdeploy", "operation": "Apply", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": fields}]);
        live["spec"]["ports"][0]["protocol"] = json!("TCP");
        live
    }

    fn service_fields() -> Json {
        json!({"f:metadata": {"f:labels": {"f:applyset.kubernetes.io/part-of": {}},
                              "f:annotations": {"f:kdeploy.dev/applied-digest": {}}},
               "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                          "f:selector": {}}})
    }

    #[test]
    fn the_digest_ignores_key_order_namespace_and_itself() {
        let a = json!({"metadata": {"name": "x", "namespace": "one"}, "data": {"a": "1", "b": "2"}});
        let b = json!({"data": {"b": "2", "a": "1"}, "metadata": {"namespace": "two", "name": "x",
            "annotations": {DIGEST_ANNOTATION: "sha256:old"}}});
        assert_eq!(digest(&a, KEY), digest(&b, KEY));
        assert_ne!(digest(&a, KEY), digest(&a, b"another key"));
        let c = json!({"metadata": {"name": "x"}, "data": {"a": "1", "b": "3"}});
        assert_ne!(digest(&a, KEY), digest(&c, KEY));
        // A value that moves between keys is a different object.
        assert_ne!(
            digest(&json!({"a": "b", "c": ""}), KEY),
            digest(&json!({"a": "", "c": "b"}), KEY)
        );
    }

    #[test]
    fn the_canonical_form_is_pinned_because_clusters_keep_its_digests() {
        // Digests written by earlier versions sit in clusters; a change in this form would make every
        // object look changed once (safe, but slow). This is the form as first released.
        let object = json!({"metadata": {"name": "x", "namespace": "n", "annotations": {DIGEST_ANNOTATION: "d", "b": "é\"\n"}},
            "kind": "K", "spec": {"z": [1, 2.5, true, null, {"y": "1", "x": -3}], "a": {}}, "data": {"metadata": {"namespace": "kept"}}});
        let mut out = Vec::new();
        write_canonical(&object, Place::Top, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"data":{"metadata":{"namespace":"kept"}},"kind":"K","metadata":{"annotations":{"b":"é\"\n"},"name":"x"},"spec":{"a":{},"z":[1,2.5,true,null,{"x":-3,"y":"1"}]}}"#
        );
        let mut only_digest = Vec::new();
        write_canonical(
            &json!({"metadata": {"name": "x", "annotations": {DIGEST_ANNOTATION: "d"}}}),
            Place::Top,
            &mut only_digest,
        );
        assert_eq!(String::from_utf8(only_digest).unwrap(), r#"{"metadata":{"name":"x"}}"#);
    }

    #[test]
    fn an_object_kdeploy_still_owns_whole_is_proven_unchanged() {
        let manifest = service();
        assert!(proven_unchanged(&manifest, &live(&manifest, service_fields())));
    }

    #[test]
    fn anything_less_is_not_proven() {
        let manifest = service();
        // A field taken by another manager (gone from kdeploy's entry).
        let mut fields = service_fields();
        fields["f:spec"]["f:ports"]["k:{\"port\":80,\"protocol\":\"TCP\"}"]
            .as_object_mut()
            .unwrap()
            .remove("f:targetPort");
        assert!(!proven_unchanged(&manifest, &live(&manifest, fields)));
        let mut fields = service_fields();
        fields["f:spec"].as_object_mut().unwrap().remove("f:selector");
        assert!(!proven_unchanged(&manifest, &live(&manifest, fields)));
        // A different manifest than the one last applied.
        let mut changed = manifest.clone();
        changed["spec"]["selector"]["app"] = json!("other");
        stamp(&mut changed, KEY);
        assert!(!proven_unchanged(&changed, &live(&manifest, service_fields())));
        // No entry of kdeploy's, or an entry of another apiVersion.
        let mut other = live(&manifest, service_fields());
        other["metadata"]["managedFields"][0]["manager"] = json!("kubectl");
        assert!(!proven_unchanged(&manifest, &other));
        let mut other = live(&manifest, service_fields());
        other["metadata"]["managedFields"][0]["apiVersion"] = json!("v2");
        assert!(!proven_unchanged(&manifest, &other));
        // Being deleted.
        let mut other = live(&manifest, service_fields());
        other["metadata"]["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
        assert!(!proven_unchanged(&manifest, &other));
    }

    #[test]
    fn list_elements_are_matched_by_key_and_ambiguity_proves_nothing() {
        let mut manifest = service();
        manifest["spec"]["ports"] = json!([{"port": 80}, {"port": 80, "protocol": "UDP"}]);
        stamp(&mut manifest, KEY);
        let mut fields = service_fields();
        fields["f:spec"]["f:ports"] = json!({"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}},
            "k:{\"port\":80,\"protocol\":\"UDP\"}": {".": {}, "f:port": {}, "f:protocol": {}}});
        // `{port: 80}` fits both entries: not provable.
        assert!(!proven_unchanged(&manifest, &live(&manifest, fields.clone())));
        manifest["spec"]["ports"] = json!([{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}]);
        stamp(&mut manifest, KEY);
        fields["f:spec"]["f:ports"]["k:{\"port\":80,\"protocol\":\"TCP\"}"]["f:protocol"] = json!({});
        assert!(proven_unchanged(&manifest, &live(&manifest, fields)));
        // Scalars in a set.
        let set = json!({"v:\"a\"": {}, "v:\"b\"": {}});
        assert!(owns_value(&json!(["a", "b"]), &set));
        assert!(!owns_value(&json!(["a", "c"]), &set));
    }
}
