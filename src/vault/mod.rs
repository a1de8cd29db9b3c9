//! Secrets kept encrypted in git (SOPS files wrapped to age, OpenBao/Vault transit and AWS KMS keys),
//! the identities that open them, and secrets fetched from stores at deploy time.
//!
//! [`sops`] reads and writes the SOPS format (YAML, JSON, dotenv), compatible with the sops CLI both
//! ways; [`cipher`] is its value encryption; [`keys`] names the master keys and wraps data keys to
//! them through [`openbao`] and [`aws`]. [`identity`] finds what can open a file (a file given with
//! `--identity`, `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, the OS keyring, sops' default key file, then the
//! file's remote keys). [`refs`] resolves `ref+vault://`, `ref+awssecrets://` and `ref+awsssm://`
//! values. [`redact`] masks every secret wherever it would be shown.

pub mod aws;
pub mod cipher;
pub mod http;
pub mod identity;
pub mod keyring;
pub mod keys;
pub mod openbao;
pub mod refs;
pub mod seal;
pub mod shamir;
pub mod sops;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use zeroize::Zeroizing;

use self::cipher::DataKey;
use self::identity::{IdentityChain, IdentityError};
use self::keys::{KeyServices, Recipient, Stanza, recipient_from_json};
use self::sops::{EncryptedFile, EncryptionRules, Format, SopsError, Tree};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `path:line:column: message` for a syntax error, `path: message` otherwise.
    #[error("{}{}{source}", path.display(), if matches!(source, SopsError::Syntax { .. }) { ":" } else { ": " })]
    Format {
        path: PathBuf,
        #[source]
        source: SopsError,
    },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("{}: {message}", path.display())]
    Policy { path: PathBuf, message: String },
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
}

/// An encrypted vault file as it is on disk.
#[derive(Debug, Clone)]
pub struct VaultFile {
    pub path: PathBuf,
    pub encrypted: EncryptedFile,
}

impl VaultFile {
    pub fn read(path: &Path) -> Result<VaultFile, VaultError> {
        let text = crate::trust::read_text(path, "vault file", crate::yaml::limits::MAX_INPUT_BYTES as u64)?;
        let encrypted = sops::parse_encrypted(&text, Format::of(path)).map_err(|source| VaultError::Format {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(VaultFile {
            path: path.to_path_buf(),
            encrypted,
        })
    }

    pub fn recipients(&self) -> Vec<Recipient> {
        self.encrypted.metadata.recipients()
    }

    /// The data key and the decrypted tree; the MAC and recipient binding are checked.
    pub fn open(&self, identities: &mut IdentityChain) -> Result<(DataKey, Tree), VaultError> {
        let key = identities
            .open(&self.path.display().to_string(), &self.encrypted.metadata)
            .map_err(|error| match error {
                // A broken stanza is the file's problem: say which file.
                IdentityError::Sops(source) => VaultError::Format {
                    path: self.path.clone(),
                    source,
                },
                other => other.into(),
            })?;
        let tree = sops::decrypt(&self.encrypted, &key).map_err(|source| VaultError::Format {
            path: self.path.clone(),
            source,
        })?;
        Ok((key, tree))
    }

    /// Writes `plain` back under the same data key, keeping the ciphertext of values unchanged from
    /// `old_plain` (what [`Self::open`] returned), the file's encryption rules, and the wrapped keys of
    /// recipients it already has.
    pub fn save(
        &self,
        key: &DataKey,
        plain: &Tree,
        old_plain: &Tree,
        recipients: &[Recipient],
        services: &KeyServices,
    ) -> Result<EncryptedFile, VaultError> {
        let rules = self.encrypted.metadata.rules.clone();
        let keys = wrap_keys(&self.path, services, key, recipients, &self.encrypted.metadata.keys)?;
        write_encrypted(&self.path, plain, key, keys, rules, Some((&self.encrypted, old_plain)))
    }

    /// Refuses files kdeploy would damage by rewriting (other key sources it cannot wrap for).
    pub fn check_rewritable(&self) -> Result<(), VaultError> {
        if self.encrypted.metadata.other_key_sources.is_empty() {
            return Ok(());
        }
        Err(VaultError::Policy {
            path: self.path.clone(),
            message: format!(
                "this file also uses {} keys, which kdeploy cannot wrap a data key for; rewriting it would lock those keys out, so use sops to change it",
                self.encrypted.metadata.other_key_sources.join(", ")
            ),
        })
    }
}

/// Wraps `key` to each recipient (reusing a stanza of `keep` for a recipient it already has).
pub fn wrap_keys(
    path: &Path,
    services: &KeyServices,
    key: &DataKey,
    recipients: &[Recipient],
    keep: &[Stanza],
) -> Result<Vec<Stanza>, VaultError> {
    services
        .wrap_all(key, recipients, keep)
        .map_err(|source| VaultError::Format {
            path: path.to_path_buf(),
            source: source.into(),
        })
}

/// Encrypts `plain` and writes it to `path` atomically (a new file is created 0600; an existing one
/// keeps its mode). `previous` lets unchanged values keep their ciphertext.
pub fn write_encrypted(
    path: &Path,
    plain: &Tree,
    key: &DataKey,
    keys: Vec<Stanza>,
    rules: EncryptionRules,
    previous: Option<(&EncryptedFile, &Tree)>,
) -> Result<EncryptedFile, VaultError> {
    let format = Format::of(path);
    let format_error = |source| VaultError::Format {
        path: path.to_path_buf(),
        source,
    };
    let encrypted = sops::encrypt(plain, key, keys, rules, format, previous).map_err(format_error)?;
    let text = sops::write(&encrypted.tree, Some(&encrypted.metadata), format).map_err(format_error)?;
    write_atomically(path, text.as_bytes())?;
    Ok(encrypted)
}

/// Writes through a temporary file in the same folder and a rename, so a failure never leaves half a
/// file behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let write_error = |source| VaultError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o600);
    let mut temp = tempfile::Builder::new()
        .prefix(".kdeploy-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    temp.write_all(bytes).map_err(write_error)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(write_error)?;
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist(path).map_err(|e| write_error(e.error))?;
    Ok(())
}

/// Where a file's recipients come from: kdeploy.yaml's `recipients:`, else the first `.sops.yaml`
/// creation rule (searched upward from the file, as sops does) whose `path_regex` matches it.
pub fn configured_recipients(project_recipients: &[Recipient], file: &Path) -> Result<Vec<Recipient>, VaultError> {
    if !project_recipients.is_empty() {
        return Ok(project_recipients.to_vec());
    }
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    // In untrusted mode the search stops at the repository's root, as every path it names does.
    let Some(config) = absolute
        .ancestors()
        .skip(1)
        .take_while(|d| crate::trust::may_search(d))
        .map(|d| d.join(".sops.yaml"))
        .find(|p| p.is_file())
    else {
        return Ok(Vec::new());
    };
    let text = crate::trust::read_text(&config, ".sops.yaml", 1024 * 1024)?;
    let policy = |message: String| VaultError::Policy {
        path: config.clone(),
        message,
    };
    let parsed: Json = serde_saphyr::from_str(&text).map_err(|e| policy(format!("invalid YAML: {e}")))?;
    let relative = absolute
        .strip_prefix(config.parent().unwrap_or(Path::new("/")))
        .unwrap_or(&absolute)
        .to_string_lossy()
        .into_owned();
    for rule in parsed["creation_rules"].as_array().into_iter().flatten() {
        if let Some(pattern) = rule["path_regex"].as_str() {
            let regex =
                regex::Regex::new(pattern).map_err(|e| policy(format!("invalid path_regex `{pattern}`: {e}")))?;
            if !regex.is_match(&relative) {
                continue;
            }
        }
        return rule_recipients(rule).map_err(policy);
    }
    Ok(Vec::new())
}

/// The master keys of one `.sops.yaml` creation rule: `age`, `hc_vault_transit_uri` and `kms` (comma
/// separated strings or lists, `kms` entries with sops' `+ROLE` suffix, `aws_profile` for all), or one
/// `key_groups` group holding `age`, `hc_vault` and `kms` lists. Several key groups (Shamir secret
/// sharing) are refused: kdeploy does not split data keys.
fn rule_recipients(rule: &Json) -> Result<Vec<Recipient>, String> {
    let list = |value: &Json| -> Vec<Json> {
        match value {
            Json::String(text) => text
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| Json::String(r.to_owned()))
                .collect(),
            Json::Array(items) => items.clone(),
            _ => Vec::new(),
        }
    };
    let profile = rule["aws_profile"].as_str().filter(|p| !p.is_empty());
    let mut recipients = Vec::new();
    let mut add = |scope: &Json| -> Result<(), String> {
        for item in list(&scope["kms"]) {
            let mut recipient = recipient_from_json(&item)?;
            if let (Recipient::Kms(key), Some(profile)) = (&mut recipient, profile)
                && key.profile.is_none()
            {
                key.profile = Some(profile.to_owned());
            }
            recipients.push(recipient);
        }
        for name in ["hc_vault_transit_uri", "hc_vault"] {
            for item in list(&scope[name]) {
                recipients.push(recipient_from_json(&item)?);
            }
        }
        for item in list(&scope["age"]) {
            recipients.push(recipient_from_json(&item)?);
        }
        Ok(())
    };
    match rule["key_groups"].as_array() {
        Some(groups) if groups.len() > 1 => {
            return Err(format!(
                "this creation rule has {} key_groups (Shamir secret sharing), which kdeploy does not write; use one group or none",
                groups.len()
            ));
        }
        Some(groups) => groups.iter().try_for_each(&mut add)?,
        None => add(rule)?,
    }
    Ok(recipients)
}

/// Checks a file's recipient list against the configured one. A file kdeploy wrote binds its list to
/// the data key (checked when it is opened), so a difference only means the file is stale. A file
/// without that binding (written by sops) cannot tell an edit from a stale list, so a difference is
/// refused.
pub fn check_recipients(file: &VaultFile, configured: &[Recipient]) -> Result<Option<String>, VaultError> {
    if configured.is_empty() {
        return Ok(None);
    }
    let have: BTreeSet<String> = file.recipients().iter().map(ToString::to_string).collect();
    let want: BTreeSet<String> = configured.iter().map(ToString::to_string).collect();
    if have == want {
        return Ok(None);
    }
    let added: Vec<&String> = have.difference(&want).collect();
    let missing: Vec<&String> = want.difference(&have).collect();
    let difference = format!(
        "its recipients differ from the project's (in the file only: {}; in the project only: {})",
        if added.is_empty() {
            "none".to_owned()
        } else {
            added.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        },
        if missing.is_empty() {
            "none".to_owned()
        } else {
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        },
    );
    if file.encrypted.metadata.recipients_mac.is_some() {
        Ok(Some(format!(
            "{}: {difference}; run `kdeploy vault updatekeys {}`",
            file.path.display(),
            file.path.display()
        )))
    } else {
        Err(VaultError::Policy {
            path: file.path.clone(),
            message: format!(
                "{difference}, and the file carries no kdeploy recipient binding (was it written by sops?), so an edit cannot be told from a stale list; check the list, then run `kdeploy vault updatekeys`"
            ),
        })
    }
}

/// Decrypted vault values for templates, and what must be masked wherever it appears.
#[derive(Default)]
pub struct Secrets {
    pub values: Json,
    plaintexts: Vec<Zeroizing<String>>,
    /// Warnings found while loading (stale recipient lists).
    pub warnings: Vec<String>,
    /// Which file each key path (`db.password`) came from; later files win.
    pub origins: std::collections::BTreeMap<String, PathBuf>,
    /// A key for digests of secret content (config checksums), derived from the first file's data key:
    /// stable until that file is rotated, and known only to those who can open the vault.
    checksum_key: Option<Zeroizing<[u8; 32]>>,
    /// What deploy revisions seal their Secrets with: the first file's key (see [`seal`]).
    sealing: Option<seal::Sealing>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets(<{} values redacted>)", self.plaintexts.len())
    }
}

impl Secrets {
    /// Every decrypted string value (numbers and booleans too, as text), for masking.
    pub fn plaintexts(&self) -> impl Iterator<Item = &str> {
        self.plaintexts.iter().map(|s| s.as_str())
    }

    /// The key for config checksums of Secrets; none without a vault.
    pub fn checksum_key(&self) -> Option<&[u8]> {
        self.checksum_key.as_ref().map(|k| k.as_slice())
    }

    /// What revisions seal Secrets with; none without a vault.
    pub fn sealing(&self) -> Option<&seal::Sealing> {
        self.sealing.as_ref()
    }

    /// Loads and merges (deeply, later files win) the vault files.
    pub fn load(
        files: &[PathBuf],
        project_recipients: &[Recipient],
        identities: &mut IdentityChain,
    ) -> Result<Secrets, VaultError> {
        let mut secrets = Secrets {
            values: Json::Object(Default::default()),
            ..Default::default()
        };
        for path in files {
            let file = VaultFile::read(path)?;
            let configured = configured_recipients(project_recipients, path)?;
            if let Some(warning) = check_recipients(&file, &configured)? {
                secrets.warnings.push(warning);
            }
            let (data_key, tree) = file.open(identities)?;
            let bound =
                sops::bound_repositories(&file.encrypted.metadata, &data_key).map_err(|source| VaultError::Format {
                    path: path.clone(),
                    source,
                })?;
            crate::trust::check_binding(path, bound.as_deref()).map_err(|message| VaultError::Policy {
                path: path.clone(),
                message,
            })?;
            if secrets.checksum_key.is_none() {
                secrets.checksum_key = Some(derive_checksum_key(&data_key));
            }
            if secrets.sealing.is_none() {
                secrets.sealing = seal::Sealing::of(&file, &data_key);
            }
            for key in tree.leaf_paths() {
                secrets.origins.insert(key, path.clone());
            }
            let json = tree.to_json();
            collect_plaintexts(&json, &mut secrets.plaintexts);
            merge_json(&mut secrets.values, json);
        }
        Ok(secrets)
    }
}

/// HMAC-SHA256 of a fixed label under the data key: a key for nothing but checksums.
fn derive_checksum_key(data_key: &DataKey) -> Zeroizing<[u8; 32]> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(data_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"kdeploy.dev/config-checksum v1");
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// Every non-empty string (and number, as text) in `json`: what must be masked.
pub(crate) fn collect_plaintexts(json: &Json, out: &mut Vec<Zeroizing<String>>) {
    match json {
        Json::Object(map) => map.values().for_each(|v| collect_plaintexts(v, out)),
        Json::Array(items) => items.iter().for_each(|v| collect_plaintexts(v, out)),
        Json::String(s) if !s.is_empty() => out.push(Zeroizing::new(s.clone())),
        Json::Number(n) => out.push(Zeroizing::new(n.to_string())),
        _ => {}
    }
}

fn merge_json(base: &mut Json, overlay: Json) {
    match (base, overlay) {
        (Json::Object(base), Json::Object(overlay)) => {
            for (k, v) in overlay {
                match base.get_mut(&k) {
                    Some(existing) => merge_json(existing, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Encrypts a whole file with age (ASCII-armored), as `age -a -r …` does.
pub fn encrypt_age_file(plaintext: &[u8], recipients: &[String]) -> Result<String, VaultError> {
    keys::age_armor_encrypt(plaintext, recipients).map_err(|source| VaultError::Format {
        path: PathBuf::from("(age)"),
        source: source.into(),
    })
}

/// Decrypts a whole-file age file (`.env.age`, armored or binary), as the age CLI wrote it.
pub fn decrypt_age_file(path: &Path, identities: &mut IdentityChain) -> Result<Zeroizing<String>, VaultError> {
    let bytes = std::fs::read(path).map_err(|source| VaultError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = identities.first_that_opens(
        &path.display().to_string(),
        vec!["(age files do not name their recipients)".to_owned()],
        |ids| {
            let reader = age::armor::ArmoredReader::new(bytes.as_slice());
            let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(reader)).map_err(|e| {
                SopsError::from(keys::KeyError::Age(format!("{}: not an age file: {e}", path.display())))
            })?;
            match decryptor.decrypt(ids.iter().map(|i| i as &dyn age::Identity)) {
                Ok(mut reader) => {
                    let mut text = Zeroizing::new(String::new());
                    reader.read_to_string(&mut text).map_err(|e| {
                        SopsError::from(keys::KeyError::Age(format!(
                            "{}: the decrypted content is not UTF-8 text: {e}",
                            path.display()
                        )))
                    })?;
                    Ok(Some(text))
                }
                Err(age::DecryptError::NoMatchingKeys) => Ok(None),
                Err(e) => Err(SopsError::from(keys::KeyError::Age(format!("{}: {e}", path.display()))).into()),
            }
        },
    )?;
    Ok(text)
}
pub mod redact;
