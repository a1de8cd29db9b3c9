//! Reading each kind of value source, in precedence order, into [`Values`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Origin, Values, ValuesError};
use crate::diagnostic::SourceError;
use crate::yaml::{Mark, Node, NodeValue, Scalar, parse_stream};

/// The value sources of one command, each list in command-line order.
#[derive(Debug, Default, Clone)]
pub struct ValueFlags {
    /// Values files from kdeploy.yaml, then from the selected target.
    pub project_files: Vec<PathBuf>,
    /// `--data-values-file PATH` (a file, or a folder of `*.yaml`/`*.yml` files).
    pub files: Vec<PathBuf>,
    /// `--data-values-env PREFIX`: `PREFIX_a__b=v` sets `a.b` to the string `v`.
    pub env_prefixes: Vec<String>,
    /// `--data-values-env-yaml PREFIX`: the same, with each value read as YAML.
    pub env_yaml_prefixes: Vec<String>,
    /// `--data-value key.path=value`: always a string.
    pub strings: Vec<String>,
    /// `--data-value-yaml key.path=yaml`.
    pub yamls: Vec<String>,
    /// `--data-value-file key.path=file`: the file's content as a string.
    pub file_contents: Vec<String>,
}

/// Merges every source in precedence order (lowest first).
pub fn load_values(flags: &ValueFlags, process_env: &BTreeMap<String, String>) -> Result<Values, ValuesError> {
    let mut values = Values::default();
    for path in &flags.project_files {
        merge_values_file(&mut values, path)?;
    }
    for path in &flags.files {
        for file in values_files_in(path)? {
            merge_values_file(&mut values, &file)?;
        }
    }
    for (prefixes, flag, as_yaml) in [
        (&flags.env_prefixes, "--data-values-env", false),
        (&flags.env_yaml_prefixes, "--data-values-env-yaml", true),
    ] {
        for prefix in prefixes {
            let start = format!("{prefix}_");
            for (name, raw) in process_env.iter().filter(|(name, _)| name.starts_with(&start)) {
                if let Some(why) = crate::trust::env_refusal(name).filter(|_| crate::trust::is_credential(name)) {
                    return Err(flag_error(flag, name, &why));
                }
                let path: Vec<String> = name[start.len()..].split("__").map(str::to_owned).collect();
                if path.iter().any(String::is_empty) {
                    return Err(flag_error(flag, name, "has an empty key segment"));
                }
                let node = if as_yaml {
                    yaml_value(raw).map_err(|p| flag_error(flag, name, &p))?
                } else {
                    string_node(raw)
                };
                values.merge(&path, node, &|_| Origin::EnvVar { name: name.clone() });
            }
        }
    }
    for argument in &flags.strings {
        let (path, raw) = key_value("--data-value", argument)?;
        values.merge(&path, string_node(raw), &flag_origin("--data-value", &path));
    }
    for argument in &flags.yamls {
        let (path, raw) = key_value("--data-value-yaml", argument)?;
        let node = yaml_value(raw).map_err(|p| flag_error("--data-value-yaml", &path.join("."), &p))?;
        values.merge(&path, node, &flag_origin("--data-value-yaml", &path));
    }
    for argument in &flags.file_contents {
        let (path, file) = key_value("--data-value-file", argument)?;
        let content = std::fs::read_to_string(file).map_err(|source| ValuesError::Read {
            what: "--data-value-file",
            path: PathBuf::from(file),
            source,
        })?;
        values.merge(&path, string_node(&content), &flag_origin("--data-value-file", &path));
    }
    Ok(values)
}

fn flag_origin(flag: &'static str, path: &[String]) -> impl Fn(Mark) -> Origin {
    let key = path.join(".");
    move |_| Origin::Flag {
        flag,
        argument: key.clone(),
    }
}

/// Errors name the key, never the value: values given on the command line are often secrets.
fn flag_error(flag: &'static str, key: &str, problem: &str) -> ValuesError {
    ValuesError::Flag {
        flag,
        argument: key.to_owned(),
        problem: problem.to_owned(),
    }
}

/// `a.b.c=value` -> (["a", "b", "c"], "value").
fn key_value<'a>(flag: &'static str, argument: &'a str) -> Result<(Vec<String>, &'a str), ValuesError> {
    let Some((key, value)) = argument.split_once('=') else {
        let shown = if argument.len() > 40 { "(argument)" } else { argument };
        return Err(flag_error(flag, shown, "expected key.path=value"));
    };
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    if path.iter().any(|p| p.trim().is_empty()) {
        return Err(flag_error(flag, key, "the key path has an empty segment"));
    }
    Ok((path, value))
}

fn string_node(text: &str) -> Node {
    Node::new(NodeValue::Scalar(Scalar::String(text.to_owned())), Mark::default())
}

fn yaml_value(text: &str) -> Result<Node, String> {
    let mut documents = parse_stream(text, &mut |_| Ok(None)).map_err(|e| format!("not valid YAML: {e}"))?;
    match documents.len() {
        0 => Ok(Node::new(NodeValue::Scalar(Scalar::Null), Mark::default())),
        1 => Ok(documents.remove(0).root),
        _ => Err("expected one YAML document".to_owned()),
    }
}

fn values_files_in(path: &Path) -> Result<Vec<PathBuf>, ValuesError> {
    let read_error = |source| ValuesError::Read {
        what: "values file",
        path: path.to_path_buf(),
        source,
    };
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ValuesError::Flag {
            flag: "--data-values-file",
            argument: path.display().to_string(),
            problem: "the folder holds no *.yaml or *.yml file".to_owned(),
        });
    }
    Ok(files)
}

/// A key that is empty (`"": x`) cannot be reached from a template.
fn empty_key(node: &Node) -> Option<Mark> {
    match &node.value {
        NodeValue::Map(entries) => entries.iter().find_map(|(key, entry)| {
            if key.is_empty() {
                Some(entry.key_mark)
            } else {
                empty_key(&entry.value)
            }
        }),
        NodeValue::Seq(items) => items.iter().find_map(empty_key),
        NodeValue::Scalar(_) => None,
    }
}

fn merge_values_file(values: &mut Values, path: &Path) -> Result<(), ValuesError> {
    let text = crate::trust::read_text(path, "values file", crate::yaml::limits::MAX_INPUT_BYTES as u64)?;
    let documents = parse_stream(&text, &mut |_| Ok(None)).map_err(|e| {
        SourceError::new(
            format!("invalid YAML in values file: {}", e.message),
            path,
            Some(&text),
            e.mark.line,
            e.mark.column,
        )
    })?;
    for document in documents {
        if let Some(mark) = empty_key(&document.root) {
            return Err(SourceError::new(
                "an empty key in a values file; templates cannot name it",
                path,
                Some(&text),
                mark.line,
                mark.column,
            )
            .into());
        }
        match document.root.value {
            NodeValue::Map(_) => {}
            NodeValue::Scalar(Scalar::Null) => continue,
            _ => {
                let m = document.root.mark;
                return Err(SourceError::new(
                    "a values file must hold a mapping (key: value) at the top",
                    path,
                    Some(&text),
                    m.line,
                    m.column,
                )
                .into());
            }
        }
        let origin = |mark: Mark| Origin::File {
            path: path.to_path_buf(),
            line: mark.line,
            column: mark.column,
        };
        values.merge(&[], document.root, &origin);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn precedence_is_files_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.yaml");
        std::fs::write(&base, "a: file\nb: file\nc: file\nd: file\nport: 80\n").unwrap();
        let content = dir.path().join("cert.pem");
        std::fs::write(&content, "-----BEGIN-----\n").unwrap();
        let flags = ValueFlags {
            project_files: vec![base],
            env_prefixes: vec!["DV".into()],
            env_yaml_prefixes: vec!["DVY".into()],
            strings: vec!["c=flag: with colon".into(), "port=8080".into()],
            yamls: vec!["d=[1, yes]".into()],
            file_contents: vec![format!("cert={}", content.display())],
            ..Default::default()
        };
        let env: BTreeMap<String, String> = [("DV_a", "env"), ("DV_nested__x", "1"), ("DVY_b", "2"), ("OTHER", "x")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let values = load_values(&flags, &env).unwrap();
        assert_eq!(
            values.to_json().unwrap(),
            json!({"a": "env", "b": 2, "c": "flag: with colon", "d": [1, true], "port": "8080", "nested": {"x": "1"}, "cert": "-----BEGIN-----\n"})
        );
    }

    #[test]
    fn bad_input_is_named_without_echoing_values() {
        let err = load_values(
            &ValueFlags {
                strings: vec!["novalue".into()],
                ..Default::default()
            },
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("expected key.path=value"), "{err}");
        let err = load_values(
            &ValueFlags {
                yamls: vec!["k=[unclosed hunter2".into()],
                ..Default::default()
            },
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--data-value-yaml k") && !err.contains("hunter2"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.yaml");
        std::fs::write(&file, "a: 1\n- b\n").unwrap();
        let err = load_values(
            &ValueFlags {
                files: vec![file],
                ..Default::default()
            },
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("v.yaml:2:"), "{err}");
    }

    #[test]
    fn empty_keys_and_empty_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.yaml");
        std::fs::write(&file, "a:\n  b: 1\n  \"\": 2\n").unwrap();
        let load = |files: Vec<PathBuf>| {
            load_values(
                &ValueFlags {
                    files,
                    ..Default::default()
                },
                &BTreeMap::new(),
            )
            .unwrap_err()
            .to_string()
        };
        let err = load(vec![file]);
        assert!(err.contains("empty key") && err.contains("v.yaml:3:3"), "{err}");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        std::fs::write(empty.join("notes.txt"), "x").unwrap();
        let err = load(vec![empty]);
        assert!(err.contains("--data-values-file") && err.contains("no *.yaml"), "{err}");
    }
}
