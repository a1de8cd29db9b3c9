//! Showing a plan: unified YAML diffs (coloured on a terminal), Secret values masked, and a summary
//! table.
//!
//! For a Secret, `data` and `stringData` values are replaced before diffing: the diff says which keys
//! were added, changed or removed, never a value. Any value from a vault is masked wherever else it
//! appears.

use serde_json::{Map, Value as Json};
use similar::{ChangeTag, TextDiff};

use crate::cluster::apply::phase_of;
use crate::cluster::plan::{Change, Operation, Plan};
use crate::manifest::phase;
use crate::vault::redact::{MASK, Redactor};
use crate::yaml::emit::json_to_yaml;

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn is_secret(change: &Change) -> bool {
    change.object.kind == "Secret" && change.object.group.is_empty()
}

/// Replaces Secret values with markers that show only whether each key was added, changed or removed.
pub fn mask_secret(live: Option<&Json>, desired: Option<&Json>) -> (Option<Json>, Option<Json>) {
    let (mut live, mut desired) = (live.cloned(), desired.cloned());
    for field in ["data", "stringData"] {
        let old: Map<String, Json> = live
            .as_ref()
            .and_then(|l| l[field].as_object().cloned())
            .unwrap_or_default();
        let new: Map<String, Json> = desired
            .as_ref()
            .and_then(|d| d[field].as_object().cloned())
            .unwrap_or_default();
        let marker = |changed: bool, side: &str| {
            Json::String(if changed {
                format!("{MASK} ({side})")
            } else {
                MASK.to_owned()
            })
        };
        if let Some(live) = live
            .as_mut()
            .and_then(|l| l.get_mut(field))
            .and_then(Json::as_object_mut)
        {
            for (key, value) in live.iter_mut() {
                *value = marker(new.get(key).is_some_and(|n| n != value), "before");
            }
        }
        if let Some(desired) = desired
            .as_mut()
            .and_then(|d| d.get_mut(field))
            .and_then(Json::as_object_mut)
        {
            for (key, value) in desired.iter_mut() {
                *value = marker(old.get(key).is_some_and(|o| o != value), "after");
            }
        }
    }
    (live, desired)
}

/// A place that holds a vault value in the manifest is masked in the live object too: after a
/// rotation, the live side holds the previous secret, which the redactor no longer knows.
fn mask_where_desired_holds_a_secret(live: &mut Json, desired: &Json, redactor: &Redactor) {
    match (live, desired) {
        (Json::Object(live), Json::Object(desired)) => {
            for (key, wanted) in desired {
                if let Some(current) = live.get_mut(key) {
                    mask_where_desired_holds_a_secret(current, wanted, redactor);
                }
            }
        }
        (Json::Array(live), Json::Array(desired)) => {
            for (current, wanted) in live.iter_mut().zip(desired) {
                mask_where_desired_holds_a_secret(current, wanted, redactor);
            }
        }
        (current @ Json::String(_), Json::String(wanted))
            if redactor.contains_secret(wanted) && current.as_str() != Some(wanted) =>
        {
            *current = Json::String(format!("{MASK} (before)"));
        }
        _ => {}
    }
}

fn yaml_of(value: Option<&Json>) -> String {
    value.map(|v| json_to_yaml(v).unwrap_or_default()).unwrap_or_default()
}

/// The unified diff of one change, masked; empty for an unchanged object.
pub fn change_diff(change: &Change, redactor: &Redactor, color: bool) -> String {
    if change.operation == Operation::Unchanged {
        return String::new();
    }
    let (mut live, desired) = if is_secret(change) {
        mask_secret(change.live.as_ref(), change.desired.as_ref())
    } else {
        (change.live.clone(), change.desired.clone())
    };
    if let (Some(live), Some(desired)) = (live.as_mut(), desired.as_ref()) {
        mask_where_desired_holds_a_secret(live, desired, redactor);
    }
    let (old, new) = (yaml_of(live.as_ref()), yaml_of(desired.as_ref()));
    let label = change.object.to_string();
    let diff = TextDiff::from_lines(&old, &new);
    let mut out = String::new();
    let paint = |code: &str, text: &str| {
        if color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    };
    out.push_str(&paint(
        BOLD,
        &format!(
            "--- {label} (live)\n+++ {label} ({})\n",
            operation_word(change.operation)
        ),
    ));
    if change.operation == Operation::Replace {
        out.push_str("# the server refuses this change in place (an immutable field): apply deletes the object and creates it again\n");
    }
    if let Some(reason) = &change.pending {
        out.push_str(&format!("# not checked by the server yet: {reason}\n"));
    }
    for group in diff.grouped_ops(3) {
        let (first, last) = (
            group.first().expect("groups are not empty"),
            group.last().expect("groups are not empty"),
        );
        let (old_range, new_range) = (
            first.old_range().start..last.old_range().end,
            first.new_range().start..last.new_range().end,
        );
        out.push_str(&paint(
            CYAN,
            &format!(
                "@@ -{},{} +{},{} @@\n",
                old_range.start + 1,
                old_range.len(),
                new_range.start + 1,
                new_range.len()
            ),
        ));
        for op in group {
            for line in diff.iter_changes(&op) {
                let text = redactor.redact(line.value().trim_end_matches('\n'));
                match line.tag() {
                    ChangeTag::Delete => out.push_str(&paint(RED, &format!("-{text}\n"))),
                    ChangeTag::Insert => out.push_str(&paint(GREEN, &format!("+{text}\n"))),
                    ChangeTag::Equal => out.push_str(&format!(" {text}\n")),
                }
            }
        }
    }
    out
}

pub fn operation_word(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Unchanged => "unchanged",
        Operation::Prune => "prune",
        Operation::Replace => "replace",
    }
}

/// A table of every object and what happens to it (and in which phase, when there are several), then
/// the counts.
pub fn summary_table(plan: &Plan) -> String {
    let phased = plan
        .changes
        .iter()
        .any(|c| c.operation != Operation::Prune && phase_of(c) != phase::MAIN);
    let rows: Vec<Vec<String>> = plan
        .changes
        .iter()
        .map(|c| {
            let mut row = vec![operation_word(c.operation).to_owned()];
            if phased {
                row.push(match c.operation {
                    Operation::Prune => "-".to_owned(),
                    _ => phase::phase_name(phase_of(c)),
                });
            }
            row.extend([
                c.object.kind.clone(),
                c.object.namespace.clone().unwrap_or_else(|| "-".to_owned()),
                c.object.name.clone(),
            ]);
            row
        })
        .collect();
    let mut header = vec!["OPERATION".to_owned()];
    if phased {
        header.push("PHASE".to_owned());
    }
    header.extend(["KIND", "NAMESPACE", "NAME"].map(str::to_owned));
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} to create, {} to update, {} unchanged, {} to prune\n",
        plan.count(Operation::Create),
        plan.count(Operation::Update),
        plan.count(Operation::Unchanged),
        plan.count(Operation::Prune)
    ));
    if plan.count(Operation::Replace) > 0 {
        out.insert_str(
            out.len() - 1,
            &format!(", {} to replace (delete and re-create)", plan.count(Operation::Replace)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rotated_secret_is_masked_on_the_live_side_too() {
        let redactor = Redactor::new(["new-secret-value"]);
        let mut live = json!({"data": {"url": "db://old-secret-value@h", "plain": "a"}});
        mask_where_desired_holds_a_secret(
            &mut live,
            &json!({"data": {"url": "db://new-secret-value@h", "plain": "b"}}),
            &redactor,
        );
        assert_eq!(live, json!({"data": {"url": "<redacted> (before)", "plain": "a"}}));
    }

    #[test]
    fn secrets_show_which_keys_changed_but_never_values() {
        let live = json!({"data": {"same": "YQ==", "changed": "b2xk", "removed": "eA=="}});
        let desired = json!({"data": {"same": "YQ==", "changed": "bmV3", "added": "eQ=="}});
        let (live, desired) = mask_secret(Some(&live), Some(&desired));
        assert_eq!(
            live.unwrap()["data"],
            json!({"same": "<redacted>", "changed": "<redacted> (before)", "removed": "<redacted>"})
        );
        assert_eq!(
            desired.unwrap()["data"],
            json!({"same": "<redacted>", "changed": "<redacted> (after)", "added": "<redacted>"})
        );
    }
}
