//! A filter + group-by SQL stage over a generated 10-million-row Parquet file
//! (about 700 MB), through weir's operator and through bare DataFusion.
//!
//! weir's path is what the engine does for one `sql` stage: a per-stage
//! context ([`stage_context`]) over a guarded registry, [`register_input`],
//! then [`run_query`] streaming the result into a Parquet file in an
//! in-memory store. Bare DataFusion is `SessionContext::new()`,
//! `register_parquet`, then either `collect` or `write_parquet` to a local
//! directory. Each iteration includes building the context and registering
//! the table (which reads the footer), for both paths.
//!
//! The input is generated once, deterministically (fixed seed, own PRNG), by
//! [`weir_testkit::bench_data`] into `$WEIR_BENCH_DATA`, else
//! `$CARGO_TARGET_DIR/bench-data`, else the workspace's `target/bench-data`,
//! and reused while present. `WEIR_BENCH_ROWS` overrides the row count (for
//! a quick smoke run).
//!
//! Run with:
//! `CARGO_TARGET_DIR=/var/tmp/weir-target cargo bench -p weir-engine --bench sql`

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use weir_engine::dataset::ReadLocation;
use weir_engine::sql::{SqlInput, SqlOutput, register_input, run_query, stage_context};
use weir_spec::Format;
use weir_testkit::bench_data::{data_dir, ensure_input, rows_from_env};

/// Filter + group-by with few groups: the result is 10 rows, so this measures
/// scan, filter and aggregation.
const BY_COUNTRY: &str = "SELECT country, count(*) AS orders, sum(amount) AS revenue, \
     avg(amount) AS avg_amount, max(ts) AS last_order \
     FROM events WHERE amount >= 100.0 AND ts < TIMESTAMP '2024-10-01T00:00:00Z' \
     GROUP BY country ORDER BY country";

/// Filter + group-by with 50,000 groups: a larger result, so the writer shows.
const BY_CUSTOMER: &str = "SELECT customer, country, count(*) AS orders, sum(amount) AS revenue \
     FROM events WHERE amount >= 100.0 \
     GROUP BY customer, country";

fn partitions() -> usize {
    // What `EngineConfig::default()` uses, and what `SessionContext::new()` uses.
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A stage context as the engine builds one, with `events` registered.
async fn weir_context(dir: &FsPath, file: &str) -> (SessionContext, Arc<dyn ObjectStore>) {
    let lake: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir).expect("local store"));
    let out: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let stores = HashMap::from([("lake".to_owned(), lake), ("out".to_owned(), out.clone())]);
    let ctx = stage_context(stores, partitions()).expect("stage context");
    let input = SqlInput {
        name: "events".into(),
        store: "lake".into(),
        location: ReadLocation::File(Path::from(file)),
        format: Format::Parquet,
    };
    register_input(&ctx, &input).await.expect("register input");
    (ctx, out)
}

/// weir's `sql` operator; returns the rows written.
async fn weir_stage(dir: &FsPath, file: &str, sql: &str) -> u64 {
    let (ctx, out) = weir_context(dir, file).await;
    let output = SqlOutput {
        store: "out".into(),
        prefix: Path::from("result/v-1"),
        format: Format::Parquet,
    };
    let files = run_query(&ctx, sql, out, &output).await.expect("run query");
    files.iter().map(|f| f.rows).sum()
}

/// weir's context with the writer `run_query` used before it switched to
/// DataFusion's parallel sink (commit d109bba): one `AsyncArrowWriter`,
/// Snappy, streaming into the store. Kept to compare the two writers.
async fn weir_stream_writer(dir: &FsPath, file: &str, sql: &str) -> u64 {
    let (ctx, out) = weir_context(dir, file).await;
    let mut stream = ctx
        .sql(sql)
        .await
        .expect("plan")
        .execute_stream()
        .await
        .expect("execute");
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let path = Path::from("result/v-1/part-00000.parquet");
    let sink = object_store::buffered::BufWriter::new(out, path);
    let mut writer =
        AsyncArrowWriter::try_new(sink, stream.schema(), Some(props)).expect("parquet writer");
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.expect("batch");
        rows += batch.num_rows() as u64;
        writer.write(&batch).await.expect("write batch");
    }
    writer.close().await.expect("close parquet");
    rows
}

/// weir's context, result collected instead of written: splits weir's cost
/// into context (this vs bare collect) and writer (weir vs this).
async fn weir_collect(dir: &FsPath, file: &str, sql: &str) -> u64 {
    let (ctx, _) = weir_context(dir, file).await;
    let batches = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("collect");
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

async fn bare_context(input: &FsPath) -> SessionContext {
    let ctx = SessionContext::new();
    let path = input.to_str().expect("UTF-8 path");
    ctx.register_parquet("events", path, ParquetReadOptions::default())
        .await
        .expect("register parquet");
    ctx
}

/// Bare DataFusion, result collected in memory; returns the rows.
async fn bare_collect(input: &FsPath, sql: &str) -> u64 {
    let ctx = bare_context(input).await;
    let batches = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("collect");
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// Bare DataFusion, result written as one Parquet file with its default
/// writer settings; returns the rows.
async fn bare_write(input: &FsPath, out: &FsPath, sql: &str) -> u64 {
    let ctx = bare_context(input).await;
    let df = ctx.sql(sql).await.expect("plan");
    let target = out.join("result.parquet");
    let target = target.to_str().expect("UTF-8 path");
    let counts = df
        .write_parquet(
            target,
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .expect("write parquet");
    counts
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
        })
        .map_or(0, |c| c.value(0))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Rounds of the five variants back to back, in rotating order. Other work
/// on the machine then slows them alike, so ratios of these medians are
/// steadier than ratios of criterion groups measured seconds apart.
/// `WEIR_BENCH_ROUNDS` sets the rounds (0 skips this).
fn paired(
    rt: &tokio::runtime::Runtime,
    name: &str,
    dir: &FsPath,
    file: &str,
    input: &FsPath,
    out: &FsPath,
    query: &str,
) {
    let rounds: usize = std::env::var("WEIR_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    if rounds == 0 {
        return;
    }
    let mut times: [Vec<f64>; 5] = Default::default();
    for round in 0..rounds {
        for k in 0..5 {
            let which = (round + k) % 5;
            let started = Instant::now();
            rt.block_on(async {
                match which {
                    0 => weir_stage(dir, file, query).await,
                    1 => weir_collect(dir, file, query).await,
                    2 => bare_collect(input, query).await,
                    3 => bare_write(input, out, query).await,
                    _ => weir_stream_writer(dir, file, query).await,
                }
            });
            if let Some(t) = times.get_mut(which) {
                t.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let [weir, weir_collect, collect, write, stream_writer] = times.map(median);
    eprintln!(
        "{name} paired medians over {rounds} rounds: weir {weir:.1} ms, weir_collect \
         {weir_collect:.1} ms, bare_collect {collect:.1} ms, bare_write {write:.1} ms, \
         weir_stream_writer {stream_writer:.1} ms; weir/bare_collect {:.3}, \
         weir/bare_write {:.3}, weir_collect/bare_collect {:.3}, \
         weir_stream_writer/bare_write {:.3}",
        weir / collect,
        weir / write,
        weir_collect / collect,
        stream_writer / write,
    );
}

fn sql(c: &mut Criterion) {
    let rows = rows_from_env();
    let dir = data_dir();
    let input = ensure_input(&dir, rows);
    let file = input
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name")
        .to_owned();
    let out = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");

    for (name, query) in [("by_country", BY_COUNTRY), ("by_customer", BY_CUSTOMER)] {
        // Same answer both ways, or the comparison means nothing.
        let weir_rows = rt.block_on(weir_stage(&dir, &file, query));
        let bare_rows = rt.block_on(bare_collect(&input, query));
        assert_eq!(
            weir_rows, bare_rows,
            "{name}: weir and bare DataFusion disagree"
        );
        eprintln!("{name}: {weir_rows} result rows");
        paired(&rt, name, &dir, &file, &input, out.path(), query);

        let mut group = c.benchmark_group(format!("sql_{name}"));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(15));
        group.bench_function("weir", |b| {
            b.to_async(&rt).iter(|| weir_stage(&dir, &file, query))
        });
        group.bench_function("bare_collect", |b| {
            b.to_async(&rt).iter(|| bare_collect(&input, query))
        });
        group.bench_function("bare_write", |b| {
            b.to_async(&rt)
                .iter(|| bare_write(&input, out.path(), query))
        });
        group.finish();
    }
}

// `criterion_group!` generates an undocumented `pub fn benches()`.
#[allow(missing_docs)]
mod entry {
    use super::*;
    criterion_group!(benches, sql);
}
criterion_main!(entry::benches);
