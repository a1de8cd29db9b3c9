//! OpenBao and HashiCorp Vault (one HTTP API): transit keys that wrap SOPS data keys, and KV secrets
//! (v1 and v2) that `ref+vault://` references read.
//!
//! Credentials as their CLIs take them: the address from the transit key itself or `VAULT_ADDR`
//! (`BAO_ADDR`); the token from `VAULT_TOKEN` (`BAO_TOKEN`), else the token helper's file
//! `~/.vault-token`; `VAULT_NAMESPACE` (`BAO_NAMESPACE`) and a CA bundle in `VAULT_CACERT`
//! (`BAO_CACERT`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use super::http::{Client, RemoteError, Reply};

pub type EnvMap = BTreeMap<String, String>;

/// A transit key as sops names it: `https://ADDRESS/v1/ENGINE_PATH/keys/KEY_NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransitKey {
    pub address: String,
    pub engine_path: String,
    pub key_name: String,
}

impl TransitKey {
    /// Parses sops' `hc_vault_transit_uri`.
    pub fn parse(uri: &str) -> Result<TransitKey, String> {
        let bad = || format!("`{uri}` is not a transit key URI (https://HOST:PORT/v1/ENGINE/keys/NAME)");
        let (scheme, rest) = uri.split_once("://").ok_or_else(bad)?;
        if scheme != "http" && scheme != "https" {
            return Err(bad());
        }
        let (host, path) = rest.split_once('/').ok_or_else(bad)?;
        let path = path.strip_prefix("v1/").ok_or_else(bad)?;
        let (engine_path, key_name) = path.trim_end_matches('/').rsplit_once("/keys/").ok_or_else(bad)?;
        if host.is_empty() || engine_path.is_empty() || key_name.is_empty() || key_name.contains('/') {
            return Err(bad());
        }
        Ok(TransitKey {
            address: format!("{scheme}://{host}"),
            engine_path: engine_path.to_owned(),
            key_name: key_name.to_owned(),
        })
    }

    pub fn uri(&self) -> String {
        format!("{}/v1/{}/keys/{}", self.address, self.engine_path, self.key_name)
    }

    /// Wraps the data key: transit encrypts its base64 form, as sops does.
    pub fn encrypt(&self, bao: &OpenBao, plaintext: &[u8]) -> Result<String, RemoteError> {
        use base64::Engine as _;
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plaintext));
        let path = format!("{}/encrypt/{}", self.engine_path, self.key_name);
        let reply = bao.request(
            &self.address,
            "POST",
            &path,
            Some(&json!({"plaintext": encoded.as_str()})),
        )?;
        reply.json["data"]["ciphertext"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                RemoteError::Failed(format!("{}: transit encrypt answered without a ciphertext", self.uri()))
            })
    }

    pub fn decrypt(&self, bao: &OpenBao, ciphertext: &str) -> Result<Zeroizing<Vec<u8>>, RemoteError> {
        use base64::Engine as _;
        let path = format!("{}/decrypt/{}", self.engine_path, self.key_name);
        let reply = bao.request(&self.address, "POST", &path, Some(&json!({"ciphertext": ciphertext})))?;
        let reply_json = reply.json;
        let encoded = reply_json["data"]["plaintext"].as_str().ok_or_else(|| {
            RemoteError::Failed(format!("{}: transit decrypt answered without a plaintext", self.uri()))
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(Zeroizing::new)
            .map_err(|_| {
                RemoteError::Failed(format!(
                    "{}: transit decrypt answered with a plaintext that is not base64",
                    self.uri()
                ))
            })
    }
}

/// The OpenBao/Vault side of one kdeploy run.
pub struct OpenBao {
    env: EnvMap,
    client: OnceLock<Result<Client, RemoteError>>,
    token: OnceLock<Result<Zeroizing<String>, RemoteError>>,
}

impl OpenBao {
    pub fn new(env: EnvMap) -> OpenBao {
        OpenBao {
            env,
            client: OnceLock::new(),
            token: OnceLock::new(),
        }
    }

    /// `VAULT_<name>`, else `BAO_<name>`.
    fn var(&self, name: &str) -> Option<&str> {
        [format!("VAULT_{name}"), format!("BAO_{name}")]
            .iter()
            .find_map(|n| self.env.get(n).map(String::as_str).filter(|v| !v.is_empty()))
    }

    /// The default server: `VAULT_ADDR` or `BAO_ADDR`.
    pub fn default_address(&self) -> Result<String, RemoteError> {
        self.var("ADDR")
            .map(|a| a.trim_end_matches('/').to_owned())
            .ok_or_else(|| RemoteError::NoCredentials("neither VAULT_ADDR nor BAO_ADDR is set".into()))
    }

    fn client(&self) -> Result<&Client, RemoteError> {
        self.client
            .get_or_init(|| Client::new(self.var("CACERT").map(PathBuf::from).as_deref()))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn token(&self) -> Result<&str, RemoteError> {
        self.token
            .get_or_init(|| {
                if let Some(token) = self.var("TOKEN") {
                    return Ok(Zeroizing::new(token.to_owned()));
                }
                let home = self.env.get("HOME").map(PathBuf::from);
                let file = home.map(|h| h.join(".vault-token"));
                match file.as_ref().map(std::fs::read_to_string) {
                    Some(Ok(text)) if !text.trim().is_empty() => Ok(Zeroizing::new(text.trim().to_owned())),
                    _ => Err(RemoteError::NoCredentials(format!(
                        "no OpenBao/Vault token: VAULT_TOKEN and BAO_TOKEN are not set and {} holds none (log in with `bao login` or `vault login`)",
                        file.map_or("~/.vault-token".to_owned(), |f| f.display().to_string())
                    ))),
                }
            })
            .as_ref()
            .map(|t| t.as_str())
            .map_err(Clone::clone)
    }

    /// One API call under `/v1/`; an error status becomes a [`RemoteError`] with the server's words.
    pub fn request(&self, address: &str, method: &str, path: &str, body: Option<&Json>) -> Result<Reply, RemoteError> {
        // The address may come from a vault file or a reference, which a repository wrote.
        let configured = self.default_address().ok();
        crate::trust::check_vault_address(address, configured.as_deref()).map_err(RemoteError::Denied)?;
        let token = self.token()?;
        let url = format!("{}/v1/{}", address.trim_end_matches('/'), path.trim_start_matches('/'));
        let mut headers = vec![("x-vault-token", token), ("content-type", "application/json")];
        if let Some(namespace) = self.var("NAMESPACE") {
            headers.push(("x-vault-namespace", namespace));
        }
        let body = body.map(|b| Zeroizing::new(serde_json::to_vec(b).expect("JSON serialises")));
        let reply = self
            .client()?
            .send(method, &url, &headers, body.as_deref().map(Vec::as_slice))?;
        if reply.status < 300 {
            return Ok(reply);
        }
        let errors: Vec<&str> = reply.json["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        let detail = format!(
            "OpenBao/Vault {address}: {method} {path}: HTTP {}{}",
            reply.status,
            if errors.is_empty() {
                String::new()
            } else {
                format!(": {}", errors.join("; "))
            }
        );
        Err(match reply.status {
            403 => RemoteError::Denied(detail),
            404 => RemoteError::NotFound(detail),
            400 if errors.iter().any(|e| e.contains("not found")) => RemoteError::NotFound(detail),
            400 if errors.iter().any(|e| e.contains("disabled") || e.contains("deletion")) => {
                RemoteError::KeyUnusable(detail)
            }
            _ => RemoteError::Failed(detail),
        })
    }

    /// Reads a KV secret's data (v1 or v2; v2 found from the mount, `data/` added when missing).
    /// `version` selects a v2 version.
    pub fn read_kv(&self, address: &str, path: &str, version: Option<&str>) -> Result<Json, RemoteError> {
        let path = path.trim_matches('/');
        let mount = self.mount_of(address, path)?;
        let (read_path, v2) = match &mount {
            Some((mount, 2)) => {
                let rest = path
                    .strip_prefix(mount.as_str())
                    .unwrap_or(path)
                    .trim_start_matches('/');
                let rest = rest.strip_prefix("data/").unwrap_or(rest);
                (format!("{}/data/{rest}", mount.trim_end_matches('/')), true)
            }
            _ => (path.to_owned(), false),
        };
        let read_path = match version {
            Some(version) if v2 => format!("{read_path}?version={}", super::http::percent_encode(version)),
            _ => read_path,
        };
        let reply = self.request(address, "GET", &read_path, None)?;
        let json = reply.json;
        let data = if v2 { &json["data"]["data"] } else { &json["data"] };
        if data.is_null() {
            return Err(RemoteError::NotFound(format!(
                "OpenBao/Vault {address}: {path} has no data (deleted or destroyed?)"
            )));
        }
        Ok(data.clone())
    }

    /// The KV mount holding `path` and its version, from `sys/internal/ui/mounts` (readable with any
    /// token that can read the path). `None` when the server does not say.
    fn mount_of(&self, address: &str, path: &str) -> Result<Option<(String, u8)>, RemoteError> {
        match self.request(address, "GET", &format!("sys/internal/ui/mounts/{path}"), None) {
            Ok(reply) => {
                let data = &reply.json["data"];
                let mount = data["path"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_owned();
                let version = match data["options"]["version"].as_str() {
                    Some("2") => 2,
                    _ => 1,
                };
                Ok((!mount.is_empty()).then_some((mount, version)))
            }
            Err(RemoteError::Unreachable { endpoint, message }) => Err(RemoteError::Unreachable { endpoint, message }),
            Err(RemoteError::NoCredentials(m)) => Err(RemoteError::NoCredentials(m)),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transit_uris_parse_as_sops_parses_them() {
        let key = TransitKey::parse("https://bao.example:8200/v1/sops/transit/keys/app").unwrap();
        assert_eq!(key.address, "https://bao.example:8200");
        assert_eq!(key.engine_path, "sops/transit");
        assert_eq!(key.key_name, "app");
        assert_eq!(key.uri(), "https://bao.example:8200/v1/sops/transit/keys/app");
        for bad in [
            "bao.example/v1/transit/keys/a",
            "https://bao.example/transit/keys/a",
            "https://bao.example/v1/transit/a",
            "https://bao.example/v1/keys/a",
        ] {
            assert!(TransitKey::parse(bad).is_err(), "{bad}");
        }
    }
}
