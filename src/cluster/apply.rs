//! Applying a plan: Namespaces and CRDs first (waiting until the CRDs are Established), then the
//! phases (`kdeploy.dev/phase`) one after another, each awaited before the next; within a phase, kind
//! by kind in creation order (objects of one kind concurrently), with server-side apply as field manager
//! `kdeploy`; then pruning what left the ApplySet, then waiting for the last phase. A failure stops the
//! apply before the next kind (objects of the same kind already under way finish), and the report says
//! what was applied and what was not, so running apply again converges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use serde_json::Value as Json;

use super::client::with_retries;
use super::health::{HealthRules, Readiness};
use super::plan::{Change, Operation};
use super::resources::Resources;
use super::wait::{NotReady, wait_ready};
use super::{FIELD_MANAGER, describe_api_error};
use crate::manifest::phase::phase;
use crate::manifest::{ObjectRef, kind_rank};

#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    pub force_conflicts: bool,
    pub prune: bool,
    pub prune_namespaces: bool,
    /// How many objects of the same kind are applied at once.
    pub concurrency: usize,
    /// How long each phase may take to become ready.
    pub wait_timeout: Duration,
    /// Whether to wait for the last phase too (earlier ones are always awaited: that is their point).
    pub wait_last: bool,
    pub rules: &'a HealthRules,
}

/// What an apply did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ApplyReport {
    pub applied: Vec<(ObjectRef, Operation)>,
    pub pruned: Vec<ObjectRef>,
    /// Left in place although they left the manifest (Namespaces without --prune-namespaces).
    pub kept: Vec<ObjectRef>,
    /// Not applied because an earlier step failed.
    pub not_applied: Vec<ObjectRef>,
    /// Namespaces and CRDs this apply created and removed again, because the server refused an object
    /// that goes into them: all or nothing holds for them too.
    pub rolled_back: Vec<ObjectRef>,
    pub failure: Option<(ObjectRef, String)>,
    /// Objects that did not become ready.
    pub not_ready: Vec<NotReady>,
    /// The phase whose objects did not become ready, when that stopped the apply before a later one.
    pub stopped_at_phase: Option<i32>,
}

fn is_first_phase(change: &Change) -> bool {
    matches!(change.object.kind.as_str(), "Namespace" | "CustomResourceDefinition")
        && change.operation != Operation::Prune
}

/// A change's phase (`main` for what has no manifest).
pub fn phase_of(change: &Change) -> i32 {
    change.manifest.as_ref().map_or(0, phase)
}

/// Applies the plan's changes in order, then prunes, waiting for each phase before the next. Objects
/// the dry run found unchanged are not sent again (but are waited for). `before_members` runs after
/// Namespaces and CRDs are in place and before anything else (the ApplySet parent is written there);
/// `progress` hears every change of readiness.
pub async fn apply(
    resources: &Arc<Resources>,
    changes: &[Change],
    options: ApplyOptions<'_>,
    before_members: impl AsyncFnOnce() -> Result<(), String>,
    progress: &mut dyn FnMut(&ObjectRef, &Readiness),
) -> ApplyReport {
    let mut report = ApplyReport::default();
    let (first, rest): (Vec<&Change>, Vec<&Change>) = changes
        .iter()
        .filter(|c| c.restamp || !matches!(c.operation, Operation::Prune | Operation::Unchanged))
        .partition(|c| is_first_phase(c));
    let prunes: Vec<&Change> = changes.iter().filter(|c| c.operation == Operation::Prune).collect();
    let fail = |report: &mut ApplyReport, object: ObjectRef, message: String, remaining: &[&Change]| {
        report.failure = Some((object, message));
        report.not_applied.extend(remaining.iter().map(|c| c.object.clone()));
    };
    for (i, change) in first.iter().enumerate() {
        if let Err(message) = apply_one(resources, change, options.force_conflicts).await {
            let remaining: Vec<&Change> = first[i + 1..].iter().chain(&rest).chain(&prunes).copied().collect();
            fail(&mut report, change.object.clone(), message, &remaining);
            return report;
        }
        if change.operation != Operation::Unchanged {
            report.applied.push((change.object.clone(), change.operation));
        }
    }
    let crds: Vec<&String> = first
        .iter()
        .filter(|c| c.object.kind == "CustomResourceDefinition")
        .map(|c| &c.object.name)
        .collect();
    let remaining: Vec<&Change> = rest.iter().chain(&prunes).copied().collect();
    if let Err(message) = wait_established(resources, &crds).await {
        let names = crds.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        let object = ObjectRef {
            group: "apiextensions.k8s.io".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: names,
        };
        fail(&mut report, object, message, &remaining);
        return report;
    }
    // The kinds those CRDs define, at a version they serve, as discovery will name them.
    let defined: Vec<(String, String)> = first
        .iter()
        .filter(|c| c.object.kind == "CustomResourceDefinition")
        .filter_map(|c| {
            let spec = &c.manifest.as_ref()?["spec"];
            let version = spec["versions"].as_array()?.iter().find(|v| v["served"] == true)?["name"].as_str()?;
            Some((
                format!("{}/{version}", spec["group"].as_str()?),
                spec["names"]["kind"].as_str()?.to_owned(),
            ))
        })
        .collect();
    resources.await_served(&defined).await;
    // Objects in a namespace, or of a kind, that this apply creates could not be checked before; now
    // they can. If the server refuses one, what this apply created for them is removed again.
    if let Some((object, message)) = check_pending(resources, &rest, options).await {
        report.rolled_back = roll_back(resources, &first).await;
        let rolled_back = &report.rolled_back;
        report.applied.retain(|(object, _)| !rolled_back.contains(object));
        report.failure = Some((object, message));
        report.not_applied = rest.iter().chain(&prunes).map(|c| c.object.clone()).collect();
        return report;
    }
    if let Err(message) = before_members().await {
        let object = ObjectRef {
            group: String::new(),
            kind: "Secret".into(),
            namespace: None,
            name: "(ApplySet parent)".into(),
        };
        fail(&mut report, object, message, &remaining);
        return report;
    }
    // Every object that stays is waited for in its phase, unchanged ones included: a phase is done
    // when all of it is ready, not when all of it was sent.
    let staying: Vec<&Change> = changes
        .iter()
        .filter(|c| c.operation != Operation::Prune && !is_first_phase(c))
        .collect();
    let mut phases: Vec<i32> = staying.iter().map(|c| phase_of(c)).collect();
    phases.sort_unstable();
    phases.dedup();
    let last_phase = phases.last().copied();
    for &current in &phases {
        let to_apply: Vec<&Change> = rest.iter().copied().filter(|c| phase_of(c) == current).collect();
        let later = || {
            rest.iter()
                .copied()
                .filter(|c| phase_of(c) > current)
                .chain(prunes.iter().copied())
                .map(|c| c.object.clone())
        };
        if !apply_by_kind(resources, &to_apply, options, &mut report).await {
            report.not_applied.extend(later());
            return report;
        }
        if Some(current) != last_phase {
            let waiting: Vec<&Change> = staying.iter().copied().filter(|c| phase_of(c) == current).collect();
            if !wait_for(resources, &waiting, options, progress, &mut report).await {
                report.stopped_at_phase = Some(current);
                report.not_applied.extend(later());
                return report;
            }
        }
    }
    if !prune_all(resources, &prunes, options, &mut report).await {
        return report;
    }
    if options.wait_last
        && let Some(last) = last_phase
    {
        let waiting: Vec<&Change> = staying.iter().copied().filter(|c| phase_of(c) == last).collect();
        wait_for(resources, &waiting, options, progress, &mut report).await;
    }
    report
}

/// Prunes in the reverse of apply order (Namespaces and CRDs, which take their contents with them, last),
/// the objects of one kind together, `concurrency` at a time. False (with the report saying why) when the
/// server refused one: what was under way finishes, and nothing of a later kind is started.
async fn prune_all(
    resources: &Resources,
    prunes: &[&Change],
    options: ApplyOptions<'_>,
    report: &mut ApplyReport,
) -> bool {
    let mut pruning = Vec::new();
    for change in prunes.iter().copied() {
        let is_namespace = change.object.kind == "Namespace" && change.object.group.is_empty();
        if !options.prune || (is_namespace && !options.prune_namespaces) {
            report.kept.push(change.object.clone());
        } else {
            pruning.push(change);
        }
    }
    use futures::StreamExt;
    pruning.sort_by_key(|c| std::cmp::Reverse(kind_rank(&c.object.kind)));
    let mut done = 0;
    for group in pruning.chunk_by(|a, b| kind_rank(&a.object.kind) == kind_rank(&b.object.kind)) {
        done += group.len();
        let results: Vec<(&Change, Result<(), String>)> = futures::stream::iter(group.iter().copied())
            .map(|change| async move { (change, prune_one(resources, change).await) })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        for (change, result) in results {
            match result {
                Ok(()) => report.pruned.push(change.object.clone()),
                Err(message) if report.failure.is_none() => report.failure = Some((change.object.clone(), message)),
                Err(_) => report.not_applied.push(change.object.clone()),
            }
        }
        if report.failure.is_some() {
            report
                .not_applied
                .extend(pruning[done..].iter().map(|c| c.object.clone()));
            return false;
        }
    }
    true
}

/// Waits for `changes`; false (with the report saying why) when one is not ready.
async fn wait_for(
    resources: &Arc<Resources>,
    changes: &[&Change],
    options: ApplyOptions<'_>,
    progress: &mut dyn FnMut(&ObjectRef, &Readiness),
    report: &mut ApplyReport,
) -> bool {
    match wait_ready(resources, changes, options.rules, options.wait_timeout, progress).await {
        Ok(not_ready) if not_ready.is_empty() => true,
        Ok(not_ready) => {
            report.not_ready = not_ready;
            false
        }
        Err(error) => {
            if let Some(change) = changes.first() {
                report.failure = Some((change.object.clone(), format!("waiting for readiness failed: {error}")));
            }
            false
        }
    }
}

/// Applies `changes` (one phase's) kind by kind; false (with the report saying why) on a failure.
async fn apply_by_kind(
    resources: &Resources,
    changes: &[&Change],
    options: ApplyOptions<'_>,
    report: &mut ApplyReport,
) -> bool {
    // Kinds go in order; objects of one kind go together, `concurrency` at a time.
    let mut start = 0;
    while start < changes.len() {
        let rank = kind_rank(&changes[start].object.kind);
        let end = changes[start..]
            .iter()
            .position(|c| kind_rank(&c.object.kind) != rank)
            .map_or(changes.len(), |n| start + n);
        let group = &changes[start..end];
        if super::interrupted() {
            report.failure = Some((group[0].object.clone(), super::INTERRUPTED.to_owned()));
            report
                .not_applied
                .extend(changes[start + 1..].iter().map(|c| c.object.clone()));
            return false;
        }
        let results = apply_group(resources, group, options).await;
        for (change, result) in group.iter().zip(results) {
            match result {
                // A re-sent unchanged object (to record its digest) is not news.
                Some(Ok(())) if change.operation == Operation::Unchanged => {}
                Some(Ok(())) => report.applied.push((change.object.clone(), change.operation)),
                Some(Err(message)) if report.failure.is_none() => {
                    report.failure = Some((change.object.clone(), message))
                }
                Some(Err(_)) | None => report.not_applied.push(change.object.clone()),
            }
        }
        if report.failure.is_some() {
            report
                .not_applied
                .extend(changes[end..].iter().map(|c| c.object.clone()));
            return false;
        }
        start = end;
    }
    true
}

/// Applies a group of objects of one kind concurrently; results in the group's order. After the first
/// failure no further object is started (those already under way finish): `None` marks the ones left
/// out, so a dead server costs one round of retries, not one per remaining object.
async fn apply_group(
    resources: &Resources,
    group: &[&Change],
    options: ApplyOptions<'_>,
) -> Vec<Option<Result<(), String>>> {
    use futures::StreamExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let failed = AtomicBool::new(false);
    let failed = &failed;
    // Unordered: with `buffered`, one request waiting out a throttle (APF's Retry-After is up to 8 s)
    // would hold every finished one behind it, and nothing new would start.
    let mut results: Vec<(usize, Option<Result<(), String>>)> =
        futures::stream::iter(group.iter().enumerate().map(|(index, change)| async move {
            if failed.load(Ordering::Relaxed) {
                return (index, None);
            }
            let result = apply_one(resources, change, options.force_conflicts).await;
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            (index, Some(result))
        }))
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Dry-runs the changes the plan could not check (`pending`); the first refusal, if any.
async fn check_pending(
    resources: &Resources,
    rest: &[&Change],
    options: ApplyOptions<'_>,
) -> Option<(ObjectRef, String)> {
    use futures::StreamExt;
    let pending = rest.iter().filter(|c| c.pending.is_some());
    let refusals: Vec<(ObjectRef, String)> = futures::stream::iter(pending.map(|change| async move {
        send(resources, change, options.force_conflicts, true)
            .await
            .err()
            .map(|message| (change.object.clone(), message))
    }))
    .buffer_unordered(options.concurrency.max(1))
    .filter_map(|refusal| async move { refusal })
    .collect()
    .await;
    refusals
        .into_iter()
        .min_by(|a, b| a.0.to_string().cmp(&b.0.to_string()))
}

/// Deletes the Namespaces and CRDs this apply created (never ones that existed before), and waits up to
/// a minute for them to be gone, so that a re-run can create them again.
async fn roll_back(resources: &Resources, first: &[&Change]) -> Vec<ObjectRef> {
    let created: Vec<&Change> = first
        .iter()
        .copied()
        .filter(|c| c.operation == Operation::Create)
        .collect();
    let mut removed = Vec::new();
    for change in &created {
        if prune_one(resources, change).await.is_ok() {
            removed.push(change.object.clone());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for change in created {
        let Some(resolved) = &change.resolved else { continue };
        let api = resources.api(resolved, None);
        while Instant::now() < deadline
            && matches!(with_retries(|| api.get_opt(&change.object.name)).await, Ok(Some(_)))
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    removed
}

async fn apply_one(resources: &Resources, change: &Change, force: bool) -> Result<(), String> {
    if change.operation == Operation::Replace {
        delete_and_wait_gone(resources, change).await?;
    }
    send(resources, change, force, false).await
}

/// How long a replaced object may take to go (its dependents first: a Job's pods).
const REPLACE_TIMEOUT: Duration = Duration::from_secs(120);

/// Deletes the object to be replaced, dependents first (foreground), and waits until it is gone, so
/// that the new one never runs beside the old one's pods.
async fn delete_and_wait_gone(resources: &Resources, change: &Change) -> Result<(), String> {
    delete(resources, change, PropagationPolicy::Foreground)
        .await
        .map_err(|error| format!("deleting it to replace it failed: {error}"))?;
    let resolved = change.resolved.as_ref().ok_or("unknown resource")?;
    let api = resources.api(resolved, change.object.namespace.as_deref());
    let deadline = Instant::now() + REPLACE_TIMEOUT;
    loop {
        match with_retries(|| api.get_opt(&change.object.name)).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(250)).await,
            Ok(Some(_)) => {
                return Err(format!(
                    "deleted to be replaced, but still there after {}s (a finalizer?); it was not re-created",
                    REPLACE_TIMEOUT.as_secs()
                ));
            }
            Err(error) => return Err(describe_api_error(&error)),
        }
    }
}

/// Server-side applies one change, or only dry-runs it.
async fn send(resources: &Resources, change: &Change, force: bool, dry_run: bool) -> Result<(), String> {
    let manifest: &Json = change.manifest.as_ref().ok_or("nothing to apply")?;
    let resolved = match &change.resolved {
        Some(resolved) => resolved.clone(),
        None => {
            let api_version = manifest["apiVersion"].as_str().unwrap_or_default();
            resources
                .resolve(api_version, &change.object.kind)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the server does not serve {} in {api_version}", change.object.kind))?
        }
    };
    let mut manifest = manifest.clone();
    if !resolved.namespaced
        && let Some(metadata) = manifest["metadata"].as_object_mut()
    {
        metadata.remove("namespace");
    }
    let api = resources.api(&resolved, change.object.namespace.as_deref());
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = force;
    params.dry_run = dry_run;
    let patch = Patch::Apply(&manifest);
    with_retries(|| api.patch(&change.object.name, &params, &patch))
        .await
        .map(|_| ())
        .map_err(|e| describe_api_error(&e))
}

async fn prune_one(resources: &Resources, change: &Change) -> Result<(), String> {
    delete(resources, change, PropagationPolicy::Background).await
}

/// Deletes the change's object; one already gone counts as deleted.
async fn delete(resources: &Resources, change: &Change, propagation: PropagationPolicy) -> Result<(), String> {
    let resolved = change.resolved.as_ref().ok_or("unknown resource")?;
    let api = resources.api(resolved, change.object.namespace.as_deref());
    let params = DeleteParams {
        propagation_policy: Some(propagation),
        ..Default::default()
    };
    match with_retries(|| api.delete(&change.object.name, &params)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(describe_api_error(&error)),
    }
}

/// Waits (up to a minute) until the named CRDs report Established.
async fn wait_established(resources: &Resources, names: &[&String]) -> Result<(), String> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(resources.client());
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in names {
        loop {
            let crd = with_retries(|| api.get(name))
                .await
                .map_err(|e| describe_api_error(&e))?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "CustomResourceDefinition/{name} did not become Established within 60s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

/// Takes the object out of the ApplySet (its part-of label removed) without changing anything
/// else, so that no prune of this set ever deletes it and another project may adopt it.
pub async fn release(
    resources: &Resources,
    object: &ObjectRef,
    resolved: &super::resources::Resolved,
) -> Result<(), String> {
    let api = resources.api(resolved, object.namespace.as_deref());
    let patch = serde_json::json!({"metadata": {"labels": {super::applyset::PART_OF_LABEL: null}}});
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    match with_retries(|| api.patch(&object.name, &params, &patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(describe_api_error(&error)),
    }
}
