//! `kdeploy history`: the project's revisions, newest first, with what each changed (counts by kind,
//! and which objects), who, when, which commit and the outcome; `kdeploy history show N` prints one
//! revision's manifest with its Secrets masked (their values are sealed in the revision, and this
//! command never opens them).

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::{Value as Json, json};

use super::deploy;
use super::located::locate;
use super::status::{headline, summary_json};
use crate::cli::{HistoryArgs, HistoryCommand, ReportFormat, SetArgs};
use crate::cluster::plan::Operation;
use crate::cluster::revision::{self, MASK, STUB_FIELD, Stored};
use crate::ui::diff::operation_word;

pub fn run(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        Some(HistoryCommand::Show { revision, set, output }) => show(*revision, set, *output),
        None => list(&args.set, args.output),
    }
}

fn list(set: &SetArgs, output: ReportFormat) -> anyhow::Result<ExitCode> {
    deploy::runtime()?.block_on(async {
        let located = locate(set).await?;
        let history = revision::read_all(&located.resources.client(), &located.set).await?;
        for skipped in &history.skipped {
            crate::ui::warn(skipped);
        }
        let text = if output == ReportFormat::Json {
            let revisions: Vec<Json> = history
                .revisions
                .iter()
                .map(|stored| {
                    let mut entry = summary_json(stored);
                    entry["changes"] = json!(stored.record.changes);
                    entry["message"] = json!(stored.record.message);
                    entry["stored_bytes"] = json!(stored.stored_bytes);
                    entry
                })
                .collect();
            format!("{}\n", serde_json::to_string_pretty(&json!({"revisions": revisions}))?)
        } else if history.revisions.is_empty() {
            format!(
                "no revisions recorded for Secret/{} in {}\n",
                located.set.name, located.set.namespace
            )
        } else {
            history.revisions.iter().map(entry_text).collect()
        };
        super::write_stdout(&text)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// A revision's entry: its headline, its changes counted by kind, and the objects changed.
fn entry_text(stored: &Stored) -> String {
    let record = &stored.record;
    let mut text = format!("{}\n", headline(stored));
    if let Some(message) = &record.message {
        text.push_str(&format!("  failed: {message}\n"));
    }
    let mut by_operation: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for change in &record.changes {
        *by_operation
            .entry(operation_word(change.operation))
            .or_default()
            .entry(change.object.kind.as_str())
            .or_default() += 1;
    }
    if by_operation.is_empty() {
        text.push_str("  no changes\n");
    }
    for (operation, kinds) in &by_operation {
        let kinds: Vec<String> = kinds.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
        text.push_str(&format!("  {operation}: {}\n", kinds.join(", ")));
    }
    for change in record.changes.iter().filter(|c| c.operation != Operation::Unchanged) {
        text.push_str(&format!("    {} {}\n", operation_word(change.operation), change.object));
    }
    text
}

fn show(number: u64, set: &SetArgs, output: ReportFormat) -> anyhow::Result<ExitCode> {
    deploy::runtime()?.block_on(async {
        let located = locate(set).await?;
        let history = revision::read_all(&located.resources.client(), &located.set).await?;
        let Some(stored) = history.get(number) else {
            let kept: Vec<String> = history.revisions.iter().map(|r| r.record.number.to_string()).collect();
            anyhow::bail!(
                "there is no revision {number} of Secret/{} in {} (kept: {})",
                located.set.name,
                located.set.namespace,
                if kept.is_empty() {
                    "none".to_owned()
                } else {
                    kept.join(", ")
                }
            );
        };
        let objects: Vec<Json> = stored.record.objects.iter().map(masked).collect();
        let text = if output == ReportFormat::Json {
            let mut record = serde_json::to_value(&stored.record)?;
            record["objects"] = Json::Array(objects);
            record["outcome"] = json!(stored.outcome.as_str());
            // The sealed blob is ciphertext, but it is no one's business on a terminal.
            if record["sealed"].is_string() {
                record["sealed"] = json!(format!(
                    "({} bytes, SOPS JSON, sealed to the vault's recipients)",
                    stored.record.sealed.as_ref().map_or(0, String::len)
                ));
            }
            format!("{}\n", serde_json::to_string_pretty(&record)?)
        } else {
            let mut text = format!("# {}\n", headline(stored));
            text.push_str(&crate::yaml::emit::to_yaml_stream(objects.iter())?);
            text
        };
        super::write_stdout(&text)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// A stored object as shown: a stub without its marker, and with every value masked.
fn masked(object: &Json) -> Json {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut()
        && map.remove(STUB_FIELD).is_some()
    {
        for field in ["data", "stringData"] {
            if let Some(values) = map.get_mut(field).and_then(Json::as_object_mut) {
                values.values_mut().for_each(|v| *v = Json::String(MASK.into()));
            }
        }
    }
    object
}
