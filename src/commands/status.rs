//! `kdeploy status`: every member of the project's ApplySet with its health (the rules `apply` waits
//! by), and whether it still is what the last revision applied: missing, changed since (by another
//! field manager, or by another apply), or as applied. Read-only and quick: the members are listed
//! (one LIST per kind), never dry-run. Exit 0 when all are present, healthy and unchanged; 1 when any
//! is not; 2 on errors.

use std::collections::HashMap;
use std::process::ExitCode;

use serde_json::{Value as Json, json};

use super::located::{Located, locate};
use super::{EXIT_CHANGES, deploy};
use crate::cli::{ReportFormat, StatusArgs};
use crate::cluster::health::{HealthRules, Readiness, needs_wait, readiness};
use crate::cluster::revision::{self, Stored};
use crate::cluster::unchanged;
use crate::manifest::ObjectRef;

/// One member's state.
#[derive(Debug, serde::Serialize)]
pub struct MemberStatus {
    pub object: ObjectRef,
    /// `ready`, `progressing`, `failed` or `missing`.
    pub health: String,
    /// Why, when not ready.
    pub reason: Option<String>,
    /// `as-applied`, `changed`, `missing`, or `not-in-revision` (a member the last revision does not
    /// hold).
    pub state: String,
    /// What changed it, when it changed.
    pub changed_by: Option<String>,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    deploy::runtime()?.block_on(async {
        let located = locate(&args.set).await?;
        let history = revision::read_all(&located.resources.client(), &located.set).await?;
        let statuses = statuses(&located, history.latest()).await?;
        let fine = statuses.iter().all(|s| s.health == "ready" && s.state == "as-applied");
        let latest = history.latest();
        let text = if args.output == ReportFormat::Json {
            let report = json!({
                "applyset": {"name": located.set.name, "namespace": located.set.namespace, "id": located.set.id},
                "project": located.set.project,
                "context": located.cluster.context,
                "revision": latest.map(summary_json),
                "objects": statuses,
                "healthy": fine,
            });
            format!("{}\n", serde_json::to_string_pretty(&report)?)
        } else {
            text_report(&located, latest, &statuses, fine)
        };
        super::write_stdout(&text)?;
        for skipped in &history.skipped {
            crate::ui::warn(skipped);
        }
        Ok(if fine {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_CHANGES)
        })
    })
}

/// A revision's headline as JSON.
pub fn summary_json(stored: &Stored) -> Json {
    let record = &stored.record;
    json!({
        "number": record.number,
        "outcome": stored.outcome.as_str(),
        "time": record.time,
        "who": record.who,
        "commit": record.commit,
        "dirty": record.dirty,
        "target": record.target,
        "kdeploy_version": record.kdeploy_version,
        "rollback_of": record.rollback_of,
        "objects": record.object_count,
    })
}

/// The status of every member, and of every object the last revision holds that is gone.
pub async fn statuses(located: &Located, latest: Option<&Stored>) -> anyhow::Result<Vec<MemberStatus>> {
    let members = located
        .set
        .members(
            &located.resources,
            &located.recorded,
            located.concurrency.most(),
            500,
            &|_, _| false,
            None,
        )
        .await?;
    let rules = located
        .health
        .clone()
        .or_else(|| latest.map(|l| l.record.health_rules()))
        .unwrap_or_default();
    // A stub of a sealed object stands for it here: its digest and field names are all status reads.
    let applied: HashMap<ObjectRef, Json> = latest
        .map(|l| {
            l.record
                .objects
                .iter()
                .map(|o| {
                    let mut object = o.clone();
                    if let Some(map) = object.as_object_mut() {
                        map.remove(revision::STUB_FIELD);
                    }
                    (revision::reference(o), object)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let mut statuses: Vec<MemberStatus> = members
        .iter()
        .map(|member| {
            seen.insert(member.object.clone());
            let live = member.live.as_ref().unwrap_or(&Json::Null);
            let manifest = applied.get(&member.object);
            member_status(&member.object, live, manifest, &rules)
        })
        .collect();
    // Members are listed with kdeploy's own managedFields only; who else wrote to a changed one is
    // read from the object itself (few are changed, so few are read).
    for (status, member) in statuses.iter_mut().zip(&members) {
        if status.state != "changed" || status.changed_by.as_deref() != Some(NO_LONGER_OWN) {
            continue;
        }
        let api = located
            .resources
            .api(&member.resolved, member.object.namespace.as_deref());
        if let Ok(Some(live)) = crate::cluster::client::with_retries(|| api.get_opt(&member.object.name)).await {
            let live = serde_json::to_value(live).unwrap_or(Json::Null);
            status.changed_by = Some(other_managers(&live).unwrap_or_else(|| NO_LONGER_OWN.to_owned()));
        }
    }
    for object in applied.keys().filter(|o| !seen.contains(*o)) {
        statuses.push(MemberStatus {
            object: object.clone(),
            health: "missing".into(),
            reason: Some("it does not exist (or no longer belongs to the set)".into()),
            state: "missing".into(),
            changed_by: None,
        });
    }
    statuses.sort_by(|a, b| {
        crate::manifest::kind_rank(&a.object.kind)
            .cmp(&crate::manifest::kind_rank(&b.object.kind))
            .then_with(|| a.object.cmp(&b.object))
    });
    Ok(statuses)
}

fn member_status(object: &ObjectRef, live: &Json, manifest: Option<&Json>, rules: &HealthRules) -> MemberStatus {
    let waits = manifest.unwrap_or(live);
    let (health, reason) = if !needs_wait(object, waits, rules) {
        ("ready", None)
    } else {
        match readiness(object, live, rules) {
            Readiness::Ready => ("ready", None),
            Readiness::Progressing(why) => ("progressing", Some(why)),
            Readiness::Failed(why) => ("failed", Some(why)),
        }
    };
    let (state, changed_by) = match manifest {
        None => ("not-in-revision", None),
        Some(manifest) if unchanged::proven_unchanged(manifest, live) => ("as-applied", None),
        Some(manifest) => ("changed", Some(changed_by(manifest, live))),
    };
    MemberStatus {
        object: object.clone(),
        health: health.into(),
        reason,
        state: state.into(),
        changed_by,
    }
}

/// Who changed an object since the revision: another apply (its digest differs), or the field
/// managers other than kdeploy that wrote to it.
fn changed_by(manifest: &Json, live: &Json) -> String {
    if unchanged::recorded(live) != unchanged::recorded(manifest) {
        return "applied since by another kdeploy run (its applied digest differs from the revision's)".into();
    }
    other_managers(live).unwrap_or_else(|| NO_LONGER_OWN.to_owned())
}

const NO_LONGER_OWN: &str = "fields kdeploy applied are no longer its own";

/// The field managers other than kdeploy that wrote to the object (not its status), if any.
fn other_managers(live: &Json) -> Option<String> {
    let others: std::collections::BTreeSet<&str> = live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["manager"] != crate::cluster::FIELD_MANAGER)
        .filter(|entry| {
            entry
                .get("subresource")
                .and_then(Json::as_str)
                .is_none_or(str::is_empty)
        })
        .filter_map(|entry| entry["manager"].as_str())
        .collect();
    (!others.is_empty()).then(|| format!("field manager {}", others.into_iter().collect::<Vec<_>>().join(", ")))
}

fn text_report(located: &Located, latest: Option<&Stored>, statuses: &[MemberStatus], fine: bool) -> String {
    let mut text = format!(
        "ApplySet Secret/{} in {} · context {}{}\n",
        located.set.name,
        located.set.namespace,
        located.cluster.context,
        located
            .set
            .project
            .as_ref()
            .map_or_else(String::new, |p| format!(" · project {p}"))
    );
    match latest {
        Some(stored) => text.push_str(&format!("{}\n", headline(stored))),
        None => text.push_str("no revision recorded (applied by a kdeploy that kept no history)\n"),
    }
    let width = statuses
        .iter()
        .map(|s| s.object.to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    text.push_str(&format!("\n{:<width$}  {:<11}  STATE\n", "OBJECT", "HEALTH"));
    for status in statuses {
        let state = match &status.changed_by {
            Some(by) => format!("changed: {by}"),
            None => status.state.clone(),
        };
        let reason = status.reason.as_ref().map_or_else(String::new, |r| format!(" ({r})"));
        text.push_str(&format!(
            "{:<width$}  {:<11}  {state}{reason}\n",
            status.object.to_string(),
            status.health
        ));
    }
    let count = |f: &dyn Fn(&MemberStatus) -> bool| statuses.iter().filter(|s| f(s)).count();
    text.push_str(&format!(
        "\n{} object(s): {} ready, {} progressing, {} failed, {} missing, {} changed\n",
        statuses.len(),
        count(&|s| s.health == "ready"),
        count(&|s| s.health == "progressing"),
        count(&|s| s.health == "failed"),
        count(&|s| s.state == "missing"),
        count(&|s| s.state == "changed"),
    ));
    if !fine {
        text.push_str("not all objects are present, healthy and as applied\n");
    }
    text
}

/// One line about a revision: number, outcome, when, who, commit.
pub fn headline(stored: &Stored) -> String {
    let record = &stored.record;
    let commit = match (&record.commit, record.dirty) {
        (Some(commit), Some(true)) => format!(
            ", commit {} (with uncommitted changes)",
            &commit[..commit.len().min(12)]
        ),
        (Some(commit), _) => format!(", commit {}", &commit[..commit.len().min(12)]),
        _ => String::new(),
    };
    let rollback = record
        .rollback_of
        .map_or_else(String::new, |n| format!(", a rollback to revision {n}"));
    format!(
        "revision {} ({}) applied {} by {}{commit}{rollback}",
        record.number,
        stored.outcome.as_str(),
        record.time,
        record.who
    )
}
