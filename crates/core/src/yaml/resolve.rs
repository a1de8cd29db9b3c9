//! How an untagged plain scalar becomes a typed value.
//!
//! kdeploy reads plain scalars the way `kubectl apply -f` does (sigs.k8s.io/yaml on go-yaml v2, YAML 1.1
//! rules), because manifest authors write for kubectl: `defaultMode: 0644` means the octal mode 420 and
//! `enabled: yes` means `true`. Reading them with YAML 1.2 rules instead would silently change what an
//! existing manifest means. The emitter ([`super::emit`]) quotes every string that YAML 1.1 or 1.2 would
//! read as something else, so kdeploy's output means the same under both.

use super::Scalar;

/// Which reader's rules to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schema {
    /// kubectl's (sigs.k8s.io/yaml on go-yaml v2): `yes`, `on`, `y` are booleans.
    #[default]
    Kubectl,
    /// sops' (go-yaml v3): only `true`/`false` (any case style) are booleans; numbers as in v2.
    Sops,
}

/// Resolves a plain (unquoted, untagged) scalar with go-yaml v2's rules.
pub fn plain_scalar(text: &str) -> Scalar {
    plain_scalar_in(text, Schema::Kubectl)
}

/// Resolves a plain scalar with the rules of `schema`.
pub fn plain_scalar_in(text: &str, schema: Schema) -> Scalar {
    if schema == Schema::Sops && matches!(keyword(text), Some(Scalar::Bool(_))) {
        return match text {
            "true" | "True" | "TRUE" => Scalar::Bool(true),
            "false" | "False" | "FALSE" => Scalar::Bool(false),
            _ => Scalar::String(text.to_owned()),
        };
    }
    if let Some(known) = keyword(text) {
        return known;
    }
    match text.as_bytes().first() {
        Some(b'.') => parse_go_float(text).map_or_else(|| Scalar::String(text.to_owned()), Scalar::Float),
        Some(b'0'..=b'9' | b'+' | b'-') => number(text).unwrap_or_else(|| Scalar::String(text.to_owned())),
        _ => Scalar::String(text.to_owned()),
    }
}

/// The words go-yaml v2 resolves by table lookup.
fn keyword(text: &str) -> Option<Scalar> {
    Some(match text {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => Scalar::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => Scalar::Bool(false),
        ".nan" | ".NaN" | ".NAN" => Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Scalar::Float(f64::NEG_INFINITY),
        _ => return None,
    })
}

/// Integers (Go's `ParseInt(s, 0, 64)` after removing underscores: `0x`, `0o`, `0b` and a leading `0`
/// for octal), then YAML-style floats, then go-yaml's own `0b`/`-0b` binary fallback. Timestamps stay
/// strings, as sigs.k8s.io/yaml leaves them.
fn number(text: &str) -> Option<Scalar> {
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if let Some(int) = parse_go_int(&plain) {
        return Some(int);
    }
    if is_yaml_style_float(&plain) {
        return parse_go_float(&plain).map(Scalar::Float);
    }
    None
}

fn parse_go_int(plain: &str) -> Option<Scalar> {
    let (negative, unsigned) = match plain.as_bytes().first()? {
        b'-' => (true, &plain[1..]),
        b'+' => (false, &plain[1..]),
        _ => (false, plain),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (digits, radix) = if let Some(hex) = lower.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = lower.strip_prefix("0o") {
        (oct, 8)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        (bin, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        let value = -i128::try_from(magnitude).ok()?;
        i64::try_from(value).ok().map(Scalar::Int)
    } else if let Ok(small) = i64::try_from(magnitude) {
        Some(Scalar::Int(small))
    } else {
        u64::try_from(magnitude).ok().map(Scalar::UInt)
    }
}

/// Whether `text` is written as an integer (decimal, `0x`, `0o`, `0b` or octal, with `_` allowed) but
/// does not fit in 64 bits: go-yaml would read it as a float, silently losing digits.
pub fn is_oversized_integer(text: &str) -> bool {
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    let unsigned = plain.strip_prefix(['-', '+']).unwrap_or(&plain).to_ascii_lowercase();
    let (digits, radix) = match unsigned.get(..2) {
        Some("0x") => (&unsigned[2..], 16),
        Some("0o") => (&unsigned[2..], 8),
        Some("0b") => (&unsigned[2..], 2),
        _ => (unsigned.as_str(), 10),
    };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix)) && parse_go_int(&plain).is_none()
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// Go's `strconv.ParseFloat` for the decimal forms YAML can reach here.
fn parse_go_float(s: &str) -> Option<f64> {
    let valid = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !valid {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> Scalar {
        Scalar::Int(i)
    }

    #[test]
    fn yaml_1_1_booleans_and_nulls() {
        for t in ["y", "Y", "yes", "on", "ON", "true", "True"] {
            assert_eq!(plain_scalar(t), Scalar::Bool(true), "{t}");
        }
        for t in ["n", "NO", "off", "Off", "false", "FALSE"] {
            assert_eq!(plain_scalar(t), Scalar::Bool(false), "{t}");
        }
        for t in ["", "~", "null", "NULL"] {
            assert_eq!(plain_scalar(t), Scalar::Null, "{t}");
        }
        assert_eq!(plain_scalar("yES"), Scalar::String("yES".into()));
    }

    #[test]
    fn integers_follow_go_parse_int_base_zero() {
        assert_eq!(plain_scalar("0755"), int(0o755));
        assert_eq!(plain_scalar("0o17"), int(15));
        assert_eq!(plain_scalar("0x1F"), int(31));
        assert_eq!(plain_scalar("0b101"), int(5));
        assert_eq!(plain_scalar("1_000"), int(1000));
        assert_eq!(plain_scalar("+1"), int(1));
        assert_eq!(plain_scalar("-42"), int(-42));
        assert_eq!(plain_scalar("0"), int(0));
        assert_eq!(plain_scalar("18446744073709551615"), Scalar::UInt(u64::MAX));
        assert!(is_oversized_integer("99999999999999999999") && is_oversized_integer("-9_223_372_036_854_775_809"));
        assert!(
            !is_oversized_integer("9223372036854775807")
                && !is_oversized_integer("1e30")
                && !is_oversized_integer("1.5")
        );
    }

    #[test]
    fn the_sops_schema_has_only_yaml_1_2_booleans() {
        assert_eq!(plain_scalar_in("yes", Schema::Sops), Scalar::String("yes".into()));
        assert_eq!(plain_scalar_in("on", Schema::Sops), Scalar::String("on".into()));
        assert_eq!(plain_scalar_in("True", Schema::Sops), Scalar::Bool(true));
        assert_eq!(plain_scalar_in("0755", Schema::Sops), int(493));
    }

    #[test]
    fn floats_and_what_is_neither() {
        assert_eq!(plain_scalar("1.10"), Scalar::Float(1.1));
        assert_eq!(plain_scalar("1e3"), Scalar::Float(1000.0));
        assert_eq!(plain_scalar(".5"), Scalar::Float(0.5));
        assert_eq!(
            plain_scalar("08"),
            Scalar::Float(8.0),
            "invalid octal falls through to float, as in Go"
        );
        assert_eq!(plain_scalar(".inf"), Scalar::Float(f64::INFINITY));
        assert_eq!(
            plain_scalar("123456789012345678901234"),
            Scalar::Float(1.2345678901234568e23)
        );
        for t in ["12:30:45", "2024-01-02", "1.2.3", "0x", "1e", "-", "+.", "abc", "1a"] {
            assert_eq!(plain_scalar(t), Scalar::String(t.into()), "{t}");
        }
    }
}
