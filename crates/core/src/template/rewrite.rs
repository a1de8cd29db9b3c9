//! Routing every `{{ expression }}` through the placeholder filter, and indenting fragments.
//!
//! Before a template reaches Tera, each expression tag `{{ expr }}` becomes
//! `{{ (expr) | __kdeploy_value }}`, so that what it prints is a typed placeholder instead of text (see
//! [`super::placeholder`]). Comments and `{% raw %}` blocks are left alone.
//!
//! A multi-line fragment (a component call `{{<name/>}}`, an `{% include %}`, or text filtered with
//! `safe`) standing alone on its line is indented to the column where it stands, so a fragment written
//! at column 0 fits wherever it is used: no `nindent` arithmetic.
//!
//! The rewrite only inserts text, and [`Rewritten::original_offset`] maps a position in the rewritten
//! source back to the template as written, so errors point at what the user wrote.

use std::ops::Range;

use super::placeholder::{FILTER_NAME, INDENT_FILTER_NAME, MARK_CLOSE, MARK_OPEN};

/// A template after the rewrite, with the insertions it made.
#[derive(Debug)]
pub struct Rewritten {
    pub source: String,
    insertions: Vec<Insertion>,
}

#[derive(Debug)]
struct Insertion {
    /// Offset in the original source.
    at: usize,
    len: usize,
    /// For the filter appended to an expression: the expression, in the original source.
    expression: Option<Range<usize>>,
}

impl Rewritten {
    /// Maps a byte offset in [`Self::source`] to the byte offset in the original template.
    pub fn original_offset(&self, rewritten: usize) -> usize {
        match self.locate(rewritten) {
            Ok(original) => original,
            Err(insertion) => insertion.at,
        }
    }

    /// The expression whose appended filter covers `rewritten`, if it is inside one.
    pub fn expression_at(&self, rewritten: usize) -> Option<Range<usize>> {
        self.locate(rewritten).err().and_then(|i| i.expression.clone())
    }

    fn locate(&self, rewritten: usize) -> Result<usize, &Insertion> {
        let mut shift = 0;
        for insertion in &self.insertions {
            let rewritten_at = insertion.at + shift;
            if rewritten < rewritten_at {
                break;
            }
            if rewritten < rewritten_at + insertion.len {
                return Err(insertion);
            }
            shift += insertion.len;
        }
        Ok(rewritten - shift)
    }
}

struct Writer<'s> {
    source: &'s str,
    out: String,
    copied: usize,
    insertions: Vec<Insertion>,
}

impl Writer<'_> {
    fn insert(&mut self, at: usize, text: &str, expression: Option<Range<usize>>) {
        self.out.push_str(&self.source[self.copied..at]);
        self.out.push_str(text);
        self.copied = at;
        self.insertions.push(Insertion {
            at,
            len: text.len(),
            expression,
        });
    }
}

/// The indentation of a tag starting at `at`, when only spaces precede it on its line.
fn standalone_indent(source: &str, at: usize) -> Option<usize> {
    let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
    let prefix = &source[line_start..at];
    prefix.bytes().all(|b| b == b' ').then_some(prefix.len())
}

/// Rewrites every expression tag in `source`.
pub fn rewrite(source: &str) -> Rewritten {
    rewrite_with(source, None)
}

/// Rewrites as [`rewrite`] does, and ends every line of template text (outside tags) with a mark
/// naming template `file` and the line: what the rendered text is traced back through, to say where
/// a field was written. Marks pass through loops, includes and components as text does.
pub fn rewrite_marked(source: &str, file: usize) -> String {
    rewrite_with(source, Some(file)).source
}

fn rewrite_with(source: &str, marked: Option<usize>) -> Rewritten {
    let bytes = source.as_bytes();
    let mut line = 1;
    let mut counted = 0;
    let mut line_at = |at: usize| {
        line += bytes[counted..at].iter().filter(|&&b| b == b'\n').count();
        counted = at;
        line
    };
    let mut w = Writer {
        source,
        out: String::with_capacity(source.len() + source.len() / 8),
        copied: 0,
        insertions: Vec::new(),
    };
    let indent_open = |width: usize| format!("{{% filter {INDENT_FILTER_NAME}(width={width}) %}}");
    let indent_close = "{% endfilter %}";
    let mut i = 0;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'{', b'#') => {
                i = find(source, i + 2, "#}").map_or(bytes.len(), |end| end + 2);
            }
            (b'{', b'%') => {
                let closed = tag_end(source, i + 2, "%}");
                let tag_end = closed.unwrap_or(bytes.len());
                let body = tag_body(source, i, closed);
                if body == "raw" {
                    i = skip_raw_block(source, tag_end);
                    continue;
                }
                let left_trim = bytes.get(i + 2) == Some(&b'-');
                if body.starts_with("include ")
                    && !left_trim
                    && let Some(width) = standalone_indent(source, i).filter(|&w| w > 0)
                {
                    w.insert(i, &indent_open(width), None);
                    w.insert(tag_end, indent_close, None);
                }
                i = tag_end;
            }
            (b'{', b'{') => {
                let Some(tag_end) = tag_end(source, i + 2, "}}") else {
                    break;
                };
                let left_trim = bytes.get(i + 2) == Some(&b'-');
                let mut start = i + 2 + usize::from(left_trim);
                let mut end = tag_end - 2;
                if end > start && bytes[end - 1] == b'-' {
                    end -= 1;
                }
                let inner = &source[start..end];
                start += inner.len() - inner.trim_start().len();
                end -= inner.len() - inner.trim_end().len();
                let indent = if left_trim { None } else { standalone_indent(source, i) }.unwrap_or(0);
                if bytes.get(start) == Some(&b'<') {
                    if indent > 0 {
                        w.insert(i, &indent_open(indent), None);
                        w.insert(tag_end, indent_close, None);
                    }
                } else if end > start {
                    let filter = if indent > 0 {
                        format!(") | {FILTER_NAME}(indent={indent})")
                    } else {
                        format!(") | {FILTER_NAME}")
                    };
                    w.insert(start, "(", None);
                    w.insert(end, &filter, Some(start..end));
                }
                i = tag_end;
            }
            (b'\n', _) if let Some(file) = marked => {
                let mark = format!("{MARK_OPEN}{file}:{}{MARK_CLOSE}", line_at(i));
                w.insert(i, &mark, None);
                i += 1;
            }
            _ => i += 1,
        }
    }
    // The loop reads pairs of bytes, so a final line break is never its `i`.
    if let Some(file) = marked
        && bytes.last() == Some(&b'\n')
        && w.insertions.last().is_none_or(|last| last.at != bytes.len() - 1)
    {
        let mark = format!("{MARK_OPEN}{file}:{}{MARK_CLOSE}", line_at(bytes.len() - 1));
        w.insert(bytes.len() - 1, &mark, None);
    }
    w.out.push_str(&source[w.copied..]);
    if let Some(file) = marked
        && !source.ends_with('\n')
    {
        let mark = format!("{MARK_OPEN}{file}:{}{MARK_CLOSE}", line_at(bytes.len()));
        w.out.push_str(&mark);
    }
    Rewritten {
        source: w.out,
        insertions: w.insertions,
    }
}

/// The words inside a `{% ... %}` tag opening at `open` and closing just before `end` (the rest of the
/// text when it is never closed), without `-` and spaces.
fn tag_body(source: &str, open: usize, end: Option<usize>) -> &str {
    // `end - 2` is where `%}` starts: a character boundary, unlike `len - 2` in general.
    let body = match end {
        Some(end) => &source[open + 2..(end - 2).max(open + 2)],
        None => &source[open + 2..],
    };
    body.trim_matches(|c: char| c == '-' || c.is_whitespace())
}

fn find(source: &str, from: usize, needle: &str) -> Option<usize> {
    source.get(from..)?.find(needle).map(|p| p + from)
}

/// The offset just past the `closer` that ends a tag starting at `from`, skipping string literals.
fn tag_end(source: &str, from: usize, closer: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut i = from;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if matches!(b, b'"' | b'\'' | b'`') => quote = Some(b),
            // Bytes, not `source[i..]`: `i` may stand inside a multi-byte character.
            None if bytes[i..].starts_with(closer.as_bytes()) => return Some(i + closer.len()),
            None => {}
        }
        i += 1;
    }
    None
}

/// The text inside every `{{ … }}` and `{% … %}` tag of `source` (comments and raw blocks left out):
/// where templates read values.
pub fn tag_texts(source: &str) -> Vec<&str> {
    let bytes = source.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'{', b'#') => i = find(source, i + 2, "#}").map_or(bytes.len(), |end| end + 2),
            (b'{', open @ (b'{' | b'%')) => {
                let closer = if open == b'{' { "}}" } else { "%}" };
                let closed = tag_end(source, i + 2, closer);
                if open == b'%' && tag_body(source, i, closed) == "raw" {
                    i = skip_raw_block(source, closed.unwrap_or(bytes.len()));
                    continue;
                }
                let end = closed.unwrap_or(bytes.len());
                tags.push(&source[i + 2..end.saturating_sub(2).max(i + 2)]);
                i = end;
            }
            _ => i += 1,
        }
    }
    tags
}

/// Skips to the end of the `{% endraw %}` tag that closes a raw block.
fn skip_raw_block(source: &str, mut from: usize) -> usize {
    while let Some(open) = find(source, from, "{%") {
        let closed = tag_end(source, open + 2, "%}");
        let end = closed.unwrap_or(source.len());
        if tag_body(source, open, closed) == "endraw" {
            return end;
        }
        from = end;
    }
    source.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_expressions_and_leaves_everything_else() {
        let source =
            "a: {{ x }}\nb: {{- y | upper -}}\n{# {{ c }} #}\n{% raw %}{{ d }}{% endraw %}\n{% if z %}e{% endif %}";
        let r = rewrite(source);
        let expected = format!(
            "a: {{{{ (x) | {f} }}}}\nb: {{{{- (y | upper) | {f} -}}}}\n{{# {{{{ c }}}} #}}\n{{% raw %}}{{{{ d }}}}{{% endraw %}}\n{{% if z %}}e{{% endif %}}",
            f = FILTER_NAME
        );
        assert_eq!(r.source, expected);
    }

    #[test]
    fn fragments_alone_on_their_line_are_indented_to_their_column() {
        let r = rewrite("a:\n  {{<c/>}}\n  {% include \"x\" %}\n  {{ v | safe }}\nb: {{<c/>}}\n");
        let open = format!("{{% filter {INDENT_FILTER_NAME}(width=2) %}}");
        assert_eq!(
            r.source,
            format!(
                "a:\n  {open}{{{{<c/>}}}}{{% endfilter %}}\n  {open}{{% include \"x\" %}}{{% endfilter %}}\n  {{{{ (v | safe) | {FILTER_NAME}(indent=2) }}}}\nb: {{{{<c/>}}}}\n"
            )
        );
    }

    #[test]
    fn non_ascii_inside_a_tag_is_read_whole() {
        // Found by the fuzzer: slicing inside `é` panicked.
        let r = rewrite("a: {{ values.café }}\n{% if é %}x{% endif %}");
        assert_eq!(
            r.source,
            format!("a: {{{{ (values.café) | {FILTER_NAME} }}}}\n{{% if é %}}x{{% endif %}}")
        );
        // An unclosed tag ending in a multi-byte character is left for Tera to report.
        assert_eq!(rewrite("{% if ۉ").source, "{% if ۉ");
        assert_eq!(rewrite("{% raw %}x{% endraw ۉ").source, "{% raw %}x{% endraw ۉ");
    }

    #[test]
    fn marks_end_every_line_of_text_and_skip_tags() {
        let marked = rewrite_marked("a: 1\n{% if x\n %}b: {{ y }}\n{% endif %}\n", 3);
        let mark = |line: usize| format!("{MARK_OPEN}3:{line}{MARK_CLOSE}");
        assert_eq!(
            marked,
            format!(
                "a: 1{}\n{{% if x\n %}}b: {{{{ (y) | {FILTER_NAME} }}}}{}\n{{% endif %}}{}\n",
                mark(1),
                mark(3),
                mark(4)
            )
        );
        assert!(rewrite_marked("a: 1", 0).ends_with(&format!("{MARK_OPEN}0:1{MARK_CLOSE}")));
    }

    #[test]
    fn strings_may_contain_closing_braces() {
        let r = rewrite(r#"{{ "}}" ~ x }}"#);
        assert_eq!(r.source, format!(r#"{{{{ ("}}}}" ~ x) | {FILTER_NAME} }}}}"#));
    }

    #[test]
    fn offsets_map_back_to_the_original_and_to_the_expression() {
        let source = "k: {{ a }} {{ b.c }}";
        let r = rewrite(source);
        let b_in_rewritten = r.source.rfind('b').unwrap();
        assert_eq!(r.original_offset(b_in_rewritten), source.rfind('b').unwrap());
        let a_in_rewritten = r.source.find('a').unwrap();
        assert_eq!(r.original_offset(a_in_rewritten), source.find('a').unwrap());
        assert_eq!(r.original_offset(0), 0);
        let filter = r.source.rfind(FILTER_NAME).unwrap();
        let expression = r.expression_at(filter).unwrap();
        assert_eq!(&source[expression], "b.c");
        assert!(r.expression_at(a_in_rewritten).is_none());
    }
}
