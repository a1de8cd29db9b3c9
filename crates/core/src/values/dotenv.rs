//! `.env` files, read with dotenvy (quoting, `export`, `${VAR}` substitution, multi-line values).

use std::path::Path;

use super::{Origin, ValuesError};
use crate::diagnostic::{SourceError, line_column};

/// The variables of a `.env` file in file order, each with the line that set it.
pub fn load(path: &Path) -> Result<Vec<(String, String, Origin)>, ValuesError> {
    let text = crate::trust::read_text(path, "env file", crate::trust::policy().limits.max_text_file_bytes)?;
    parse(path, &text)
}

/// The variables of `.env` text read from `path` (which may have been decrypted first).
pub fn parse(path: &Path, text: &str) -> Result<Vec<(String, String, Origin)>, ValuesError> {
    check_expansions(path, text)?;
    let mut out = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (name, value) = item.map_err(|e| parse_error(path, text, e))?;
        let line = defining_line(text, &name).unwrap_or(1);
        let origin = Origin::File {
            path: path.to_path_buf(),
            line,
            column: 1,
        };
        out.push((name, value, origin));
    }
    Ok(out)
}

/// dotenvy expands `$NAME` and `${NAME}` from the process environment before the file's own
/// variables, so a name the file may not see (a credential kdeploy reads; in untrusted mode anything
/// but Argo CD's variables) is refused wherever it follows a `$`. Inside single quotes dotenvy does
/// not expand, but the check does not tell quotes apart: it refuses too much rather than too little.
fn check_expansions(path: &Path, text: &str) -> Result<(), ValuesError> {
    let bytes = text.as_bytes();
    for (at, _) in text.match_indices('$') {
        let start = at + 1 + usize::from(bytes.get(at + 1) == Some(&b'{'));
        let name_len = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        let name = &text[start..start + name_len];
        if name.is_empty()
            || text[..at]
                .rsplit('\n')
                .next()
                .is_some_and(|l| l.trim_start().starts_with('#'))
        {
            continue;
        }
        let defined_here = text[..at].lines().any(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("export ").map_or(line, str::trim_start);
            line.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        let in_process = std::env::var_os(name).is_some();
        if let Some(why) = crate::trust::env_refusal(name)
            && (in_process || !defined_here)
            && (crate::trust::is_credential(name) || in_process)
        {
            let (line, column) = line_column(text, at);
            return Err(SourceError::new(
                format!("the env file expands ${name}: {why}"),
                path,
                Some(text),
                line,
                column,
            )
            .with_width(name_len + 1)
            .into());
        }
    }
    Ok(())
}

/// The last line that assigns `name` (`NAME=` or `export NAME=`).
fn defining_line(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start();
            let line = line.strip_prefix("export ").map_or(line, str::trim_start);
            line.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
        .last()
}

fn parse_error(path: &Path, text: &str, error: dotenvy::Error) -> ValuesError {
    match error {
        dotenvy::Error::LineParse(line, index) => {
            let start = text.find(&line).unwrap_or(0);
            // A quote left open runs to the end of the file: the entry where it opened is the place.
            let unterminated = index >= line.trim_end().len() && line.contains(['"', '\'']);
            let offset = if unterminated {
                start
            } else {
                start + index.min(line.len())
            };
            let (line_number, column) = line_column(text, offset);
            SourceError::new(
                if unterminated {
                    "a quote opened here is never closed in the env file"
                } else {
                    "invalid line in env file (expected NAME=value)"
                },
                path,
                Some(text),
                line_number,
                column,
            )
            .into()
        }
        other => ValuesError::Read {
            what: "env file",
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoting_and_remembers_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "# c\nA=1\nexport B=\"two words\"\nC='lit $A'\nD=${A}x\n").unwrap();
        let vars = load(&path).unwrap();
        let got: Vec<(&str, &str)> = vars.iter().map(|(k, v, _)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, [("A", "1"), ("B", "two words"), ("C", "lit $A"), ("D", "1x")]);
        assert!(matches!(vars[1].2, Origin::File { line: 3, .. }));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "A=1\nnot a valid line\n").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains(".env:2:"), "{err}");
    }
}
