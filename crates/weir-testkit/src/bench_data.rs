//! The generated `events` table the benchmarks share: 10 million orders
//! (`id`, `customer`, `country`, `amount`, `ts`, `payload`), about 700 MB of
//! Parquet, written once and reused.
//!
//! The file is generated deterministically (fixed seed, own PRNG) into
//! `$WEIR_BENCH_DATA`, else `$CARGO_TARGET_DIR/bench-data`, else the
//! workspace's `target/bench-data`, and reused while present.
//! `WEIR_BENCH_ROWS` overrides the row count (for a quick smoke run).
//!
//! Every value the generator produces satisfies the contract the
//! `weir-contract` bench checks: ids `0..rows`, customers `cust-00000` to
//! `cust-49999`, ten country codes, amounts in `[0, 999.99]`, timestamps in
//! 2024 for 10 million rows (about one every 3 s), payloads of 32 to 64
//! ASCII characters.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Rows in the generated file unless `WEIR_BENCH_ROWS` says otherwise.
pub const DEFAULT_ROWS: usize = 10_000_000;
/// Rows per generated batch (and so per Parquet write).
pub const BATCH: usize = 100_000;
/// Distinct customers.
pub const CUSTOMERS: u64 = 50_000;
/// Country codes (the low-cardinality group-by key).
pub const COUNTRIES: [&str; 10] = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "AU", "NL"];
/// 2024-01-01T00:00:00Z in microseconds.
pub const TS_BASE: i64 = 1_704_067_200_000_000;
/// Bump when the generator changes, so a stale file is not reused.
pub const GENERATOR_VERSION: u32 = 1;

/// SplitMix64: tiny, fast, and the same on every platform and crate version.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The table's schema: `id` int64, `customer` utf8, `country` utf8,
/// `amount` float64, `ts` timestamp[us, UTC], `payload` utf8, none nullable.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("payload", DataType::Utf8, false),
    ]))
}

/// Rows `start..start + len`, drawing from `rng` (batches must be generated
/// in order from one generator to reproduce the file).
pub fn batch(schema: &Arc<Schema>, rng: &mut SplitMix64, start: usize, len: usize) -> RecordBatch {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let ids = Int64Array::from_iter_values((start..start + len).map(|i| i as i64));
    let customers: StringArray = (0..len)
        .map(|_| Some(format!("cust-{:05}", rng.below(CUSTOMERS))))
        .collect();
    let countries: StringArray = (0..len)
        .map(|_| Some(COUNTRIES[rng.below(10) as usize]))
        .collect();
    // Cents up to 1,000.00: random, so as incompressible as real amounts.
    let amounts =
        Float64Array::from_iter_values((0..len).map(|_| rng.below(100_000) as f64 / 100.0));
    // About one order every 3 s: 10 M rows span the year 2024.
    let ts = TimestampMicrosecondArray::from_iter_values(
        (start..start + len).map(|i| TS_BASE + i as i64 * 3_000_000 + rng.below(3_000_000) as i64),
    )
    .with_timezone("UTC");
    // 32..64 random characters (6 bits each): Snappy cannot shrink them, which
    // is what brings a row to about 70 bytes on disk.
    let mut payload = StringBuilder::with_capacity(len, len * 48);
    let mut buf = Vec::with_capacity(64);
    for _ in 0..len {
        buf.clear();
        let n = 32 + rng.below(33) as usize;
        while buf.len() < n {
            let mut bits = rng.next_u64();
            for _ in 0..10 {
                buf.push(ALPHABET[(bits & 63) as usize]);
                bits >>= 6;
            }
        }
        buf.truncate(n);
        payload.append_value(std::str::from_utf8(&buf).expect("ASCII"));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(customers),
        Arc::new(countries),
        Arc::new(amounts),
        Arc::new(ts),
        Arc::new(payload.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns).expect("batch matches schema")
}

/// Rows to generate: `WEIR_BENCH_ROWS`, else [`DEFAULT_ROWS`].
pub fn rows_from_env() -> usize {
    std::env::var("WEIR_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROWS)
}

/// Where the file lives: `$WEIR_BENCH_DATA`, else
/// `$CARGO_TARGET_DIR/bench-data`, else the workspace's `target/bench-data`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEIR_BENCH_DATA") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
    target.join("bench-data")
}

/// The input file of `rows` rows in `dir`, generated on first use. Written to
/// a temporary name and renamed, so an interrupted run never leaves a
/// truncated file to reuse.
pub fn ensure_input(dir: &Path, rows: usize) -> PathBuf {
    let name = format!("events-v{GENERATOR_VERSION}-{rows}.parquet");
    let path = dir.join(&name);
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(dir).expect("create bench data dir");
    let tmp = dir.join(format!(".{name}.tmp"));
    eprintln!("generating {rows} rows into {} ...", path.display());
    let started = Instant::now();
    let schema = schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(
        File::create(&tmp).expect("create input"),
        schema.clone(),
        Some(props),
    )
    .expect("parquet writer");
    let mut rng = SplitMix64(0x5745_4952_2D42_454E); // "WEIR-BEN"
    let mut start = 0;
    while start < rows {
        let len = BATCH.min(rows - start);
        writer
            .write(&batch(&schema, &mut rng, start, len))
            .expect("write batch");
        start += len;
    }
    writer.close().expect("close parquet");
    std::fs::rename(&tmp, &path).expect("rename input");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "generated {} MB in {:.1?}",
        size / 1_000_000,
        started.elapsed()
    );
    path
}
