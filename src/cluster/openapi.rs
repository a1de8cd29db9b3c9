//! The schemas a cluster serves at `/openapi/v3`: one document per group-version, built-in kinds and
//! the custom resources of the CRDs installed there alike. Only the group-versions a manifest uses are
//! fetched, and each document is kept on disk under the content hash the server puts in its URL, so a
//! document is downloaded once per change, and a run with nothing new costs the one index request.
//! What is kept is what validation reads: the schemas, without their descriptions (which are most of
//! a document's bytes), so a run reads and parses a fifth of the text.

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
        .join(format!("{}.schemas.json", crate::util::hex(&digest[..16])))
}

/// The document as validation reads it: `components.schemas` only, with every schema's
/// `description` left out. Data inside a schema (`default`, `example`, `enum`) is kept as it is.
fn for_validation(mut document: Json) -> Json {
    fn strip(schema: &mut Json) {
        match schema {
            Json::Object(map) => {
                if map.get("description").is_some_and(Json::is_string) {
                    map.remove("description");
                }
                for (key, value) in map.iter_mut() {
                    if !matches!(key.as_str(), "default" | "example" | "enum" | "const") {
                        strip(value);
                    }
                }
            }
            Json::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut schemas = document
        .pointer_mut("/components/schemas")
        .map(Json::take)
        .unwrap_or(Json::Null);
    if let Json::Object(map) = &mut schemas {
        for schema in map.values_mut() {
            strip(schema);
        }
    }
    serde_json::json!({"components": {"schemas": schemas}})
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

/// The `/openapi/v3` index: every group-version the cluster serves, with the hashed URL of its document.
pub async fn index(client: &kube::Client) -> Result<Json, ClusterError> {
    serde_json::from_str(&get(client, "/openapi/v3").await?)
        .map_err(|e| ClusterError::Config(format!("the cluster's /openapi/v3 index is not JSON: {e}")))
}

/// The documents of `group_versions` (`v1`, `apps/v1`, `monitoring.coreos.com/v1`) that `index` lists,
/// from the disk cache or the cluster; a group-version it does not serve is left out (validation then
/// says so).
pub async fn documents_in(
    client: &kube::Client,
    server: &str,
    index: &Json,
    group_versions: &BTreeSet<String>,
) -> Result<Vec<Json>, ClusterError> {
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
            && let Ok(text) = std::fs::read(&path)
            && let Ok(document) = serde_json::from_slice::<Json>(&text)
        {
            return Ok(document);
        }
        let text = get(client, url).await?;
        let document: Json = serde_json::from_str(&text)
            .map_err(|e| ClusterError::Config(format!("the cluster's schema document {url} is not JSON: {e}")))?;
        let document = for_validation(document);
        if hashed && let Ok(kept) = serde_json::to_vec(&document) {
            crate::util::write_cache_file(&path, &kept);
        }
        Ok::<Json, ClusterError>(document)
    });
    futures::future::try_join_all(fetches).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_schemas_are_kept_and_only_their_descriptions_go() {
        let document = serde_json::json!({
            "openapi": "3.0.0",
            "paths": {"/api/v1/pods": {}},
            "components": {"schemas": {"io.k8s.Thing": {
                "description": "a thing",
                "type": "object",
                "properties": {
                    "description": {"description": "a field named description", "type": "string"},
                    "mode": {"type": "string", "default": {"description": "data, kept"}, "enum": [{"description": "kept"}]},
                    "list": {"type": "array", "items": {"description": "an item", "type": "integer"}}
                }
            }}}
        });
        let kept = for_validation(document);
        assert_eq!(
            kept,
            serde_json::json!({"components": {"schemas": {"io.k8s.Thing": {
                "type": "object",
                "properties": {
                    "description": {"type": "string"},
                    "mode": {"type": "string", "default": {"description": "data, kept"}, "enum": [{"description": "kept"}]},
                    "list": {"type": "array", "items": {"type": "integer"}}
                }
            }}}})
        );
    }
}
