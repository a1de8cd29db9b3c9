//! Secret references, in the form helmfile and vals users know, resolved when a command renders:
//!
//! - `ref+vault://PATH[?address=…&version=N]#/FIELD`: an OpenBao/Vault KV secret (v1 or v2; for v2
//!   `data/` may be written or left out);
//! - `ref+awssecrets://NAME_OR_ARN[?region=…&profile=…&version_stage=…&version_id=…]#/FIELD`: an AWS
//!   Secrets Manager secret (with a fragment, its SecretString is read as JSON);
//! - `ref+awsssm:///PARAMETER/NAME[?region=…&profile=…]#/FIELD`: an SSM parameter, decrypted.
//!
//! A value that is exactly a reference (a trailing `+`, which vals uses to end one, is allowed) is
//! replaced. Each secret is fetched once per run, concurrently, and every resolved string is a secret
//! from then on: the caller adds them to the redactor. A failure names the reference (never a value)
//! and why it failed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use super::aws::Service;
use super::http::{RemoteError, percent_decode};
use super::keys::KeyServices;

pub const PREFIX: &str = "ref+";

/// How many fetches run at once.
const CONCURRENCY: usize = 8;

/// One fetch: the secret a reference points at, without its fragment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Secret {
    Vault {
        address: Option<String>,
        path: String,
        version: Option<String>,
    },
    SecretsManager {
        id: String,
        region: Option<String>,
        profile: Option<String>,
        version_stage: Option<String>,
        version_id: Option<String>,
    },
    SsmParameter {
        name: String,
        region: Option<String>,
        profile: Option<String>,
    },
}

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    secret: Secret,
    /// The key path inside the secret (`/a/b` → `[a, b]`); empty for the whole secret.
    field: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{}", .failures.iter().map(|(r, m)| format!("{r}: {m}")).collect::<Vec<_>>().join("\n"))]
pub struct RefError {
    /// Each reference that failed and why.
    pub failures: Vec<(String, String)>,
}

/// Whether a value is a reference kdeploy resolves.
pub fn is_reference(text: &str) -> bool {
    text.starts_with("ref+vault://") || text.starts_with("ref+awssecrets://") || text.starts_with("ref+awsssm://")
}

impl std::str::FromStr for Reference {
    type Err = String;

    fn from_str(text: &str) -> Result<Reference, String> {
        let body = text.strip_suffix('+').unwrap_or(text);
        let (scheme, rest) = body
            .strip_prefix(PREFIX)
            .and_then(|b| b.split_once("://"))
            .ok_or_else(|| "not a reference (ref+BACKEND://…)".to_owned())?;
        let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(percent_decode(k), percent_decode(v));
        }
        let path = percent_decode(path);
        let field: Vec<String> = fragment
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| percent_decode(p).replace("~1", "/").replace("~0", "~"))
            .collect();
        let mut take = |name: &str| params.remove(name).filter(|v| !v.is_empty());
        let secret = match scheme {
            "vault" => Secret::Vault {
                address: take("address"),
                path: path.trim_matches('/').to_owned(),
                version: take("version"),
            },
            "awssecrets" => Secret::SecretsManager {
                id: path.trim_start_matches('/').to_owned(),
                region: take("region"),
                profile: take("profile"),
                version_stage: take("version_stage"),
                version_id: take("version_id"),
            },
            "awsssm" => Secret::SsmParameter {
                name: if path.starts_with('/') {
                    path.clone()
                } else {
                    format!("/{path}")
                },
                region: take("region"),
                profile: take("profile"),
            },
            other => {
                return Err(format!(
                    "unknown backend `{other}` (kdeploy resolves vault, awssecrets and awsssm)"
                ));
            }
        };
        if let Some(unknown) = params.keys().next() {
            return Err(format!("unknown parameter `{unknown}`"));
        }
        let empty = match &secret {
            Secret::Vault { path, .. } => path.is_empty(),
            Secret::SecretsManager { id, .. } => id.is_empty(),
            Secret::SsmParameter { name, .. } => name == "/",
        };
        if empty {
            return Err("the reference names no secret".into());
        }
        Ok(Reference { secret, field })
    }
}

/// Collects every reference among the string values of `json`.
pub fn find(json: &Json, out: &mut BTreeSet<String>) {
    match json {
        Json::String(text) if is_reference(text) => {
            out.insert(text.clone());
        }
        Json::Object(map) => map.values().for_each(|v| find(v, out)),
        Json::Array(items) => items.iter().for_each(|v| find(v, out)),
        _ => {}
    }
}

/// Replaces each reference in `json` by its resolved value.
pub fn substitute(json: &mut Json, resolved: &Resolved) {
    match json {
        Json::String(text) => {
            if let Some(value) = resolved.values.get(text.as_str()) {
                *json = value.clone();
            }
        }
        Json::Object(map) => map.values_mut().for_each(|v| substitute(v, resolved)),
        Json::Array(items) => items.iter_mut().for_each(|v| substitute(v, resolved)),
        _ => {}
    }
}

/// Resolved references and the secret strings they brought in.
#[derive(Default)]
pub struct Resolved {
    values: BTreeMap<String, Json>,
    plaintexts: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resolved(<{} references redacted>)", self.values.len())
    }
}

impl Resolved {
    /// Every resolved string (numbers as text), for masking.
    pub fn plaintexts(&self) -> impl Iterator<Item = &str> {
        self.plaintexts.iter().map(|s| s.as_str())
    }

    /// The resolved value of one reference.
    pub fn get(&self, reference: &str) -> Option<&Json> {
        self.values.get(reference)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Resolves `references`: each distinct secret fetched once, up to [`CONCURRENCY`] at a time. All
/// failures are reported together.
pub fn resolve(references: &BTreeSet<String>, services: &KeyServices) -> Result<Resolved, RefError> {
    let mut failures = Vec::new();
    let mut parsed = Vec::new();
    for text in references {
        match text.parse::<Reference>() {
            Ok(reference) => parsed.push((text.clone(), reference)),
            Err(message) => failures.push((text.clone(), message)),
        }
    }
    let secrets: Vec<Secret> = parsed
        .iter()
        .map(|(_, r)| r.secret.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fetched = fetch_all(&secrets, services);
    let mut resolved = Resolved::default();
    for (text, reference) in parsed {
        let index = secrets
            .binary_search(&reference.secret)
            .expect("every secret was fetched");
        match &fetched[index] {
            Err(error) => failures.push((text, error.to_string())),
            Ok(secret) => match extract(secret, &reference.field) {
                Ok(value) => {
                    super::collect_plaintexts(&value, &mut resolved.plaintexts);
                    resolved.values.insert(text, value);
                }
                Err(message) => failures.push((text, message)),
            },
        }
    }
    if failures.is_empty() {
        Ok(resolved)
    } else {
        Err(RefError { failures })
    }
}

fn fetch_all(secrets: &[Secret], services: &KeyServices) -> Vec<Result<Json, RemoteError>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Json, RemoteError>>>> =
        secrets.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..CONCURRENCY.min(secrets.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(secret) = secrets.get(index) else { break };
                    let result = fetch(secret, services);
                    *results[index].lock().expect("result lock") = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("result lock")
                .expect("every secret is fetched")
        })
        .collect()
}

fn fetch(secret: &Secret, services: &KeyServices) -> Result<Json, RemoteError> {
    match secret {
        Secret::Vault { address, path, version } => {
            let bao = services.openbao();
            let address = match address {
                Some(address) => address.clone(),
                None => bao.default_address()?,
            };
            bao.read_kv(&address, path, version.as_deref())
        }
        Secret::SecretsManager {
            id,
            region,
            profile,
            version_stage,
            version_id,
        } => {
            let aws = services.aws();
            let region = aws_region(services, region, profile, id)?;
            let mut request = json!({"SecretId": id});
            if let Some(stage) = version_stage {
                request["VersionStage"] = json!(stage);
            }
            if let Some(version) = version_id {
                request["VersionId"] = json!(version);
            }
            let reply = aws.call(
                Service::SecretsManager,
                "GetSecretValue",
                &region,
                profile.as_deref(),
                None,
                &request,
            )?;
            match reply["SecretString"].as_str() {
                Some(text) => Ok(Json::String(text.to_owned())),
                None => Err(RemoteError::Failed(
                    "the secret holds binary data (SecretBinary), which kdeploy does not read".into(),
                )),
            }
        }
        Secret::SsmParameter { name, region, profile } => {
            let aws = services.aws();
            let region = aws_region(services, region, profile, name)?;
            let reply = aws.call(
                Service::Ssm,
                "GetParameter",
                &region,
                profile.as_deref(),
                None,
                &json!({"Name": name, "WithDecryption": true}),
            )?;
            reply["Parameter"]["Value"]
                .as_str()
                .map(|v| Json::String(v.to_owned()))
                .ok_or_else(|| RemoteError::Failed("AWS SSM GetParameter answered without a value".into()))
        }
    }
}

/// The region of an AWS reference: `?region=`, the ARN's, then the environment's or the profile's.
fn aws_region(
    services: &KeyServices,
    region: &Option<String>,
    profile: &Option<String>,
    id: &str,
) -> Result<String, RemoteError> {
    if let Some(region) = region {
        return Ok(region.clone());
    }
    if id.starts_with("arn:")
        && let Some(region) = id.split(':').nth(3).filter(|r| !r.is_empty())
    {
        return Ok(region.to_owned());
    }
    services.aws().default_region(profile.as_deref()).ok_or_else(|| {
        RemoteError::NoCredentials(
            "no AWS region: set AWS_REGION, a profile region, or ?region= on the reference".into(),
        )
    })
}

/// The field a reference names inside the fetched secret. A string secret is read as JSON (or YAML)
/// when a field is asked for.
fn extract(secret: &Json, field: &[String]) -> Result<Json, String> {
    if field.is_empty() {
        return Ok(secret.clone());
    }
    let parsed;
    let mut node = match secret {
        Json::String(text) => {
            parsed = serde_json::from_str::<Json>(text)
                .or_else(|_| serde_saphyr::from_str::<Json>(text))
                .map_err(|_| "the secret is not JSON or YAML, so it has no fields; leave out the #/field".to_owned())?;
            &parsed
        }
        other => other,
    };
    for (depth, key) in field.iter().enumerate() {
        node = match node {
            Json::Object(map) => map.get(key),
            Json::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| {
            let path = format!("/{}", field[..=depth].join("/"));
            let keys = match node {
                Json::Object(map) => format!(" (it has: {})", map.keys().cloned().collect::<Vec<_>>().join(", ")),
                _ => String::new(),
            };
            format!("the secret has no field {path}{keys}")
        })?;
    }
    Ok(node.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_vals_writes_them() {
        let r: Reference = "ref+vault://secret/data/db?address=http://127.0.0.1:8200#/password"
            .parse()
            .unwrap();
        assert_eq!(
            r.secret,
            Secret::Vault {
                address: Some("http://127.0.0.1:8200".into()),
                path: "secret/data/db".into(),
                version: None
            }
        );
        assert_eq!(r.field, ["password"]);
        let r: Reference = "ref+awsssm:///prod/db/password+".parse().unwrap();
        assert!(matches!(r.secret, Secret::SsmParameter { ref name, .. } if name == "/prod/db/password"));
        assert!(r.field.is_empty());
        let r: Reference = "ref+awssecrets://prod/db?region=eu-west-1#/a~1b/c".parse().unwrap();
        assert!(
            matches!(r.secret, Secret::SecretsManager { ref id, ref region, .. } if id == "prod/db" && region.as_deref() == Some("eu-west-1"))
        );
        assert_eq!(r.field, ["a/b", "c"]);
        for bad in [
            "ref+gcpsecrets://x",
            "ref+vault://#/x",
            "ref+vault://a?colour=red",
            "ref+awsssm://",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_found_in_json_strings_and_missing_ones_are_named() {
        let secret = json!(r#"{"user": "app", "password": "p4ss", "nested": {"port": 5432}}"#);
        assert_eq!(extract(&secret, &["password".into()]).unwrap(), json!("p4ss"));
        assert_eq!(
            extract(&secret, &["nested".into(), "port".into()]).unwrap(),
            json!(5432)
        );
        let err = extract(&secret, &["pasword".into()]).unwrap_err();
        assert!(
            err.contains("no field /pasword") && err.contains("password, user") || err.contains("user, password"),
            "{err}"
        );
        assert!(!err.contains("p4ss"), "{err}");
        assert!(extract(&json!("plain"), &["x".into()]).is_err());
        assert_eq!(extract(&json!("plain"), &[]).unwrap(), json!("plain"));
    }

    #[test]
    fn substitution_replaces_whole_values_only() {
        let mut values = json!({"db": {"password": "ref+vault://secret/db#/password", "note": "see ref+vault://x"}});
        let mut found = BTreeSet::new();
        find(&values, &mut found);
        assert_eq!(found.len(), 1);
        let mut resolved = Resolved::default();
        resolved
            .values
            .insert("ref+vault://secret/db#/password".into(), json!("s3cret"));
        substitute(&mut values, &resolved);
        assert_eq!(
            values,
            json!({"db": {"password": "s3cret", "note": "see ref+vault://x"}})
        );
    }
}
