//! Sealing what a deploy revision must keep but nobody may read from it: the Secrets of an applied
//! manifest (and any object carrying a vault value), encrypted to the project's vault recipients.
//!
//! A sealed blob is a SOPS JSON document with one encrypted value (`objects`, the objects as JSON
//! text) under the data key of the project's first vault file, with that file's wrapped keys: whoever
//! can open the vault can open the revision (with kdeploy, or `sops -d`), and nobody else can, whatever
//! they may read in the cluster. Reusing the vault's data key (a fresh nonce per value, as sops does)
//! means storing a revision needs no key service: the key is already open.

use serde_json::json;
use zeroize::Zeroizing;

use super::cipher::DataKey;
use super::identity::IdentityChain;
use super::sops::{self, EncryptionRules, Format, Metadata, SopsError, Tree};
use super::{VaultError, VaultFile};

/// What seals a revision: a vault's open data key and the keys it is wrapped to.
#[derive(Clone)]
pub struct Sealing {
    key: DataKey,
    metadata: Metadata,
    /// The vault file the key comes from, as errors name it.
    origin: String,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealing(<key of {}>)", self.origin)
    }
}

impl Sealing {
    /// The sealing of an open vault file; none for a file sops split into Shamir key groups, whose
    /// metadata kdeploy cannot write again.
    pub fn of(file: &VaultFile, key: &DataKey) -> Option<Sealing> {
        let metadata = &file.encrypted.metadata;
        (metadata.key_groups.is_empty() && !metadata.keys.is_empty()).then(|| Sealing {
            key: key.clone(),
            metadata: metadata.clone(),
            origin: file.path.display().to_string(),
        })
    }

    /// The recipients a sealed blob is readable by.
    pub fn recipients(&self) -> Vec<String> {
        self.metadata.recipients().iter().map(ToString::to_string).collect()
    }
}

/// Encrypts `plaintext` (JSON text) into a SOPS JSON document.
pub fn seal(plaintext: &str, sealing: &Sealing) -> Result<String, SopsError> {
    let tree = Tree::from_json(&json!({ "objects": plaintext }))?;
    let encrypted = sops::encrypt(
        &tree,
        &sealing.key,
        sealing.metadata.keys.clone(),
        EncryptionRules::default(),
        Format::Json,
        None,
    )?;
    sops::write(&encrypted.tree, Some(&encrypted.metadata), Format::Json)
}

/// Opens a sealed blob: with `known` when it was sealed under that key (no identity needed), else
/// with whatever key `identities` find. `name` says what is being opened, in errors.
pub fn unseal(
    text: &str,
    name: &str,
    known: Option<&Sealing>,
    identities: &mut IdentityChain,
) -> Result<Zeroizing<String>, VaultError> {
    let format_error = |source| VaultError::Format {
        path: name.into(),
        source,
    };
    let file = sops::parse_encrypted(text, Format::Json).map_err(format_error)?;
    let known_key = known
        .filter(|k| k.metadata.keys == file.metadata.keys)
        .map(|k| k.key.clone());
    let key = match known_key {
        Some(key) => key,
        None => identities.open(name, &file.metadata)?,
    };
    let tree = sops::decrypt(&file, &key).map_err(format_error)?;
    match tree.to_json().get("objects").and_then(|v| v.as_str()) {
        Some(objects) => Ok(Zeroizing::new(objects.to_owned())),
        None => Err(format_error(SopsError::Invalid(
            "a sealed revision holds no `objects`".into(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::keys::Stanza;

    fn sealing() -> (Sealing, age::x25519::Identity) {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let key = DataKey::generate().unwrap();
        let tree = Tree::from_json(&json!({"a": "b"})).unwrap();
        let services = crate::vault::keys::KeyServices::new(&|_| None);
        let recipients = vec![recipient.parse().unwrap()];
        let keys: Vec<Stanza> = services.wrap_all(&key, &recipients, &[]).unwrap();
        let encrypted = sops::encrypt(&tree, &key, keys, EncryptionRules::default(), Format::Json, None).unwrap();
        let file = VaultFile {
            path: "secrets.sops.json".into(),
            encrypted,
        };
        (Sealing::of(&file, &key).unwrap(), identity)
    }

    #[test]
    fn a_sealed_blob_opens_with_the_key_or_an_identity_and_shows_no_plaintext() {
        let (sealing, identity) = sealing();
        let text = seal(r#"[{"stringData":{"token":"canary-value"}}]"#, &sealing).unwrap();
        assert!(!text.contains("canary-value"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let mut nothing = IdentityChain::new(None, &|name| (name == "KDEPLOY_NO_KEYRING").then(|| "1".into()));
        let opened = unseal(&text, "revision 1", Some(&sealing), &mut nothing).unwrap();
        assert!(opened.contains("canary-value"));

        let file = dir.path().join("keys.txt");
        std::fs::write(&file, identity.to_string().expose_secret_for_test()).unwrap();
        let mut chain = IdentityChain::new(Some(&file), &|_| None);
        let opened = unseal(&text, "revision 1", None, &mut chain).unwrap();
        assert!(opened.contains("canary-value"));

        let error = unseal(&text, "revision 1", None, &mut nothing).unwrap_err().to_string();
        assert!(error.contains("no key can open revision 1"), "{error}");
    }

    trait ExposeForTest {
        fn expose_secret_for_test(&self) -> String;
    }
    impl ExposeForTest for age::secrecy::SecretString {
        fn expose_secret_for_test(&self) -> String {
            use age::secrecy::ExposeSecret;
            self.expose_secret().to_owned()
        }
    }
}
