//! `kdeploy delete`: delete every member of the project's ApplySet (proved as prune proves it: the
//! set's label and kdeploy's own apply in managedFields), custom resources first while their
//! controllers still run, then the rest in reverse apply order (workloads before the Services and
//! webhooks they use), CRDs and Namespaces last; wait until they are gone (naming the finalizers that
//! hold any up); then the revisions, the parent and the lock. The plan is shown and confirmed first,
//! under the deploy lock, and a delete cut short finishes when run again.
//!
//! What is not provably the project's alone is kept, listed, and released from the set (its part-of
//! label removed) so that another project may adopt it: a Namespace without --delete-namespaces (never
//! `default` or `kube-*`, never one that holds objects of others), a CRD without --delete-crds (never
//! while custom resources outside the set exist), a PersistentVolumeClaim without --delete-volumes,
//! anything annotated `kdeploy.dev/keep: "true"` or `helm.sh/resource-policy: keep`, and what the
//! project adopted without --include-adopted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use serde_json::{Value as Json, json};

use super::located::{Located, locate, release_lock, take_lock};
use super::{EXIT_ERROR, deploy};
use crate::cli::{DeleteArgs, ReportFormat};
use crate::cluster::applyset::{ApplySet, Member, PART_OF_LABEL};
use crate::cluster::client::with_retries;
use crate::cluster::resources::{Resolved, namespaced_listable};
use crate::cluster::revision;
use crate::cluster::{ClusterError, describe_api_error};
use crate::manifest::{ObjectRef, kind_rank};
use crate::ui;

/// Annotations that keep an object through a delete, with the value that does.
const KEEP: [(&str, &str); 2] = [("kdeploy.dev/keep", "true"), ("helm.sh/resource-policy", "keep")];

/// Objects a namespace holds that are its own, not anyone's: what Kubernetes makes in every namespace
/// (and for every Service), and the set's own parent, revisions and deploy lock, which go last.
fn is_namespace_furniture(set: &ApplySet, kind: &str, name: &str, live: &Json) -> bool {
    let own = live["metadata"]["labels"][revision::REVISION_OF_LABEL] == set.id.as_str()
        || (name == set.name && matches!(kind, "Secret" | "Lease"));
    own || matches!(
        (kind, name),
        ("ServiceAccount", "default") | ("ConfigMap", "kube-root-ca.crt")
    ) || matches!(kind, "Event" | "Endpoints" | "EndpointSlice")
        || live["type"] == "kubernetes.io/service-account-token"
}

pub fn run(args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    deploy::runtime()?.block_on(async {
        let located = locate(&args.set).await?;
        let lock = take_lock(&located, args.lock_timeout, args.dry_run).await?;
        let result = delete(args, &located).await;
        release_lock(lock).await;
        result
    })
}

/// What happens to one member.
enum Fate {
    Delete,
    Keep(String),
}

async fn delete(args: &DeleteArgs, located: &Located) -> anyhow::Result<ExitCode> {
    let set = &located.set;
    let resources = &located.resources;
    let client = resources.client();
    let members = set
        .members(
            resources,
            &located.recorded,
            located.concurrency.most(),
            500,
            &|_, _| false,
            None,
        )
        .await?;
    let history = revision::read_all(&client, set).await?;
    let stored: HashMap<ObjectRef, &Json> = history
        .latest()
        .map(|l| l.record.objects.iter().map(|o| (revision::reference(o), o)).collect())
        .unwrap_or_default();
    let adopted = set.ledger().adopted;
    let member_refs: BTreeSet<&ObjectRef> = members.iter().map(|m| &m.object).collect();

    // Each member's fate, Namespaces last (whether one may go depends on what else is kept).
    let mut fates: Vec<(usize, Fate)> = Vec::new();
    for (index, member) in members.iter().enumerate() {
        let live = member.live.as_ref().unwrap_or(&Json::Null);
        let object = &member.object;
        let annotated_keep = [Some(live), stored.get(object).copied()]
            .into_iter()
            .flatten()
            .find_map(|o| {
                KEEP.iter()
                    .find(|(key, value)| o["metadata"]["annotations"][*key] == *value)
                    .map(|(key, value)| format!("annotated {key}: {value}"))
            });
        let fate = if let Some(why) = annotated_keep {
            Fate::Keep(why)
        } else if adopted.contains(object) && !args.include_adopted {
            Fate::Keep("adopted: it existed before the project's first apply (--include-adopted deletes it)".into())
        } else if object.kind == "PersistentVolumeClaim" && object.group.is_empty() && !args.delete_volumes {
            Fate::Keep("a PersistentVolumeClaim: its volume's data goes with it (--delete-volumes deletes it)".into())
        } else if object.kind == "CustomResourceDefinition" {
            crd_fate(args, resources, live, &member_refs).await?
        } else {
            Fate::Delete
        };
        fates.push((index, fate));
    }
    let kept_inside: BTreeMap<&str, Vec<String>> = fates
        .iter()
        .filter(|(_, fate)| matches!(fate, Fate::Keep(_)))
        .filter_map(|(i, _)| Some((members[*i].object.namespace.as_deref()?, members[*i].object.to_string())))
        .fold(BTreeMap::new(), |mut map, (ns, object)| {
            map.entry(ns).or_insert_with(Vec::new).push(object);
            map
        });
    let namespace_members: Vec<usize> = fates
        .iter()
        .filter(|(i, fate)| {
            matches!(fate, Fate::Delete)
                && members[*i].object.kind == "Namespace"
                && members[*i].object.group.is_empty()
        })
        .map(|(i, _)| *i)
        .collect();
    let listable = if args.delete_namespaces && !namespace_members.is_empty() {
        let (listable, unavailable) = namespaced_listable(&client).await?;
        if !unavailable.is_empty() {
            ui::warn(&format!(
                "the server does not answer for {} (an aggregated API without its backend?): objects of those kinds cannot be seen in the namespaces to delete",
                unavailable.join(", ")
            ));
        }
        listable
    } else {
        Vec::new()
    };
    for index in namespace_members {
        let name = &members[index].object.name;
        let fate = if !args.delete_namespaces {
            Fate::Keep("a Namespace: everything in it would go too (--delete-namespaces deletes it)".into())
        } else if name == "default" || name.starts_with("kube-") {
            Fate::Keep(format!("Namespace {name} is never deleted"))
        } else if let Some(kept) = kept_inside.get(name.as_str()) {
            Fate::Keep(format!("it holds objects that are kept: {}", kept.join(", ")))
        } else {
            let others = others_in(set, resources, &listable, name, &member_refs).await?;
            if others.is_empty() {
                Fate::Delete
            } else {
                let shown: Vec<&str> = others.iter().take(5).map(String::as_str).collect();
                Fate::Keep(format!(
                    "it holds {} object(s) that are not this project's: {}{}",
                    others.len(),
                    shown.join(", "),
                    if others.len() > 5 { ", …" } else { "" }
                ))
            }
        };
        if let Some(entry) = fates.iter_mut().find(|(i, _)| *i == index) {
            entry.1 = fate;
        }
    }

    let deleting: Vec<&Member> = fates
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Delete))
        .map(|(i, _)| &members[*i])
        .collect();
    let keeping: Vec<(&Member, &str)> = fates
        .iter()
        .filter_map(|(i, f)| match f {
            Fate::Keep(why) => Some((&members[*i], why.as_str())),
            Fate::Delete => None,
        })
        .collect();
    let json_output = args.output == ReportFormat::Json;
    let mut plan_text = format!(
        "delete project {} (ApplySet Secret/{} in {}, context {}):\n",
        set.project.as_deref().unwrap_or(&set.name),
        set.name,
        set.namespace,
        located.cluster.context
    );
    for member in &deleting {
        plan_text.push_str(&format!("  delete  {}\n", member.object));
    }
    for (member, why) in &keeping {
        plan_text.push_str(&format!("  keep    {} ({why}; released from the set)\n", member.object));
    }
    plan_text.push_str(&format!(
        "{} to delete, {} to keep; then the project's {} revision(s), its deploy lock and its ApplySet parent\n",
        deleting.len(),
        keeping.len(),
        history.revisions.len()
    ));
    if json_output {
        eprint!("{plan_text}");
    } else {
        super::write_stdout(&plan_text)?;
    }
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let question = format!("delete these objects from context {}?", located.cluster.context);
    if !deploy::confirmed(args.yes, "delete", &question)? {
        ui::note("nothing was deleted");
        return Ok(ExitCode::from(EXIT_ERROR));
    }

    // Kept objects leave the set first, so that a delete cut short never finds them again.
    let mut failures = Vec::new();
    for (member, _) in &keeping {
        if let Err(error) = crate::cluster::apply::release(resources, &member.object, &member.resolved).await {
            failures.push(format!("{}: could not be released: {error}", member.object));
        }
    }
    let left = delete_in_waves(
        resources,
        &deleting,
        args.timeout,
        located.concurrency.most(),
        &mut failures,
    )
    .await;
    let complete = left.is_empty() && failures.is_empty();
    if complete {
        // A deleted Namespace may have taken them already.
        match revision::delete_all(&client, set).await {
            Ok(()) => {}
            Err(ClusterError::Api {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client.clone(), &set.namespace);
        let params = DeleteParams::default();
        match with_retries(|| api.delete(&set.name, &params)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => {
                return Err(
                    ClusterError::api(format!("deleting the ApplySet parent Secret/{}", set.name), error).into(),
                );
            }
        }
    }
    let gone: Vec<&ObjectRef> = deleting
        .iter()
        .map(|m| &m.object)
        .filter(|o| !left.iter().any(|(l, _)| l == *o))
        .collect();
    let text = if json_output {
        let report = json!({
            "deleted": gone,
            "kept": keeping.iter().map(|(m, why)| json!({"object": m.object, "reason": why})).collect::<Vec<_>>(),
            "left": left.iter().map(|(o, why)| json!({"object": o, "reason": why})).collect::<Vec<_>>(),
            "errors": failures,
            "success": complete,
        });
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else if complete {
        format!(
            "deleted {} object(s), kept {}; the project's revisions and ApplySet parent are gone\n",
            gone.len(),
            keeping.len()
        )
    } else {
        let mut text = format!(
            "error: the delete did not finish: {} object(s) gone, {} left:\n",
            gone.len(),
            left.len()
        );
        for (object, why) in &left {
            text.push_str(&format!("  {object}: {why}\n"));
        }
        for failure in &failures {
            text.push_str(&format!("  {failure}\n"));
        }
        text.push_str(
            "run kdeploy delete again to finish it (the ApplySet parent and revisions are kept until then)\n",
        );
        text
    };
    if complete || json_output {
        super::write_stdout(&text)?;
    } else {
        eprint!("{text}");
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ERROR)
    })
}

/// A CRD of the set goes only with --delete-crds, and only when every custom resource of it belongs
/// to the set (deleting a CRD deletes all of them, whoever made them).
async fn crd_fate(
    args: &DeleteArgs,
    resources: &crate::cluster::resources::Resources,
    live: &Json,
    members: &BTreeSet<&ObjectRef>,
) -> anyhow::Result<Fate> {
    let group = live["spec"]["group"].as_str().unwrap_or_default();
    let kind = live["spec"]["names"]["kind"].as_str().unwrap_or_default();
    let mut ours = 0;
    let mut others = Vec::new();
    if let Some(resolved) = resources.resolve_group_kind(group, kind).await? {
        let api = resources.api(&resolved, None);
        let everything = ListParams::default();
        let list = with_retries(|| api.list_metadata(&everything))
            .await
            .map_err(|e| ClusterError::api(format!("listing {kind}.{group}"), e))?;
        for item in list.items {
            let object = ObjectRef {
                group: group.to_owned(),
                kind: kind.to_owned(),
                namespace: item.metadata.namespace.clone(),
                name: item.metadata.name.clone().unwrap_or_default(),
            };
            if members.contains(&object) {
                ours += 1;
            } else {
                others.push(object.to_string());
            }
        }
    }
    Ok(if !others.is_empty() {
        Fate::Keep(format!(
            "{} custom resource(s) of it are not this project's ({}{}), and deleting the CRD deletes them",
            others.len(),
            others.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if others.len() > 3 { ", …" } else { "" }
        ))
    } else if !args.delete_crds {
        Fate::Keep(format!(
            "a CustomResourceDefinition: deleting it deletes every {kind} ({ours} now, all this project's) (--delete-crds deletes it)"
        ))
    } else {
        Fate::Delete
    })
}

/// The objects in `namespace` that are neither the set's nor made by something in it (objects with an
/// owner go with their owner) nor the namespace's own furniture.
async fn others_in(
    set: &ApplySet,
    resources: &crate::cluster::resources::Resources,
    listable: &[Resolved],
    namespace: &str,
    members: &BTreeSet<&ObjectRef>,
) -> anyhow::Result<Vec<String>> {
    let mut others = Vec::new();
    for resolved in listable {
        let api = resources.api(resolved, Some(namespace));
        let everything = ListParams::default();
        let list = match with_retries(|| api.list_metadata(&everything)).await {
            Ok(list) => list,
            // What cannot be listed cannot be proven empty: count it as another's.
            Err(kube::Error::Api(status)) if status.code == 403 => {
                others.push(format!("{} (not allowed to list them)", resolved.resource.plural));
                continue;
            }
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 405 => continue,
            Err(error) => {
                return Err(
                    ClusterError::api(format!("listing {} in {namespace}", resolved.resource.plural), error).into(),
                );
            }
        };
        for item in list.items {
            let object = ObjectRef {
                group: resolved.resource.group.clone(),
                kind: resolved.resource.kind.clone(),
                namespace: Some(namespace.to_owned()),
                name: item.metadata.name.clone().unwrap_or_default(),
            };
            let owned = item.metadata.owner_references.as_ref().is_some_and(|o| !o.is_empty());
            let meta = serde_json::to_value(&item).unwrap_or(Json::Null);
            if members.contains(&object) || owned || is_namespace_furniture(set, &object.kind, &object.name, &meta) {
                continue;
            }
            others.push(object.to_string());
        }
    }
    Ok(others)
}

/// The waves of a delete: custom resources (their controllers still run to clear finalizers), then the
/// rest in reverse apply order with webhooks and API services last, then CRDs and Namespaces.
fn wave(object: &ObjectRef) -> (u8, std::cmp::Reverse<usize>) {
    let rank = kind_rank(&object.kind);
    let custom = rank == kind_rank("no-such-built-in-kind");
    let last = rank > kind_rank("no-such-built-in-kind");
    match object.kind.as_str() {
        "CustomResourceDefinition" => (3, std::cmp::Reverse(0)),
        "Namespace" => (4, std::cmp::Reverse(0)),
        _ if custom => (0, std::cmp::Reverse(0)),
        _ if last => (2, std::cmp::Reverse(rank)),
        _ => (1, std::cmp::Reverse(rank)),
    }
}

/// Deletes `members` wave by wave, waiting for each wave to be gone; what is still there when
/// `timeout` passes is returned with what holds it up.
async fn delete_in_waves(
    resources: &crate::cluster::resources::Resources,
    members: &[&Member],
    timeout: Duration,
    concurrency: usize,
    failures: &mut Vec<String>,
) -> Vec<(ObjectRef, String)> {
    use futures::StreamExt as _;
    let deadline = Instant::now() + timeout;
    let mut ordered: Vec<&Member> = members.to_vec();
    ordered.sort_by_key(|m| wave(&m.object));
    let mut left = Vec::new();
    for chunk in ordered.chunk_by(|a, b| wave(&a.object).0 == wave(&b.object).0) {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let params = &params;
        let results: Vec<Option<String>> = futures::stream::iter(chunk.iter().map(|member| async move {
            let api = resources.api(&member.resolved, member.object.namespace.as_deref());
            match with_retries(|| api.delete(&member.object.name, params)).await {
                Ok(_) => None,
                Err(kube::Error::Api(status)) if status.code == 404 => None,
                Err(error) => Some(format!("{}: {}", member.object, describe_api_error(&error))),
            }
        }))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
        failures.extend(results.into_iter().flatten());
        let mut waiting: Vec<&Member> = chunk.to_vec();
        let mut last_report = Instant::now();
        loop {
            let still: Vec<(&Member, Vec<String>)> =
                futures::stream::iter(waiting.into_iter().map(|member| async move {
                    let api = resources.api(&member.resolved, member.object.namespace.as_deref());
                    match with_retries(|| api.get_opt(&member.object.name)).await {
                        Ok(None) => None,
                        // Re-created by someone else, without the set's label: not ours any more.
                        Ok(Some(live))
                            if live
                                .metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(PART_OF_LABEL))
                                .is_none() =>
                        {
                            None
                        }
                        Ok(Some(live)) if member.object.kind == "Namespace" && discovery_failure(&live.data).is_some() => {
                        ui::warn(&format!(
                            "{} is terminating, but Kubernetes cannot finish it: {}; all kdeploy deleted in it is gone",
                            member.object,
                            discovery_failure(&live.data).unwrap_or_default()
                        ));
                        None
                    }
                    Ok(Some(live)) => Some((member, live.metadata.finalizers.unwrap_or_default())),
                        Err(error) => Some((member, vec![format!("cannot read it: {}", describe_api_error(&error))])),
                    }
                }))
                .buffer_unordered(concurrency.max(1))
                .filter_map(|x| async move { x })
                .collect()
                .await;
            if still.is_empty() {
                break;
            }
            let describe = |(member, finalizers): &(&Member, Vec<String>)| {
                if finalizers.is_empty() {
                    format!("{}", member.object)
                } else {
                    format!("{} (held by finalizer {})", member.object, finalizers.join(", "))
                }
            };
            if Instant::now() >= deadline {
                left.extend(still.iter().map(|(member, finalizers)| {
                    let why = if finalizers.is_empty() {
                        format!("still there after {}s", timeout.as_secs())
                    } else {
                        format!("held by finalizer {}", finalizers.join(", "))
                    };
                    (member.object.clone(), why)
                }));
                let rest = ordered.iter().filter(|m| wave(&m.object).0 > wave(&chunk[0].object).0);
                left.extend(rest.map(|m| {
                    (
                        m.object.clone(),
                        "not deleted yet: an earlier wave is still going".to_owned(),
                    )
                }));
                return left;
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                let shown: Vec<String> = still.iter().take(3).map(describe).collect();
                ui::note(&format!(
                    "waiting for {} object(s) to go: {}{}",
                    still.len(),
                    shown.join(", "),
                    if still.len() > 3 { ", …" } else { "" }
                ));
                last_report = Instant::now();
            }
            waiting = still.into_iter().map(|(member, _)| member).collect();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    left
}

/// Why the namespace controller cannot finish deleting a Namespace, when it is that it cannot
/// discover every kind (an aggregated API without its backend): no waiting changes that.
fn discovery_failure(namespace: &Json) -> Option<String> {
    namespace["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "NamespaceDeletionDiscoveryFailure" && c["status"] == "True")
        .map(|c| {
            c["message"]
                .as_str()
                .unwrap_or("NamespaceDeletionDiscoveryFailure")
                .to_owned()
        })
}
