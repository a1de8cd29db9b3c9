//! Small helpers every stage uses and none owns: hex encoding, kdeploy's cache folder and UTC
//! timestamps. Nothing here knows of projects, templates, manifests or clusters.

use std::path::PathBuf;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

/// kdeploy's cache folder: `$KDEPLOY_CACHE_DIR`, else `$XDG_CACHE_HOME/kdeploy`, else `~/.cache/kdeploy`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KDEPLOY_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("kdeploy");
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("kdeploy")
}

/// Now, as sops writes `lastmodified` (RFC 3339, UTC, seconds).
pub fn now_rfc3339() -> String {
    let [year, month, day, hour, minute, second] = utc_now();
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// Now in UTC as year, month, day, hour, minute, second.
pub fn utc_now() -> [i64; 6] {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    utc_from_unix(secs)
}

/// Seconds since 1970 as UTC year, month, day, hour, minute, second.
pub fn utc_from_unix(secs: i64) -> [i64; 6] {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    [year, month, day, rem / 3600, rem % 3600 / 60, rem % 60]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn unix_seconds_become_civil_utc() {
        assert_eq!(utc_from_unix(0), [1970, 1, 1, 0, 0, 0]);
        assert_eq!(utc_from_unix(951_782_400), [2000, 2, 29, 0, 0, 0]);
        assert_eq!(utc_from_unix(1_796_083_199), [2026, 11, 30, 23, 59, 59]);
        assert_eq!(utc_from_unix(-1), [1969, 12, 31, 23, 59, 59]);
    }
}
