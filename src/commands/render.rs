//! `kdeploy render`: the YAML stream on stdout, ready for `kubectl apply -f -`.

use std::process::ExitCode;

use crate::cli::{OutputFormat, RenderArgs, ValidateArgs};

pub fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let inputs = super::Inputs::gather(&args.input)?;
    // Only the case that can surprise is said: a project found in the working directory whose settings
    // apply to templates named on the command line.
    if inputs.explicit_sources
        && inputs
            .project
            .as_ref()
            .is_some_and(|(_, origin)| *origin == super::inputs::ProjectOrigin::WorkingDirectory)
    {
        crate::ui::note(&inputs.project_line());
    }
    let rendered = inputs.render()?;
    let text = match args.output {
        OutputFormat::Yaml => rendered.manifest.to_yaml()?,
        OutputFormat::Json => rendered.manifest.to_json(),
    };
    super::write_stdout(&text)?;
    // The process ends next: freeing every object tree one by one would only delay the exit (tens of
    // milliseconds at 10,000 objects), so the memory goes back with the process instead.
    std::mem::forget(rendered);
    std::mem::forget(text);
    Ok(ExitCode::SUCCESS)
}

/// `kdeploy validate`: render and validate, offline; nothing on stdout, a summary on stderr.
pub fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    if args.input.validation.no_validate {
        anyhow::bail!("`kdeploy validate --no-validate` would check nothing");
    }
    let inputs = super::Inputs::gather(&args.input)?;
    let version = args
        .input
        .validation
        .kube_version
        .clone()
        .unwrap_or_else(|| crate::check::kubernetes::DEFAULT_VERSION.to_owned());
    let rendered = inputs.render()?;
    let objects = &rendered.manifest.objects;
    let custom = objects
        .iter()
        .filter(|o| !crate::check::kubernetes::is_builtin_group(o.group()))
        .count();
    crate::ui::note(&format!(
        "{} object{} valid against Kubernetes {version} ({custom} custom resource{})",
        objects.len(),
        if objects.len() == 1 { "" } else { "s" },
        if custom == 1 { "" } else { "s" },
    ));
    std::mem::forget(rendered);
    Ok(ExitCode::SUCCESS)
}
