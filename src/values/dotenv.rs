//! `.env` files, read with dotenvy (quoting, `export`, `${VAR}` substitution, multi-line values).

use std::path::Path;

use super::{Origin, ValuesError};
use crate::diagnostic::{SourceError, line_column};

/// The variables of a `.env` file in file order, each with the line that set it.
pub fn load(path: &Path) -> Result<Vec<(String, String, Origin)>, ValuesError> {
    let text = std::fs::read_to_string(path).map_err(|source| ValuesError::Read {
        what: "env file",
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// The variables of `.env` text read from `path` (which may have been decrypted first).
pub fn parse(path: &Path, text: &str) -> Result<Vec<(String, String, Origin)>, ValuesError> {
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
