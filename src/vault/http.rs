//! The HTTP side of the remote key services and secret stores (OpenBao/Vault, AWS): one blocking
//! client with bounded timeouts, TLS through rustls (ring) with the platform's roots or a CA bundle the
//! user names, and errors sorted into what a user can act on (unreachable, denied, not found).
//!
//! Bodies sent and received here hold data keys and secret values; nothing in this module logs them,
//! and an error carries the service's own message, never the request body.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;

/// What went wrong talking to a remote service, in the terms a user acts on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    #[error("{endpoint} is unreachable: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("no credentials: {0}")]
    NoCredentials(String),
    #[error("permission denied: {0}")]
    Denied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the key is disabled or not usable: {0}")]
    KeyUnusable(String),
    #[error("{0}")]
    Failed(String),
}

/// A response read whole: the status and the body parsed as JSON (`Null` when it is not JSON).
pub struct Reply {
    pub status: u16,
    pub json: Json,
    pub text: String,
}

/// The largest response body read (secret values and wrapped keys are small).
const MAX_BODY: u64 = 4 << 20;

/// A blocking HTTP client for one service. `ca_bundle` replaces the platform's roots (VAULT_CACERT,
/// AWS_CA_BUNDLE).
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub fn new(ca_bundle: Option<&Path>) -> Result<Client, RemoteError> {
        let roots = match ca_bundle {
            None => ureq::tls::RootCerts::PlatformVerifier,
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| RemoteError::Failed(format!("cannot read the CA bundle {}: {e}", path.display())))?;
                let certificates: Vec<_> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certificates.is_empty() {
                    return Err(RemoteError::Failed(format!(
                        "the CA bundle {} holds no PEM certificate",
                        path.display()
                    )));
                }
                ureq::tls::RootCerts::Specific(Arc::new(certificates))
            }
        };
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Client { agent })
    }

    /// Sends one request; `headers` are sent as given, `body` when there is one.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, RemoteError> {
        let raw = self.send_raw(method, url, headers, body, MAX_BODY)?;
        let text = String::from_utf8(raw.body)
            .map_err(|_| RemoteError::Failed(format!("{}: the answer is not UTF-8 text", endpoint_of(url))))?;
        let json = serde_json::from_str(&text).unwrap_or(Json::Null);
        Ok(Reply {
            status: raw.status,
            json,
            text,
        })
    }

    /// Sends one request and reads the answer as bytes, with its headers, up to `limit` bytes.
    pub fn send_raw(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        limit: u64,
    ) -> Result<RawReply, RemoteError> {
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.map(<[u8]>::to_vec).unwrap_or_default())
            .map_err(|e| RemoteError::Failed(format!("{}: {e}", endpoint_of(url))))?;
        let mut response = self.agent.run(request).map_err(|e| unreachable(url, &e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| unreachable(url, &e))?;
        Ok(RawReply { status, headers, body })
    }
}

/// A response read whole as bytes, with its headers (names in lower case).
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `scheme://host[:port]` of a URL: what an error may name (never a path or query, which can hold
/// tokens).
pub fn endpoint_of(url: &str) -> String {
    url.split_once("://")
        .map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)))
        .unwrap_or_else(|| url.to_owned())
}

fn unreachable(url: &str, error: &ureq::Error) -> RemoteError {
    RemoteError::Unreachable {
        endpoint: endpoint_of(url),
        message: error.to_string(),
    }
}

/// Percent-encodes a URL path segment or query value (RFC 3986 unreserved characters stay).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes (for paths and query values in references).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'%'
            && let Some(Ok(byte)) = hex.map(|h| u8::from_str_radix(h, 16))
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_round_trips() {
        let text = "prod/db password=1&x/ü";
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
        assert_eq!(percent_decode(&percent_encode(text)), text);
        assert_eq!(percent_decode("100%"), "100%");
    }
}
