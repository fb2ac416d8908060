//! Duplicate detection for `unique` and the primary key, across batches.

use arrow::array::{Array, ArrayAccessor, AsArray, PrimitiveArray};
use arrow::datatypes::{ArrowPrimitiveType, DataType};
use weir_spec::ColumnType;

use crate::error::{Result, internal};
use crate::hash::{BytesSet, KeySet};
use crate::rule::float_key;
use crate::scan::{null_rows, nulls_of, scan, scan_items, with_bytes, with_floats, with_ints};

/// Values seen in a `unique` column or a primary key.
pub(crate) enum Seen {
    /// Integers up to 64 bits, dates, booleans, floats ([`float_key`]).
    Small(KeySet<i64>),
    /// `uint64`, timestamps (nanoseconds), decimals.
    Wide(KeySet<i128>),
    /// Strings, binary, encoded key tuples.
    Bytes(BytesSet),
}

impl Seen {
    pub(crate) fn for_type(ty: &ColumnType) -> Seen {
        match ty {
            ColumnType::UInt64 | ColumnType::Timestamp { .. } | ColumnType::Decimal { .. } => {
                Seen::Wide(KeySet::new())
            }
            ColumnType::String | ColumnType::Binary => Seen::Bytes(BytesSet::new()),
            _ => Seen::Small(KeySet::new()),
        }
    }
}

/// Rows of `array` whose non-null value is already in `seen` (earlier in
/// this batch or in an earlier one); adds the others.
pub(crate) fn duplicates(array: &dyn Array, seen: &mut Seen, out: &mut Vec<usize>) -> Result<()> {
    match (array.data_type(), seen) {
        (DataType::Boolean, Seen::Small(set)) => {
            let a = array
                .as_boolean_opt()
                .ok_or_else(|| internal("array does not match its data type"))?;
            scan_items(a, |v| !set.insert(i64::from(v)), out);
            Ok(())
        }
        (DataType::Float32 | DataType::Float64, Seen::Small(set)) => {
            with_floats!(array, float_dups(set, out))
        }
        (_, Seen::Small(set)) => with_ints!(array, small_dups(set, out)),
        (_, Seen::Wide(set)) => with_ints!(array, wide_dups(set, out)),
        (_, Seen::Bytes(set)) => with_bytes!(array, bytes_dups(set, out)),
    }
}

fn small_dups<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    _factor: i128,
    set: &mut KeySet<i64>,
    out: &mut Vec<usize>,
) -> Result<()>
where
    T::Native: Into<i128>,
{
    // `Seen::Small` is only chosen for types of 64 bits or fewer.
    scan(
        a.values(),
        nulls_of(a),
        |v| {
            let x: i128 = v.into();
            !set.insert(x as i64)
        },
        out,
    );
    Ok(())
}

fn wide_dups<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    factor: i128,
    set: &mut KeySet<i128>,
    out: &mut Vec<usize>,
) -> Result<()>
where
    T::Native: Into<i128>,
{
    scan(
        a.values(),
        nulls_of(a),
        |v| !set.insert(v.into().saturating_mul(factor)),
        out,
    );
    Ok(())
}

fn float_dups<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    set: &mut KeySet<i64>,
    out: &mut Vec<usize>,
) -> Result<()>
where
    T::Native: Into<f64>,
{
    scan(
        a.values(),
        nulls_of(a),
        |v| !set.insert(float_key(v.into())),
        out,
    );
    Ok(())
}

fn bytes_dups<A: ArrayAccessor + Copy>(a: A, set: &mut BytesSet, out: &mut Vec<usize>) -> Result<()>
where
    A::Item: AsRef<[u8]>,
{
    scan_items(a, |b| !set.insert(b.as_ref()), out);
    Ok(())
}

/// Rows whose key tuple has a null or was seen before.
pub(crate) fn tuple_violations(
    arrays: &[&dyn Array],
    n: usize,
    seen: &mut BytesSet,
    out: &mut Vec<usize>,
) -> Result<()> {
    let mut keys: Vec<Vec<u8>> = vec![Vec::new(); n];
    let mut has_null = vec![false; n];
    for array in arrays {
        let mut nulls = Vec::new();
        null_rows(*array, &mut nulls);
        for i in nulls {
            if let Some(h) = has_null.get_mut(i) {
                *h = true;
            }
        }
        encode(*array, &mut keys)?;
    }
    for (i, (key, null)) in keys.iter().zip(&has_null).enumerate() {
        if *null || !seen.insert(key) {
            out.push(i);
        }
    }
    Ok(())
}

/// Appends each row's value of `array`, encoded so that tuples of one key's
/// column types compare equal exactly when their values do. Nulls append
/// nothing (their rows are violations anyway).
fn encode(array: &dyn Array, keys: &mut [Vec<u8>]) -> Result<()> {
    match array.data_type() {
        DataType::Boolean => {
            let a = array
                .as_boolean_opt()
                .ok_or_else(|| internal("array does not match its data type"))?;
            for (key, v) in keys.iter_mut().zip(a.iter()) {
                if let Some(v) = v {
                    key.push(u8::from(v));
                }
            }
            Ok(())
        }
        DataType::Float32 | DataType::Float64 => with_floats!(array, encode_floats(keys)),
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => with_bytes!(array, encode_bytes(keys)),
        _ => with_ints!(array, encode_ints(keys)),
    }
}

fn encode_ints<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    factor: i128,
    keys: &mut [Vec<u8>],
) -> Result<()>
where
    T::Native: Into<i128>,
{
    for (i, (key, v)) in keys.iter_mut().zip(a.values().iter()).enumerate() {
        if a.is_valid(i) {
            key.extend_from_slice(&(*v).into().saturating_mul(factor).to_le_bytes());
        }
    }
    Ok(())
}

fn encode_floats<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, keys: &mut [Vec<u8>]) -> Result<()>
where
    T::Native: Into<f64>,
{
    for (i, (key, v)) in keys.iter_mut().zip(a.values().iter()).enumerate() {
        if a.is_valid(i) {
            key.extend_from_slice(&float_key((*v).into()).to_le_bytes());
        }
    }
    Ok(())
}

fn encode_bytes<A: ArrayAccessor + Copy>(a: A, keys: &mut [Vec<u8>]) -> Result<()>
where
    A::Item: AsRef<[u8]>,
{
    for (i, key) in keys.iter_mut().enumerate().take(a.len()) {
        if a.is_valid(i) {
            let v = a.value(i);
            let bytes = v.as_ref();
            key.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            key.extend_from_slice(bytes);
        }
    }
    Ok(())
}
