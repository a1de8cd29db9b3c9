//! Pinned downloads: a `url:` source is fetched over https only, and its sha256 is checked before a
//! byte of it is parsed. A mismatch shows both digests and changes nothing. Verified files are kept by
//! digest in the cache (`sources/sha256/<digest>`), and `kdeploy vendor` copies them into the
//! project's `vendor/` folder, which is read first, so that CI renders offline.
//!
//! Certificates are checked against the system's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` are
//! honoured, as curl and Go honour them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{SourceContext, SourceError};
use crate::util::hex;
use crate::yaml::limits::MAX_INPUT_BYTES;

/// Where a verified download with this digest lives in `base` (the cache, or a project's `vendor/`).
pub fn stored_path(base: &Path, sha256: &str) -> PathBuf {
    base.join("sha256").join(sha256)
}

/// The project's vendored copies.
pub fn vendor_dir(project_dir: &Path) -> PathBuf {
    project_dir.join("vendor").join("urls")
}

fn cache_base(cache_dir: &Path) -> PathBuf {
    cache_dir.join("sources")
}

/// Checks the form of a pinned digest: 64 lowercase hex digits.
pub fn check_digest(sha256: &str) -> Result<(), String> {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(format!(
            "sha256 `{sha256}` is not a sha256 digest (64 lowercase hex digits); `sha256sum FILE` prints one"
        ))
    }
}

/// The text at `url`, verified against `sha256`: from the project's vendor folder, the cache, or the network.
pub fn fetch(url: &str, sha256: &str, context: &SourceContext<'_>) -> Result<String, SourceError> {
    let bytes = fetch_bytes(url, sha256, context.project_dir, &context.cache_dir)?;
    String::from_utf8(bytes).map_err(|_| SourceError::Message(format!("{url} is not UTF-8 text")))
}

/// The verified bytes at `url`, downloading them into the cache when no copy is kept.
pub fn fetch_bytes(url: &str, sha256: &str, project_dir: &Path, cache_dir: &Path) -> Result<Vec<u8>, SourceError> {
    check_digest(sha256).map_err(SourceError::Message)?;
    if !url.starts_with("https://") {
        return Err(SourceError::Message(format!(
            "{url}: only https:// URLs are fetched (a pinned digest guards the content, https the way it travels)"
        )));
    }
    for base in [vendor_dir(project_dir), cache_base(cache_dir)] {
        let path = stored_path(&base, sha256);
        if let Ok(bytes) = std::fs::read(&path) {
            if digest(&bytes) == sha256 {
                return Ok(bytes);
            }
            return Err(SourceError::Message(format!(
                "{} should hold {url} with sha256 {sha256} but its content has sha256 {}; remove it and run again",
                path.display(),
                digest(&bytes)
            )));
        }
    }
    let bytes = download(url)?;
    let actual = digest(&bytes);
    if actual != sha256 && crate::trust::untrusted() {
        // The served digest would tell whoever wrote the URL something about what lies behind it.
        return Err(SourceError::Message(format!(
            "{url} does not match its pinned digest (sha256 {sha256}); nothing was used or kept"
        )));
    }
    if actual != sha256 {
        return Err(SourceError::Message(format!(
            "{url} does not match its pinned digest:\n  expected sha256 {sha256}\n  received sha256 {actual}\n\
             nothing was used or kept; if the new content is the one you want, update `sha256:` in kdeploy.yaml"
        )));
    }
    let stored = stored_path(&cache_base(cache_dir), sha256);
    store(&stored, &bytes)?;
    crate::util::trim_cache(&cache_base(cache_dir), crate::util::cache_limit(), &stored);
    Ok(bytes)
}

pub fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn download(url: &str) -> Result<Vec<u8>, SourceError> {
    let failed = |e: &dyn std::fmt::Display| SourceError::Message(format!("cannot download {url}: {e}"));
    if let Some((host, port)) = host_of(url) {
        crate::trust::check_host(&host, port).map_err(|why| failed(&why))?;
    }
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let config = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(300)))
        .timeout_connect(Some(Duration::from_secs(30)))
        .https_only(true)
        .build();
    // Every address a redirect leads to is checked as the first one was.
    let agent = ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        PolicyResolver::default(),
    );
    let mut response = agent.get(url).call().map_err(|e| failed(&e))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_INPUT_BYTES as u64)
        .read_to_vec()
        .map_err(|e| failed(&e))
}

/// The host and port of an `https://` URL.
fn host_of(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(443);
        return Some((host.to_owned(), port));
    }
    Some(match authority.split_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(443)),
        None => (authority.to_owned(), 443),
    })
}

/// Name resolution that refuses what the trust policy refuses: in untrusted mode, a name that
/// resolves to a loopback, link-local or private address (a redirect's included).
#[derive(Debug, Default)]
struct PolicyResolver(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for PolicyResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let addresses = self.0.resolve(uri, config, timeout)?;
        let policy = crate::trust::policy();
        if policy.untrusted && !policy.allow_private_urls && addresses.iter().any(|a| crate::trust::is_internal(a.ip()))
        {
            return Err(ureq::Error::Io(std::io::Error::other(format!(
                "{} resolves to a loopback, link-local or private address, which untrusted mode does not download from",
                uri.host().unwrap_or("?")
            ))));
        }
        Ok(addresses)
    }
}

/// Writes `bytes` to `path` atomically (a temporary file renamed into place), creating folders.
pub fn store(path: &Path, bytes: &[u8]) -> Result<(), SourceError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| SourceError::io(dir, e))?;
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| SourceError::io(dir, e))?;
    temp.write_all(bytes).map_err(|e| SourceError::io(path, e))?;
    temp.persist(path).map_err(|e| SourceError::io(path, e.error))?;
    Ok(())
}
