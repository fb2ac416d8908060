//! Validating the generated 10-million-row `events` file (the one the SQL
//! bench uses, from `weir_testkit::bench_data`) against a realistic
//! contract, all six columns constrained:
//!
//! | column | contract |
//! |---|---|
//! | `id` | int64, not null, unique, primary key |
//! | `customer` | string, regex `^cust-[0-9]{5}$` |
//! | `country` | string, allowed: the 10 codes |
//! | `amount` | float64, range [0, 1000] |
//! | `ts` | timestamp[us, UTC], range [2024-01-01, 2025-01-01] |
//! | `payload` | string, max_length 64 |
//!
//! The file is read into memory once (8192-row batches, as DataFusion
//! streams them); each iteration runs a fresh `Validation` over every
//! batch. Throughput is in cells (rows x 6). Every row is good, so this
//! measures the checks, not the bookkeeping of failures.
//!
//! Variants:
//! - `in_order`: ids ascend, as generated (the common case for keys);
//! - `shuffled_ids`: the same rows with ids scrambled by a bijection, so
//!   uniqueness goes through the hash set instead of the ascending fast path.
//!
//! `WEIR_BENCH_BREAKDOWN=1` also prints the time of each column's rules
//! alone. `WEIR_BENCH_ROWS` sets the row count (see `bench_data`).
//!
//! Run with:
//! `CARGO_TARGET_DIR=/var/tmp/weir-target cargo bench -p weir-contract --bench validate`

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::Int64Type;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir_contract::Checker;
use weir_spec::{ColumnContract, ColumnType, Contract, Literal, OnViolation, Range, TimeUnit};
use weir_testkit::bench_data::{COUNTRIES, data_dir, ensure_input, rows_from_env};

/// Rows per batch read from the file.
const BATCH_ROWS: usize = 8192;

fn column(name: &str, data_type: ColumnType) -> ColumnContract {
    ColumnContract {
        name: name.into(),
        data_type,
        nullable: true,
        sensitive: false,
        unique: false,
        range: None,
        allowed: None,
        regex: None,
        max_length: None,
    }
}

fn columns() -> Vec<ColumnContract> {
    let text = |s: &str| Literal::Text(s.into());
    vec![
        ColumnContract {
            nullable: false,
            unique: true,
            ..column("id", ColumnType::Int64)
        },
        ColumnContract {
            regex: Some("^cust-[0-9]{5}$".into()),
            ..column("customer", ColumnType::String)
        },
        ColumnContract {
            allowed: Some(COUNTRIES.iter().map(|c| text(c)).collect()),
            ..column("country", ColumnType::String)
        },
        ColumnContract {
            range: Some(Range {
                min: Some(Literal::Int(0)),
                max: Some(Literal::Int(1000)),
            }),
            ..column("amount", ColumnType::Float64)
        },
        ColumnContract {
            range: Some(Range {
                min: Some(text("2024-01-01T00:00:00Z")),
                max: Some(text("2025-01-01T00:00:00Z")),
            }),
            ..column(
                "ts",
                ColumnType::Timestamp {
                    unit: Some(TimeUnit::Us),
                    tz: Some("UTC".into()),
                },
            )
        },
        ColumnContract {
            max_length: Some(64),
            ..column("payload", ColumnType::String)
        },
    ]
}

fn contract(columns: Vec<ColumnContract>, primary_key: Vec<String>) -> Contract {
    Contract {
        columns,
        primary_key,
        strict: false,
        on_violation: OnViolation::Fail,
        source: "bench".into(),
    }
}

fn load(path: &std::path::Path) -> Vec<RecordBatch> {
    let started = Instant::now();
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open input"))
        .expect("parquet reader")
        .with_batch_size(BATCH_ROWS)
        .build()
        .expect("parquet reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("read batch")).collect();
    eprintln!(
        "read {} batches into memory in {:.1?}",
        batches.len(),
        started.elapsed()
    );
    batches
}

/// The batches with each id replaced by a bijective scramble of it: still
/// unique, no longer ascending.
fn shuffle_ids(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    batches
        .iter()
        .map(|b| {
            let ids = b.column(0).as_primitive::<Int64Type>();
            let scrambled: Int64Array = ids
                .values()
                .iter()
                .map(|&id| (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as i64)
                .collect();
            let mut columns: Vec<ArrayRef> = b.columns().to_vec();
            columns[0] = Arc::new(scrambled);
            RecordBatch::try_new(b.schema(), columns).expect("batch")
        })
        .collect()
}

/// Validates every batch; returns the bad rows (0 for this data).
fn validate(checker: &Checker, batches: &[RecordBatch]) -> u64 {
    let mut validation = checker.begin();
    for batch in batches {
        validation.check(batch).expect("check");
    }
    validation.finish().rows_bad
}

fn median_secs(checker: &Checker, batches: &[RecordBatch], runs: usize) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(validate(checker, batches));
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Each column's rules alone (the others undeclared), median of 3 runs.
fn breakdown(batches: &[RecordBatch], rows: usize) {
    for c in columns() {
        let name = c.name.clone();
        let key = if name == "id" {
            vec![name.clone()]
        } else {
            vec![]
        };
        let checker = Checker::new(&contract(vec![c], key)).expect("contract");
        let secs = median_secs(&checker, batches, 3);
        eprintln!(
            "breakdown: {name}: {:.1} ms, {:.1} ns/row, {:.0} M cells/s",
            secs * 1e3,
            secs * 1e9 / rows as f64,
            rows as f64 / secs / 1e6
        );
    }
}

fn bench(c: &mut Criterion) {
    let rows = rows_from_env();
    let input = ensure_input(&data_dir(), rows);
    let batches = load(&input);
    let shuffled = shuffle_ids(&batches);
    let checker = Checker::new(&contract(columns(), vec!["id".into()])).expect("contract");
    assert_eq!(
        validate(&checker, &batches),
        0,
        "generated data breaks the contract"
    );
    assert_eq!(validate(&checker, &shuffled), 0, "scrambled ids collide");
    if std::env::var_os("WEIR_BENCH_BREAKDOWN").is_some() {
        breakdown(&batches, rows);
    }
    let cells = rows as u64 * 6;
    for (name, data) in [("in_order", &batches), ("shuffled_ids", &shuffled)] {
        let secs = median_secs(&checker, data, 3);
        eprintln!(
            "{name}: {rows} rows in {:.1} ms: {:.1} M cells/s",
            secs * 1e3,
            cells as f64 / secs / 1e6
        );
    }

    let mut group = c.benchmark_group("validate");
    group
        .throughput(Throughput::Elements(cells))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    group.bench_function("in_order", |b| b.iter(|| validate(&checker, &batches)));
    group.bench_function("shuffled_ids", |b| b.iter(|| validate(&checker, &shuffled)));
    group.finish();
}

// `criterion_group!` generates an undocumented `pub fn benches()`.
#[allow(missing_docs)]
mod entry {
    use super::*;
    criterion_group!(benches, bench);
}
criterion_main!(entry::benches);
