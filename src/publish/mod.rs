//! OCI artifacts for Flux: the rendered manifest as a tree of files ([`layout`]: one file per object,
//! Secrets as SOPS documents for the cluster), packed reproducibly ([`archive`]), described as
//! `flux push artifact` describes it ([`oci`]) and pushed to a registry ([`registry`]); and the Flux
//! objects that deploy it ([`flux`]).
//!
//! It sits after `manifest/`, beside `cluster/`: it reads a rendered manifest and never a template,
//! and it talks to a registry, never to a cluster.

pub mod archive;
pub mod flux;
pub mod layout;
pub mod oci;
pub mod registry;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "a vault or secret-store value would be pushed in plain text, outside a Secret's data or stringData (Flux applies it as it is): {}",
        .0.join("; ")
    )]
    PlainSecret(Vec<String>),
    #[error(
        "{} would be pushed, but no cluster recipients are declared: add `flux: {{recipients: [...]}}` (the cluster's age, transit or KMS keys) to kdeploy.yaml or the target, so kustomize-controller can decrypt {}",
        .0.join(", "),
        if .0.len() == 1 { "it" } else { "them" }
    )]
    NoClusterRecipients(Vec<String>),
    #[error("{object}: {message}")]
    Object { object: String, message: String },
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    #[error("{}: {message}", .path.display())]
    DockerConfig { path: PathBuf, message: String },
}
