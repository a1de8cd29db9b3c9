//! Gathering what a render needs from the command line and the project: which project and target,
//! which templates, the merged values, the environment and the decrypted secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::cli::InputArgs;
use crate::manifest::Manifest;
use crate::project::{DEFAULT_TEMPLATES, PROJECT_FILE, Project, Selection};
use crate::template::{TemplateContext, TemplateSet};
use crate::ui;
use crate::values::{Env, ValueFlags, Values, load_values};
use crate::vault::identity::IdentityChain;
use crate::vault::redact::Redactor;
use crate::vault::{self, Secrets};

/// Everything a render reads, resolved.
#[derive(Debug)]
pub struct Inputs {
    pub selection: Selection,
    pub values: Values,
    pub env: Env,
    pub secrets: Secrets,
}

/// The result of a render, with the inputs that produced it.
#[derive(Debug)]
pub struct RenderedInputs {
    pub inputs: Inputs,
    pub manifest: Manifest,
    /// Masks vault values wherever they appear (diffs, logs, errors).
    pub redactor: Redactor,
}

impl Inputs {
    pub fn gather(args: &InputArgs) -> anyhow::Result<Inputs> {
        let mut template_paths: Vec<PathBuf> = args.paths.iter().chain(&args.files).cloned().collect();
        let project_file = match &args.project {
            Some(file) => Some(file.clone()),
            None => take_project_path(&mut template_paths).or_else(|| Project::find_in(Path::new("."))),
        };
        let mut selection = match &project_file {
            Some(file) => Project::load(file)?.select(args.target.as_deref())?,
            None => {
                if let Some(target) = &args.target {
                    return Err(crate::project::ProjectError::TargetWithoutProject(target.clone()).into());
                }
                Selection::default()
            }
        };
        if !template_paths.is_empty() {
            selection.templates = template_paths;
        } else if selection.templates.is_empty() {
            let default = PathBuf::from(DEFAULT_TEMPLATES);
            if !default.is_dir() {
                bail!(
                    "no templates: pass template files or folders, or run where there is a {PROJECT_FILE} or a {DEFAULT_TEMPLATES}/ folder"
                );
            }
            selection.templates = vec![default];
        }
        if args.namespace.is_some() {
            selection.namespace = args.namespace.clone();
        }
        selection.env_files.extend(args.env_files.iter().cloned());
        selection.secrets_files.extend(args.secrets_files.iter().cloned());

        let process_env = process_environment();
        let flags = ValueFlags {
            project_files: selection.values_files.clone(),
            files: args.data_values_files.clone(),
            env_prefixes: args.data_values_env.clone(),
            env_yaml_prefixes: args.data_values_env_yaml.clone(),
            strings: args.data_values.clone(),
            yamls: args.data_values_yaml.clone(),
            file_contents: args.data_value_files.clone(),
        };
        let values = load_values(&flags, &process_env)?;
        let mut identities = IdentityChain::from_process(args.identity.identity.as_deref());
        let env = Env::load(&selection.env_files, process_env, &mut |path| {
            vault::decrypt_age_file(path, &mut identities).map_err(|e| e.to_string())
        })?;
        let secrets = if selection.secrets_files.is_empty() {
            Secrets::default()
        } else {
            Secrets::load(&selection.secrets_files, &selection.recipients, &mut identities)?
        };
        for warning in &secrets.warnings {
            ui::warn(warning);
        }
        Ok(Inputs {
            selection,
            values,
            env,
            secrets,
        })
    }

    /// Renders the templates into a validated manifest.
    pub fn render(self) -> anyhow::Result<RenderedInputs> {
        let selection = &self.selection;
        let data_files: Vec<PathBuf> = selection
            .values_files
            .iter()
            .chain(&selection.env_files)
            .chain(&selection.secrets_files)
            .cloned()
            .collect();
        let templates = TemplateSet::load(&selection.templates, &data_files)?;
        let context = TemplateContext {
            values: self.values.to_json().context("data values")?,
            env: self.env.vars.clone(),
            secrets: self.secrets.values.clone(),
        };
        let rendered = templates.render(&context)?;
        for warning in &rendered.warnings {
            ui::warn(warning);
        }
        let manifest = Manifest::from_documents(rendered.documents, self.selection.namespace.as_deref())?;
        let redactor = Redactor::from_secrets(&self.secrets);
        for (object, path) in manifest.secret_placements(&|text| redactor.contains_secret(text)) {
            ui::warn(&format!(
                "a vault value lands in {} at {path}; outside a Secret's data or stringData it is stored and shown in plain text",
                object
            ));
        }
        Ok(RenderedInputs {
            inputs: self,
            manifest,
            redactor,
        })
    }
}

/// A PATH that is a project (a folder holding kdeploy.yaml, or kdeploy.yaml itself) selects that
/// project instead of naming templates.
fn take_project_path(paths: &mut Vec<PathBuf>) -> Option<PathBuf> {
    let position = paths.iter().position(|p| {
        p.file_name().is_some_and(|n| n == PROJECT_FILE) && p.is_file() || Project::find_in(p).is_some() && p.is_dir()
    })?;
    let path = paths.remove(position);
    Some(if path.is_dir() { path.join(PROJECT_FILE) } else { path })
}

/// The process environment, leaving out variables that are not valid UTF-8.
fn process_environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}
