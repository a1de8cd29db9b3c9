//! Gathering what a render needs from the command line and the project: which project and target,
//! which templates, the merged values, the environment and the decrypted secrets; at render time, the
//! secret references among the values and env-file variables are resolved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::check;
use crate::cli::{InputArgs, ValidationArgs};
use crate::manifest::{Manifest, checksum};
use crate::project::{DEFAULT_TEMPLATES, PROJECT_FILE, Project, Selection};
use crate::source::{self, Capabilities, SourceContext, SourceKind, SourceSpec};
use crate::template::TemplateContext;
use crate::trust;
use crate::ui;
use crate::values::{Env, Origin, ValueFlags, Values, load_values};
use crate::vault::identity::IdentityChain;
use crate::vault::keys::KeyServices;
use crate::vault::redact::Redactor;
use crate::vault::refs;
use crate::vault::{self, Secrets};

/// How the project in use was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectOrigin {
    /// `-p`/`--project` or `KDEPLOY_PROJECT`.
    Flag,
    /// A PATH argument that is a project folder or file.
    Path,
    /// `./kdeploy.yaml`, found in the working directory.
    WorkingDirectory,
}

/// Everything a render reads, resolved.
#[derive(Debug)]
pub struct Inputs {
    pub selection: Selection,
    /// The project file in use and how it was chosen.
    pub project: Option<(PathBuf, ProjectOrigin)>,
    /// Sources named on the command line (templates, `-m`, `-k`) replace the project's: the objects
    /// are then a part of the project at most, never the whole of it.
    pub explicit_sources: bool,
    pub values: Values,
    pub env: Env,
    pub secrets: Secrets,
    /// Bounds the render's time and memory until it is done (see [`trust::watch`]).
    watchdog: Option<trust::Watchdog>,
    pub validation: ValidationArgs,
    /// Set by diff and apply, which validate against the schemas the cluster serves once they know
    /// which group-versions the manifest uses ([`RenderedInputs::validate`]).
    pub validate_later: bool,
}

/// The result of a render, with the inputs that produced it.
#[derive(Debug)]
pub struct RenderedInputs {
    pub inputs: Inputs,
    pub manifest: Manifest,
    /// Masks vault values wherever they appear (diffs, logs, errors).
    pub redactor: Redactor,
    /// What places a wrong field at the line that wrote it.
    origins: RenderOrigins,
}

impl RenderedInputs {
    /// Validates the manifest (unless `--no-validate`) against `catalog` (the schemas a connected
    /// cluster serves), else the embedded schemas of the version asked for; the stream's own CRDs and
    /// the project's schema folders come on top. Every error is placed where it was written.
    pub fn validate(&self, catalog: Option<check::Catalog>) -> anyhow::Result<()> {
        let args = &self.inputs.validation;
        if args.no_validate {
            return Ok(());
        }
        validate(&self.manifest, catalog, args, &self.inputs.selection, &self.origins)
    }
}

impl Inputs {
    pub fn gather(args: &InputArgs) -> anyhow::Result<Inputs> {
        // The first policy set wins: `kdeploy argocd` sets its own before it gets here.
        let root_hint = args
            .project
            .as_deref()
            .and_then(Path::parent)
            .or_else(|| {
                args.paths
                    .iter()
                    .chain(&args.files)
                    .find(|p| p.is_dir())
                    .map(PathBuf::as_path)
            })
            .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
            .unwrap_or(Path::new("."));
        trust::set(trust::policy_from_env(
            args.untrusted,
            Some(&trust::repository_root(root_hint)),
            args.render_timeout.map(std::time::Duration::from_secs),
        ));
        let watchdog = Some(trust::watch("render"));
        let mut template_paths: Vec<PathBuf> = args.paths.iter().chain(&args.files).cloned().collect();
        let project = match &args.project {
            Some(file) => Some((file.clone(), ProjectOrigin::Flag)),
            None => take_project_path(&mut template_paths)
                .map(|file| (file, ProjectOrigin::Path))
                .or_else(|| Project::find_in(Path::new(".")).map(|file| (file, ProjectOrigin::WorkingDirectory))),
        };
        let mut selection = match &project {
            Some((file, _)) => Project::load(file)?.select(args.target.as_deref())?,
            None => {
                if let Some(target) = &args.target {
                    return Err(crate::project::ProjectError::TargetWithoutProject(target.clone()).into());
                }
                Selection::default()
            }
        };
        let named: Vec<SourceSpec> = template_paths
            .into_iter()
            .map(SourceKind::Templates)
            .chain(args.manifests.iter().cloned().map(SourceKind::Manifests))
            .chain(args.kustomize.iter().cloned().map(SourceKind::Kustomize))
            .map(SourceSpec::new)
            .collect();
        let explicit_sources = !named.is_empty();
        if explicit_sources {
            selection.sources = named;
        } else if selection.sources.is_empty() {
            selection.sources = vec![SourceSpec::new(SourceKind::Templates(PathBuf::from(DEFAULT_TEMPLATES)))];
        }
        selection.config_checksums_off |= args.no_config_checksums;
        if args.namespace.is_some() {
            selection.namespace = args.namespace.clone();
        }
        selection.env_files.extend(args.env_files.iter().cloned());
        selection.secrets_files.extend(args.secrets_files.iter().cloned());

        let process_env = process_environment();
        let flags = ValueFlags {
            project_files: selection.values_files.clone(),
            ..value_flags(&args.data_values)
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
        trust::mask(secrets.plaintexts());
        for warning in &secrets.warnings {
            ui::warn(warning);
        }
        Ok(Inputs {
            selection,
            project,
            explicit_sources,
            values,
            env,
            secrets,
            watchdog,
            validation: args.validation.clone(),
            validate_later: false,
        })
    }

    /// One line for stderr saying which project file is in use and how it was chosen, so that the
    /// settings a command applies are never a surprise.
    pub fn project_line(&self) -> String {
        let Some((file, origin)) = &self.project else {
            return "no project file: the templates are used with the flags' settings only".to_owned();
        };
        let how = match origin {
            ProjectOrigin::Flag => "given with --project",
            ProjectOrigin::Path => "the PATH given",
            ProjectOrigin::WorkingDirectory => "found in the working directory",
        };
        let mut line = format!("project {} ({how}", file.display());
        if let Some(target) = &self.selection.target {
            line.push_str(&format!(", target {target}"));
        }
        line.push(')');
        if self.explicit_sources {
            let names: Vec<String> = self.selection.sources.iter().map(ToString::to_string).collect();
            line.push_str(&format!(
                "; its settings apply to the sources named on the command line ({}), not its own",
                names.join(", ")
            ));
        }
        line
    }

    /// Warns about each value no template reads, and each key of a local chart's `values:` that its
    /// values.yaml lacks (errors with `--strict-values` or `strict_values: true`). The project file's
    /// own text counts as a reader: a chart's `values:` may name values too.
    fn check_unread_values(&self, templates: Option<&crate::template::TemplateSet>) -> anyhow::Result<()> {
        // Sources named on the command line are a part of the project at most: its values were
        // written for the rest of it.
        if self.validation.no_validate || self.explicit_sources {
            return Ok(());
        }
        let mut read = templates.map(|t| t.value_paths_read()).unwrap_or_default();
        if let Some((file, _)) = &self.project
            && let Ok(text) = std::fs::read_to_string(file)
        {
            for tag in crate::template::tag_texts(&text) {
                crate::template::value_paths_in(tag, &mut read);
            }
        }
        let leaves = self.values.leaves();
        let unread = check::values::unread(leaves.iter().map(|(path, _, origin)| (path.clone(), *origin)), &read);
        let mut lines: Vec<String> = unread.iter().map(check::values::describe).collect();
        for spec in &self.selection.sources {
            if let SourceKind::Helm(chart) = &spec.kind {
                lines.extend(unknown_chart_values(chart));
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        if self.validation.strict_values || self.selection.strict_values {
            bail!(
                "{} value{} read by no template (--strict-values):\n  {}",
                lines.len(),
                if lines.len() == 1 { " is" } else { "s are" },
                lines.join("\n  ")
            );
        }
        for line in &lines {
            ui::warn(&format!("{line} (--strict-values makes this an error)"));
        }
        Ok(())
    }

    /// Whether any source is a Helm chart (which may ask what the cluster serves).
    pub fn has_charts(&self) -> bool {
        self.selection
            .sources
            .iter()
            .any(|s| matches!(s.kind, SourceKind::Helm(_)))
    }

    /// Renders every source into a validated manifest, without asking any cluster.
    pub fn render(self) -> anyhow::Result<RenderedInputs> {
        self.render_for(None)
    }

    /// Renders every source into a validated manifest; charts see `cluster`'s version and APIs.
    pub fn render_for(mut self, cluster: Option<&Capabilities>) -> anyhow::Result<RenderedInputs> {
        let watchdog = self.watchdog.take();
        // The embedded schemas compile (a few milliseconds) while the templates render; not in
        // untrusted mode, where one more thread's allocator reservations would count against a
        // sidecar's address-space limit for no gain worth it (the catalog compiles after the render).
        let embedded = (!self.validation.no_validate && !self.validate_later && !trust::untrusted()).then(|| {
            let version = self
                .validation
                .kube_version
                .clone()
                .unwrap_or_else(|| check::kubernetes::DEFAULT_VERSION.to_owned());
            std::thread::spawn(move || check::Catalog::embedded(&version))
        });
        let selection = &self.selection;
        let only_default = !self.explicit_sources
            && self.project.is_none()
            && selection
                .sources
                .iter()
                .all(|s| matches!(&s.kind, SourceKind::Templates(p) if !p.is_dir()));
        if only_default {
            bail!(
                "no templates: pass template files or folders (or -m for plain manifests, -k for a kustomization), \
                 or run where there is a {PROJECT_FILE} or a {DEFAULT_TEMPLATES}/ folder"
            );
        }
        let mut data_files: Vec<PathBuf> = selection
            .values_files
            .iter()
            .chain(&selection.env_files)
            .chain(&selection.secrets_files)
            .cloned()
            .collect();
        if let Some(dir) = &selection.project_dir {
            data_files.push(dir.join(PROJECT_FILE));
        }
        for spec in &selection.sources {
            if let SourceKind::Helm(chart) = &spec.kind {
                data_files.extend(chart.values_files.iter().cloned());
            }
        }
        let mut values = self.values.to_json().context("data values")?;
        let mut env = self.env.vars.clone();
        let references = resolve_references(&mut values, &mut env, &self.env.origins)?;
        if let Some(schema) = selection
            .values_schema
            .as_deref()
            .filter(|_| !self.validation.no_validate)
        {
            let validator = check::values_schema::load(schema)?;
            check::values_schema::validate(&validator, schema, &values, &|path| self.values.origin(path).cloned())?;
        }
        let context = TemplateContext {
            values,
            env,
            secrets: self.secrets.values.clone(),
        };
        trust::mask(references.plaintexts());
        let redactor = Redactor::new(self.secrets.plaintexts().chain(references.plaintexts()));
        let source_context = SourceContext {
            project_dir: selection.project_dir.as_deref().unwrap_or(Path::new(".")),
            templates: &context,
            data_files: &data_files,
            tools: &selection.tools,
            cluster,
            redactor: &redactor,
            cache_dir: crate::util::cache_dir(),
            default_namespace: selection.namespace.as_deref(),
        };
        let rendered = source::render_all(&selection.sources, &source_context)?;
        for warning in &rendered.warnings {
            ui::warn(warning);
        }
        let mut origins = RenderOrigins {
            templates: rendered.templates,
            context,
            texts: std::collections::HashMap::new(),
        };
        for document in &rendered.documents {
            if let Some(text) = &document.text
                && !origins.texts.contains_key(&document.template)
            {
                origins.texts.insert(document.template.clone(), text.clone());
            }
        }
        let mut manifest = Manifest::from_documents_shaped(
            rendered.documents,
            self.selection.namespace.as_deref(),
            &self.selection.shaping,
        )?;
        // Only a render that made a manifest is worth a word about values it did not read.
        self.check_unread_values(origins.templates.as_ref())?;
        if !self.selection.config_checksums_off {
            let unkeyed = checksum::annotate(&mut manifest.objects, self.secrets.checksum_key());
            // Only the project's own Secrets (its templates, where vault values land) are worth a word:
            // someone rendering upstream YAML did not ask for rollouts keyed to a vault.
            let own: Vec<&str> = unkeyed
                .iter()
                .filter(|u| {
                    matches!(
                        selection.sources.get(u.source).map(|s| &s.kind),
                        Some(SourceKind::Templates(_))
                    )
                })
                .map(|u| u.secret.as_str())
                .collect();
            if !own.is_empty() {
                ui::note(&format!(
                    "changes to {} do not roll the pods that use {}: with no vault, kdeploy has no key for a Secret's \
                     checksum (an unkeyed hash would let readers confirm a guessed value). `kdeploy vault init` makes one; \
                     `config_checksums: false` in kdeploy.yaml (or --no-config-checksums) silences this",
                    own.join(", "),
                    if own.len() == 1 { "it" } else { "them" }
                ));
            }
        }
        let placements = if redactor.is_empty() {
            Vec::new()
        } else {
            manifest.secret_placements(&|text| redactor.contains_secret(text))
        };
        for (object, path) in placements {
            ui::warn(&format!(
                "a vault value lands in {} at {path}; outside a Secret's data or stringData it is stored and shown in plain text",
                object
            ));
        }
        let rendered = RenderedInputs {
            inputs: self,
            manifest,
            redactor,
            origins,
        };
        match embedded {
            Some(compiling) => {
                let catalog = compiling
                    .join()
                    .map_err(|_| anyhow::anyhow!("compiling the Kubernetes schemas panicked"))??;
                rendered.validate(Some(catalog))?;
            }
            None if !rendered.inputs.validate_later => rendered.validate(None)?,
            None => {}
        }
        drop(watchdog);
        Ok(rendered)
    }
}

/// The keys of a local chart's `values:` that its values.yaml does not have (see
/// [`check::values::unknown_chart_values`]); a chart from a repository or an archive is not read.
fn unknown_chart_values(chart: &crate::source::HelmChart) -> Vec<String> {
    let Some(given) = chart.values.as_ref().filter(|v| v.is_object()) else {
        return Vec::new();
    };
    let dir = Path::new(&chart.chart);
    if chart.is_remote() || !dir.is_dir() {
        return Vec::new();
    }
    let read_yaml = |name: &str| {
        let text = trust::read_text(
            &dir.join(name),
            "chart file",
            trust::policy().limits.max_text_file_bytes,
        )
        .ok()?;
        crate::yaml::json_documents(&text)
            .ok()?
            .into_iter()
            .next()
            .map(|d| d.root)
    };
    let Some(defaults) = read_yaml("values.yaml") else {
        return Vec::new();
    };
    let mut subcharts = std::collections::BTreeSet::new();
    if let Some(meta) = read_yaml("Chart.yaml") {
        for dependency in meta["dependencies"].as_array().into_iter().flatten() {
            for key in ["name", "alias"] {
                if let Some(name) = dependency[key].as_str() {
                    subcharts.insert(name.to_owned());
                }
            }
        }
    }
    for entry in std::fs::read_dir(dir.join("charts")).into_iter().flatten().flatten() {
        subcharts.insert(entry.file_name().to_string_lossy().trim_end_matches(".tgz").to_owned());
    }
    check::values::unknown_chart_values(given, &defaults, &subcharts)
        .iter()
        .map(|unknown| {
            let hint = unknown
                .closest
                .as_ref()
                .map_or_else(String::new, |c| format!("; did you mean `{c}`?"));
            format!(
                "{}: helm {}: value `{}` is not in the chart's values.yaml, so no template of it reads it{hint}",
                chart.project_file.display(),
                chart.release_name(),
                unknown.path
            )
        })
        .collect()
}

/// What placing a wrong field needs: the templates to render again, and the texts files and programs
/// gave.
struct RenderOrigins {
    templates: Option<crate::template::TemplateSet>,
    context: TemplateContext,
    texts: std::collections::HashMap<PathBuf, std::sync::Arc<str>>,
}

impl std::fmt::Debug for RenderOrigins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderOrigins")
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

impl check::locate::Origins for RenderOrigins {
    fn place(&self, source: &crate::manifest::Source) -> Option<check::locate::Placed> {
        use check::locate::{Lines, Placed};
        if let Some(text) = self.texts.get(&source.template) {
            let documents = crate::yaml::parse_stream(text, &mut |_| Ok(None)).ok()?;
            let document = documents.into_iter().nth(source.document.checked_sub(1)?)?;
            let lines = if source.rendered {
                Lines::Output {
                    label: source.template.clone(),
                    text: text.clone(),
                }
            } else {
                Lines::File {
                    path: source.template.clone(),
                    text: text.clone(),
                }
            };
            return Some(Placed {
                root: document.root,
                lines,
            });
        }
        let placed = self
            .templates
            .as_ref()?
            .place(&self.context, &source.template, source.document)?;
        Some(Placed {
            root: placed.root,
            lines: Lines::Templates(placed.lines),
        })
    }
}

/// Validates the manifest against `catalog` (the cluster's schemas, or the embedded ones compiled
/// while the templates rendered), else the embedded schemas of the version asked for; the stream's own
/// CRDs and the project's schema folders come on top. Every error at the place it was written.
fn validate(
    manifest: &Manifest,
    catalog: Option<check::Catalog>,
    args: &ValidationArgs,
    selection: &Selection,
    origins: &dyn check::locate::Origins,
) -> anyhow::Result<()> {
    let mut catalog = match catalog {
        Some(catalog) => catalog,
        None => check::Catalog::embedded(
            args.kube_version
                .as_deref()
                .unwrap_or(check::kubernetes::DEFAULT_VERSION),
        )?,
    };
    catalog.add_stream_crds(&manifest.objects);
    for folder in &selection.schema_folders {
        catalog.add_folder(folder)?;
    }
    let options = check::Options { strict: args.strict };
    let report = check::validate(&manifest.objects, &mut catalog, &options)?;
    for warning in &report.warnings {
        ui::warn(warning);
    }
    if report.errors.is_empty() {
        return Ok(());
    }
    Err(check::failure(&report, &manifest.objects, &catalog, origins).into())
}

/// Resolves the secret references (`ref+vault://…`, `ref+awssecrets://…`, `ref+awsssm://…`) among the
/// values and the variables of env files (not the process environment), in place.
fn resolve_references(
    values: &mut serde_json::Value,
    env: &mut BTreeMap<String, String>,
    env_origins: &BTreeMap<String, Origin>,
) -> anyhow::Result<refs::Resolved> {
    let mut found = std::collections::BTreeSet::new();
    refs::find(values, &mut found);
    let from_files = |name: &String| matches!(env_origins.get(name), Some(Origin::File { .. }));
    found.extend(
        env.iter()
            .filter(|(name, value)| refs::is_reference(value) && from_files(name))
            .map(|(_, value)| value.clone()),
    );
    if found.is_empty() {
        return Ok(refs::Resolved::default());
    }
    let services = KeyServices::new(&|name| std::env::var(name).ok());
    let resolved = refs::resolve(&found, &services).map_err(|error| {
        anyhow::anyhow!(
            "cannot resolve {} secret reference(s):\n{}",
            error.failures.len(),
            error
                .failures
                .iter()
                .map(|(reference, why)| format!("  {reference}: {why}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    refs::substitute(values, &resolved);
    for (name, value) in env.iter_mut() {
        if from_files(name)
            && let Some(resolved) = resolved.get(value)
        {
            *value = match resolved {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
        }
    }
    Ok(resolved)
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

/// The data-value flags as the values stage takes them (project files left to the caller).
pub fn value_flags(args: &crate::cli::DataValueArgs) -> ValueFlags {
    ValueFlags {
        project_files: Vec::new(),
        files: args.data_values_files.clone(),
        env_prefixes: args.data_values_env.clone(),
        env_yaml_prefixes: args.data_values_env_yaml.clone(),
        strings: args.strings.clone(),
        yamls: args.data_values_yaml.clone(),
        file_contents: args.data_value_files.clone(),
    }
}
