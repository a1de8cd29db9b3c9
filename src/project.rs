//! The project file, `kdeploy.yaml`: where the templates are, which values, env files and secrets
//! feed them, and the named targets (dev, prod, ...) with their own values, kube context and
//! namespace. Paths in it are relative to the file. Unknown keys are errors.
//!
//! ```yaml
//! name: shop                  # the project's identity: its ApplySet, what it may prune
//! templates: [manifests]      # shorthand for `sources: [{templates: manifests}]`
//! sources:                    # more sources: plain manifests, kustomize, helm charts, pinned URLs
//!   - manifests: vendor/kube-prometheus
//! patches:                    # changes to objects of any source
//!   - target: {kind: Deployment, name: grafana}
//!     merge: {spec: {replicas: 2}}
//! labels: {team: shop}
//! values: [values.yaml]
//! env_files: [.env]
//! secrets: [secrets.sops.yaml]
//! namespace: shop
//! health:                     # when custom resources with unusual status are ready
//!   - {kind: Database, field: status.phase, ready: [Available], failed: [Failed]}
//! config_checksums: true      # roll pods when their ConfigMaps and Secrets change (the default)
//! targets:
//!   prod:
//!     context: prod-cluster
//!     namespace: shop-prod
//!     values: [values/prod.yaml]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

use crate::cluster::health::{HealthRule, HealthRules};
use crate::diagnostic::SourceError;
use crate::manifest::{Patch, PatchOperation, PatchTarget, Shaping};
use crate::source::{HelmChart, SourceKind, SourceSpec, ToolPaths, remote};
use crate::vault::keys::Recipient;

pub const PROJECT_FILE: &str = "kdeploy.yaml";
/// Where templates are looked for when there is no project file.
pub const DEFAULT_TEMPLATES: &str = "manifests";

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] SourceError),
    #[error("{}: {message}", path.display())]
    Unlocated { path: PathBuf, message: String },
    #[error("unknown target `{name}` in {}; defined targets: {}", path.display(), if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    UnknownTarget {
        name: String,
        path: PathBuf,
        known: Vec<String>,
    },
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error("--target {0} needs a project file (kdeploy.yaml) that defines it")]
    TargetWithoutProject(String),
    #[error("{}: {what} `{name}` is not a valid project name: {why}", path.display())]
    InvalidName {
        path: PathBuf,
        what: String,
        name: String,
        why: &'static str,
    },
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// The project's identity on a cluster: its ApplySet derives from it, and only objects of that set
    /// are ever pruned.
    pub name: Option<String>,
    #[serde(default)]
    pub templates: Vec<PathBuf>,
    /// Where objects come from besides `templates:` (which are the first sources).
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Changes to objects of any source, applied after every source has rendered.
    #[serde(default)]
    pub patches: Vec<PatchConfig>,
    /// Labels added to every object's metadata.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Paths to helm, kustomize and kubectl when they are not on PATH.
    #[serde(default)]
    pub tools: ToolPaths,
    #[serde(default)]
    pub values: Vec<PathBuf>,
    #[serde(default)]
    pub env_files: Vec<PathBuf>,
    #[serde(default)]
    pub secrets: Vec<PathBuf>,
    /// The keys vault files are encrypted to: age recipients, OpenBao/Vault transit key URIs, AWS KMS
    /// key ARNs (strings, or `.sops.yaml`'s map forms).
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    pub namespace: Option<String>,
    /// How to tell when objects of a kind are ready, where kstatus cannot.
    #[serde(default)]
    pub health: Vec<HealthRule>,
    /// Whether workloads get checksums of the ConfigMaps and Secrets they use (default: yes).
    pub config_checksums: Option<bool>,
    /// Folders of schemas for custom resources: CRD manifests, or JSON Schema files laid out as
    /// kubeconform's CRD catalogues are (`GROUP/KIND_VERSION.json`).
    #[serde(default)]
    pub schemas: Vec<PathBuf>,
    /// A JSON Schema (2020-12 unless it says otherwise; YAML or JSON) the merged values must meet
    /// before anything renders.
    pub values_schema: Option<PathBuf>,
    /// A value that no template reads is an error, not a warning.
    pub strict_values: Option<bool>,
    /// How the project is deployed by Flux (`kdeploy push`, `kdeploy flux generate`).
    pub flux: Option<FluxConfig>,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
}

/// `flux:` at the top level or in a target (a target's settings replace the project's, one by one).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FluxConfig {
    /// The cluster's keys, which pushed Secrets are encrypted to (age recipients, transit key URIs,
    /// KMS key ARNs): kustomize-controller decrypts with them. Never the team's.
    pub recipients: Option<Vec<Recipient>>,
    /// The artifact's repository, oci://HOST/REPOSITORY, for `kdeploy flux generate`.
    pub repository: Option<String>,
    /// Where the OCIRepository and Kustomization live (default: flux-system).
    pub namespace: Option<String>,
    /// The Secret kustomize-controller decrypts with (default: IDENTITY-sops).
    pub decryption_secret: Option<String>,
}

impl FluxConfig {
    /// These settings, with `over`'s where it has them.
    pub fn overlaid(&self, over: Option<&FluxConfig>) -> FluxConfig {
        let Some(over) = over else { return self.clone() };
        FluxConfig {
            recipients: over.recipients.clone().or_else(|| self.recipients.clone()),
            repository: over.repository.clone().or_else(|| self.repository.clone()),
            namespace: over.namespace.clone().or_else(|| self.namespace.clone()),
            decryption_secret: over
                .decryption_secret
                .clone()
                .or_else(|| self.decryption_secret.clone()),
        }
    }
}

/// One entry of `sources:`: exactly one of `templates`, `manifests`, `kustomize`, `helm` or `url`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub templates: Option<PathBuf>,
    pub manifests: Option<PathBuf>,
    pub kustomize: Option<PathBuf>,
    pub helm: Option<HelmChart>,
    pub url: Option<String>,
    /// Required with `url`: the download's sha256, checked before it is read.
    pub sha256: Option<String>,
    /// The namespace for this source's namespaced objects that set none.
    pub namespace: Option<String>,
}

/// One entry of `patches:`: a target and exactly one of `merge`, `json6902` or `strategic`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchConfig {
    #[serde(default)]
    pub target: PatchTarget,
    pub merge: Option<Json>,
    pub json6902: Option<Vec<Json>>,
    pub strategic: Option<Json>,
    /// How many objects the target must match (default: at least one).
    #[serde(default)]
    pub expects: crate::manifest::patch::Expects,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The identity of this target's deployments (default: NAME-TARGET).
    pub name: Option<String>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub values: Vec<PathBuf>,
    #[serde(default)]
    pub env_files: Vec<PathBuf>,
    #[serde(default)]
    pub secrets: Vec<PathBuf>,
    /// The values schema for this target, in place of the project's.
    pub values_schema: Option<PathBuf>,
    /// Flux settings for this target, over the project's.
    pub flux: Option<FluxConfig>,
}

/// A loaded project file.
#[derive(Debug, Clone)]
pub struct Project {
    pub file: PathBuf,
    pub dir: PathBuf,
    pub config: ProjectConfig,
}

/// What a command works with once the project and target are chosen; paths resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Where the objects come from, in order.
    pub sources: Vec<SourceSpec>,
    /// Patches and labels for the objects of every source.
    pub shaping: Shaping,
    pub tools: ToolPaths,
    /// The project's folder (vendored downloads live in its `vendor/`).
    pub project_dir: Option<PathBuf>,
    pub values_files: Vec<PathBuf>,
    pub env_files: Vec<PathBuf>,
    pub secrets_files: Vec<PathBuf>,
    pub recipients: Vec<Recipient>,
    pub namespace: Option<String>,
    pub context: Option<String>,
    pub target: Option<String>,
    pub project_file: Option<PathBuf>,
    /// The identity of what is deployed: the project's `name:`, per target `NAME-TARGET` or the
    /// target's own `name:`. None for an unnamed project, which never prunes.
    pub identity: Option<String>,
    /// The project's readiness rules.
    pub health: HealthRules,
    /// The project said `config_checksums: false`: workloads get no checksums of their configs.
    pub config_checksums_off: bool,
    /// Folders of custom resource schemas.
    pub schema_folders: Vec<PathBuf>,
    /// The JSON Schema the merged values must meet.
    pub values_schema: Option<PathBuf>,
    pub strict_values: bool,
    /// The Flux settings of the project and target.
    pub flux: FluxConfig,
}

impl Project {
    pub fn load(file: &Path) -> Result<Project, ProjectError> {
        let text = crate::trust::read_text(file, "project file", crate::trust::policy().limits.max_text_file_bytes)?;
        // serde-saphyr reads a tab before a top-level key as separation; kubectl's reader and kdeploy's
        // own refuse it, and so does the project file.
        if let Err(error) = crate::yaml::parse_stream(&text, &mut |_| Ok(None))
            && error.message.starts_with(crate::yaml::TAB_INDENT_MESSAGE)
        {
            return Err(SourceError::new(
                format!("invalid {PROJECT_FILE}: {}", error.message),
                file,
                Some(&text),
                error.mark.line,
                error.mark.column,
            )
            .into());
        }
        let config: ProjectConfig = if text.trim().is_empty() {
            ProjectConfig::default()
        } else {
            serde_saphyr::from_str(&text).map_err(|e| located(file, &text, &e))?
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        for (name, target) in &config.targets {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(ProjectError::Unlocated {
                    path: file.to_path_buf(),
                    message: format!("target name `{name}` may only contain letters, digits, `-` and `_`"),
                });
            }
            if let Some(own) = &target.name {
                check_name(file, &format!("targets.{name}.name"), own)?;
            }
        }
        if let Some(name) = &config.name {
            check_name(file, "name", name)?;
        }
        for (i, source) in config.sources.iter().enumerate() {
            check_source(source).map_err(|message| ProjectError::Unlocated {
                path: file.to_path_buf(),
                message: format!("sources[{i}]: {message}"),
            })?;
        }
        for (i, rule) in config.health.iter().enumerate() {
            rule.check().map_err(|message| ProjectError::Unlocated {
                path: file.to_path_buf(),
                message: format!("health[{i}]: {message}"),
            })?;
        }
        for (i, patch) in config.patches.iter().enumerate() {
            let kinds = [
                patch.merge.is_some(),
                patch.json6902.is_some(),
                patch.strategic.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(ProjectError::Unlocated {
                    path: file.to_path_buf(),
                    message: format!("patches[{i}]: give exactly one of `merge:`, `json6902:` or `strategic:`"),
                });
            }
        }
        Ok(Project {
            file: file.to_path_buf(),
            dir,
            config,
        })
    }

    /// Every vault file the project names, its targets' included, in order and without repeats.
    pub fn all_secrets_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = Vec::new();
        let all = self
            .config
            .secrets
            .iter()
            .chain(self.config.targets.values().flat_map(|t| t.secrets.iter()));
        for file in all.map(|p| self.path(p)) {
            if !files.contains(&file) {
                files.push(file);
            }
        }
        files
    }

    /// Rewrites the `recipients:` list in the project file, leaving the rest of the text (comments
    /// included) as it is, and checks that the result still loads.
    pub fn write_recipients(&self, recipients: &[Recipient]) -> Result<Project, ProjectError> {
        let text = std::fs::read_to_string(&self.file).map_err(|source| ProjectError::Read {
            path: self.file.clone(),
            source,
        })?;
        let mut block = String::from("recipients:\n");
        for recipient in recipients {
            let text = recipient.to_string();
            let plain = text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/+=@".contains(c));
            if plain {
                block.push_str(&format!("  - {text}\n"));
            } else {
                block.push_str(&format!("  - {}\n", serde_json::Value::String(text)));
            }
        }
        if recipients.is_empty() {
            block = "recipients: []\n".to_owned();
        }
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let start = lines.iter().position(|l| l.starts_with("recipients:"));
        let updated = match start {
            Some(start) => {
                let end = lines[start + 1..]
                    .iter()
                    .position(|l| {
                        !(l.starts_with(' ')
                            || l.starts_with('\t')
                            || l.trim().is_empty()
                            || l.starts_with('#')
                            || l.starts_with('-'))
                    })
                    .map_or(lines.len(), |i| start + 1 + i);
                format!("{}{block}{}", lines[..start].concat(), lines[end..].concat())
            }
            None => {
                let separator = if text.is_empty() || text.ends_with('\n') {
                    ""
                } else {
                    "\n"
                };
                format!("{text}{separator}{block}")
            }
        };
        let temp = self.file.with_extension("yaml.kdeploy-new");
        let write_error = |source| ProjectError::Read {
            path: self.file.clone(),
            source,
        };
        std::fs::write(&temp, &updated).map_err(write_error)?;
        match Project::load(&temp) {
            Ok(project) if project.config.recipients == recipients => {
                std::fs::rename(&temp, &self.file).map_err(write_error)?;
                Project::load(&self.file)
            }
            _ => {
                let _ = std::fs::remove_file(&temp);
                Err(ProjectError::Unlocated {
                    path: self.file.clone(),
                    message: "cannot update `recipients:` in place (is it written in an unusual form?); edit the file by hand".to_owned(),
                })
            }
        }
    }

    /// A path from the project file, relative to the project's folder.
    fn path(&self, relative: &Path) -> PathBuf {
        if self.dir == Path::new(".") {
            relative.to_path_buf()
        } else {
            self.dir.join(relative)
        }
    }

    /// The project file in `dir`, if there is one.
    pub fn find_in(dir: &Path) -> Option<PathBuf> {
        let file = dir.join(PROJECT_FILE);
        file.is_file().then_some(file)
    }

    /// The project's sources, paths resolved: `templates:` first, then `sources:`; with neither, the
    /// templates in `manifests/`.
    pub fn sources(&self) -> Vec<SourceSpec> {
        let config = &self.config;
        let mut sources: Vec<SourceSpec> = config
            .templates
            .iter()
            .map(|p| SourceSpec::new(SourceKind::Templates(self.path(p))))
            .collect();
        for source in &config.sources {
            let kind = if let Some(path) = &source.templates {
                SourceKind::Templates(self.path(path))
            } else if let Some(path) = &source.manifests {
                SourceKind::Manifests(self.path(path))
            } else if let Some(path) = &source.kustomize {
                SourceKind::Kustomize(self.path(path))
            } else if let Some(chart) = &source.helm {
                let mut chart = chart.clone();
                if !chart.is_remote() {
                    chart.chart = self.path(Path::new(&chart.chart)).display().to_string();
                }
                chart.values_files = chart.values_files.iter().map(|p| self.path(p)).collect();
                chart.project_file = self.file.clone();
                SourceKind::Helm(Box::new(chart))
            } else {
                SourceKind::Url {
                    url: source.url.clone().unwrap_or_default(),
                    sha256: source.sha256.clone().unwrap_or_default(),
                }
            };
            let namespace = source
                .namespace
                .clone()
                .or_else(|| source.helm.as_ref().and_then(|h| h.namespace.clone()));
            sources.push(SourceSpec { kind, namespace });
        }
        if sources.is_empty() {
            sources.push(SourceSpec::new(SourceKind::Templates(
                self.path(Path::new(DEFAULT_TEMPLATES)),
            )));
        }
        sources
    }

    /// The project's patches and labels.
    pub fn shaping(&self) -> Shaping {
        let file = self
            .file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let patches = self
            .config
            .patches
            .iter()
            .enumerate()
            .map(|(i, patch)| Patch {
                origin: format!("{file} patches[{i}]"),
                target: patch.target.clone(),
                operation: match (&patch.merge, &patch.json6902, &patch.strategic) {
                    (Some(merge), _, _) => PatchOperation::Merge(merge.clone()),
                    (_, Some(operations), _) => PatchOperation::Json6902(operations.clone()),
                    (_, _, strategic) => PatchOperation::Strategic(strategic.clone().unwrap_or(Json::Null)),
                },
                expects: patch.expects.clone(),
            })
            .collect();
        Shaping {
            patches,
            labels: self.config.labels.clone(),
        }
    }

    /// Resolves the project's settings for `target` (or none).
    pub fn select(&self, target: Option<&str>) -> Result<Selection, ProjectError> {
        let resolve = |paths: &[PathBuf]| paths.iter().map(|p| self.path(p)).collect::<Vec<_>>();
        let config = &self.config;
        if crate::trust::untrusted() && config.tools != ToolPaths::default() {
            return Err(ProjectError::Unlocated {
                path: self.file.clone(),
                message: "`tools:` names programs to run, and untrusted mode runs nothing a repository names: \
                          helm, kustomize and kubectl come from the operator's PATH"
                    .to_owned(),
            });
        }
        let mut selection = Selection {
            sources: self.sources(),
            shaping: self.shaping(),
            tools: config.tools.clone(),
            project_dir: Some(self.dir.clone()),
            values_files: resolve(&config.values),
            env_files: resolve(&config.env_files),
            secrets_files: resolve(&config.secrets),
            recipients: config.recipients.clone(),
            namespace: config.namespace.clone(),
            context: None,
            target: None,
            project_file: Some(self.file.clone()),
            identity: config.name.clone(),
            health: HealthRules(config.health.clone()),
            config_checksums_off: config.config_checksums == Some(false),
            schema_folders: resolve(&config.schemas),
            values_schema: config.values_schema.as_deref().map(|p| self.path(p)),
            strict_values: config.strict_values == Some(true),
            flux: config.flux.clone().unwrap_or_default(),
        };
        if let Some(name) = target {
            let target = config.targets.get(name).ok_or_else(|| ProjectError::UnknownTarget {
                name: name.to_owned(),
                path: self.file.clone(),
                known: config.targets.keys().cloned().collect(),
            })?;
            selection.values_files.extend(resolve(&target.values));
            selection.env_files.extend(resolve(&target.env_files));
            selection.secrets_files.extend(resolve(&target.secrets));
            if let Some(schema) = &target.values_schema {
                selection.values_schema = Some(self.path(schema));
            }
            if target.namespace.is_some() {
                selection.namespace = target.namespace.clone();
            }
            selection.context = target.context.clone();
            selection.flux = selection.flux.overlaid(target.flux.as_ref());
            selection.target = Some(name.to_owned());
            selection.identity = match (&target.name, &config.name) {
                (Some(own), _) => Some(own.clone()),
                (None, Some(project)) => {
                    let derived = format!("{project}-{name}");
                    check_name(&self.file, &format!("`name` + target `{name}`"), &derived).map_err(|_| {
                        ProjectError::InvalidName {
                            path: self.file.clone(),
                            what: format!("the identity derived for target `{name}`"),
                            name: derived.clone(),
                            why: "set `name:` on the target to a lowercase name (letters, digits, `-`)",
                        }
                    })?;
                    Some(derived)
                }
                (None, None) => None,
            };
        }
        Ok(selection)
    }
}

/// Exactly one kind per source, and a pinned digest with (only with) a URL.
fn check_source(source: &SourceConfig) -> Result<(), String> {
    let kinds = [
        source.templates.is_some(),
        source.manifests.is_some(),
        source.kustomize.is_some(),
        source.helm.is_some(),
        source.url.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err("give exactly one of `templates:`, `manifests:`, `kustomize:`, `helm:` or `url:`".to_owned());
    }
    match (&source.url, &source.sha256) {
        (Some(url), None) => Err(format!(
            "url {url} needs `sha256:`, the digest of its content (`curl -sL URL | sha256sum`), so that what is deployed cannot change under you"
        )),
        (Some(_), Some(sha256)) => remote::check_digest(sha256),
        (None, Some(_)) => Err("`sha256:` belongs with `url:`".to_owned()),
        (None, None) => Ok(()),
    }
}

/// The longest project name: the ApplySet parent `kdeploy-NAME` must stay a valid label value.
pub const MAX_NAME_LENGTH: usize = 55;

/// A project name is a DNS label, as Kubernetes names are: lowercase letters, digits and `-`.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LENGTH {
        Some("it is longer than 55 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("use lowercase letters, digits and `-` only")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("it must start and end with a letter or digit")
    } else {
        None
    }
}

fn check_name(file: &Path, what: &str, name: &str) -> Result<(), ProjectError> {
    match name_problem(name) {
        Some(why) => Err(ProjectError::InvalidName {
            path: file.to_path_buf(),
            what: what.to_owned(),
            name: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// serde-saphyr reports a location with most errors; turn it into a [`SourceError`].
fn located(file: &Path, text: &str, error: &serde_saphyr::Error) -> ProjectError {
    let message = error.to_string();
    let first_line = message.lines().next().unwrap_or("invalid project file").to_owned();
    match error.location() {
        Some(location) => SourceError::new(
            format!("invalid {PROJECT_FILE}: {}", strip_location(&first_line)),
            file,
            Some(text),
            location.line() as usize,
            location.column() as usize,
        )
        .into(),
        None => ProjectError::Unlocated {
            path: file.to_path_buf(),
            message: first_line,
        },
    }
}

/// serde-saphyr's message without its own position (`error: line 3 column 1: ...`, `... at line 3`),
/// which the [`SourceError`] shows instead.
fn strip_location(message: &str) -> &str {
    let message = message.strip_prefix("error: ").unwrap_or(message);
    let message = match message.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, rest)) if position.contains(" column ") => rest,
        _ => message,
    };
    message.split(" at line ").next().unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Result<Project, ProjectError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(PROJECT_FILE);
        std::fs::write(&file, text).unwrap();
        let project = Project::load(&file);
        std::mem::forget(dir);
        project
    }

    #[test]
    fn targets_add_values_and_override_namespace_and_context() {
        let p = project("values: [v.yaml]\nnamespace: base\ntargets:\n  prod:\n    context: prod-ctx\n    namespace: shop-prod\n    values: [prod.yaml]\n").unwrap();
        let base = p.select(None).unwrap();
        assert_eq!(
            base.sources,
            vec![SourceSpec::new(SourceKind::Templates(p.dir.join("manifests")))]
        );
        assert_eq!(base.namespace.as_deref(), Some("base"));
        let prod = p.select(Some("prod")).unwrap();
        assert_eq!(prod.values_files, vec![p.dir.join("v.yaml"), p.dir.join("prod.yaml")]);
        assert_eq!(prod.namespace.as_deref(), Some("shop-prod"));
        assert_eq!(prod.context.as_deref(), Some("prod-ctx"));
        let err = p.select(Some("staging")).unwrap_err().to_string();
        assert!(err.contains("defined targets: prod"), "{err}");
    }

    #[test]
    fn the_identity_is_the_name_per_target_name_target_unless_the_target_sets_one() {
        let p = project("name: shop\ntargets:\n  dev: {}\n  prod: {name: shop-live}\n").unwrap();
        assert_eq!(p.select(None).unwrap().identity.as_deref(), Some("shop"));
        assert_eq!(p.select(Some("dev")).unwrap().identity.as_deref(), Some("shop-dev"));
        assert_eq!(p.select(Some("prod")).unwrap().identity.as_deref(), Some("shop-live"));
        let unnamed = project("targets:\n  dev: {}\n").unwrap();
        assert_eq!(unnamed.select(Some("dev")).unwrap().identity, None);
    }

    #[test]
    fn names_that_cannot_name_an_applyset_are_refused() {
        for bad in ["Shop", "shop_web", "-shop", "shop-", "", &"x".repeat(56)] {
            let err = project(&format!("name: '{bad}'\n")).unwrap_err().to_string();
            assert!(err.contains("not a valid project name"), "{bad}: {err}");
        }
        let p = project("name: shop\ntargets:\n  EU_1: {}\n").unwrap();
        let err = p.select(Some("EU_1")).unwrap_err().to_string();
        assert!(
            err.contains("shop-EU_1") && err.contains("set `name:` on the target"),
            "{err}"
        );
    }

    #[test]
    fn recipients_are_rewritten_in_place_keeping_the_rest() {
        let age = || age::x25519::Identity::generate().to_public().to_string();
        let (old, bob, carol) = (age(), age(), age());
        let p = project(&format!(
            "# team project\ntemplates: [m]\nrecipients:\n  - {old}  # alice\n  - {bob}\nnamespace: x\n"
        ))
        .unwrap();
        let kms: Recipient = "arn:aws:kms:eu-west-1:111122223333:key/1|context=env:prod"
            .parse()
            .unwrap();
        let wanted = [bob.parse().unwrap(), carol.parse().unwrap(), kms];
        let p = p.write_recipients(&wanted).unwrap();
        let text = std::fs::read_to_string(&p.file).unwrap();
        assert_eq!(
            text,
            format!(
                "# team project\ntemplates: [m]\nrecipients:\n  - {bob}\n  - {carol}\n  - \"arn:aws:kms:eu-west-1:111122223333:key/1|context=env:prod\"\nnamespace: x\n"
            )
        );
        assert_eq!(p.config.recipients, wanted);
        let transit: Recipient = "https://bao:8200/v1/transit/keys/app".parse().unwrap();
        let p = project("templates: [m]")
            .unwrap()
            .write_recipients(std::slice::from_ref(&transit))
            .unwrap();
        assert_eq!(p.config.recipients, [transit]);
    }

    #[test]
    fn recipients_take_the_sops_map_forms() {
        let p = project(
            "recipients:\n  - {kms: 'arn:aws:kms:us-east-1:1:key/k', role: 'arn:aws:iam::1:role/r', context: {env: prod}}\n  - {hc_vault_transit_uri: 'http://127.0.0.1:8200/v1/transit/keys/app'}\n",
        )
        .unwrap();
        let names: Vec<String> = p.config.recipients.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "arn:aws:kms:us-east-1:1:key/k+arn:aws:iam::1:role/r|context=env:prod",
                "http://127.0.0.1:8200/v1/transit/keys/app"
            ]
        );
        let err = project("recipients: [gpg-ABCDEF]\n").unwrap_err().to_string();
        assert!(err.contains("is not a recipient"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_position() {
        let err = project("templates: [m]\ntargets:\n  dev:\n    contxt: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("contxt"), "{err}");
        assert!(err.contains(":4:"), "{err}");
    }
}
