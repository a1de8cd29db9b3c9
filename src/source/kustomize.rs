//! kustomize sources: a kustomization folder built by the user's own `kustomize build`, or by
//! `kubectl kustomize` when only kubectl is installed (kdeploy.yaml's `tools:` may name either). The
//! output is read as plain manifests.

use std::path::Path;

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
    if !dir.is_dir() {
        return Err(SourceError::Message(format!("{} is not a folder", dir.display())));
    }
    let (tool, mut args) = builder(context)?;
    args.push(dir.display().to_string());
    let output = run_tool(&tool, &args, None, context.redactor)?;
    let label = Path::new(&format!("{} (kustomize output)", dir.display())).to_path_buf();
    plain::parse(&label, &output, true)
}
