//! `kdeploy sources`: each source of the project with its object count and a digest of its objects,
//! so that "what did this chart upgrade change?" starts with a glance.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::cli::{ReportFormat, SourcesArgs};
use crate::manifest::Object;
use crate::source::SourceSpec;

pub fn run(args: &SourcesArgs) -> anyhow::Result<ExitCode> {
    let inputs = super::Inputs::gather(&args.input)?;
    let specs = inputs.selection.sources.clone();
    let rendered = inputs.render()?;
    let summaries = summaries(&specs, &rendered.manifest.objects);
    let text = match args.output {
        ReportFormat::Json => {
            let mut text = serde_json::to_string_pretty(&summaries)?;
            text.push('\n');
            text
        }
        ReportFormat::Text => {
            let width = summaries
                .iter()
                .map(|s| s.source.chars().count())
                .max()
                .unwrap_or(0)
                .max(6);
            let mut text = format!(
                "{:<width$}  {:<16}  {:>7}  DIGEST (sha256)\n",
                "SOURCE", "NAMESPACE", "OBJECTS"
            );
            for summary in &summaries {
                text.push_str(&format!(
                    "{:<width$}  {:<16}  {:>7}  {}\n",
                    summary.source,
                    summary.namespace.as_deref().unwrap_or("-"),
                    summary.objects,
                    &summary.digest[..16]
                ));
            }
            text.push_str(&format!(
                "{} objects from {} sources\n",
                rendered.manifest.objects.len(),
                summaries.len()
            ));
            text
        }
    };
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// What `kdeploy sources` shows of one source.
#[derive(Debug, Clone, serde::Serialize)]
struct Summary {
    source: String,
    namespace: Option<String>,
    objects: usize,
    /// sha256 of the source's objects as kdeploy will apply them (after patches and labels).
    digest: String,
}

/// One summary per source, from the objects of the finished manifest.
fn summaries(specs: &[SourceSpec], objects: &[Object]) -> Vec<Summary> {
    let mut by_source: BTreeMap<usize, Vec<&Json>> = BTreeMap::new();
    for object in objects {
        by_source.entry(object.source.source).or_default().push(&object.value);
    }
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let values = by_source.remove(&i).unwrap_or_default();
            let mut hasher = Sha256::new();
            for value in &values {
                hasher.update(serde_json::to_vec(value).unwrap_or_default());
                hasher.update(b"\n");
            }
            Summary {
                source: spec.to_string(),
                namespace: spec.namespace.clone(),
                objects: values.len(),
                digest: crate::util::hex(&hasher.finalize()),
            }
        })
        .collect()
}
