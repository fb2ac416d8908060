//! Contract column types and Arrow data types.
//!
//! [`to_arrow`] is the type weir builds for a declared column (the CSV
//! reader uses it); [`fits`] is whether data of an Arrow type satisfies a
//! declaration. They differ where one declaration admits several Arrow
//! layouts:
//!
//! | declared | built | fits |
//! |---|---|---|
//! | integers, floats, `boolean` | same width | exactly that width |
//! | `string` | `Utf8` | `Utf8`, `LargeUtf8`, `Utf8View` |
//! | `binary` | `Binary` | `Binary`, `LargeBinary`, `BinaryView` |
//! | `date` | `Date32` | `Date32` |
//! | `timestamp` | `Timestamp(µs)` | any unit, no time zone |
//! | `timestamp[ms]` | `Timestamp(ms)` | that unit, no time zone |
//! | `timestamp[us, UTC]` | `Timestamp(µs, "UTC")` | that unit and zone |
//! | `decimal(p,s)` | `Decimal128(p, s)` | exactly `Decimal128(p, s)` |
//!
//! Time zones compare as written: `UTC` and `+00:00` differ. A declaration
//! without a zone admits only data without one (wall-clock times), since
//! comparing a zoned bound with unzoned data, or the reverse, silently
//! shifts it. Dictionary- and run-encoded columns do not fit any
//! declaration: decode them first.

use arrow::datatypes::{DataType, TimeUnit as ArrowUnit};
use weir_spec::{ColumnType, TimeUnit};

/// The Arrow type weir builds for a column declared as `ty`.
#[must_use]
pub fn to_arrow(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Int8 => DataType::Int8,
        ColumnType::Int16 => DataType::Int16,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::UInt8 => DataType::UInt8,
        ColumnType::UInt16 => DataType::UInt16,
        ColumnType::UInt32 => DataType::UInt32,
        ColumnType::UInt64 => DataType::UInt64,
        ColumnType::Float32 => DataType::Float32,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::String => DataType::Utf8,
        ColumnType::Binary => DataType::Binary,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp { unit, tz } => DataType::Timestamp(
            unit.map_or(ArrowUnit::Microsecond, arrow_unit),
            tz.as_deref().map(Into::into),
        ),
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        // `ColumnType` is non-exhaustive; a type this crate does not know
        // yet is built as nothing, and `fits` refuses all data for it.
        _ => DataType::Null,
    }
}

/// Whether data of Arrow type `data` satisfies the declaration `ty` (see the
/// module table).
#[must_use]
pub fn fits(ty: &ColumnType, data: &DataType) -> bool {
    match (ty, data) {
        (ColumnType::String, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => true,
        (ColumnType::Binary, DataType::Binary | DataType::LargeBinary | DataType::BinaryView) => {
            true
        }
        (ColumnType::Timestamp { unit, tz }, DataType::Timestamp(data_unit, data_tz)) => {
            unit.is_none_or(|u| arrow_unit(u) == *data_unit) && tz.as_deref() == data_tz.as_deref()
        }
        (
            ColumnType::Boolean
            | ColumnType::Int8
            | ColumnType::Int16
            | ColumnType::Int32
            | ColumnType::Int64
            | ColumnType::UInt8
            | ColumnType::UInt16
            | ColumnType::UInt32
            | ColumnType::UInt64
            | ColumnType::Float32
            | ColumnType::Float64
            | ColumnType::Date
            | ColumnType::Decimal { .. },
            _,
        ) => to_arrow(ty) == *data,
        _ => false,
    }
}

/// The Arrow unit of a contract unit.
pub(crate) fn arrow_unit(unit: TimeUnit) -> ArrowUnit {
    match unit {
        TimeUnit::S => ArrowUnit::Second,
        TimeUnit::Ms => ArrowUnit::Millisecond,
        TimeUnit::Us => ArrowUnit::Microsecond,
        TimeUnit::Ns => ArrowUnit::Nanosecond,
    }
}

/// Nanoseconds in one `unit`.
pub(crate) fn unit_nanos(unit: ArrowUnit) -> i64 {
    match unit {
        ArrowUnit::Second => 1_000_000_000,
        ArrowUnit::Millisecond => 1_000_000,
        ArrowUnit::Microsecond => 1_000,
        ArrowUnit::Nanosecond => 1,
    }
}

/// An Arrow type spelled like a contract type where one matches
/// (`int64`, `timestamp[us, UTC]`), with the layout where several do
/// (`large_utf8`), else Arrow's own spelling.
pub(crate) fn arrow_name(data: &DataType) -> String {
    let unit = |u: &ArrowUnit| match u {
        ArrowUnit::Second => "s",
        ArrowUnit::Millisecond => "ms",
        ArrowUnit::Microsecond => "us",
        ArrowUnit::Nanosecond => "ns",
    };
    let name = match data {
        DataType::Boolean => "boolean",
        DataType::Int8 => "int8",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::UInt8 => "uint8",
        DataType::UInt16 => "uint16",
        DataType::UInt32 => "uint32",
        DataType::UInt64 => "uint64",
        DataType::Float32 => "float32",
        DataType::Float64 => "float64",
        DataType::Utf8 => "utf8",
        DataType::LargeUtf8 => "large_utf8",
        DataType::Utf8View => "utf8_view",
        DataType::Binary => "binary",
        DataType::LargeBinary => "large_binary",
        DataType::BinaryView => "binary_view",
        DataType::Date32 => "date32",
        DataType::Timestamp(u, None) => return format!("timestamp[{}]", unit(u)),
        DataType::Timestamp(u, Some(tz)) => return format!("timestamp[{}, {tz}]", unit(u)),
        DataType::Decimal128(p, s) => return format!("decimal({p},{s})"),
        other => return format!("{other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(unit: Option<TimeUnit>, tz: Option<&str>) -> ColumnType {
        ColumnType::Timestamp {
            unit,
            tz: tz.map(str::to_owned),
        }
    }

    #[test]
    fn built_types_fit_their_declaration() {
        let all = [
            ColumnType::Boolean,
            ColumnType::Int8,
            ColumnType::Int16,
            ColumnType::Int32,
            ColumnType::Int64,
            ColumnType::UInt8,
            ColumnType::UInt16,
            ColumnType::UInt32,
            ColumnType::UInt64,
            ColumnType::Float32,
            ColumnType::Float64,
            ColumnType::String,
            ColumnType::Binary,
            ColumnType::Date,
            ts(None, None),
            ts(Some(TimeUnit::Ms), Some("UTC")),
            ColumnType::Decimal {
                precision: 10,
                scale: 2,
            },
        ];
        for ty in &all {
            assert!(fits(ty, &to_arrow(ty)), "{ty}");
        }
        assert_eq!(
            to_arrow(&ts(None, Some("UTC"))),
            DataType::Timestamp(ArrowUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn widths_are_exact() {
        assert!(!fits(&ColumnType::Int64, &DataType::Int32));
        assert!(!fits(&ColumnType::Int32, &DataType::Int64));
        assert!(!fits(&ColumnType::UInt64, &DataType::Int64));
        assert!(!fits(&ColumnType::Float64, &DataType::Float32));
        assert!(!fits(&ColumnType::Date, &DataType::Date64));
        let dec = ColumnType::Decimal {
            precision: 10,
            scale: 2,
        };
        assert!(!fits(&dec, &DataType::Decimal128(12, 2)));
        assert!(!fits(&dec, &DataType::Decimal128(10, 3)));
    }

    #[test]
    fn string_and_binary_layouts() {
        for dt in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
            assert!(fits(&ColumnType::String, &dt));
            assert!(!fits(&ColumnType::Binary, &dt));
        }
        for dt in [
            DataType::Binary,
            DataType::LargeBinary,
            DataType::BinaryView,
        ] {
            assert!(fits(&ColumnType::Binary, &dt));
            assert!(!fits(&ColumnType::String, &dt));
        }
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert!(!fits(&ColumnType::String, &dict));
    }

    #[test]
    fn timestamps_unit_and_zone() {
        let us = |tz: Option<&str>| DataType::Timestamp(ArrowUnit::Microsecond, tz.map(Into::into));
        let ns = DataType::Timestamp(ArrowUnit::Nanosecond, None);
        assert!(fits(&ts(None, None), &us(None)));
        assert!(fits(&ts(None, None), &ns));
        assert!(
            !fits(&ts(None, None), &us(Some("UTC"))),
            "zone not declared"
        );
        assert!(fits(&ts(None, Some("UTC")), &us(Some("UTC"))));
        assert!(!fits(&ts(None, Some("UTC")), &us(None)));
        assert!(!fits(&ts(None, Some("UTC")), &us(Some("+00:00"))));
        assert!(fits(&ts(Some(TimeUnit::Us), None), &us(None)));
        assert!(!fits(&ts(Some(TimeUnit::Us), None), &ns));
        assert!(!fits(&ts(None, None), &DataType::Int64));
    }

    #[test]
    fn names() {
        assert_eq!(arrow_name(&DataType::LargeUtf8), "large_utf8");
        assert_eq!(
            arrow_name(&DataType::Timestamp(
                ArrowUnit::Microsecond,
                Some("UTC".into())
            )),
            "timestamp[us, UTC]"
        );
        assert_eq!(arrow_name(&DataType::Decimal128(10, 2)), "decimal(10,2)");
    }
}
