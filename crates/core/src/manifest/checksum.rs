//! Rollouts that follow their config. A workload whose pod template uses a ConfigMap or Secret of the
//! same manifest (through `env`, `envFrom` or a volume, projected ones included) gets one annotation
//! per such object in its pod template, `checksum.kdeploy.dev/configmap-NAME` or `…/secret-NAME`,
//! holding a digest of its content. A changed config changes the pod template, so the pods roll; the
//! annotation's name says which config it was, in the diff too.
//!
//! A Secret's digest is keyed (HMAC-SHA256 with a key derived from the project vault's data key), so it
//! reveals nothing of the value, not even to a dictionary attack: without a vault there is no key, and
//! Secrets are left out (with a note saying so). Opt out per workload with
//! `kdeploy.dev/config-checksum: "false"`, or for the project with `config_checksums: false`.

use std::collections::{BTreeSet, HashMap};

use hmac::{Hmac, Mac};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use super::Object;

pub const OPT_OUT_ANNOTATION: &str = "kdeploy.dev/config-checksum";
pub const ANNOTATION_PREFIX: &str = "checksum.kdeploy.dev/";

/// What a pod template refers to: ("ConfigMap" | "Secret", name).
type ConfigRef = (&'static str, String);

/// A Secret a workload uses whose changes do not roll its pods: there was no key for its checksum
/// (an unkeyed hash of a Secret would let anyone who reads the annotation confirm a guessed value).
#[derive(Debug, Clone, PartialEq)]
pub struct UnkeyedSecret {
    /// `Secret/NAME`, with its namespace.
    pub secret: String,
    /// Which of the project's sources the Secret came from.
    pub source: usize,
}

/// Adds the checksum annotations to every workload's pod template; returns the Secrets that could
/// not be covered (each once).
pub fn annotate(objects: &mut [Object], secret_key: Option<&[u8]>) -> Vec<UnkeyedSecret> {
    // What each workload uses, read on every core; most manifests stop here, with nothing used.
    let uses = crate::parallel::map(objects, uses_of);
    if uses.iter().all(BTreeSet::is_empty) {
        return Vec::new();
    }
    // Then the configs by name; only those a workload uses are read and digested.
    let configs: HashMap<ConfigKey<'_>, &Object> = objects
        .iter()
        .filter_map(|object| {
            let kind = match (object.group(), object.kind()) {
                ("", "ConfigMap") => "ConfigMap",
                ("", "Secret") => "Secret",
                _ => return None,
            };
            Some(((object.namespace(), kind, object.name()), object))
        })
        .collect();
    let planned: Vec<Option<Planned>> = objects
        .iter()
        .zip(uses)
        .map(|(object, uses)| (!uses.is_empty()).then(|| plan(object, uses, &configs, secret_key)))
        .collect();
    drop(configs);
    let mut notes = Vec::new();
    for (object, planned) in objects.iter_mut().zip(planned) {
        let Some(Planned {
            annotations,
            notes: found,
        }) = planned
        else {
            continue;
        };
        for secret in found {
            if !notes.contains(&secret) {
                notes.push(secret);
            }
        }
        if annotations.is_empty() {
            continue;
        }
        let Some(pointer) = pod_template_pointer(object.group(), object.kind()) else {
            continue;
        };
        let Some(template) = object.value.pointer_mut(pointer) else {
            continue;
        };
        let metadata = template
            .as_object_mut()
            .map(|t| t.entry("metadata").or_insert_with(|| Json::Object(Map::new())));
        let Some(Json::Object(metadata)) = metadata else {
            continue;
        };
        let existing = metadata
            .entry("annotations")
            .or_insert_with(|| Json::Object(Map::new()));
        if let Json::Object(existing) = existing {
            for (name, digest) in annotations {
                existing.insert(name, Json::String(digest));
            }
        }
    }
    notes
}

/// A config by (namespace, "ConfigMap" | "Secret", name).
type ConfigKey<'a> = (Option<&'a str>, &'static str, &'a str);

/// The annotations one workload gets, and what could not be covered.
struct Planned {
    annotations: Vec<(String, String)>,
    notes: Vec<UnkeyedSecret>,
}

/// The configs a workload's pod template uses; none for other objects and for workloads that opt out.
fn uses_of(object: &Object) -> BTreeSet<ConfigRef> {
    let Some(pointer) = pod_template_pointer(object.group(), object.kind()) else {
        return BTreeSet::new();
    };
    if object.value["metadata"]["annotations"][OPT_OUT_ANNOTATION] == "false" {
        return BTreeSet::new();
    }
    object
        .value
        .pointer(pointer)
        .map_or_else(BTreeSet::new, |template| references(&template["spec"]))
}

fn plan(
    object: &Object,
    uses: BTreeSet<ConfigRef>,
    configs: &HashMap<ConfigKey<'_>, &Object>,
    secret_key: Option<&[u8]>,
) -> Planned {
    let mut planned = Planned {
        annotations: Vec::new(),
        notes: Vec::new(),
    };
    for (kind, name) in uses {
        let Some(config) = configs.get(&(object.namespace(), kind, name.as_str())) else {
            continue; // not this manifest's: its content is unknown
        };
        let content = canonical_content(&config.value);
        let digest = match (kind, secret_key) {
            ("Secret", Some(key)) => keyed_digest(key, &content),
            ("Secret", None) => {
                planned.notes.push(UnkeyedSecret {
                    secret: config.reference().to_string(),
                    source: config.source.source,
                });
                continue;
            }
            _ => crate::util::hex(&Sha256::digest(&content)[..16]),
        };
        planned.annotations.push((annotation_name(kind, &name), digest));
    }
    planned
}

/// Where a kind keeps its pod template, as a JSON pointer.
fn pod_template_pointer(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet") => Some("/spec/template"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The ConfigMaps and Secrets a pod spec uses, sorted.
fn references(pod: &Json) -> BTreeSet<ConfigRef> {
    let mut found = BTreeSet::new();
    let mut add = |kind: &'static str, name: &Json| {
        if let Some(name) = name.as_str().filter(|n| !n.is_empty()) {
            found.insert((kind, name.to_owned()));
        }
    };
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|field| pod[field].as_array())
        .flatten();
    for container in containers {
        for env in container["env"].as_array().into_iter().flatten() {
            add("ConfigMap", &env["valueFrom"]["configMapKeyRef"]["name"]);
            add("Secret", &env["valueFrom"]["secretKeyRef"]["name"]);
        }
        for from in container["envFrom"].as_array().into_iter().flatten() {
            add("ConfigMap", &from["configMapRef"]["name"]);
            add("Secret", &from["secretRef"]["name"]);
        }
    }
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        add("ConfigMap", &volume["configMap"]["name"]);
        add("Secret", &volume["secret"]["secretName"]);
        for source in volume["projected"]["sources"].as_array().into_iter().flatten() {
            add("ConfigMap", &source["configMap"]["name"]);
            add("Secret", &source["secret"]["name"]);
        }
    }
    found
}

/// The content that reaches pods, in a stable form: every key and value of `data`, `binaryData` and
/// `stringData`, sorted, each field and entry delimited.
fn canonical_content(object: &Json) -> Vec<u8> {
    let mut bytes = Vec::new();
    for field in ["data", "binaryData", "stringData"] {
        let Some(map) = object[field].as_object() else { continue };
        let mut entries: Vec<(&String, &Json)> = map.iter().collect();
        entries.sort_by_key(|(k, _)| *k);
        for (key, value) in entries {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            for part in [field, key.as_str(), value.as_str()] {
                bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
                bytes.extend_from_slice(part.as_bytes());
            }
        }
    }
    bytes
}

fn keyed_digest(key: &[u8], content: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(content);
    crate::util::hex(&mac.finalize().into_bytes()[..16])
}

/// `checksum.kdeploy.dev/configmap-NAME`; a name too long for an annotation's 63 characters is cut and
/// given a digest of the whole, so two long names never share an annotation.
fn annotation_name(kind: &str, name: &str) -> String {
    let prefix = if kind == "Secret" { "secret-" } else { "configmap-" };
    let full = format!("{prefix}{name}");
    if full.len() <= 63 {
        return format!("{ANNOTATION_PREFIX}{full}");
    }
    let digest = crate::util::hex(&Sha256::digest(name.as_bytes())[..4]);
    format!("{ANNOTATION_PREFIX}{}-{digest}", &full[..63 - 9])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Json) -> Object {
        Object::rendered_for_test(value)
    }

    fn deployment(pod: Json) -> Object {
        object(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "a"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": pod}}}),
        )
    }

    fn config(kind: &str, name: &str, data: Json) -> Object {
        object(json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "a"}, "data": data}))
    }

    fn annotations_of(objects: &[Object]) -> Json {
        objects[0].value["spec"]["template"]["metadata"]["annotations"].clone()
    }

    #[test]
    fn a_workload_carries_the_digest_of_each_config_it_uses() {
        let pod = json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "settings"}}],
            "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}],
            "volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "extra"}}]}}]});
        let build = |setting: &str| {
            vec![
                deployment(pod.clone()),
                config("ConfigMap", "settings", json!({"mode": setting})),
                config("ConfigMap", "extra", json!({"x": "1"})),
                config("Secret", "db", json!({"password": "aHVudGVyMg=="})),
                config("ConfigMap", "unused", json!({"y": "2"})),
            ]
        };
        let key = [7u8; 32];
        let mut first = build("fast");
        assert!(annotate(&mut first, Some(&key)).is_empty());
        let annotations = annotations_of(&first);
        let names: Vec<&String> = annotations.as_object().unwrap().keys().collect();
        assert_eq!(
            names,
            [
                "checksum.kdeploy.dev/configmap-extra",
                "checksum.kdeploy.dev/configmap-settings",
                "checksum.kdeploy.dev/secret-db"
            ]
        );
        // The same content gives the same digests; a changed config changes only its own.
        let mut again = build("fast");
        annotate(&mut again, Some(&key));
        assert_eq!(annotations_of(&again), annotations);
        let mut changed = build("slow");
        annotate(&mut changed, Some(&key));
        let changed = annotations_of(&changed);
        assert_ne!(
            changed["checksum.kdeploy.dev/configmap-settings"],
            annotations["checksum.kdeploy.dev/configmap-settings"]
        );
        assert_eq!(
            changed["checksum.kdeploy.dev/secret-db"],
            annotations["checksum.kdeploy.dev/secret-db"]
        );
        // The Secret's digest depends on the key: without it, it cannot be recomputed from a guess.
        let mut other_key = build("fast");
        annotate(&mut other_key, Some(&[8u8; 32]));
        assert_ne!(
            annotations_of(&other_key)["checksum.kdeploy.dev/secret-db"],
            annotations["checksum.kdeploy.dev/secret-db"]
        );
        assert_ne!(
            annotations["checksum.kdeploy.dev/secret-db"],
            json!(crate::util::hex(
                &Sha256::digest(canonical_content(&first[3].value))[..16]
            ))
        );
    }

    #[test]
    fn without_a_key_secrets_are_left_out_and_opting_out_is_respected() {
        let pod = json!({"containers": [{"name": "c"}], "volumes": [{"name": "s", "secret": {"secretName": "tls"}}]});
        let mut objects = vec![deployment(pod.clone()), config("Secret", "tls", json!({"k": "dg=="}))];
        let notes = annotate(&mut objects, None);
        assert!(notes[0].secret.contains("Secret/tls"), "{notes:?}");
        // Two workloads using one Secret name it once.
        let mut objects = vec![
            deployment(pod.clone()),
            deployment(pod.clone()),
            config("Secret", "tls", json!({"k": "dg=="})),
        ];
        objects[1].value["metadata"]["name"] = json!("web2");
        assert_eq!(annotate(&mut objects, None).len(), 1);
        assert!(annotations_of(&objects).is_null());
        let mut opted_out =
            deployment(json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "c"}}]}]}));
        opted_out.value["metadata"]["annotations"] = json!({OPT_OUT_ANNOTATION: "false"});
        let mut objects = vec![opted_out, config("ConfigMap", "c", json!({"a": "b"}))];
        annotate(&mut objects, None);
        assert!(annotations_of(&objects).is_null());
        // Another namespace's ConfigMap of the same name is not this workload's.
        let mut objects = vec![
            deployment(json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "c"}}]}]})),
            object(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "b"}, "data": {}}),
            ),
        ];
        annotate(&mut objects, None);
        assert!(annotations_of(&objects).is_null());
    }

    #[test]
    fn long_names_fit_an_annotation() {
        let long = "a".repeat(200);
        let name = annotation_name("ConfigMap", &long);
        let local = name.strip_prefix(ANNOTATION_PREFIX).unwrap();
        assert_eq!(local.len(), 63);
        assert_ne!(name, annotation_name("ConfigMap", &format!("{long}b")));
    }
}
