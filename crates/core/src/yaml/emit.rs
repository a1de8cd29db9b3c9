//! Writing YAML that kubectl (YAML 1.1) and YAML 1.2 parsers read as the same values.
//!
//! serde-saphyr quotes every string that either version would resolve to something else (`yes`, `on`,
//! `0755`, `1_000`, `~`, ...); this was measured against kubectl's decoder (see shared/NOTES.md) and is
//! re-checked by the hostile-value test in `tests/`.

use serde::Serialize;
use serde_json::Value as Json;

#[derive(Debug, thiserror::Error)]
#[error("cannot write YAML: {0}")]
pub struct EmitError(String);

/// Long single-line strings stay on one line: folding them (`>`) is valid YAML but makes diffs of
/// manifests and vault files (long `ENC[…]` values) harder to read. Multi-line strings still use `|`.
const NEVER_FOLD: usize = 1 << 20;

/// One YAML document, ending with a line break.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, EmitError> {
    let options = serde_saphyr::ser_options! { folded_wrap_chars: NEVER_FOLD };
    let mut text = serde_saphyr::to_string_with_options(value, options).map_err(|e| EmitError(e.to_string()))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// One JSON document as YAML, ending with a line break: byte for byte what [`to_yaml`] writes, faster.
///
/// Objects are mostly structure and plain words (`name: web`, `image: nginx:1.27`). Those are written
/// here; every other scalar (anything that needs quoting or a block, floats, keys that are not plain
/// words) goes through serde-saphyr as a one-entry mapping or one-item sequence, and its lines are
/// indented to where it sits. So the quoting decisions stay serde-saphyr's, and the result is the same
/// bytes as [`to_yaml`] (a test compares both on the real-world manifests and on hostile values).
pub fn json_to_yaml(value: &Json) -> Result<String, EmitError> {
    let mut out = String::with_capacity(256);
    match value {
        Json::Object(map) if !map.is_empty() => write_mapping(map, 0, false, &mut out)?,
        Json::Array(items) if !items.is_empty() => write_sequence(items, 0, &mut out)?,
        scalar_or_empty => return to_yaml(scalar_or_empty),
    }
    Ok(out)
}

/// Entries at `indent`; with `inline`, the first entry goes on the line already started (`- `).
fn write_mapping(
    map: &serde_json::Map<String, Json>,
    indent: usize,
    inline: bool,
    out: &mut String,
) -> Result<(), EmitError> {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !inline {
            push_indent(out, indent);
        }
        if !is_plain_word(key, false) {
            write_delegated(&OneEntry(key, value), indent, out)?;
            continue;
        }
        match value {
            Json::Object(inner) if !inner.is_empty() => {
                out.push_str(key);
                out.push_str(":\n");
                write_mapping(inner, indent + 2, false, out)?;
            }
            // Sequences under a key are not indented further, as kubectl writes them.
            Json::Array(items) if !items.is_empty() => {
                out.push_str(key);
                out.push_str(":\n");
                write_sequence(items, indent, out)?;
            }
            _ => match plain_scalar(value) {
                Some(text) => {
                    out.push_str(key);
                    out.push_str(": ");
                    out.push_str(&text);
                    out.push('\n');
                }
                None => write_delegated(&OneEntry(key, value), indent, out)?,
            },
        }
    }
    Ok(())
}

/// Items at `indent`, each starting with `- `.
fn write_sequence(items: &[Json], indent: usize, out: &mut String) -> Result<(), EmitError> {
    for item in items {
        push_indent(out, indent);
        match item {
            Json::Object(map) if !map.is_empty() => {
                out.push_str("- ");
                write_mapping(map, indent + 2, true, out)?;
            }
            Json::Array(_) => write_delegated(&OneItem(item), indent, out)?,
            _ => match plain_scalar(item) {
                Some(text) => {
                    out.push_str("- ");
                    out.push_str(&text);
                    out.push('\n');
                }
                None => write_delegated(&OneItem(item), indent, out)?,
            },
        }
    }
    Ok(())
}

/// A scalar or empty collection written the way serde-saphyr writes it, or `None` where its own rules
/// decide (strings that are not plain words, floats).
fn plain_scalar(value: &Json) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    match value {
        Json::Null => Some(Cow::Borrowed("null")),
        Json::Bool(true) => Some(Cow::Borrowed("true")),
        Json::Bool(false) => Some(Cow::Borrowed("false")),
        Json::Number(n) if n.is_i64() || n.is_u64() => Some(Cow::Owned(n.to_string())),
        Json::String(s) if is_plain_word(s, true) => Some(Cow::Borrowed(s)),
        Json::Object(map) if map.is_empty() => Some(Cow::Borrowed("{}")),
        Json::Array(items) if items.is_empty() => Some(Cow::Borrowed("[]")),
        _ => None,
    }
}

/// Text that every YAML reader takes as this same string when written plain: it starts with a letter,
/// holds only letters, digits, `-`, `_`, `.`, `/`, inner spaces and (in values) a `:` followed by one of
/// those, and is not a word any YAML version reads as a boolean, null or number. Deliberately narrow:
/// anything else is left to serde-saphyr.
fn is_plain_word(text: &str, is_value: bool) -> bool {
    let bytes = text.as_bytes();
    if !bytes.first().is_some_and(u8::is_ascii_alphabetic) || bytes.last() == Some(&b' ') {
        return false;
    }
    let mut previous = 0u8;
    for (i, &byte) in bytes.iter().enumerate() {
        let allowed = match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => true,
            b' ' => previous != b' ',
            b':' => {
                is_value
                    && bytes
                        .get(i + 1)
                        .is_some_and(|next| next.is_ascii_alphanumeric() || *next == b'/')
            }
            _ => false,
        };
        if !allowed {
            return false;
        }
        previous = byte;
    }
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    !(bytes.len() <= 5 && WORDS.iter().any(|word| text.eq_ignore_ascii_case(word)))
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// serde-saphyr's text for one entry or item, continued at `indent` (its first line goes where the
/// caller's line already is).
fn write_delegated<T: Serialize>(piece: &T, indent: usize, out: &mut String) -> Result<(), EmitError> {
    let text = to_yaml(piece)?;
    for (i, line) in text.lines().enumerate() {
        if i > 0 && !line.is_empty() {
            push_indent(out, indent);
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(())
}

/// A mapping of one entry, borrowed from a larger one.
struct OneEntry<'a>(&'a str, &'a Json);

impl Serialize for OneEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}

/// A sequence of one item, borrowed from a larger one.
struct OneItem<'a>(&'a Json);

impl Serialize for OneItem<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(1))?;
        seq.serialize_element(self.0)?;
        seq.end()
    }
}

/// A multi-document stream, each document starting with `---`.
pub fn to_yaml_stream<'a, T: Serialize + 'a>(documents: impl IntoIterator<Item = &'a T>) -> Result<String, EmitError> {
    let mut out = String::new();
    for document in documents {
        out.push_str("---\n");
        out.push_str(&to_yaml(document)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_stream;

    #[test]
    fn ambiguous_strings_survive_a_round_trip_through_kubectl_rules() {
        let tricky = [
            "yes", "on", "NO", "y", "~", "null", "0755", "1_000", "1e3", ".inf", "12:30:45", "", " x", "a: b", "#c",
            "- x",
        ];
        let value = serde_json::json!({ "data": tricky });
        let text = to_yaml(&value).unwrap();
        let back = parse_stream(&text, &mut |_| Ok(None)).unwrap();
        assert_eq!(back[0].root.to_json().unwrap(), value, "emitted:\n{text}");
    }

    #[test]
    fn long_lines_are_not_folded_and_multi_line_strings_are_literal_blocks() {
        let long = "x".repeat(50) + " " + &"y".repeat(50);
        let text = to_yaml(&serde_json::json!({"long": long, "pem": "a\nb\n"})).unwrap();
        assert_eq!(text, format!("long: {long}\npem: |\n  a\n  b\n"));
    }

    /// Strings that every position must write exactly as serde-saphyr does: plain words, near-words,
    /// YAML keywords in any case, numbers, timestamps, indicators, comments, blocks and escapes.
    const HOSTILE: [&str; 62] = [
        "web",
        "nginx:1.27",
        "registry.example.com/app:1.0",
        "a b",
        "a  b",
        "a b ",
        " a",
        "yes",
        "Yes",
        "YES",
        "yEs",
        "y",
        "N",
        "on",
        "Off",
        "true",
        "False",
        "null",
        "NULL",
        "nan",
        "Inf",
        "infinity",
        "~",
        "",
        "0755",
        "1_000",
        "1e3",
        "12:30:45",
        "2001-12-14",
        "0x1f",
        "+1",
        "-1",
        ".5",
        "-",
        "- a",
        "-a",
        "?",
        "a:",
        "a: b",
        "a:b",
        "a:/b",
        "a:-b",
        "a #b",
        "a#b",
        "#c",
        "<<",
        "=",
        "---",
        "...",
        "a\nb",
        "a\nb\n",
        "a\n\nb\n\n",
        "  lead\nx",
        "tab\there",
        "cr\r",
        "é",
        "a,b",
        "[a]",
        "{a}",
        "@a",
        "`a`",
        "%a",
    ];

    fn both_emitters_agree(value: &Json) {
        let expected = to_yaml(value).unwrap();
        let written = json_to_yaml(value).unwrap();
        assert_eq!(written, expected, "for {value}");
    }

    #[test]
    fn the_fast_emitter_writes_serde_saphyr_s_bytes_in_every_position() {
        for text in HOSTILE {
            let document = serde_json::json!({
                "kind": text,
                text: {"nested": text, text: [text, {"first": text, "second": [text]}, [text, text], {text: text}]},
                "list": [text, {text: {"deeper": text}}, [], {}, null, 1.5, -7, true],
                "empty": {"map": {}, "list": [], "null": null},
            });
            both_emitters_agree(&document);
            both_emitters_agree(&serde_json::json!([text, {text: text}, [[text]]]));
            both_emitters_agree(&serde_json::json!(text));
        }
        for number in [
            serde_json::json!(0),
            serde_json::json!(u64::MAX),
            serde_json::json!(i64::MIN),
            serde_json::json!(1e300),
        ] {
            both_emitters_agree(&serde_json::json!({"n": number, "items": [number]}));
        }
    }

    #[test]
    fn stream_separates_documents() {
        let docs = [serde_json::json!({"a": 1}), serde_json::json!({"b": [1, 2]})];
        let text = to_yaml_stream(&docs).unwrap();
        assert!(text.starts_with("---\na: 1\n---\n"), "{text}");
        assert_eq!(parse_stream(&text, &mut |_| Ok(None)).unwrap().len(), 2);
    }
}
