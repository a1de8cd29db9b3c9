//! kdeploy's offline stages, the code every render runs: [`values`] gathers the inputs, [`template`]
//! renders them into YAML documents, [`manifest`] turns those into patched, ordered Kubernetes
//! objects, and [`check`] validates them against the Kubernetes schemas and their CRDs. [`yaml`] is
//! the data model they share, [`diagnostic`] the way they report errors, [`trust`] what a repository
//! may make kdeploy do, [`parallel`] spreads the per-object work of large manifests over the cores,
//! and [`util`] holds the few helpers (hex, the cache folder, UTC time) that every stage uses and
//! none owns.
//!
//! It is a crate of its own so that it builds beside the cluster client's dependencies and is
//! optimised fully, while the `kdeploy` crate above it (sources, secrets, the cluster, the commands),
//! which waits on the network rather than the processor, is built faster. `kdeploy` re-exports every
//! module here under the same name.

pub mod check;
pub mod diagnostic;
pub mod manifest;
pub mod parallel;
pub mod template;
pub mod trust;
pub mod util;
pub mod values;
pub mod yaml;
