//! The schemas a cluster serves at `/openapi/v3`: one document per group-version, built-in kinds and
//! the custom resources of the CRDs installed there alike. Only the group-versions a manifest uses are
//! fetched, and each document is kept on disk under the content hash the server puts in its URL, so a
//! document is downloaded once per change, and a run with nothing new costs the one index request.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value as Json;

use super::ClusterError;
use super::client::with_retries;

/// The cache file of a document, named by a digest of the server and the hashed URL.
fn cache_path(server: &str, url: &str) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{server}\n{url}").as_bytes());
    crate::util::cache_dir()
        .join("openapi")
        .join(format!("{}.json", crate::util::hex(&digest[..16])))
}

async fn get(client: &kube::Client, url: &str) -> Result<String, ClusterError> {
    with_retries(|| async {
        let request = http::Request::get(url)
            .header("Accept", "application/json")
            .body(Vec::new())
            .map_err(|e| kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(e)))?;
        client.request_text(request).await
    })
    .await
    .map_err(|e| ClusterError::api(format!("reading the cluster's schemas ({url})"), e))
}

/// The documents of `group_versions` (`v1`, `apps/v1`, `monitoring.coreos.com/v1`) the cluster serves;
/// a group-version it does not serve is left out (validation then says so).
pub async fn served_documents(
    client: &kube::Client,
    server: &str,
    group_versions: &BTreeSet<String>,
) -> Result<Vec<Json>, ClusterError> {
    let index: Json = serde_json::from_str(&get(client, "/openapi/v3").await?)
        .map_err(|e| ClusterError::Config(format!("the cluster's /openapi/v3 index is not JSON: {e}")))?;
    let mut urls = Vec::new();
    for group_version in group_versions {
        let key = if group_version.contains('/') {
            format!("apis/{group_version}")
        } else {
            format!("api/{group_version}")
        };
        if let Some(url) = index
            .pointer(&format!("/paths/{}", key.replace('~', "~0").replace('/', "~1")))
            .and_then(|p| p["serverRelativeURL"].as_str())
            // Only a path on the same server: the request carries the kubeconfig's credentials.
            .filter(|url| url.starts_with("/openapi/v3/"))
        {
            urls.push(url.to_owned());
        }
    }
    let fetches = urls.iter().map(|url| async move {
        let path = cache_path(server, url);
        // Only a URL with the server's content hash in it may be kept: its text cannot change.
        let hashed = url.contains("hash=");
        if hashed
            && let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(document) = serde_json::from_str::<Json>(&text)
        {
            return Ok(document);
        }
        let text = get(client, url).await?;
        let document: Json = serde_json::from_str(&text)
            .map_err(|e| ClusterError::Config(format!("the cluster's schema document {url} is not JSON: {e}")))?;
        if hashed {
            crate::util::write_cache_file(&path, text.as_bytes());
        }
        Ok::<Json, ClusterError>(document)
    });
    futures::future::try_join_all(fetches).await
}
