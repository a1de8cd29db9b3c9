//! kdeploy renders a folder of Kubernetes manifest templates with layered values and secrets, diffs
//! the result against a live cluster and applies it with server-side apply.
//!
//! The modules follow the data: [`project`] and [`values`] gather the inputs, [`template`] renders
//! them into YAML documents, [`manifest`] turns those into validated, ordered Kubernetes objects.
//! [`yaml`] is the data model they share and [`diagnostic`] the way they report errors.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod diagnostic;
pub mod manifest;
pub mod project;
pub mod template;
pub mod ui;
pub mod values;
pub mod vault;
pub mod yaml;
