//! Recording revisions for the commands that write them (apply, rollback): what the parent reserves
//! before anything is written, the record made from a plan and its report (Secrets sealed to the
//! vault), and opening a stored revision's objects again.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value as Json;

use crate::cluster::apply::ApplyReport;
use crate::cluster::applyset::{ApplySet, part_of};
use crate::cluster::client::with_retries;
use crate::cluster::health::HealthRules;
use crate::cluster::plan::{Operation, Plan};
use crate::cluster::resources::Resources;
use crate::cluster::revision::{self, ChangeRecord, Outcome, Record};
use crate::cluster::unchanged;
use crate::manifest::ObjectRef;
use crate::vault::identity::IdentityChain;
use crate::vault::redact::Redactor;
use crate::vault::seal::{self, Sealing};

/// Where a revision is recorded and what it says about its run.
#[derive(Clone)]
pub struct Recorder<'a> {
    pub client: kube::Client,
    pub set: &'a ApplySet,
    pub history_max: u32,
    /// The history_max the parent recorded before this run.
    pub previous_max: Option<u32>,
    pub project_dir: Option<&'a Path>,
    pub target: Option<String>,
    pub context: String,
    pub namespace: String,
    pub health: HealthRules,
    pub redactor: &'a Redactor,
    pub sealing: Option<&'a Sealing>,
}

/// Reserves the next revision's number in the parent (written with it before any member), records
/// `history_max`, and the objects this plan adopts: ones that exist and were not the set's. Returns the
/// number, and the history_max recorded before.
pub fn reserve(set: &ApplySet, plan: &Plan, history_max: u32) -> (u64, Option<u32>) {
    let ledger = set.ledger();
    let number = ledger.revision + 1;
    let staying: BTreeSet<&ObjectRef> = plan
        .changes
        .iter()
        .filter(|c| c.operation != Operation::Prune)
        .map(|c| &c.object)
        .collect();
    let adopted = newly_adopted(set, plan);
    set.update_ledger(|ledger| {
        ledger.revision = number;
        ledger.history_max = Some(history_max);
        ledger.adopted.extend(adopted);
        ledger.adopted.retain(|o| staying.contains(o));
    });
    (number, ledger.history_max)
}

/// The objects of this plan that the apply newly adopts (for a rollback, which must not delete them).
pub fn newly_adopted(set: &ApplySet, plan: &Plan) -> BTreeSet<ObjectRef> {
    plan.changes
        .iter()
        .filter(|c| matches!(c.operation, Operation::Update | Operation::Replace))
        .filter(|c| {
            c.live
                .as_ref()
                .is_some_and(|live| part_of(live) != Some(set.id.as_str()))
        })
        .map(|c| c.object.clone())
        .collect()
}

impl Recorder<'_> {
    /// The record of an apply of `plan` that did what `report` says.
    pub fn record(
        &self,
        number: u64,
        plan: &Plan,
        report: &ApplyReport,
        outcome: Outcome,
        rollback_of: Option<u64>,
    ) -> Record {
        let objects: Vec<Json> = plan
            .changes
            .iter()
            .filter(|c| c.operation != Operation::Prune)
            .filter_map(|c| c.manifest.clone())
            .collect();
        let object_count = objects.len();
        let carries = |text: &str| self.redactor.contains_secret(text);
        let (objects, sealed) = revision::split_sealed(objects, &carries);
        let (sealed, unsealed) = match (sealed.is_empty(), self.sealing) {
            (true, _) => (None, Vec::new()),
            (false, Some(sealing)) => {
                let text = serde_json::to_string(&sealed).unwrap_or_default();
                match seal::seal(&text, sealing) {
                    Ok(blob) => (Some(blob), Vec::new()),
                    Err(error) => {
                        crate::ui::warn(&format!(
                            "the revision's Secrets could not be sealed ({error}); they are not stored"
                        ));
                        (None, sealed.iter().map(revision::reference).collect())
                    }
                }
            }
            (false, None) => (None, sealed.iter().map(revision::reference).collect()),
        };
        let mut changes: Vec<ChangeRecord> = report
            .applied
            .iter()
            .map(|(object, operation)| ChangeRecord {
                object: object.clone(),
                operation: *operation,
            })
            .collect();
        changes.extend(report.pruned.iter().map(|object| ChangeRecord {
            object: object.clone(),
            operation: Operation::Prune,
        }));
        let message = report
            .failure
            .as_ref()
            .map(|(object, message)| format!("{object}: {message}"))
            .or_else(|| {
                (!report.not_ready.is_empty()).then(|| {
                    report
                        .not_ready
                        .iter()
                        .map(|n| format!("{} is not ready: {}", n.object, n.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            })
            .map(|m| self.redactor.redact(&m));
        let (commit, dirty) = self.project_dir.map(revision::commit).unwrap_or((None, None));
        Record {
            format: revision::FORMAT,
            number,
            time: crate::util::now_rfc3339(),
            who: revision::who(&|name| std::env::var(name).ok()),
            kdeploy_version: env!("CARGO_PKG_VERSION").to_owned(),
            commit,
            dirty,
            project: self.set.project.clone(),
            target: self.target.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            outcome,
            rollback_of,
            message,
            changes,
            objects,
            sealed,
            unsealed,
            health: self.health.0.clone(),
            object_count,
        }
    }

    /// The record of a rollback to `restored`: its manifest, and its sealed Secrets as they were (they
    /// are the same objects), with this run's changes and outcome.
    pub fn record_restored(&self, number: u64, restored: &Record, report: &ApplyReport, outcome: Outcome) -> Record {
        let fresh = self.record(number, &Plan::default(), report, outcome, Some(restored.number));
        Record {
            objects: restored.objects.clone(),
            sealed: restored.sealed.clone(),
            unsealed: restored.unsealed.clone(),
            object_count: restored.object_count,
            ..fresh
        }
    }

    /// Writes `record`; a failure to record is a warning (what was applied stays applied).
    pub async fn write(&self, record: &Record) -> bool {
        match revision::write(&self.client, self.set, record, self.history_max, self.previous_max).await {
            Ok(_) => true,
            Err(error) => {
                crate::ui::warn(&format!("revision {} was not recorded: {error}", record.number));
                false
            }
        }
    }
}

/// A stored revision's objects, Secrets unsealed: with `known` when it seals them under that key, else
/// with the identities. Err says why the sealed ones cannot be opened (or that they were never stored).
fn open_objects(
    record: &Record,
    known: Option<&Sealing>,
    identities: &mut IdentityChain,
) -> (Vec<Json>, Result<(), String>) {
    if !record.unsealed.is_empty() {
        return (
            record.objects_unsealed(None),
            Err(format!(
                "revision {} stored no values for its {} Secret(s): the project had no vault to seal them to",
                record.number,
                record.unsealed.len()
            )),
        );
    }
    let Some(blob) = &record.sealed else {
        return (record.objects_unsealed(None), Ok(()));
    };
    let name = format!("revision {}", record.number);
    let opened = seal::unseal(blob, &name, known, identities)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<Vec<Json>>(&text).map_err(|e| format!("{name}: {e}")));
    match opened {
        Ok(list) => (record.objects_unsealed(Some(&list)), Ok(())),
        Err(error) => (record.objects_unsealed(None), Err(error)),
    }
}

/// The stubs whose live object is still exactly what the revision applied (the same applied digest):
/// they need no restoring, so their values are not needed.
async fn stubs_as_applied(resources: &Resources, objects: &[Json]) -> BTreeSet<ObjectRef> {
    let mut same = BTreeSet::new();
    for stub in objects.iter().filter(|o| revision::stub_index(o).is_some()) {
        let Some(wanted) = unchanged::recorded(stub) else {
            continue;
        };
        let reference = revision::reference(stub);
        let api_version = stub["apiVersion"].as_str().unwrap_or_default();
        let Ok(Some(resolved)) = resources.resolve(api_version, &reference.kind).await else {
            continue;
        };
        let api = resources.api(&resolved, reference.namespace.as_deref());
        if let Ok(Some(live)) = with_retries(|| api.get_opt(&reference.name)).await
            && live
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(unchanged::DIGEST_ANNOTATION))
                .map(String::as_str)
                == Some(wanted)
        {
            same.insert(reference);
        }
    }
    same
}

/// A revision's objects ready to apply again: the sealed ones opened, or, when they cannot be, left
/// out if the cluster still holds them as the revision applied them. Returns the objects, the ones
/// left as they are (never to be pruned), and why the rest cannot be restored, if any cannot.
pub async fn restorable(
    resources: &Resources,
    record: &Record,
    known: Option<&Sealing>,
    identities: &mut IdentityChain,
) -> (Vec<Json>, BTreeSet<ObjectRef>, Option<String>) {
    let (mut objects, opened) = open_objects(record, known, identities);
    let Err(why) = opened else {
        return (objects, BTreeSet::new(), None);
    };
    let same = stubs_as_applied(resources, &objects).await;
    let left_alone: BTreeSet<ObjectRef> = revision::stubs(&objects).into_iter().collect();
    let differing: Vec<String> = left_alone
        .iter()
        .filter(|o| !same.contains(*o))
        .map(ToString::to_string)
        .collect();
    objects.retain(|o| revision::stub_index(o).is_none());
    let why = (!differing.is_empty()).then(|| format!("{why}; and these differ from it now: {}", differing.join(", ")));
    (objects, left_alone, why)
}
