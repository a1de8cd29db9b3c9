//! Secrets kept encrypted in git: SOPS files with age recipients, and the identities that open them.
//!
//! [`sops`] reads and writes the SOPS format (YAML, JSON, dotenv), compatible with the sops CLI both
//! ways; [`cipher`] is its value encryption. [`identity`] finds the age identities that can open a file
//! (a file given with `--identity`, `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, the OS keyring, sops' default
//! key file). [`Vault`] puts them together for the commands and for rendering.

pub mod cipher;
pub mod sops;
