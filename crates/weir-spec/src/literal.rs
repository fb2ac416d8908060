//! Literals in contracts (`range` bounds, `allowed` values): read with the
//! type YAML gives them, checked against the column's declared type.
//!
//! A plain `3` is an integer, a plain `1.5` a float, a quoted scalar text;
//! dates, timestamps and decimals are strings in the forms below. YAML 1.1
//! booleans (`yes`, `on`) are never read as booleans, and must be quoted to
//! be strings, as everywhere else in a pipeline.

use std::cmp::Ordering;

use crate::contract::{ColumnType, Literal};
use crate::decode::{Ctx, yaml11_bool};
use crate::yaml::{Node, NodeKind, Style, is_null, truncate};

/// Reads `node` as a value of a column of type `ty`; `what` names it in
/// messages ("`range.min` of column `age`").
pub(crate) fn read(cx: &mut Ctx, node: &Node, ty: &ColumnType, what: &str) -> Option<Literal> {
    let NodeKind::Scalar { value, style } = &node.kind else {
        cx.error(
            &node.loc,
            format!("{what} must be a single value, found {}", node.type_name()),
        )
        .hint("write one value here, not a list or a mapping");
        return None;
    };
    let plain = *style == Style::Plain;
    if plain && is_null(value) {
        cx.error(&node.loc, format!("{what} must be a value, found null"))
            .hint("write a value; nothing, `~` or `null` is null");
        return None;
    }
    let lit = match ty {
        ColumnType::Boolean => match (plain, value.as_str()) {
            (true, "true") => Ok(Literal::Bool(true)),
            (true, "false") => Ok(Literal::Bool(false)),
            _ => Err((
                "`true` or `false`".to_owned(),
                "write `true` or `false`, unquoted; `yes`, `on` and the like are not booleans in weir"
                    .to_owned(),
            )),
        },
        ColumnType::Float32 | ColumnType::Float64 => float(value, plain, ty),
        // Binary values are written as strings and stand for their UTF-8 bytes.
        ColumnType::String | ColumnType::Binary => text(value, plain),
        ColumnType::Date => match date(value) {
            Some(_) => Ok(Literal::Text(value.clone())),
            None => Err((
                "a date `YYYY-MM-DD`".to_owned(),
                "write a calendar date such as `2024-01-31`".to_owned(),
            )),
        },
        ColumnType::Timestamp { tz, .. } => timestamp_literal(value, tz.is_some()),
        ColumnType::Decimal { precision, scale } => decimal(value, plain, *precision, *scale),
        ColumnType::Int8
        | ColumnType::Int16
        | ColumnType::Int32
        | ColumnType::Int64
        | ColumnType::UInt8
        | ColumnType::UInt16
        | ColumnType::UInt32
        | ColumnType::UInt64 => integer(value, plain, ty),
    };
    match lit {
        Ok(lit) => Some(lit),
        Err((expected, hint)) => {
            let found = describe(node, value, plain);
            cx.error(
                &node.loc,
                format!("{what} must be {expected} (the column is {ty}), found {found}"),
            )
            .hint(hint);
            None
        }
    }
}

/// `the integer `3``, or `yes`'s YAML 1.1 reading spelled out.
fn describe(node: &Node, value: &str, plain: bool) -> String {
    if plain
        && yaml11_bool(value)
        && !value.eq_ignore_ascii_case("true")
        && !value.eq_ignore_ascii_case("false")
    {
        format!("`{value}`, which YAML 1.1 reads as a boolean")
    } else {
        node.type_name()
    }
}

type Fit = Result<Literal, (String, String)>;

/// The smallest and largest value of an integer type.
fn int_bounds(ty: &ColumnType) -> (i128, i128) {
    match ty {
        ColumnType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        ColumnType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        ColumnType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        ColumnType::UInt8 => (0, u8::MAX.into()),
        ColumnType::UInt16 => (0, u16::MAX.into()),
        ColumnType::UInt32 => (0, u32::MAX.into()),
        ColumnType::UInt64 => (0, u64::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    }
}

fn integer(value: &str, plain: bool, ty: &ColumnType) -> Fit {
    let (min, max) = int_bounds(ty);
    let parsed = value.parse::<i128>().ok();
    match parsed {
        Some(n) if plain && (min..=max).contains(&n) => match i64::try_from(n) {
            Ok(n) => Ok(Literal::Int(n)),
            Err(_) => Err((
                format!("at most {}", i64::MAX),
                "a contract holds integers up to 2^63 - 1; leave this bound out".to_owned(),
            )),
        },
        Some(_) if plain => Err((
            format!("an integer from {min} to {max}"),
            format!("{ty} holds whole numbers from {min} to {max}"),
        )),
        Some(_) => Err((
            "an integer".to_owned(),
            format!("remove the quotes: `{}`", truncate(value)),
        )),
        None => Err((
            "an integer".to_owned(),
            format!("write a whole number from {min} to {max}"),
        )),
    }
}

fn float(value: &str, plain: bool, ty: &ColumnType) -> Fit {
    let as_int = value.parse::<i64>().ok();
    let as_float = value.parse::<f64>().ok();
    if !plain {
        let hint = match as_float {
            Some(_) => format!("remove the quotes: `{}`", truncate(value)),
            None => "write a number such as `0.5`".to_owned(),
        };
        return Err(("a number".to_owned(), hint));
    }
    let limit = if matches!(ty, ColumnType::Float32) {
        f64::from(f32::MAX)
    } else {
        f64::MAX
    };
    match (as_int, as_float) {
        (Some(n), _) => Ok(Literal::Int(n)),
        (None, Some(f)) if f.is_finite() && f.abs() <= limit => Ok(Literal::Float(f)),
        (None, Some(_)) => Err((
            format!("a finite number that fits {ty}"),
            "infinities and NaN cannot be contract values".to_owned(),
        )),
        (None, None) => Err((
            "a number".to_owned(),
            "write a number such as `0.5`".to_owned(),
        )),
    }
}

fn text(value: &str, plain: bool) -> Fit {
    if !plain {
        return Ok(Literal::Text(value.to_owned()));
    }
    if yaml11_bool(value) || value.parse::<f64>().is_ok() {
        return Err((
            "a string".to_owned(),
            format!("quote it: \"{}\"", truncate(value)),
        ));
    }
    Ok(Literal::Text(value.to_owned()))
}

fn timestamp_literal(value: &str, zoned_column: bool) -> Fit {
    match timestamp(value) {
        Some(t) if t.zoned || !zoned_column => return Ok(Literal::Text(value.to_owned())),
        Some(_) => {
            return Err((
                "a timestamp with an offset".to_owned(),
                format!(
                    "the column's times are in a time zone, so the value needs one too: `Z` for UTC or `+HH:MM`, e.g. `{}Z`",
                    truncate(&value.replacen(' ', "T", 1))
                ),
            ));
        }
        None => {}
    }
    let hint = match value
        .get(..19)
        .map(|head| (head, timestamp(&format!("{head}Z"))))
    {
        Some((head, Some(_))) if value.len() == 19 => format!(
            "a time with `T` needs an offset: write `{head}Z` for UTC, or `{}` for a time without a zone",
            head.replacen('T', " ", 1)
        ),
        _ => "write an RFC 3339 time such as `2024-01-31T12:00:00Z`, or `2024-01-31 12:00:00`"
            .to_owned(),
    };
    Err(("a timestamp".to_owned(), hint))
}

fn decimal(value: &str, plain: bool, precision: u8, scale: i8) -> Fit {
    let Some((int_digits, frac_digits)) = decimal_digits(value) else {
        let hint = if value.parse::<f64>().is_ok() {
            "write the number with digits and an optional point, e.g. `1000` or `12.50`"
        } else {
            "write a number such as `12.50`"
        };
        return Err(("a decimal number".to_owned(), hint.to_owned()));
    };
    let scale = usize::try_from(scale).unwrap_or(0);
    let whole = usize::from(precision).saturating_sub(scale);
    if int_digits > whole || frac_digits > scale {
        return Err((
            format!("a number with at most {whole} digit(s) before the point and {scale} after"),
            format!(
                "decimal({precision},{scale}) cannot hold `{}`",
                truncate(value)
            ),
        ));
    }
    if !plain {
        return Ok(Literal::Text(value.to_owned()));
    }
    // A number YAML reads exactly stays a number; one that an f64 would
    // round keeps its digits as text.
    if let Ok(n) = value.parse::<i64>() {
        return Ok(Literal::Int(n));
    }
    match value.parse::<f64>() {
        Ok(f) if value.contains('.') && normalize(&f.to_string()) == normalize(value) => {
            Ok(Literal::Float(f))
        }
        _ => Ok(Literal::Text(value.to_owned())),
    }
}

/// Significant digits before and after the point of `[+-]digits[.digits]`.
fn decimal_digits(value: &str) -> Option<(usize, usize)> {
    let body = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || body.ends_with('.') {
        return None;
    }
    Some((
        int.trim_start_matches('0').len(),
        frac.trim_end_matches('0').len(),
    ))
}

/// `+012.500` -> `12.5`, `-0.0` -> `0`: a decimal's canonical spelling.
fn normalize(value: &str) -> String {
    let negative = value.starts_with('-');
    let body = value.trim_start_matches(['+', '-']);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let digits = match (int.is_empty(), frac.is_empty()) {
        (true, true) => return "0".to_owned(),
        (_, true) => int.to_owned(),
        (true, false) => format!("0.{frac}"),
        (false, false) => format!("{int}.{frac}"),
    };
    if negative {
        format!("-{digits}")
    } else {
        digits
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date, if it is one.
pub(crate) fn date(value: &str) -> Option<i64> {
    crate::calendar::parse_date(value)
}

/// A point in time read from a contract literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant {
    /// Whether an offset was given; instants compare only with their kind.
    zoned: bool,
    /// Seconds since the epoch (in UTC when zoned, as written otherwise).
    secs: i64,
    nanos: u32,
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.f]Z|±HH:MM` (RFC 3339) or
/// `YYYY-MM-DD HH:MM:SS[.f]` with an optional offset. The `T` form needs
/// an offset (RFC 3339 has no local times).
pub(crate) fn timestamp(value: &str) -> Option<Instant> {
    let t = crate::calendar::parse_timestamp(value)?;
    if t.t_separator && t.offset_secs.is_none() {
        return None;
    }
    Some(Instant {
        zoned: t.offset_secs.is_some(),
        secs: t.secs,
        nanos: t.nanos,
    })
}

/// How `a` and `b`, two valid values of one column type, compare; `None`
/// when they do not (a zoned and an unzoned timestamp).
pub(crate) fn compare(a: &Literal, b: &Literal, ty: &ColumnType) -> Option<Ordering> {
    match (ty, a, b) {
        (ColumnType::Date, Literal::Text(a), Literal::Text(b)) => Some(a.cmp(b)),
        (ColumnType::Timestamp { .. }, Literal::Text(a), Literal::Text(b)) => {
            let (a, b) = (timestamp(a)?, timestamp(b)?);
            (a.zoned == b.zoned).then(|| a.cmp(&b))
        }
        (_, Literal::Int(a), Literal::Int(b)) => Some(a.cmp(b)),
        _ => number(a)?.partial_cmp(&number(b)?),
    }
}

/// A numeric literal as an f64. Rounding is monotonic, so two values that
/// compare as f64s never compare the other way exactly.
fn number(lit: &Literal) -> Option<f64> {
    match lit {
        Literal::Int(n) => Some(*n as f64),
        Literal::Float(f) => Some(*f),
        Literal::Text(t) => t.parse().ok(),
        Literal::Bool(_) => None,
    }
}

/// A key equal for literals that denote the same value of a column type:
/// `1` and `1.0` in a float column, `12.5` and `"12.50"` in a decimal one.
pub(crate) fn identity(lit: &Literal, ty: &ColumnType) -> String {
    match (ty, lit) {
        (ColumnType::Decimal { .. }, Literal::Text(t)) => format!("n:{}", normalize(t)),
        (ColumnType::Decimal { .. }, Literal::Float(f)) => {
            format!("n:{}", normalize(&f.to_string()))
        }
        (ColumnType::Timestamp { .. }, Literal::Text(t)) => match timestamp(t) {
            Some(i) => format!("t:{}:{}:{}", i.zoned, i.secs, i.nanos),
            None => format!("s:{t}"),
        },
        (_, Literal::Int(n)) => format!("n:{n}"),
        (_, Literal::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            format!("n:{}", normalize(&f.to_string()))
        }
        (_, Literal::Float(f)) => format!("f:{}", f.to_bits()),
        (_, Literal::Text(t)) => format!("s:{t}"),
        (_, Literal::Bool(b)) => format!("b:{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date("1970-01-01"), Some(0));
        assert_eq!(date("2000-03-01"), Some(11_017));
        assert_eq!(date("2024-02-29").map(|d| d > 0), Some(true));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "24-01-01",
            "2024-01-32",
            "+024-01-01",
        ] {
            assert_eq!(date(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        let z = timestamp("2024-01-31T12:00:00Z").unwrap();
        assert_eq!(timestamp("2024-01-31T14:00:00+02:00"), Some(z));
        assert!(timestamp("2024-01-31 12:00:00.5").is_some());
        assert!(timestamp("2024-01-31t12:00:00.123456789z").is_some());
        for bad in [
            "2024-01-31T12:00:00",
            "2024-01-31T24:00:00Z",
            "2024-01-31T12:00:00.Z",
            "2024-01-31T12:00:00.1234567890Z",
            "2024-01-31T12:00:00+0200",
            "2024-01-31X12:00:00Z",
            "2024-01-31",
        ] {
            assert_eq!(timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal_digits("-0012.500"), Some((2, 1)));
        assert_eq!(decimal_digits("1e3"), None);
        assert_eq!(decimal_digits("1."), None);
        assert_eq!(decimal_digits(".5"), None);
        assert_eq!(normalize("+012.500"), "12.5");
        assert_eq!(normalize("-0.0"), "0");
        let ty = ColumnType::Decimal {
            precision: 5,
            scale: 2,
        };
        assert!(decimal("123.45", true, 5, 2).is_ok());
        assert!(decimal("1234.5", true, 5, 2).is_err());
        assert!(decimal("1.234", true, 5, 2).is_err());
        assert_eq!(
            identity(&Literal::Float(12.5), &ty),
            identity(&Literal::Text("12.50".into()), &ty)
        );
    }

    #[test]
    fn integers_fit_their_width() {
        assert!(integer("127", true, &ColumnType::Int8).is_ok());
        assert!(integer("128", true, &ColumnType::Int8).is_err());
        assert!(integer("-1", true, &ColumnType::UInt64).is_err());
        assert!(integer("18446744073709551615", true, &ColumnType::UInt64).is_err());
        assert!(integer("\"3\"", false, &ColumnType::Int64).is_err());
    }
}
