//! SQL functions weir adds to every stage, registered explicitly per context.
//!
//! `weir_bucket(key, n)` maps a string key to a bucket in `0..n` with
//! SHA-256, so a train/test split by key is deterministic across runs,
//! machines and weir versions (unlike DataFusion's internal hashes, which
//! are free to change between releases).

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

/// The bucket of `key` among `buckets`: the first 8 bytes of SHA-256(key),
/// big-endian, modulo `buckets`.
pub fn bucket(key: &[u8], buckets: u64) -> u64 {
    let digest = Sha256::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % buckets.max(1)
}

fn weir_bucket(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let [key, n] = args else {
        return Err(DataFusionError::Plan(
            "weir_bucket(key, buckets) takes two arguments".into(),
        ));
    };
    let buckets = match n {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(b))) if *b > 0 => *b as u64,
        _ => {
            return Err(DataFusionError::Plan(
                "weir_bucket: `buckets` must be a positive integer literal".into(),
            ));
        }
    };
    match key {
        ColumnarValue::Scalar(s) => {
            let v = match s {
                ScalarValue::Utf8(Some(k))
                | ScalarValue::LargeUtf8(Some(k))
                | ScalarValue::Utf8View(Some(k)) => Some(bucket(k.as_bytes(), buckets) as i64),
                _ => None,
            };
            Ok(ColumnarValue::Scalar(ScalarValue::Int64(v)))
        }
        ColumnarValue::Array(array) => {
            let array = arrow::compute::cast(array, &DataType::Utf8)?;
            let strings = array.as_string::<i32>();
            let out: Int64Array = strings
                .iter()
                .map(|k| k.map(|k| bucket(k.as_bytes(), buckets) as i64))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }
    }
}

/// Registers weir's functions on `ctx`.
pub fn register(ctx: &SessionContext) {
    let udf: ScalarUDF = create_udf(
        "weir_bucket",
        vec![DataType::Utf8, DataType::Int64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(weir_bucket),
    );
    ctx.register_udf(udf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn buckets_are_stable_and_in_range() {
        // Pinned: changing this function would silently reshuffle every split.
        assert_eq!(bucket(b"customer-1", 100), bucket(b"customer-1", 100));
        for i in 0..1000 {
            assert!(bucket(format!("k{i}").as_bytes(), 7) < 7);
        }
        assert_eq!(bucket(b"abc", 1_000_000), 0xba7816bf8f01cfea % 1_000_000);
    }

    #[tokio::test]
    async fn usable_from_sql() {
        let ctx = SessionContext::new();
        register(&ctx);
        let df = ctx
            .sql("SELECT weir_bucket('abc', 1000000) AS b")
            .await
            .unwrap();
        let batches = df.collect().await.unwrap();
        let col = batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(col.value(0), (0xba7816bf8f01cfea_u64 % 1_000_000) as i64);
        assert!(!col.is_null(0));
    }
}
