//! The tree an artifact (or a `--dir` folder) holds: one YAML file per object, named by namespace,
//! kind and name, and a `kustomization.yaml` listing them in kdeploy's apply order.
//!
//! Every object gets `kustomize.toolkit.fluxcd.io/substitute: disabled`: kdeploy has rendered it, and
//! Flux's `${var}` post-build substitution would only damage it. Every `v1` Secret is a SOPS document
//! of its own (`data` and `stringData` encrypted, the rest plain, a valid MAC), encrypted to the
//! cluster's recipients, which kustomize-controller decrypts and the sops CLI opens. A vault value
//! anywhere else is refused: Flux would apply it in plain text.
//!
//! A Secret whose content has not changed keeps the SOPS document of the previous tree, recognised by
//! `kdeploy_content_mac` in its metadata: an HMAC of the Secret under a key derived from the project
//! vault's data key, which says nothing of the value to anyone without the vault. So an unchanged
//! render gives an unchanged tree, and an unchanged digest.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value as Json, json};
use sha2::Sha256;

use super::PublishError;
use crate::manifest::{Manifest, Object};
use crate::vault::cipher::DataKey;
use crate::vault::keys::{KeyServices, Recipient};
use crate::vault::sops::{self, EncryptionRules, Format, Tree};

pub const SUBSTITUTE_ANNOTATION: &str = "kustomize.toolkit.fluxcd.io/substitute";
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";
/// The first line of the kustomization.yaml kdeploy writes: `push --dir` rewrites only such a folder.
pub const KUSTOMIZATION_HEADER: &str = "# Written by kdeploy push: one file per object, Secrets encrypted with SOPS.\n";
/// What sops encrypts in a Secret: kustomize-controller's documented rule.
pub const SECRET_ENCRYPTED_REGEX: &str = "^(data|stringData)$";

/// How Secrets are written.
pub struct SecretEncryption<'a> {
    /// The cluster's keys (never the team's).
    pub recipients: &'a [Recipient],
    pub services: &'a KeyServices,
    /// Recognises an unchanged Secret (see the module doc); None without a project vault.
    pub content_key: Option<&'a [u8]>,
}

/// The files of a tree, by path.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Builds the tree for `manifest`. `is_secret` says whether a string holds a vault or store value;
/// `previous` is the tree last pushed or written, whose unchanged Secrets are kept as they are.
pub fn build(
    manifest: &Manifest,
    is_secret: &(dyn Fn(&str) -> bool + Sync),
    encryption: &SecretEncryption<'_>,
    previous: Option<&Files>,
) -> Result<Files, PublishError> {
    // Only a Secret's data and stringData are encrypted: a value anywhere else (a ConfigMap, a Secret's
    // own labels or annotations) would be pushed, and applied, as it is.
    let leaks: Vec<String> = manifest
        .secret_placements(is_secret)
        .into_iter()
        .map(|(object, path)| format!("{object} at {path}"))
        .collect();
    if !leaks.is_empty() {
        return Err(PublishError::PlainSecret(leaks));
    }
    let secrets: Vec<String> = manifest
        .objects
        .iter()
        .filter(|o| is_secret_object(o))
        .map(|o| o.reference().to_string())
        .collect();
    if !secrets.is_empty() && encryption.recipients.is_empty() {
        return Err(PublishError::NoClusterRecipients(secrets));
    }
    // Each object on its own, on every core (a Secret's data key may be wrapped by a remote service).
    let written = crate::parallel::map(&manifest.objects, |object| {
        let path = file_name(object);
        let mut value = object.value.clone();
        annotate(&mut value);
        let bytes = if is_secret_object(object) {
            secret_document(object, value, encryption, previous.and_then(|p| p.get(&path)))?
        } else {
            crate::yaml::emit::json_to_yaml(&value)
                .map_err(|e| PublishError::Object {
                    object: object.reference().to_string(),
                    message: e.to_string(),
                })?
                .into_bytes()
        };
        Ok((path, bytes))
    });
    let mut files = Files::new();
    let mut order = Vec::with_capacity(manifest.objects.len());
    for (object, written) in manifest.objects.iter().zip(written) {
        let (path, bytes) = written?;
        if files.insert(path.clone(), bytes).is_some() {
            return Err(PublishError::Object {
                object: object.reference().to_string(),
                message: format!("appears twice in the manifest (both would be {path})"),
            });
        }
        order.push(path);
    }
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": order,
    });
    let text = crate::yaml::emit::json_to_yaml(&kustomization).map_err(|e| PublishError::Object {
        object: KUSTOMIZATION_FILE.into(),
        message: e.to_string(),
    })?;
    files.insert(
        KUSTOMIZATION_FILE.to_owned(),
        format!("{KUSTOMIZATION_HEADER}{text}").into_bytes(),
    );
    Ok(files)
}

/// Whether `path` is one [`file_name`] writes: `FOLDER/FILE.yaml`, neither part hidden or climbing.
pub fn is_tree_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty() && !p.starts_with('.') && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-%:".contains(&b))
    };
    parts.len() == 2 && parts.iter().all(part_ok) && path.ends_with(".yaml")
}

pub fn is_secret_object(object: &Object) -> bool {
    object.api_version() == "v1" && object.kind() == "Secret"
}

/// `NAMESPACE/KIND[.GROUP]_NAME.yaml` (`_cluster/` for cluster-scoped objects), lower-case kind, and
/// anything but letters, digits, `.` and `-` percent-encoded: unique for each object, and never a
/// path that climbs out or hides.
pub fn file_name(object: &Object) -> String {
    let encode = |text: &str| {
        let mut out = String::with_capacity(text.len());
        for byte in text.bytes() {
            match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => out.push(byte as char),
                b'.' if !out.is_empty() => out.push('.'),
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
        out
    };
    let folder = object.namespace().map_or_else(|| "_cluster".to_owned(), encode);
    let kind = object.kind().to_ascii_lowercase();
    let kind = match object.group() {
        "" => encode(&kind),
        group => format!("{}.{}", encode(&kind), encode(group)),
    };
    format!("{folder}/{kind}_{}.yaml", encode(object.name()))
}

fn annotate(value: &mut Json) {
    if let Some(metadata) = value.get_mut("metadata").and_then(Json::as_object_mut) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Json::Object(Map::new()));
        if !annotations.is_object() {
            *annotations = Json::Object(Map::new());
        }
        if let Some(map) = annotations.as_object_mut() {
            map.insert(SUBSTITUTE_ANNOTATION.to_owned(), Json::String("disabled".into()));
        }
    }
}

/// Removes `null`s (a rendered `creationTimestamp: null`): SOPS has no null, and the API server reads
/// a null field as an absent one.
fn without_nulls(value: Json) -> Json {
    match value {
        Json::Object(map) => Json::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Json::Array(items) => Json::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn content_mac(key: &[u8], value: &Json) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"kdeploy flux secret v1\0");
    mac.update(value.to_string().as_bytes());
    crate::util::hex(&mac.finalize().into_bytes())
}

fn secret_document(
    object: &Object,
    value: Json,
    encryption: &SecretEncryption<'_>,
    previous: Option<&Vec<u8>>,
) -> Result<Vec<u8>, PublishError> {
    let error = |message: String| PublishError::Object {
        object: object.reference().to_string(),
        message,
    };
    let value = without_nulls(value);
    let mac = encryption.content_key.map(|key| content_mac(key, &value));
    if let (Some(mac), Some(previous)) = (&mac, previous)
        && let Ok(text) = std::str::from_utf8(previous)
        && let Ok(file) = sops::parse_encrypted(text, Format::Yaml)
        && file.metadata.content_mac.as_deref() == Some(mac.as_str())
        && same_recipients(&file.metadata.recipients(), encryption.recipients)
    {
        return Ok(previous.clone());
    }
    let tree = Tree::from_json(&value).map_err(|e| error(e.to_string()))?;
    let key = DataKey::generate().map_err(|e| error(format!("no randomness for a data key: {e}")))?;
    let stanzas = encryption
        .services
        .wrap_all(&key, encryption.recipients, &[])
        .map_err(|e| error(format!("wrapping its data key to the cluster's recipients: {e}")))?;
    let rules = EncryptionRules {
        encrypted_regex: Some(SECRET_ENCRYPTED_REGEX.to_owned()),
        ..Default::default()
    };
    let mut encrypted =
        sops::encrypt(&tree, &key, stanzas, rules, Format::Yaml, None).map_err(|e| error(e.to_string()))?;
    encrypted.metadata.content_mac = mac;
    let text =
        sops::write(&encrypted.tree, Some(&encrypted.metadata), Format::Yaml).map_err(|e| error(e.to_string()))?;
    Ok(text.into_bytes())
}

fn same_recipients(a: &[Recipient], b: &[Recipient]) -> bool {
    let sorted = |list: &[Recipient]| {
        let mut names: Vec<String> = list.iter().map(ToString::to_string).collect();
        names.sort();
        names
    };
    sorted(a) == sorted(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Json) -> Object {
        Object::rendered_for_test(value)
    }

    fn manifest(values: Vec<Json>) -> Manifest {
        Manifest {
            objects: values.into_iter().map(object).collect(),
        }
    }

    fn age_pair() -> (age::x25519::Identity, Recipient) {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string().parse().unwrap();
        (identity, recipient)
    }

    #[test]
    fn file_names_are_unique_and_never_climb() {
        let names: Vec<String> = [
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "app"}}),
            json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "web", "namespace": "app"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:aggregate-to-view"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "..", "namespace": "app"}}),
        ]
        .into_iter()
        .map(|v| file_name(&object(v)))
        .collect();
        assert_eq!(
            names,
            [
                "app/service_web.yaml",
                "app/service.serving.knative.dev_web.yaml",
                "_cluster/clusterrole.rbac.authorization.k8s.io_system%3Aaggregate-to-view.yaml",
                "app/configmap_%2E..yaml",
            ]
        );
    }

    #[test]
    fn objects_are_annotated_and_listed_in_order() {
        let (_, recipient) = age_pair();
        let services = KeyServices::new(&|_| None);
        let encryption = SecretEncryption {
            recipients: std::slice::from_ref(&recipient),
            services: &services,
            content_key: None,
        };
        let m = manifest(vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "app"}, "data": {"x": "${not_a_var}"}}),
        ]);
        let files = build(&m, &|_| false, &encryption, None).unwrap();
        let kustomization = String::from_utf8(files[KUSTOMIZATION_FILE].clone()).unwrap();
        assert_eq!(
            kustomization,
            format!(
                "{KUSTOMIZATION_HEADER}apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- _cluster/namespace_app.yaml\n- app/configmap_c.yaml\n"
            )
        );
        assert!(files.keys().all(|p| p == KUSTOMIZATION_FILE || is_tree_path(p)));
        assert!(!is_tree_path("../x.yaml") && !is_tree_path("a/../../x.yaml") && !is_tree_path("a/.hidden.yaml"));
        let config = String::from_utf8(files["app/configmap_c.yaml"].clone()).unwrap();
        assert!(
            config.contains("kustomize.toolkit.fluxcd.io/substitute: disabled"),
            "{config}"
        );
        assert!(config.contains("${not_a_var}"), "{config}");
    }

    #[test]
    fn a_vault_value_outside_a_secret_or_a_secret_without_recipients_is_refused() {
        let services = KeyServices::new(&|_| None);
        let none = SecretEncryption {
            recipients: &[],
            services: &services,
            content_key: None,
        };
        let leaky = manifest(vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}, "data": {"url": "db://u:hunter2-pw@db"}}),
        ]);
        let is_secret = |text: &str| text.contains("hunter2-pw");
        let error = build(&leaky, &is_secret, &none, None).unwrap_err().to_string();
        assert!(error.contains("ConfigMap/c (namespace a) at data.url"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");

        let secret = manifest(vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}, "stringData": {"pw": "x"}}),
        ]);
        let error = build(&secret, &|_| false, &none, None).unwrap_err().to_string();
        assert!(
            error.contains("Secret/s (namespace a)") && error.contains("flux:"),
            "{error}"
        );
    }

    #[test]
    fn secrets_are_sops_documents_for_the_cluster_and_kept_while_unchanged() {
        let (identity, recipient) = age_pair();
        let services = KeyServices::new(&|_| None);
        let key = [7u8; 32];
        let encryption = SecretEncryption {
            recipients: std::slice::from_ref(&recipient),
            services: &services,
            content_key: Some(&key),
        };
        let secret = |pw: &str| {
            manifest(vec![json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "namespace": "a", "creationTimestamp": null},
                "type": "Opaque", "stringData": {"password": pw}})])
        };
        let first = build(&secret("hunter2-pw"), &|_| false, &encryption, None).unwrap();
        let path = "a/secret_db.yaml";
        let text = String::from_utf8(first[path].clone()).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("encrypted_regex: ^(data|stringData)$"), "{text}");
        assert!(
            text.contains("name: db") && text.contains("kdeploy_content_mac"),
            "{text}"
        );
        // Opens with the cluster's identity.
        let file = sops::parse_encrypted(&text, Format::Yaml).unwrap();
        let stanza = &file.metadata.age_stanzas()[0];
        let data_key = crate::vault::keys::unwrap_key(stanza, std::slice::from_ref(&identity))
            .unwrap()
            .unwrap();
        let plain = sops::decrypt(&file, &data_key).unwrap().to_json();
        assert_eq!(plain["stringData"]["password"], "hunter2-pw");
        assert_eq!(plain["metadata"]["annotations"][SUBSTITUTE_ANNOTATION], "disabled");

        let again = build(&secret("hunter2-pw"), &|_| false, &encryption, Some(&first)).unwrap();
        assert_eq!(again, first, "an unchanged Secret keeps its document");
        let changed = build(&secret("hunter3-pw"), &|_| false, &encryption, Some(&first)).unwrap();
        assert_ne!(changed[path], first[path]);
        let without_key = SecretEncryption {
            content_key: None,
            ..encryption
        };
        let fresh = build(&secret("hunter2-pw"), &|_| false, &without_key, Some(&first)).unwrap();
        assert_ne!(fresh[path], first[path], "without a key nothing is recognised");
    }
}
