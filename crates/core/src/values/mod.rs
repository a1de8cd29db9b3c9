//! Data values and the environment, from every source, with their precedence and provenance.
//!
//! [`Values`] are merged from sources in a fixed order (lowest first): values files from kdeploy.yaml
//! and the target, `--data-values-file`, `--data-values-env`, `--data-values-env-yaml`,
//! `--data-value`, `--data-value-yaml`, `--data-value-file`. Maps merge deeply; lists and scalars
//! replace. Every leaf remembers its [`Origin`], which `kdeploy values` shows.
//!
//! [`Env`] is what templates see as `env`: env files in order (`.env` through dotenvy, `.envrc` in
//! direnv's common subset, see [`envrc`]), with the process environment on top.

pub mod dotenv;
pub mod envrc;
mod sources;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

pub use sources::{ValueFlags, load_values};

use crate::diagnostic::SourceError;
use crate::yaml::{Entry, Mapping, Mark, Node, NodeValue};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { path: PathBuf, line: usize, column: usize },
    Flag { flag: &'static str, argument: String },
    EnvVar { name: String },
    Process,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, column } => write!(f, "{}:{line}:{column}", path.display()),
            Origin::Flag { flag, argument } => write!(f, "{flag} {argument}"),
            Origin::EnvVar { name } => write!(f, "env {name}"),
            Origin::Process => write!(f, "process environment"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error(transparent)]
    At(#[from] SourceError),
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error("{flag} {argument}: {problem}")]
    Flag {
        flag: &'static str,
        argument: String,
        problem: String,
    },
}

/// Merged data values and where each leaf came from.
#[derive(Debug, Clone)]
pub struct Values {
    root: Node,
    origins: BTreeMap<String, Origin>,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            root: Node::new(NodeValue::Map(Mapping::default()), Mark::default()),
            origins: BTreeMap::new(),
        }
    }
}

impl Values {
    /// Merges `node` at `path` (empty for the top level): maps merge deeply, anything else replaces.
    /// `origin` says where a leaf at a given mark came from.
    pub fn merge(&mut self, path: &[String], node: Node, origin: &dyn Fn(Mark) -> Origin) {
        let dotted = path.join(".");
        let mut target = &mut self.root;
        for (depth, segment) in path.iter().enumerate() {
            if !matches!(target.value, NodeValue::Map(_)) {
                forget_below(&mut self.origins, &path[..depth].join("."));
                target.value = NodeValue::Map(Mapping::default());
            }
            let NodeValue::Map(map) = &mut target.value else {
                unreachable!("made a map above")
            };
            target = &mut map
                .entry(segment.clone())
                .or_insert_with(|| Entry {
                    key_mark: node.mark,
                    value: Node::new(NodeValue::Map(Mapping::default()), node.mark),
                })
                .value;
        }
        merge_node(target, node, &dotted, &mut self.origins, origin);
    }

    pub fn to_json(&self) -> Result<Json, crate::yaml::NonFiniteFloat> {
        self.root.to_json()
    }

    /// Where the value at a dotted path was set, when it is a leaf that was set somewhere.
    pub fn origin(&self, path: &str) -> Option<&Origin> {
        self.origins.get(path)
    }

    /// Every leaf with its dotted path, value and origin, in document order.
    pub fn leaves(&self) -> Vec<(String, Json, Option<&Origin>)> {
        let mut out = Vec::new();
        self.root.for_each_leaf("", &mut |path, node| {
            if path.is_empty() {
                return; // no values at all: the root itself is an empty map
            }
            let value = node.to_json().unwrap_or(Json::Null);
            out.push((path.to_owned(), value, self.origins.get(path)));
        });
        out
    }
}

fn merge_node(
    target: &mut Node,
    overlay: Node,
    path: &str,
    origins: &mut BTreeMap<String, Origin>,
    origin: &dyn Fn(Mark) -> Origin,
) {
    match (&mut target.value, overlay.value) {
        (NodeValue::Map(existing), NodeValue::Map(incoming)) if !incoming.is_empty() => {
            for (key, entry) in incoming {
                let child_path = crate::yaml::join_path(path, &key);
                match existing.get_mut(&key) {
                    Some(current) => merge_node(&mut current.value, entry.value, &child_path, origins, origin),
                    None => {
                        record(&entry.value, &child_path, origins, origin);
                        existing.insert(key, entry);
                    }
                }
            }
        }
        (_, incoming) => {
            forget_below(origins, path);
            let replacement = Node::new(incoming, overlay.mark);
            record(&replacement, path, origins, origin);
            *target = replacement;
        }
    }
}

fn record(node: &Node, path: &str, origins: &mut BTreeMap<String, Origin>, origin: &dyn Fn(Mark) -> Origin) {
    node.for_each_leaf(path, &mut |leaf_path, leaf| {
        origins.insert(leaf_path.to_owned(), origin(leaf.mark));
    });
}

fn forget_below(origins: &mut BTreeMap<String, Origin>, path: &str) {
    if path.is_empty() {
        origins.clear();
        return;
    }
    origins.retain(|k, _| {
        !(k == path
            || k.strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('[')))
    });
}

/// The environment templates see, and where each variable came from.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub origins: BTreeMap<String, Origin>,
}

/// Decrypts an encrypted env file (`*.age`) to its `.env` text.
pub type Decrypt<'d> = dyn FnMut(&Path) -> Result<zeroize::Zeroizing<String>, String> + 'd;

impl Env {
    /// Env files in order (later wins), then the process environment on top of them. Files ending in
    /// `.age` are decrypted with `decrypt` and read as `.env`.
    pub fn load(
        env_files: &[PathBuf],
        process: impl IntoIterator<Item = (String, String)>,
        decrypt: &mut Decrypt<'_>,
    ) -> Result<Env, ValuesError> {
        // The credentials kdeploy reads, and in untrusted mode all but Argo CD's variables, are not
        // there for env files to expand nor for templates to read.
        let process = crate::trust::visible_env(process.into_iter().collect());
        let mut env = Env::default();
        for path in env_files {
            let loaded = if path.extension().is_some_and(|e| e == "age") {
                let text = decrypt(path).map_err(|problem| ValuesError::Read {
                    what: "encrypted env file",
                    path: path.clone(),
                    source: std::io::Error::other(problem),
                })?;
                dotenv::parse(path, &text)?
            } else {
                load_env_file(path, &env.vars, &process)?
            };
            for (name, value, origin) in loaded {
                env.vars.insert(name.clone(), value);
                env.origins.insert(name, origin);
            }
        }
        for (name, value) in process {
            env.origins.insert(name.clone(), Origin::Process);
            env.vars.insert(name, value);
        }
        Ok(env)
    }
}

/// Reads one env file: `.envrc` (or `*.envrc`) with the direnv reader, anything else as `.env`.
pub fn load_env_file(
    path: &Path,
    loaded: &BTreeMap<String, String>,
    process: &BTreeMap<String, String>,
) -> Result<Vec<(String, String, Origin)>, ValuesError> {
    let is_envrc = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == ".envrc" || n.ends_with(".envrc"));
    if is_envrc {
        envrc::load(path, loaded, process)
    } else {
        dotenv::load(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_stream;

    fn node(yaml: &str) -> Node {
        parse_stream(yaml, &mut |_| Ok(None)).unwrap().remove(0).root
    }

    fn file(name: &'static str) -> impl Fn(Mark) -> Origin {
        move |m| Origin::File {
            path: name.into(),
            line: m.line,
            column: m.column,
        }
    }

    #[test]
    fn maps_merge_deeply_lists_replace_and_origins_follow() {
        let mut values = Values::default();
        values.merge(
            &[],
            node("db:\n  host: a\n  port: 1\nlist: [1, 2]\n"),
            &file("base.yaml"),
        );
        values.merge(&[], node("db:\n  host: b\nlist: [3]\n"), &file("prod.yaml"));
        values.merge(&["db".into(), "user".into()], node("u"), &|_| Origin::Flag {
            flag: "--data-value",
            argument: "db.user=u".into(),
        });
        assert_eq!(
            values.to_json().unwrap(),
            serde_json::json!({"db": {"host": "b", "port": 1, "user": "u"}, "list": [3]})
        );
        let leaves = values.leaves();
        let origin_of = |p: &str| {
            leaves
                .iter()
                .find(|(path, ..)| path == p)
                .and_then(|(_, _, o)| o.map(|o| o.to_string()))
        };
        assert_eq!(origin_of("db.host").as_deref(), Some("prod.yaml:2:9"));
        assert_eq!(origin_of("db.port").as_deref(), Some("base.yaml:3:9"));
        assert_eq!(origin_of("list[0]").as_deref(), Some("prod.yaml:3:8"));
        assert_eq!(origin_of("list[1]"), None);
        assert_eq!(origin_of("db.user").as_deref(), Some("--data-value db.user=u"));
    }

    #[test]
    fn a_scalar_replaced_by_a_path_becomes_a_map() {
        let mut values = Values::default();
        values.merge(&[], node("a: 1\n"), &file("f"));
        values.merge(&["a".into(), "b".into()], node("2"), &file("g"));
        assert_eq!(values.to_json().unwrap(), serde_json::json!({"a": {"b": 2}}));
        assert_eq!(values.leaves().len(), 1);
    }

    #[test]
    fn process_environment_wins_over_env_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "A=file\nB=file\n").unwrap();
        let env = Env::load(&[path], [("A".to_owned(), "process".to_owned())], &mut |_| {
            Err("no".into())
        })
        .unwrap();
        assert_eq!(env.vars["A"], "process");
        assert_eq!(env.vars["B"], "file");
        assert!(matches!(env.origins["B"], Origin::File { line: 2, .. }));
    }
}
