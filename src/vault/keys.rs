//! The master keys a SOPS data key is wrapped to: age recipients, OpenBao/Vault transit keys and AWS
//! KMS keys, named as sops names them, and the remote services that wrap and unwrap for the last two.
//!
//! A [`Recipient`] is written as one string in kdeploy.yaml, on the command line and in messages:
//! `age1…`; a transit URI `https://HOST:PORT/v1/ENGINE/keys/NAME` (sops' `hc_vault_transit_uri`); a
//! KMS key ARN, with sops' `+ROLE_ARN` suffix for a role to assume and kdeploy's `|context=k:v,…` and
//! `|profile=NAME` for an encryption context and an AWS profile. kdeploy.yaml also takes the map forms
//! of `.sops.yaml` (`{kms: ARN, role: …, context: {…}, aws_profile: …}`, `{hc_vault_transit_uri: …}`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use super::aws::{Aws, KmsKey};
use super::cipher::DataKey;
use super::http::RemoteError;
use super::openbao::{OpenBao, TransitKey};

/// One master key a file is (or is to be) encrypted to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Recipient {
    Age(String),
    Transit(TransitKey),
    Kms(KmsKey),
}

impl Recipient {
    /// What kind of key, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Recipient::Age(_) => "age",
            Recipient::Transit(_) => "OpenBao/Vault transit",
            Recipient::Kms(_) => "AWS KMS",
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Age(key) => write!(f, "{key}"),
            Recipient::Transit(key) => write!(f, "{}", key.uri()),
            Recipient::Kms(key) => {
                write!(f, "{}", key.arn)?;
                if let Some(role) = &key.role {
                    write!(f, "+{role}")?;
                }
                if !key.context.is_empty() {
                    let pairs: Vec<String> = key.context.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    write!(f, "|context={}", pairs.join(","))?;
                }
                if let Some(profile) = &key.profile {
                    write!(f, "|profile={profile}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Recipient {
    type Err = String;

    fn from_str(text: &str) -> Result<Recipient, String> {
        let text = text.trim();
        if text.starts_with("age1") {
            text.parse::<age::x25519::Recipient>()
                .map_err(|e| format!("`{text}` is not an age recipient: {e}"))?;
            return Ok(Recipient::Age(text.to_owned()));
        }
        if text.starts_with("https://") || text.starts_with("http://") {
            return TransitKey::parse(text).map(Recipient::Transit);
        }
        if text.starts_with("arn:") {
            let mut parts = text.split('|');
            let key = parts.next().unwrap_or_default();
            let (arn, role) = match key.split_once('+') {
                Some((arn, role)) => (arn, Some(role.to_owned())),
                None => (key, None),
            };
            if !arn.starts_with("arn:aws") || !arn.contains(":kms:") {
                return Err(format!(
                    "`{arn}` is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)"
                ));
            }
            let mut kms = KmsKey {
                arn: arn.to_owned(),
                role,
                context: BTreeMap::new(),
                profile: None,
            };
            for part in parts {
                match part.split_once('=') {
                    Some(("context", pairs)) => kms.context = parse_context(pairs)?,
                    Some(("profile", name)) if !name.is_empty() => kms.profile = Some(name.to_owned()),
                    _ => {
                        return Err(format!(
                            "`{part}` in `{text}`: a KMS recipient takes `|context=k:v,…` and `|profile=NAME`"
                        ));
                    }
                }
            }
            return Ok(Recipient::Kms(kms));
        }
        Err(format!(
            "`{text}` is not a recipient: give an age key (age1…), an OpenBao/Vault transit key URI \
             (https://HOST:PORT/v1/transit/keys/NAME) or an AWS KMS key ARN (arn:aws:kms:…)"
        ))
    }
}

/// `k:v,k2:v2`, as sops' `--encryption-context` takes it.
pub fn parse_context(pairs: &str) -> Result<BTreeMap<String, String>, String> {
    pairs
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            pair.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("encryption context `{pair}` is not KEY:VALUE"))
        })
        .collect()
}

impl<'de> serde::Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Recipient, D::Error> {
        use serde::de::Error;
        let json = serde_json::Value::deserialize(deserializer)?;
        recipient_from_json(&json).map_err(D::Error::custom)
    }
}

impl serde::Serialize for Recipient {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// What kdeploy.yaml's schema says a recipient is: what [`recipient_from_json`] reads.
impl schemars::JsonSchema for Recipient {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Recipient".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An age recipient (age1…), an OpenBao/Vault transit key URI (https://HOST:PORT/v1/transit/keys/NAME) or an AWS KMS key ARN (arn:aws:kms:…, with `+ROLE_ARN`, `|context=k:v,…`, `|profile=NAME`), or one of .sops.yaml's map forms",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "age": {"type": "string"},
                        "hc_vault_transit_uri": {"type": "string"},
                        "hc_vault": {"type": "string"},
                        "kms": {"type": "string"},
                        "arn": {"type": "string"},
                        "role": {"type": "string"},
                        "aws_profile": {"type": "string"},
                        "context": {"type": "object", "additionalProperties": {"type": "string"}},
                        "encryption_context": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                    "anyOf": [
                        {"required": ["age"]},
                        {"required": ["hc_vault_transit_uri"]},
                        {"required": ["hc_vault"]},
                        {"required": ["kms"]},
                        {"required": ["arn"]}
                    ]
                }
            ]
        })
    }
}

/// A recipient written as a string or in `.sops.yaml`'s map forms.
pub fn recipient_from_json(json: &serde_json::Value) -> Result<Recipient, String> {
    use serde_json::Value as Json;
    match json {
        Json::String(text) => text.parse(),
        Json::Object(map) => {
            let text = |name: &str| map.get(name).and_then(Json::as_str).map(str::to_owned);
            if let Some(arn) = text("kms").or_else(|| text("arn")) {
                let Recipient::Kms(mut key) = arn.parse()? else {
                    return Err(format!("`{arn}` is not a KMS key ARN"));
                };
                if let Some(role) = text("role").filter(|r| !r.is_empty()) {
                    key.role = Some(role);
                }
                if let Some(Json::Object(context)) = map.get("context").or_else(|| map.get("encryption_context")) {
                    for (k, v) in context {
                        let value = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
                        key.context.insert(k.clone(), value);
                    }
                }
                if let Some(profile) = text("aws_profile").filter(|p| !p.is_empty()) {
                    key.profile = Some(profile);
                }
                return Ok(Recipient::Kms(key));
            }
            if let Some(uri) = text("hc_vault_transit_uri").or_else(|| text("hc_vault")) {
                return TransitKey::parse(&uri).map(Recipient::Transit);
            }
            if let Some(age) = text("age") {
                return age.parse();
            }
            Err("a recipient map needs `kms`, `hc_vault_transit_uri` or `age`".into())
        }
        other => Err(format!("a recipient is a string or a map, not {other}")),
    }
}

/// One age recipient of a file, with the data key wrapped to it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgeStanza {
    pub recipient: String,
    pub enc: String,
}

/// Why a data key could not be wrapped to, or unwrapped from, a master key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("age: {0}")]
    Age(String),
    #[error("{recipient}: {message}")]
    Service { recipient: String, message: String },
}

/// The data key wrapped to one master key, as it sits in the `sops` metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum Stanza {
    Age(AgeStanza),
    Transit {
        key: TransitKey,
        created_at: String,
        enc: String,
    },
    Kms {
        key: KmsKey,
        created_at: String,
        enc: String,
    },
}

impl Stanza {
    pub fn recipient(&self) -> Recipient {
        match self {
            Stanza::Age(stanza) => Recipient::Age(stanza.recipient.clone()),
            Stanza::Transit { key, .. } => Recipient::Transit(key.clone()),
            Stanza::Kms { key, .. } => Recipient::Kms(key.clone()),
        }
    }
}

/// The remote key services of one run, built on first use from a snapshot of the environment.
pub struct KeyServices {
    env: BTreeMap<String, String>,
    openbao: std::sync::OnceLock<OpenBao>,
    aws: std::sync::OnceLock<Aws>,
}

/// The environment variables the remote services read.
const SERVICE_ENV: &[&str] = &[
    "HOME",
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "BAO_ADDR",
    "BAO_TOKEN",
    "BAO_NAMESPACE",
    "BAO_CACERT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CA_BUNDLE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_SSM",
    "AWS_ENDPOINT_URL_STS",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

impl KeyServices {
    pub fn new(env: &dyn Fn(&str) -> Option<String>) -> KeyServices {
        KeyServices {
            env: SERVICE_ENV
                .iter()
                .filter_map(|name| Some((name.to_string(), env(name)?)))
                .collect(),
            openbao: std::sync::OnceLock::new(),
            aws: std::sync::OnceLock::new(),
        }
    }

    pub fn openbao(&self) -> &OpenBao {
        self.openbao.get_or_init(|| OpenBao::new(self.env.clone()))
    }

    pub fn aws(&self) -> &Aws {
        self.aws.get_or_init(|| Aws::new(self.env.clone()))
    }

    /// Wraps `key` to `recipient`.
    pub fn wrap(&self, key: &DataKey, recipient: &Recipient) -> Result<Stanza, KeyError> {
        let remote = |error: RemoteError| KeyError::Service {
            recipient: recipient.to_string(),
            message: error.to_string(),
        };
        Ok(match recipient {
            Recipient::Age(age) => Stanza::Age(wrap_key(key, age)?),
            Recipient::Transit(transit) => Stanza::Transit {
                key: transit.clone(),
                created_at: crate::util::now_rfc3339(),
                enc: transit.encrypt(self.openbao(), key.as_bytes()).map_err(remote)?,
            },
            Recipient::Kms(kms) => Stanza::Kms {
                key: kms.clone(),
                created_at: crate::util::now_rfc3339(),
                enc: kms.encrypt(self.aws(), key.as_bytes()).map_err(remote)?,
            },
        })
    }

    /// Wraps `key` to each recipient; a stanza already in `keep` for the same recipient is reused
    /// when it holds this data key (so `updatekeys` does not rewrap what it does not need to).
    pub fn wrap_all(&self, key: &DataKey, recipients: &[Recipient], keep: &[Stanza]) -> Result<Vec<Stanza>, KeyError> {
        recipients
            .iter()
            .map(|recipient| match keep.iter().find(|s| s.recipient() == *recipient) {
                Some(existing) => Ok(existing.clone()),
                None => self.wrap(key, recipient),
            })
            .collect()
    }

    /// Unwraps what a transit or KMS stanza holds (the data key, or a Shamir share of it).
    pub fn unwrap(&self, stanza: &Stanza) -> Result<zeroize::Zeroizing<Vec<u8>>, RemoteError> {
        match stanza {
            Stanza::Age(_) => Err(RemoteError::Failed("age stanzas are opened with identities".into())),
            Stanza::Transit { key, enc, .. } => key.decrypt(self.openbao(), enc),
            Stanza::Kms { key, enc, .. } => key.decrypt(self.aws(), enc),
        }
    }
}

/// Wraps the data key to one age recipient, ASCII-armored as sops stores it.
pub fn wrap_key(key: &DataKey, recipient: &str) -> Result<AgeStanza, KeyError> {
    Ok(AgeStanza {
        recipient: recipient.trim().to_owned(),
        enc: age_armor_encrypt(key.as_bytes(), &[recipient.to_owned()])?,
    })
}

/// Encrypts `plaintext` to age recipients, ASCII-armored (what `age -a -r …` writes).
pub fn age_armor_encrypt(plaintext: &[u8], recipients: &[String]) -> Result<String, KeyError> {
    let parsed: Vec<age::x25519::Recipient> = recipients
        .iter()
        .map(|r| {
            r.trim()
                .parse()
                .map_err(|e| KeyError::Age(format!("`{r}` is not an age recipient (age1…): {e}")))
        })
        .collect::<Result<_, _>>()?;
    let encryptor = age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| KeyError::Age(e.to_string()))?;
    let mut armored = Vec::new();
    let io = |e: std::io::Error| KeyError::Age(e.to_string());
    let armor = age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor).map_err(io)?;
    let mut writer = encryptor.wrap_output(armor).map_err(io)?;
    writer.write_all(plaintext).map_err(io)?;
    writer.finish().and_then(|armor| armor.finish()).map_err(io)?;
    String::from_utf8(armored).map_err(|e| KeyError::Age(e.to_string()))
}

/// Unwraps the data key with any of `identities`; `None` if none of them is a recipient.
pub fn unwrap_key(stanza: &AgeStanza, identities: &[age::x25519::Identity]) -> Result<Option<DataKey>, KeyError> {
    match unwrap_bytes(stanza, identities)? {
        None => Ok(None),
        Some(bytes) => DataKey::from_bytes(&bytes)
            .map(Some)
            .ok_or_else(|| KeyError::Age("the wrapped data key is not 32 bytes".into())),
    }
}

/// Unwraps what an age stanza holds (a data key, or a Shamir share of one).
pub fn unwrap_bytes(
    stanza: &AgeStanza,
    identities: &[age::x25519::Identity],
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, KeyError> {
    let reader = age::armor::ArmoredReader::new(stanza.enc.as_bytes());
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(reader)).map_err(|e| {
        KeyError::Age(format!(
            "the wrapped data key for {} is unreadable: {e}",
            stanza.recipient
        ))
    })?;
    let mut reader = match decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity)) {
        Ok(reader) => reader,
        Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
        Err(e) => {
            return Err(KeyError::Age(format!(
                "the wrapped data key for {} does not decrypt: {e}",
                stanza.recipient
            )));
        }
    };
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| KeyError::Age(e.to_string()))?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_read_in_every_form_and_print_back() {
        let age = age::x25519::Identity::generate().to_public().to_string();
        for text in [
            age.as_str(),
            "https://bao:8200/v1/transit/keys/app",
            "arn:aws:kms:eu-west-1:111122223333:key/1234",
            "arn:aws:kms:eu-west-1:111122223333:key/1234+arn:aws:iam::111122223333:role/deploy|context=app:shop,env:prod|profile=ci",
        ] {
            let recipient: Recipient = text.parse().unwrap();
            assert_eq!(recipient.to_string(), text);
        }
        let map: serde_json::Value = serde_json::json!({
            "kms": "arn:aws:kms:eu-west-1:111122223333:key/1234",
            "role": "arn:aws:iam::111122223333:role/deploy",
            "context": {"env": "prod"},
            "aws_profile": "ci",
        });
        let Recipient::Kms(key) = recipient_from_json(&map).unwrap() else {
            panic!()
        };
        assert_eq!(key.role.as_deref(), Some("arn:aws:iam::111122223333:role/deploy"));
        assert_eq!(key.context["env"], "prod");
        assert_eq!(key.profile.as_deref(), Some("ci"));
        for bad in [
            "age1nope",
            "ftp://x/v1/transit/keys/a",
            "arn:aws:s3:::bucket",
            "gpg:ABC",
            "arn:aws:kms:r:1:key/x|ctx=a",
        ] {
            assert!(bad.parse::<Recipient>().is_err(), "{bad}");
        }
    }
}
