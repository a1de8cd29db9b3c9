//! `kdeploy render`: the YAML stream on stdout, ready for `kubectl apply -f -`.

use std::process::ExitCode;

use crate::cli::{OutputFormat, RenderArgs};

pub fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let rendered = super::Inputs::gather(&args.input)?.render()?;
    let text = match args.output {
        OutputFormat::Yaml => rendered.manifest.to_yaml()?,
        OutputFormat::Json => rendered.manifest.to_json(),
    };
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}
