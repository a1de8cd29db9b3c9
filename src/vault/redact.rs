//! Recognising and masking secret values wherever they end up.
//!
//! Built from the decrypted vault values: each value of at least [`MIN_LEN`] characters, and its
//! base64 form (Secret `data` holds base64), is a needle. Shorter values are left out, since masking
//! every `1` or `yes` in a manifest would hide more than it protects.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::Secrets;

pub const MIN_LEN: usize = 4;
pub const MASK: &str = "<redacted>";

#[derive(Default)]
pub struct Redactor {
    needles: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor(<{} needles>)", self.needles.len())
    }
}

impl Redactor {
    pub fn new<'a>(plaintexts: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut needles: Vec<Zeroizing<String>> = Vec::new();
        for text in plaintexts.into_iter().filter(|t| t.chars().count() >= MIN_LEN) {
            needles.push(Zeroizing::new(text.to_owned()));
            needles.push(Zeroizing::new(STANDARD.encode(text)));
        }
        // Longest first, so a secret that contains another is masked whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor { needles }
    }

    pub fn from_secrets(secrets: &Secrets) -> Redactor {
        Redactor::new(secrets.plaintexts())
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub fn contains_secret(&self, text: &str) -> bool {
        self.needles.iter().any(|n| text.contains(n.as_str()))
    }

    /// `text` with every secret (and base64 of one) replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values_and_their_base64_but_not_short_ones() {
        let redactor = Redactor::new(["hunter2-secret", "abc"]);
        assert_eq!(
            redactor.redact("url: postgres://u:hunter2-secret@db"),
            "url: postgres://u:<redacted>@db"
        );
        assert_eq!(redactor.redact(&STANDARD.encode("hunter2-secret")), MASK);
        assert!(!redactor.contains_secret("abc and more"));
        assert!(format!("{redactor:?}").starts_with("Redactor(<2"));
    }
}
