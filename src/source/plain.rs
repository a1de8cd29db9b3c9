//! Plain manifests: YAML (or JSON) files read exactly as kubectl reads them, never templated. `{{` and
//! every other byte mean what they mean to the program the YAML is for. YAML 1.1 resolution (`0755` is
//! 493), anchors expanded, empty and comment-only documents skipped, `*List` kinds unpacked later by the
//! manifest stage; a duplicate key is an error naming the file, line and column.

use std::path::{Path, PathBuf};

use super::SourceError;
use crate::diagnostic;
use crate::template::RenderedDocument;
use crate::yaml;

/// The extensions kubectl reads from a folder.
const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// The manifest files of `root`: the file itself, or every YAML and JSON file under the folder
/// (recursively, in name order), leaving out hidden files and `data_files` (the project file, values,
/// env and vault files, which are the project's data, not its objects).
pub fn files(root: &Path, data_files: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    crate::trust::confine(root, "manifests")?;
    let metadata = std::fs::metadata(root).map_err(|e| SourceError::io(root, e))?;
    if metadata.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let data_files: Vec<PathBuf> = data_files.iter().filter_map(|p| p.canonicalize().ok()).collect();
    let mut found = Vec::new();
    walk(root, &data_files, &mut crate::trust::Walk::default(), &mut found)?;
    if found.is_empty() {
        return Err(SourceError::Message(format!(
            "{}: no .yaml, .yml or .json files in this folder",
            root.display()
        )));
    }
    Ok(found)
}

fn walk(
    dir: &Path,
    data_files: &[PathBuf],
    seen: &mut crate::trust::Walk,
    found: &mut Vec<PathBuf>,
) -> Result<(), SourceError> {
    if !seen.enter(dir, "manifests folder")? {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| SourceError::io(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| SourceError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, data_files, seen, found)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
            && !is_data_file(&path, data_files)
        {
            found.push(path);
        }
    }
    Ok(())
}

fn is_data_file(path: &Path, data_files: &[PathBuf]) -> bool {
    let named_alike = data_files.iter().any(|data| data.file_name() == path.file_name());
    named_alike && path.canonicalize().is_ok_and(|p| data_files.contains(&p))
}

/// Reads one file's documents.
pub fn read_file(path: &Path) -> Result<Vec<RenderedDocument>, SourceError> {
    let text = crate::trust::read_text(path, "manifest", crate::yaml::limits::MAX_INPUT_BYTES as u64)?;
    parse(path, &text, false)
}

/// Parses a stream of manifests; `rendered` says whether its lines are a program's output (helm,
/// kustomize) rather than a file as written.
pub fn parse(label: &Path, text: &str, rendered: bool) -> Result<Vec<RenderedDocument>, SourceError> {
    let error = |mark: yaml::Mark, message: &str| -> SourceError {
        diagnostic::SourceError::new(message, label, Some(text), mark.line, mark.column).into()
    };
    let documents = yaml::json_documents(text).map_err(|e| error(e.mark, &e.message))?;
    let shared: std::sync::Arc<str> = std::sync::Arc::from(text);
    Ok(documents
        .into_iter()
        .enumerate()
        .map(|(i, document)| RenderedDocument {
            template: label.to_path_buf(),
            index: i + 1,
            line: document.mark.line,
            rendered,
            value: document.root,
            text: Some(shared.clone()),
            ..RenderedDocument::default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_as_kubectl_does_and_keeps_template_text() {
        let text = "# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  rule: '{{ $labels.pod }}'\n  mode: 0755\n---\n---\n";
        let documents = parse(Path::new("c.yaml"), text, false).unwrap();
        let objects: Vec<_> = documents.iter().filter(|d| !d.value.is_null()).collect();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].value["data"]["rule"], json!("{{ $labels.pod }}"));
        assert_eq!(objects[0].value["data"]["mode"], json!(493));
        assert_eq!(objects[0].line, 3);
    }

    #[test]
    fn a_duplicate_key_names_file_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  name: d\n";
        let err = parse(Path::new("dup.yaml"), text, false).unwrap_err().to_string();
        assert!(
            err.contains("duplicate key `name`") && err.contains("dup.yaml:5:"),
            "{err}"
        );
    }
}
