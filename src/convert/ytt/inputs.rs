//! Reading a ytt configuration as ytt reads it: the `-f` files and folders (folders recursively, in
//! path order, `_ytt_lib` left out, links refused), each file capped, and the names `load()` uses.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{ConvertError, FileReport};

/// The largest file the converter reads; ytt configurations are far smaller.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// The most files it reads.
const MAX_FILES: usize = 10_000;

fn input_error(path: &Path, message: impl Into<String>) -> ConvertError {
    ConvertError::Input {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// One file of the configuration.
pub struct InputFile {
    /// Its path as ytt names it: relative to the `-f` folder, or the file's name.
    pub name: String,
    pub text: String,
    pub kind: FileKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Template,
    Library,
    Star,
    Other,
}

pub fn kind_of(name: &str) -> FileKind {
    if name.ends_with(".lib.yml") || name.ends_with(".lib.yaml") {
        FileKind::Library
    } else if name.ends_with(".yml") || name.ends_with(".yaml") {
        FileKind::Template
    } else if name.ends_with(".star") {
        FileKind::Star
    } else {
        FileKind::Other
    }
}

/// Reads the `-f` paths as ytt does: folders recursively in path order, `_ytt_lib` left out.
pub fn read_inputs(paths: &[PathBuf], report: &mut Vec<FileReport>) -> Result<Vec<InputFile>, ConvertError> {
    let mut out: Vec<InputFile> = Vec::new();
    for path in paths {
        let meta = std::fs::symlink_metadata(path).map_err(|e| input_error(path, e.to_string()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, path, &mut found, report)?;
            found.sort();
            for (name, file) in found {
                out.push(read_file(&file, name)?);
            }
        } else if meta.is_file() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| input_error(path, "not a file name"))?;
            out.push(read_file(path, name)?);
        } else {
            return Err(input_error(
                path,
                "not a regular file or folder (links are not followed)",
            ));
        }
        if out.len() > MAX_FILES {
            return Err(input_error(path, format!("more than {MAX_FILES} files")));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for f in &out {
        if !seen.insert(f.name.clone()) {
            return Err(ConvertError::Input {
                path: f.name.clone(),
                message: "given twice (two -f paths hold a file of this name)".into(),
            });
        }
    }
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    found: &mut Vec<(String, PathBuf)>,
    report: &mut Vec<FileReport>,
) -> Result<(), ConvertError> {
    let entries = std::fs::read_dir(dir).map_err(|e| input_error(dir, e.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|e| input_error(dir, e.to_string()))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| input_error(&path, e.to_string()))?;
        let name = relative_name(root, &path);
        if file_type.is_dir() {
            if entry.file_name() == "_ytt_lib" {
                report.push(FileReport {
                    file: format!("{name}/"),
                    became: "left out: ytt libraries (_ytt_lib) do not convert, and ytt renders them only when loaded"
                        .into(),
                    constructs: BTreeMap::new(),
                });
                continue;
            }
            walk(root, &path, found, report)?;
        } else if file_type.is_file() {
            found.push((name, path));
        } else {
            return Err(input_error(&path, "a link (the converter does not follow links)"));
        }
        if found.len() > MAX_FILES {
            return Err(input_error(dir, format!("more than {MAX_FILES} files")));
        }
    }
    Ok(())
}

fn relative_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn read_file(path: &Path, name: String) -> Result<InputFile, ConvertError> {
    use std::io::Read;
    let kind = kind_of(&name);
    let file = std::fs::File::open(path).map_err(|e| input_error(path, e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| input_error(path, e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(input_error(path, format!("larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) if kind == FileKind::Other => String::new(),
        Err(_) => return Err(input_error(path, "not UTF-8 text")),
    };
    Ok(InputFile { name, text, kind })
}

/// The input a `load("path")` in `from` names, by ytt's rules: relative to the loading file.
pub fn resolve_load(from: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    // `/dir/x.lib.yml` is relative to the root of the configuration.
    let target = match target.strip_prefix('/') {
        Some(rooted) => {
            parts.clear();
            rooted
        }
        None => target,
    };
    for c in Path::new(target).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    Some(parts.join("/"))
}
