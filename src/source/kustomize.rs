//! kustomize sources: a kustomization folder built by the user's own `kustomize build`, or by
//! `kubectl kustomize` when only kubectl is installed (kdeploy.yaml's `tools:` may name either). The
//! output is read as plain manifests.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::{SourceContext, SourceError, Tool, find_on_path, plain, run_tool};
use crate::template::RenderedDocument;

/// The program that builds kustomizations, with the arguments before the folder.
fn builder(context: &SourceContext<'_>) -> Result<(Tool, Vec<String>), SourceError> {
    let kustomize = |path| {
        (
            Tool {
                path,
                name: "kustomize build".to_owned(),
            },
            vec!["build".to_owned()],
        )
    };
    let kubectl = |path| {
        (
            Tool {
                path,
                name: "kubectl kustomize".to_owned(),
            },
            vec!["kustomize".to_owned()],
        )
    };
    if let Some(path) = &context.tools.kustomize {
        return Ok(kustomize(path.clone()));
    }
    if let Some(path) = find_on_path("kustomize") {
        return Ok(kustomize(path));
    }
    if let Some(path) = context.tools.kubectl.clone().or_else(|| find_on_path("kubectl")) {
        return Ok(kubectl(path));
    }
    Err(SourceError::Message(
        "needs `kustomize` or `kubectl` to build it, and neither is on PATH; install one, or name it under \
         `tools:` in kdeploy.yaml (tools: {kustomize: /path/to/kustomize})"
            .to_owned(),
    ))
}

pub fn build(dir: &Path, context: &SourceContext<'_>) -> Result<Vec<RenderedDocument>, SourceError> {
    crate::trust::confine(dir, "kustomization")?;
    if !dir.is_dir() {
        return Err(SourceError::Message(format!("{} is not a folder", dir.display())));
    }
    if crate::trust::untrusted() {
        check_tree(dir, &mut crate::trust::Walk::default())?;
    }
    let (tool, mut args) = builder(context)?;
    args.push(dir.display().to_string());
    let output = run_tool(&tool, &args, None, context.redactor)?;
    let label = Path::new(&format!("{} (kustomize output)", dir.display())).to_path_buf();
    plain::parse(&label, &output, true)
}

/// The file names kustomize looks for in a folder.
const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// In untrusted mode, everything a kustomization hands kustomize stays inside the repository:
/// kustomize follows `resources:` and bases anywhere on disk (its load restrictor covers files, not
/// bases), fetches remote bases and runs helm for `helmCharts:`. Every path field, in this
/// kustomization and the ones it builds on, is checked before kustomize runs.
fn check_tree(dir: &Path, seen: &mut crate::trust::Walk) -> Result<(), SourceError> {
    if !seen.enter(dir, "kustomization")? {
        return Ok(());
    }
    let Some(file) = KUSTOMIZATION_FILES.iter().map(|n| dir.join(n)).find(|p| p.is_file()) else {
        return Ok(());
    };
    let text = crate::trust::read_text(
        &file,
        "kustomization",
        crate::trust::policy().limits.max_text_file_bytes,
    )?;
    let documents = crate::yaml::json_documents(&text).map_err(|e| SourceError::Message(e.at(&file)))?;
    let refuse = |what: &str| {
        SourceError::Message(format!(
            "{}: {what}: untrusted mode builds only kustomizations whose every file lies inside the repository",
            file.display()
        ))
    };
    for document in documents {
        let kustomization = &document.root;
        for field in ["helmCharts", "helmGlobals", "generators", "transformers", "validators"] {
            if !kustomization[field].is_null() {
                return Err(refuse(&format!("`{field}:` runs programs")));
            }
        }
        for reference in references(kustomization) {
            if reference.contains("://")
                || reference.starts_with("git@")
                || reference.contains("?ref=")
                || reference.starts_with("github.com/")
            {
                return Err(refuse(&format!("`{reference}` is remote")));
            }
            let path: PathBuf = dir.join(&reference);
            crate::trust::confine(&path, "a path in a kustomization")?;
            if path.is_dir() {
                check_tree(&path, seen)?;
            }
        }
    }
    Ok(())
}

/// Every path a kustomization names.
fn references(kustomization: &Json) -> Vec<String> {
    let mut found = Vec::new();
    let strings = |value: &Json| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .map(str::to_owned)
            .collect()
    };
    for field in ["resources", "bases", "components", "crds", "configurations"] {
        found.extend(strings(&kustomization[field]));
    }
    // An entry with a line break is an inline patch, not a file.
    found.extend(
        strings(&kustomization["patchesStrategicMerge"])
            .into_iter()
            .filter(|p| !p.contains('\n')),
    );
    for field in ["patches", "patchesJson6902", "replacements"] {
        for entry in kustomization[field].as_array().into_iter().flatten() {
            found.extend(entry["path"].as_str().map(str::to_owned));
        }
    }
    found.extend(kustomization["openapi"]["path"].as_str().map(str::to_owned));
    for field in ["configMapGenerator", "secretGenerator"] {
        for generator in kustomization[field].as_array().into_iter().flatten() {
            for file in strings(&generator["files"]) {
                // `key=path` names the key the file's content is stored under.
                found.push(file.split_once('=').map_or(file.clone(), |(_, path)| path.to_owned()));
            }
            found.extend(strings(&generator["envs"]));
            found.extend(generator["env"].as_str().map(str::to_owned));
        }
    }
    found
}
