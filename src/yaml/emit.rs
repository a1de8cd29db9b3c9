//! Writing YAML that kubectl (YAML 1.1) and YAML 1.2 parsers read as the same values.
//!
//! serde-saphyr quotes every string that either version would resolve to something else (`yes`, `on`,
//! `0755`, `1_000`, `~`, ...); this was measured against kubectl's decoder (see shared/NOTES.md) and is
//! re-checked by the hostile-value test in `tests/`.

use serde::Serialize;

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

    #[test]
    fn stream_separates_documents() {
        let docs = [serde_json::json!({"a": 1}), serde_json::json!({"b": [1, 2]})];
        let text = to_yaml_stream(&docs).unwrap();
        assert!(text.starts_with("---\na: 1\n---\n"), "{text}");
        assert_eq!(parse_stream(&text, &mut |_| Ok(None)).unwrap().len(), 2);
    }
}
