//! Column types as written in a contract: `int64`, `timestamp[us, UTC]`,
//! `decimal(10,2)`, with suggestions for names other systems use.

use crate::contract::{ColumnType, TimeUnit};
use crate::decode::{self, Ctx};
use crate::diagnostic::did_you_mean;
use crate::yaml::{Node, truncate};

/// Every type name, for "did you mean" hints.
const TYPE_NAMES: &[&str] = &[
    "boolean",
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "double",
    "string",
    "utf8",
    "binary",
    "date",
    "timestamp",
    "decimal",
];

/// Names other systems use, and what weir calls them.
const ALIASES: &[(&str, &str)] = &[
    ("int", "int32` or `int64"),
    ("integer", "int64"),
    ("long", "int64"),
    ("bigint", "int64"),
    ("smallint", "int16"),
    ("tinyint", "int8"),
    ("float", "float32` or `float64"),
    ("real", "float32"),
    ("str", "string"),
    ("text", "string"),
    ("varchar", "string"),
    ("bytes", "binary"),
    ("datetime", "timestamp"),
    ("numeric", "decimal(precision,scale)"),
];

/// Reads a column `type`.
pub(crate) fn column_type(cx: &mut Ctx, node: &Node, what: &str) -> Option<ColumnType> {
    let text = decode::string(cx, node, &format!("the type of {what}"))?;
    match parse_type(&text) {
        Ok(ty) => Some(ty),
        Err(TypeProblem::Invalid { message, hint }) => {
            cx.error(&node.loc, format!("{what}: {message}")).hint(hint);
            None
        }
        Err(TypeProblem::Unknown) => {
            let base = text
                .split(['[', '('])
                .next()
                .unwrap_or(&text)
                .trim()
                .to_ascii_lowercase();
            let b = cx.error(
                &node.loc,
                format!("{what} has unknown type `{}`", truncate(&text)),
            );
            let alias = ALIASES.iter().find(|(a, _)| *a == base).map(|(_, t)| *t);
            match (alias, did_you_mean(&base, TYPE_NAMES.iter().copied())) {
                (Some(t), _) => b.hint(format!("weir calls this type `{t}`")),
                (None, Some(c)) if c != text => b.hint(format!("did you mean `{c}`?")),
                _ => b.hint(format!("expected one of: {}", TYPE_NAMES.join(", "))),
            }
            None
        }
    }
}

enum TypeProblem {
    Unknown,
    Invalid { message: String, hint: String },
}

fn invalid(message: impl Into<String>, hint: impl Into<String>) -> TypeProblem {
    TypeProblem::Invalid {
        message: message.into(),
        hint: hint.into(),
    }
}

/// Parses a type as written: `int64`, `timestamp[ms, UTC]`, `decimal(10,2)`.
fn parse_type(text: &str) -> Result<ColumnType, TypeProblem> {
    Ok(match text {
        "boolean" | "bool" => ColumnType::Boolean,
        "int8" => ColumnType::Int8,
        "int16" => ColumnType::Int16,
        "int32" => ColumnType::Int32,
        "int64" => ColumnType::Int64,
        "uint8" => ColumnType::UInt8,
        "uint16" => ColumnType::UInt16,
        "uint32" => ColumnType::UInt32,
        "uint64" => ColumnType::UInt64,
        "float32" => ColumnType::Float32,
        "float64" | "double" => ColumnType::Float64,
        "string" | "utf8" => ColumnType::String,
        "binary" => ColumnType::Binary,
        "date" => ColumnType::Date,
        "timestamp" => ColumnType::Timestamp {
            unit: None,
            tz: None,
        },
        "decimal" => {
            return Err(invalid(
                "`decimal` needs a precision and a scale",
                "write `decimal(precision,scale)`, e.g. `decimal(10,2)`",
            ));
        }
        _ => {
            if let Some(inner) = text
                .strip_prefix("timestamp[")
                .and_then(|t| t.strip_suffix(']'))
            {
                return timestamp(inner);
            }
            if let Some(inner) = text
                .strip_prefix("decimal(")
                .and_then(|t| t.strip_suffix(')'))
            {
                return decimal(inner);
            }
            return Err(TypeProblem::Unknown);
        }
    })
}

fn timestamp(inner: &str) -> Result<ColumnType, TypeProblem> {
    const FORM: &str =
        "write `timestamp`, `timestamp[us]` or `timestamp[us, UTC]` (units: s, ms, us, ns)";
    let (unit, tz) = match inner.split_once(',') {
        Some((unit, tz)) => (unit.trim(), Some(tz.trim())),
        None => (inner.trim(), None),
    };
    let unit = match unit {
        "s" => TimeUnit::S,
        "ms" => TimeUnit::Ms,
        "us" => TimeUnit::Us,
        "ns" => TimeUnit::Ns,
        other => {
            return Err(invalid(
                format!("unknown timestamp unit `{}`", truncate(other)),
                FORM,
            ));
        }
    };
    let tz = match tz {
        None => None,
        Some(tz) if valid_zone(tz) => Some(tz.to_owned()),
        Some(tz) => {
            return Err(invalid(
                format!("invalid time zone `{}`", truncate(tz)),
                "write `UTC`, an offset such as `+02:00`, or a zone name such as `Europe/Paris`",
            ));
        }
    };
    Ok(ColumnType::Timestamp {
        unit: Some(unit),
        tz,
    })
}

/// `UTC`, `+02:00`, or a zone-database name such as `America/New_York`.
fn valid_zone(tz: &str) -> bool {
    let b = tz.as_bytes();
    let offset = b.len() == 6
        && matches!(b.first(), Some(b'+' | b'-'))
        && b.get(3) == Some(&b':')
        && [1, 2, 4, 5]
            .iter()
            .all(|i| b.get(*i).is_some_and(u8::is_ascii_digit));
    let name = !tz.is_empty()
        && tz.len() <= 64
        && tz.split('/').all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
        });
    offset || name
}

fn decimal(inner: &str) -> Result<ColumnType, TypeProblem> {
    const FORM: &str = "write `decimal(precision,scale)` with 1 <= precision <= 38 and 0 <= scale <= precision, e.g. `decimal(10,2)`";
    let Some((p, s)) = inner.split_once(',') else {
        return Err(invalid("`decimal` needs a precision and a scale", FORM));
    };
    let (Ok(precision), Ok(scale)) = (p.trim().parse::<u8>(), s.trim().parse::<i8>()) else {
        return Err(invalid(
            format!("invalid decimal type `decimal({})`", truncate(inner)),
            FORM,
        ));
    };
    if !(1..=38).contains(&precision) {
        return Err(invalid(
            format!("decimal precision must be 1 to 38, found {precision}"),
            FORM,
        ));
    }
    if scale < 0 || scale.unsigned_abs() > precision {
        return Err(invalid(
            format!("decimal scale must be 0 to the precision ({precision}), found {scale}"),
            FORM,
        ));
    }
    Ok(ColumnType::Decimal { precision, scale })
}
#[cfg(test)]
mod tests {
    use super::*;

    fn ty(text: &str) -> Option<ColumnType> {
        parse_type(text).ok()
    }

    #[test]
    fn types() {
        assert_eq!(ty("double"), Some(ColumnType::Float64));
        assert_eq!(ty("utf8"), Some(ColumnType::String));
        assert_eq!(
            ty("timestamp[ms, UTC]"),
            Some(ColumnType::Timestamp {
                unit: Some(TimeUnit::Ms),
                tz: Some("UTC".into())
            })
        );
        assert_eq!(
            ty("timestamp[ns,+02:00]").map(|t| t.to_string()),
            Some("timestamp[ns, +02:00]".into())
        );
        assert_eq!(
            ty("decimal(10, 2)"),
            Some(ColumnType::Decimal {
                precision: 10,
                scale: 2
            })
        );
        for bad in [
            "decimal(39,2)",
            "decimal(5,6)",
            "decimal(0,0)",
            "decimal(5,-1)",
            "decimal(5)",
            "timestamp[]",
            "timestamp[us, ]",
            "timestamp[us, Europe/../x]",
            "Int64",
            "int",
        ] {
            assert!(ty(bad).is_none(), "{bad}");
        }
    }
}
