//! Reading one field by its column's declared type, and building arrays.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, ArrowPrimitiveType, BinaryBuilder, BooleanBuilder, PrimitiveArray, StringBuilder,
};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use weir_spec::ColumnType;

use crate::error::{Result, internal};
use crate::types::{to_arrow, unit_nanos};
use crate::value::{parse_date, parse_decimal, parse_timestamp};

/// How a column's fields are read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Bool,
    Int { min: i64, max: i64 },
    UInt { max: u64 },
    F32,
    F64,
    Date,
    Timestamp { per_unit: i128, zoned: bool },
    Decimal { precision: u8, scale: i8 },
    Str,
    Bin,
}

/// Values of one column for the batch being built.
pub(crate) enum Buf {
    Bool(BooleanBuilder),
    Int(Vec<Option<i64>>),
    UInt(Vec<Option<u64>>),
    Float(Vec<Option<f64>>),
    Decimal(Vec<Option<i128>>),
    Str(StringBuilder),
    Bin(BinaryBuilder),
}

/// A parsed field.
#[derive(Clone, Copy)]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Decimal(i128),
    /// The field's bytes, taken from the record again when appended.
    Bytes,
}

pub(crate) fn kind(ty: &ColumnType) -> Kind {
    let int = |min: i64, max: i64| Kind::Int { min, max };
    match ty {
        ColumnType::Boolean => Kind::Bool,
        ColumnType::Int8 => int(i8::MIN.into(), i8::MAX.into()),
        ColumnType::Int16 => int(i16::MIN.into(), i16::MAX.into()),
        ColumnType::Int32 => int(i32::MIN.into(), i32::MAX.into()),
        ColumnType::Int64 => int(i64::MIN, i64::MAX),
        ColumnType::UInt8 => Kind::UInt {
            max: u8::MAX.into(),
        },
        ColumnType::UInt16 => Kind::UInt {
            max: u16::MAX.into(),
        },
        ColumnType::UInt32 => Kind::UInt {
            max: u32::MAX.into(),
        },
        ColumnType::UInt64 => Kind::UInt { max: u64::MAX },
        ColumnType::Float32 => Kind::F32,
        ColumnType::Float64 => Kind::F64,
        ColumnType::Date => Kind::Date,
        ColumnType::Timestamp { tz, .. } => {
            let unit = match to_arrow(ty) {
                DataType::Timestamp(unit, _) => unit,
                _ => TimeUnit::Microsecond,
            };
            Kind::Timestamp {
                per_unit: i128::from(unit_nanos(unit)),
                zoned: tz.is_some(),
            }
        }
        ColumnType::Decimal { precision, scale } => Kind::Decimal {
            precision: *precision,
            scale: *scale,
        },
        ColumnType::Binary => Kind::Bin,
        _ => Kind::Str,
    }
}

pub(crate) fn new_buf(kind: Kind, capacity: usize) -> Buf {
    match kind {
        Kind::Bool => Buf::Bool(BooleanBuilder::with_capacity(capacity)),
        Kind::Int { .. } | Kind::Date | Kind::Timestamp { .. } => {
            Buf::Int(Vec::with_capacity(capacity))
        }
        Kind::UInt { .. } => Buf::UInt(Vec::with_capacity(capacity)),
        Kind::F32 | Kind::F64 => Buf::Float(Vec::with_capacity(capacity)),
        Kind::Decimal { .. } => Buf::Decimal(Vec::with_capacity(capacity)),
        Kind::Str => Buf::Str(StringBuilder::with_capacity(capacity, capacity * 8)),
        Kind::Bin => Buf::Bin(BinaryBuilder::with_capacity(capacity, capacity * 8)),
    }
}

/// Parses one field; `Err` says what the value is not.
pub(crate) fn parse(kind: Kind, field: &[u8]) -> Result<Cell, String> {
    if field.is_empty() {
        return Ok(Cell::Null);
    }
    match kind {
        Kind::Bin => return Ok(Cell::Bytes),
        Kind::Str => {
            return std::str::from_utf8(field)
                .map(|_| Cell::Bytes)
                .map_err(|_| "not valid UTF-8".into());
        }
        _ => {}
    }
    let text = std::str::from_utf8(field).map_err(|_| "not valid UTF-8".to_owned())?;
    match kind {
        Kind::Bool => match text {
            "true" => Ok(Cell::Bool(true)),
            "false" => Ok(Cell::Bool(false)),
            _ => Err("not `true` or `false`".into()),
        },
        Kind::Int { min, max } => match text.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Cell::Int(v)),
            Ok(_) => Err(format!("out of range [{min}, {max}]")),
            Err(_) => Err("not an integer".into()),
        },
        Kind::UInt { max } => match text.parse::<u64>() {
            Ok(v) if v <= max => Ok(Cell::UInt(v)),
            Ok(_) => Err(format!("out of range [0, {max}]")),
            Err(_) => Err("not a non-negative integer".into()),
        },
        Kind::F32 => text
            .parse::<f32>()
            .map(|v| Cell::Float(v.into()))
            .map_err(|_| "not a number".into()),
        Kind::F64 => text
            .parse::<f64>()
            .map(Cell::Float)
            .map_err(|_| "not a number".into()),
        Kind::Date => parse_date(text)
            .map(|d| Cell::Int(d.into()))
            .ok_or_else(|| "not a date (YYYY-MM-DD)".into()),
        Kind::Timestamp { per_unit, zoned } => {
            let time = parse_timestamp(text).ok_or_else(|| {
                "not a timestamp (RFC 3339, e.g. 2024-01-31T12:00:00Z)".to_owned()
            })?;
            if zoned && !time.zoned {
                return Err("a timestamp without an offset, in a column with a time zone".into());
            }
            if time.nanos % per_unit != 0 {
                return Err("more precise than the column's time unit".into());
            }
            i64::try_from(time.nanos / per_unit)
                .map(Cell::Int)
                .map_err(|_| "a timestamp out of range".into())
        }
        Kind::Decimal { precision, scale } => parse_decimal(text, precision, scale)
            .map(Cell::Decimal)
            .map_err(|e| e.describe(precision, scale)),
        Kind::Str | Kind::Bin => Ok(Cell::Bytes),
    }
}

pub(crate) fn append(buf: &mut Buf, cell: Cell, field: &[u8]) -> Result<()> {
    match (buf, cell) {
        (Buf::Bool(b), Cell::Null) => b.append_null(),
        (Buf::Bool(b), Cell::Bool(v)) => b.append_value(v),
        (Buf::Int(b), Cell::Null) => b.push(None),
        (Buf::Int(b), Cell::Int(v)) => b.push(Some(v)),
        (Buf::UInt(b), Cell::Null) => b.push(None),
        (Buf::UInt(b), Cell::UInt(v)) => b.push(Some(v)),
        (Buf::Float(b), Cell::Null) => b.push(None),
        (Buf::Float(b), Cell::Float(v)) => b.push(Some(v)),
        (Buf::Decimal(b), Cell::Null) => b.push(None),
        (Buf::Decimal(b), Cell::Decimal(v)) => b.push(Some(v)),
        (Buf::Str(b), Cell::Null) => b.append_null(),
        (Buf::Str(b), Cell::Bytes) => {
            let text = std::str::from_utf8(field).map_err(|_| internal("checked UTF-8"))?;
            b.append_value(text);
        }
        (Buf::Bin(b), Cell::Null) => b.append_null(),
        (Buf::Bin(b), Cell::Bytes) => b.append_value(field),
        _ => return Err(internal("a parsed field does not match its column")),
    }
    Ok(())
}

fn narrow<T, V>(values: &[Option<V>]) -> PrimitiveArray<T>
where
    T: ArrowPrimitiveType,
    V: Copy,
    T::Native: TryFrom<V>,
{
    // Values were range-checked when parsed, so narrowing never fails.
    values
        .iter()
        .map(|v| v.and_then(|v| T::Native::try_from(v).ok()))
        .collect()
}

pub(crate) fn finish(buf: Buf, data_type: &DataType) -> Result<ArrayRef> {
    let array: ArrayRef = match (buf, data_type) {
        (Buf::Bool(mut b), _) => Arc::new(b.finish()),
        (Buf::Str(mut b), _) => Arc::new(b.finish()),
        (Buf::Bin(mut b), _) => Arc::new(b.finish()),
        (Buf::Int(v), DataType::Int8) => Arc::new(narrow::<Int8Type, _>(&v)),
        (Buf::Int(v), DataType::Int16) => Arc::new(narrow::<Int16Type, _>(&v)),
        (Buf::Int(v), DataType::Int32) => Arc::new(narrow::<Int32Type, _>(&v)),
        (Buf::Int(v), DataType::Int64) => Arc::new(narrow::<Int64Type, _>(&v)),
        (Buf::Int(v), DataType::Date32) => Arc::new(narrow::<Date32Type, _>(&v)),
        (Buf::Int(v), DataType::Timestamp(unit, tz)) => {
            let tz = tz.clone();
            match unit {
                TimeUnit::Second => {
                    Arc::new(narrow::<TimestampSecondType, _>(&v).with_timezone_opt(tz))
                }
                TimeUnit::Millisecond => {
                    Arc::new(narrow::<TimestampMillisecondType, _>(&v).with_timezone_opt(tz))
                }
                TimeUnit::Microsecond => {
                    Arc::new(narrow::<TimestampMicrosecondType, _>(&v).with_timezone_opt(tz))
                }
                TimeUnit::Nanosecond => {
                    Arc::new(narrow::<TimestampNanosecondType, _>(&v).with_timezone_opt(tz))
                }
            }
        }
        (Buf::UInt(v), DataType::UInt8) => Arc::new(narrow::<UInt8Type, _>(&v)),
        (Buf::UInt(v), DataType::UInt16) => Arc::new(narrow::<UInt16Type, _>(&v)),
        (Buf::UInt(v), DataType::UInt32) => Arc::new(narrow::<UInt32Type, _>(&v)),
        (Buf::UInt(v), DataType::UInt64) => Arc::new(narrow::<UInt64Type, _>(&v)),
        (Buf::Float(v), DataType::Float32) => Arc::new(
            v.iter()
                .map(|v| v.map(|v| v as f32))
                .collect::<PrimitiveArray<Float32Type>>(),
        ),
        (Buf::Float(v), DataType::Float64) => {
            Arc::new(v.into_iter().collect::<PrimitiveArray<Float64Type>>())
        }
        (Buf::Decimal(v), DataType::Decimal128(p, s)) => Arc::new(
            v.into_iter()
                .collect::<PrimitiveArray<Decimal128Type>>()
                .with_precision_and_scale(*p, *s)?,
        ),
        (_, other) => return Err(internal(format!("no builder for {other}"))),
    };
    Ok(array)
}
