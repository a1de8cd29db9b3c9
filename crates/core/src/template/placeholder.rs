//! Typed placeholders: how a value reaches the YAML tree without ever being parsed as YAML.
//!
//! The placeholder filter turns the value of an expression into an opaque token, `U+E000`, the value
//! as base64url-encoded JSON, `U+E001`, which YAML reads as ordinary text in any scalar. After Tera has
//! run, the rendered text is parsed as YAML and [`substitute`] replaces each token according to where
//! it landed:
//!
//! - a plain scalar that is exactly one token takes the value itself, with its type (lists and maps
//!   become structure);
//! - a token in a quoted scalar, a block scalar, a key, or mixed with other text becomes the value's
//!   text, so the scalar is a string holding exactly the value's characters.
//!
//! A value can never change the structure of the document, because the structure was fixed before the
//! value was put in. A string marked safe (the `safe` filter, component output) is not tokenized: it is
//! template text.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value as Json;
use tera::{Kwargs, State, Value};

use crate::yaml::{Node, NodeValue, Scalar, ScalarEvent, ScalarStyle};

/// The filter the rewrite appends to every expression.
pub const FILTER_NAME: &str = "__kdeploy_value";
/// The filter section the rewrite puts around fragments that stand alone on their line.
pub const INDENT_FILTER_NAME: &str = "__kdeploy_indent";
/// What the placeholder filter says of an undefined value; the template stage turns it into a
/// message naming the expression.
pub const UNDEFINED: &str = "__kdeploy_undefined";

const START: char = '\u{E000}';
const END: char = '\u{E001}';

thread_local! {
    /// How many expressions this render thread has evaluated: every `{{ … }}` passes this filter, so
    /// it is where the evaluation budget is kept. Each render runs in threads of its own, which start
    /// at zero; counting per thread keeps the hot path free of shared writes.
    static EVALUATED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The placeholder filter: safe strings pass through as template text (indented by `indent` after
/// each line break), anything else becomes a token.
pub fn placeholder_filter(value: Value, kwargs: Kwargs, _: &State) -> tera::TeraResult<Value> {
    let evaluated = EVALUATED.with(|count| {
        let seen = count.get();
        count.set(seen + 1);
        seen
    });
    let budget = crate::trust::policy().limits.max_expressions;
    if evaluated >= budget {
        return Err(tera::Error::message(format!(
            "the templates evaluated more than {budget} expressions in one render thread, the render's budget: a loop runs away"
        )));
    }
    if value.is_undefined() {
        return Err(tera::Error::message(UNDEFINED));
    }
    if value.is_safe() {
        let indent = kwargs.get::<usize>("indent")?.unwrap_or(0);
        return Ok(match value.as_str() {
            Some(text) if indent > 0 => Value::safe_string(&indent_continuation_lines(text, indent)),
            _ => value,
        });
    }
    let json = serde_json::to_vec(&value).map_err(|e| tera::Error::message(format!("cannot insert value: {e}")))?;
    let mut token = String::with_capacity(json.len() * 4 / 3 + 8);
    token.push(START);
    URL_SAFE_NO_PAD.encode_string(json, &mut token);
    token.push(END);
    Ok(Value::safe_string(&token))
}

/// The indent filter section: indents every line after the first by `width` spaces.
pub fn indent_filter(text: &str, kwargs: Kwargs, _: &State) -> tera::TeraResult<Value> {
    let width = kwargs.get::<usize>("width")?.unwrap_or(0);
    Ok(Value::safe_string(&indent_continuation_lines(text, width)))
}

/// Indents each non-empty line after the first, so a fragment written at column 0 fits at `width`.
fn indent_continuation_lines(text: &str, width: usize) -> String {
    let pad = " ".repeat(width);
    let mut out = String::with_capacity(text.len() + text.matches('\n').count() * width);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    out
}

/// The characters that delimit placeholders, which templates themselves may not contain.
pub fn is_reserved(c: char) -> bool {
    c == START || c == END || c == MARK_OPEN || c == MARK_CLOSE
}

/// Open and close the line marks that trace rendered text back to template lines (see
/// `rewrite::rewrite_marked`); reserved beside the placeholders' own.
pub const MARK_OPEN: char = '\u{E002}';
pub const MARK_CLOSE: char = '\u{E003}';

/// Whether rendered text contains a placeholder.
pub fn has_placeholder(text: &str) -> bool {
    text.contains(START)
}

/// Replaces placeholders in a scalar (see the module docs). `None` when there are none.
pub fn substitute(event: &ScalarEvent<'_>) -> Result<Option<Node>, String> {
    if !has_placeholder(event.text) {
        return Ok(None);
    }
    let pieces = split(event.text)?;
    let whole_value = event.style == ScalarStyle::Plain && !event.is_key && !event.tagged && pieces.len() == 1;
    if whole_value && let Piece::Value(value) = &pieces[0] {
        return Ok(Some(Node::from_json(value, event.mark)));
    }
    let mut text = String::with_capacity(event.text.len());
    for piece in &pieces {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Value(value) => text.push_str(&value_text(value)),
        }
    }
    Ok(Some(Node::new(NodeValue::Scalar(Scalar::String(text)), event.mark)))
}

/// Rendered text for display in an error, with each placeholder shown as `«value»` and its content
/// hidden (it may be a secret).
pub fn redact_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(START) {
        out.push_str(&rest[..start]);
        out.push_str("«value»");
        rest = rest[start..]
            .find(END)
            .map_or("", |end| &rest[start + end + END.len_utf8()..]);
    }
    out.push_str(rest);
    out
}

/// The text a value contributes to a string: strings as they are, null as nothing, numbers and
/// booleans as written, lists and maps as JSON.
pub fn value_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

enum Piece<'a> {
    Text(&'a str),
    Value(Json),
}

fn split(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(START) {
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + START.len_utf8()..];
        let end = after
            .find(END)
            .ok_or("a value placeholder was cut short; was a value filtered with `safe` and truncated?")?;
        pieces.push(Piece::Value(decode(&after[..end])?));
        rest = &after[end + END.len_utf8()..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

fn decode(encoded: &str) -> Result<Json, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| "a value placeholder was altered; filters that change text must come before `safe`".to_owned())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("a value placeholder is unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::Mark;

    fn token(json: Json) -> String {
        let value = Value::from_serializable(&json);
        let mut out = String::from(START);
        out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&value).unwrap()));
        out.push(END);
        out
    }

    fn event(text: &str, style: ScalarStyle, is_key: bool) -> ScalarEvent<'_> {
        ScalarEvent {
            text,
            style,
            is_key,
            tagged: false,
            mark: Mark::default(),
        }
    }

    fn resolved(text: &str, style: ScalarStyle, is_key: bool) -> Json {
        substitute(&event(text, style, is_key))
            .unwrap()
            .unwrap()
            .to_json()
            .unwrap()
    }

    #[test]
    fn a_lone_plain_placeholder_keeps_the_type() {
        let t = token(serde_json::json!({"a": [1, "yes"]}));
        assert_eq!(
            resolved(&t, ScalarStyle::Plain, false),
            serde_json::json!({"a": [1, "yes"]})
        );
        let t = token(serde_json::json!("0755"));
        assert_eq!(resolved(&t, ScalarStyle::Plain, false), serde_json::json!("0755"));
    }

    #[test]
    fn quoted_keys_and_mixed_text_become_strings() {
        let n = token(serde_json::json!(8080));
        assert_eq!(
            resolved(&n, ScalarStyle::DoubleQuoted, false),
            serde_json::json!("8080")
        );
        assert_eq!(resolved(&n, ScalarStyle::Plain, true), serde_json::json!("8080"));
        let mixed = format!("http://h:{n}/x");
        assert_eq!(
            resolved(&mixed, ScalarStyle::Plain, false),
            serde_json::json!("http://h:8080/x")
        );
        let pem = token(serde_json::json!("-----BEGIN-----\nabc\n-----END-----\n"));
        assert_eq!(
            resolved(&pem, ScalarStyle::Literal, false),
            serde_json::json!("-----BEGIN-----\nabc\n-----END-----\n")
        );
    }

    #[test]
    fn continuation_lines_are_indented_but_blank_lines_stay_blank() {
        assert_eq!(indent_continuation_lines("a: 1\n\nb: 2\n", 4), "a: 1\n\n    b: 2\n");
    }

    #[test]
    fn text_without_placeholders_is_left_alone_and_damage_is_reported() {
        assert!(
            substitute(&event("plain", ScalarStyle::Plain, false))
                .unwrap()
                .is_none()
        );
        let broken = format!("{START}not-base64!{END}");
        assert!(substitute(&event(&broken, ScalarStyle::Plain, false)).is_err());
        assert_eq!(
            redact_placeholders(&format!("a {} b", token(serde_json::json!("secret")))),
            "a «value» b"
        );
    }
}
