//! Helm chart sources, rendered by the user's own `helm` binary (`helm template`): a chart folder, a
//! packaged `.tgz`, a chart from an HTTP repository (`repo:` + `version:`) or from an OCI registry
//! (`oci://…` + `version:`). Remote charts are pulled once per version into the cache (or read from
//! the project's `vendor/`, written by `kdeploy vendor`).
//!
//! Chart values may use `{{ values.* }}`, `{{ env.* }}` and `{{ secrets.* }}`; kdeploy renders them
//! first (a string that is one expression keeps the value's type) and hands them to helm on stdin, so
//! a secret never touches the disk. What helm prints on failure is masked like every other message.
//!
//! Hooks become phases: `pre-install`/`pre-upgrade` objects go to phase `pre` and
//! `post-install`/`post-upgrade` ones to `post` (unless they name a `kdeploy.dev/phase` themselves), so
//! apply awaits a migration hook before the release's workloads, as helm does. A hook deleted
//! `before-hook-creation` is replaced when its change is immutable (a Job's new template), which is what
//! that policy is for. Other hooks (`*-delete`, `*-rollback`, `test`) have no meaning outside
//! `helm install` and are left out with a warning that names them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::manifest::phase::{PHASE_ANNOTATION, REPLACE_ANNOTATION};

use super::{Rendered, SourceContext, SourceError, Tool, find_on_path, plain, run_tool};
use crate::template::{RenderedDocument, TemplateSet, TemplateSource};
use crate::util::hex;

fn yes() -> bool {
    true
}

/// A `helm:` source.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelmChart {
    /// A chart folder or `.tgz` (relative to the project), a chart name in `repo`, or `oci://HOST/PATH`.
    pub chart: String,
    /// The chart repository's URL (`https://…`), for a chart given by name.
    pub repo: Option<String>,
    /// The chart version; required for charts from a repository or registry.
    pub version: Option<String>,
    /// The release name (default: the chart's name).
    pub release: Option<String>,
    /// The release namespace (default: the source's, else the project's).
    pub namespace: Option<String>,
    /// Values, highest precedence; strings may use `{{ values.* }}`, `{{ env.* }}`, `{{ secrets.* }}`.
    pub values: Option<Json>,
    /// Values files, relative to the project; later ones win, `values:` wins over all.
    #[serde(default)]
    pub values_files: Vec<PathBuf>,
    /// Render the chart's `crds/` folder too (default true).
    #[serde(default = "yes")]
    pub include_crds: bool,
    /// The project file, for messages.
    #[serde(skip)]
    pub project_file: PathBuf,
}

impl HelmChart {
    pub fn is_remote(&self) -> bool {
        self.repo.is_some() || self.chart.starts_with("oci://")
    }

    /// The chart's own name: the last part of its path or reference.
    pub fn name(&self) -> &str {
        let trimmed = self.chart.trim_end_matches('/');
        let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
        last.strip_suffix(".tgz").unwrap_or(last)
    }

    pub fn release_name(&self) -> String {
        self.release.clone().unwrap_or_else(|| {
            // A packaged chart is named NAME-VERSION.tgz; the release is NAME.
            let name = self.name();
            match name.rsplit_once('-') {
                Some((base, version))
                    if self.chart.ends_with(".tgz") && version.starts_with(|c: char| c.is_ascii_digit()) =>
                {
                    base.to_owned()
                }
                _ => name.to_owned(),
            }
        })
    }

    /// Where this chart is kept once pulled, below the cache's or the vendor folder's `charts/`.
    pub fn storage_key(&self) -> String {
        let reference = format!(
            "{}\n{}\n{}",
            self.repo.as_deref().unwrap_or_default(),
            self.chart,
            self.version.as_deref().unwrap_or_default()
        );
        let digest = hex(&Sha256::digest(reference.as_bytes()));
        format!(
            "{}-{}-{}",
            self.name(),
            self.version.as_deref().unwrap_or("local"),
            &digest[..12]
        )
    }
}

impl fmt::Display for HelmChart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.chart)?;
        if let Some(version) = &self.version {
            write!(f, " {version}")?;
        }
        if let Some(repo) = &self.repo {
            write!(f, " from {repo}")?;
        }
        write!(f, " (release {})", self.release_name())
    }
}

pub(crate) fn helm_tool(context: &SourceContext<'_>) -> Result<Tool, SourceError> {
    let path = context.tools.helm.clone().or_else(|| find_on_path("helm")).ok_or_else(|| {
        SourceError::Message(
            "needs the `helm` binary, which is not on PATH; install Helm 3 (https://helm.sh/docs/intro/install/) \
             or name it under `tools:` in kdeploy.yaml (tools: {helm: /path/to/helm}). Projects without charts never need it"
                .to_owned(),
        )
    })?;
    Ok(Tool {
        path,
        name: "helm".to_owned(),
    })
}

/// The chart folder or archive `helm template` reads: local as given, remote pulled (once per version).
pub fn chart_location(chart: &HelmChart, context: &SourceContext<'_>) -> Result<PathBuf, SourceError> {
    if !chart.is_remote() {
        let path = PathBuf::from(&chart.chart);
        crate::trust::confine(&path, "chart")?;
        if crate::trust::untrusted() && path.is_dir() {
            // helm follows symlinks inside a chart folder: each must stay in the repository too.
            confine_tree(&path, &mut crate::trust::Walk::default())?;
        }
        if !path.exists() {
            return Err(SourceError::Message(format!(
                "{}: no chart folder or archive at {} (a chart from a repository needs `repo:` and `version:`)",
                chart.project_file.display(),
                path.display()
            )));
        }
        return Ok(path);
    }
    let Some(version) = &chart.version else {
        return Err(SourceError::Message(format!(
            "{}: chart {} comes from a repository, so it needs a `version:` (pinned, so that every render is the same)",
            chart.project_file.display(),
            chart.chart
        )));
    };
    let key = chart.storage_key();
    let vendored = vendor_dir(context.project_dir).join(&key);
    let cached = context.cache_dir.join("sources").join("charts").join(&key);
    for dir in [&vendored, &cached] {
        if let Some(archive) = archive_in(dir) {
            return Ok(archive);
        }
    }
    pull(chart, version, &cached, context)?;
    crate::util::trim_cache(&context.cache_dir.join("sources"), crate::util::cache_limit(), &cached);
    archive_in(&cached)
        .ok_or_else(|| SourceError::Message(format!("helm pull left no chart archive in {}", cached.display())))
}

/// The project's vendored charts.
pub fn vendor_dir(project_dir: &Path) -> PathBuf {
    project_dir.join("vendor").join("charts")
}

fn archive_in(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
}

/// Every entry of a chart folder, symlinks followed, inside the repository.
fn confine_tree(dir: &Path, seen: &mut crate::trust::Walk) -> Result<(), SourceError> {
    if !seen.enter(dir, "chart folder")? {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| SourceError::io(dir, e))? {
        let path = entry.map_err(|e| SourceError::io(dir, e))?.path();
        crate::trust::confine(&path, "a file in a chart")?;
        if path.is_dir() {
            confine_tree(&path, seen)?;
        }
    }
    Ok(())
}

/// The host a remote chart is pulled from (`repo:` URL, or `oci://HOST/…`) and its port.
fn chart_host(chart: &HelmChart) -> Option<(String, u16)> {
    let url = chart.repo.as_deref().unwrap_or(&chart.chart);
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    let default = if scheme == "http" { 80 } else { 443 };
    Some(match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            (host.to_owned(), port.parse().unwrap_or(default))
        }
        _ => (authority.to_owned(), default),
    })
}

/// `helm pull` into a fresh folder next to `into`, renamed into place once complete.
pub fn pull(chart: &HelmChart, version: &str, into: &Path, context: &SourceContext<'_>) -> Result<(), SourceError> {
    if let Some((host, port)) = chart_host(chart) {
        crate::trust::check_host(&host, port)
            .map_err(|why| SourceError::Message(format!("chart {}: {why}", chart.chart)))?;
    }
    let helm = helm_tool(context)?;
    let parent = into.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| SourceError::io(parent, e))?;
    let staging = tempfile::TempDir::new_in(parent).map_err(|e| SourceError::io(parent, e))?;
    let mut args = vec![
        "pull".to_owned(),
        chart.chart.clone(),
        "--version".to_owned(),
        version.to_owned(),
        "--destination".to_owned(),
        staging.path().display().to_string(),
    ];
    if let Some(repo) = &chart.repo {
        args.extend(["--repo".to_owned(), repo.clone()]);
    }
    run_tool(&helm, &args, None, context.redactor)?;
    let _ = std::fs::remove_dir_all(into);
    let staging = staging.keep();
    std::fs::rename(&staging, into).map_err(|e| SourceError::io(into, e))?;
    Ok(())
}

pub fn render(
    chart: &HelmChart,
    namespace: Option<&str>,
    context: &SourceContext<'_>,
) -> Result<Rendered, SourceError> {
    for file in &chart.values_files {
        crate::trust::confine(file, "chart values file")?;
    }
    let location = chart_location(chart, context)?;
    let helm = helm_tool(context)?;
    let release = chart.release_name();
    let namespace = chart
        .namespace
        .as_deref()
        .or(namespace)
        .or(context.default_namespace)
        .unwrap_or("default");
    let mut args = vec![
        "template".to_owned(),
        release.clone(),
        location.display().to_string(),
        "--namespace".to_owned(),
        namespace.to_owned(),
    ];
    if chart.include_crds {
        args.push("--include-crds".to_owned());
    }
    if let Some(cluster) = context.cluster {
        args.extend(["--kube-version".to_owned(), cluster.kube_version.clone()]);
        for api_version in &cluster.api_versions {
            args.extend(["--api-versions".to_owned(), api_version.clone()]);
        }
    }
    for file in &chart.values_files {
        if !file.is_file() {
            return Err(SourceError::Message(format!(
                "values file {} does not exist",
                file.display()
            )));
        }
        args.extend(["--values".to_owned(), file.display().to_string()]);
    }
    let values = match &chart.values {
        Some(values) if !values.is_null() => Some(template_values(values, chart, context)?),
        _ => None,
    };
    let stdin = values.map(|v| serde_json::to_vec(&v).unwrap_or_default());
    if stdin.is_some() {
        args.extend(["--values".to_owned(), "-".to_owned()]);
    }
    let output = run_tool(&helm, &args, stdin.as_deref(), context.redactor)?;
    let label = PathBuf::from(format!("helm {release}"));
    let documents = plain::parse(&label, &output, true)?;
    let sources = source_comments(&output);
    let mut rendered = Rendered::default();
    let mut left_out: Vec<String> = Vec::new();
    for mut document in documents {
        if let Some((_, template)) = sources.iter().rev().find(|(line, _)| *line < document.line) {
            document.template = PathBuf::from(format!("helm {release}: {template}"));
        }
        match hooks(&document) {
            None => rendered.documents.push(document),
            Some(hooks) => match hook_phase(&hooks) {
                Some(phase) => {
                    hook_to_phase(&mut document.value, phase);
                    rendered.documents.push(document);
                }
                None => left_out.push(format!("{} ({})", describe(&document.value), hooks.join(","))),
            },
        }
    }
    if !left_out.is_empty() {
        rendered.warnings.push(format!(
            "helm {release}: hooks other than pre-/post-install and -upgrade only run under `helm install`; left out: {}",
            left_out.join(", ")
        ));
    }
    Ok(rendered)
}

/// The phase of an install or upgrade hook; none for other hooks.
fn hook_phase(hooks: &[String]) -> Option<&'static str> {
    let has = |names: [&str; 2]| hooks.iter().any(|h| names.contains(&h.as_str()));
    if has(["pre-install", "pre-upgrade"]) {
        Some("pre")
    } else if has(["post-install", "post-upgrade"]) {
        Some("post")
    } else {
        None
    }
}

/// Puts a hook in its phase (unless it names one), and lets a hook that helm re-creates every time be
/// replaced when its change is immutable.
fn hook_to_phase(object: &mut Json, phase: &str) {
    let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Json::as_object_mut)
    else {
        return;
    };
    annotations
        .entry(PHASE_ANNOTATION)
        .or_insert_with(|| Json::String(phase.to_owned()));
    let recreated = annotations
        .get("helm.sh/hook-delete-policy")
        .and_then(Json::as_str)
        .is_some_and(|p| p.split(',').any(|p| p.trim() == "before-hook-creation"));
    if recreated {
        annotations
            .entry(REPLACE_ANNOTATION)
            .or_insert_with(|| Json::String("true".to_owned()));
    }
}

/// The `helm.sh/hook` annotation's hooks, if the object is a hook.
fn hooks(document: &RenderedDocument) -> Option<Vec<String>> {
    let hooks = document
        .value
        .pointer("/metadata/annotations/helm.sh~1hook")?
        .as_str()?;
    Some(hooks.split(',').map(|h| h.trim().to_owned()).collect())
}

fn describe(value: &Json) -> String {
    let kind = value.get("kind").and_then(Json::as_str).unwrap_or("object");
    let name = value.pointer("/metadata/name").and_then(Json::as_str).unwrap_or("?");
    format!("{kind}/{name}")
}

/// `# Source: chart/templates/x.yaml` lines in helm's output, with their line numbers.
fn source_comments(output: &str) -> Vec<(usize, String)> {
    output
        .lines()
        .enumerate()
        .filter_map(|(i, line)| Some((i + 1, line.strip_prefix("# Source: ")?.trim().to_owned())))
        .collect()
}

/// Renders the Tera expressions in a chart's `values:`. A string that is one `{{ expression }}` takes
/// the value's type; any other string with an expression stays a string.
fn template_values(values: &Json, chart: &HelmChart, context: &SourceContext<'_>) -> Result<Json, SourceError> {
    let mut strings: Vec<String> = Vec::new();
    collect_templated(values, &mut strings);
    if strings.is_empty() {
        return Ok(values.clone());
    }
    let label = PathBuf::from(format!(
        "{} (helm {} values)",
        chart.project_file.display(),
        chart.release_name()
    ));
    let sources = strings
        .iter()
        .enumerate()
        .map(|(i, text)| TemplateSource {
            name: format!("values-{i:06}"),
            path: label.clone(),
            text: template_text(text),
            renderable: true,
        })
        .collect();
    let set = TemplateSet::from_sources(sources)?;
    let rendered = set.render(context.templates)?;
    let mut results = rendered.documents.into_iter().map(|d| d.value);
    Ok(replace_templated(values, &mut results))
}

fn is_templated(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

fn collect_templated(value: &Json, found: &mut Vec<String>) {
    match value {
        Json::String(text) if is_templated(text) => found.push(text.clone()),
        Json::Array(items) => items.iter().for_each(|v| collect_templated(v, found)),
        Json::Object(map) => map.values().for_each(|v| collect_templated(v, found)),
        _ => {}
    }
}

fn replace_templated(value: &Json, results: &mut dyn Iterator<Item = Json>) -> Json {
    match value {
        Json::String(text) if is_templated(text) => results.next().unwrap_or(Json::Null),
        Json::Array(items) => Json::Array(items.iter().map(|v| replace_templated(v, results)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), replace_templated(v, results)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The template for one string: the expression alone (typed), or the text as a literal block (a string).
fn template_text(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.starts_with("{{") && trimmed.ends_with("}}") && trimmed.matches("{{").count() == 1 {
        return trimmed.to_owned();
    }
    let chomp = if text.ends_with('\n') { "+" } else { "-" };
    let mut block = format!("|2{chomp}\n");
    for line in text.split_inclusive('\n') {
        block.push_str("  ");
        block.push_str(line);
    }
    if !block.ends_with('\n') {
        block.push('\n');
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateContext;
    use serde_json::json;

    #[test]
    fn install_and_upgrade_hooks_become_phases() {
        let hooks = |text: &str| text.split(',').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(hook_phase(&hooks("pre-install,pre-upgrade")), Some("pre"));
        assert_eq!(hook_phase(&hooks("post-upgrade")), Some("post"));
        assert_eq!(hook_phase(&hooks("test")), None);
        assert_eq!(hook_phase(&hooks("pre-delete")), None);
        let mut job = json!({"metadata": {"annotations": {"helm.sh/hook": "pre-upgrade",
            "helm.sh/hook-delete-policy": "hook-succeeded,before-hook-creation"}}});
        hook_to_phase(&mut job, "pre");
        let annotations = &job["metadata"]["annotations"];
        assert_eq!(annotations[PHASE_ANNOTATION], "pre");
        assert_eq!(annotations[REPLACE_ANNOTATION], "true");
        // A phase the chart names itself is kept; no delete policy, no replacing.
        let mut own = json!({"metadata": {"annotations": {"helm.sh/hook": "post-install", PHASE_ANNOTATION: "5"}}});
        hook_to_phase(&mut own, "post");
        assert_eq!(own["metadata"]["annotations"][PHASE_ANNOTATION], "5");
        assert!(own["metadata"]["annotations"].get(REPLACE_ANNOTATION).is_none());
    }

    #[test]
    fn values_keep_their_types_and_strings_stay_strings() {
        let chart = HelmChart {
            chart: "c".into(),
            ..HelmChart::default()
        };
        let templates = TemplateContext {
            values: json!({"replicas": 3, "host": "example.com", "flags": ["a", "b"]}),
            secrets: json!({"password": "p: 'w\"d"}),
            ..TemplateContext::default()
        };
        let redactor = crate::vault::redact::Redactor::new([]);
        let context = SourceContext {
            project_dir: Path::new("."),
            templates: &templates,
            data_files: &[],
            tools: &Default::default(),
            cluster: None,
            redactor: &redactor,
            cache_dir: PathBuf::from("."),
            default_namespace: None,
        };
        let values = json!({
            "replicas": "{{ values.replicas }}",
            "url": "https://{{ values.host }}/x",
            "flags": "{{ values.flags }}",
            "auth": {"password": "{{ secrets.password }}", "multi": " lead\n{{ values.host }}\n"},
            "plain": "keep"
        });
        let out = template_values(&values, &chart, &context).unwrap();
        assert_eq!(
            out,
            json!({
                "replicas": 3,
                "url": "https://example.com/x",
                "flags": ["a", "b"],
                "auth": {"password": "p: 'w\"d", "multi": " lead\nexample.com\n"},
                "plain": "keep"
            })
        );
    }

    #[test]
    fn release_names_come_from_the_chart() {
        let chart = |name: &str| HelmChart {
            chart: name.into(),
            ..HelmChart::default()
        };
        assert_eq!(chart("charts/web/").release_name(), "web");
        assert_eq!(chart("dist/web-1.2.3.tgz").release_name(), "web");
        assert_eq!(chart("oci://reg.example/charts/redis").release_name(), "redis");
    }
}
