//! Pruning with kubectl's ApplySet (KEP-3659): a parent Secret records which group-kinds and namespaces
//! the set spans, and every member carries the `applyset.kubernetes.io/part-of` label with the set's ID,
//! so kubectl tooling recognises the set and only its members are ever pruned.
//!
//! A member must also show in its managedFields that kdeploy applied it: an object that merely copies
//! the label is left alone.
//!
//! The parent records the project it belongs to (`kdeploy.dev/project`). A parent recorded for another
//! project is refused, never adopted, so one project can never prune another's objects through it.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::client::with_retries;
use super::resources::{Resolved, Resources};
use super::{ClusterError, FIELD_MANAGER, describe_api_error};
use crate::manifest::ObjectRef;

pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
const ID_LABEL: &str = "applyset.kubernetes.io/id";
const TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
const KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";
const NAMESPACES_ANNOTATION: &str = "applyset.kubernetes.io/additional-namespaces";
const PARENT_FIELD_MANAGER: &str = "kdeploy-applyset";
/// The project a parent belongs to.
pub const PROJECT_ANNOTATION: &str = "kdeploy.dev/project";

/// The parent's data key holding the key of the members' applied digests.
const DIGEST_KEY_FIELD: &str = "kdeploy.dev-digest-key";
/// The parent's data key listing the members the project adopted (JSON): they existed before it
/// applied them, so `kdeploy delete` releases them rather than deleting them.
const ADOPTED_FIELD: &str = "kdeploy.dev-adopted";
/// The number of the set's latest revision (see [`super::revision`]).
const REVISION_ANNOTATION: &str = "kdeploy.dev/revision";
/// How many revisions the set keeps.
const HISTORY_MAX_ANNOTATION: &str = "kdeploy.dev/history-max";

/// What the parent records about the set's history: its latest revision, how many it keeps, and the
/// members it adopted. Read with [`ApplySet::recorded`], written with every parent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    pub revision: u64,
    pub history_max: Option<u32>,
    pub adopted: BTreeSet<ObjectRef>,
}

/// An ApplySet whose parent is a Secret.
#[derive(Debug, Clone)]
pub struct ApplySet {
    pub name: String,
    pub namespace: String,
    pub id: String,
    /// The project this set belongs to, recorded in the parent; none for a set named only by
    /// `--applyset`.
    pub project: Option<String>,
    /// The key the members' applied digests are keyed with ([`super::unchanged`]): read from the parent,
    /// or made for a parent that has none yet (and written with it).
    digest_key: Arc<std::sync::OnceLock<DigestKey>>,
    /// The history the parent records, as first read and as changed since (what the next write
    /// records); none until the parent is read.
    ledger: Arc<std::sync::Mutex<Option<Ledger>>>,
}

/// 32 random bytes, kept in the parent Secret's data: a digest says nothing about an object to whoever
/// cannot read that Secret (a Secret's digest would otherwise invite guessing a short value).
#[derive(Clone)]
pub struct DigestKey(Vec<u8>);

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(<redacted>)")
    }
}

impl DigestKey {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Who owns an ApplySet that is not ours, as far as the cluster tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    /// The parent Secret (`namespace/name`) and the project it records, when the parent could be found.
    pub parent: Option<(String, Option<String>)>,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.parent {
            Some((parent, Some(project))) => write!(f, "project `{project}` (ApplySet parent Secret {parent})"),
            Some((parent, None)) => write!(f, "the ApplySet whose parent is Secret {parent}"),
            None => write!(f, "another ApplySet ({})", self.id),
        }
    }
}

/// A live member of the set.
pub struct Member {
    pub object: ObjectRef,
    /// The live object; none when the listing's caller had all it needed from it as it arrived (the
    /// planner, for a member it proved unchanged), so that its body is not held.
    pub live: Option<Json>,
    pub resolved: Resolved,
}

/// Whether the caller of [`ApplySet::members`] is done with a member as it arrives: its body is then
/// dropped at once rather than held until the listing ends.
pub type Settled<'a> = dyn Fn(&ObjectRef, &Json) -> bool + Sync + 'a;

/// `Kind` for the core group, `Kind.group` otherwise, as kubectl writes group-kinds.
pub fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    }
}

fn split_group_kind(gk: &str) -> (String, String) {
    match gk.split_once('.') {
        Some((kind, group)) => (group.to_owned(), kind.to_owned()),
        None => (String::new(), gk.to_owned()),
    }
}

/// The items of one page that kdeploy applied, as members. Each keeps only kdeploy's own managedFields
/// entries: planning reads no other manager's (the server reports conflicts), and at thousands of
/// objects the other entries are a large share of what is held. A member `settled` is done with keeps
/// no body at all.
fn members_of(gk: &str, resolved: &Resolved, items: Vec<DynamicObject>, settled: &Settled<'_>) -> Vec<Member> {
    let (group, kind) = split_group_kind(gk);
    items
        .into_iter()
        .filter_map(|item| {
            let object = ObjectRef {
                group: group.clone(),
                kind: kind.clone(),
                namespace: item.metadata.namespace.clone(),
                name: item.metadata.name.clone().unwrap_or_default(),
            };
            let mut live = serde_json::to_value(item).unwrap_or(Json::Null);
            // Items of a list response carry no apiVersion or kind.
            live["apiVersion"] = Json::String(resolved.resource.api_version.clone());
            live["kind"] = Json::String(resolved.resource.kind.clone());
            if !applied_by_kdeploy(&live) {
                return None;
            }
            if let Some(fields) = live["metadata"]["managedFields"].as_array_mut() {
                fields.retain(|entry| entry["manager"] == FIELD_MANAGER);
            }
            let live = (!settled(&object, &live)).then_some(live);
            Some(Member {
                object,
                live,
                resolved: resolved.clone(),
            })
        })
        .collect()
}

/// Whether kdeploy's field manager applied the object.
fn applied_by_kdeploy(object: &Json) -> bool {
    object["metadata"]["managedFields"].as_array().is_some_and(|fields| {
        fields
            .iter()
            .any(|f| f["manager"] == FIELD_MANAGER && f["operation"] == "Apply")
    })
}

impl ApplySet {
    /// The set named `name` whose parent Secret lives in `namespace`, belonging to `project`; the ID
    /// follows kubectl's `base64url(sha256(name.namespace.Secret.))`.
    pub fn new(name: &str, namespace: &str, project: Option<&str>) -> ApplySet {
        ApplySet {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            id: applyset_id(name, namespace),
            project: project.map(str::to_owned),
            digest_key: Arc::default(),
            ledger: Arc::default(),
        }
    }

    /// The history the parent records (as read by [`ApplySet::recorded`], or as changed since).
    pub fn ledger(&self) -> Ledger {
        self.ledger.lock().ok().and_then(|l| l.clone()).unwrap_or_default()
    }

    /// Changes what the next parent write records.
    pub fn update_ledger(&self, change: impl FnOnce(&mut Ledger)) {
        if let Ok(mut ledger) = self.ledger.lock() {
            change(ledger.get_or_insert_default());
        }
    }

    /// The key of the members' applied digests: the parent's (once [`ApplySet::recorded`] has read it),
    /// else a new one, which the next [`ApplySet::write_parent`] records.
    pub fn digest_key(&self) -> &DigestKey {
        self.digest_key.get_or_init(|| {
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key).expect("the operating system's random source");
            DigestKey(key)
        })
    }

    /// The parent, as failures name it.
    pub fn parent_ref(&self) -> ObjectRef {
        ObjectRef {
            group: String::new(),
            kind: "Secret".into(),
            namespace: Some(self.namespace.clone()),
            name: format!("{} (the ApplySet parent)", self.name),
        }
    }

    /// The parent Secret's name for a project identity.
    pub fn parent_name(identity: &str) -> String {
        format!("kdeploy-{identity}")
    }

    /// Adds the part-of label to a manifest object.
    pub fn label(&self, object: &mut Json) {
        let labels = &mut object["metadata"]["labels"];
        if !labels.is_object() {
            *labels = json!({});
        }
        labels[PART_OF_LABEL] = Json::String(self.id.clone());
    }

    fn parents(&self, resources: &Resources) -> Api<Secret> {
        Api::namespaced(resources.client(), &self.namespace)
    }

    /// The group-kinds and extra namespaces the parent records, if it exists. A parent managed by
    /// another tool is refused.
    pub async fn recorded(
        &self,
        resources: &Resources,
    ) -> Result<Option<(BTreeSet<String>, BTreeSet<String>)>, ClusterError> {
        let api = self.parents(resources);
        let parent = with_retries(|| api.get_opt(&self.name)).await.map_err(|e| {
            ClusterError::api(
                format!("reading the ApplySet parent Secret/{} in {}", self.name, self.namespace),
                e,
            )
        })?;
        let Some(parent) = parent else { return Ok(None) };
        if let Some(key) = parent.data.as_ref().and_then(|d| d.get(DIGEST_KEY_FIELD))
            && key.0.len() == 32
        {
            let _ = self.digest_key.set(DigestKey(key.0.clone()));
        }
        let adopted: BTreeSet<ObjectRef> = parent
            .data
            .as_ref()
            .and_then(|d| d.get(ADOPTED_FIELD))
            .and_then(|bytes| serde_json::from_slice(&bytes.0).ok())
            .unwrap_or_default();
        let annotations = parent.metadata.annotations.unwrap_or_default();
        let labels = parent.metadata.labels.unwrap_or_default();
        if labels.get(ID_LABEL) != Some(&self.id) {
            return Err(ClusterError::Config(format!(
                "Secret/{} in {} exists but is not the parent of this ApplySet (its {ID_LABEL} label differs); choose another --applyset name",
                self.name, self.namespace
            )));
        }
        let tooling = annotations.get(TOOLING_ANNOTATION).cloned().unwrap_or_default();
        if !tooling.starts_with("kdeploy/") {
            return Err(ClusterError::Config(format!(
                "the ApplySet Secret/{} in {} is managed by `{tooling}`, not kdeploy; kdeploy will not prune for another tool",
                self.name, self.namespace
            )));
        }
        if let Some(recorded) = annotations.get(PROJECT_ANNOTATION)
            && Some(recorded) != self.project.as_ref()
        {
            let this = match &self.project {
                Some(project) => format!("this is project `{project}`"),
                None => "this project has no name".to_owned(),
            };
            return Err(ClusterError::Config(format!(
                "the ApplySet Secret/{} in {} belongs to project `{recorded}`, and {this}; kdeploy never adopts another project's set. \
                 Run from project `{recorded}`, or give this project its own set (`name:` in kdeploy.yaml, or another --applyset)",
                self.name, self.namespace
            )));
        }
        // Read once: a later read (before the members are applied) must not undo what this run
        // changed since (the revision it reserved).
        if let Ok(mut ledger) = self.ledger.lock()
            && ledger.is_none()
        {
            *ledger = Some(Ledger {
                revision: annotations
                    .get(REVISION_ANNOTATION)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                history_max: annotations.get(HISTORY_MAX_ANNOTATION).and_then(|n| n.parse().ok()),
                adopted,
            });
        }
        let split = |name: &str| -> BTreeSet<String> {
            annotations
                .get(name)
                .map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        Ok(Some((split(KINDS_ANNOTATION), split(NAMESPACES_ANNOTATION))))
    }

    /// The parent Secret recording the given group-kinds and namespaces.
    fn parent(&self, kinds: &BTreeSet<String>, namespaces: &BTreeSet<String>) -> Json {
        let extra: Vec<&String> = namespaces.iter().filter(|n| **n != self.namespace).collect();
        let mut parent = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {ID_LABEL: self.id},
                "annotations": {
                    TOOLING_ANNOTATION: format!("kdeploy/v{}", env!("CARGO_PKG_VERSION")),
                    KINDS_ANNOTATION: kinds.iter().cloned().collect::<Vec<_>>().join(","),
                    NAMESPACES_ANNOTATION: extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
                },
            },
            "type": "Opaque",
        });
        if let Some(project) = &self.project {
            parent["metadata"]["annotations"][PROJECT_ANNOTATION] = Json::String(project.clone());
        }
        let engine = &base64::engine::general_purpose::STANDARD;
        if let Some(key) = self.digest_key.get() {
            parent["data"][DIGEST_KEY_FIELD] = Json::String(engine.encode(key.bytes()));
        }
        let ledger = self.ledger();
        if ledger.revision > 0 {
            parent["metadata"]["annotations"][REVISION_ANNOTATION] = Json::String(ledger.revision.to_string());
        }
        if let Some(max) = ledger.history_max {
            parent["metadata"]["annotations"][HISTORY_MAX_ANNOTATION] = Json::String(max.to_string());
        }
        if !ledger.adopted.is_empty() {
            let list = serde_json::to_vec(&ledger.adopted).unwrap_or_default();
            parent["data"][ADOPTED_FIELD] = Json::String(engine.encode(list));
        }
        parent
    }

    /// Checks with a server-side dry run that the parent can be written, before anything is applied.
    /// A missing namespace is fine when this apply creates it; any other refusal is an error.
    pub async fn check_parent(&self, resources: &Resources, apply_creates_namespace: bool) -> Result<(), String> {
        let parent = self.parent(&BTreeSet::new(), &BTreeSet::new());
        let api = self.parents(resources);
        let params = PatchParams::apply(PARENT_FIELD_MANAGER).force().dry_run();
        let patch = Patch::Apply(&parent);
        match with_retries(|| api.patch(&self.name, &params, &patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 && apply_creates_namespace => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(format!(
                "namespace `{}` does not exist and this apply does not create it, so the ApplySet parent cannot be written there; \
                 create it, add it to the manifests, or choose the default namespace with -n or `namespace:` in kdeploy.yaml",
                self.namespace
            )),
            Err(error) => Err(describe_api_error(&error)),
        }
    }

    /// Writes the parent with the given group-kinds and namespaces (server-side apply).
    pub async fn write_parent(
        &self,
        resources: &Resources,
        kinds: &BTreeSet<String>,
        namespaces: &BTreeSet<String>,
    ) -> Result<(), ClusterError> {
        let parent = self.parent(kinds, namespaces);
        let api = self.parents(resources);
        let params = PatchParams::apply(PARENT_FIELD_MANAGER).force();
        let patch = Patch::Apply(&parent);
        with_retries(|| api.patch(&self.name, &params, &patch))
            .await
            .map_err(|e| {
                ClusterError::api(
                    format!("writing the ApplySet parent Secret/{} in {}", self.name, self.namespace),
                    e,
                )
            })?;
        Ok(())
    }

    /// The live members: objects of the group-kinds and namespaces the parent records (`recorded`, from
    /// [`ApplySet::recorded`]), with this set's label, that kdeploy applied. One LIST per group-kind
    /// across all namespaces when the set spans several (what lies outside the recorded ones is left
    /// out), or per namespace when the caller may not list across namespaces; `concurrency` at a time.
    /// Each LIST is read in pages of `page_size`, and each page becomes members as it arrives: one page
    /// per LIST is held at a time, and a member `settled` is done with keeps no body. With a `gate`, each
    /// page waits until it opens before `settled` is asked about its members.
    pub async fn members<'a>(
        &self,
        resources: &Arc<Resources>,
        recorded: &'a (BTreeSet<String>, BTreeSet<String>),
        concurrency: usize,
        page_size: u32,
        settled: &Settled<'_>,
        gate: Option<&tokio::sync::watch::Receiver<bool>>,
    ) -> Result<Vec<Member>, ClusterError> {
        let (kinds, namespaces) = recorded;
        let mut namespaces = namespaces.clone();
        namespaces.insert(self.namespace.clone());
        let mut scopes = Vec::new();
        for gk in kinds {
            let (group, kind) = split_group_kind(gk);
            let Some(resolved) = resources.resolve_group_kind(&group, &kind).await? else {
                continue;
            };
            scopes.push((gk, resolved));
        }
        let selector = ListParams::default().labels(&format!("{PART_OF_LABEL}={}", self.id));
        let list = |gk: &'a String, resolved: Resolved, namespace: Option<String>| {
            let selector = &selector;
            async move {
                let api = resources.api(&resolved, namespace.as_deref());
                list_pages(&api, selector, page_size, gk, &resolved, settled, gate)
                    .await
                    .map_err(|e| ClusterError::Api {
                        context: format!("listing {gk} in the ApplySet"),
                        source: e,
                    })
            }
        };
        let namespaces = &namespaces;
        let lists = futures::stream::iter(scopes.into_iter().map(|(gk, resolved)| async move {
            if !resolved.namespaced {
                return Ok(vec![list(gk, resolved, None).await?]);
            }
            if namespaces.len() > 1 {
                match list(gk, resolved.clone(), None).await {
                    Ok(mut members) => {
                        members.retain(|m| m.object.namespace.as_ref().is_some_and(|n| namespaces.contains(n)));
                        return Ok(vec![members]);
                    }
                    Err(ClusterError::Api {
                        source: kube::Error::Api(status),
                        ..
                    }) if status.code == 403 => {}
                    Err(error) => return Err(error),
                }
            }
            let per_namespace = namespaces.iter().map(|n| list(gk, resolved.clone(), Some(n.clone())));
            futures::future::try_join_all(per_namespace).await
        }))
        .buffered(concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await?;
        Ok(lists.into_iter().flatten().flatten().collect())
    }
}

/// The members in one LIST, read a page at a time. A continue token the server no longer honours
/// (410 Gone: the listing outlived etcd's compaction window) starts the LIST again, as kubectl does.
async fn list_pages(
    api: &Api<DynamicObject>,
    selector: &ListParams,
    page_size: u32,
    gk: &str,
    resolved: &Resolved,
    settled: &Settled<'_>,
    gate: Option<&tokio::sync::watch::Receiver<bool>>,
) -> Result<Vec<Member>, kube::Error> {
    const RESTARTS: u32 = 3;
    let (mut members, mut token, mut restarts) = (Vec::new(), None::<String>, 0);
    loop {
        let mut params = selector.clone().limit(page_size);
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        let page = match with_retries(|| api.list(&params)).await {
            Ok(page) => page,
            Err(kube::Error::Api(status)) if status.code == 410 && token.is_some() && restarts < RESTARTS => {
                restarts += 1;
                (members, token) = (Vec::new(), None);
                continue;
            }
            Err(error) => return Err(error),
        };
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        // A listing begun before its caller can judge members waits here (a closed gate's sender
        // gone counts as open).
        if let Some(gate) = gate {
            let _ = gate.clone().wait_for(|open| *open).await;
        }
        members.extend(members_of(gk, resolved, page.items, settled));
        if token.is_none() {
            return Ok(members);
        }
    }
}

/// kubectl's ApplySet ID: `applyset-base64url(sha256(name.namespace.Secret.))-v1`.
fn applyset_id(name: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{name}.{namespace}.Secret.").as_bytes());
    format!("applyset-{}-v1", URL_SAFE_NO_PAD.encode(digest))
}

/// The ApplySet an object is labelled as part of, if any.
pub fn part_of(object: &Json) -> Option<&str> {
    object["metadata"]["labels"][PART_OF_LABEL].as_str()
}

/// Finds who owns the ApplySet `id`: its parent Secret, found by label across namespaces, and the project
/// that parent records. Without permission to list Secrets cluster-wide, only the ID is known.
pub async fn owner(resources: &Resources, id: &str) -> Owner {
    let api: Api<Secret> = Api::all(resources.client());
    let selector = ListParams::default().labels(&format!("{ID_LABEL}={id}"));
    let parent = with_retries(|| api.list_metadata(&selector))
        .await
        .ok()
        .and_then(|list| list.items.into_iter().next())
        .map(|parent| {
            let place = format!(
                "{}/{}",
                parent.metadata.namespace.clone().unwrap_or_default(),
                parent.metadata.name.clone().unwrap_or_default()
            );
            let project = parent
                .metadata
                .annotations
                .and_then(|mut a| a.remove(PROJECT_ANNOTATION));
            (place, project)
        });
    Owner {
        id: id.to_owned(),
        parent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_kdeploys_objects_and_keep_only_kdeploys_field_entries() {
        let resolved = Resolved {
            resource: kube::discovery::ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: "configmaps".into(),
            },
            namespaced: true,
        };
        let item = |name: &str, managers: &[(&str, &str)]| -> DynamicObject {
            let fields: Vec<Json> = managers
                .iter()
                .map(|(manager, operation)| json!({"manager": manager, "operation": operation, "fieldsV1": {"f:data": {}}}))
                .collect();
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "a", "managedFields": fields}, "data": {"k": "v"}}),
            )
            .unwrap()
        };
        let items = vec![
            item(
                "ours",
                &[
                    ("kube-controller-manager", "Update"),
                    (FIELD_MANAGER, "Apply"),
                    ("kubectl-edit", "Update"),
                ],
            ),
            item("copied", &[("kubectl", "Apply")]),
            item("updated-only", &[(FIELD_MANAGER, "Update")]),
        ];
        let members = members_of("ConfigMap", &resolved, items.clone(), &|_, _| false);
        assert_eq!(members.len(), 1, "only what kdeploy applied is a member");
        let member = &members[0];
        assert_eq!(member.object.to_string(), "ConfigMap/ours (namespace a)");
        let live = member.live.as_ref().expect("an unsettled member keeps its body");
        assert_eq!(live["apiVersion"], "v1");
        assert_eq!(live["kind"], "ConfigMap");
        assert_eq!(live["data"]["k"], "v");
        let managers: Vec<&Json> = live["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| &f["manager"])
            .collect();
        assert_eq!(managers, [FIELD_MANAGER]);

        // What the caller settles as it arrives stays a member (it is not pruned) but keeps no body; the
        // caller sees it whole, with apiVersion and kind filled in.
        let seen = std::sync::Mutex::new(Vec::new());
        let settled = |object: &ObjectRef, live: &Json| {
            seen.lock().unwrap().push((object.to_string(), live["kind"].clone()));
            true
        };
        let members = members_of("ConfigMap", &resolved, items, &settled);
        assert_eq!(members.len(), 1);
        assert!(members[0].live.is_none(), "a settled member's body is dropped");
        assert_eq!(
            *seen.lock().unwrap(),
            [("ConfigMap/ours (namespace a)".to_owned(), json!("ConfigMap"))],
            "only members are offered to the caller"
        );
    }

    #[test]
    fn the_id_follows_kubectls_formula() {
        let set = ApplySet::new("my-set", "team", None);
        let digest = Sha256::digest(b"my-set.team.Secret.");
        assert_eq!(set.id, format!("applyset-{}-v1", URL_SAFE_NO_PAD.encode(digest)));
        assert_eq!(group_kind("", "ConfigMap"), "ConfigMap");
        assert_eq!(group_kind("apps", "Deployment"), "Deployment.apps");
        assert_eq!(
            split_group_kind("Deployment.apps"),
            ("apps".into(), "Deployment".into())
        );
        assert_eq!(
            split_group_kind("Widget.example.com"),
            ("example.com".into(), "Widget".into())
        );
    }

    #[test]
    fn only_objects_kdeploy_applied_are_members() {
        let ours = json!({"metadata": {"managedFields": [{"manager": "kdeploy", "operation": "Apply"}]}});
        let theirs = json!({"metadata": {"managedFields": [{"manager": "kubectl", "operation": "Apply"}]}});
        assert!(applied_by_kdeploy(&ours));
        assert!(!applied_by_kdeploy(&theirs));
    }
}
