//! `kdeploy apply`: validate everything with a dry run, show the diff, ask, apply in order, prune what
//! left the ApplySet, wait until ready, and summarise.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::json;

use super::{EXIT_ERROR, deploy};
use crate::cli::{ApplyArgs, ReportFormat};
use crate::cluster::apply::{ApplyOptions, ApplyReport, apply};
use crate::cluster::lock::{DeployLock, LockReports, Locking, acquire};
use crate::cluster::plan::Operation;
use crate::cluster::wait::wait_ready;
use crate::manifest::phase::phase_name;
use crate::ui;
use crate::ui::diff::{change_diff, summary_table};
use crate::ui::progress::Progress;

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
    let json_output = args.output == ReportFormat::Json;
    let diff: String = plan
        .changes
        .iter()
        .map(|c| change_diff(c, redactor, !json_output && ui::stdout_color()))
        .collect();
    let shown = format!("{diff}{}", summary_table(plan));
    if json_output {
        eprint!("{shown}");
    } else {
        super::write_stdout(&shown)?;
    }
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let changing = plan.has_changes();
    if changing && !args.yes {
        if !(ui::stdin_is_terminal() && ui::stderr_is_terminal()) {
            bail!("refusing to apply without confirmation: there is no terminal to ask on, so pass --yes");
        }
        if !ui::confirm(&format!("apply these changes to context {}?", prepared.context), false)? {
            ui::note("nothing was applied");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
    }

    let rules = &prepared.inputs.selection.health;
    let options = ApplyOptions {
        force_conflicts: args.cluster.force_conflicts,
        prune: !args.no_prune,
        prune_namespaces: args.prune_namespaces,
        concurrency: prepared.concurrency.most(),
        wait_timeout: args.timeout,
        wait_last: !args.no_wait,
        rules,
    };
    let (desired_kinds, desired_namespaces) = prepared.desired_scope();
    let resources = &prepared.resources;
    let applyset = prepared.applyset.as_ref();
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
    if changing || restamps > 0 {
        report = apply(
            resources,
            &plan.changes,
            options,
            async || {
                let Some(applyset) = applyset else { return Ok(()) };
                if let Some(timeout) = prepared.lock_later {
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
            && prepared.prune_off.is_none()
        {
            applyset
                .write_parent(resources, &desired_kinds, &desired_namespaces)
                .await?;
        }
    } else if !args.no_wait {
        // Nothing to apply, but what is there may still be on its way.
        let staying: Vec<_> = plan
            .changes
            .iter()
            .filter(|c| c.operation != Operation::Prune)
            .collect();
        report.not_ready = wait_ready(resources, &staying, rules, args.timeout, &mut show).await?;
    }
    let not_ready = &report.not_ready;
    let failed = report.failure.is_some() || !not_ready.is_empty();
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
            "success": !failed,
        });
        format!("{}\n", serde_json::to_string_pretty(&report_json)?)
    } else {
        text_summary(&report, changing)
    };
    let summary = redactor.redact(&summary);
    if failed && !json_output {
        eprint!("{summary}");
    } else {
        super::write_stdout(&summary)?;
    }
    Ok(if failed {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

fn text_summary(report: &ApplyReport, changing: bool) -> String {
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
