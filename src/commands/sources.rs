//! `kdeploy sources`: each source of the project with its object count and a digest of its objects,
//! so that "what did this chart upgrade change?" starts with a glance.

use std::process::ExitCode;

use crate::cli::{ReportFormat, SourcesArgs};
use crate::source;

pub fn run(args: &SourcesArgs) -> anyhow::Result<ExitCode> {
    let inputs = super::Inputs::gather(&args.input)?;
    let specs = inputs.selection.sources.clone();
    let rendered = inputs.render()?;
    let summaries = source::summaries(&specs, &rendered.manifest.objects);
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
