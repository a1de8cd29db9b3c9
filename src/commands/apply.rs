//! `kdeploy apply`: validate everything with a dry run, show the diff, ask, apply in order, prune what
//! left the ApplySet, wait until ready, and summarise.

use std::process::ExitCode;

use serde_json::json;

use std::collections::BTreeSet;
use std::sync::Arc;

use super::revisions::{self, Recorder};
use super::{EXIT_ERROR, deploy};
use crate::cli::{ApplyArgs, ReportFormat};
use crate::cluster::apply::{ApplyOptions, ApplyReport, apply};
use crate::cluster::applyset::{ApplySet, group_kind};
use crate::cluster::lock::{DeployLock, LockReports, Locking, acquire};
use crate::cluster::plan::{Operation, Plan, PlanOptions, plan};
use crate::cluster::resources::Resources;
use crate::cluster::revision::{self, Outcome};
use crate::cluster::wait::wait_ready;
use crate::manifest::ObjectRef;
use crate::manifest::phase::phase_name;
use crate::ui;
use crate::ui::progress::Progress;
use crate::vault::identity::IdentityChain;

pub fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    if args.input.untrusted || crate::trust::policy_from_env(false, None, None).untrusted {
        anyhow::bail!(
            "apply does not deploy an untrusted repository: render or diff it with --untrusted, and apply only what was reviewed"
        );
    }
    deploy::runtime()?.block_on(run_async(args))
}

async fn run_async(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    // A dry run changes nothing, so it needs no lock.
    let lock_timeout = (!args.no_lock && !args.dry_run).then_some(args.lock_timeout);
    let mut prepared = deploy::prepare(&args.input, &args.cluster, lock_timeout).await?;
    let lock = std::sync::Mutex::new(prepared.lock.take());
    let result = apply_prepared(args, &prepared, &lock).await;
    let held = lock.lock().map(|mut held| held.take()).unwrap_or_default();
    if let Some(held) = held {
        held.release().await;
    }
    result
}

/// What a GitOps engine does with an object changed around it.
pub(super) const GITOPS_CONSEQUENCE: &str =
    "a direct change is reverted at the engine's next reconciliation; change the source it deploys instead";

/// The apply proper, under the lock (`lock` receives it when it can only be taken once the
/// namespaces exist).
async fn apply_prepared(
    args: &ApplyArgs,
    prepared: &deploy::Prepared,
    lock: &std::sync::Mutex<Option<DeployLock>>,
) -> anyhow::Result<ExitCode> {
    let plan = &prepared.plan;
    let redactor = &prepared.redactor;
    if !plan.failures.is_empty() {
        eprint!("error: {}", redactor.redact(&deploy::failures_text(plan)));
        eprintln!("nothing was applied");
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let changing = plan.has_changes();
    // With nothing to write (no change, no digest to record), the lock has done its work: it is given
    // back while the plan is shown and readiness is read, not after.
    let early_release = (!changing && !plan.changes.iter().any(|c| c.restamp))
        .then(|| lock.lock().ok().and_then(|mut held| held.take()))
        .flatten()
        .map(|held| tokio::spawn(held.release()));
    let result = apply_planned(args, prepared, lock, changing).await;
    if let Some(release) = early_release {
        let _ = release.await;
    }
    result
}

/// The apply after its plan: show it, ask, apply, record, and summarise.
async fn apply_planned(
    args: &ApplyArgs,
    prepared: &deploy::Prepared,
    lock: &std::sync::Mutex<Option<DeployLock>>,
    changing: bool,
) -> anyhow::Result<ExitCode> {
    let plan = &prepared.plan;
    let redactor = &prepared.redactor;
    let json_output = args.output == ReportFormat::Json;
    deploy::warn_about_gitops(plan, GITOPS_CONSEQUENCE);
    deploy::show_plan(plan, redactor, json_output)?;
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let question = format!("apply these changes to context {}?", prepared.context);
    if changing && !deploy::confirmed(args.yes, "apply", &question)? {
        ui::note("nothing was applied");
        return Ok(ExitCode::from(EXIT_ERROR));
    }

    let rules = &prepared.inputs.selection.health;
    let applyset = prepared.applyset.as_ref();
    let recorder = applyset.map(|set| Recorder {
        client: prepared.resources.client(),
        set,
        history_max: args.history_max,
        previous_max: None,
        project_dir: prepared.inputs.selection.project_dir.as_deref(),
        target: prepared.inputs.selection.target.clone(),
        context: prepared.context.clone(),
        namespace: prepared.namespace.clone(),
        health: rules.clone(),
        redactor,
        sealing: prepared.inputs.secrets.sealing(),
    });
    // The revision's number is reserved in the parent, which is written before any member.
    let reserved = match applyset {
        Some(set) if changing => Some(revisions::reserve(set, plan, args.history_max)),
        _ => None,
    };
    let adopted_now = applyset
        .map(|set| revisions::newly_adopted(set, plan))
        .unwrap_or_default();
    if args.rollback_on_failure {
        watch_signals()?;
    }
    let execution = Execution {
        resources: &prepared.resources,
        applyset,
        options: ApplyOptions {
            force_conflicts: args.cluster.force_conflicts,
            prune: !args.no_prune,
            prune_namespaces: args.prune_namespaces,
            concurrency: prepared.concurrency.most(),
            wait_timeout: args.timeout,
            wait_last: !args.no_wait,
            rules,
        },
        lock_later: prepared.lock_later,
        lock,
        narrow_parent: prepared.prune_off.is_none(),
    };
    let report = execute(&execution, plan).await?;
    let failed = report.failure.is_some() || !report.not_ready.is_empty();
    let mut restored = None;
    if let (Some(recorder), Some((number, previous_max))) = (&recorder, reserved) {
        let recorder = Recorder {
            previous_max,
            ..recorder.clone()
        };
        let outcome = if failed { Outcome::Failed } else { Outcome::Deployed };
        let record = recorder.record(number, plan, &report, outcome, None);
        recorder.write(&record).await;
        if failed && args.rollback_on_failure && wrote_anything(&report) {
            let context = RollbackOnFailure {
                failed_number: number,
                created_namespaces: report
                    .applied
                    .iter()
                    .filter(|(o, op)| *op == Operation::Create && o.kind == "Namespace" && o.group.is_empty())
                    .map(|(o, _)| o.clone())
                    .collect(),
                adopted_now: &adopted_now,
                identity: args.input.identity.identity.as_deref(),
            };
            restored = Some(roll_back_failed(args, prepared, &recorder, &context, lock).await);
        }
    }
    let not_ready = &report.not_ready;
    let summary = if json_output {
        let report_json = json!({
            "context": prepared.context,
            "applyset": applyset.map(|set| &set.id),
            "applied": report.applied.iter().map(|(o, op)| json!({"object": o, "operation": op})).collect::<Vec<_>>(),
            "pruned": report.pruned,
            "kept": report.kept,
            "not_applied": report.not_applied,
            "rolled_back": report.rolled_back,
            "failure": report.failure.as_ref().map(|(o, m)| json!({"object": o, "message": redactor.redact(m)})),
            "not_ready": not_ready,
            "stopped_at_phase": report.stopped_at_phase.map(phase_name),
            "revision": reserved.map(|(number, _)| number),
            "rollback": restored.as_ref().map(|r| json!({"to": r.to, "revision": r.revision, "success": r.success, "left": r.left})),
            "success": !failed,
        });
        format!("{}\n", serde_json::to_string_pretty(&report_json)?)
    } else {
        text_summary(&report, changing)
    };
    let mut summary = summary;
    if let Some(restored) = &restored
        && !json_output
    {
        summary.push_str(&restored.text);
    }
    deploy::finish(&summary, redactor, failed, json_output)
}

pub(super) fn text_summary(report: &ApplyReport, changing: bool) -> String {
    let mut text = String::new();
    if !changing {
        text.push_str("no changes to apply\n");
    }
    if let Some((object, message)) = &report.failure
        && !report.rolled_back.is_empty()
    {
        text.push_str(&format!("error: the server refused {object}: {message}\n"));
        text.push_str("nothing was applied: what this apply had created for it was removed again:\n");
        for object in &report.rolled_back {
            text.push_str(&format!("  {object}\n"));
        }
        return text;
    }
    if let Some((object, message)) = &report.failure {
        text.push_str(&format!("error: applying {object} failed: {message}\n"));
        text.push_str(&format!("applied before the failure: {}\n", report.applied.len()));
        for (object, _) in &report.applied {
            text.push_str(&format!("  {object}\n"));
        }
        text.push_str(&format!("not applied: {}\n", report.not_applied.len() + 1));
        text.push_str(&format!("  {object}\n"));
        for object in &report.not_applied {
            text.push_str(&format!("  {object}\n"));
        }
        text.push_str("run kdeploy apply again once the cause is fixed: it converges\n");
        return text;
    }
    let count = |op: Operation| report.applied.iter().filter(|(_, o)| *o == op).count();
    if changing {
        text.push_str(&format!(
            "applied: {} created, {} updated{}; {} pruned\n",
            count(Operation::Create),
            count(Operation::Update),
            match count(Operation::Replace) {
                0 => String::new(),
                n => format!(", {n} replaced"),
            },
            report.pruned.len()
        ));
    }
    for object in &report.kept {
        text.push_str(&format!(
            "kept (left the manifest; prune it with --prune-namespaces, or without --no-prune): {object}\n"
        ));
    }
    for failure in &report.not_ready {
        text.push_str(&format!("error: {} is not ready: {}\n", failure.object, failure.reason));
    }
    if let Some(phase) = report.stopped_at_phase {
        text.push_str(&format!(
            "phase {} did not become ready, so later phases were not applied ({}):\n",
            phase_name(phase),
            report.not_applied.len()
        ));
        for object in &report.not_applied {
            text.push_str(&format!("  {object}\n"));
        }
    }
    text
}

/// What applying a plan needs besides the plan.
pub(super) struct Execution<'a> {
    pub resources: &'a Arc<Resources>,
    pub applyset: Option<&'a ApplySet>,
    pub options: ApplyOptions<'a>,
    /// The deploy lock is to be taken once its namespace exists.
    pub lock_later: Option<std::time::Duration>,
    pub lock: &'a std::sync::Mutex<Option<DeployLock>>,
    /// Whether a complete prune may narrow the parent to what stays (not when pruning is off).
    pub narrow_parent: bool,
}

/// Applies `plan` in order (Namespaces and CRDs, the parent, the phases), prunes, and waits; with
/// nothing to change, only waits.
pub(super) async fn execute(execution: &Execution<'_>, plan: &Plan) -> anyhow::Result<ApplyReport> {
    let Execution {
        resources,
        applyset,
        options,
        lock_later,
        lock,
        narrow_parent,
    } = *execution;
    let staying = plan.changes.iter().filter(|c| c.operation != Operation::Prune);
    let desired_kinds: BTreeSet<String> = staying
        .clone()
        .map(|c| group_kind(&c.object.group, &c.object.kind))
        .collect();
    let desired_namespaces: BTreeSet<String> = staying.filter_map(|c| c.object.namespace.clone()).collect();
    let mut report = ApplyReport::default();
    let mut progress = Progress::new();
    let mut show = |object: &_, state: &_| progress.update(object, state);
    // Unchanged objects without the digest of what is applied are sent again, once, to record it.
    let restamps = plan.changes.iter().filter(|c| c.restamp).count();
    if restamps > 0 {
        ui::note(&format!(
            "recording the applied digest on {restamps} unchanged object(s), so that later plans need no dry run for them"
        ));
    }
    if plan.has_changes() || restamps > 0 {
        report = apply(
            resources,
            &plan.changes,
            options,
            async || {
                let Some(applyset) = applyset else { return Ok(()) };
                if let Some(timeout) = lock_later
                    && lock.lock().map_err(|_| "the lock's holder panicked")?.is_none()
                {
                    let client = resources.client();
                    let reports = LockReports {
                        waiting: &mut |message: &str| ui::note(message),
                        lost: ui::warn,
                    };
                    let locking = acquire(client, &applyset.namespace, &applyset.name, timeout, reports).await;
                    match locking.map_err(|e| e.to_string())? {
                        Locking::Held(held) => *lock.lock().map_err(|_| "the lock's holder panicked")? = Some(*held),
                        Locking::NamespaceMissing => {
                            return Err(format!(
                                "namespace {} does not exist for the deploy lock",
                                applyset.namespace
                            ));
                        }
                    }
                }
                // Record every kind and namespace the set may span before any member is applied, so a
                // failure part-way still leaves each member findable for pruning later.
                let (mut kinds, mut namespaces) = applyset
                    .recorded(resources)
                    .await
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default();
                kinds.extend(desired_kinds.iter().cloned());
                namespaces.extend(desired_namespaces.iter().cloned());
                applyset
                    .write_parent(resources, &kinds, &namespaces)
                    .await
                    .map_err(|e| e.to_string())
            },
            &mut show,
        )
        .await;
        // Only a complete prune narrows the parent to what stays; otherwise it keeps every kind and
        // namespace that may still hold members.
        if let Some(applyset) = applyset
            && report.failure.is_none()
            && report.stopped_at_phase.is_none()
            && report.kept.is_empty()
            && narrow_parent
        {
            applyset
                .write_parent(resources, &desired_kinds, &desired_namespaces)
                .await?;
        }
    } else if options.wait_last {
        // Nothing to apply, but what is there may still be on its way.
        let staying: Vec<_> = plan
            .changes
            .iter()
            .filter(|c| c.operation != Operation::Prune)
            .collect();
        report.not_ready = wait_ready(resources, &staying, options.rules, options.wait_timeout, &mut show).await?;
    }
    Ok(report)
}

/// Whether a failed apply wrote anything a rollback would have to undo.
fn wrote_anything(report: &ApplyReport) -> bool {
    !report.applied.is_empty() || !report.pruned.is_empty()
}

/// SIGINT and SIGTERM stop the apply at its next step (and a rollback follows); a second one while
/// the first is being handled ends the process at once.
fn watch_signals() -> anyhow::Result<()> {
    let flag = crate::cluster::interruption();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, flag.clone())?;
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(())
}

/// What the failed apply leaves for its rollback to know.
struct RollbackOnFailure<'a> {
    failed_number: u64,
    /// Namespaces the failed apply created: the rollback deletes them when the revision it restores
    /// does not hold them.
    created_namespaces: BTreeSet<ObjectRef>,
    /// Objects the failed apply adopted: the rollback releases them, never deletes them.
    adopted_now: &'a BTreeSet<ObjectRef>,
    identity: Option<&'a std::path::Path>,
}

/// How an automatic rollback went.
struct Restored {
    /// The revision put back (none on a first apply: what it created was deleted).
    to: Option<u64>,
    /// The revision the rollback recorded.
    revision: Option<u64>,
    success: bool,
    /// What is left as the failed apply left it, when the rollback failed too.
    left: Vec<String>,
    text: String,
}

impl Restored {
    fn failed(to: Option<u64>, why: String) -> Restored {
        Restored {
            to,
            revision: None,
            success: false,
            left: Vec::new(),
            text: format!(
                "error: the rollback failed too: {why}\nthe cluster is as the failed apply left it; fix the cause and run kdeploy apply again (nothing is locked)\n"
            ),
        }
    }
}

/// Puts back the last deployed revision before the failed one (on a first apply: deletes what it
/// created, and releases what it adopted), under the same lock, with --rollback-timeout.
async fn roll_back_failed(
    args: &ApplyArgs,
    prepared: &deploy::Prepared,
    recorder: &Recorder<'_>,
    context: &RollbackOnFailure<'_>,
    lock: &std::sync::Mutex<Option<DeployLock>>,
) -> Restored {
    crate::cluster::interruption().store(false, std::sync::atomic::Ordering::Relaxed);
    let set = recorder.set;
    let client = prepared.resources.client();
    let history = match revision::read_all(&client, set).await {
        Ok(history) => history,
        Err(error) => return Restored::failed(None, format!("reading the revisions: {error}")),
    };
    let target = history
        .revisions
        .iter()
        .find(|r| r.record.number < context.failed_number && r.outcome.is_deployed());
    let to = target.map(|t| t.record.number);
    match to {
        Some(to) => ui::warn(&format!(
            "the apply failed; rolling back to revision {to} (--rollback-on-failure)"
        )),
        None => ui::warn("the project's first apply failed; deleting what it created (--rollback-on-failure)"),
    }
    let mut left_alone = BTreeSet::new();
    let objects = match target {
        Some(target) => {
            let mut identities = IdentityChain::from_process(context.identity);
            let (objects, kept, unrestorable) =
                revisions::restorable(&prepared.resources, &target.record, recorder.sealing, &mut identities).await;
            if let Some(why) = unrestorable {
                return Restored::failed(
                    to,
                    format!("revision {} cannot be restored whole: {why}", target.record.number),
                );
            }
            left_alone = kept;
            objects
        }
        None => Vec::new(),
    };
    let namespace = target.map_or_else(|| prepared.namespace.clone(), |t| t.record.namespace.clone());
    let rules = target.map_or_else(|| recorder.health.clone(), |t| t.record.health_rules());
    let options = PlanOptions {
        concurrency: prepared.concurrency.most(),
        chunk_size: args.cluster.chunk_size,
        force_conflicts: true,
        full_dry_run: false,
        readiness: None,
    };
    let mut plan = match plan(&prepared.resources, objects, &namespace, Some(set), options).await {
        Ok(plan) => plan,
        Err(error) => return Restored::failed(to, format!("planning the rollback: {error}")),
    };
    if !plan.failures.is_empty() {
        return Restored::failed(to, deploy::failures_text(&plan));
    }
    // What the failed apply adopted existed before it: released, never deleted. Namespaces are pruned
    // only when the failed apply created them.
    let mut release = Vec::new();
    plan.changes.retain(|change| {
        if change.operation != Operation::Prune {
            return true;
        }
        if left_alone.contains(&change.object) {
            return false;
        }
        if context.adopted_now.contains(&change.object) {
            release.push(change.clone());
            return false;
        }
        let is_namespace = change.object.kind == "Namespace" && change.object.group.is_empty();
        !is_namespace || args.prune_namespaces || context.created_namespaces.contains(&change.object)
    });
    let (number, _) = revisions::reserve(set, &plan, args.history_max);
    let execution = Execution {
        resources: &prepared.resources,
        applyset: Some(set),
        options: ApplyOptions {
            force_conflicts: true,
            prune: true,
            prune_namespaces: true,
            concurrency: prepared.concurrency.most(),
            wait_timeout: args.rollback_timeout,
            wait_last: !args.no_wait,
            rules: &rules,
        },
        lock_later: None,
        lock,
        narrow_parent: left_alone.is_empty(),
    };
    let report = match execute(&execution, &plan).await {
        Ok(report) => report,
        Err(error) => return Restored::failed(to, error.to_string()),
    };
    for change in &release {
        let Some(resolved) = &change.resolved else { continue };
        if let Err(error) = crate::cluster::apply::release(&prepared.resources, &change.object, resolved).await {
            ui::warn(&format!(
                "{} could not be released from the set: {error}",
                change.object
            ));
        }
    }
    let failed = report.failure.is_some() || !report.not_ready.is_empty();
    let outcome = if failed { Outcome::Failed } else { Outcome::Deployed };
    let recorder = Recorder {
        health: rules.clone(),
        namespace,
        ..recorder.clone()
    };
    let record = match target {
        Some(target) => recorder.record_restored(number, &target.record, &report, outcome),
        None => recorder.record(number, &plan, &report, outcome, None),
    };
    let recorded = recorder.write(&record).await;
    if failed {
        let mut left: Vec<String> = report.failure.iter().map(|(o, m)| format!("{o}: {m}")).collect();
        left.extend(
            report
                .not_ready
                .iter()
                .map(|n| format!("{} is not ready: {}", n.object, n.reason)),
        );
        left.extend(report.not_applied.iter().map(|o| format!("{o}: not restored")));
        let mut restored = Restored::failed(to, "it did not complete".into());
        restored.text = format!(
            "error: the rollback failed too; what is left as the failed apply left it:\n{}\nfix the cause and run kdeploy apply again (nothing is locked)\n",
            left.iter().map(|l| format!("  {l}\n")).collect::<String>().trim_end()
        );
        restored.left = left;
        restored.revision = recorded.then_some(number);
        return restored;
    }
    if let Err(error) = revision::set_outcome(
        &client,
        set,
        context.failed_number,
        args.history_max,
        Outcome::RolledBack,
    )
    .await
    {
        ui::warn(&format!(
            "revision {} could not be marked rolled-back: {error}",
            context.failed_number
        ));
    }
    let what = match to {
        Some(to) => format!("rolled back to revision {to} (recorded as revision {number})"),
        None => "rolled back: what the failed first apply created was deleted".to_owned(),
    };
    Restored {
        to,
        revision: recorded.then_some(number),
        success: true,
        left: Vec::new(),
        text: format!(
            "{what}: {} object(s) restored, {} pruned{}\n",
            report.applied.len(),
            report.pruned.len(),
            if release.is_empty() {
                String::new()
            } else {
                format!(", {} adopted object(s) released", release.len())
            }
        ),
    }
}
