//! The lines of a ytt YAML file, classified the way ytt reads them: code lines (`#@ stmt`),
//! annotations (`#@name/kind args`), the node sugar (`#@ if/end`, `#@ for/end`), ytt comments (`#!`),
//! YAML content with an optional value expression (`key: #@ expr`), and the text of block scalars,
//! where a `#` is content, not a comment.

/// One line of a ytt file; `number` counts from 1.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    pub number: usize,
    pub text: &'a str,
    pub kind: Kind<'a>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind<'a> {
    Blank,
    /// `---`, with whatever follows it on the line.
    DocStart,
    /// `...`
    DocEnd,
    /// `#@ statement`.
    Code(&'a str),
    /// `#@name/kind args`.
    Annotation {
        name: &'a str,
        args: &'a str,
    },
    /// `#@ if/end cond:` or `#@ for/end x in y:` (the header after `if/end` or `for/end`).
    Sugar {
        kind: Sugar,
        header: &'a str,
    },
    /// `#! comment`.
    YttComment,
    /// A plain YAML comment (ytt refuses these unless told to ignore them).
    Comment,
    /// YAML content. `body` is the line without its trailing comment; `expr` the trailing `#@` one.
    Content(Content<'a>),
    /// A line inside a block scalar (`|`, `>`).
    ScalarText,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sugar {
    If,
    For,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Content<'a> {
    pub indent: usize,
    pub body: &'a str,
    /// A plain trailing comment, kept as written.
    pub comment: Option<&'a str>,
    pub expr: Option<&'a str>,
    /// The line starts a sequence item (`- …`).
    pub seq_item: bool,
    /// The node on this line has no value written after it (`key:` or `-`).
    pub empty_value: bool,
    /// A quoted scalar or flow collection continues on the next line.
    pub unclosed: bool,
}

/// Classifies every line of `text`.
pub fn classify(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    // Inside a block scalar: the indentation its parent line had.
    let mut scalar_parent: Option<usize> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let number = index + 1;
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        if let Some(parent) = scalar_parent {
            if trimmed.trim().is_empty() || indent > parent {
                out.push(Line {
                    number,
                    text: line,
                    kind: Kind::ScalarText,
                });
                continue;
            }
            scalar_parent = None;
        }
        let kind = if trimmed.trim().is_empty() {
            Kind::Blank
        } else if let Some(rest) = trimmed.strip_prefix("#@") {
            code_or_annotation(rest)
        } else if trimmed.starts_with("#!") {
            Kind::YttComment
        } else if trimmed.starts_with('#') {
            Kind::Comment
        } else if indent == 0 && (trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---\t")) {
            Kind::DocStart
        } else if indent == 0 && (trimmed == "..." || trimmed.starts_with("... ")) {
            Kind::DocEnd
        } else {
            let content = content(line, indent);
            if starts_block_scalar(content.body) {
                scalar_parent = Some(indent);
            }
            Kind::Content(content)
        };
        out.push(Line {
            number,
            text: line,
            kind,
        });
    }
    // A final newline leaves an empty last piece, which is no line.
    if text.ends_with('\n') {
        out.pop();
    }
    out
}

fn code_or_annotation(rest: &str) -> Kind<'_> {
    let statement = rest.trim();
    for (prefix, kind) in [("if/end", Sugar::If), ("for/end", Sugar::For)] {
        if let Some(header) = statement.strip_prefix(prefix)
            && header.starts_with([' ', '\t'])
        {
            return Kind::Sugar {
                kind,
                header: header.trim(),
            };
        }
    }
    // An annotation's name is `word/word` right after the marker.
    let name_end = statement
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/' || c == '.'))
        .unwrap_or(statement.len());
    let name = &statement[..name_end];
    if !rest.starts_with([' ', '\t']) && name.contains('/') && !name.starts_with('/') {
        return Kind::Annotation {
            name,
            args: statement[name_end..].trim(),
        };
    }
    Kind::Code(statement)
}

/// The first line of `text` with code on it (loads aside), and what it holds: "code", "an
/// expression" or "if/end or for/end". Data documents and overlays are plain data to the converter.
pub fn first_code(text: &str) -> Option<(usize, &'static str)> {
    classify(text).into_iter().find_map(|line| match line.kind {
        Kind::Code(code) if !code.starts_with("load(") => Some((line.number, "code")),
        Kind::Content(c) if c.expr.is_some() => Some((line.number, "an expression")),
        Kind::Sugar { .. } => Some((line.number, "if/end or for/end")),
        _ => None,
    })
}

/// The annotations of `text`, by the line of the node they stand before.
pub fn annotations_by_line(text: &str) -> std::collections::HashMap<usize, Vec<(String, String)>> {
    let mut out: std::collections::HashMap<usize, Vec<(String, String)>> = Default::default();
    let mut pending: Vec<(String, String)> = Vec::new();
    for line in classify(text) {
        match line.kind {
            Kind::Annotation { name, args } => pending.push((name.to_owned(), args.to_owned())),
            Kind::Content(_) if !pending.is_empty() => {
                out.insert(line.number, std::mem::take(&mut pending));
            }
            _ => {}
        }
    }
    out
}

/// Splits a content line into its YAML and its trailing comment.
fn content(line: &str, indent: usize) -> Content<'_> {
    let (body, comment) = split_comment(line);
    let body_trimmed = body.trim_end();
    // A comment after indentation and a tab leaves less body than indentation.
    let indent = indent.min(body_trimmed.len());
    let rest = body_trimmed[indent..].trim_start();
    let seq_item = rest == "-" || rest.starts_with("- ");
    // What is written after the node's own marker: after `- ` and after `key:`.
    let mut after = rest;
    while let Some(r) = after.strip_prefix("- ") {
        after = r.trim_start();
    }
    let empty_value = after == "-" || after.is_empty() || (key_of(after).is_some() && value_of(after).is_empty());
    let (expr, comment) = match comment {
        Some(c) if c.starts_with("#@") => (Some(c[2..].trim()), None),
        Some(c) if c.starts_with("#!") => (None, None),
        other => (None, other),
    };
    Content {
        indent,
        body: body_trimmed,
        comment,
        expr,
        seq_item,
        empty_value,
        unclosed: is_unclosed(after),
    }
}

/// The key of `key: value` or `key:`, when the text is a mapping entry with a plain or quoted key.
pub fn key_of(text: &str) -> Option<&str> {
    let text = text.trim_start();
    if text.starts_with('"') || text.starts_with('\'') {
        let quote = text.as_bytes()[0];
        let end = text[1..].find(quote as char)? + 1;
        let after = &text[end + 1..];
        return (after.starts_with(':') && (after.len() == 1 || after[1..].starts_with(' '))).then(|| &text[..=end]);
    }
    if text.starts_with(['[', '{', '|', '>', '&', '*', '!', '?']) {
        return None;
    }
    let colon = text.find(": ").or_else(|| text.strip_suffix(':').map(|t| t.len()))?;
    let key = &text[..colon];
    (!key.contains(" #")).then_some(key)
}

/// What follows `key:` on the line.
fn value_of(text: &str) -> &str {
    match key_of(text) {
        Some(key) => text.trim_start()[key.len() + 1..].trim(),
        None => text.trim(),
    }
}

/// Where the line's comment starts: a `#` after whitespace, outside quotes.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(b'"') if c == b'\\' => i += 1,
            Some(b'\'') if c == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => {
                if (c == b'"' || c == b'\'') && starts_scalar(&line[..i]) {
                    quote = Some(c);
                } else if c == b'#' && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
                    return (&line[..i], Some(&line[i..]));
                }
            }
        }
        i += 1;
    }
    (line, None)
}

/// Whether a quote after `before` starts a quoted scalar (rather than being part of a plain one).
fn starts_scalar(before: &str) -> bool {
    let b = before.trim_end();
    b.is_empty()
        || b.ends_with(':')
        || b.ends_with('-')
        || b.ends_with('[')
        || b.ends_with('{')
        || b.ends_with(',')
        || b.ends_with('?')
}

fn starts_block_scalar(body: &str) -> bool {
    let value = body.trim_end();
    let last = value.rsplit([' ', '\t']).next().unwrap_or(value);
    let is_indicator = !last.is_empty()
        && (last.starts_with('|') || last.starts_with('>'))
        && last[1..].chars().all(|c| c == '-' || c == '+' || c.is_ascii_digit());
    if !is_indicator {
        return false;
    }
    let before = value[..value.len() - last.len()].trim_end();
    before.is_empty() || before.ends_with(':') || before.ends_with('-') || before.ends_with("---")
}

/// A quoted scalar or flow collection opened on the line and not closed on it.
fn is_unclosed(value: &str) -> bool {
    let value = match key_of(value) {
        Some(key) => value.trim_start()[key.len() + 1..].trim(),
        None => value.trim(),
    };
    if let Some(inner) = value.strip_prefix('"') {
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                return false;
            }
        }
        return true;
    }
    if let Some(inner) = value.strip_prefix('\'') {
        return !inner.replace("''", "").contains('\'');
    }
    if value.starts_with('[') || value.starts_with('{') {
        let mut depth = 0i32;
        let mut quote: Option<char> = None;
        for c in value.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '[' | '{') => depth += 1,
                (None, ']' | '}') => depth -= 1,
                _ => {}
            }
        }
        return depth > 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_line() {
        let text = "#@ load(\"@ytt:data\", \"data\")\n#@data/values\n---\n#! note\nname: #@ data.values.name\nitems:\n#@ for/end x in data.values.xs:\n- #@ x\nscript: |\n  # not a comment #@ nor code\n  done\nplain: 'it''s' # kept\n#@ if/end data.values.on:\nk: v #! dropped\n";
        let lines = classify(text);
        let kinds: Vec<_> = lines.iter().map(|l| std::mem::discriminant(&l.kind)).collect();
        assert_eq!(kinds.len(), 14);
        assert!(matches!(lines[0].kind, Kind::Code(s) if s.starts_with("load(")));
        assert!(matches!(
            lines[1].kind,
            Kind::Annotation {
                name: "data/values",
                args: ""
            }
        ));
        assert!(matches!(lines[2].kind, Kind::DocStart));
        assert!(matches!(lines[3].kind, Kind::YttComment));
        let Kind::Content(c) = &lines[4].kind else { panic!() };
        assert_eq!(
            (c.body, c.expr, c.empty_value),
            ("name:", Some("data.values.name"), true)
        );
        assert!(matches!(
            lines[6].kind,
            Kind::Sugar {
                kind: Sugar::For,
                header: "x in data.values.xs:"
            }
        ));
        let Kind::Content(c) = &lines[7].kind else { panic!() };
        assert!(c.seq_item && c.empty_value && c.expr == Some("x"));
        assert!(matches!(lines[9].kind, Kind::ScalarText));
        assert!(matches!(lines[10].kind, Kind::ScalarText));
        let Kind::Content(c) = &lines[11].kind else { panic!() };
        assert_eq!((c.body, c.comment), ("plain: 'it''s'", Some("# kept")));
        assert!(matches!(lines[12].kind, Kind::Sugar { kind: Sugar::If, .. }));
        let Kind::Content(c) = &lines[13].kind else { panic!() };
        assert_eq!((c.body, c.comment, c.expr), ("k: v", None, None));
    }

    #[test]
    fn a_tab_before_a_comment_is_no_content_to_slice() {
        let Kind::Content(c) = &classify("  \t#x")[0].kind else {
            panic!()
        };
        assert_eq!((c.body, c.indent), ("", 0));
    }

    #[test]
    fn unclosed_scalars_and_flows() {
        for (line, unclosed) in [
            ("a: \"x", true),
            ("a: \"x\"", false),
            ("a: [1,", true),
            ("a: [1, 2]", false),
            ("- {a: 1", true),
            ("a: don't", false),
        ] {
            let Kind::Content(c) = &classify(line)[0].kind else {
                panic!()
            };
            assert_eq!(c.unclosed, unclosed, "{line}");
        }
    }
}
