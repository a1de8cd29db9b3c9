//! The Kubernetes API as kdeploy knows it offline: the OpenAPI v3 schemas of the built-in kinds for
//! each supported version (embedded, gzipped, written by `scripts/kubernetes-schemas` from the official
//! k8s.io/kubernetes module), and the apiVersions that were removed, with what replaced them.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::OnceLock;

use serde_json::Value as Json;

use super::openapi::{SchemaError, SchemaSet};

/// The version kdeploy is built for (k8s-openapi's `v1_36`, the API server the tests build).
pub const DEFAULT_VERSION: &str = "1.36";

/// Every embedded version, oldest first.
const EMBEDDED: &[(&str, &[u8])] = &[
    ("1.32", include_bytes!("kubernetes/v1.32.json.gz")),
    ("1.33", include_bytes!("kubernetes/v1.33.json.gz")),
    ("1.34", include_bytes!("kubernetes/v1.34.json.gz")),
    ("1.35", include_bytes!("kubernetes/v1.35.json.gz")),
    ("1.36", include_bytes!("kubernetes/v1.36.json.gz")),
    ("1.37", include_bytes!("kubernetes/v1.37.json.gz")),
];

pub fn supported_versions() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(v, _)| *v).collect()
}

/// `1.36`, `v1.36`, `1.36.3` and `v1.36.3` all name the embedded 1.36; anything else is refused with
/// the list.
pub fn normalize_version(asked: &str) -> Result<&'static str, String> {
    let trimmed = asked.trim().trim_start_matches('v');
    let minor: String = trimmed.split('.').take(2).collect::<Vec<_>>().join(".");
    EMBEDDED.iter().map(|(v, _)| *v).find(|v| *v == minor).ok_or_else(|| {
        format!(
            "kdeploy has no schemas for Kubernetes {asked}; it has {} (use --no-validate, or connect to the cluster with diff or apply, to go without)",
            supported_versions().join(", ")
        )
    })
}

/// The built-in kinds of one Kubernetes version, their definitions added to a [`SchemaSet`].
#[derive(Debug)]
pub struct BuiltIn {
    pub version: String,
    /// `(group, version, kind)` → the name of the kind's definition.
    pub kinds: HashMap<(String, String, String), String>,
}

/// The definition of ObjectMeta, which custom resources' and embedded resources' metadata meet.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Reads the `x-kubernetes-group-version-kind` of every definition into `kinds`.
pub fn index_kinds(definitions: &serde_json::Map<String, Json>, kinds: &mut HashMap<(String, String, String), String>) {
    for (name, schema) in definitions {
        for gvk in schema
            .get("x-kubernetes-group-version-kind")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let field = |key: &str| gvk.get(key).and_then(Json::as_str).unwrap_or_default().to_owned();
            kinds.insert((field("group"), field("version"), field("kind")), name.clone());
        }
    }
}

/// An embedded version as written by `scripts/kubernetes-schemas`: each definition kept as text until
/// a kind needs it.
#[derive(serde::Deserialize)]
struct Embedded {
    kubernetes: String,
    /// `[group, version, kind, definition]`.
    kinds: Vec<(String, String, String, String)>,
    definitions: HashMap<String, Box<serde_json::value::RawValue>>,
}

/// Loads an embedded version's schemas into `set`.
pub fn load(version: &str, set: &mut SchemaSet) -> Result<BuiltIn, SchemaError> {
    let version = normalize_version(version).map_err(SchemaError)?;
    let embedded = embedded_document(version)?;
    set.add_definitions(
        embedded
            .definitions
            .into_iter()
            .map(|(name, text)| (name, super::openapi::Pending::Text(text))),
    );
    let kinds = embedded
        .kinds
        .into_iter()
        .map(|(group, version, kind, name)| ((group, version, kind), name))
        .collect();
    Ok(BuiltIn {
        version: embedded.kubernetes,
        kinds,
    })
}

fn embedded_document(version: &str) -> Result<Embedded, SchemaError> {
    let (_, bytes) = EMBEDDED
        .iter()
        .find(|(v, _)| *v == version)
        .ok_or_else(|| SchemaError(format!("no embedded schemas for Kubernetes {version}")))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(*bytes)
        .read_to_string(&mut text)
        .map_err(|e| {
            SchemaError(format!(
                "the embedded schemas for Kubernetes {version} do not inflate: {e}"
            ))
        })?;
    serde_json::from_str(&text).map_err(|e| {
        SchemaError(format!(
            "the embedded schemas for Kubernetes {version} do not parse: {e}"
        ))
    })
}

/// The built-in `(group, version, kind)`s each embedded version serves, read (once per version and
/// process) only when an object's apiVersion is not served by the target: to say when it went away
/// and what replaced it.
fn served_by(version: &str) -> &'static HashSet<(String, String, String)> {
    static SERVED: [OnceLock<HashSet<(String, String, String)>>; EMBEDDED.len()] =
        [const { OnceLock::new() }; EMBEDDED.len()];
    let position = EMBEDDED.iter().position(|(v, _)| *v == version).unwrap_or(0);
    SERVED[position].get_or_init(|| {
        embedded_document(EMBEDDED[position].0)
            .map(|embedded| embedded.kinds.into_iter().map(|(g, v, k, _)| (g, v, k)).collect())
            .unwrap_or_default()
    })
}

/// Removals before the oldest embedded version, from Kubernetes' deprecated API migration guide:
/// (group, version, kinds, removed in, replacement apiVersion).
const REMOVED_BEFORE_EMBEDDED: &[(&str, &str, &[&str], &str, &str)] = &[
    (
        "extensions",
        "v1beta1",
        &["Deployment", "DaemonSet", "ReplicaSet"],
        "1.16",
        "apps/v1",
    ),
    (
        "extensions",
        "v1beta1",
        &["NetworkPolicy"],
        "1.16",
        "networking.k8s.io/v1",
    ),
    (
        "extensions",
        "v1beta1",
        &["PodSecurityPolicy"],
        "1.16",
        "policy/v1beta1, itself removed in 1.25",
    ),
    ("extensions", "v1beta1", &["Ingress"], "1.22", "networking.k8s.io/v1"),
    (
        "apps",
        "v1beta1",
        &["Deployment", "StatefulSet", "ReplicaSet", "ControllerRevision"],
        "1.16",
        "apps/v1",
    ),
    (
        "apps",
        "v1beta2",
        &[
            "Deployment",
            "StatefulSet",
            "ReplicaSet",
            "DaemonSet",
            "ControllerRevision",
        ],
        "1.16",
        "apps/v1",
    ),
    (
        "admissionregistration.k8s.io",
        "v1beta1",
        &["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"],
        "1.22",
        "admissionregistration.k8s.io/v1",
    ),
    (
        "apiextensions.k8s.io",
        "v1beta1",
        &["CustomResourceDefinition"],
        "1.22",
        "apiextensions.k8s.io/v1",
    ),
    (
        "apiregistration.k8s.io",
        "v1beta1",
        &["APIService"],
        "1.22",
        "apiregistration.k8s.io/v1",
    ),
    (
        "authentication.k8s.io",
        "v1beta1",
        &["TokenReview"],
        "1.22",
        "authentication.k8s.io/v1",
    ),
    (
        "authorization.k8s.io",
        "v1beta1",
        &[
            "LocalSubjectAccessReview",
            "SelfSubjectAccessReview",
            "SubjectAccessReview",
        ],
        "1.22",
        "authorization.k8s.io/v1",
    ),
    (
        "certificates.k8s.io",
        "v1beta1",
        &["CertificateSigningRequest"],
        "1.22",
        "certificates.k8s.io/v1",
    ),
    (
        "coordination.k8s.io",
        "v1beta1",
        &["Lease"],
        "1.22",
        "coordination.k8s.io/v1",
    ),
    (
        "networking.k8s.io",
        "v1beta1",
        &["Ingress", "IngressClass"],
        "1.22",
        "networking.k8s.io/v1",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1beta1",
        &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
        "1.22",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1alpha1",
        &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
        "1.22",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "scheduling.k8s.io",
        "v1beta1",
        &["PriorityClass"],
        "1.22",
        "scheduling.k8s.io/v1",
    ),
    (
        "storage.k8s.io",
        "v1beta1",
        &["CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"],
        "1.22",
        "storage.k8s.io/v1",
    ),
    ("batch", "v1beta1", &["CronJob"], "1.25", "batch/v1"),
    (
        "discovery.k8s.io",
        "v1beta1",
        &["EndpointSlice"],
        "1.25",
        "discovery.k8s.io/v1",
    ),
    ("events.k8s.io", "v1beta1", &["Event"], "1.25", "events.k8s.io/v1"),
    (
        "autoscaling",
        "v2beta1",
        &["HorizontalPodAutoscaler"],
        "1.25",
        "autoscaling/v2",
    ),
    ("policy", "v1beta1", &["PodDisruptionBudget"], "1.25", "policy/v1"),
    (
        "policy",
        "v1beta1",
        &["PodSecurityPolicy"],
        "1.25",
        "nothing: Pod Security Admission took its place",
    ),
    ("node.k8s.io", "v1beta1", &["RuntimeClass"], "1.25", "node.k8s.io/v1"),
    (
        "autoscaling",
        "v2beta2",
        &["HorizontalPodAutoscaler"],
        "1.26",
        "autoscaling/v2",
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "v1beta1",
        &["FlowSchema", "PriorityLevelConfiguration"],
        "1.26",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "storage.k8s.io",
        "v1beta1",
        &["CSIStorageCapacity"],
        "1.27",
        "storage.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "v1beta2",
        &["FlowSchema", "PriorityLevelConfiguration"],
        "1.29",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "v1beta3",
        &["FlowSchema", "PriorityLevelConfiguration"],
        "1.32",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// Groups that belong to Kubernetes itself: a kind in one of them with no schema is not a custom
/// resource waiting for its CRD, it is an apiVersion the target does not serve. (`*.k8s.io` groups of
/// SIG projects, gateway.networking.k8s.io for one, are served by CRDs and are not in the list.)
pub fn is_builtin_group(group: &str) -> bool {
    !group.contains('.') || KNOWN_BUILTIN_K8S_IO.contains(&group)
}

const KNOWN_BUILTIN_K8S_IO: &[&str] = &[
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Why Kubernetes `target` does not serve `group/version` `kind`, when it is a built-in API that
/// existed: which version stopped serving it and what to use instead.
pub fn removal(target: &str, group: &str, version: &str, kind: &str) -> Option<String> {
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    if let Some((_, _, _, removed, replacement)) = REMOVED_BEFORE_EMBEDDED
        .iter()
        .find(|(g, v, kinds, _, _)| *g == group && *v == version && kinds.contains(&kind))
    {
        return Some(format!(
            "{api_version} {kind} was removed in Kubernetes {removed}; use {replacement} (Kubernetes' deprecated API migration guide)"
        ));
    }
    let wanted = (group.to_owned(), version.to_owned(), kind.to_owned());
    let target_position = EMBEDDED.iter().position(|(v, _)| *v == target)?;
    let last_serving = EMBEDDED[..target_position]
        .iter()
        .rposition(|(v, _)| served_by(v).contains(&wanted))?;
    let removed = EMBEDDED[last_serving + 1].0;
    let served_now = served_by(target);
    let replacement: Vec<String> = served_now
        .iter()
        .filter(|(g, v, k)| *g == group && k == kind && *v != version)
        .map(|(g, v, _)| if g.is_empty() { v.clone() } else { format!("{g}/{v}") })
        .collect();
    let instead = if replacement.is_empty() {
        "Kubernetes serves no other version of it".to_owned()
    } else {
        format!("use {}", replacement.join(" or "))
    };
    Some(format!(
        "{api_version} {kind} was removed in Kubernetes {removed}; {instead}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_version_loads_and_knows_its_kinds() {
        for version in supported_versions() {
            let mut set = SchemaSet::new();
            let built_in = load(version, &mut set).unwrap();
            assert!(built_in.version.starts_with(version), "{}", built_in.version);
            for (group, kind) in [("apps", "Deployment"), ("", "ConfigMap"), ("batch", "CronJob")] {
                assert!(
                    built_in.kinds.keys().any(|(g, _, k)| g == group && k == kind),
                    "{version} lacks {kind}"
                );
            }
            assert!(set.definition(OBJECT_META).unwrap().is_some());
            let deployment = &built_in.kinds[&("apps".to_owned(), "v1".to_owned(), "Deployment".to_owned())];
            assert!(set.definition(deployment).unwrap().is_some());
        }
    }

    #[test]
    fn versions_are_read_loosely_and_refused_with_the_list() {
        assert_eq!(normalize_version("v1.36.3"), Ok("1.36"));
        assert_eq!(normalize_version("1.32"), Ok("1.32"));
        let refused = normalize_version("1.20").unwrap_err();
        assert!(refused.contains("1.32, 1.33"), "{refused}");
    }

    #[test]
    fn removals_name_the_release_and_the_replacement() {
        let old = removal("1.36", "extensions", "v1beta1", "Ingress").unwrap();
        assert!(
            old.contains("removed in Kubernetes 1.22") && old.contains("networking.k8s.io/v1"),
            "{old}"
        );
        let psp = removal("1.36", "policy", "v1beta1", "PodSecurityPolicy").unwrap();
        assert!(psp.contains("1.25") && psp.contains("Pod Security Admission"), "{psp}");
        assert_eq!(removal("1.36", "example.com", "v1", "Widget"), None);
    }

    #[test]
    fn builtin_groups_are_told_from_custom_ones() {
        for group in ["", "apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io"] {
            assert!(is_builtin_group(group), "{group}");
        }
        for group in [
            "monitoring.coreos.com",
            "gateway.networking.k8s.io",
            "cluster.x-k8s.io",
            "argoproj.io",
        ] {
            assert!(!is_builtin_group(group), "{group}");
        }
    }
}
