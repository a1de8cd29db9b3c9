//! What applying the manifest would do, as the API server says: each object is server-side applied
//! with `dryRun=All` (field manager `kdeploy`) and compared with the live object, both with the fields
//! the server owns removed (managedFields, resourceVersion, uid, status, ...). Objects in the ApplySet
//! that left the manifest are planned for pruning.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use serde_json::Value as Json;
use tokio::sync::{Semaphore, watch};

use super::applyset::{ApplySet, DigestKey, Member, part_of};
use super::client::with_retries;
use super::resources::{Resolved, Resources};
use super::unchanged::{self, DIGEST_ANNOTATION};
use super::{ClusterError, FIELD_MANAGER, describe_api_error};
use crate::manifest::ObjectRef;
use crate::manifest::phase::{REPLACE_ANNOTATION, replaces_on_immutable};

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Update,
    Unchanged,
    Prune,
    /// Delete and create again: the change is one the server refuses in place (an immutable field), and
    /// the object asks for it (`kdeploy.dev/replace-on-immutable`).
    Replace,
}

/// One object's planned change.
#[derive(Debug, Clone)]
pub struct Change {
    pub object: ObjectRef,
    pub operation: Operation,
    /// The live object (server fields removed); none when it is to be created, and when it is unchanged
    /// (there is nothing to show, and at thousands of objects it would be most of what is held).
    pub live: Option<Json>,
    /// What the object will be (the dry run's result, server fields removed); for a create, the object as
    /// rendered; none when it is to be pruned or is unchanged.
    pub desired: Option<Json>,
    /// Why the server could not check it yet: it lives in a namespace, or is of a kind whose CRD, that this
    /// same apply creates.
    pub pending: Option<String>,
    /// The manifest object to apply (with the ApplySet label and namespace set).
    pub manifest: Option<Json>,
    pub resolved: Option<Resolved>,
    /// The ApplySet the live object belongs to, when that is not this apply's set: another project's
    /// object, which is never changed without --force-conflicts.
    pub claimed_by: Option<String>,
    /// Unchanged, proven so by the last apply's digest and kdeploy's managed fields (see
    /// [`super::unchanged`]) rather than by a dry run.
    pub proven: bool,
    /// Unchanged, but the live object does not carry the digest of what is applied now (it was applied
    /// before kdeploy recorded digests, or only the digest differs): apply sends it again, which changes
    /// no field but the digest, so that the next plan can skip its dry run.
    pub restamp: bool,
}

/// The plan, and the objects the server refused in the dry run.
#[derive(Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub failures: Vec<(ObjectRef, String)>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.operation != Operation::Unchanged)
    }

    pub fn count(&self, operation: Operation) -> usize {
        self.changes.iter().filter(|c| c.operation == operation).count()
    }
}

/// Options that change what the dry run asks.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub concurrency: usize,
    pub force_conflicts: bool,
    /// Dry-run every object, even one the last apply proves unchanged (`--full-dry-run`).
    pub full_dry_run: bool,
}

/// Fields the server owns or computes, which say nothing about what the manifest changes.
pub fn normalize(object: &Json) -> Json {
    normalized(object.clone())
}

/// [`normalize`], in place.
fn normalized(mut object: Json) -> Json {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Json::as_object_mut) {
            for field in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
                "selfLink",
                "deletionTimestamp",
            ] {
                metadata.remove(field);
            }
            if let Some(annotations) = metadata.get_mut("annotations").and_then(Json::as_object_mut) {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
                annotations.remove(DIGEST_ANNOTATION);
                annotations.remove("deployment.kubernetes.io/revision");
                if annotations.is_empty() {
                    metadata.remove("annotations");
                }
            }
        }
    }
    object
}

/// Plans the manifest `objects` (already labelled for `applyset`) against the cluster.
pub async fn plan(
    resources: &Arc<Resources>,
    objects: Vec<Json>,
    default_namespace: &str,
    applyset: Option<&ApplySet>,
    options: PlanOptions,
) -> Result<Plan, ClusterError> {
    let new_namespaces: HashSet<String> = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace" && o["apiVersion"] == "v1")
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let new_kinds: HashSet<(String, String)> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .filter_map(|o| {
            Some((
                o["spec"]["group"].as_str()?.to_owned(),
                o["spec"]["names"]["kind"].as_str()?.to_owned(),
            ))
        })
        .collect();
    // The set's members are listed for pruning anyway, and their live state saves a GET per object. The
    // listing runs alongside the dry runs and is published to them when it is done.
    let (publish_known_live, known_live) = watch::channel::<Option<Arc<KnownLive>>>(None);
    let semaphore = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, object) in objects.into_iter().enumerate() {
        let resources = resources.clone();
        let semaphore = semaphore.clone();
        let default_namespace = default_namespace.to_owned();
        let new_namespaces = new_namespaces.clone();
        let new_kinds = new_kinds.clone();
        let known_live = known_live.clone();
        let applyset_id = applyset.map(|set| set.id.clone());
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let context = Context {
                applyset_id: applyset_id.as_deref(),
                default_namespace: &default_namespace,
                new_namespaces: &new_namespaces,
                new_kinds: &new_kinds,
                known_live,
                options,
            };
            let result = plan_one(&resources, object, context).await;
            (index, result)
        });
    }
    let listing = async {
        let listed = match applyset {
            Some(applyset) => applyset.members(resources, options.concurrency).await,
            None => Ok(Vec::new()),
        };
        // On failure the plan fails below; the dry runs still finish, fetching what they need.
        let (members, failure) = match listed {
            Ok(members) => (members, None),
            Err(error) => (Vec::new(), Some(error)),
        };
        let known = Arc::new(KnownLive::new(members, applyset.map(|set| set.digest_key().clone())));
        publish_known_live.send_replace(Some(known.clone()));
        failure.map_or(Ok(known), Err)
    };
    let planning = async {
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            results.push(joined.map_err(|e| ClusterError::Config(format!("a planning task failed: {e}")))?);
        }
        Ok::<_, ClusterError>(results)
    };
    // The ApplySet parent is checked with the rest: no write may start if it could not be written.
    let parent_check = async {
        match applyset {
            Some(set) => set
                .check_parent(resources, new_namespaces.contains(&set.namespace))
                .await
                .err()
                .map(|message| (set.parent_ref(), message)),
            None => None,
        }
    };
    let (known, results, parent_refused) = tokio::join!(listing, planning, parent_check);
    let (known, mut results) = (known?, results?);
    results.sort_by_key(|(index, _)| *index);
    let mut plan = Plan::default();
    plan.failures.extend(parent_refused);
    for (_, result) in results {
        match result? {
            Ok(change) => plan.changes.push(change),
            Err(failure) => plan.failures.push(failure),
        }
    }
    {
        let wanted: HashSet<ObjectRef> = plan
            .changes
            .iter()
            .map(|c| c.object.clone())
            .chain(plan.failures.iter().map(|f| f.0.clone()))
            .collect();
        for member in &known.members {
            if !wanted.contains(&member.object) {
                plan.changes.push(Change {
                    object: member.object.clone(),
                    operation: Operation::Prune,
                    live: Some(normalize(&member.live)),
                    desired: None,
                    pending: None,
                    manifest: None,
                    resolved: Some(member.resolved.clone()),
                    claimed_by: None,
                    proven: false,
                    restamp: false,
                });
            }
        }
    }
    Ok(plan)
}

type Planned = Result<Change, (ObjectRef, String)>;

/// What the ApplySet listing tells every object's planning.
#[derive(Default)]
struct KnownLive {
    /// The live members, in the order listed (pruning keeps it).
    members: Vec<Member>,
    /// Where each member is in `members`.
    by_reference: HashMap<ObjectRef, usize>,
    /// The ApplySet's key for applied digests; none without an ApplySet.
    digest_key: Option<DigestKey>,
}

impl KnownLive {
    fn new(members: Vec<Member>, digest_key: Option<DigestKey>) -> Self {
        let by_reference = members.iter().enumerate().map(|(i, m)| (m.object.clone(), i)).collect();
        KnownLive {
            members,
            by_reference,
            digest_key,
        }
    }

    /// The live object listed for `reference`, if it is a member.
    fn live(&self, reference: &ObjectRef) -> Option<&Json> {
        self.by_reference.get(reference).map(|&i| &self.members[i].live)
    }
}

/// What every object's planning shares.
struct Context<'a> {
    /// This apply's ApplySet; none for an unnamed project, to which every labelled object is foreign.
    applyset_id: Option<&'a str>,
    default_namespace: &'a str,
    new_namespaces: &'a HashSet<String>,
    new_kinds: &'a HashSet<(String, String)>,
    /// Live objects listed with the ApplySet's members, by reference; `None` until the listing is done.
    known_live: watch::Receiver<Option<Arc<KnownLive>>>,
    options: PlanOptions,
}

async fn plan_one(resources: &Resources, mut object: Json, context: Context<'_>) -> Result<Planned, ClusterError> {
    let Context {
        applyset_id,
        default_namespace,
        new_namespaces,
        new_kinds,
        mut known_live,
        options,
    } = context;
    // The listing (for pruning) comes first: it gives the live members and the ApplySet's digest key.
    let known_live = match known_live.wait_for(Option::is_some).await {
        Ok(known) => known.clone().unwrap_or_default(),
        Err(_) => Arc::default(), // the listing was dropped: fetch instead
    };
    // What is applied carries its digest, so that the next plan can prove it unchanged without a dry run.
    // Only members of an ApplySet are listed, so only they can be proven.
    if let Some(key) = &known_live.digest_key {
        unchanged::stamp(&mut object, key.bytes());
    }
    let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g).to_owned();
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let reference = |namespace: Option<String>| ObjectRef {
        group: group.clone(),
        kind: kind.clone(),
        namespace,
        name: name.clone(),
    };
    let pending_change = |namespace: Option<String>, object: Json, reason: String| Change {
        object: reference(namespace),
        operation: Operation::Create,
        live: None,
        desired: Some(normalize(&object)),
        pending: Some(reason),
        manifest: Some(object),
        resolved: None,
        claimed_by: None,
        proven: false,
        restamp: false,
    };
    let not_served = |object: Json| {
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        if new_kinds.contains(&(group.clone(), kind.clone())) {
            return Ok(pending_change(
                namespace,
                object,
                "its CustomResourceDefinition is created by this apply".into(),
            ));
        }
        Err((
            reference(namespace),
            format!("the server does not serve {kind} in {api_version} (is the CRD installed?)"),
        ))
    };
    let Some(resolved) = resources.resolve(&api_version, &kind).await? else {
        return Ok(not_served(object));
    };
    let namespace = if resolved.namespaced {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(default_namespace)
            .to_owned();
        object["metadata"]["namespace"] = Json::String(namespace.clone());
        Some(namespace)
    } else {
        if object["metadata"].get("namespace").is_some() {
            return Ok(Err((
                reference(None),
                format!("{kind} is cluster-scoped but sets metadata.namespace"),
            )));
        }
        None
    };
    // A member the last apply proves unchanged needs no dry run.
    let listed = known_live.live(&reference(namespace.clone()));
    if !options.full_dry_run
        && let Some(live) = listed
        && unchanged::proven_unchanged(&object, live)
    {
        return Ok(Ok(Change {
            object: reference(namespace),
            operation: Operation::Unchanged,
            live: None,
            desired: None,
            pending: None,
            manifest: Some(object),
            resolved: Some(resolved),
            claimed_by: None,
            proven: true,
            restamp: false,
        }));
    }
    let api = resources.api(&resolved, namespace.as_deref());
    let mut params = PatchParams::apply(FIELD_MANAGER).dry_run();
    params.force = options.force_conflicts;
    let patch = Patch::Apply(&object);
    let dry_run = with_retries(|| api.patch(&name, &params, &patch)).await;
    let desired = match dry_run {
        Ok(result) => serde_json::to_value(result).unwrap_or(Json::Null),
        Err(kube::Error::Api(status))
            if status.code == 404 && namespace.as_ref().is_some_and(|ns| new_namespaces.contains(ns)) =>
        {
            return Ok(Ok(pending_change(
                namespace,
                object,
                "its namespace is created by this apply".into(),
            )));
        }
        // Discovery kept from an earlier run may name a kind whose CRD is gone since.
        Err(kube::Error::Api(status))
            if status.code == 404 && status.details.as_ref().is_none_or(|d| d.name.is_empty()) =>
        {
            if resources.recheck(&api_version, &kind).await?.is_none() {
                return Ok(not_served(object));
            }
            return Ok(Err((
                reference(namespace),
                describe_api_error(&kube::Error::Api(status)),
            )));
        }
        Err(kube::Error::Api(status)) if status.code == 422 && is_immutable_refusal(&status.message) => {
            let refusal = status.message.clone();
            let object_ref = reference(namespace);
            if !replaces_on_immutable(&object) {
                return Ok(Err((
                    object_ref,
                    format!(
                        "the server will refuse this change: {refusal}. An immutable field changes only by re-creating \
                         the object: annotate it `{REPLACE_ANNOTATION}: \"true\"` to have apply delete and re-create it, \
                         or delete it yourself first"
                    ),
                )));
            }
            let replacement = Replacement {
                api: &api,
                params: &params,
                object,
                object_ref,
                resolved,
                applyset_id,
            };
            return Ok(replacement.plan(&name, refusal).await);
        }
        Err(error) => return Ok(Err((reference(namespace), describe_api_error(&error)))),
    };
    // For an object outside the ApplySet, the dry run tells whether it exists (a dry-run create has no
    // resourceVersion), so only objects that do are fetched: a first apply costs one dry run per object,
    // not a GET as well.
    // A listed member is borrowed from the listing: normalizing makes the one copy planning keeps.
    let live: Option<Cow<'_, Json>> = match listed {
        Some(live) => Some(Cow::Borrowed(live)),
        None if resource_version(&desired).is_none() => None,
        None => match with_retries(|| api.get_opt(&name)).await {
            Ok(live) => live.map(|l| Cow::Owned(serde_json::to_value(l).unwrap_or(Json::Null))),
            Err(error) => return Ok(Err((reference(namespace), describe_api_error(&error)))),
        },
    };
    let claimed_by = live
        .as_deref()
        .and_then(part_of)
        .filter(|owner| Some(*owner) != applyset_id)
        .map(str::to_owned);
    let mut restamp = false;
    let (operation, live, desired) = match live {
        None => (Operation::Create, None, Some(normalize(&object))),
        Some(live) => {
            restamp = applyset_id.is_some() && unchanged::recorded(&live) != unchanged::recorded(&object);
            let (live, desired) = (normalized(live.into_owned()), normalized(desired));
            if live == desired {
                (Operation::Unchanged, None, None)
            } else {
                (Operation::Update, Some(live), Some(desired))
            }
        }
    };
    Ok(Ok(Change {
        object: reference(namespace),
        operation,
        live,
        desired,
        pending: None,
        manifest: Some(object),
        resolved: Some(resolved),
        restamp: restamp && operation == Operation::Unchanged && claimed_by.is_none(),
        claimed_by,
        proven: false,
    }))
}

/// Whether a 422 refusal is about a field that may not change once set: the messages of the API server's
/// validation for immutable fields (`field is immutable`, a Service's `may not change once set`, a
/// StatefulSet's forbidden spec updates).
fn is_immutable_refusal(message: &str) -> bool {
    [
        "field is immutable",
        "may not change once set",
        "updates to statefulset spec for fields other than",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// An object whose change is immutable and which asks to be replaced.
struct Replacement<'a> {
    api: &'a kube::Api<kube::api::DynamicObject>,
    params: &'a PatchParams,
    object: Json,
    object_ref: ObjectRef,
    resolved: Resolved,
    applyset_id: Option<&'a str>,
}

impl Replacement<'_> {
    /// Plans the replacement. The new object is dry-run under a name no object has, so that a refusal
    /// of the replacement itself comes now, before the old object is deleted.
    async fn plan(self, name: &str, refusal: String) -> Planned {
        let fail = |message: String| Err((self.object_ref.clone(), message));
        let probe_name = replacement_probe_name(name);
        let mut probe = self.object.clone();
        probe["metadata"]["name"] = Json::String(probe_name.clone());
        let patch = Patch::Apply(&probe);
        match with_retries(|| self.api.patch(&probe_name, self.params, &patch)).await {
            Ok(_) => {}
            // What the old object holds (a node port, a cluster IP) is free once it is deleted.
            Err(kube::Error::Api(status)) if status.message.contains("already allocated") => {}
            Err(error) => {
                return fail(format!(
                    "{refusal}; it would be replaced, but the server refuses the replacement too: {}",
                    describe_api_error(&error)
                ));
            }
        }
        let live = match with_retries(|| self.api.get_opt(name)).await {
            Ok(Some(live)) => serde_json::to_value(live).unwrap_or(Json::Null),
            Ok(None) => return fail(format!("{refusal}; but it no longer exists: run again")),
            Err(error) => return fail(describe_api_error(&error)),
        };
        let claimed_by = part_of(&live)
            .filter(|owner| Some(*owner) != self.applyset_id)
            .map(str::to_owned);
        Ok(Change {
            object: self.object_ref,
            operation: Operation::Replace,
            live: Some(normalized(live)),
            desired: Some(normalize(&self.object)),
            pending: None,
            manifest: Some(self.object),
            resolved: Some(self.resolved),
            claimed_by,
            proven: false,
            restamp: false,
        })
    }
}

/// A name for the dry run of a replacement: the object's own, cut to leave room, and a suffix.
fn replacement_probe_name(name: &str) -> String {
    const SUFFIX: &str = "-kdeploy-probe";
    let keep = name.len().min(63 - SUFFIX.len());
    let cut = name[..keep].trim_end_matches(['-', '.']);
    format!("{cut}{SUFFIX}")
}

/// The object's `metadata.resourceVersion`, when it has one: a stored object always does.
fn resource_version(object: &Json) -> Option<&str> {
    object["metadata"]["resourceVersion"].as_str().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalizing_removes_what_the_server_owns() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "uid": "u", "resourceVersion": "7",
            "managedFields": [], "creationTimestamp": "t", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "data": {"k": "v"}, "status": {}});
        assert_eq!(
            normalize(&live),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}})
        );
    }
}
