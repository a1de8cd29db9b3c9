//! The conversion filters kdeploy adds to Tera's own (`int`, `float`, `str`, `default`, `upper`, ...).
//!
//! Types change only when a template asks: `{{ port | string }}`, `{{ flag | bool }}`,
//! `{{ config | to_yaml }}`. `safe` (Tera's) is the opt-out: it inserts text verbatim as template text.
//!
//! The `starlark_*` filters do what Starlark's `str()`, `int()`, `len()` and `+` do, exactly, for the
//! templates `kdeploy convert ytt` writes: where Starlark's result would differ from Tera's (`str(True)`
//! is `True`, `len` counts bytes, `+` joins strings and lists), the converted template asks for them.
//! What they cannot match (floats, struct formatting) is an error at render time, never a different
//! value.

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
    tera.register_filter("md5", |v: Value, _: Kwargs, _: &State| {
        Ok::<_, tera::Error>(crate::util::hex(&md5::Md5::digest(text_of(&v)?.as_bytes())))
    });
    tera.register_filter("starlark_str", |v: Value, _: Kwargs, _: &State| starlark_str(&v));
    tera.register_filter("starlark_int", |v: Value, _: Kwargs, _: &State| starlark_int(&v));
    tera.register_filter("starlark_len", |v: Value, _: Kwargs, _: &State| starlark_len(&v));
    tera.register_filter("starlark_iter", |v: Value, _: Kwargs, _: &State| starlark_iter(&v));
    tera.register_filter("starlark_dict", |v: Value, _: Kwargs, _: &State| starlark_dict(&v));
    tera.register_filter("ytt_json", |v: Value, _: Kwargs, _: &State| ytt_json(&v));
    tera.register_filter("starlark_add", |v: Value, kwargs: Kwargs, _: &State| {
        starlark_add(&v, &kwargs.must_get::<Value>("other")?)
    });
}

/// Starlark's `str()` of a scalar: `True`, `False`, `None`, integers in decimal, strings as they are.
fn starlark_str(value: &Value) -> TeraResult<String> {
    if let Some(s) = value.as_str() {
        return Ok(s.to_owned());
    }
    if let Some(b) = value.as_bool() {
        return Ok(if b { "True" } else { "False" }.to_owned());
    }
    if value.is_none() {
        return Ok("None".to_owned());
    }
    if let Some(i) = value.as_i128() {
        return Ok(i.to_string());
    }
    Err(err(format!(
        "str() of a {} is written differently by ytt (Starlark) and kdeploy; convert it explicitly",
        value.name()
    )))
}

/// Starlark's `int()`: integers as they are, booleans as 0 or 1, decimal strings parsed.
fn starlark_int(value: &Value) -> TeraResult<i64> {
    if let Some(i) = value.as_i128() {
        return i64::try_from(i).map_err(|_| err("int(): the integer does not fit in 64 bits"));
    }
    if let Some(b) = value.as_bool() {
        return Ok(i64::from(b));
    }
    if let Some(s) = value.as_str() {
        let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') && !digits.starts_with('_') {
            return s
                .replace('_', "")
                .parse()
                .map_err(|_| err(format!("int(): {s:?} does not fit in 64 bits")));
        }
        return Err(err(format!("int(): {s:?} is not a decimal integer")));
    }
    Err(err(format!("int() of a {} is not converted", value.name())))
}

/// Starlark's `len()`: bytes of a string, items of a list or map.
fn starlark_len(value: &Value) -> TeraResult<usize> {
    if let Some(s) = value.as_str() {
        return Ok(s.len());
    }
    if value.is_array() || value.is_map() {
        return value.len().ok_or_else(|| err("len(): no length"));
    }
    Err(err(format!("len() of a {}", value.name())))
}

/// A Starlark dict with computed keys, from `[[key, value], …]`; a later key wins, as in Starlark.
/// Keys must be strings (what a YAML map's keys become in kdeploy).
fn starlark_dict(pairs: &Value) -> TeraResult<Value> {
    let mut map = tera::value::Map::new();
    for pair in pairs
        .as_array()
        .ok_or_else(|| err("starlark_dict takes a list of pairs"))?
    {
        let [key, value] = pair.as_array().unwrap_or(&[]) else {
            return Err(err("starlark_dict takes a list of [key, value] pairs"));
        };
        let key = key
            .as_str()
            .ok_or_else(|| err(format!("a dict key that is a {}, not a string", key.name())))?;
        map.insert(tera::value::Key::String(std::sync::Arc::from(key)), value.clone());
    }
    Ok(Value::from(map))
}

/// What Starlark's `for x in v` goes through: a list's items, a map's keys.
fn starlark_iter(value: &Value) -> TeraResult<Value> {
    if value.is_array() {
        return Ok(value.clone());
    }
    if let Some(map) = value.as_map() {
        return Ok(Value::from(
            map.keys().map(|k| Value::from(k.to_string())).collect::<Vec<_>>(),
        ));
    }
    Err(err(format!("a {} is not iterable in Starlark", value.name())))
}

/// ytt's `json.encode`, which is Go's `json.Marshal` of unordered maps: compact, keys sorted, and
/// `<`, `>`, `&`, U+2028 and U+2029 escaped. Floats (which Go writes its own way) are an error.
fn ytt_json(value: &Value) -> TeraResult<String> {
    fn sorted(value: serde_json::Value) -> TeraResult<serde_json::Value> {
        Ok(match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let mut out = serde_json::Map::new();
                for (k, v) in entries {
                    out.insert(k, sorted(v)?);
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sorted).collect::<TeraResult<_>>()?)
            }
            serde_json::Value::Number(n) if n.is_f64() => {
                return Err(err(
                    "json.encode of a float is written differently by ytt (Go) and kdeploy",
                ));
            }
            other => other,
        })
    }
    let json = sorted(serde_json::to_value(value).map_err(err)?)?;
    let text = serde_json::to_string(&json).map_err(err)?;
    // These characters only occur inside JSON strings, where Go writes them escaped.
    Ok(text
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029"))
}

/// Starlark's `+`: integers add, strings and lists join; any other pair is an error, as in Starlark.
fn starlark_add(a: &Value, b: &Value) -> TeraResult<Value> {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return Ok(Value::from(format!("{x}{y}")));
    }
    if let (Some(x), Some(y)) = (a.as_i128(), b.as_i128()) {
        let sum = i64::try_from(x + y).map_err(|_| err("+: the sum does not fit in 64 bits"))?;
        return Ok(Value::from(sum));
    }
    if let (Some(x), Some(y)) = (a.as_array(), b.as_array()) {
        let mut joined = x.to_vec();
        joined.extend(y.iter().cloned());
        return Ok(Value::from(joined));
    }
    Err(err(format!("unknown binary op: {} + {}", a.name(), b.name())))
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
