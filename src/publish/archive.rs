//! The artifact's content layer: a tar of the tree, gzipped, the same bytes for the same tree.
//!
//! Entries are regular files in path order, mode 0644, owned by 0:0 with no user or group names, dated
//! 1970-01-01; gzip carries no file name and no time. So an unchanged render gives an unchanged layer,
//! and an unchanged layer digest, whatever machine or clock pushed it. A path longer than ustar's 100
//! bytes gets a PAX `path` record, which Go's archive/tar (Flux's reader) understands.

use std::collections::BTreeMap;
use std::io::Write as _;

const BLOCK: usize = 512;

/// The tree as a gzipped tar.
pub fn tar_gz(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut tar = Vec::with_capacity(files.values().map(|f| f.len() + 2 * BLOCK).sum::<usize>() + 2 * BLOCK);
    for (path, content) in files {
        if path.len() > 100 {
            let record = pax_record("path", path);
            append_entry(&mut tar, &pax_name(path), b'x', record.as_bytes());
        }
        append_entry(&mut tar, path, b'0', content);
    }
    tar.extend_from_slice(&[0; 2 * BLOCK]);
    let mut gzip = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::with_capacity(tar.len() / 4), flate2::Compression::default());
    // Writing to memory cannot fail.
    let _ = gzip.write_all(&tar);
    gzip.finish().unwrap_or_default()
}

/// The files of a tar (gzipped or not) written by [`tar_gz`] or any ustar/PAX writer: regular files
/// only, at most `limit` bytes in all. Anything else (links, devices, paths that climb out) is an
/// error: a previous artifact is read back only to reuse what kdeploy wrote into it.
pub fn read_tar_gz(bytes: &[u8], limit: usize) -> Result<BTreeMap<String, Vec<u8>>, String> {
    use std::io::Read as _;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(&mut tar)
        .map_err(|e| format!("not gzip: {e}"))?;
    if tar.len() > limit {
        return Err(format!("larger than {limit} bytes unpacked"));
    }
    read_tar(&tar)
}

/// The regular files of an (unpacked) tar, as [`read_tar_gz`] reads them.
pub fn read_tar(tar: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    let mut at = 0;
    let mut long_path: Option<String> = None;
    while at + BLOCK <= tar.len() {
        let header = &tar[at..at + BLOCK];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let size = octal(&header[124..136]).ok_or("a tar header with a bad size")?;
        let start = at + BLOCK;
        let end = start
            .checked_add(size)
            .filter(|e| *e <= tar.len())
            .ok_or("a tar entry runs past the end")?;
        let content = &tar[start..end];
        let name = text(&header[0..100]);
        let prefix = text(&header[345..500]);
        let path = long_path.take().unwrap_or(if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        });
        match header[156] {
            b'x' => long_path = pax_path(content),
            b'0' | 0 => {
                if path.starts_with('/') || path.contains('\0') || path.split('/').any(|part| part == "..") {
                    return Err(format!("the entry `{path}` points outside the archive"));
                }
                files.insert(path, content.to_vec());
            }
            b'5' => {}
            other => {
                return Err(format!(
                    "the entry `{path}` is not a regular file (type {})",
                    other as char
                ));
            }
        }
        at = start + size.div_ceil(BLOCK) * BLOCK;
    }
    Ok(files)
}

fn append_entry(tar: &mut Vec<u8>, path: &str, kind: u8, content: &[u8]) {
    let mut header = [0u8; BLOCK];
    let name = truncate(path, 100);
    header[..name.len()].copy_from_slice(name.as_bytes());
    write_octal(&mut header[100..108], 0o644);
    write_octal(&mut header[108..116], 0);
    write_octal(&mut header[116..124], 0);
    write_octal(&mut header[124..136], content.len() as u64);
    write_octal(&mut header[136..148], 0);
    header[156] = kind;
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces.
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    let digits = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(digits.as_bytes());
    tar.extend_from_slice(&header);
    tar.extend_from_slice(content);
    let padding = content.len().div_ceil(BLOCK) * BLOCK - content.len();
    tar.extend(std::iter::repeat_n(0, padding));
}

/// A PAX record: `LEN key=value\n`, where LEN counts the whole record, itself included.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut length = body.len() + 1;
    while length.to_string().len() + body.len() != length {
        length = length.to_string().len() + body.len();
    }
    format!("{length}{body}")
}

/// The `path` of PAX records (`LEN key=value\n`, each LEN bytes long, so a value may hold newlines).
fn pax_path(mut records: &[u8]) -> Option<String> {
    let mut path = None;
    while let Some(space) = records.iter().position(|b| *b == b' ') {
        let length: usize = std::str::from_utf8(&records[..space]).ok()?.parse().ok()?;
        if length <= space + 1 || length > records.len() {
            return path;
        }
        let record = &records[space + 1..length];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"path=") {
            path = Some(String::from_utf8_lossy(value).into_owned());
        }
        records = &records[length..];
    }
    path
}

/// The name of a PAX header entry, as GNU tar and Go write it: `PaxHeaders.0/` and the file's name.
fn pax_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    truncate(&format!("PaxHeaders.0/{file}"), 100).to_owned()
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn write_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    field[digits.len()..].fill(0);
}

fn octal(field: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(field)
        .ok()?
        .trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    usize::from_str_radix(text, 8).ok()
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(path, text)| (path.to_string(), text.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes_and_reads_back() {
        let long = format!("default/{}.yaml", "n".repeat(180));
        let files = tree(&[
            ("b.yaml", "b: 1\n"),
            ("a/x.yaml", "x: 2\n"),
            (long.as_str(), "long: true\n"),
        ]);
        let first = tar_gz(&files);
        assert_eq!(first, tar_gz(&files));
        assert_eq!(read_tar_gz(&first, 1 << 20).unwrap(), files);
        // gzip: no name (FLG 0), no time (MTIME 0).
        assert_eq!(&first[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn the_real_tar_lists_and_extracts_what_was_written() {
        let long = format!("ns/{}.yaml", "m".repeat(150));
        let files = tree(&[("kustomization.yaml", "resources: []\n"), (long.as_str(), "k: v\n")]);
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        std::fs::write(&archive, tar_gz(&files)).unwrap();
        let out = std::process::Command::new("tar")
            .args(["-xzvf", archive.to_str().unwrap(), "-C", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read_to_string(dir.path().join(&long)).unwrap(), "k: v\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("kustomization.yaml")).unwrap(),
            "resources: []\n"
        );
    }

    #[test]
    fn a_link_or_a_climbing_path_is_refused_when_read_back() {
        let mut tar = Vec::new();
        append_entry(&mut tar, "../escape.yaml", b'0', b"x");
        tar.extend_from_slice(&[0; 2 * BLOCK]);
        let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let error = read_tar_gz(&gz.finish().unwrap(), 1 << 20).unwrap_err();
        assert!(error.contains("outside"), "{error}");

        let mut tar = Vec::new();
        append_entry(&mut tar, "link", b'2', b"");
        tar.extend_from_slice(&[0; 2 * BLOCK]);
        let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        assert!(
            read_tar_gz(&gz.finish().unwrap(), 1 << 20)
                .unwrap_err()
                .contains("not a regular file")
        );
    }

    #[test]
    fn a_long_path_with_a_newline_survives_its_pax_record() {
        let path = format!("ns/{}\nx.yaml", "p".repeat(120));
        let files = tree(&[(path.as_str(), "k: v\n")]);
        assert_eq!(read_tar_gz(&tar_gz(&files), 1 << 20).unwrap(), files);
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for value in ["a", &"b".repeat(95), &"c".repeat(995)] {
            let record = pax_record("path", value);
            let (length, _) = record.split_once(' ').unwrap();
            assert_eq!(length.parse::<usize>().unwrap(), record.len(), "{record}");
        }
    }
}
