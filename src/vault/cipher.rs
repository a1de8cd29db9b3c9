//! SOPS value encryption: AES-256-GCM with a 32-byte nonce, the key path as additional data, written as
//! `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// SOPS uses GCM with a 32-byte nonce, not the usual 12.
type SopsGcm = AesGcm<Aes256, U32>;
const NONCE_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// The per-file data key. Zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    pub fn generate() -> Result<DataKey, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(DataKey(key))
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(key))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The type tag of an encrypted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Str,
    Int,
    Float,
    Bool,
    /// Written by sops for YAML timestamps; kdeploy reads them as strings.
    Time,
    Comment,
}

impl ValueType {
    fn tag(self) -> &'static str {
        match self {
            ValueType::Str => "str",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Bool => "bool",
            ValueType::Time => "time",
            ValueType::Comment => "comment",
        }
    }

    fn parse(tag: &str) -> Option<ValueType> {
        Some(match tag {
            "str" => ValueType::Str,
            "int" => ValueType::Int,
            "float" => ValueType::Float,
            "bool" => ValueType::Bool,
            "time" => ValueType::Time,
            "comment" => ValueType::Comment,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("not an ENC[AES256_GCM,...] value")]
    Malformed,
    #[error(
        "the value does not decrypt: the ciphertext, its key path or the data key is wrong (tampered, or moved from another key)"
    )]
    Authentication,
    #[error("cannot generate random bytes: {0}")]
    Random(String),
}

/// Encrypts `plaintext` (the text form of a value of type `kind`) for the key path `aad`.
pub fn encrypt(key: &DataKey, plaintext: &[u8], kind: ValueType, aad: &str) -> Result<String, CipherError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| CipherError::Random(e.to_string()))?;
    encrypt_with_nonce(key, plaintext, kind, aad, &nonce)
}

fn encrypt_with_nonce(
    key: &DataKey,
    plaintext: &[u8],
    kind: ValueType,
    aad: &str,
    nonce: &[u8; NONCE_LEN],
) -> Result<String, CipherError> {
    let cipher = SopsGcm::new_from_slice(key.as_bytes()).map_err(|_| CipherError::Malformed)?;
    let sealed = cipher
        .encrypt(
            Nonce::<U32>::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CipherError::Authentication)?;
    let (data, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    Ok(format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
        STANDARD.encode(data),
        STANDARD.encode(nonce),
        STANDARD.encode(tag),
        kind.tag()
    ))
}

/// Whether a string is an encrypted value.
pub fn is_encrypted(value: &str) -> bool {
    value.starts_with("ENC[AES256_GCM,") && value.ends_with(']')
}

/// Decrypts an `ENC[...]` value written for the key path `aad`: its plaintext bytes and type.
pub fn decrypt(key: &DataKey, value: &str, aad: &str) -> Result<(Vec<u8>, ValueType), CipherError> {
    let inner = value
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|v| v.strip_suffix(']'))
        .ok_or(CipherError::Malformed)?;
    let (mut data, mut iv, mut tag, mut kind) = (None, None, None, None);
    for part in inner.split(',') {
        let (name, content) = part.split_once(':').ok_or(CipherError::Malformed)?;
        match name {
            "data" => data = Some(STANDARD.decode(content).map_err(|_| CipherError::Malformed)?),
            "iv" => iv = Some(STANDARD.decode(content).map_err(|_| CipherError::Malformed)?),
            "tag" => tag = Some(STANDARD.decode(content).map_err(|_| CipherError::Malformed)?),
            "type" => kind = Some(ValueType::parse(content).ok_or(CipherError::Malformed)?),
            _ => return Err(CipherError::Malformed),
        }
    }
    let (Some(mut sealed), Some(iv), Some(tag), Some(kind)) = (data, iv, tag, kind) else {
        return Err(CipherError::Malformed);
    };
    if iv.len() != NONCE_LEN || tag.len() != TAG_LEN {
        return Err(CipherError::Malformed);
    }
    sealed.extend_from_slice(&tag);
    let cipher = SopsGcm::new_from_slice(key.as_bytes()).map_err(|_| CipherError::Malformed)?;
    let plaintext = cipher
        .decrypt(
            Nonce::<U32>::from_slice(&iv),
            Payload {
                msg: &sealed,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CipherError::Authentication)?;
    Ok((plaintext, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_the_key_path_is_bound() {
        let key = DataKey::generate().unwrap();
        let enc = encrypt(&key, b"hunter2", ValueType::Str, "db:password:").unwrap();
        assert!(is_encrypted(&enc) && enc.ends_with(",type:str]"), "{enc}");
        assert_eq!(
            decrypt(&key, &enc, "db:password:").unwrap(),
            (b"hunter2".to_vec(), ValueType::Str)
        );
        assert_eq!(decrypt(&key, &enc, "db:user:"), Err(CipherError::Authentication));
        let other = DataKey::generate().unwrap();
        assert_eq!(decrypt(&other, &enc, "db:password:"), Err(CipherError::Authentication));
        let tampered = enc.replacen("data:", "data:AA", 1);
        assert!(decrypt(&key, &tampered, "db:password:").is_err());
        assert_eq!(
            decrypt(&key, "ENC[AES256_GCM,nonsense]", "x:"),
            Err(CipherError::Malformed)
        );
    }

    #[test]
    fn data_keys_never_print() {
        let key = DataKey::generate().unwrap();
        assert_eq!(format!("{key:?}"), "DataKey(<redacted>)");
    }
}
