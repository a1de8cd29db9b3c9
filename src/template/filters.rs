//! The conversion filters kdeploy adds to Tera's own (`int`, `float`, `str`, `default`, `upper`, ...).
//!
//! Types change only when a template asks: `{{ port | string }}`, `{{ flag | bool }}`,
//! `{{ config | to_yaml }}`. `safe` (Tera's) is the opt-out: it inserts text verbatim as template text.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use tera::{Kwargs, State, Tera, TeraResult, Value};

pub fn register(tera: &mut Tera) {
    tera.register_filter("string", |v: Value, _: Kwargs, _: &State| string(&v));
    tera.register_filter("bool", |v: Value, _: Kwargs, _: &State| to_bool(&v));
    tera.register_filter("to_json", |v: Value, kwargs: Kwargs, _: &State| to_json(&v, &kwargs));
    tera.register_filter("to_yaml", |v: Value, _: Kwargs, _: &State| to_yaml(&v));
    tera.register_filter("b64encode", |v: Value, _: Kwargs, _: &State| {
        Ok::<_, tera::Error>(STANDARD.encode(text_of(&v)?))
    });
    tera.register_filter("b64decode", |v: &str, _: Kwargs, _: &State| b64decode(v));
    tera.register_filter("sha256", |v: Value, _: Kwargs, _: &State| {
        Ok::<_, tera::Error>(crate::util::hex(&Sha256::digest(text_of(&v)?.as_bytes())))
    });
}

fn err(message: impl ToString) -> tera::Error {
    tera::Error::message(message)
}

/// The text of a scalar: strings as they are, numbers and booleans as written.
fn text_of(value: &Value) -> TeraResult<String> {
    if let Some(s) = value.as_str() {
        return Ok(s.to_owned());
    }
    if value.is_number() || value.is_bool() {
        return Ok(value.to_string());
    }
    Err(err(format!(
        "expected a string, number or boolean, got a {}",
        value.name()
    )))
}

fn string(value: &Value) -> TeraResult<String> {
    if value.is_none() {
        return Ok(String::new());
    }
    if value.is_array() || value.is_map() {
        return to_json(value, &Kwargs::default());
    }
    text_of(value)
}

fn to_bool(value: &Value) -> TeraResult<bool> {
    if let Some(b) = value.as_bool() {
        return Ok(b);
    }
    if let Some(n) = value.as_number() {
        return Ok(n.as_float() != 0.0);
    }
    match value.as_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("true" | "yes" | "y" | "on" | "1") => Ok(true),
        Some("false" | "no" | "n" | "off" | "0" | "") => Ok(false),
        _ => Err(err(format!("cannot convert {value} to a boolean"))),
    }
}

fn to_json(value: &Value, kwargs: &Kwargs) -> TeraResult<String> {
    let pretty = kwargs.get::<bool>("pretty")?.unwrap_or(false);
    let written = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    written.map_err(err)
}

fn to_yaml(value: &Value) -> TeraResult<String> {
    let json = serde_json::to_value(value).map_err(err)?;
    crate::yaml::emit::to_yaml(&json).map_err(err)
}

fn b64decode(encoded: &str) -> TeraResult<String> {
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|e| err(format!("b64decode: not valid base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| err("b64decode: the decoded bytes are not UTF-8 text"))
}
