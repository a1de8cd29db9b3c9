//! `kdeploy argocd generate|parameters`: kdeploy as Argo CD's config management plugin, run by
//! argocd-cmp-server in the repo-server's sidecar (deploy/argocd/plugin.yaml). Everything comes from
//! the environment Argo CD gives a plugin:
//!
//! - `ARGOCD_APP_PARAMETERS` (JSON): a `target` string and a `values` map (each value read as YAML, as
//!   `--data-value-yaml` does); the target may also come from the Application's plugin env,
//!   `ARGOCD_ENV_KDEPLOY_TARGET`;
//! - `ARGOCD_APP_NAMESPACE`: the namespace for objects that set none, when the project names none;
//! - `KUBE_VERSION`, `KUBE_API_VERSIONS`: the destination cluster's, for Helm charts' `.Capabilities`.
//!
//! The output is the rendered stream: no ApplySet labels (Argo CD tracks and prunes what it applies)
//! and nothing written anywhere but stdout. Vault files open with the sidecar's identity
//! (`SOPS_AGE_KEY_FILE` from a mounted Secret, or OpenBao/KMS credentials), never with anything from
//! the Application, which its authors control.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value as Json, json};

use super::Inputs;
use crate::cli::{ArgocdCommand, InputArgs};
use crate::project::{PROJECT_FILE, Project};
use crate::source::Capabilities;
use crate::trust;

pub fn run(command: &ArgocdCommand) -> anyhow::Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // A plugin renders other people's repositories: always untrusted, confined to the checkout.
    let root = checkout_root(env("ARGOCD_APP_SOURCE_PATH").as_deref());
    trust::set(trust::policy_from_env(true, root.as_deref(), None));
    match command {
        ArgocdCommand::Generate => generate(&env),
        ArgocdCommand::Parameters => parameters(),
    }
}

/// The root of the checkout Argo CD gives the plugin: the working directory is the Application's
/// path inside it (`ARGOCD_APP_SOURCE_PATH`), so the root is that many folders up.
fn checkout_root(source_path: Option<&str>) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let depth = source_path
        .map(|p| {
            Path::new(p)
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .count()
        })
        .unwrap_or(0);
    cwd.ancestors().nth(depth).map(Path::to_path_buf)
}

/// The `target` and `values` parameters Argo CD passes.
fn read_parameters(text: Option<String>) -> anyhow::Result<(Option<String>, Vec<String>)> {
    let Some(text) = text else {
        return Ok((None, Vec::new()));
    };
    // Argo CD passes `null` when the Application sets no parameters.
    let parameters: Option<Vec<Json>> =
        serde_json::from_str(&text).context("ARGOCD_APP_PARAMETERS is not a JSON list")?;
    let parameters = parameters.unwrap_or_default();
    let mut target = None;
    let mut values = Vec::new();
    for parameter in &parameters {
        match parameter["name"].as_str() {
            Some("target") => target = parameter["string"].as_str().map(str::to_owned),
            Some("values") => {
                for (key, value) in parameter["map"].as_object().into_iter().flatten() {
                    let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                    values.push(format!("{key}={value}"));
                }
            }
            Some(other) => bail!("unknown plugin parameter `{other}`: kdeploy takes `target` and `values`"),
            None => bail!("a plugin parameter without a name in ARGOCD_APP_PARAMETERS"),
        }
    }
    Ok((target, values))
}

fn generate(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<ExitCode> {
    let (target, values) = read_parameters(env("ARGOCD_APP_PARAMETERS"))?;
    let input = InputArgs {
        target: target.or_else(|| env("ARGOCD_ENV_KDEPLOY_TARGET")),
        data_values: crate::cli::DataValueArgs {
            data_values_yaml: values,
            ..Default::default()
        },
        untrusted: true,
        ..Default::default()
    };
    let mut inputs = Inputs::gather(&input)?;
    if inputs.selection.namespace.is_none() {
        inputs.selection.namespace = env("ARGOCD_APP_NAMESPACE");
    }
    // Validation meets the destination cluster's version when kdeploy has its schemas (Argo CD says
    // which it is), else the version kdeploy is built for.
    inputs.validation.kube_version = env("KUBE_VERSION")
        .filter(|version| crate::check::kubernetes::normalize_version(version).is_ok())
        .or(inputs.validation.kube_version.take());
    let facts = env("KUBE_VERSION").map(|version| Capabilities {
        kube_version: if version.starts_with('v') {
            version
        } else {
            format!("v{version}")
        },
        api_versions: env("KUBE_API_VERSIONS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect(),
    });
    let rendered = inputs.render_for(facts.as_ref())?;
    super::write_stdout(&rendered.manifest.to_yaml()?)?;
    Ok(ExitCode::SUCCESS)
}

/// Argo CD's dynamic parameter announcement: what the UI offers for an Application of this project.
fn parameters() -> anyhow::Result<ExitCode> {
    let targets: Vec<String> = match Project::find_in(Path::new(".")) {
        Some(file) => Project::load(&file)?.config.targets.keys().cloned().collect(),
        None => bail!("no {PROJECT_FILE} here: the plugin is for kdeploy projects"),
    };
    let tooltip = if targets.is_empty() {
        "the project defines no targets".to_owned()
    } else {
        format!("one of: {}", targets.join(", "))
    };
    let announcement = json!([
        {"name": "target", "title": "Target", "tooltip": tooltip, "collectionType": "string"},
        {"name": "values", "title": "Data values", "tooltip": "key.path = YAML value, as --data-value-yaml", "collectionType": "map"},
    ]);
    super::write_stdout(&format!("{}\n", serde_json::to_string(&announcement)?))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_a_target_and_data_values() {
        let text =
            r#"[{"name": "target", "string": "prod"}, {"name": "values", "map": {"replicas": "3", "app.tag": "1.2"}}]"#;
        let (target, values) = read_parameters(Some(text.into())).unwrap();
        assert_eq!(target.as_deref(), Some("prod"));
        assert_eq!(values, ["replicas=3", "app.tag=1.2"]);
        assert!(read_parameters(Some(r#"[{"name": "other", "string": "x"}]"#.into())).is_err());
        assert!(read_parameters(Some("{".into())).is_err());
        assert_eq!(read_parameters(None).unwrap(), (None, Vec::new()));
        assert_eq!(read_parameters(Some("null".into())).unwrap(), (None, Vec::new()));
    }
}
