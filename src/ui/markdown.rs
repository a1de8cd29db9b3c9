//! The diff as Markdown for a pull-request comment or a CI job summary: a headline, the table of
//! changes, and each changed object's unified diff in a collapsed block, masked as in the terminal.
//! It is cut to fit a comment (GitHub accepts 65,536 characters): the table always stays whole, and
//! when diffs do not fit, the report says how many were left out.

use crate::cluster::apply::phase_of;
use crate::cluster::plan::{Operation, Plan};
use crate::manifest::phase;
use crate::ui::diff::{change_diff, operation_word};
use crate::vault::redact::Redactor;

/// What a pull-request comment holds, with room to spare for a bot's own words around it.
pub const COMMENT_LIMIT: usize = 60_000;

/// The report; `headline` names what was diffed (context, ApplySet).
pub fn markdown_report(plan: &Plan, redactor: &Redactor, headline: &str, limit: usize) -> String {
    let count = |op: Operation| plan.count(op);
    let mut out = format!(
        "### kdeploy diff: {}\n\n{} to create, {} to update, {} to replace, {} to prune, {} unchanged\n\n",
        escape(headline),
        count(Operation::Create),
        count(Operation::Update),
        count(Operation::Replace),
        count(Operation::Prune),
        count(Operation::Unchanged),
    );
    let changed: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.operation != Operation::Unchanged)
        .collect();
    if changed.is_empty() {
        out.push_str("No changes.\n");
        return out;
    }
    let phased = changed
        .iter()
        .any(|c| c.operation != Operation::Prune && phase_of(c) != phase::MAIN);
    out.push_str(if phased {
        "| operation | phase | kind | namespace | name |\n|---|---|---|---|---|\n"
    } else {
        "| operation | kind | namespace | name |\n|---|---|---|---|\n"
    });
    for change in &changed {
        let object = &change.object;
        let phase_cell = match (phased, change.operation) {
            (false, _) => String::new(),
            (true, Operation::Prune) => " - |".to_owned(),
            (true, _) => format!(" {} |", phase::phase_name(phase_of(change))),
        };
        out.push_str(&format!(
            "| {} |{phase_cell} {} | {} | {} |\n",
            operation_word(change.operation),
            escape(&object.kind),
            escape(object.namespace.as_deref().unwrap_or("-")),
            escape(&object.name),
        ));
    }
    out.push('\n');
    let mut left_out = 0;
    for change in &changed {
        let diff = change_diff(change, redactor, false);
        let block = format!(
            "<details><summary>{} {}</summary>\n\n{}diff\n{}{}\n\n</details>\n\n",
            operation_word(change.operation),
            html_escape(&change.object.to_string()),
            FENCE,
            diff.replace(FENCE, "` ` `"),
            FENCE,
        );
        // Room is kept for the closing note.
        if left_out > 0 || out.len() + block.len() > limit.saturating_sub(300) {
            left_out += 1;
        } else {
            out.push_str(&block);
        }
    }
    if left_out > 0 {
        out.push_str(&format!(
            "_{left_out} of {} diffs were left out to fit a comment ({limit} characters); the table lists every change. \
             Run `kdeploy diff` for all of them._\n",
            changed.len()
        ));
    }
    out
}

const FENCE: &str = "```";

/// A table cell: pipes and line breaks would end it.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::Change;
    use crate::manifest::ObjectRef;
    use serde_json::json;

    fn change(name: &str, operation: Operation, size: usize) -> Change {
        Change {
            object: ObjectRef {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some("ns".into()),
                name: name.into(),
            },
            operation,
            live: (operation != Operation::Create).then(|| json!({"data": {"k": "old"}})),
            desired: Some(json!({"data": {"k": "x".repeat(size)}})),
            pending: None,
            manifest: Some(json!({"metadata": {"name": name}})),
            resolved: None,
            claimed_by: None,
            proven: false,
            restamp: false,
            ready_when_listed: false,
        }
    }

    #[test]
    fn every_change_is_in_the_table_and_diffs_are_cut_to_fit() {
        let plan = Plan {
            changes: (0..20)
                .map(|i| change(&format!("c{i}"), Operation::Update, 5_000))
                .chain([change("same", Operation::Unchanged, 1)])
                .collect(),
            failures: Vec::new(),
        };
        let report = markdown_report(&plan, &Redactor::new(std::iter::empty()), "context dev", 30_000);
        assert!(report.len() <= 30_000, "{}", report.len());
        for i in 0..20 {
            assert!(report.contains(&format!("| update | ConfigMap | ns | c{i} |")));
        }
        assert!(
            !report.contains("| same |"),
            "unchanged objects are counted, not listed"
        );
        let shown = report.matches("<details>").count();
        assert!(shown > 0 && shown < 20);
        assert!(
            report.contains(&format!("_{} of 20 diffs were left out", 20 - shown)),
            "{report}"
        );
    }

    #[test]
    fn vault_values_are_masked_and_cells_cannot_break_the_table() {
        let mut secret = change("a|b", Operation::Create, 1);
        secret.desired = Some(json!({"data": {"k": "s3cret-value"}}));
        let plan = Plan {
            changes: vec![secret],
            failures: Vec::new(),
        };
        let report = markdown_report(&plan, &Redactor::new(["s3cret-value"]), "x", COMMENT_LIMIT);
        assert!(!report.contains("s3cret-value"), "{report}");
        assert!(report.contains("| a\\|b |"), "{report}");
    }
}
