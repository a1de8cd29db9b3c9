//! `kdeploy diff`: what applying would change, as the API server computes it; exit 1 when anything
//! would change, 0 when nothing would, 2 on errors (as `kubectl diff`).

use std::process::ExitCode;

use serde_json::json;

use super::{EXIT_CHANGES, EXIT_ERROR, deploy};
use crate::cli::{DiffArgs, ReportFormat};
use crate::cluster::apply::phase_of;
use crate::cluster::plan::Operation;
use crate::manifest::phase::phase_name;
use crate::ui;
use crate::ui::diff::{change_diff, operation_word, summary_table};

pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let prepared = deploy::runtime()?.block_on(deploy::prepare(&args.input, &args.cluster))?;
    let plan = &prepared.plan;
    let redactor = &prepared.rendered.redactor;
    if !plan.failures.is_empty() {
        eprint!("error: {}", redactor.redact(&deploy::failures_text(plan)));
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let text = match args.output {
        ReportFormat::Text => {
            let color = ui::stdout_color();
            let mut text: String = plan.changes.iter().map(|c| change_diff(c, redactor, color)).collect();
            text.push_str(&summary_table(plan));
            text
        }
        ReportFormat::Json => {
            let changes: Vec<_> = plan
                .changes
                .iter()
                .map(|c| {
                    json!({
                        "operation": operation_word(c.operation),
                        "object": c.object,
                        "phase": (c.operation != Operation::Prune).then(|| phase_name(phase_of(c))),
                        "pending": c.pending,
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
