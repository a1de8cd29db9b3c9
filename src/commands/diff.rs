//! `kdeploy diff`: what applying would change, as the API server computes it; exit 1 when anything
//! would change, 0 when nothing would, 2 on errors (as `kubectl diff`).

use std::process::ExitCode;

use serde_json::json;

use super::{EXIT_CHANGES, EXIT_ERROR, deploy};
use crate::cli::{DiffArgs, DiffFormat};
use crate::cluster::apply::phase_of;
use crate::cluster::plan::{Change, Operation};
use crate::manifest::phase::phase_name;
use crate::ui;
use crate::ui::diff::{change_diff, operation_word, summary_table};
use crate::ui::markdown::{COMMENT_LIMIT, markdown_report};

pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let prepared = deploy::runtime()?.block_on(deploy::prepare(&args.input, &args.cluster, None))?;
    let plan = &prepared.plan;
    let redactor = &prepared.redactor;
    let headline = format!(
        "context {}{}",
        prepared.context,
        prepared.applyset.as_ref().map_or_else(String::new, |set| format!(
            ", ApplySet Secret/{} in {}",
            set.name, set.namespace
        ))
    );
    if !plan.failures.is_empty() {
        let failures = redactor.redact(&deploy::failures_text(plan));
        eprint!("error: {failures}");
        if args.output == DiffFormat::Markdown {
            let report = format!("### kdeploy diff failed: {headline}\n\n```\n{failures}```\n");
            super::write_stdout(&report)?;
            append_step_summary(&report)?;
        }
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let text = match args.output {
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
                "context": prepared.context,
                "applyset": prepared.applyset.as_ref().map(|set| &set.id),
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
