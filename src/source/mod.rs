//! Sources: where a project's objects come from, before they join one pipeline.
//!
//! A project is a list of sources, each producing YAML documents: kdeploy's own Tera templates
//! ([`crate::template`]), plain manifests read as kubectl reads them and never templated ([`plain`]),
//! kustomize overlays and Helm charts built by the user's own `kustomize`/`kubectl` and `helm`
//! binaries ([`kustomize`], [`helm`]), and pinned https downloads ([`remote`]). Every document is
//! tagged with the source it came from; the manifest stage then takes them all together (namespace
//! defaulting, patches, labels, validation, ordering), and from there one ApplySet holds them all.

pub mod helm;
pub mod kustomize;
pub mod plain;
pub mod remote;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::diagnostic;
use crate::template::{RenderedDocument, TemplateContext, TemplateError, TemplateSet};
use crate::vault::redact::Redactor;

pub use helm::HelmChart;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Located(#[from] diagnostic::SourceError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
}

impl SourceError {
    pub fn io(path: &Path, source: std::io::Error) -> SourceError {
        SourceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a source is.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// Tera templates (a file or a folder).
    Templates(PathBuf),
    /// Plain YAML or JSON manifests (a file or a folder), never templated.
    Manifests(PathBuf),
    /// A kustomization folder, built as `kubectl kustomize` builds it.
    Kustomize(PathBuf),
    /// A Helm chart, rendered by `helm template`.
    Helm(Box<HelmChart>),
    /// A pinned https download of plain manifests.
    Url { url: String, sha256: String },
}

/// One entry of a project's `sources:`, paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    pub kind: SourceKind,
    /// The namespace for this source's namespaced objects that set none (before the project's).
    pub namespace: Option<String>,
}

impl SourceSpec {
    pub fn new(kind: SourceKind) -> SourceSpec {
        SourceSpec { kind, namespace: None }
    }

    /// Whether objects of this source come from somewhere other than the project's folder.
    pub fn is_remote(&self) -> bool {
        match &self.kind {
            SourceKind::Url { .. } => true,
            SourceKind::Helm(chart) => chart.is_remote(),
            _ => false,
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SourceKind::Templates(path) => write!(f, "templates {}", path.display()),
            SourceKind::Manifests(path) => write!(f, "manifests {}", path.display()),
            SourceKind::Kustomize(path) => write!(f, "kustomize {}", path.display()),
            SourceKind::Helm(chart) => write!(f, "helm {chart}"),
            SourceKind::Url { url, .. } => write!(f, "url {url}"),
        }
    }
}

/// Paths to the programs some sources run; by default they are looked up on PATH.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPaths {
    pub helm: Option<PathBuf>,
    pub kustomize: Option<PathBuf>,
    pub kubectl: Option<PathBuf>,
}

/// What charts may ask of the cluster they render for (`.Capabilities` in Helm), handed in by whoever
/// asked the cluster (or Argo CD's environment).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capabilities {
    /// `v1.36.3`.
    pub kube_version: String,
    /// `apps/v1`, `monitoring.coreos.com/v1`, ...
    pub api_versions: Vec<String>,
}

/// What every source may need while it renders.
pub struct SourceContext<'a> {
    /// The project's folder: `vendor/` and `kdeploy.lock` live there.
    pub project_dir: &'a Path,
    pub templates: &'a TemplateContext,
    /// Values, env and vault files: data, never templates, even inside a template folder.
    pub data_files: &'a [PathBuf],
    pub tools: &'a ToolPaths,
    pub cluster: Option<&'a Capabilities>,
    /// Masks vault values in what programs print (a chart's error may quote a value).
    pub redactor: &'a Redactor,
    /// Where downloads are kept between runs.
    pub cache_dir: PathBuf,
    /// The project's namespace, for charts whose source names none (`.Release.Namespace`).
    pub default_namespace: Option<&'a str>,
}

/// Every source's documents, in the order of the sources.
#[derive(Debug, Default)]
pub struct Rendered {
    pub documents: Vec<RenderedDocument>,
    pub warnings: Vec<String>,
    /// The project's templates, kept to place a wrong field at the line that wrote it.
    pub templates: Option<TemplateSet>,
}

/// Renders every source. Templates from all template sources form one set (a template may include
/// one from another folder); the other sources run side by side, each in its own thread.
pub fn render_all(specs: &[SourceSpec], context: &SourceContext<'_>) -> Result<Rendered, SourceError> {
    let mut outputs: Vec<Option<Rendered>> = (0..specs.len()).map(|_| None).collect();
    let mut templates = None;
    let template_roots: Vec<(usize, &PathBuf)> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, spec)| match &spec.kind {
            SourceKind::Templates(path) => Some((i, path)),
            _ => None,
        })
        .collect();
    if !template_roots.is_empty() {
        let roots: Vec<PathBuf> = template_roots.iter().map(|(_, p)| (*p).clone()).collect();
        let set = TemplateSet::load(&roots, context.data_files)?;
        let rendered = set.render(context.templates)?;
        for (i, _) in &template_roots {
            outputs[*i] = Some(Rendered::default());
        }
        let first = template_roots[0].0;
        if let Some(output) = outputs[first].as_mut() {
            output.warnings = rendered.warnings;
        }
        // Documents come template by template: the owner is found once per template.
        let mut owner_of_last: Option<(PathBuf, usize)> = None;
        for document in rendered.documents {
            let owner = match &owner_of_last {
                Some((template, owner)) if *template == document.template => *owner,
                _ => {
                    // The most specific root holding the template is its source.
                    let owner = template_roots
                        .iter()
                        .filter(|(_, root)| document.template.starts_with(root))
                        .max_by_key(|(_, root)| root.as_os_str().len())
                        .map_or(first, |(i, _)| *i);
                    owner_of_last = Some((document.template.clone(), owner));
                    owner
                }
            };
            if let Some(output) = outputs[owner].as_mut() {
                output.documents.push(document);
            }
        }
        templates = Some(set);
    }
    let others: Vec<(usize, &SourceSpec)> = specs
        .iter()
        .enumerate()
        .filter(|(_, spec)| !matches!(spec.kind, SourceKind::Templates(_)))
        .collect();
    let results: Vec<(usize, Result<Rendered, SourceError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = others
            .iter()
            .map(|(i, spec)| (*i, scope.spawn(move || render_one(spec, context))))
            .collect();
        handles
            .into_iter()
            .map(|(i, handle)| {
                let result = handle
                    .join()
                    .unwrap_or_else(|_| Err(SourceError::Message("a source's thread panicked".into())));
                (i, result)
            })
            .collect()
    });
    for (i, result) in results {
        let rendered = result.map_err(|e| match e {
            SourceError::Message(message) => SourceError::Message(format!("source {}: {message}", specs[i])),
            other => other,
        })?;
        outputs[i] = Some(rendered);
    }
    let mut all = Rendered {
        templates,
        ..Rendered::default()
    };
    for (i, output) in outputs.into_iter().enumerate() {
        let Some(output) = output else { continue };
        all.warnings.extend(output.warnings);
        for mut document in output.documents {
            document.source = i;
            document.namespace = specs[i].namespace.clone();
            all.documents.push(document);
        }
    }
    Ok(all)
}

fn render_one(spec: &SourceSpec, context: &SourceContext<'_>) -> Result<Rendered, SourceError> {
    let documents = match &spec.kind {
        SourceKind::Templates(_) => unreachable!("templates render together"),
        SourceKind::Manifests(root) => {
            let mut documents = Vec::new();
            for file in plain::files(root, context.data_files)? {
                documents.extend(plain::read_file(&file)?);
            }
            documents
        }
        SourceKind::Kustomize(dir) => kustomize::build(dir, context)?,
        SourceKind::Helm(chart) => return helm::render(chart, spec.namespace.as_deref(), context),
        SourceKind::Url { url, sha256 } => {
            let text = remote::fetch(url, sha256, context)?;
            plain::parse(Path::new(url), &text, false)?
        }
    };
    Ok(Rendered {
        documents,
        ..Rendered::default()
    })
}

/// A program a source runs, and the name it is known by in messages.
pub(crate) struct Tool {
    pub path: PathBuf,
    /// `helm`, `kustomize`, `kubectl kustomize`.
    pub name: String,
}

/// `name` on PATH. In untrusted mode a relative PATH entry, or one inside the repository, is passed
/// over: a program comes from the operator's system, never from the checkout.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| crate::trust::may_run_from(dir))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs a tool; its stdout on success, else an error with what it printed on stderr (secrets masked).
/// The tool never sees the credentials kdeploy reads, and is stopped once it outlives the run's
/// tool deadline; what it prints is bounded.
pub(crate) fn run_tool(
    tool: &Tool,
    args: &[String],
    stdin: Option<&[u8]>,
    redactor: &Redactor,
) -> Result<String, SourceError> {
    use std::io::{Read, Write};
    let limit = crate::yaml::limits::MAX_INPUT_BYTES as u64;
    let timeout = crate::trust::policy().limits.tool_timeout;
    let mut command = Command::new(&tool.path);
    command
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in crate::trust::child_env_removals() {
        command.env_remove(name);
    }
    let mut child = command
        .spawn()
        .map_err(|e| SourceError::Message(format!("cannot run {} ({}): {e}", tool.name, tool.path.display())))?;
    let capture = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = (&mut pipe).take(limit + 1).read_to_end(&mut bytes);
                // Past the limit the rest is drained, so the tool is never stuck on a full pipe.
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            }
            bytes
        })
    };
    let stdout = capture(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = capture(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A tool that fails early closes its stdin; what it says on stderr explains why.
        let _ = pipe.write_all(input);
    }
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SourceError::Message(format!(
                    "{} did not finish within {}s and was stopped",
                    tool.name,
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(e) => return Err(SourceError::Message(format!("{} did not finish: {e}", tool.name))),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if stdout.len() as u64 > limit {
        return Err(SourceError::Message(format!(
            "{} printed more than {limit} bytes, the most kdeploy reads",
            tool.name
        )));
    }
    let stderr = String::from_utf8_lossy(&stderr);
    if !status.success() {
        let said = redactor.redact(stderr.trim());
        return Err(SourceError::Message(format!(
            "{} failed ({}):\n{}",
            tool.name,
            status,
            if said.is_empty() {
                "(it printed nothing on stderr)".to_owned()
            } else {
                said
            }
        )));
    }
    String::from_utf8(stdout)
        .map_err(|_| SourceError::Message(format!("{} printed output that is not UTF-8", tool.name)))
}
