//! `kdeploy diff`: what applying would change, as the API server computes it; exit 1 when anything
//! would change, 0 when nothing would, 2 on errors (as `kubectl diff`).

use std::process::ExitCode;

use serde_json::json;

use super::located::locate;
use super::revisions;
use super::{EXIT_CHANGES, EXIT_ERROR, deploy};
use crate::cli::{DiffArgs, DiffFormat, SetArgs};
use crate::cluster::apply::phase_of;
use crate::cluster::applyset::ApplySet;
use crate::cluster::plan::{Change, Operation, Plan, PlanOptions, plan};
use crate::cluster::revision;
use crate::manifest::phase::phase_name;
use crate::ui;
use crate::ui::diff::{change_diff, operation_word, summary_table};
use crate::ui::markdown::{COMMENT_LIMIT, markdown_report};
use crate::vault::identity::IdentityChain;
use crate::vault::redact::Redactor;

pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    if let Some(number) = args.revision {
        return deploy::runtime()?.block_on(diff_revision(args, number));
    }
    let prepared = deploy::runtime()?.block_on(deploy::prepare(&args.input, &args.cluster, None))?;
    report(
        args.output,
        &prepared.plan,
        &prepared.redactor,
        &prepared.context,
        prepared.applyset.as_ref(),
    )
}

/// `diff --revision N`: the stored revision's manifest planned against the live state, as a rollback
/// to it would apply it. Its Secrets are compared when a key opens them, and left out otherwise.
async fn diff_revision(args: &DiffArgs, number: u64) -> anyhow::Result<ExitCode> {
    let set_args = SetArgs {
        project: args.input.project.clone(),
        target: args.input.target.clone(),
        namespace: args.input.namespace.clone(),
        applyset: args.cluster.applyset.clone(),
        connection: args.cluster.connection.clone(),
    };
    let located = locate(&set_args).await?;
    let history = revision::read_all(&located.resources.client(), &located.set).await?;
    let Some(stored) = history.get(number) else {
        anyhow::bail!(
            "there is no revision {number} of Secret/{} in {}",
            located.set.name,
            located.set.namespace
        );
    };
    let mut identities = IdentityChain::from_process(args.input.identity.identity.as_deref());
    let (objects, left_out, unrestorable) =
        revisions::restorable(&located.resources, &stored.record, None, &mut identities).await;
    if let Some(why) = unrestorable {
        ui::warn(&format!("{why}; those Secrets are left out of the diff"));
    }
    let mut plaintexts = Vec::new();
    for object in objects.iter().filter(|o| o["kind"] == "Secret") {
        crate::vault::collect_plaintexts(&object["data"], &mut plaintexts);
        crate::vault::collect_plaintexts(&object["stringData"], &mut plaintexts);
    }
    let redactor = Redactor::new(plaintexts.iter().map(|s| s.as_str()));
    let options = PlanOptions {
        concurrency: located.concurrency.most(),
        chunk_size: args.cluster.chunk_size,
        force_conflicts: args.cluster.force_conflicts,
        full_dry_run: args.cluster.full_dry_run,
        readiness: None,
    };
    let mut plan = plan(
        &located.resources,
        objects,
        &stored.record.namespace,
        Some(&located.set),
        options,
    )
    .await?;
    plan.changes
        .retain(|c| !(c.operation == Operation::Prune && left_out.contains(&c.object)));
    report(
        args.output,
        &plan,
        &redactor,
        &located.cluster.context,
        Some(&located.set),
    )
}

/// Shows a plan as `diff` does, and says how to exit.
fn report(
    output: DiffFormat,
    plan: &Plan,
    redactor: &Redactor,
    context: &str,
    applyset: Option<&ApplySet>,
) -> anyhow::Result<ExitCode> {
    let headline = format!(
        "context {context}{}",
        applyset.map_or_else(String::new, |set| format!(
            ", ApplySet Secret/{} in {}",
            set.name, set.namespace
        ))
    );
    if !plan.failures.is_empty() {
        let failures = redactor.redact(&deploy::failures_text(plan));
        eprint!("error: {failures}");
        if output == DiffFormat::Markdown {
            let report = format!("### kdeploy diff failed: {headline}\n\n```\n{failures}```\n");
            super::write_stdout(&report)?;
            append_step_summary(&report)?;
        }
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    deploy::warn_about_gitops(plan, super::apply::GITOPS_CONSEQUENCE);
    let text = match output {
        DiffFormat::Markdown => {
            let report = markdown_report(plan, redactor, &headline, COMMENT_LIMIT);
            append_step_summary(&report)?;
            report
        }
        DiffFormat::Text => {
            let color = ui::stdout_color();
            let mut text: String = plan.changes.iter().map(|c| change_diff(c, redactor, color)).collect();
            text.push_str(&summary_table(plan));
            text
        }
        DiffFormat::Json => {
            let changes: Vec<_> = plan
                .changes
                .iter()
                .map(|c| {
                    json!({
                        "operation": operation_word(c.operation),
                        "object": c.object,
                        "phase": (c.operation != Operation::Prune).then(|| phase_name(phase_of(c))),
                        "pending": c.pending,
                        "checked_by": checked_by(c),
                        "diff": change_diff(c, redactor, false),
                    })
                })
                .collect();
            let report = json!({
                "context": context,
                "applyset": applyset.map(|set| &set.id),
                "changes": changes,
                "has_changes": plan.has_changes(),
            });
            format!("{}\n", serde_json::to_string_pretty(&report)?)
        }
    };
    super::write_stdout(&text)?;
    Ok(if plan.has_changes() {
        ExitCode::from(EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}

/// Appends the report to GitHub Actions' job summary, when the job has one.
fn append_step_summary(report: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot open $GITHUB_STEP_SUMMARY ({})",
                std::path::Path::new(&path).display()
            )
        })?;
    writeln!(file, "{report}").with_context(|| "cannot write $GITHUB_STEP_SUMMARY".to_owned())
}

/// How the change was found: the server's dry run, or (for an unchanged object) the proof the last apply
/// left ([`crate::cluster::unchanged`]); none for a prune or an object the server could not check yet.
fn checked_by(change: &Change) -> Option<&'static str> {
    if change.proven {
        Some("last-apply")
    } else if change.operation == Operation::Prune || change.pending.is_some() {
        None
    } else {
        Some("dry-run")
    }
}
