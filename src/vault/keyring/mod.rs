//! The OS keyring, where `vault init` keeps a person's age identity: the freedesktop Secret Service
//! on Linux and the BSDs ([`secret_service`], over kdeploy's own small D-Bus client, [`dbus`]), and
//! the `keyring` crate's native stores on macOS (Keychain) and Windows (Credential Manager).
//!
//! On Linux, the `keyring` crate's Secret Service store brings zbus, an async runtime of its own and
//! a second generation of the RustCrypto crates (58 crates, an eighth of a first build's compile
//! time), for the four calls made here. Its entries (attributes `service` and `username`) are the
//! ones read and written here, so nothing stored before has to move.

#[cfg(all(unix, not(any(target_os = "macos", target_os = "ios"))))]
mod dbus;
#[cfg(all(unix, not(any(target_os = "macos", target_os = "ios"))))]
mod secret_service;

use zeroize::Zeroizing;

/// Why the keyring could not be used; never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("no keyring is available here ({0})")]
    Unavailable(String),
    #[error("locked or access denied ({0}); unlock your keyring and try again")]
    Locked(String),
    #[error("not available ({0})")]
    Other(String),
}

/// The secret stored for `service`/`account`, if there is one.
pub fn read(service: &str, account: &str) -> Result<Option<Zeroizing<String>>, KeyringError> {
    platform::read(service, account)
}

/// Stores `secret` for `service`/`account`, replacing what was there; `label` is what the keyring's
/// own tools show.
pub fn write(service: &str, account: &str, label: &str, secret: &str) -> Result<(), KeyringError> {
    platform::write(service, account, label, secret)
}

#[cfg(all(unix, not(any(target_os = "macos", target_os = "ios"))))]
mod platform {
    use super::*;

    fn env(name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    pub fn read(service: &str, account: &str) -> Result<Option<Zeroizing<String>>, KeyringError> {
        super::secret_service::read(service, account, &env)
    }

    pub fn write(service: &str, account: &str, label: &str, secret: &str) -> Result<(), KeyringError> {
        super::secret_service::write(service, account, label, secret, &env)
    }
}

#[cfg(not(all(unix, not(any(target_os = "macos", target_os = "ios")))))]
mod platform {
    use super::*;

    fn classify(error: keyring::Error) -> KeyringError {
        match error {
            keyring::Error::NoStorageAccess(e) => KeyringError::Locked(e.to_string()),
            keyring::Error::NoDefaultStore => KeyringError::Unavailable("no credential store".to_owned()),
            other => KeyringError::Other(other.to_string()),
        }
    }

    pub fn read(service: &str, account: &str) -> Result<Option<Zeroizing<String>>, KeyringError> {
        let entry = keyring::Entry::new(service, account).map_err(classify)?;
        match entry.get_password() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    pub fn write(service: &str, account: &str, _label: &str, secret: &str) -> Result<(), KeyringError> {
        let entry = keyring::Entry::new(service, account).map_err(classify)?;
        entry.set_password(secret).map_err(classify)
    }
}
