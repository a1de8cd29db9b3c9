//! Finding the keys that open a vault file: age identities, and the OpenBao/Vault transit and AWS KMS
//! keys the file names (through [`KeyServices`], with the credentials those services take).
//!
//! Sources, in order: `--identity FILE`; `SOPS_AGE_KEY` (identities inline) and `SOPS_AGE_KEY_FILE`;
//! the OS keyring (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows; entry
//! service `kdeploy`, account `age-identity`); sops' default key file
//! (`$XDG_CONFIG_HOME/sops/age/keys.txt`, usually `~/.config/sops/age/keys.txt`). Sources are read
//! lazily, in order, until one opens the file: the keyring is not touched when an earlier source works.
//! Age identities are tried first (they are local), then each transit and KMS key of the file in
//! order. When none can open it, the error lists what was tried, why each failed, and the recipients
//! the file is encrypted to.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::cipher::DataKey;
use super::keyring;
use super::keys::{KeyServices, Stanza, unwrap_bytes};
use super::sops::{Metadata, SopsError};

pub const KEYRING_SERVICE: &str = "kdeploy";
pub const KEYRING_ACCOUNT: &str = "age-identity";
/// What the keyring's own tools (Seahorse, `secret-tool`) show for the entry.
const KEYRING_LABEL: &str = "kdeploy age identity";

/// One place identities may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    EnvKey,
    EnvKeyFile(PathBuf),
    Keyring,
    DefaultFile(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "--identity {}", p.display()),
            Source::EnvKey => write!(f, "SOPS_AGE_KEY"),
            Source::EnvKeyFile(p) => write!(f, "SOPS_AGE_KEY_FILE {}", p.display()),
            Source::Keyring => write!(f, "OS keyring ({KEYRING_SERVICE}/{KEYRING_ACCOUNT})"),
            Source::DefaultFile(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no key can open {file}.\n  tried:\n{}\n  the file is encrypted to:\n{}\n  ask someone who can open it to add your recipient (`kdeploy vault recipients add <your age1… key>`), point kdeploy at your identity with --identity FILE or SOPS_AGE_KEY_FILE, or give it OpenBao/Vault (VAULT_ADDR, VAULT_TOKEN) or AWS credentials for one of the keys above",
        .attempts.iter().map(|(s, r)| format!("    {s}: {r}")).collect::<Vec<_>>().join("\n"),
        .recipients.iter().map(|r| format!("    {r}")).collect::<Vec<_>>().join("\n"))]
    NoneCanOpen {
        file: String,
        attempts: Vec<(String, String)>,
        recipients: Vec<String>,
    },
    #[error("{source_name}: {message}")]
    Unreadable { source_name: String, message: String },
    #[error(transparent)]
    Sops(#[from] SopsError),
    #[error("OS keyring: {0}")]
    Keyring(String),
    #[error(
        "an identity is already stored in the OS keyring ({KEYRING_SERVICE}/{KEYRING_ACCOUNT}); pass --force to replace it (files encrypted only to it will no longer open)"
    )]
    KeyringOccupied,
}

/// sops' default key file: `$XDG_CONFIG_HOME/sops/age/keys.txt`, usually `~/.config/sops/age/keys.txt`.
pub fn sops_key_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")))
        .map(|config| config.join("sops/age/keys.txt"))
}

/// The identity sources of one command, read on demand and remembered.
pub struct IdentityChain {
    sources: Vec<Source>,
    loaded: Vec<Option<Result<Vec<age::x25519::Identity>, String>>>,
    services: KeyServices,
}

impl IdentityChain {
    /// The sources that apply, given `--identity` and the environment.
    pub fn new(explicit: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> IdentityChain {
        let mut sources = Vec::new();
        if let Some(path) = explicit {
            sources.push(Source::File(path.to_path_buf()));
        }
        if env("SOPS_AGE_KEY").is_some_and(|k| !k.trim().is_empty()) {
            sources.push(Source::EnvKey);
        }
        if let Some(path) = env("SOPS_AGE_KEY_FILE").filter(|p| !p.is_empty()) {
            sources.push(Source::EnvKeyFile(path.into()));
        }
        if env("KDEPLOY_NO_KEYRING").is_none() {
            sources.push(Source::Keyring);
        }
        if let Some(file) = sops_key_file(env) {
            sources.push(Source::DefaultFile(file));
        }
        let loaded = sources.iter().map(|_| None).collect();
        IdentityChain {
            sources,
            loaded,
            services: KeyServices::new(env),
        }
    }

    /// From the process environment.
    pub fn from_process(explicit: Option<&Path>) -> IdentityChain {
        IdentityChain::new(explicit, &|name| std::env::var(name).ok())
    }

    fn load(&mut self, index: usize) -> &Result<Vec<age::x25519::Identity>, String> {
        if self.loaded[index].is_none() {
            let result = match &self.sources[index] {
                Source::File(p) | Source::EnvKeyFile(p) | Source::DefaultFile(p) => read_identity_file(p),
                Source::EnvKey => parse_identities(&Zeroizing::new(std::env::var("SOPS_AGE_KEY").unwrap_or_default())),
                Source::Keyring => {
                    keyring_identity().and_then(|i| i.map(|i| vec![i]).ok_or_else(|| "no entry".to_owned()))
                }
            };
            self.loaded[index] = Some(result);
        }
        self.loaded[index].as_ref().expect("loaded above")
    }

    /// The remote key services (OpenBao/Vault, AWS) of this run.
    pub fn services(&self) -> &KeyServices {
        &self.services
    }

    /// Unwraps the data key with any key the file names: age identities first (they are local),
    /// then each OpenBao/Vault transit and AWS KMS key in the file's order.
    ///
    /// A file sops split into Shamir key groups opens when `shamir_threshold` groups each give their
    /// share.
    pub fn open(&mut self, file: &str, metadata: &Metadata) -> Result<DataKey, IdentityError> {
        let mut attempts = Vec::new();
        let none_can_open = |attempts| IdentityError::NoneCanOpen {
            file: file.to_owned(),
            attempts,
            recipients: metadata.recipients().iter().map(ToString::to_string).collect(),
        };
        let bytes = if metadata.key_groups.is_empty() {
            self.unwrap_any(&metadata.keys, &mut attempts)?
                .ok_or_else(|| none_can_open(attempts))?
        } else {
            let mut shares = Vec::new();
            for group in &metadata.key_groups {
                if shares.len() == metadata.shamir_threshold {
                    break;
                }
                if let Some(share) = self.unwrap_any(group, &mut attempts)? {
                    shares.push(share.to_vec());
                }
            }
            if shares.len() < metadata.shamir_threshold.max(1) {
                attempts.push((
                    "Shamir key groups".to_owned(),
                    format!(
                        "{} of {} groups opened, {} needed",
                        shares.len(),
                        metadata.key_groups.len(),
                        metadata.shamir_threshold
                    ),
                ));
                return Err(none_can_open(attempts));
            }
            let key = super::shamir::combine(&shares).map_err(|e| SopsError::Invalid(format!("key groups: {e}")));
            shares.iter_mut().for_each(zeroize::Zeroize::zeroize);
            key?
        };
        DataKey::from_bytes(&bytes)
            .ok_or_else(|| SopsError::Invalid("the unwrapped data key is not 32 bytes".into()).into())
    }

    /// What the first of `stanzas` that opens holds: age stanzas with this chain's identities first,
    /// then transit and KMS keys in order. Records why each did not.
    fn unwrap_any(
        &mut self,
        stanzas: &[Stanza],
        attempts: &mut Vec<(String, String)>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, IdentityError> {
        let age: Vec<_> = stanzas
            .iter()
            .filter_map(|s| match s {
                Stanza::Age(age) => Some(age.clone()),
                _ => None,
            })
            .collect();
        if !age.is_empty() {
            let opened = self.try_sources(attempts, |identities| {
                for stanza in &age {
                    if let Some(bytes) = unwrap_bytes(stanza, identities).map_err(SopsError::from)? {
                        return Ok(Some(bytes));
                    }
                }
                Ok(None)
            })?;
            if opened.is_some() {
                return Ok(opened);
            }
        }
        for stanza in stanzas.iter().filter(|s| !matches!(s, Stanza::Age(_))) {
            let recipient = stanza.recipient();
            match self.services.unwrap(stanza) {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(error) => attempts.push((format!("{} {recipient}", recipient.kind()), error.to_string())),
            }
        }
        Ok(None)
    }

    /// Tries the sources in order, loading each only when the ones before it could not open `file`:
    /// `attempt` returns `Ok(None)` when none of the identities it is given is a recipient.
    pub fn first_that_opens<T>(
        &mut self,
        file: &str,
        recipients: Vec<String>,
        attempt: impl FnMut(&[age::x25519::Identity]) -> Result<Option<T>, IdentityError>,
    ) -> Result<T, IdentityError> {
        let mut attempts = Vec::new();
        match self.try_sources(&mut attempts, attempt)? {
            Some(opened) => Ok(opened),
            None => Err(IdentityError::NoneCanOpen {
                file: file.to_owned(),
                attempts,
                recipients,
            }),
        }
    }

    /// Runs `attempt` with each source's identities until one opens; records why each did not.
    fn try_sources<T>(
        &mut self,
        attempts: &mut Vec<(String, String)>,
        mut attempt: impl FnMut(&[age::x25519::Identity]) -> Result<Option<T>, IdentityError>,
    ) -> Result<Option<T>, IdentityError> {
        for index in 0..self.sources.len() {
            let label = self.sources[index].to_string();
            let identities = match self.load(index) {
                Ok(ids) if ids.is_empty() => {
                    attempts.push((label, "no identity there".to_owned()));
                    continue;
                }
                Ok(ids) => ids.clone(),
                Err(problem) => {
                    attempts.push((label, problem.clone()));
                    continue;
                }
            };
            if let Some(opened) = attempt(&identities)? {
                return Ok(Some(opened));
            }
            let n = identities.len();
            attempts.push((
                label,
                format!(
                    "{n} identit{} found, none is a recipient",
                    if n == 1 { "y" } else { "ies" }
                ),
            ));
        }
        Ok(None)
    }
}

fn read_identity_file(path: &Path) -> Result<Vec<age::x25519::Identity>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_identities(&Zeroizing::new(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no such file".to_owned()),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// Identities in age's file format: one `AGE-SECRET-KEY-1…` a line, `#` comments.
pub fn parse_identities(text: &str) -> Result<Vec<age::x25519::Identity>, String> {
    let mut identities = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let identity = line
            .parse::<age::x25519::Identity>()
            .map_err(|_| format!("line {} is not an age identity (AGE-SECRET-KEY-1…)", n + 1))?;
        // Whatever kdeploy prints from now on masks this key.
        crate::trust::mask([line]);
        identities.push(identity);
    }
    Ok(identities)
}

/// The identity stored in the OS keyring, if any.
fn keyring_identity() -> Result<Option<age::x25519::Identity>, String> {
    let Some(secret) = keyring::read(KEYRING_SERVICE, KEYRING_ACCOUNT).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let mut identities =
        parse_identities(&secret).map_err(|e| format!("the stored entry is not an age identity: {e}"))?;
    Ok(identities.pop())
}

/// Stores an identity in the OS keyring; refuses to replace one unless `replace`.
pub fn store_in_keyring(identity: &age::x25519::Identity, replace: bool) -> Result<(), IdentityError> {
    if !replace && matches!(keyring::read(KEYRING_SERVICE, KEYRING_ACCOUNT), Ok(Some(_))) {
        return Err(IdentityError::KeyringOccupied);
    }
    use age::secrecy::ExposeSecret;
    let secret = identity.to_string();
    keyring::write(KEYRING_SERVICE, KEYRING_ACCOUNT, KEYRING_LABEL, secret.expose_secret())
        .map_err(|e| IdentityError::Keyring(e.to_string()))
}

/// The recipient of the identity in the keyring, if there is one.
pub fn keyring_recipient() -> Result<Option<String>, IdentityError> {
    keyring_identity()
        .map(|identity| identity.map(|i| i.to_public().to_string()))
        .map_err(IdentityError::Keyring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::keys::wrap_key;

    #[test]
    fn explicit_file_then_env_then_defaults_and_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let key = DataKey::generate().unwrap();
        let stanza = wrap_key(&key, &identity.to_public().to_string()).unwrap();
        let file = dir.path().join("keys.txt");
        use age::secrecy::ExposeSecret;
        std::fs::write(
            &file,
            format!("# created: now\n{}\n", identity.to_string().expose_secret()),
        )
        .unwrap();

        let home = dir.path().display().to_string();
        let env = |name: &str| match name {
            "HOME" => Some(home.clone()),
            "KDEPLOY_NO_KEYRING" => Some("1".to_owned()),
            _ => None,
        };
        let metadata = Metadata {
            keys: vec![Stanza::Age(stanza.clone())],
            key_groups: Vec::new(),
            shamir_threshold: 0,
            lastmodified: String::new(),
            mac: String::new(),
            rules: Default::default(),
            version: String::new(),
            other_key_sources: Vec::new(),
            recipients_mac: None,
            bound_to: None,
            binding_mac: None,
            content_mac: None,
        };
        let mut chain = IdentityChain::new(Some(&file), &env);
        assert_eq!(chain.open("f.yaml", &metadata).unwrap(), key);

        let mut without = IdentityChain::new(None, &env);
        let err = without.open("f.yaml", &metadata).unwrap_err().to_string();
        assert!(err.contains(".config/sops/age/keys.txt: no such file"), "{err}");
        assert!(err.contains(&stanza.recipient), "{err}");
        assert!(!err.contains("AGE-SECRET-KEY"), "{err}");
    }

    #[test]
    fn identity_files_are_checked_line_by_line() {
        assert!(parse_identities("# c\n\n").unwrap().is_empty());
        let err = parse_identities("not a key\n").err().unwrap();
        assert_eq!(err, "line 1 is not an age identity (AGE-SECRET-KEY-1…)");
    }
}
