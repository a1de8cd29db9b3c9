//! `kdeploy completions SHELL` and `kdeploy man`, both generated from the clap definitions, and
//! `kdeploy schema`, the JSON Schema of kdeploy.yaml generated from the types that parse it.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "kdeploy", &mut out);
    super::write_stdout(&String::from_utf8_lossy(&out))?;
    Ok(ExitCode::SUCCESS)
}

pub fn man() -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    for sub in Cli::command().get_subcommands() {
        let name = format!("kdeploy-{}", sub.get_name());
        clap_mangen::Man::new(sub.clone().name(name)).render(&mut out)?;
    }
    super::write_stdout(&String::from_utf8_lossy(&out))?;
    Ok(ExitCode::SUCCESS)
}

/// The JSON Schema (2020-12) of kdeploy.yaml, for editors (yaml-language-server:
/// `# yaml-language-server: $schema=kdeploy.schema.json`).
pub fn schema() -> anyhow::Result<ExitCode> {
    super::write_stdout(&format!("{}\n", serde_json::to_string_pretty(&project_schema())?))?;
    Ok(ExitCode::SUCCESS)
}

/// kdeploy.yaml's schema, as `kdeploy schema` prints it.
pub fn project_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(crate::project::ProjectConfig)).unwrap_or_default();
    schema["title"] = serde_json::json!("kdeploy.yaml");
    schema
}
