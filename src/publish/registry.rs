//! A client of the OCI distribution API for one repository: read a manifest and a blob, upload blobs
//! and a manifest. Credentials come from the docker config (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`: inline `auths`, `credHelpers` and `credsStore`), as `flux push`, helm and
//! oras read them, and are sent as the registry asks: Basic, or for a Bearer token from the realm its
//! `WWW-Authenticate` names.
//!
//! Credentials go only where the user pointed: the registry named on the command line, and its token
//! realm over HTTPS (or on the same host). Over plain HTTP they are sent to a loopback registry only.
//! No error message carries a credential or a token.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value as Json;
use zeroize::Zeroizing;

use super::PublishError;
use super::oci::{self, Reference};
use crate::vault::http::{Client, RawReply, endpoint_of};

/// The largest manifest read back (Flux's are under a kilobyte).
const MAX_MANIFEST: u64 = 4 << 20;

/// How a registry is reached.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub plain_http: bool,
    pub ca_file: Option<PathBuf>,
}

/// A user name and password (or identity token) for one registry.
struct Credentials {
    username: Zeroizing<String>,
    password: Zeroizing<String>,
}

pub struct Registry {
    client: Client,
    reference: Reference,
    base: String,
    credentials: Option<Credentials>,
    /// The `Authorization` header that worked last.
    authorization: Mutex<Option<Zeroizing<String>>>,
}

impl Registry {
    pub fn connect(reference: &Reference, connection: &Connection) -> Result<Registry, PublishError> {
        let client = Client::new(connection.ca_file.as_deref()).map_err(|e| PublishError::Registry {
            registry: reference.registry.clone(),
            message: e.to_string(),
        })?;
        let scheme = if connection.plain_http { "http" } else { "https" };
        let credentials = docker_credentials(&reference.registry)?;
        if connection.plain_http && credentials.is_some() && !reference.is_loopback() {
            return Err(PublishError::Registry {
                registry: reference.registry.clone(),
                message: "the docker config has credentials for it, and --plain-http would send them unencrypted; use HTTPS (--ca-file for a private CA)".into(),
            });
        }
        Ok(Registry {
            client,
            base: format!("{scheme}://{}", reference.api_host()),
            reference: reference.clone(),
            credentials,
            authorization: Mutex::new(None),
        })
    }

    fn error(&self, message: impl Into<String>) -> PublishError {
        PublishError::Registry {
            registry: self.reference.registry.clone(),
            message: message.into(),
        }
    }

    /// The manifest a tag or digest points at, with its digest; None when there is none.
    pub fn manifest(&self, tag_or_digest: &str) -> Result<Option<(String, Json)>, PublishError> {
        let path = format!("/v2/{}/manifests/{tag_or_digest}", self.reference.repository);
        let reply = self.request(
            "GET",
            &path,
            &[("Accept", oci::MANIFEST_MEDIA_TYPE)],
            None,
            MAX_MANIFEST,
        )?;
        match reply.status {
            200 => {
                let json = serde_json::from_slice(&reply.body)
                    .map_err(|e| self.error(format!("the manifest of {tag_or_digest} is not JSON: {e}")))?;
                Ok(Some((oci::digest(&reply.body), json)))
            }
            404 => Ok(None),
            status => Err(self.failure("reading a manifest", status, &reply)),
        }
    }

    /// A blob, checked against its digest.
    pub fn blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>, PublishError> {
        let path = format!("/v2/{}/blobs/{digest}", self.reference.repository);
        let reply = self.request("GET", &path, &[], None, limit)?;
        if reply.status != 200 {
            return Err(self.failure("reading a blob", reply.status, &reply));
        }
        if oci::digest(&reply.body) != digest {
            return Err(self.error(format!("the blob {digest} does not match its digest")));
        }
        Ok(reply.body)
    }

    /// Uploads a blob unless the repository has it already.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<(), PublishError> {
        let digest = oci::digest(bytes);
        let repository = &self.reference.repository;
        let head = self.request("HEAD", &format!("/v2/{repository}/blobs/{digest}"), &[], None, 0)?;
        if head.status == 200 {
            return Ok(());
        }
        let start = self.request(
            "POST",
            &format!("/v2/{repository}/blobs/uploads/"),
            &[],
            Some(&[]),
            MAX_MANIFEST,
        )?;
        if start.status != 202 {
            return Err(self.failure("starting an upload", start.status, &start));
        }
        let location = start
            .header("location")
            .ok_or_else(|| self.error("the registry started an upload but gave no Location"))?;
        let location = if location.starts_with('/') {
            location.to_owned()
        } else {
            // An absolute URL must stay on the registry the credentials are for.
            let prefix = format!("{}/", self.base);
            location
                .strip_prefix(&self.base)
                .filter(|_| location.starts_with(&prefix))
                .map(str::to_owned)
                .ok_or_else(|| {
                    self.error(format!(
                        "the upload Location points elsewhere ({})",
                        endpoint_of(location)
                    ))
                })?
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!(
            "{location}{separator}digest={}",
            crate::vault::http::percent_encode(&digest)
        );
        let length = bytes.len().to_string();
        let put = self.request(
            "PUT",
            &url,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &length),
            ],
            Some(bytes),
            MAX_MANIFEST,
        )?;
        if put.status != 201 {
            return Err(self.failure("uploading a blob", put.status, &put));
        }
        Ok(())
    }

    /// Puts the manifest under `tag`; returns its digest as the registry reports it.
    pub fn put_manifest(&self, tag: &str, manifest: &[u8]) -> Result<String, PublishError> {
        let path = format!("/v2/{}/manifests/{tag}", self.reference.repository);
        let reply = self.request(
            "PUT",
            &path,
            &[("Content-Type", oci::MANIFEST_MEDIA_TYPE)],
            Some(manifest),
            MAX_MANIFEST,
        )?;
        if reply.status != 201 {
            return Err(self.failure("putting the manifest", reply.status, &reply));
        }
        let ours = oci::digest(manifest);
        match reply.header("docker-content-digest") {
            Some(theirs) if theirs != ours => {
                Err(self.error(format!("the registry stored the manifest as {theirs}, not {ours}")))
            }
            _ => Ok(ours),
        }
    }

    fn failure(&self, what: &str, status: u16, reply: &RawReply) -> PublishError {
        // The registry's error codes (OCI distribution spec), never the request.
        let codes: Vec<String> = serde_json::from_slice::<Json>(&reply.body)
            .ok()
            .and_then(|json| {
                json["errors"].as_array().map(|errors| {
                    errors
                        .iter()
                        .map(|e| {
                            format!(
                                "{}: {}",
                                e["code"].as_str().unwrap_or("?"),
                                e["message"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
            })
            .unwrap_or_default();
        let hint = match status {
            401 if self.credentials.is_none() => {
                " (no credentials for it in the docker config: `docker login` or `flux` / `oras login`)"
            }
            401 | 403 => " (the docker config's credentials for it were refused or lack push rights)",
            _ => "",
        };
        self.error(format!(
            "{what} answered {status}{}{hint}",
            if codes.is_empty() {
                String::new()
            } else {
                format!(" ({})", codes.join("; "))
            }
        ))
    }

    /// One request, authenticated as the registry asks (answering one 401 challenge).
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        limit: u64,
    ) -> Result<RawReply, PublishError> {
        let url = format!("{}{path}", self.base);
        let send = |authorization: Option<&str>| {
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            if let Some(value) = authorization {
                all.push(("Authorization", value));
            }
            self.client
                .send_raw(method, &url, &all, body, limit)
                .map_err(|e| self.error(e.to_string()))
        };
        let known = self.authorization.lock().ok().and_then(|a| a.clone());
        let reply = send(known.as_deref().map(String::as_str))?;
        if reply.status != 401 {
            return Ok(reply);
        }
        let Some(challenge) = reply.header("www-authenticate").map(str::to_owned) else {
            return Ok(reply);
        };
        let Some(authorization) = self.answer(&challenge)? else {
            return Ok(reply);
        };
        let reply = send(Some(&authorization))?;
        if reply.status != 401
            && let Ok(mut slot) = self.authorization.lock()
        {
            *slot = Some(authorization);
        }
        Ok(reply)
    }

    /// The `Authorization` header answering a `WWW-Authenticate` challenge, if there is one to give.
    fn answer(&self, challenge: &str) -> Result<Option<Zeroizing<String>>, PublishError> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let params = challenge_params(params);
        let basic = self.credentials.as_ref().map(|c| {
            Zeroizing::new(format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", c.username.as_str(), c.password.as_str()))
            ))
        });
        if scheme.eq_ignore_ascii_case("basic") {
            return Ok(basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(None);
        }
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.error("a Bearer challenge without a realm"))?;
        let realm_host = realm
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest));
        let same_host = realm_host == Some(self.reference.api_host()) || realm_host == Some(&self.reference.registry);
        if !(realm.starts_with("https://") || same_host && realm.starts_with("http://")) {
            return Err(self.error(format!(
                "its token realm {} is neither HTTPS nor on the registry's host; no credentials are sent there",
                endpoint_of(&realm)
            )));
        }
        let scope = format!("repository:{}:pull,push", self.reference.repository);
        let mut query = vec![("scope".to_owned(), scope)];
        if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
            query.push(("service".to_owned(), service.clone()));
        }
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::vault::http::percent_encode(v)))
            .collect();
        let separator = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{separator}{}", query.join("&"));
        let mut headers = Vec::new();
        if let Some(basic) = &basic {
            headers.push(("Authorization", basic.as_str()));
        }
        let reply = self
            .client
            .send_raw("GET", &url, &headers, None, MAX_MANIFEST)
            .map_err(|e| self.error(e.to_string()))?;
        if reply.status != 200 {
            return Err(self.error(format!(
                "its token service {} answered {}{}",
                endpoint_of(&realm),
                reply.status,
                if self.credentials.is_none() {
                    " (no credentials for it in the docker config)"
                } else {
                    ""
                }
            )));
        }
        let json: Json = serde_json::from_slice(&reply.body).unwrap_or(Json::Null);
        let token = json["token"]
            .as_str()
            .or_else(|| json["access_token"].as_str())
            .ok_or_else(|| self.error(format!("its token service {} gave no token", endpoint_of(&realm))))?;
        Ok(Some(Zeroizing::new(format!("Bearer {token}"))))
    }
}

/// `key="value", key2="value2"` of a challenge.
fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((value, remaining)) => (value.to_owned(), remaining),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((value, remaining)) => (value.trim().to_owned(), remaining),
                None => (after.trim().to_owned(), ""),
            }
        };
        params.push((key, value));
        rest = remaining.trim_start_matches(',').trim();
    }
    params
}

/// The docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(Path::new(&dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker/config.json"))
}

/// The credentials the docker config holds for `registry`.
fn docker_credentials(registry: &str) -> Result<Option<Credentials>, PublishError> {
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PublishError::DockerConfig {
                path,
                message: e.to_string(),
            });
        }
    };
    let config: Json = serde_json::from_str(&text).map_err(|e| PublishError::DockerConfig {
        path: path.clone(),
        message: format!("not JSON: {e}"),
    })?;
    credentials_from(&config, registry, &|helper| run_helper(helper, registry))
        .map_err(|message| PublishError::DockerConfig { path, message })
}

/// The credentials `config` gives for `registry`: a `credHelpers` entry, an inline `auths` entry,
/// else the `credsStore`. Keys of `auths` may carry a scheme and a path (`https://index.docker.io/v1/`).
fn credentials_from(
    config: &Json,
    registry: &str,
    helper: &dyn Fn(&str) -> Result<Option<Credentials>, String>,
) -> Result<Option<Credentials>, String> {
    let aliases: &[&str] = if registry == "docker.io" {
        &["docker.io", "index.docker.io", "registry-1.docker.io"]
    } else {
        &[registry]
    };
    let host_of = |key: &str| -> String {
        let key = key.split_once("://").map_or(key, |(_, rest)| rest);
        key.split('/').next().unwrap_or(key).to_owned()
    };
    if let Some(helpers) = config["credHelpers"].as_object()
        && let Some(name) = helpers
            .iter()
            .find(|(key, _)| aliases.contains(&host_of(key).as_str()))
            .and_then(|(_, name)| name.as_str())
    {
        return helper(name);
    }
    if let Some(auths) = config["auths"].as_object()
        && let Some(entry) = auths
            .iter()
            .find(|(key, _)| aliases.contains(&host_of(key).as_str()))
            .map(|(_, entry)| entry)
    {
        if let Some(encoded) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
            let decoded = Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| format!("the `auth` of {registry} is not base64"))?,
            );
            let text = std::str::from_utf8(&decoded).map_err(|_| format!("the `auth` of {registry} is not text"))?;
            let (username, password) = text
                .split_once(':')
                .ok_or_else(|| format!("the `auth` of {registry} is not USER:PASSWORD"))?;
            return Ok(Some(Credentials {
                username: Zeroizing::new(username.to_owned()),
                password: Zeroizing::new(password.to_owned()),
            }));
        }
        if let Some(token) = entry["identitytoken"].as_str() {
            return Ok(Some(Credentials {
                username: Zeroizing::new("<token>".to_owned()),
                password: Zeroizing::new(token.to_owned()),
            }));
        }
        if let (Some(username), Some(password)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(Some(Credentials {
                username: Zeroizing::new(username.to_owned()),
                password: Zeroizing::new(password.to_owned()),
            }));
        }
    }
    match config["credsStore"].as_str().filter(|s| !s.is_empty()) {
        Some(store) => helper(store),
        None => Ok(None),
    }
}

/// Asks `docker-credential-NAME get` (the user's own helper, named by the user's own docker config).
fn run_helper(name: &str, registry: &str) -> Result<Option<Credentials>, String> {
    use std::io::Write as _;
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(format!("`{name}` is not a credential helper name"));
    }
    let program = format!("docker-credential-{name}");
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| format!("{program}: {e}"))?;
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        // "credentials not found in native keychain": nothing stored for this registry.
        return Ok(None);
    }
    let json: Json = serde_json::from_slice(&stdout).map_err(|_| format!("{program} did not answer JSON"))?;
    match (json["Username"].as_str(), json["Secret"].as_str()) {
        (Some(username), Some(secret)) => Ok(Some(Credentials {
            username: Zeroizing::new(username.to_owned()),
            password: Zeroizing::new(secret.to_owned()),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_helper(_: &str) -> Result<Option<Credentials>, String> {
        Err("no helper in this test".into())
    }

    #[test]
    fn inline_auths_are_found_by_host_with_or_without_scheme() {
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": STANDARD.encode("hub:pw1")},
            "ghcr.io": {"auth": STANDARD.encode("gh:pw:with:colons")},
            "127.0.0.1:5000": {"username": "u", "password": "p"},
        }});
        let found = |registry: &str| {
            credentials_from(&config, registry, &no_helper)
                .unwrap()
                .map(|c| (c.username.to_string(), c.password.to_string()))
        };
        assert_eq!(found("docker.io"), Some(("hub".into(), "pw1".into())));
        assert_eq!(found("ghcr.io"), Some(("gh".into(), "pw:with:colons".into())));
        assert_eq!(found("127.0.0.1:5000"), Some(("u".into(), "p".into())));
        assert_eq!(found("quay.io"), None);
    }

    #[test]
    fn helpers_are_asked_for_their_registries_and_the_store_for_the_rest() {
        let config = serde_json::json!({"credHelpers": {"ghcr.io": "gh"}, "credsStore": "desktop"});
        let asked = std::cell::RefCell::new(Vec::new());
        let helper = |name: &str| {
            asked.borrow_mut().push(name.to_owned());
            Ok(None)
        };
        credentials_from(&config, "ghcr.io", &helper).unwrap();
        credentials_from(&config, "quay.io", &helper).unwrap();
        assert_eq!(*asked.borrow(), ["gh", "desktop"]);
        assert!(run_helper("../x", "ghcr.io").is_err());
    }

    #[test]
    fn challenges_are_split_into_their_parameters() {
        let params = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            params,
            [
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "registry.example".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
    }
}
