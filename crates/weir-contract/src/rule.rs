//! Rules, and a contract's constraints compiled into typed checks.

use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::Serialize;
use weir_spec::{ColumnContract, ColumnType, Contract, Literal};

use crate::error::{Error, Result};
use crate::hash::{ByteValues, FastSet, fast_set};
use crate::value::{parse_date, parse_decimal, parse_timestamp};

/// A rule a row can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rule {
    /// A null in a column declared `nullable: false`.
    NotNull,
    /// A non-null value seen before, in this batch or an earlier one.
    Unique,
    /// A null in a key column, or a key tuple seen before.
    PrimaryKey,
    /// A value outside the inclusive `range` (NaN is outside every range).
    Range,
    /// A value not among the `allowed` ones.
    Allowed,
    /// A string the `regex` does not match.
    Regex,
    /// A value longer than `max_length` (characters for strings, bytes for
    /// binary).
    MaxLength,
}

impl Rule {
    /// The rule's name as written in a contract (`not_null`, `max_length`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Rule::NotNull => "not_null",
            Rule::Unique => "unique",
            Rule::PrimaryKey => "primary_key",
            Rule::Range => "range",
            Rule::Allowed => "allowed",
            Rule::Regex => "regex",
            Rule::MaxLength => "max_length",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule of one column: what a bad row is reported as. For
/// [`Rule::PrimaryKey`], `column` is the key columns joined with `,`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ColumnRule {
    /// The column (or key columns).
    pub column: String,
    /// The rule.
    pub rule: Rule,
}

/// `column:rule`, as in the quarantine's `weir_violations` column.
impl fmt::Display for ColumnRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.column, self.rule)
    }
}

/// A rule with what a report says about it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) rule: ColumnRule,
    /// `range [18, 100]`, or just the rule's name for a sensitive column.
    pub(crate) detail: String,
    /// Whether example values may be shown.
    pub(crate) show_values: bool,
    /// The columns whose values make an example (indices into the column
    /// list).
    pub(crate) columns: Vec<usize>,
}

/// Inclusive bounds in a column's ordinal domain: the integer for integer
/// types, days for dates, nanoseconds since the epoch for timestamps, the
/// unscaled integer for decimals; or floats.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bounds {
    Int { lo: i128, hi: i128 },
    Float { lo: f64, hi: f64 },
}

/// Allowed values, in the column's ordinal domain.
#[derive(Debug, Clone)]
pub(crate) enum Allowed {
    Bool {
        yes: bool,
        no: bool,
    },
    Int(FastSet<i128>),
    /// [`float_key`]s.
    Float(FastSet<i64>),
    Bytes(ByteValues),
}

/// A column's constraints, compiled. Each rule carries its index in the
/// checker's target list.
#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) ty: ColumnType,
    pub(crate) not_null: Option<usize>,
    pub(crate) unique: Option<usize>,
    pub(crate) range: Option<(usize, Bounds)>,
    pub(crate) allowed: Option<(usize, Allowed)>,
    pub(crate) regex: Option<(usize, Regex)>,
    pub(crate) max_length: Option<(usize, u64)>,
}

/// The compiled primary key.
#[derive(Debug)]
pub(crate) struct PrimaryKey {
    /// Indices into the column list, in key order.
    pub(crate) columns: Vec<usize>,
    pub(crate) target: usize,
}

/// The largest compiled regex program.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A float as an integer whose order is the float's total order, with
/// `-0.0` equal to `0.0` and every NaN equal to every other.
#[inline]
pub(crate) fn float_key(v: f64) -> i64 {
    let v = if v == 0.0 {
        0.0
    } else if v.is_nan() {
        f64::NAN
    } else {
        v
    };
    let bits = v.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// Compiles `contract`: its columns, its rule targets and its key.
pub(crate) fn compile(
    contract: &Contract,
) -> Result<(Vec<Column>, Vec<Target>, Option<PrimaryKey>)> {
    let mut columns: Vec<Column> = Vec::with_capacity(contract.columns.len());
    let mut targets = Vec::new();
    for c in &contract.columns {
        if columns.iter().any(|seen| seen.name == c.name) {
            return Err(contract_error(&c.name, Rule::NotNull, "declared twice"));
        }
        let index = columns.len();
        columns.push(compile_column(c, index, &mut targets)?);
    }
    let mut key = None;
    if !contract.primary_key.is_empty() {
        let joined = contract.primary_key.join(",");
        let mut indices = Vec::with_capacity(contract.primary_key.len());
        for name in &contract.primary_key {
            let Some(i) = columns.iter().position(|c| &c.name == name) else {
                let reason = format!("key column `{name}` is not declared");
                return Err(contract_error(&joined, Rule::PrimaryKey, reason));
            };
            if indices.contains(&i) {
                let reason = format!("key column `{name}` is listed twice");
                return Err(contract_error(&joined, Rule::PrimaryKey, reason));
            }
            indices.push(i);
        }
        let show_values = contract
            .primary_key
            .iter()
            .all(|n| !contract.is_sensitive(n));
        let names: Vec<String> = contract
            .primary_key
            .iter()
            .map(|n| format!("`{n}`"))
            .collect();
        let detail = format!("primary key ({})", names.join(", "));
        let target = push(
            &mut targets,
            indices.clone(),
            &joined,
            Rule::PrimaryKey,
            detail,
            show_values,
        );
        key = Some(PrimaryKey {
            columns: indices,
            target,
        });
    }
    Ok((columns, targets, key))
}

fn push(
    targets: &mut Vec<Target>,
    columns: Vec<usize>,
    column: &str,
    rule: Rule,
    detail: String,
    show_values: bool,
) -> usize {
    targets.push(Target {
        rule: ColumnRule {
            column: column.to_owned(),
            rule,
        },
        detail,
        show_values,
        columns,
    });
    targets.len() - 1
}

fn contract_error(column: &str, rule: Rule, reason: impl Into<String>) -> Error {
    Error::Contract {
        column: column.to_owned(),
        rule,
        reason: reason.into(),
    }
}

fn compile_column(c: &ColumnContract, index: usize, targets: &mut Vec<Target>) -> Result<Column> {
    let name = c.name.as_str();
    let show = !c.sensitive;
    // A sensitive column's rule parameters stay out of reports and errors.
    let detail = |full: String, rule: Rule| if show { full } else { rule.name().to_owned() };
    let fail = |rule: Rule, reason: String| contract_error(name, rule, reason);
    let mut add = |rule: Rule, detail: String, show_values: bool| {
        push(targets, vec![index], name, rule, detail, show_values)
    };
    let mut col = Column {
        name: c.name.clone(),
        ty: c.data_type.clone(),
        not_null: None,
        unique: None,
        range: None,
        allowed: None,
        regex: None,
        max_length: None,
    };
    if !c.nullable {
        col.not_null = Some(add(Rule::NotNull, "not_null".into(), false));
    }
    if c.unique {
        col.unique = Some(add(Rule::Unique, "unique".into(), show));
    }
    if let Some(range) = &c.range {
        let bounds = bounds(&c.data_type, range.min.as_ref(), range.max.as_ref(), show)
            .map_err(|r| fail(Rule::Range, r))?;
        let show_bound =
            |b: &Option<Literal>| b.as_ref().map_or("..".to_owned(), |l| l.to_string());
        let full = format!(
            "range [{}, {}]",
            show_bound(&range.min),
            show_bound(&range.max)
        );
        let t = add(Rule::Range, detail(full, Rule::Range), show);
        col.range = Some((t, bounds));
    }
    if let Some(values) = &c.allowed {
        let allowed = allowed(&c.data_type, values, show).map_err(|r| fail(Rule::Allowed, r))?;
        let full = if values.len() <= 10 {
            let list: Vec<String> = values.iter().map(ToString::to_string).collect();
            format!("allowed [{}]", list.join(", "))
        } else {
            format!("allowed ({} values)", values.len())
        };
        let t = add(Rule::Allowed, detail(full, Rule::Allowed), show);
        col.allowed = Some((t, allowed));
    }
    if let Some(pattern) = &c.regex {
        if !c.data_type.is_string() {
            return Err(fail(Rule::Regex, "applies to string columns only".into()));
        }
        let re = RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| match show {
                true => fail(Rule::Regex, format!("does not compile: {e}")),
                false => fail(Rule::Regex, "does not compile".into()),
            })?;
        let full = format!("regex {pattern:?}");
        let t = add(Rule::Regex, detail(full, Rule::Regex), show);
        col.regex = Some((t, re));
    }
    if let Some(max) = c.max_length {
        if !matches!(c.data_type, ColumnType::String | ColumnType::Binary) {
            return Err(fail(
                Rule::MaxLength,
                "applies to string and binary columns only".into(),
            ));
        }
        let full = format!("max_length {max}");
        let t = add(Rule::MaxLength, full, show);
        col.max_length = Some((t, max));
    }
    Ok(col)
}

type Fit<T> = std::result::Result<T, String>;

/// `lit` for a message, or a stand-in when the column is sensitive.
fn shown(lit: &Literal, show: bool) -> String {
    if show {
        lit.to_string()
    } else {
        "a value (withheld: sensitive column)".to_owned()
    }
}

/// `lit` in the ordinal domain of an integer-like column type.
fn ordinal(ty: &ColumnType, lit: &Literal, show: bool) -> Fit<i128> {
    let v = shown(lit, show);
    match (ty, lit) {
        (
            ColumnType::Int8
            | ColumnType::Int16
            | ColumnType::Int32
            | ColumnType::Int64
            | ColumnType::UInt8
            | ColumnType::UInt16
            | ColumnType::UInt32
            | ColumnType::UInt64,
            Literal::Int(n),
        ) => Ok(i128::from(*n)),
        (ColumnType::Date, Literal::Text(t)) => parse_date(t)
            .map(i128::from)
            .ok_or_else(|| format!("{v} is not a date `YYYY-MM-DD`")),
        (ColumnType::Timestamp { tz, .. }, Literal::Text(t)) => match parse_timestamp(t) {
            Some(time) if time.zoned || tz.is_none() => Ok(time.nanos),
            Some(_) => Err(format!(
                "{v} needs an offset (`Z` or `+HH:MM`): the column's times are zoned"
            )),
            None => Err(format!("{v} is not an RFC 3339 timestamp")),
        },
        (ColumnType::Decimal { precision, scale }, lit) => {
            let text = match lit {
                Literal::Int(n) => n.to_string(),
                Literal::Float(f) => f.to_string(),
                Literal::Text(t) => t.clone(),
                Literal::Bool(_) => return Err(format!("{v} is not a decimal number")),
            };
            parse_decimal(&text, *precision, *scale)
                .map_err(|e| format!("{v}: {}", e.describe(*precision, *scale)))
        }
        _ => Err(format!("{v} is not a value of type {ty}")),
    }
}

fn float(lit: &Literal, show: bool) -> Fit<f64> {
    match lit {
        #[allow(clippy::cast_precision_loss)]
        Literal::Int(n) => Ok(*n as f64),
        Literal::Float(f) if !f.is_nan() => Ok(*f),
        _ => Err(format!("{} is not a number", shown(lit, show))),
    }
}

fn is_float(ty: &ColumnType) -> bool {
    matches!(ty, ColumnType::Float32 | ColumnType::Float64)
}

fn bounds(
    ty: &ColumnType,
    min: Option<&Literal>,
    max: Option<&Literal>,
    show: bool,
) -> Fit<Bounds> {
    if min.is_none() && max.is_none() {
        return Err("has no bound".into());
    }
    if !ty.is_ordered() {
        return Err(format!("does not apply to type {ty}"));
    }
    let b = if is_float(ty) {
        Bounds::Float {
            lo: min
                .map(|l| float(l, show))
                .transpose()?
                .unwrap_or(f64::NEG_INFINITY),
            hi: max
                .map(|l| float(l, show))
                .transpose()?
                .unwrap_or(f64::INFINITY),
        }
    } else {
        Bounds::Int {
            lo: min
                .map(|l| ordinal(ty, l, show))
                .transpose()?
                .unwrap_or(i128::MIN),
            hi: max
                .map(|l| ordinal(ty, l, show))
                .transpose()?
                .unwrap_or(i128::MAX),
        }
    };
    let empty = match b {
        Bounds::Int { lo, hi } => lo > hi,
        Bounds::Float { lo, hi } => lo > hi,
    };
    if empty {
        return Err("min is greater than max".into());
    }
    Ok(b)
}

fn allowed(ty: &ColumnType, values: &[Literal], show: bool) -> Fit<Allowed> {
    if values.is_empty() {
        return Err("lists no value".into());
    }
    Ok(match ty {
        ColumnType::Boolean => {
            let (mut yes, mut no) = (false, false);
            for v in values {
                match v {
                    Literal::Bool(true) => yes = true,
                    Literal::Bool(false) => no = true,
                    _ => return Err(format!("{} is not a boolean", shown(v, show))),
                }
            }
            Allowed::Bool { yes, no }
        }
        ColumnType::String | ColumnType::Binary => {
            let mut texts = Vec::with_capacity(values.len());
            for v in values {
                let Literal::Text(t) = v else {
                    return Err(format!("{} is not a string", shown(v, show)));
                };
                texts.push(t.as_bytes());
            }
            Allowed::Bytes(ByteValues::new(texts))
        }
        ty if is_float(ty) => {
            let mut set = fast_set();
            for v in values {
                set.insert(float_key(float(v, show)?));
            }
            Allowed::Float(set)
        }
        ty => {
            let mut set = fast_set();
            for v in values {
                set.insert(ordinal(ty, v, show)?);
            }
            Allowed::Int(set)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_keys_order_and_identify() {
        let xs = [
            f64::NEG_INFINITY,
            -1.5,
            -0.0,
            0.0,
            1e-300,
            2.0,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(float_key(w[0]) <= float_key(w[1]), "{w:?}");
        }
        assert_eq!(float_key(-0.0), float_key(0.0));
        assert_eq!(float_key(f64::NAN), float_key(-f64::NAN));
        assert!(float_key(f64::INFINITY) < float_key(f64::NAN));
    }
}
