//! The per-value rules over Arrow arrays: typed loops over value slices,
//! validity bitmaps and `&str` views, pushing the rows that break a rule.
//!
//! Each loop reads a column's buffers directly (no per-value allocation or
//! scalar conversion), and skips validity checks when a column has no nulls.

use arrow::array::{Array, ArrayAccessor, AsArray, PrimitiveArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::ArrowPrimitiveType;
use regex::Regex;

use crate::error::{Result, internal};
use crate::rule::{Allowed, Bounds, Column, float_key};

/// The row list of rule `t`.
pub(crate) fn slot(fails: &mut [Vec<usize>], t: usize) -> Result<&mut Vec<usize>> {
    fails
        .get_mut(t)
        .ok_or_else(|| internal("rule index out of range"))
}

/// Rows where `array` is null.
pub(crate) fn null_rows(array: &dyn Array, out: &mut Vec<usize>) {
    if let Some(nulls) = array.nulls().filter(|n| n.null_count() > 0) {
        out.extend((0..array.len()).filter(|&i| nulls.is_null(i)));
    }
}

/// The nulls of a column, when it has any.
pub(crate) fn nulls_of(array: &dyn Array) -> Option<&NullBuffer> {
    array.nulls().filter(|n| n.null_count() > 0)
}

/// Pushes to `out` every non-null row whose value is `bad`.
#[inline]
pub(crate) fn scan<T: Copy>(
    values: &[T],
    nulls: Option<&NullBuffer>,
    mut bad: impl FnMut(T) -> bool,
    out: &mut Vec<usize>,
) {
    match nulls {
        None => {
            for (i, &v) in values.iter().enumerate() {
                if bad(v) {
                    out.push(i);
                }
            }
        }
        Some(nulls) => {
            for i in nulls.valid_indices() {
                if values.get(i).is_some_and(|&v| bad(v)) {
                    out.push(i);
                }
            }
        }
    }
}

/// [`scan`] over strings or byte strings.
#[inline]
pub(crate) fn scan_items<A: ArrayAccessor + Copy>(
    array: A,
    mut bad: impl FnMut(A::Item) -> bool,
    out: &mut Vec<usize>,
) {
    match array.nulls().filter(|n| n.null_count() > 0) {
        None => {
            for i in 0..array.len() {
                if bad(array.value(i)) {
                    out.push(i);
                }
            }
        }
        Some(nulls) => {
            for i in nulls.valid_indices() {
                if bad(array.value(i)) {
                    out.push(i);
                }
            }
        }
    }
}

pub(crate) fn prim<T: ArrowPrimitiveType>(array: &dyn Array) -> Result<&PrimitiveArray<T>> {
    array
        .as_primitive_opt::<T>()
        .ok_or_else(|| internal("array does not match its data type"))
}

/// What the `with_*` macros below refer to, imported where they expand.
pub(crate) mod names {
    pub(crate) use crate::error::internal;
    pub(crate) use crate::scan::prim;
    pub(crate) use crate::types::unit_nanos;
    pub(crate) use arrow::array::{Array, AsArray};
    pub(crate) use arrow::datatypes::{
        DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type,
        Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
        TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
        UInt64Type,
    };
}

/// Calls `$f(array: &PrimitiveArray<T>, nanos_per_unit_or_1, args...)` for
/// an integer-like array (integers, dates, timestamps, decimals).
macro_rules! with_ints {
    ($array:expr, $f:ident($($arg:expr),*)) => {{
        #[allow(unused_imports)]
        use $crate::scan::names::*;
        let a: &dyn Array = $array;
        match a.data_type() {
            DataType::Int8 => $f(prim::<Int8Type>(a)?, 1 $(, $arg)*),
            DataType::Int16 => $f(prim::<Int16Type>(a)?, 1 $(, $arg)*),
            DataType::Int32 => $f(prim::<Int32Type>(a)?, 1 $(, $arg)*),
            DataType::Int64 => $f(prim::<Int64Type>(a)?, 1 $(, $arg)*),
            DataType::UInt8 => $f(prim::<UInt8Type>(a)?, 1 $(, $arg)*),
            DataType::UInt16 => $f(prim::<UInt16Type>(a)?, 1 $(, $arg)*),
            DataType::UInt32 => $f(prim::<UInt32Type>(a)?, 1 $(, $arg)*),
            DataType::UInt64 => $f(prim::<UInt64Type>(a)?, 1 $(, $arg)*),
            DataType::Date32 => $f(prim::<Date32Type>(a)?, 1 $(, $arg)*),
            DataType::Decimal128(..) => $f(prim::<Decimal128Type>(a)?, 1 $(, $arg)*),
            DataType::Timestamp(u @ TimeUnit::Second, _) => {
                $f(prim::<TimestampSecondType>(a)?, i128::from(unit_nanos(*u)) $(, $arg)*)
            }
            DataType::Timestamp(u @ TimeUnit::Millisecond, _) => {
                $f(prim::<TimestampMillisecondType>(a)?, i128::from(unit_nanos(*u)) $(, $arg)*)
            }
            DataType::Timestamp(u @ TimeUnit::Microsecond, _) => {
                $f(prim::<TimestampMicrosecondType>(a)?, i128::from(unit_nanos(*u)) $(, $arg)*)
            }
            DataType::Timestamp(u @ TimeUnit::Nanosecond, _) => {
                $f(prim::<TimestampNanosecondType>(a)?, i128::from(unit_nanos(*u)) $(, $arg)*)
            }
            other => Err(internal(format!("{other} is not integer-like"))),
        }
    }};
}
pub(crate) use with_ints;

/// Calls `$f(array: &PrimitiveArray<T>, args...)` for a float array.
macro_rules! with_floats {
    ($array:expr, $f:ident($($arg:expr),*)) => {{
        #[allow(unused_imports)]
        use $crate::scan::names::*;
        let a: &dyn Array = $array;
        match a.data_type() {
            DataType::Float32 => $f(prim::<Float32Type>(a)? $(, $arg)*),
            DataType::Float64 => $f(prim::<Float64Type>(a)? $(, $arg)*),
            other => Err(internal(format!("{other} is not a float type"))),
        }
    }};
}
pub(crate) use with_floats;

/// Calls `$f(array: impl ArrayAccessor<Item: AsRef<[u8]>>, args...)` for a
/// string or binary array.
macro_rules! with_bytes {
    ($array:expr, $f:ident($($arg:expr),*)) => {{
        #[allow(unused_imports)]
        use $crate::scan::names::*;
        let a: &dyn Array = $array;
        let wrong = || internal("array does not match its data type");
        match a.data_type() {
            DataType::Utf8 => $f(a.as_string_opt::<i32>().ok_or_else(wrong)? $(, $arg)*),
            DataType::LargeUtf8 => $f(a.as_string_opt::<i64>().ok_or_else(wrong)? $(, $arg)*),
            DataType::Utf8View => $f(a.as_string_view_opt().ok_or_else(wrong)? $(, $arg)*),
            DataType::Binary => $f(a.as_binary_opt::<i32>().ok_or_else(wrong)? $(, $arg)*),
            DataType::LargeBinary => $f(a.as_binary_opt::<i64>().ok_or_else(wrong)? $(, $arg)*),
            DataType::BinaryView => $f(a.as_binary_view_opt().ok_or_else(wrong)? $(, $arg)*),
            other => Err(internal(format!("{other} is not a string or binary type"))),
        }
    }};
}
pub(crate) use with_bytes;

/// Calls `$f(array: impl ArrayAccessor<Item = &str>, args...)` for a string
/// array.
macro_rules! with_strings {
    ($array:expr, $f:ident($($arg:expr),*)) => {{
        #[allow(unused_imports)]
        use $crate::scan::names::*;
        let a: &dyn Array = $array;
        let wrong = || internal("array does not match its data type");
        match a.data_type() {
            DataType::Utf8 => $f(a.as_string_opt::<i32>().ok_or_else(wrong)? $(, $arg)*),
            DataType::LargeUtf8 => $f(a.as_string_opt::<i64>().ok_or_else(wrong)? $(, $arg)*),
            DataType::Utf8View => $f(a.as_string_view_opt().ok_or_else(wrong)? $(, $arg)*),
            other => Err(internal(format!("{other} is not a string type"))),
        }
    }};
}

/// Every per-value rule of one column (all but `unique` and the key).
pub(crate) fn check_column(
    col: &Column,
    array: &dyn Array,
    fails: &mut [Vec<usize>],
) -> Result<()> {
    if let Some(t) = col.not_null {
        null_rows(array, slot(fails, t)?);
    }
    if let Some((t, bounds)) = &col.range {
        let out = slot(fails, *t)?;
        match *bounds {
            Bounds::Int { lo, hi } => with_ints!(array, int_range(lo, hi, out))?,
            Bounds::Float { lo, hi } => with_floats!(array, float_range(lo, hi, out))?,
        }
    }
    if let Some((t, allowed)) = &col.allowed {
        let out = slot(fails, *t)?;
        match allowed {
            Allowed::Bool { yes, no } => bool_allowed(array, *yes, *no, out)?,
            Allowed::Int(set) => {
                with_ints!(array, int_allowed(|x: i128| set.contains(&x), out))?;
            }
            Allowed::Float(set) => {
                with_floats!(array, float_allowed(|k: i64| set.contains(&k), out))?;
            }
            Allowed::Bytes(set) => {
                with_bytes!(array, bytes_allowed(|b: &[u8]| set.contains(b), out))?;
            }
        }
    }
    if let Some((t, re)) = &col.regex {
        with_strings!(array, regex_mismatch(re, slot(fails, *t)?))?;
    }
    if let Some((t, max)) = &col.max_length {
        let out = slot(fails, *t)?;
        let max = usize::try_from(*max).unwrap_or(usize::MAX);
        if col.ty.is_string() {
            with_strings!(array, too_many_chars(max, out))?;
        } else {
            with_bytes!(array, too_many_bytes(max, out))?;
        }
    }
    Ok(())
}

/// `lo` rounded up and `hi` down to whole `factor`s, so that for a value
/// `v` in units of `factor`: `lo <= v * factor <= hi` iff `lo' <= v <= hi'`.
fn in_units(lo: i128, hi: i128, factor: i128) -> (i128, i128) {
    let factor = factor.max(1);
    let lo = lo.div_euclid(factor) + i128::from(lo.rem_euclid(factor) != 0);
    (lo, hi.div_euclid(factor))
}

fn int_range<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    factor: i128,
    lo: i128,
    hi: i128,
    out: &mut Vec<usize>,
) -> Result<()>
where
    T::Native: Into<i128>,
{
    // Bounds in the data's unit, so values are compared as they are.
    let (lo, hi) = in_units(lo, hi, factor);
    scan(
        a.values(),
        nulls_of(a),
        |v| {
            let x: i128 = v.into();
            x < lo || x > hi
        },
        out,
    );
    Ok(())
}

fn int_allowed<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    factor: i128,
    contains: impl Fn(i128) -> bool,
    out: &mut Vec<usize>,
) -> Result<()>
where
    T::Native: Into<i128>,
{
    scan(
        a.values(),
        nulls_of(a),
        |v| !contains(v.into().saturating_mul(factor)),
        out,
    );
    Ok(())
}

fn float_range<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    lo: f64,
    hi: f64,
    out: &mut Vec<usize>,
) -> Result<()>
where
    T::Native: Into<f64>,
{
    // NaN compares false with everything, so it is outside every range.
    scan(
        a.values(),
        nulls_of(a),
        |v| {
            let x: f64 = v.into();
            !(x >= lo && x <= hi)
        },
        out,
    );
    Ok(())
}

fn float_allowed<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    contains: impl Fn(i64) -> bool,
    out: &mut Vec<usize>,
) -> Result<()>
where
    T::Native: Into<f64>,
{
    scan(
        a.values(),
        nulls_of(a),
        |v| !contains(float_key(v.into())),
        out,
    );
    Ok(())
}

fn bool_allowed(array: &dyn Array, yes: bool, no: bool, out: &mut Vec<usize>) -> Result<()> {
    let a = array
        .as_boolean_opt()
        .ok_or_else(|| internal("array does not match its data type"))?;
    scan_items(a, |v| if v { !yes } else { !no }, out);
    Ok(())
}

fn bytes_allowed<A: ArrayAccessor + Copy>(
    a: A,
    contains: impl Fn(&[u8]) -> bool,
    out: &mut Vec<usize>,
) -> Result<()>
where
    A::Item: AsRef<[u8]>,
{
    scan_items(a, |v| !contains(v.as_ref()), out);
    Ok(())
}

fn regex_mismatch<'a, A: ArrayAccessor<Item = &'a str> + Copy>(
    a: A,
    re: &Regex,
    out: &mut Vec<usize>,
) -> Result<()> {
    scan_items(a, |s| !re.is_match(s), out);
    Ok(())
}

fn too_many_chars<'a, A: ArrayAccessor<Item = &'a str> + Copy>(
    a: A,
    max: usize,
    out: &mut Vec<usize>,
) -> Result<()> {
    // A string has at most as many characters as bytes: count only the
    // ones with more bytes than the limit.
    scan_items(a, |s| s.len() > max && s.chars().count() > max, out);
    Ok(())
}

fn too_many_bytes<A: ArrayAccessor + Copy>(a: A, max: usize, out: &mut Vec<usize>) -> Result<()>
where
    A::Item: AsRef<[u8]>,
{
    scan_items(a, |b| b.as_ref().len() > max, out);
    Ok(())
}
