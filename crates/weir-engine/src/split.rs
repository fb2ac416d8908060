//! The `split` operator: a deterministic train/test/validation split.
//!
//! Each row goes to one output by hashing its key column: the key is cast
//! to text, and `SHA-256(text)` (first 8 bytes, big-endian) modulo
//! 1,000,000 picks the part whose share of `0..1_000_000` holds it (shares
//! in declared order). The same key always lands in the same part, across
//! runs, machines and weir versions, so rows of one customer never leak
//! between train and test.

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use weir_spec::SplitPart;

use crate::checks;
use crate::datafile;
use crate::dataset::Staged;
use crate::error::{Error, Result};
use crate::executor::Attempt;
use crate::udf::bucket;

/// Buckets a key is hashed into; shares are in millionths of this range.
pub const SPLIT_BUCKETS: u64 = 1_000_000;

/// Runs a `split` stage: reads its one input and stages one file per part.
///
/// # Errors
/// A missing or null key, or a read, check or write error.
pub(crate) async fn run(
    cx: &mut Attempt<'_>,
    key: &str,
    parts: &[SplitPart],
) -> Result<Vec<Staged>> {
    let input = cx.single_input()?;
    let data = checks::read_restricted(cx, &input).await?;
    let bounds = upper_bounds(parts);
    let mut per_part: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts.len()];
    let mut row = 0u64;
    for batch in &data.batches {
        let assigned = assign(batch, key, &bounds, &input, row)?;
        row += batch.num_rows() as u64;
        for (slot, indices) in per_part.iter_mut().zip(assigned) {
            if !indices.is_empty() {
                let indices = UInt32Array::from(indices);
                let taken = take_record_batch(batch, &indices).map_err(|e| Error::Internal {
                    message: format!("split: {e}"),
                })?;
                slot.push(taken);
            }
        }
    }
    let mut staged = Vec::with_capacity(parts.len());
    for (part, batches) in parts.iter().zip(per_part) {
        let (store, _) = cx.locate(&part.dataset)?;
        let format = cx.dataset(&part.dataset)?.format;
        let file = datafile::write(
            &store,
            &cx.version_prefix(&part.dataset)?,
            &datafile::part_name(format),
            format,
            &data.schema,
            &batches,
        )
        .await?;
        staged.push(Staged {
            dataset: part.dataset.clone(),
            files: vec![file],
        });
    }
    Ok(staged)
}

/// The exclusive upper bucket of each part: cumulative shares.
fn upper_bounds(parts: &[SplitPart]) -> Vec<u64> {
    let mut total = 0u64;
    parts
        .iter()
        .map(|p| {
            total += u64::from(p.millionths);
            total
        })
        .collect()
}

/// The part index of bucket `b` (the last part takes any rounding slack).
fn part_of(bounds: &[u64], b: u64) -> usize {
    bounds
        .iter()
        .position(|upper| b < *upper)
        .unwrap_or(bounds.len().saturating_sub(1))
}

/// Row indices of `batch` per part. `first_row` numbers rows in messages.
fn assign(
    batch: &RecordBatch,
    key: &str,
    bounds: &[u64],
    dataset: &str,
    first_row: u64,
) -> Result<Vec<Vec<u32>>> {
    let column = batch.column_by_name(key).ok_or_else(|| Error::Split {
        message: format!("input `{dataset}` has no column `{key}` (the split key)"),
    })?;
    let text = cast(column, &DataType::Utf8).map_err(|e| Error::Split {
        message: format!("split key `{key}` of `{dataset}` cannot be read as text: {e}"),
    })?;
    let text = text.as_string::<i32>();
    let mut out = vec![Vec::new(); bounds.len()];
    for i in 0..text.len() {
        if text.is_null(i) {
            return Err(Error::Split {
                message: format!(
                    "row {} of `{dataset}` has a null split key `{key}`; filter or fill it before splitting",
                    first_row + i as u64
                ),
            });
        }
        let b = bucket(text.value(i).as_bytes(), SPLIT_BUCKETS);
        let idx = u32::try_from(i).map_err(|_| Error::Internal {
            message: "batch too large".into(),
        })?;
        if let Some(slot) = out.get_mut(part_of(bounds, b)) {
            slot.push(idx);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    fn parts(shares: &[u32]) -> Vec<SplitPart> {
        shares
            .iter()
            .enumerate()
            .map(|(i, m)| SplitPart {
                dataset: format!("p{i}"),
                millionths: *m,
            })
            .collect()
    }

    fn batch(keys: Vec<Option<&str>>) -> RecordBatch {
        let n = keys.len() as i64;
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, true),
                Field::new("v", DataType::Int64, false),
            ])),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(Int64Array::from_iter_values(0..n)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn every_row_lands_in_exactly_one_part_by_its_hash() {
        let keys: Vec<String> = (0..2000).map(|i| format!("cust-{i}")).collect();
        let b = batch(keys.iter().map(|k| Some(k.as_str())).collect());
        let bounds = upper_bounds(&parts(&[800_000, 100_000, 100_000]));
        let assigned = assign(&b, "k", &bounds, "d", 0).unwrap();
        let total: usize = assigned.iter().map(Vec::len).sum();
        assert_eq!(total, 2000);
        for (p, rows) in assigned.iter().enumerate() {
            for r in rows {
                let h = bucket(keys[*r as usize].as_bytes(), SPLIT_BUCKETS);
                assert_eq!(part_of(&bounds, h), p);
            }
        }
        // Roughly the declared shares (binomial, 2000 rows).
        assert!(
            (1500..1700).contains(&assigned[0].len()),
            "{}",
            assigned[0].len()
        );
    }

    #[test]
    fn same_key_same_part_and_null_key_is_an_error_naming_the_row() {
        let b = batch(vec![Some("a"), Some("a"), Some("b")]);
        let bounds = upper_bounds(&parts(&[500_000, 500_000]));
        let assigned = assign(&b, "k", &bounds, "d", 0).unwrap();
        assert!(assigned.iter().any(|rows| rows.starts_with(&[0, 1])));
        let err = assign(&batch(vec![Some("a"), None]), "k", &bounds, "d", 10).unwrap_err();
        assert!(err.to_string().contains("row 11"), "{err}");
        let err = assign(&b, "missing", &bounds, "d", 0).unwrap_err();
        assert!(err.to_string().contains("no column `missing`"), "{err}");
    }
}
