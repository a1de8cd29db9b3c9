//! Converting other tools' configurations into kdeploy projects, exactly or not at all.
//!
//! Beside the pipeline rather than in it: a converter reads another tool's files and writes a
//! kdeploy project's files; it renders nothing itself. [`ytt`] is the one there is.

pub mod ytt;
