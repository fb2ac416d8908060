//! Data contracts: what every row of a dataset must satisfy.
//!
//! A contract is declared on a dataset, inline (`contract: { ... }`) or in a
//! file the dataset references (`contract: contracts/customers.yaml`,
//! relative to the pipeline file). This module holds the validated model;
//! `weir-contract` checks Arrow data against it.
//!
//! # Guarantees (of a contract inside a validated [`crate::Pipeline`])
//! - Column names are unique and non-empty; every `primary_key` column is
//!   declared and not nullable.
//! - Each constraint fits its column's type: `range` on numbers, dates and
//!   timestamps, `regex` and `max_length` on strings (`max_length` also on
//!   binary), `allowed` values of the column's type.
//! - Every `range` has a bound, and `min <= max` where the two compare;
//!   `allowed` holds 1 to 10,000 distinct values.
//! - A `regex` compiles with the `regex` crate under its default size
//!   limits (the same engine weir checks data with).
//! - With `on_violation: quarantine`, the quarantine dataset is declared,
//!   is not the contracted dataset, does not quarantine itself, and is an
//!   output of every stage that can send rows to it.
//!
//! The YAML reference is `docs/contracts.md`.

use serde::Serialize;

/// The type of a contracted column. Spelled in YAML as the lower-case names
/// below (`int64`, `string`, `timestamp[us]`, `decimal(10,2)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ColumnType {
    /// `boolean` (or `bool`).
    Boolean,
    /// `int8`.
    Int8,
    /// `int16`.
    Int16,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `uint8`.
    UInt8,
    /// `uint16`.
    UInt16,
    /// `uint32`.
    UInt32,
    /// `uint64`.
    UInt64,
    /// `float32`.
    Float32,
    /// `float64` (or `double`).
    Float64,
    /// `string` (or `utf8`): any Arrow string layout (Utf8, LargeUtf8, Utf8View).
    String,
    /// `binary`: any Arrow binary layout.
    Binary,
    /// `date`: days since the epoch (Arrow Date32).
    Date,
    /// `timestamp`, `timestamp[us]`, `timestamp[ms, UTC]`: without a unit,
    /// any unit matches; without a zone, the data must have none.
    Timestamp {
        /// Required unit, if any.
        unit: Option<TimeUnit>,
        /// Required time zone (`UTC`, `+02:00`), if any.
        tz: Option<String>,
    },
    /// `decimal(precision, scale)` (Arrow Decimal128).
    Decimal {
        /// Total digits, 1 to 38.
        precision: u8,
        /// Digits after the point, at most `precision`.
        scale: i8,
    },
}

impl ColumnType {
    /// Whether `range` applies to this type.
    #[must_use]
    pub fn is_ordered(&self) -> bool {
        !matches!(
            self,
            ColumnType::Boolean | ColumnType::String | ColumnType::Binary
        )
    }

    /// Whether this is `string`.
    #[must_use]
    pub fn is_string(&self) -> bool {
        matches!(self, ColumnType::String)
    }
}

/// The type as written in YAML: `int64`, `timestamp[us, UTC]`, `decimal(10,2)`.
impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            ColumnType::Boolean => "boolean",
            ColumnType::Int8 => "int8",
            ColumnType::Int16 => "int16",
            ColumnType::Int32 => "int32",
            ColumnType::Int64 => "int64",
            ColumnType::UInt8 => "uint8",
            ColumnType::UInt16 => "uint16",
            ColumnType::UInt32 => "uint32",
            ColumnType::UInt64 => "uint64",
            ColumnType::Float32 => "float32",
            ColumnType::Float64 => "float64",
            ColumnType::String => "string",
            ColumnType::Binary => "binary",
            ColumnType::Date => "date",
            ColumnType::Timestamp { unit, tz } => {
                return match (unit, tz) {
                    (None, _) => f.write_str("timestamp"),
                    (Some(unit), None) => write!(f, "timestamp[{}]", unit.name()),
                    (Some(unit), Some(tz)) => write!(f, "timestamp[{}, {tz}]", unit.name()),
                };
            }
            ColumnType::Decimal { precision, scale } => {
                return write!(f, "decimal({precision},{scale})");
            }
        };
        f.write_str(name)
    }
}

/// A timestamp unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Seconds.
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

impl TimeUnit {
    /// The unit as written in YAML: `s`, `ms`, `us` or `ns`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::S => "s",
            TimeUnit::Ms => "ms",
            TimeUnit::Us => "us",
            TimeUnit::Ns => "ns",
        }
    }
}

/// A literal in a contract (`range` bounds, `allowed` values), as written.
///
/// Numbers keep the type YAML gave them; dates and timestamps are written
/// as strings (`2024-01-31`, `2024-01-31T12:00:00Z`) and checked against the
/// column type by the loader.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Literal {
    /// A whole number.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A string (also dates, timestamps and decimals).
    Text(String),
    /// `true` / `false`.
    Bool(bool),
}

impl PartialEq for Literal {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Literal::Int(a), Literal::Int(b)) => a == b,
            (Literal::Float(a), Literal::Float(b)) => a.to_bits() == b.to_bits(),
            (Literal::Text(a), Literal::Text(b)) => a == b,
            (Literal::Bool(a), Literal::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Literal {}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Literal::Int(v) => write!(f, "{v}"),
            Literal::Float(v) => write!(f, "{v}"),
            Literal::Text(v) => write!(f, "{v:?}"),
            Literal::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// An inclusive range; at least one bound is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    /// Smallest allowed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Literal>,
    /// Largest allowed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Literal>,
}

/// The contract of one column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnContract {
    /// Column name as it appears in the data (1 to 256 bytes).
    pub name: String,
    /// Declared type.
    #[serde(rename = "type")]
    pub data_type: ColumnType,
    /// Whether nulls are allowed (default `true`; `false` for key columns).
    pub nullable: bool,
    /// Whether values of this column are kept out of reports, logs and
    /// errors (PII). Counts and row numbers are still reported.
    pub sensitive: bool,
    /// Every non-null value appears once.
    pub unique: bool,
    /// Values must lie in this inclusive range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    /// Values must be one of these (1 to 10,000 values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Literal>>,
    /// Values must match this regular expression (Rust `regex` syntax,
    /// unanchored unless it says `^...$`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Longest value, in characters for strings and bytes for binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
}

/// What happens to rows that break a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum OnViolation {
    /// The stage fails with a report (the default).
    Fail,
    /// Bad rows go to `dataset` (with two extra columns, `weir_row` and
    /// `weir_violations`); good rows continue.
    Quarantine {
        /// The quarantine dataset.
        dataset: String,
    },
}

/// A validated data contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contract {
    /// Columns, in declared order.
    pub columns: Vec<ColumnContract>,
    /// Columns whose combined values identify a row: unique together and
    /// never null. Empty: no primary key.
    pub primary_key: Vec<String>,
    /// Whether columns not declared here are refused.
    pub strict: bool,
    /// What happens to bad rows.
    pub on_violation: OnViolation,
    /// Where the contract was written: `inline` or the file's path as given.
    pub source: String,
}

impl Contract {
    /// The column called `name`.
    #[must_use]
    pub fn column(&self, name: &str) -> Option<&ColumnContract> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The quarantine dataset, if bad rows are quarantined.
    #[must_use]
    pub fn quarantine(&self) -> Option<&str> {
        match &self.on_violation {
            OnViolation::Quarantine { dataset } => Some(dataset),
            OnViolation::Fail => None,
        }
    }

    /// Every `(column, pattern)` with a regex.
    pub fn regexes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.columns
            .iter()
            .filter_map(|c| c.regex.as_deref().map(|r| (c.name.as_str(), r)))
    }

    /// Whether `column` is marked sensitive. Undeclared columns are treated
    /// as sensitive: nothing is known about them.
    #[must_use]
    pub fn is_sensitive(&self, column: &str) -> bool {
        self.column(column).is_none_or(|c| c.sensitive)
    }
}
