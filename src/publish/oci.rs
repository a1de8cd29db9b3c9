//! OCI references and the artifact's manifest, in the layout `flux push artifact` writes: an OCI
//! image manifest whose config has Flux's config media type and whose one layer is the tar+gzip of
//! the tree, annotated with when, from where and from which revision it was made.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value as Json, json};
use sha2::{Digest as _, Sha256};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.flux.config.v1+json";
pub const CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
pub const CREATED: &str = "org.opencontainers.image.created";
pub const SOURCE: &str = "org.opencontainers.image.source";
pub const REVISION: &str = "org.opencontainers.image.revision";

/// `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (docker.io is the only one given another API host).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, String> {
        let Some(rest) = text.strip_prefix("oci://") else {
            return Err(format!(
                "`{text}` is not an oci:// reference (oci://HOST/REPOSITORY:TAG)"
            ));
        };
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest.strip_prefix("sha256:").unwrap_or_default();
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    return Err(format!("`{digest}` in `{text}` is not a sha256 digest"));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (rest, None),
        };
        let Some((registry, path)) = rest.split_once('/') else {
            return Err(format!("`{text}` names no repository (oci://HOST/REPOSITORY:TAG)"));
        };
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return Err(format!("`{registry}` in `{text}` is not a registry host"));
        }
        // A tag follows the last `:` after the last `/`.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_owned())),
            _ => (path, None),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(format!(
                "`{repository}` in `{text}` is not a repository name (lower-case letters, digits, `.`, `_`, `-`, parts separated by `/`)"
            ));
        }
        if let Some(tag) = &tag
            && (tag.is_empty()
                || tag.len() > 128
                || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                || tag.starts_with(['.', '-']))
        {
            return Err(format!("`{tag}` in `{text}` is not a tag"));
        }
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// The repository without tag or digest: `HOST/REPOSITORY`.
    pub fn repository_url(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The registry's API host: Docker Hub answers at registry-1.docker.io.
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// Whether the registry is on this machine (loopback), where plain HTTP carries nothing off it.
    pub fn is_loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(self.registry.as_str(), |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}", self.repository_url())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:HEX` of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::util::hex(&Sha256::digest(bytes)))
}

/// The config blob: Flux reads none of it, so it is the empty JSON object.
pub const CONFIG: &[u8] = b"{}";

/// The image manifest for one content layer, as bytes (its digest is the artifact's).
pub fn manifest(layer: &[u8], annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest(CONFIG), "size": CONFIG.len()},
        "layers": [{"mediaType": CONTENT_MEDIA_TYPE, "digest": digest(layer), "size": layer.len()}],
        "annotations": annotations,
    });
    serde_json::to_vec(&manifest).unwrap_or_default()
}

/// The digest of a manifest's content layer, when it has exactly one of Flux's type (or any
/// tar+gzip layer, as source-controller accepts).
pub fn content_layer(manifest: &Json) -> Option<(&str, u64)> {
    let layers = manifest["layers"].as_array()?;
    let layer = layers
        .iter()
        .find(|l| l["mediaType"] == CONTENT_MEDIA_TYPE)
        .or_else(|| {
            layers
                .iter()
                .find(|l| l["mediaType"].as_str().is_some_and(|t| t.ends_with("tar+gzip")))
        })?;
    Some((layer["digest"].as_str()?, layer["size"].as_u64()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_tags_digests_and_ports() {
        let r = Reference::parse("oci://127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("v1"))
        );
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/team/app:v1");
        let hex = "a".repeat(64);
        let r = Reference::parse(&format!("oci://ghcr.io/org/app@sha256:{hex}")).unwrap();
        assert_eq!(
            (r.tag, r.digest.as_deref()),
            (None, Some(format!("sha256:{hex}").as_str()))
        );
        assert!(!Reference::parse("oci://ghcr.io/org/app").unwrap().is_loopback());
        assert_eq!(
            Reference::parse("oci://docker.io/u/app:1").unwrap().api_host(),
            "registry-1.docker.io"
        );
        for bad in [
            "https://ghcr.io/app:v1",
            "oci://ghcr.io",
            "oci://ghcr.io/App:v1",
            "oci://ghcr.io/app:-x",
            "oci://ghcr.io/app@sha256:abc",
            "oci://gh cr.io/app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_manifest_names_flux_media_types_and_the_layer_digest() {
        let layer = b"layer bytes";
        let annotations = BTreeMap::from([(REVISION.to_owned(), "main@sha1:abc".to_owned())]);
        let bytes = manifest(layer, &annotations);
        let parsed: Json = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(parsed["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(parsed["config"]["digest"], digest(b"{}"));
        assert_eq!(parsed["layers"][0]["mediaType"], CONTENT_MEDIA_TYPE);
        assert_eq!(
            content_layer(&parsed),
            Some((digest(layer).as_str(), layer.len() as u64))
        );
        assert_eq!(parsed["annotations"][REVISION], "main@sha1:abc");
        assert_eq!(bytes, manifest(layer, &annotations));
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
