//! kdeploy renders a folder of Kubernetes manifest templates with layered values and secrets, diffs
//! the result against a live cluster and applies it with server-side apply.
//!
//! The modules follow the data: [`project`] and [`values`] gather the inputs, [`source`] turns each
//! source (templates rendered by [`template`], plain YAML, kustomize, Helm charts, pinned URLs) into
//! YAML documents, [`manifest`] turns those into patched, ordered Kubernetes objects, [`check`] validates them
//! against the Kubernetes schemas and their CRDs offline, and [`cluster`] diffs and applies them.
//! [`yaml`] is the data model they share, [`diagnostic`] the way they report errors, [`parallel`]
//! spreads the per-object work of large manifests over the cores, and [`util`] holds the few helpers
//! (hex, the cache folder, UTC time) that every stage uses and none owns. [`convert`] stands beside
//! the pipeline: it turns other tools' configurations (ytt) into kdeploy projects. [`publish`] sits
//! beside [`cluster`]: it packs a rendered manifest as an OCI artifact for Flux and pushes it.

// The offline stages live in crates/core; they keep their names here.
pub use kdeploy_core::{check, diagnostic, manifest, parallel, template, trust, util, values, yaml};

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod convert;
pub mod project;
pub mod publish;
pub mod source;
pub mod ui;
pub mod vault;
