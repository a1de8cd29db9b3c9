//! The Flux objects that deploy a pushed artifact: an `OCIRepository` that follows it (by digest, tag
//! or semver range) and a `Kustomization` that applies it with pruning, waiting and SOPS decryption,
//! and no post-build substitution.

use serde_json::{Value as Json, json};

use super::oci::Reference;
use crate::vault::keys::Recipient;

/// Which artifacts of the repository Flux follows.
#[derive(Debug, Clone, PartialEq)]
pub enum Follow {
    Digest(String),
    Tag(String),
    Semver(String),
}

/// What `kdeploy flux generate` writes.
pub struct Deployment<'a> {
    /// The name of both objects (the project's identity).
    pub name: &'a str,
    /// Where they live (`flux-system` unless the project says otherwise).
    pub namespace: &'a str,
    pub repository: &'a Reference,
    pub follow: Follow,
    /// `insecure: true`: the registry speaks plain HTTP.
    pub insecure: bool,
    /// A Secret in `namespace` with the registry's CA (`ca.crt`), for a private CA.
    pub cert_secret: Option<&'a str>,
    /// The Secret kustomize-controller decrypts with.
    pub decryption_secret: &'a str,
    pub interval: &'a str,
}

/// The `OCIRepository` and the `Kustomization`.
pub fn objects(deployment: &Deployment<'_>) -> Vec<Json> {
    let reference = match &deployment.follow {
        Follow::Digest(digest) => json!({"digest": digest}),
        Follow::Tag(tag) => json!({"tag": tag}),
        Follow::Semver(range) => json!({"semver": range}),
    };
    let mut source_spec = json!({
        "interval": deployment.interval,
        "url": format!("oci://{}", deployment.repository.repository_url()),
        "ref": reference,
    });
    if deployment.insecure {
        source_spec["insecure"] = Json::Bool(true);
    }
    if let Some(secret) = deployment.cert_secret {
        source_spec["certSecretRef"] = json!({"name": secret});
    }
    let metadata = json!({"name": deployment.name, "namespace": deployment.namespace});
    let kustomization_spec = json!({
        "interval": deployment.interval,
        "sourceRef": {"kind": "OCIRepository", "name": deployment.name},
        "path": "./",
        "prune": true,
        "wait": true,
        "timeout": "5m",
        "decryption": {"provider": "sops", "secretRef": {"name": deployment.decryption_secret}},
    });
    vec![
        json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": metadata,
            "spec": source_spec,
        }),
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": metadata,
            "spec": kustomization_spec,
        }),
    ]
}

/// The commands that create the decryption Secret for `recipients`, with placeholders where the key
/// goes: kdeploy never holds the cluster's key.
pub fn decryption_secret_commands(recipients: &[Recipient], name: &str, namespace: &str) -> Vec<String> {
    let mut sources = Vec::new();
    if recipients.iter().any(|r| matches!(r, Recipient::Age(_))) {
        sources.push("--from-file=identity.agekey=PATH/TO/CLUSTER-AGE-KEY.txt".to_owned());
    }
    if recipients.iter().any(|r| matches!(r, Recipient::Transit(_))) {
        sources.push("--from-literal=sops.vault-token=\"$VAULT_TOKEN_FOR_THE_CLUSTER\"".to_owned());
    }
    if recipients.iter().any(|r| matches!(r, Recipient::Kms(_))) {
        sources.push("--from-file=sops.aws-kms=PATH/TO/AWS-CREDENTIALS.yaml".to_owned());
    }
    if sources.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "kubectl create secret generic {name} --namespace {namespace} {}",
        sources.join(" ")
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objects_follow_the_artifact_and_decrypt_without_substitution() {
        let repository = Reference::parse("oci://127.0.0.1:5000/app:v1").unwrap();
        let deployment = Deployment {
            name: "app-prod",
            namespace: "flux-system",
            repository: &repository,
            follow: Follow::Digest(format!("sha256:{}", "a".repeat(64))),
            insecure: true,
            cert_secret: None,
            decryption_secret: "app-prod-sops",
            interval: "1m",
        };
        let [source, kustomization] = objects(&deployment).try_into().unwrap();
        assert_eq!(source["spec"]["url"], "oci://127.0.0.1:5000/app");
        assert_eq!(source["spec"]["ref"]["digest"], format!("sha256:{}", "a".repeat(64)));
        assert_eq!(source["spec"]["insecure"], true);
        assert_eq!(
            kustomization["spec"]["sourceRef"],
            json!({"kind": "OCIRepository", "name": "app-prod"})
        );
        assert_eq!(kustomization["spec"]["prune"], true);
        assert_eq!(kustomization["spec"]["wait"], true);
        assert_eq!(kustomization["spec"]["decryption"]["provider"], "sops");
        // kdeploy has set every namespace already; kustomize's targetNamespace would rename Namespaces.
        assert!(kustomization["spec"].get("targetNamespace").is_none());
        assert!(kustomization["spec"].get("postBuild").is_none());
    }

    #[test]
    fn the_decryption_secret_command_names_each_kind_of_key_but_holds_none() {
        let age: Recipient = age::x25519::Identity::generate()
            .to_public()
            .to_string()
            .parse()
            .unwrap();
        let commands = decryption_secret_commands(&[age], "app-sops", "flux-system");
        assert_eq!(
            commands,
            [
                "kubectl create secret generic app-sops --namespace flux-system --from-file=identity.agekey=PATH/TO/CLUSTER-AGE-KEY.txt"
            ]
        );
    }
}
