//! What applying the manifest would do, as the API server says: each object is server-side applied
//! with `dryRun=All` (field manager `kdeploy`) and compared with the live object, both with the fields
//! the server owns removed (managedFields, resourceVersion, uid, status, ...). Objects in the ApplySet
//! that left the manifest are planned for pruning.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::{Patch, PatchParams};
use serde_json::Value as Json;

use super::applyset::{ApplySet, Member, part_of};
use super::client::with_retries;
use super::health::{HealthRules, Readiness, needs_wait, readiness};
use super::resources::{Resolved, Resources};
use super::unchanged::{self, DIGEST_ANNOTATION};
use super::{ClusterError, FIELD_MANAGER, describe_api_error};
use crate::manifest::phase::{REPLACE_ANNOTATION, replaces_on_immutable};
use crate::manifest::{ObjectRef, group_of};

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Proven unchanged, and ready in the listing the plan read (under the deploy lock, by
    /// [`PlanOptions::readiness`]): waiting need not read it again.
    pub ready_when_listed: bool,
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
pub struct PlanOptions<'a> {
    pub concurrency: usize,
    /// Members per page of a LIST (`--chunk-size`).
    pub chunk_size: u32,
    pub force_conflicts: bool,
    /// Dry-run every object, even one the last apply proves unchanged (`--full-dry-run`).
    pub full_dry_run: bool,
    /// The health rules an apply will wait with: the members proven unchanged are judged by them as
    /// they are listed ([`Change::ready_when_listed`]). None when nothing will wait.
    pub readiness: Option<&'a HealthRules>,
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

/// Plans the manifest `objects` (already labelled for `applyset`) against the cluster, in four steps:
///
/// 1. The ApplySet parent is read (what the set spans, and the key of applied digests) and checked for
///    writing, while every kind in the manifest is resolved.
/// 2. Every object is made what it would be applied as: in its namespace, stamped with its digest.
/// 3. The members are listed a page at a time. A member proven unchanged ([`unchanged`]) as it arrives
///    keeps no body, so a plan of unchanged objects holds the manifest and a page per LIST, not the
///    cluster's copy of every object as well.
/// 4. What is not proven is dry-run, with no more tasks at once than requests may be in flight.
pub async fn plan(
    resources: &Arc<Resources>,
    objects: Vec<Json>,
    default_namespace: &str,
    applyset: Option<&ApplySet>,
    options: PlanOptions<'_>,
) -> Result<Plan, ClusterError> {
    let shared = Arc::new(Shared {
        applyset_id: applyset.map(|set| set.id.clone()),
        new_namespaces: objects
            .iter()
            .filter(|o| o["kind"] == "Namespace" && o["apiVersion"] == "v1")
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
            .collect(),
        new_kinds: objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .filter_map(|o| {
                Some((
                    o["spec"]["group"].as_str()?.to_owned(),
                    o["spec"]["names"]["kind"].as_str()?.to_owned(),
                ))
            })
            .collect(),
        options: PlanOptions {
            readiness: None,
            ..options
        },
    });

    // 1. The parent, and every kind.
    let read_parent = async {
        match applyset {
            Some(set) => set.recorded(resources).await,
            None => Ok(None),
        }
    };
    // No write may start if the parent could not be written.
    let check_parent = async {
        match applyset {
            Some(set) => set
                .check_parent(resources, shared.new_namespaces.contains(&set.namespace))
                .await
                .err()
                .map(|message| (set.parent_ref(), message)),
            None => None,
        }
    };
    let kinds: HashSet<(String, String)> = objects
        .iter()
        .map(|o| (type_of(o, "apiVersion").to_owned(), type_of(o, "kind").to_owned()))
        .collect();
    let resolve_kinds = futures::stream::iter(kinds)
        .map(|(api_version, kind)| async move {
            let resolved = resources.resolve(&api_version, &kind).await?;
            Ok::<_, ClusterError>(((api_version, kind), resolved))
        })
        .buffer_unordered(options.concurrency.max(1))
        .try_collect::<HashMap<_, _>>();
    // 3, begun at once: the members the parent will most likely record (the kinds and namespaces of
    // this manifest, which is what the last complete apply narrowed it to) are listed alongside step 1.
    // Each page waits for the parent's digest key and step 2 before its members are proven, so at most
    // a page per LIST is held meanwhile. When the parent records something else, they are listed again
    // as it says.
    let guess = applyset
        .map(|set| likely_scopes(&objects, set))
        .filter(|guess| bounded_guess(guess, objects.len()));
    let (gate, opened) = tokio::sync::watch::channel(false);
    let ready_steps: std::sync::OnceLock<Vec<Step>> = std::sync::OnceLock::new();
    let manifest: std::sync::OnceLock<HashMap<&ObjectRef, &Json>> = std::sync::OnceLock::new();
    let ready_when_listed: std::sync::Mutex<HashSet<ObjectRef>> = Default::default();
    let proven = |reference: &ObjectRef, live: &Json| {
        let Some(object) = manifest.get().and_then(|manifest| manifest.get(reference)) else {
            return false;
        };
        let proven = !options.full_dry_run && unchanged::proven_unchanged(object, live);
        if let Some(rules) = options.readiness.filter(|_| proven)
            && needs_wait(reference, object, rules)
            && readiness(reference, live, rules) == Readiness::Ready
        {
            ready_when_listed
                .lock()
                .expect("never poisoned: no panics")
                .insert(reference.clone());
        }
        proven
    };
    let first = async {
        // The gate opens when this ends, however it ends.
        let _gate = gate;
        let (recorded, parent_refused, resolved_kinds) = tokio::join!(read_parent, check_parent, resolve_kinds);
        let (recorded, resolved_kinds) = (recorded?, resolved_kinds?);

        // 2. Each object as it would be applied. What is applied carries its digest, so that the next
        // plan can prove it unchanged without a dry run; only members of an ApplySet are listed, so only
        // they can be proven, and only they are stamped.
        let digest_key = applyset.map(|set| set.digest_key().clone());
        let steps: Vec<Step> = objects
            .into_iter()
            .map(|mut object| {
                if let Some(key) = &digest_key {
                    unchanged::stamp(&mut object, key.bytes());
                }
                ready(object, &resolved_kinds, default_namespace, &shared)
            })
            .collect();
        let steps = ready_steps.get_or_init(|| steps);
        let _ = manifest.set(
            steps
                .iter()
                .filter_map(|step| match step {
                    Step::Ready(ready) => Some((&ready.reference, &ready.object)),
                    Step::Planned(_) => None,
                })
                .collect(),
        );
        Ok::<_, ClusterError>((recorded, parent_refused))
    };
    let speculative = async {
        match (applyset, &guess) {
            (Some(set), Some(guess)) => Some(
                set.members(
                    resources,
                    guess,
                    options.concurrency,
                    options.chunk_size,
                    &proven,
                    Some(&opened),
                )
                .await,
            ),
            _ => None,
        }
    };
    let (first, speculative) = tokio::join!(first, speculative);
    let (recorded, parent_refused) = first?;

    // 3. The members, settled as they arrive.
    let members = match (applyset, &recorded) {
        (Some(set), Some(recorded)) => match speculative {
            Some(listed) if same_scopes(recorded, guess.as_ref(), set) => listed?,
            _ => {
                set.members(
                    resources,
                    recorded,
                    options.concurrency,
                    options.chunk_size,
                    &proven,
                    None,
                )
                .await?
            }
        },
        _ => Vec::new(),
    };
    drop(manifest);
    let steps = ready_steps.into_inner().unwrap_or_default();
    let by_reference: HashMap<ObjectRef, usize> =
        members.iter().enumerate().map(|(i, m)| (m.object.clone(), i)).collect();
    let mut members: Vec<Option<Member>> = members.into_iter().map(Some).collect();

    // 4. Dry runs for what is not proven.
    let mut results: Vec<Option<Planned>> = std::iter::repeat_with(|| None).take(steps.len()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let most_tasks = options.concurrency.max(1);
    let finish = |joined: Result<(usize, Result<Planned, ClusterError>), tokio::task::JoinError>,
                  results: &mut Vec<Option<Planned>>| {
        let (index, result) = joined.map_err(|e| ClusterError::Config(format!("a planning task failed: {e}")))?;
        results[index] = Some(result?);
        Ok::<_, ClusterError>(())
    };
    for (index, step) in steps.into_iter().enumerate() {
        let ready = match step {
            Step::Planned(planned) => {
                results[index] = Some(planned);
                continue;
            }
            Step::Ready(ready) => ready,
        };
        let member = by_reference.get(&ready.reference).and_then(|&i| members[i].take());
        if let Some(Member { live: None, .. }) = member {
            let mut change = ready.proven();
            change.ready_when_listed = ready_when_listed
                .lock()
                .expect("never poisoned: no panics")
                .contains(&change.object);
            results[index] = Some(Ok(change));
            continue;
        }
        while tasks.len() >= most_tasks {
            if let Some(joined) = tasks.join_next().await {
                finish(joined, &mut results)?;
            }
        }
        let (resources, shared) = (resources.clone(), shared.clone());
        let listed = member.and_then(|m| m.live);
        tasks.spawn(async move { (index, dry_run(&resources, ready, listed, &shared).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        finish(joined, &mut results)?;
    }

    let mut plan = Plan::default();
    plan.failures.extend(parent_refused);
    for result in results.into_iter().flatten() {
        match result {
            Ok(change) => plan.changes.push(change),
            Err(failure) => plan.failures.push(failure),
        }
    }
    let wanted: HashSet<ObjectRef> = plan
        .changes
        .iter()
        .map(|c| c.object.clone())
        .chain(plan.failures.iter().map(|f| f.0.clone()))
        .collect();
    for member in members.into_iter().flatten() {
        if !wanted.contains(&member.object) {
            plan.changes.push(Change {
                object: member.object,
                operation: Operation::Prune,
                live: member.live.map(normalized),
                desired: None,
                pending: None,
                manifest: None,
                resolved: Some(member.resolved),
                claimed_by: None,
                proven: false,
                restamp: false,
                ready_when_listed: false,
            });
        }
    }
    Ok(plan)
}

type Planned = Result<Change, (ObjectRef, String)>;

/// The group-kinds and namespaces of `objects`, as the parent records them after an apply of exactly
/// these objects (an object that names no namespace is in the parent's, or cluster-scoped).
fn likely_scopes(objects: &[Json], set: &ApplySet) -> (BTreeSet<String>, BTreeSet<String>) {
    let kinds = objects
        .iter()
        .map(|o| {
            let api_version = type_of(o, "apiVersion");
            let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
            super::applyset::group_kind(group, type_of(o, "kind"))
        })
        .collect();
    let namespaces = objects
        .iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .chain([set.namespace.clone()])
        .collect();
    (kinds, namespaces)
}

/// Whether a guess may be listed before the parent says what to list: only while its LISTs are no
/// more than one per object (or a few dozen). Where the caller may not list across namespaces, each
/// kind is listed per namespace, and a manifest spreading few objects over many kinds and namespaces
/// (a repository under review chooses both) would otherwise ask for kinds × namespaces LISTs. The
/// parent's own record, which only an apply writes, is listed as it says either way.
fn bounded_guess(guess: &(BTreeSet<String>, BTreeSet<String>), objects: usize) -> bool {
    let (kinds, namespaces) = guess;
    kinds.len().saturating_mul(namespaces.len()) <= objects.max(64)
}

/// Whether listing `guess` finds what listing `recorded` would: the same kinds, and the same namespaces
/// once the parent's own is counted (members are always looked for there).
fn same_scopes(
    recorded: &(BTreeSet<String>, BTreeSet<String>),
    guess: Option<&(BTreeSet<String>, BTreeSet<String>)>,
    set: &ApplySet,
) -> bool {
    let Some((kinds, namespaces)) = guess else { return false };
    let mut recorded_namespaces = recorded.1.clone();
    recorded_namespaces.insert(set.namespace.clone());
    recorded.0 == *kinds && recorded_namespaces == *namespaces
}

/// What every object's planning shares.
struct Shared {
    /// This apply's ApplySet; none for an unnamed project, to which every labelled object is foreign.
    applyset_id: Option<String>,
    /// Namespaces this apply creates: an object in one cannot be dry-run yet.
    new_namespaces: HashSet<String>,
    /// Kinds whose CRD this apply creates: an object of one cannot be dry-run yet.
    new_kinds: HashSet<(String, String)>,
    /// Without the health rules, which only the listing uses.
    options: PlanOptions<'static>,
}

/// One object after step 2 of [`plan`]: planned already (its kind is not served, or it is not where its
/// kind says it can be), or ready to be proven or dry-run.
enum Step {
    Planned(Planned),
    Ready(Ready),
}

/// An object as it would be applied (stamped, in its namespace), with where it lives.
struct Ready {
    object: Json,
    reference: ObjectRef,
    resolved: Resolved,
}

impl Ready {
    /// Unchanged, as the last apply's digest and kdeploy's managed fields prove: no dry run.
    fn proven(self) -> Change {
        Change {
            object: self.reference,
            operation: Operation::Unchanged,
            live: None,
            desired: None,
            pending: None,
            manifest: Some(self.object),
            resolved: Some(self.resolved),
            claimed_by: None,
            proven: true,
            restamp: false,
            ready_when_listed: false,
        }
    }
}

/// The string at the object's top-level `field` (`apiVersion`, `kind`), or "".
fn type_of<'a>(object: &'a Json, field: &str) -> &'a str {
    object[field].as_str().unwrap_or_default()
}

/// What identifies `object` once it sits in `namespace`.
fn reference_of(object: &Json, namespace: Option<String>) -> ObjectRef {
    let api_version = type_of(object, "apiVersion");
    ObjectRef {
        group: group_of(api_version).to_owned(),
        kind: type_of(object, "kind").to_owned(),
        namespace,
        name: object["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
    }
}

/// Step 2 for one object: its kind resolved (`resolved_kinds`), its namespace set.
fn ready(
    mut object: Json,
    resolved_kinds: &HashMap<(String, String), Option<Resolved>>,
    default_namespace: &str,
    shared: &Shared,
) -> Step {
    let key = (
        type_of(&object, "apiVersion").to_owned(),
        type_of(&object, "kind").to_owned(),
    );
    let Some(Some(resolved)) = resolved_kinds.get(&key) else {
        return Step::Planned(not_served(object, &shared.new_kinds));
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
            let kind = &key.1;
            return Step::Planned(Err((
                reference_of(&object, None),
                format!("{kind} is cluster-scoped but sets metadata.namespace"),
            )));
        }
        None
    };
    Step::Ready(Ready {
        reference: reference_of(&object, namespace),
        object,
        resolved: resolved.clone(),
    })
}

/// An object the server does not serve: a create that waits for its CRD when this apply creates that,
/// a failure otherwise.
fn not_served(object: Json, new_kinds: &HashSet<(String, String)>) -> Planned {
    let reference = reference_of(&object, object["metadata"]["namespace"].as_str().map(str::to_owned));
    if new_kinds.contains(&(reference.group.clone(), reference.kind.clone())) {
        return Ok(pending(
            reference,
            object,
            "its CustomResourceDefinition is created by this apply",
        ));
    }
    let (kind, api_version) = (&reference.kind, type_of(&object, "apiVersion"));
    let message = format!("the server does not serve {kind} in {api_version} (is the CRD installed?)");
    Err((reference, message))
}

/// A create the server cannot check yet, for `reason`.
fn pending(reference: ObjectRef, object: Json, reason: &str) -> Change {
    Change {
        object: reference,
        operation: Operation::Create,
        live: None,
        desired: Some(normalize(&object)),
        pending: Some(reason.to_owned()),
        manifest: Some(object),
        resolved: None,
        claimed_by: None,
        proven: false,
        restamp: false,
        ready_when_listed: false,
    }
}

/// Step 4 for one object: the server-side dry run, compared with the live object (`listed` with the
/// ApplySet's members, or fetched when the object exists outside the set).
async fn dry_run(
    resources: &Resources,
    ready: Ready,
    listed: Option<Json>,
    shared: &Shared,
) -> Result<Planned, ClusterError> {
    let Ready {
        object,
        reference,
        resolved,
    } = ready;
    let options = shared.options;
    let applyset_id = shared.applyset_id.as_deref();
    let name = reference.name.clone();
    let api = resources.api(&resolved, reference.namespace.as_deref());
    let mut params = PatchParams::apply(FIELD_MANAGER).dry_run();
    params.force = options.force_conflicts;
    let patch = Patch::Apply(&object);
    let dry_run = with_retries(|| api.patch(&name, &params, &patch)).await;
    let desired = match dry_run {
        Ok(result) => serde_json::to_value(result).unwrap_or(Json::Null),
        Err(kube::Error::Api(status))
            if status.code == 404
                && reference
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| shared.new_namespaces.contains(ns)) =>
        {
            return Ok(Ok(pending(reference, object, "its namespace is created by this apply")));
        }
        // Discovery kept from an earlier run may name a kind whose CRD is gone since.
        Err(kube::Error::Api(status))
            if status.code == 404 && status.details.as_ref().is_none_or(|d| d.name.is_empty()) =>
        {
            if resources
                .recheck(type_of(&object, "apiVersion"), type_of(&object, "kind"))
                .await?
                .is_none()
            {
                return Ok(not_served(object, &shared.new_kinds));
            }
            return Ok(Err((reference, describe_api_error(&kube::Error::Api(status)))));
        }
        Err(kube::Error::Api(status)) if status.code == 422 && is_immutable_refusal(&status.message) => {
            let refusal = status.message.clone();
            if !replaces_on_immutable(&object) {
                return Ok(Err((
                    reference,
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
                object_ref: reference,
                resolved,
                applyset_id,
            };
            return Ok(replacement.plan(&name, refusal).await);
        }
        Err(error) => return Ok(Err((reference, describe_api_error(&error)))),
    };
    // For an object outside the ApplySet, the dry run tells whether it exists (a dry-run create has no
    // resourceVersion), so only objects that do are fetched: a first apply costs one dry run per object,
    // not a GET as well.
    let live = match listed {
        Some(live) => Some(live),
        None if resource_version(&desired).is_none() => None,
        None => match with_retries(|| api.get_opt(&name)).await {
            Ok(live) => live.map(|l| serde_json::to_value(l).unwrap_or(Json::Null)),
            Err(error) => return Ok(Err((reference, describe_api_error(&error)))),
        },
    };
    let claimed_by = live
        .as_ref()
        .and_then(part_of)
        .filter(|owner| Some(*owner) != applyset_id)
        .map(str::to_owned);
    let mut restamp = false;
    let (operation, live, desired) = match live {
        None => (Operation::Create, None, Some(normalize(&object))),
        Some(live) => {
            restamp = applyset_id.is_some() && unchanged::recorded(&live) != unchanged::recorded(&object);
            let (live, desired) = (normalized(live), normalized(desired));
            if live == desired {
                (Operation::Unchanged, None, None)
            } else {
                (Operation::Update, Some(live), Some(desired))
            }
        }
    };
    Ok(Ok(Change {
        object: reference,
        operation,
        live,
        desired,
        pending: None,
        manifest: Some(object),
        resolved: Some(resolved),
        restamp: restamp && operation == Operation::Unchanged && claimed_by.is_none(),
        claimed_by,
        proven: false,
        ready_when_listed: false,
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
            ready_when_listed: false,
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
    #[test]
    fn a_guess_is_listed_early_only_while_its_lists_stay_within_one_per_object() {
        let set = super::ApplySet::new("kdeploy-app", "team", Some("app"));
        let object = |api_version: &str, kind: &str, namespace: Option<&str>| {
            let mut object = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
            if let Some(namespace) = namespace {
                object["metadata"]["namespace"] = namespace.into();
            }
            object
        };
        let objects = vec![
            object("apps/v1", "Deployment", None),
            object("v1", "ConfigMap", Some("team")),
            object("v1", "ConfigMap", Some("other")),
            object("rbac.authorization.k8s.io/v1", "ClusterRole", None),
        ];
        let guess = super::likely_scopes(&objects, &set);
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<super::BTreeSet<_>>();
        assert_eq!(
            guess.0,
            strings(&["ClusterRole.rbac.authorization.k8s.io", "ConfigMap", "Deployment.apps"])
        );
        assert_eq!(guess.1, strings(&["other", "team"]));
        assert!(super::bounded_guess(&guess, objects.len()));
        // As the parent records it after applying these objects: the same scopes.
        let recorded = (guess.0.clone(), strings(&["other"]));
        assert!(super::same_scopes(&recorded, Some(&guess), &set));
        let fewer_kinds = (strings(&["ConfigMap"]), guess.1.clone());
        assert!(!super::same_scopes(&fewer_kinds, Some(&guess), &set));
        // 100 objects, each its own kind and namespace: 10,000 LISTs per namespace are not guessed.
        let spread: Vec<_> = (0..100)
            .map(|i| object("example.com/v1", &format!("Kind{i}"), Some(&format!("ns-{i}"))))
            .collect();
        let spread_guess = super::likely_scopes(&spread, &set);
        assert!(!super::bounded_guess(&spread_guess, spread.len()));
    }

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
