//! Errors that point into a file.
//!
//! Every stage that reads a file (values, env files, templates, kdeploy.yaml) reports a problem as a
//! [`SourceError`]: a message, `path:line:column`, and the offending line with a caret under the
//! column, in the style of rustc and Tera:
//!
//! ```text
//! Variable `replicas` is not defined. Available variables: env, secrets, values
//!   --> manifests/app.yaml:7:16
//!    |
//!  7 |   replicas: {{ replicas }}
//!    |                ^^^^^^^^
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a file. Lines and columns count from 1; columns count characters, not bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(path: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            path: path.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// An error at a location in a file, shown with the line it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub message: String,
    pub location: Location,
    /// The text of the offending line, without its line break, if the source was at hand.
    pub line_text: Option<String>,
    /// How many characters the caret underlines (at least one).
    pub width: usize,
}

impl SourceError {
    /// An error at `line`/`column` of `path`, quoting the line from `source` when it is given and
    /// the file lies inside the repository (an error never shows what is outside it).
    pub fn new(message: impl Into<String>, path: &Path, source: Option<&str>, line: usize, column: usize) -> Self {
        let line_text = source
            .filter(|_| crate::trust::may_quote(path))
            .and_then(|text| text.lines().nth(line.saturating_sub(1)).map(str::to_owned));
        SourceError {
            message: message.into(),
            location: Location::new(path, line, column.max(1)),
            line_text,
            width: 1,
        }
    }

    /// Underline `width` characters instead of one.
    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width.max(1);
        self
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message)?;
        let gutter = self.location.line.to_string().len();
        let pad = " ".repeat(gutter);
        write!(f, "{pad}--> {}", self.location)?;
        if let Some(text) = &self.line_text {
            // A long line is quoted in part: where the error is, not all of it.
            let (text, column) = crate::trust::excerpt(text, self.location.column);
            let width = self.width.min(crate::trust::EXCERPT_CHARS);
            let caret_indent: String = text
                .chars()
                .take(column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{pad} |\n{} | {}\n{pad} | {}{}",
                self.location.line,
                text,
                caret_indent,
                "^".repeat(width)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceError {}

/// Converts a byte offset in `text` to a 1-based line and character column.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_line_and_a_caret_under_the_column() {
        let source = "a: 1\nb: {{ nope }}\n";
        let err = SourceError::new("undefined", Path::new("t.yaml"), Some(source), 2, 7).with_width(4);
        let shown = err.to_string();
        assert_eq!(
            shown,
            "undefined\n --> t.yaml:2:7\n  |\n2 | b: {{ nope }}\n  |       ^^^^"
        );
    }

    #[test]
    fn line_column_counts_characters_not_bytes() {
        let text = "é: x\nab: ü{{";
        assert_eq!(line_column(text, 0), (1, 1));
        let offset = text.find("{{").unwrap();
        assert_eq!(line_column(text, offset), (2, 6));
    }
}
