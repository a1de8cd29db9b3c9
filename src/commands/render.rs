//! `kdeploy render`: the YAML stream on stdout, ready for `kubectl apply -f -`.

use std::process::ExitCode;

use crate::cli::{OutputFormat, RenderArgs};

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
