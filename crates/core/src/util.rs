//! Small helpers every stage uses and none owns: hex encoding, kdeploy's cache folder, UTC timestamps,
//! when the process started, and asking git about a work tree. Nothing here knows of projects, templates, manifests or clusters.

use std::path::{Path, PathBuf};

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

/// Writes a cache file whole or not at all (a temporary file renamed into place), making its folder;
/// a cache that cannot be written is only a slower next run, so errors are ignored.
pub fn write_cache_file(file: &Path, bytes: &[u8]) {
    use std::io::Write;
    let Some(dir) = file.parent() else { return };
    let written = std::fs::create_dir_all(dir).ok().and_then(|()| {
        let mut temporary = tempfile::NamedTempFile::new_in(dir).ok()?;
        temporary.write_all(bytes).ok()?;
        temporary.persist(file).ok()
    });
    let _ = written;
}

/// The most a cache folder of downloads may hold: `KDEPLOY_CACHE_MAX_MB`, else 1 GiB.
pub fn cache_limit() -> u64 {
    std::env::var("KDEPLOY_CACHE_MAX_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(1024 * 1024 * 1024, |mib| mib * 1024 * 1024)
}

/// Removes the least recently written entries of `dir`'s subfolders (each entry a file or a folder,
/// as `sources/sha256/<digest>` and `sources/charts/<key>` are) until all of them hold at most
/// `limit` bytes; `keep` is never removed (what this run just stored). Errors are ignored: a cache
/// that cannot be trimmed is still a cache.
pub fn trim_cache(dir: &Path, limit: u64, keep: &Path) {
    fn size(path: &Path) -> u64 {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| size(&e.path()))
                .sum(),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|group| group.path().is_dir())
        .flat_map(|group| std::fs::read_dir(group.path()).into_iter().flatten().flatten())
        .map(|entry| {
            let path = entry.path();
            let written = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (written, size(&path), path)
        })
        .collect();
    let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
    entries.sort();
    for (_, bytes, path) in entries {
        if total <= limit {
            break;
        }
        if path == keep {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if removed.is_ok() {
            total -= bytes;
        }
    }
}

/// Now, as sops writes `lastmodified` (RFC 3339, UTC, seconds).
/// When the process started (the first call, which `main` makes before anything else).
pub fn process_start() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

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

/// `git -C DIR ARGS…`'s trimmed output, or None outside a work tree, without git, or on failure. git
/// is told not to run the repository's fsmonitor hook, and gets no stdin.
pub fn git(dir: &Path, args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "core.fsmonitor=false"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// A URL without the `user:password@` it may carry (a git remote often does, in CI).
pub fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_taken_out_of_urls() {
        assert_eq!(
            without_userinfo("https://ci:glpat-s3cret@gitlab.example/team/app.git"),
            "https://gitlab.example/team/app.git"
        );
        assert_eq!(
            without_userinfo("https://github.com/org/app"),
            "https://github.com/org/app"
        );
        assert_eq!(without_userinfo("https://u:p@host"), "https://host");
        assert_eq!(
            without_userinfo("git@github.com:org/app.git"),
            "git@github.com:org/app.git"
        );
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn a_cache_is_trimmed_oldest_first_and_keeps_what_was_just_stored() {
        let dir = tempfile::tempdir().unwrap();
        let group = dir.path().join("sha256");
        std::fs::create_dir_all(dir.path().join("charts/c")).unwrap();
        std::fs::create_dir_all(&group).unwrap();
        let write = |path: &Path, bytes: usize, age: u64| {
            std::fs::write(path, vec![0u8; bytes]).unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        };
        write(&group.join("old"), 400, 300);
        write(&group.join("middle"), 400, 200);
        write(&dir.path().join("charts/c/chart.tgz"), 400, 100);
        std::fs::File::options()
            .read(true)
            .open(dir.path().join("charts/c"))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(100))
            .unwrap();
        write(&group.join("new"), 400, 0);
        trim_cache(dir.path(), 900, &group.join("old"));
        assert!(group.join("old").exists(), "what was just stored is kept");
        assert!(!group.join("middle").exists());
        assert!(!dir.path().join("charts/c").exists());
        assert!(group.join("new").exists());
    }

    #[test]
    fn unix_seconds_become_civil_utc() {
        assert_eq!(utc_from_unix(0), [1970, 1, 1, 0, 0, 0]);
        assert_eq!(utc_from_unix(951_782_400), [2000, 2, 29, 0, 0, 0]);
        assert_eq!(utc_from_unix(1_796_083_199), [2026, 11, 30, 23, 59, 59]);
        assert_eq!(utc_from_unix(-1), [1969, 12, 31, 23, 59, 59]);
    }
}
