//! `kdeploy values`: the merged data values, each with where it came from, and the names of the vault
//! values (masked); with `--schema`, a starting JSON Schema for them.

use std::process::ExitCode;

use serde_json::{Map, Value as Json};

use crate::cli::{OutputFormat, ValuesArgs};

pub fn run(args: &ValuesArgs) -> anyhow::Result<ExitCode> {
    let inputs = super::Inputs::gather(&args.input)?;
    if args.schema {
        let schema = crate::check::values_schema::infer(&inputs.values.to_json()?);
        let text = match args.output {
            OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&schema)?),
            OutputFormat::Yaml => crate::yaml::emit::json_to_yaml(&schema)?,
        };
        super::write_stdout(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let leaves = inputs.values.leaves();
    let text = match args.output {
        OutputFormat::Json => {
            let origins: Map<String, Json> = leaves
                .iter()
                .map(|(path, _, origin)| (path.clone(), origin.map_or(Json::Null, |o| Json::String(o.to_string()))))
                .collect();
            let secrets: Map<String, Json> = inputs
                .secrets
                .origins
                .iter()
                .map(|(key, file)| (key.clone(), Json::String(file.display().to_string())))
                .collect();
            let out = serde_json::json!({ "values": inputs.values.to_json()?, "origins": origins, "secrets": secrets });
            format!("{}\n", serde_json::to_string_pretty(&out)?)
        }
        OutputFormat::Yaml => {
            let mut text = String::new();
            for (path, value, origin) in &leaves {
                let origin = origin.map_or_else(String::new, |o| format!("  # {o}"));
                text.push_str(&format!("{path}: {value}{origin}\n"));
            }
            if text.is_empty() {
                text.push_str("# no data values\n");
            }
            for (key, file) in &inputs.secrets.origins {
                text.push_str(&format!(
                    "secrets.{key}: {}  # {}\n",
                    crate::vault::redact::MASK,
                    file.display()
                ));
            }
            text
        }
    };
    super::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}
