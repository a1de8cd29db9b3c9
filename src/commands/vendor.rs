//! `kdeploy vendor`: copies every remote source (Helm charts from repositories and registries, pinned
//! URLs) into the project's `vendor/` folder. Renders read `vendor/` first, so a CI job with the folder
//! committed renders offline, and the same bytes every time (URLs are checked against their digest).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::VendorArgs;
use crate::source::{SourceContext, SourceKind, helm, remote};
use crate::template::TemplateContext;
use crate::ui;
use crate::vault::redact::Redactor;

pub fn run(args: &VendorArgs) -> anyhow::Result<ExitCode> {
    let inputs = super::Inputs::gather(&args.input)?;
    let Some(project_dir) = inputs.selection.project_dir.clone() else {
        anyhow::bail!("kdeploy vendor needs a project (kdeploy.yaml): vendor/ is written next to it");
    };
    let redactor = Redactor::from_secrets(&inputs.secrets);
    let templates = TemplateContext::default();
    let context = SourceContext {
        project_dir: &project_dir,
        templates: &templates,
        data_files: &[],
        tools: &inputs.selection.tools,
        cluster: None,
        redactor: &redactor,
        cache_dir: crate::util::cache_dir(),
        default_namespace: None,
    };
    let mut vendored = 0;
    for spec in inputs.selection.sources.iter().filter(|s| s.is_remote()) {
        match &spec.kind {
            SourceKind::Url { url, sha256 } => {
                let bytes = remote::fetch_bytes(url, sha256, &project_dir, &context.cache_dir)?;
                let path = remote::stored_path(&remote::vendor_dir(&project_dir), sha256);
                remote::store(&path, &bytes)?;
                ui::note(&format!("{spec} → {}", relative(&path, &project_dir)));
            }
            SourceKind::Helm(chart) => {
                let version = chart
                    .version
                    .as_deref()
                    .with_context(|| format!("{spec} needs a `version:` to be vendored"))?;
                let into = helm::vendor_dir(&project_dir).join(chart.storage_key());
                helm::pull(chart, version, &into, &context)?;
                ui::note(&format!("{spec} → {}", relative(&into, &project_dir)));
            }
            _ => continue,
        }
        vendored += 1;
    }
    ui::note(&format!(
        "{vendored} remote source(s) in {}; commit it to render offline",
        project_dir.join("vendor").display()
    ));
    Ok(ExitCode::SUCCESS)
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}
