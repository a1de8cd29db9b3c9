//! The SOPS file format (YAML, JSON and dotenv) with age, OpenBao/Vault transit and AWS KMS keys,
//! compatible with the sops CLI both ways.
//!
//! A file is a tree of values plus a `sops` metadata block. Each value is encrypted on its own
//! ([`super::cipher`]) under a per-file data key, with its key path (`a:b:`) as additional data, so a
//! value moved to another key no longer decrypts. The data key is wrapped to each master key
//! ([`super::keys`]). The
//! MAC is a SHA-512 over every plaintext value in order, encrypted with the `lastmodified` time as
//! additional data, so changing, removing, reordering or re-dating values is detected.
//!
//! kdeploy adds `kdeploy_recipients_mac` to the metadata: an HMAC-SHA256 under the data key of the
//! sorted recipient list, so an edited recipient list is detected too. sops ignores the field and drops
//! it when it rewrites a file; a file without it is checked against the project's recipients instead.

use std::path::Path;

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256, Sha512};

use super::cipher::{self, CipherError, DataKey, ValueType};
use super::keys::{AgeStanza, KeyError, Recipient, Stanza, recipient_from_json};
use super::openbao::TransitKey;
use crate::yaml::{self, Node, NodeValue, Scalar, Schema};

/// The version written into files; the format kdeploy implements is that of sops 3.9 and later.
const SOPS_FORMAT_VERSION: &str = "3.9.0";
const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b, 0x0b, 0x97, 0x5b,
    0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];
/// Key sources kdeploy can read past but not wrap a data key for.
const OTHER_KEY_SOURCES: &[&str] = &["pgp", "gcp_kms", "hckms", "azure_kv"];

/// The three SOPS file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
}

impl Format {
    /// By extension, as sops decides: `.json`, `.env` (or a name ending in `.env`), else YAML.
    pub fn of(path: &Path) -> Format {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".json") {
            Format::Json
        } else if name == ".env" || name.ends_with(".env") {
            Format::Dotenv
        } else {
            Format::Yaml
        }
    }
}

/// A value tree: maps keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    Map(Vec<(String, Tree)>),
    List(Vec<Tree>),
    Leaf(Leaf),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Leaf {
    /// The bytes sops feeds the MAC and the cipher (booleans are `True`/`False`).
    fn bytes(&self) -> Vec<u8> {
        match self {
            Leaf::Str(s) => s.as_bytes().to_vec(),
            Leaf::Int(i) => i.to_string().into_bytes(),
            Leaf::Float(f) => f.to_string().into_bytes(),
            Leaf::Bool(true) => b"True".to_vec(),
            Leaf::Bool(false) => b"False".to_vec(),
        }
    }

    fn value_type(&self) -> ValueType {
        match self {
            Leaf::Str(_) => ValueType::Str,
            Leaf::Int(_) => ValueType::Int,
            Leaf::Float(_) => ValueType::Float,
            Leaf::Bool(_) => ValueType::Bool,
        }
    }

    fn from_plaintext(bytes: Vec<u8>, kind: ValueType) -> Result<Leaf, SopsError> {
        let text = String::from_utf8(bytes).map_err(|_| SopsError::Invalid("a decrypted value is not UTF-8".into()))?;
        let bad = |what: &str| SopsError::Invalid(format!("a decrypted value of type {what} does not parse"));
        Ok(match kind {
            ValueType::Str | ValueType::Time | ValueType::Comment => Leaf::Str(text),
            ValueType::Int => Leaf::Int(text.parse().map_err(|_| bad("int"))?),
            ValueType::Float => Leaf::Float(text.parse().map_err(|_| bad("float"))?),
            ValueType::Bool => Leaf::Bool(match text.as_str() {
                "True" | "true" => true,
                "False" | "false" => false,
                _ => return Err(bad("bool")),
            }),
        })
    }

    pub fn to_json(&self) -> Json {
        match self {
            Leaf::Str(s) => Json::String(s.clone()),
            Leaf::Int(i) => Json::from(*i),
            Leaf::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Leaf::Bool(b) => Json::Bool(*b),
        }
    }
}

impl Tree {
    pub fn to_json(&self) -> Json {
        match self {
            Tree::Map(entries) => Json::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Tree::List(items) => Json::Array(items.iter().map(Tree::to_json).collect()),
            Tree::Leaf(leaf) => leaf.to_json(),
        }
    }

    pub fn from_json(json: &Json) -> Result<Tree, SopsError> {
        Ok(match json {
            Json::Object(map) => Tree::Map(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), Tree::from_json(v)?)))
                    .collect::<Result<_, SopsError>>()?,
            ),
            Json::Array(items) => Tree::List(items.iter().map(Tree::from_json).collect::<Result<_, _>>()?),
            Json::String(s) => Tree::Leaf(Leaf::Str(s.clone())),
            Json::Bool(b) => Tree::Leaf(Leaf::Bool(*b)),
            Json::Number(n) => Tree::Leaf(match n.as_i64() {
                Some(i) => Leaf::Int(i),
                None => Leaf::Float(
                    n.as_f64()
                        .ok_or_else(|| SopsError::Invalid(format!("number {n} is out of range")))?,
                ),
            }),
            Json::Null => {
                return Err(SopsError::Invalid(
                    "null values cannot be encrypted; use an empty string".into(),
                ));
            }
        })
    }

    fn from_node(node: Node) -> Result<Tree, SopsError> {
        let mark = node.mark;
        Ok(match node.value {
            NodeValue::Map(map) => Tree::Map(
                map.into_iter()
                    .map(|(k, e)| Ok((k, Tree::from_node(e.value)?)))
                    .collect::<Result<_, SopsError>>()?,
            ),
            NodeValue::Seq(items) => Tree::List(items.into_iter().map(Tree::from_node).collect::<Result<_, _>>()?),
            NodeValue::Scalar(scalar) => Tree::Leaf(match scalar {
                Scalar::String(s) => Leaf::Str(s),
                Scalar::Bool(b) => Leaf::Bool(b),
                Scalar::Int(i) => Leaf::Int(i),
                Scalar::Float(f) => Leaf::Float(f),
                Scalar::UInt(_) => {
                    return Err(SopsError::Invalid(format!(
                        "line {}: integer out of range; quote it",
                        mark.line
                    )));
                }
                Scalar::Null => {
                    return Err(SopsError::Invalid(format!(
                        "line {}, column {}: null values cannot be encrypted; use an empty string (\"\")",
                        mark.line, mark.column
                    )));
                }
            }),
        })
    }

    /// The leaf at a dotted path (`a.b.c`; list items by index: `a.0`).
    pub fn get(&self, path: &[String]) -> Option<&Tree> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        match self {
            Tree::Map(entries) => entries.iter().find(|(k, _)| k == first)?.1.get(rest),
            Tree::List(items) => items.get(first.parse::<usize>().ok()?)?.get(rest),
            Tree::Leaf(_) => None,
        }
    }

    /// Sets the value at `path`, creating maps on the way.
    pub fn set(&mut self, path: &[String], value: Tree) -> Result<(), SopsError> {
        let Some((first, rest)) = path.split_first() else {
            *self = value;
            return Ok(());
        };
        match self {
            Tree::Map(entries) => {
                if let Some((_, child)) = entries.iter_mut().find(|(k, _)| k == first) {
                    return child.set(rest, value);
                }
                let mut child = Tree::Map(Vec::new());
                child.set(rest, value)?;
                entries.push((first.clone(), child));
                Ok(())
            }
            Tree::List(items) => {
                let index: usize = first
                    .parse()
                    .map_err(|_| SopsError::Invalid(format!("`{first}` is not a list index")))?;
                let child = items
                    .get_mut(index)
                    .ok_or_else(|| SopsError::Invalid(format!("list index {index} is out of range")))?;
                child.set(rest, value)
            }
            Tree::Leaf(_) => Err(SopsError::Invalid(format!("cannot set `{first}` below a plain value"))),
        }
    }

    /// Removes the value at `path`; whether it was there.
    pub fn remove(&mut self, path: &[String]) -> bool {
        match (self, path) {
            (Tree::Map(entries), [last]) => {
                let before = entries.len();
                entries.retain(|(k, _)| k != last);
                entries.len() != before
            }
            (Tree::Map(entries), [first, rest @ ..]) => entries
                .iter_mut()
                .find(|(k, _)| k == first)
                .is_some_and(|(_, c)| c.remove(rest)),
            _ => false,
        }
    }

    /// Every leaf's dotted path (list items by index), in order.
    pub fn leaf_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit_leaves(&mut Vec::new(), &mut |path, _| out.push(path.join(".")));
        out
    }

    fn visit_leaves(&self, path: &mut Vec<String>, visit: &mut dyn FnMut(&[String], &Leaf)) {
        match self {
            Tree::Map(entries) => {
                for (key, child) in entries {
                    path.push(key.clone());
                    child.visit_leaves(path, visit);
                    path.pop();
                }
            }
            Tree::List(items) => {
                for (i, child) in items.iter().enumerate() {
                    path.push(i.to_string());
                    child.visit_leaves(path, visit);
                    path.pop();
                }
            }
            Tree::Leaf(leaf) => visit(path, leaf),
        }
    }
}

/// Which values are encrypted, as in sops' `shouldBeEncrypted`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncryptionRules {
    pub unencrypted_suffix: Option<String>,
    pub encrypted_suffix: Option<String>,
    pub unencrypted_regex: Option<String>,
    pub encrypted_regex: Option<String>,
    pub mac_only_encrypted: bool,
}

impl EncryptionRules {
    /// sops' default: keys ending in `_unencrypted` stay in the clear.
    pub fn sops_default() -> Self {
        EncryptionRules {
            unencrypted_suffix: Some(DEFAULT_UNENCRYPTED_SUFFIX.to_owned()),
            ..Default::default()
        }
    }

    fn compile(&self) -> Result<CompiledRules<'_>, SopsError> {
        let regex = |r: &Option<String>| {
            r.as_deref()
                .map(|r| {
                    regex::Regex::new(r)
                        .map_err(|e| SopsError::Invalid(format!("invalid regex `{r}` in the sops metadata: {e}")))
                })
                .transpose()
        };
        Ok(CompiledRules {
            rules: self,
            unencrypted_regex: regex(&self.unencrypted_regex)?,
            encrypted_regex: regex(&self.encrypted_regex)?,
        })
    }
}

struct CompiledRules<'r> {
    rules: &'r EncryptionRules,
    unencrypted_regex: Option<regex::Regex>,
    encrypted_regex: Option<regex::Regex>,
}

impl CompiledRules<'_> {
    fn should_encrypt(&self, path: &[&str]) -> bool {
        let mut encrypted = true;
        if let Some(suffix) = &self.rules.unencrypted_suffix
            && path.iter().any(|p| p.ends_with(suffix.as_str()))
        {
            encrypted = false;
        }
        if let Some(suffix) = &self.rules.encrypted_suffix {
            encrypted = path.iter().any(|p| p.ends_with(suffix.as_str()));
        }
        if let Some(regex) = &self.unencrypted_regex
            && path.iter().any(|p| regex.is_match(p))
        {
            encrypted = false;
        }
        if let Some(regex) = &self.encrypted_regex {
            encrypted = path.iter().any(|p| regex.is_match(p));
        }
        encrypted
    }
}

/// The `sops` metadata block.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// The data key wrapped to each master key (kms, hc_vault, age), in the file's order.
    pub keys: Vec<Stanza>,
    /// Key groups of a file sops split with Shamir secret sharing: each group's keys wrap one share of
    /// the data key, and `shamir_threshold` shares give it back. Empty for one group (then in `keys`).
    pub key_groups: Vec<Vec<Stanza>>,
    pub shamir_threshold: usize,
    pub lastmodified: String,
    pub mac: String,
    pub rules: EncryptionRules,
    pub version: String,
    /// Key sources kdeploy cannot use (pgp, gcp_kms, key groups, ...), by name.
    pub other_key_sources: Vec<String>,
    pub recipients_mac: Option<String>,
    /// kdeploy's `kdeploy_bound_to`: the repositories (space-separated URLs) the file belongs to, with
    /// `kdeploy_binding_mac`, an HMAC of them under the data key, so that only someone who can open
    /// the file can bind it (see [`bind`]).
    pub bound_to: Option<String>,
    pub binding_mac: Option<String>,
    /// kdeploy's `kdeploy_content_mac` in a Secret pushed for Flux: a keyed digest of its plaintext that
    /// lets the next push keep an unchanged document (see `publish::layout`).
    pub content_mac: Option<String>,
}

impl Metadata {
    pub fn recipients(&self) -> Vec<Recipient> {
        self.keys
            .iter()
            .chain(self.key_groups.iter().flatten())
            .map(Stanza::recipient)
            .collect()
    }

    pub fn age_stanzas(&self) -> Vec<&AgeStanza> {
        self.keys
            .iter()
            .filter_map(|s| match s {
                Stanza::Age(age) => Some(age),
                _ => None,
            })
            .collect()
    }
}

/// An encrypted file: the tree (values as `ENC[...]` strings where encrypted) and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptedFile {
    pub format: Format,
    pub tree: Tree,
    pub metadata: Metadata,
}

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error("{0}")]
    Invalid(String),
    /// A syntax error at a place in the file.
    #[error("{line}:{column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("not a SOPS-encrypted file (no `sops` metadata); encrypt it with `kdeploy vault encrypt`")]
    NotEncrypted,
    #[error("already encrypted (it has `sops` metadata)")]
    AlreadyEncrypted,
    #[error("{path}: {source}")]
    Value {
        path: String,
        #[source]
        source: CipherError,
    },
    #[error(
        "the MAC does not match: the file was changed outside sops/kdeploy (values edited, added, removed, reordered, or lastmodified changed)"
    )]
    MacMismatch,
    #[error(
        "the recipient list was changed outside sops/kdeploy: it no longer matches the list the data key was wrapped for"
    )]
    RecipientsTampered,
    #[error(
        "the repositories the file is bound to (kdeploy_bound_to) were changed outside kdeploy: they no longer match their MAC"
    )]
    BindingTampered,
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Parses a plaintext file of the given format.
pub fn parse_plaintext(text: &str, format: Format) -> Result<Tree, SopsError> {
    let tree = parse_tree(text, format)?;
    if let Tree::Map(entries) = &tree
        && entries.iter().any(|(k, _)| k == "sops")
    {
        return Err(SopsError::AlreadyEncrypted);
    }
    Ok(tree)
}

/// Whether text of the given format holds a sops-encrypted file.
pub fn looks_encrypted(text: &str, format: Format) -> bool {
    match format {
        Format::Dotenv => text.lines().any(|l| l.starts_with("sops_mac=")),
        _ => {
            matches!(parse_tree(text, format), Ok(Tree::Map(entries)) if entries.iter().any(|(k, _)| k == "sops"))
        }
    }
}

fn parse_tree(text: &str, format: Format) -> Result<Tree, SopsError> {
    match format {
        Format::Json => {
            let json: Json = serde_json::from_str(text).map_err(|e| SopsError::Syntax {
                line: e.line(),
                column: e.column(),
                message: format!(
                    "invalid JSON: {}",
                    e.to_string().split(" at line ").next().unwrap_or_default()
                ),
            })?;
            Tree::from_json(&json)
        }
        Format::Yaml => {
            let mut documents =
                yaml::parse_stream_in(text, Schema::Sops, &mut |_| Ok(None)).map_err(|e| SopsError::Syntax {
                    line: e.mark.line,
                    column: e.mark.column,
                    message: format!("invalid YAML: {}", e.message),
                })?;
            match documents.len() {
                0 => Ok(Tree::Map(Vec::new())),
                1 => {
                    let root = documents.remove(0).root;
                    if root.is_null() {
                        return Ok(Tree::Map(Vec::new()));
                    }
                    let tree = Tree::from_node(root)?;
                    if !matches!(tree, Tree::Map(_)) {
                        return Err(SopsError::Invalid(
                            "the top level must be a mapping (key: value)".into(),
                        ));
                    }
                    Ok(tree)
                }
                _ => Err(SopsError::Invalid(
                    "multi-document YAML files are not supported in vaults".into(),
                )),
            }
        }
        Format::Dotenv => {
            let mut entries = Vec::new();
            for (n, line) in text.split('\n').enumerate() {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (key, value) = line
                    .split_once('=')
                    .ok_or_else(|| SopsError::Invalid(format!("line {}: expected KEY=value", n + 1)))?;
                entries.push((key.to_owned(), Tree::Leaf(Leaf::Str(value.replace("\\n", "\n")))));
            }
            Ok(Tree::Map(entries))
        }
    }
}

/// Parses an encrypted file.
pub fn parse_encrypted(text: &str, format: Format) -> Result<EncryptedFile, SopsError> {
    let Tree::Map(mut entries) = parse_tree(text, format)? else {
        return Err(SopsError::NotEncrypted);
    };
    let metadata_tree = match format {
        Format::Dotenv => {
            let (meta, rest): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(k, _)| k.starts_with("sops_"));
            entries = rest;
            if meta.is_empty() {
                return Err(SopsError::NotEncrypted);
            }
            unflatten(meta)?
        }
        _ => {
            let position = entries
                .iter()
                .position(|(k, _)| k == "sops")
                .ok_or(SopsError::NotEncrypted)?;
            entries.remove(position).1
        }
    };
    Ok(EncryptedFile {
        format,
        tree: Tree::Map(entries),
        metadata: parse_metadata(&metadata_tree)?,
    })
}

fn parse_metadata(tree: &Tree) -> Result<Metadata, SopsError> {
    let Tree::Map(entries) = tree else {
        return Err(SopsError::Invalid("the `sops` metadata is not a mapping".into()));
    };
    let text = |name: &str| -> Option<String> {
        entries.iter().find(|(k, _)| k == name).and_then(|(_, v)| match v {
            Tree::Leaf(Leaf::Str(s)) => Some(s.clone()),
            Tree::Leaf(Leaf::Bool(b)) => Some(b.to_string()),
            Tree::Leaf(Leaf::Int(i)) => Some(i.to_string()),
            _ => None,
        })
    };
    let missing = |name: &str| SopsError::Invalid(format!("the `sops` metadata has no `{name}`"));
    let mut keys = Vec::new();
    let mut key_groups = Vec::new();
    let mut other_key_sources: Vec<String> = Vec::new();
    match entries.iter().find(|(k, _)| k == "key_groups") {
        Some((_, Tree::List(groups))) if groups.len() > 1 => {
            other_key_sources.push(format!("key_groups ({} groups, Shamir secret sharing)", groups.len()));
            for group in groups {
                let Tree::Map(group) = group else {
                    return Err(SopsError::Invalid(
                        "a key group in the sops metadata is not a mapping".into(),
                    ));
                };
                key_groups.push(parse_stanzas(group)?);
            }
        }
        Some((_, Tree::List(groups))) => {
            for group in groups {
                let Tree::Map(group) = group else { continue };
                keys.extend(parse_stanzas(group)?);
            }
        }
        _ => {}
    }
    keys.extend(parse_stanzas(entries)?);
    other_key_sources.extend(
        OTHER_KEY_SOURCES
            .iter()
            .filter(|name| matches!(entries.iter().find(|(k, _)| k == *name), Some((_, Tree::List(items))) if !items.is_empty()))
            .map(|n| n.to_string()),
    );
    if entries
        .iter()
        .any(|(k, _)| k == "unencrypted_comment_regex" || k == "encrypted_comment_regex")
    {
        return Err(SopsError::Invalid("files using unencrypted_comment_regex or encrypted_comment_regex are not supported by kdeploy; use sops for them".into()));
    }
    let shamir_threshold = match text("shamir_threshold") {
        Some(n) => n
            .parse()
            .map_err(|_| SopsError::Invalid(format!("shamir_threshold `{n}` is not a number")))?,
        None => key_groups.len(),
    };
    Ok(Metadata {
        keys,
        key_groups,
        shamir_threshold,
        lastmodified: text("lastmodified").ok_or_else(|| missing("lastmodified"))?,
        mac: text("mac").ok_or_else(|| missing("mac"))?,
        rules: EncryptionRules {
            unencrypted_suffix: text("unencrypted_suffix"),
            encrypted_suffix: text("encrypted_suffix"),
            unencrypted_regex: text("unencrypted_regex"),
            encrypted_regex: text("encrypted_regex"),
            mac_only_encrypted: text("mac_only_encrypted").as_deref() == Some("true"),
        },
        version: text("version").unwrap_or_default(),
        other_key_sources,
        recipients_mac: text("kdeploy_recipients_mac"),
        bound_to: text("kdeploy_bound_to"),
        binding_mac: text("kdeploy_binding_mac"),
        content_mac: text("kdeploy_content_mac"),
    })
}

/// The `kms`, `hc_vault` and `age` lists of a metadata block or a key group.
fn parse_stanzas(entries: &[(String, Tree)]) -> Result<Vec<Stanza>, SopsError> {
    let mut stanzas = Vec::new();
    for (source, items) in entries {
        let Tree::List(items) = items else { continue };
        for item in items {
            let text = |name: &str| match item.get(&[name.to_owned()]) {
                Some(Tree::Leaf(Leaf::Str(s))) => Some(s.clone()),
                _ => None,
            };
            let field = |name: &str| {
                text(name).ok_or_else(|| {
                    SopsError::Invalid(format!("a `{source}` entry in the sops metadata has no `{name}`"))
                })
            };
            let stanza = match source.as_str() {
                "age" => Stanza::Age(AgeStanza {
                    recipient: field("recipient")?,
                    enc: field("enc")?,
                }),
                "hc_vault" => Stanza::Transit {
                    key: TransitKey {
                        address: field("vault_address")?.trim_end_matches('/').to_owned(),
                        engine_path: field("engine_path")?,
                        key_name: field("key_name")?,
                    },
                    created_at: text("created_at").unwrap_or_default(),
                    enc: field("enc")?,
                },
                "kms" => {
                    let mut json = item.to_json();
                    if let Some(map) = json.as_object_mut() {
                        map.remove("enc");
                        map.remove("created_at");
                    }
                    let Recipient::Kms(key) = recipient_from_json(&json)
                        .map_err(|e| SopsError::Invalid(format!("a `kms` entry in the sops metadata: {e}")))?
                    else {
                        return Err(SopsError::Invalid(
                            "a `kms` entry in the sops metadata has no `arn`".into(),
                        ));
                    };
                    Stanza::Kms {
                        key,
                        created_at: text("created_at").unwrap_or_default(),
                        enc: field("enc")?,
                    }
                }
                _ => continue,
            };
            stanzas.push(stanza);
        }
    }
    Ok(stanzas)
}

/// The key lists as sops 3.13 writes them: lists and their fields in alphabetical order.
fn stanza_entries(keys: &[Stanza]) -> Vec<(String, Tree)> {
    let s = |v: &str| Tree::Leaf(Leaf::Str(v.to_owned()));
    let (mut age, mut hc_vault, mut kms) = (Vec::new(), Vec::new(), Vec::new());
    for stanza in keys {
        match stanza {
            Stanza::Age(a) => age.push(Tree::Map(vec![
                ("recipient".into(), s(&a.recipient)),
                ("enc".into(), s(&a.enc)),
            ])),
            Stanza::Transit { key, created_at, enc } => hc_vault.push(Tree::Map(vec![
                ("created_at".into(), s(created_at)),
                ("enc".into(), s(enc)),
                ("engine_path".into(), s(&key.engine_path)),
                ("key_name".into(), s(&key.key_name)),
                ("vault_address".into(), s(&key.address)),
            ])),
            Stanza::Kms { key, created_at, enc } => {
                let mut fields = vec![
                    ("arn".into(), s(&key.arn)),
                    ("aws_profile".into(), s(key.profile.as_deref().unwrap_or(""))),
                ];
                if !key.context.is_empty() {
                    fields.push((
                        "context".into(),
                        Tree::Map(key.context.iter().map(|(k, v)| (k.clone(), s(v))).collect()),
                    ));
                }
                fields.push(("created_at".into(), s(created_at)));
                fields.push(("enc".into(), s(enc)));
                if let Some(role) = &key.role {
                    fields.push(("role".into(), s(role)));
                }
                kms.push(Tree::Map(fields));
            }
        }
    }
    [("age", age), ("hc_vault", hc_vault), ("kms", kms)]
        .into_iter()
        .filter(|(_, list)| !list.is_empty())
        .map(|(name, list)| (name.to_owned(), Tree::List(list)))
        .collect()
}

fn metadata_tree(metadata: &Metadata) -> Tree {
    let s = |v: &str| Tree::Leaf(Leaf::Str(v.to_owned()));
    let mut entries = stanza_entries(&metadata.keys);
    entries.push(("lastmodified".into(), s(&metadata.lastmodified)));
    entries.push(("mac".into(), s(&metadata.mac)));
    let rules = &metadata.rules;
    for (name, value) in [
        ("unencrypted_suffix", &rules.unencrypted_suffix),
        ("encrypted_suffix", &rules.encrypted_suffix),
        ("unencrypted_regex", &rules.unencrypted_regex),
        ("encrypted_regex", &rules.encrypted_regex),
    ] {
        if let Some(v) = value {
            entries.push((name.into(), s(v)));
        }
    }
    if rules.mac_only_encrypted {
        entries.push(("mac_only_encrypted".into(), Tree::Leaf(Leaf::Bool(true))));
    }
    if let Some(mac) = &metadata.recipients_mac {
        entries.push(("kdeploy_recipients_mac".into(), s(mac)));
    }
    if let (Some(bound_to), Some(mac)) = (&metadata.bound_to, &metadata.binding_mac) {
        entries.push(("kdeploy_bound_to".into(), s(bound_to)));
        entries.push(("kdeploy_binding_mac".into(), s(mac)));
    }
    if let Some(mac) = &metadata.content_mac {
        entries.push(("kdeploy_content_mac".into(), s(mac)));
    }
    entries.push(("version".into(), s(&metadata.version)));
    Tree::Map(entries)
}

/// `sops_age__list_0__map_recipient=...` lines back into a tree.
fn unflatten(entries: Vec<(String, Tree)>) -> Result<Tree, SopsError> {
    let max_items = entries.len();
    let mut root = Tree::Map(Vec::new());
    for (key, value) in entries {
        let rest = &key["sops_".len()..];
        let mut path: Vec<(bool, String)> = Vec::new(); // (is list index, name)
        let mut segments = rest.split("__");
        path.push((false, segments.next().unwrap_or_default().to_owned()));
        for segment in segments {
            if let Some(index) = segment.strip_prefix("list_") {
                path.push((true, index.to_owned()));
            } else if let Some(name) = segment.strip_prefix("map_") {
                path.push((false, name.to_owned()));
            } else {
                return Err(SopsError::Invalid(format!("unreadable sops metadata key `{key}`")));
            }
        }
        insert_flat(&mut root, &path, value, max_items)?;
    }
    Ok(root)
}

fn insert_flat(node: &mut Tree, path: &[(bool, String)], value: Tree, max_items: usize) -> Result<(), SopsError> {
    let Some(((_, name), rest)) = path.split_first() else {
        *node = value;
        return Ok(());
    };
    let child_is_list = rest.first().is_some_and(|(is_list, _)| *is_list);
    let new_child = || {
        if child_is_list {
            Tree::List(Vec::new())
        } else {
            Tree::Map(Vec::new())
        }
    };
    let child = match node {
        Tree::Map(entries) => {
            if !entries.iter().any(|(k, _)| k == name) {
                entries.push((name.clone(), new_child()));
            }
            &mut entries.iter_mut().find(|(k, _)| k == name).unwrap().1
        }
        Tree::List(items) => {
            let index: usize = name
                .parse()
                .map_err(|_| SopsError::Invalid("bad list index in sops metadata".into()))?;
            // Every item has at least one line, so an index past the line count is not a real item;
            // allocating up to it would exhaust memory (the fuzzer found `list_4099…`).
            if index >= max_items {
                return Err(SopsError::Invalid(format!(
                    "sops metadata list index {index} is past the {max_items} metadata line(s) there are"
                )));
            }
            while items.len() <= index {
                items.push(new_child());
            }
            &mut items[index]
        }
        Tree::Leaf(_) => return Err(SopsError::Invalid("conflicting sops metadata keys".into())),
    };
    insert_flat(child, rest, value, max_items)
}

fn flatten(prefix: &str, tree: &Tree, out: &mut Vec<(String, String)>) {
    match tree {
        Tree::Map(entries) => {
            for (k, v) in entries {
                flatten(&format!("{prefix}__map_{k}"), v, out);
            }
        }
        Tree::List(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}__list_{i}"), v, out);
            }
        }
        Tree::Leaf(leaf) => out.push((
            prefix.to_owned(),
            String::from_utf8_lossy(&leaf.bytes())
                .replace("True", "true")
                .replace("False", "false"),
        )),
    }
}

/// Writes a tree (plaintext or encrypted) in the given format, with `metadata` when encrypted.
pub fn write(tree: &Tree, metadata: Option<&Metadata>, format: Format) -> Result<String, SopsError> {
    match format {
        Format::Dotenv => {
            let Tree::Map(entries) = tree else {
                return Err(SopsError::Invalid("a dotenv file holds KEY=value pairs only".into()));
            };
            let mut out = String::new();
            for (key, value) in entries {
                let Tree::Leaf(leaf) = value else {
                    return Err(SopsError::Invalid(format!(
                        "`{key}`: a dotenv file cannot hold lists or maps"
                    )));
                };
                let text = match leaf {
                    Leaf::Str(s) => s.clone(),
                    other => other.to_json().to_string(),
                };
                out.push_str(&format!("{key}={}\n", text.replace('\n', "\\n")));
            }
            if let Some(metadata) = metadata {
                let Tree::Map(meta) = metadata_tree(metadata) else {
                    unreachable!()
                };
                let mut flat = Vec::new();
                for (key, value) in &meta {
                    match value {
                        Tree::Leaf(Leaf::Str(s)) => flat.push((format!("sops_{key}"), s.clone())),
                        Tree::Leaf(other) => flat.push((format!("sops_{key}"), other.to_json().to_string())),
                        nested => flatten(&format!("sops_{key}"), nested, &mut flat),
                    }
                }
                for (key, value) in flat {
                    out.push_str(&format!("{key}={}\n", value.replace('\n', "\\n")));
                }
            }
            Ok(out)
        }
        Format::Json | Format::Yaml => {
            let mut json = tree.to_json();
            if let (Some(metadata), Json::Object(map)) = (metadata, &mut json) {
                map.insert("sops".into(), metadata_tree(metadata).to_json());
            }
            if format == Format::Json {
                Ok(format!(
                    "{}\n",
                    serde_json::to_string_pretty(&json).map_err(|e| SopsError::Invalid(e.to_string()))?
                ))
            } else {
                if json.as_object().is_some_and(Map::is_empty) {
                    return Ok("{}\n".to_owned());
                }
                yaml::emit::to_yaml(&json).map_err(|e| SopsError::Invalid(e.to_string()))
            }
        }
    }
}

/// Called with each leaf and its sops key path.
type LeafVisitor<'v> = dyn FnMut(&[String], &mut Leaf) -> Result<(), SopsError> + 'v;

/// Walks the leaves with sops' key paths (list items share their parent's path).
fn walk_leaves(tree: &mut Tree, path: &mut Vec<String>, visit: &mut LeafVisitor<'_>) -> Result<(), SopsError> {
    match tree {
        Tree::Map(entries) => {
            for (key, child) in entries {
                path.push(key.clone());
                walk_leaves(child, path, visit)?;
                path.pop();
            }
        }
        Tree::List(items) => {
            for child in items {
                walk_leaves(child, path, visit)?;
            }
        }
        Tree::Leaf(leaf) => visit(path, leaf)?,
    }
    Ok(())
}

fn new_mac_hasher(rules: &EncryptionRules) -> Sha512 {
    let mut hasher = Sha512::new();
    if rules.mac_only_encrypted {
        hasher.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    hasher
}

fn hex_upper(bytes: &[u8]) -> String {
    crate::util::hex(bytes).to_ascii_uppercase()
}

/// The binding of the recipient list to the data key.
fn recipients_mac(key: &DataKey, recipients: &[Recipient]) -> String {
    use hmac::Mac;
    let mut sorted: Vec<String> = recipients.iter().map(ToString::to_string).collect();
    sorted.sort_unstable();
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(sorted.join("\n").as_bytes());
    hex_upper(&mac.finalize().into_bytes())
}

/// The MAC that binds a file to the repositories in `bound_to`.
fn binding_mac(key: &DataKey, bound_to: &str) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"kdeploy-binding\n");
    mac.update(bound_to.as_bytes());
    hex_upper(&mac.finalize().into_bytes())
}

/// Binds the file to `repositories` (none: unbinds it), under its data key.
pub fn bind(metadata: &mut Metadata, key: &DataKey, repositories: &[String]) {
    if repositories.is_empty() {
        metadata.bound_to = None;
        metadata.binding_mac = None;
        return;
    }
    let bound_to = repositories.join(" ");
    metadata.binding_mac = Some(binding_mac(key, &bound_to));
    metadata.bound_to = Some(bound_to);
}

/// The repositories a file is bound to, checked against its MAC (`key` has opened the file).
pub fn bound_repositories(metadata: &Metadata, key: &DataKey) -> Result<Option<Vec<String>>, SopsError> {
    match (&metadata.bound_to, &metadata.binding_mac) {
        (None, None) => Ok(None),
        (Some(bound_to), Some(mac)) if *mac == binding_mac(key, bound_to) => {
            Ok(Some(bound_to.split_whitespace().map(str::to_owned).collect()))
        }
        _ => Err(SopsError::BindingTampered),
    }
}

/// Decrypts the tree with `key` and checks the MAC and the recipient binding.
pub fn decrypt(file: &EncryptedFile, key: &DataKey) -> Result<Tree, SopsError> {
    let rules = file.metadata.rules.compile()?;
    let mut hasher = new_mac_hasher(&file.metadata.rules);
    let mut tree = file.tree.clone();
    walk_leaves(&mut tree, &mut Vec::new(), &mut |path, leaf| {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        let encrypted = rules.should_encrypt(&keys);
        if encrypted {
            match leaf {
                Leaf::Str(s) if s.is_empty() => {}
                Leaf::Str(s) => {
                    let aad = format!("{}:", path.join(":"));
                    let (plain, kind) = cipher::decrypt(key, s, &aad).map_err(|source| SopsError::Value {
                        path: path.join("."),
                        source,
                    })?;
                    *leaf = Leaf::from_plaintext(plain, kind)?;
                }
                _ => {
                    return Err(SopsError::Value {
                        path: path.join("."),
                        source: CipherError::Malformed,
                    });
                }
            }
        }
        if !file.metadata.rules.mac_only_encrypted || encrypted {
            hasher.update(leaf.bytes());
        }
        Ok(())
    })?;
    let computed = hex_upper(&hasher.finalize());
    let (stored, _) =
        cipher::decrypt(key, &file.metadata.mac, &file.metadata.lastmodified).map_err(|_| SopsError::MacMismatch)?;
    if stored != computed.as_bytes() {
        return Err(SopsError::MacMismatch);
    }
    if let Some(binding) = &file.metadata.recipients_mac
        && *binding != recipients_mac(key, &file.metadata.recipients())
    {
        return Err(SopsError::RecipientsTampered);
    }
    bound_repositories(&file.metadata, key)?;
    Ok(tree)
}

/// Encrypts `plain` under `key` for `recipients`. Values that are unchanged from `previous` (same path,
/// type and plaintext, same data key) keep their ciphertext, so a git diff shows only what changed.
pub fn encrypt(
    plain: &Tree,
    key: &DataKey,
    keys: Vec<Stanza>,
    rules: EncryptionRules,
    format: Format,
    previous: Option<(&EncryptedFile, &Tree)>,
) -> Result<EncryptedFile, SopsError> {
    if keys.is_empty() {
        return Err(SopsError::Invalid(
            "no recipients: add one with `kdeploy vault recipients add` or `kdeploy vault init`".into(),
        ));
    }
    let compiled = rules.compile()?;
    let mut reusable = std::collections::HashMap::new();
    if let Some((old_file, old_plain)) = previous {
        let mut old_values = Vec::new();
        old_plain.visit_leaves(&mut Vec::new(), &mut |p, leaf| {
            old_values.push((p.join("\u{0}"), leaf.clone()))
        });
        let mut old_cipher = Vec::new();
        old_file
            .tree
            .visit_leaves(&mut Vec::new(), &mut |_, leaf| old_cipher.push(leaf.clone()));
        for ((path, plain_leaf), cipher_leaf) in old_values.into_iter().zip(old_cipher) {
            if let Leaf::Str(enc) = cipher_leaf
                && cipher::is_encrypted(&enc)
            {
                reusable.insert(path, (plain_leaf, enc));
            }
        }
    }
    let mut full_paths = Vec::new();
    plain.visit_leaves(&mut Vec::new(), &mut |p, _| full_paths.push(p.join("\u{0}")));
    let mut full_paths = full_paths.into_iter();

    let mut hasher = new_mac_hasher(&rules);
    let mut tree = plain.clone();
    walk_leaves(&mut tree, &mut Vec::new(), &mut |path, leaf| {
        let full_path = full_paths.next().unwrap_or_default();
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        let encrypted = compiled.should_encrypt(&keys);
        if !rules.mac_only_encrypted || encrypted {
            hasher.update(leaf.bytes());
        }
        if encrypted && *leaf != Leaf::Str(String::new()) {
            let enc = match reusable.get(&full_path) {
                Some((old_leaf, enc)) if old_leaf == leaf => enc.clone(),
                _ => {
                    let aad = format!("{}:", path.join(":"));
                    cipher::encrypt(key, &leaf.bytes(), leaf.value_type(), &aad).map_err(|source| SopsError::Value {
                        path: path.join("."),
                        source,
                    })?
                }
            };
            *leaf = Leaf::Str(enc);
        }
        Ok(())
    })?;
    let lastmodified = crate::util::now_rfc3339();
    let mac = cipher::encrypt(
        key,
        hex_upper(&hasher.finalize()).as_bytes(),
        ValueType::Str,
        &lastmodified,
    )
    .map_err(|source| SopsError::Value {
        path: "sops.mac".into(),
        source,
    })?;
    let recipients: Vec<Recipient> = keys.iter().map(Stanza::recipient).collect();
    Ok(EncryptedFile {
        format,
        tree,
        metadata: Metadata {
            keys,
            key_groups: Vec::new(),
            shamir_threshold: 0,
            lastmodified,
            mac,
            rules,
            version: SOPS_FORMAT_VERSION.to_owned(),
            other_key_sources: Vec::new(),
            recipients_mac: Some(recipients_mac(key, &recipients)),
            // A rewrite keeps the file's binding (checked when it was opened), under the new key.
            bound_to: previous.and_then(|(file, _)| file.metadata.bound_to.clone()),
            binding_mac: previous
                .and_then(|(file, _)| file.metadata.bound_to.as_deref())
                .map(|bound_to| binding_mac(key, bound_to)),
            content_mac: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> (age::x25519::Identity, String) {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        (identity, recipient)
    }

    /// A YAML file encrypted to one recipient with sops' default rules.
    fn encrypt_yaml(plain: &Tree, key: &DataKey, recipient: &str) -> EncryptedFile {
        encrypt(
            plain,
            key,
            vec![age_stanza(key, recipient)],
            EncryptionRules::sops_default(),
            Format::Yaml,
            None,
        )
        .unwrap()
    }

    fn age_stanza(key: &DataKey, recipient: &str) -> Stanza {
        Stanza::Age(crate::vault::keys::wrap_key(key, recipient).unwrap())
    }

    fn first_age(file: &EncryptedFile) -> &AgeStanza {
        file.metadata.age_stanzas()[0]
    }

    fn round_trip(text: &str, format: Format) -> (EncryptedFile, Tree, String) {
        let (identity, recipient) = identity();
        let plain = parse_plaintext(text, format).unwrap();
        let key = DataKey::generate().unwrap();
        let file = encrypt(
            &plain,
            &key,
            vec![age_stanza(&key, &recipient)],
            EncryptionRules::sops_default(),
            format,
            None,
        )
        .unwrap();
        let written = write(&file.tree, Some(&file.metadata), format).unwrap();
        let parsed = parse_encrypted(&written, format).unwrap();
        let key = crate::vault::keys::unwrap_key(first_age(&parsed), &[identity])
            .unwrap()
            .unwrap();
        let decrypted = decrypt(&parsed, &key).unwrap();
        (parsed, decrypted, written)
    }

    #[test]
    fn yaml_round_trip_keeps_types_and_leaves_unencrypted_suffix_clear() {
        let text = "db:\n  password: hunter2\n  port: 5432\n  ratio: 1.5\n  tls: true\n  note_unencrypted: visible\nlist: [a, b]\nempty: \"\"\nanswer: yes\n";
        let (parsed, decrypted, written) = round_trip(text, Format::Yaml);
        assert_eq!(decrypted, parse_plaintext(text, Format::Yaml).unwrap());
        assert!(!written.contains("hunter2"), "{written}");
        assert!(written.contains("note_unencrypted: visible"), "{written}");
        assert!(written.contains("type:int") && written.contains("type:bool") && written.contains("type:float"));
        assert_eq!(
            parsed
                .tree
                .get(&["answer".into()])
                .map(|t| matches!(t, Tree::Leaf(Leaf::Str(s)) if s.contains("type:str"))),
            Some(true),
            "yes is a string to sops"
        );
    }

    #[test]
    fn json_and_dotenv_round_trip() {
        let (_, decrypted, written) = round_trip("{\"a\": {\"b\": [1, \"two\"]}}", Format::Json);
        assert_eq!(decrypted.to_json(), serde_json::json!({"a": {"b": [1, "two"]}}));
        assert!(written.contains("\"sops\""));
        let (_, decrypted, written) = round_trip("A=1\nMULTI=line1\\nline2\n", Format::Dotenv);
        assert_eq!(
            decrypted.to_json(),
            serde_json::json!({"A": "1", "MULTI": "line1\nline2"})
        );
        assert!(written.contains("sops_age__list_0__map_recipient=age1"), "{written}");
        let far = written.replace("sops_age__list_0__", "sops_age__list_40992764608__");
        let err = parse_encrypted(&far, Format::Dotenv).unwrap_err().to_string();
        assert!(err.contains("list index 40992764608 is past the"), "{err}");
        assert!(written.contains("sops_mac=ENC["), "{written}");
    }

    #[test]
    fn tampering_is_detected() {
        let (identity, recipient) = identity();
        let plain = parse_plaintext("a: one\nb: two\n", Format::Yaml).unwrap();
        let key = DataKey::generate().unwrap();
        let file = encrypt_yaml(&plain, &key, &recipient);
        let Tree::Map(entries) = &file.tree else { panic!() };
        let (a, b) = (entries[0].1.clone(), entries[1].1.clone());

        let mut swapped = file.clone();
        swapped.tree = Tree::Map(vec![("a".into(), b.clone()), ("b".into(), a.clone())]);
        assert!(matches!(decrypt(&swapped, &key), Err(SopsError::Value { .. })));

        let mut removed = file.clone();
        removed.tree = Tree::Map(vec![("a".into(), a.clone())]);
        assert!(matches!(decrypt(&removed, &key), Err(SopsError::MacMismatch)));

        let mut redated = file.clone();
        redated.metadata.lastmodified = "2020-01-01T00:00:00Z".into();
        assert!(matches!(decrypt(&redated, &key), Err(SopsError::MacMismatch)));

        let mut recipients = file.clone();
        recipients.metadata.keys.push(age_stanza(
            &key,
            &age::x25519::Identity::generate().to_public().to_string(),
        ));
        assert!(matches!(decrypt(&recipients, &key), Err(SopsError::RecipientsTampered)));

        let other = age::x25519::Identity::generate();
        assert!(
            crate::vault::keys::unwrap_key(first_age(&file), &[other])
                .unwrap()
                .is_none()
        );
        assert!(
            crate::vault::keys::unwrap_key(first_age(&file), &[identity])
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn unchanged_values_keep_their_ciphertext() {
        let (_, recipient) = identity();
        let key = DataKey::generate().unwrap();
        let before = parse_plaintext("a: one\nb: two\n", Format::Yaml).unwrap();
        let file = encrypt_yaml(&before, &key, &recipient);
        let after = parse_plaintext("a: one\nb: changed\n", Format::Yaml).unwrap();
        let again = encrypt(
            &after,
            &key,
            vec![age_stanza(&key, &recipient)],
            EncryptionRules::sops_default(),
            Format::Yaml,
            Some((&file, &before)),
        )
        .unwrap();
        assert_eq!(file.tree.get(&["a".into()]), again.tree.get(&["a".into()]));
        assert_ne!(file.tree.get(&["b".into()]), again.tree.get(&["b".into()]));
    }

    #[test]
    fn lastmodified_looks_like_sops() {
        let now = crate::util::now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
    }
}
