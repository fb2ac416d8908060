//! The `sql` operator: a DataFusion query over the stage's inputs, written to
//! its output dataset.
//!
//! Each stage gets its own `SessionContext` whose runtime can reach only the
//! stores the stage was handed ([`StageRegistry`]); DDL, DML and statements
//! (`CREATE EXTERNAL TABLE`, `COPY`, `SET`) are refused, so a query cannot
//! register new locations or write anywhere on its own.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrame;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{
    CsvReadOptions, ParquetReadOptions, SQLOptions, SessionConfig, SessionContext,
};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;
use weir_spec::Format;

use crate::dataset::{ManifestFile, ReadLocation};
use crate::error::{Error, Result};
use crate::registry::{StageRegistry, store_url};

/// One input as the operator sees it.
#[derive(Debug, Clone)]
pub struct SqlInput {
    /// Table name (the dataset name).
    pub name: String,
    /// Store name.
    pub store: String,
    /// Where to read.
    pub location: ReadLocation,
    /// File format.
    pub format: Format,
}

/// Where the operator writes.
#[derive(Debug, Clone)]
pub struct SqlOutput {
    /// Store name.
    pub store: String,
    /// The version folder to write into.
    pub prefix: Path,
    /// File format.
    pub format: Format,
}

/// Builds the per-stage DataFusion context: only `stores`, weir's UDFs,
/// and a fixed partition count.
///
/// # Errors
/// If DataFusion cannot build the runtime.
pub fn stage_context(
    stores: HashMap<String, Arc<dyn ObjectStore>>,
    partitions: usize,
) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(StageRegistry::new(stores)))
        .build_arc()?;
    let config = SessionConfig::new()
        .with_target_partitions(partitions.max(1))
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    crate::udf::register(&ctx);
    Ok(ctx)
}

/// Registers `input` as a table in `ctx`, with every column visible.
///
/// Stages register their inputs through [`crate::columns`] instead, which
/// hides what the stage token does not allow; this is for tools and
/// benchmarks that read with a plain scope.
///
/// # Errors
/// If DataFusion cannot read the location (for instance, a CSV with no header).
pub async fn register_input(ctx: &SessionContext, input: &SqlInput) -> Result<()> {
    let frame = input_frame(ctx, input).await?;
    ctx.register_table(input.name.as_str(), frame.into_view())?;
    Ok(())
}

/// A DataFrame over `input`'s data, not registered under any name: a query
/// can reach it only through a view built on top of it.
///
/// # Errors
/// If DataFusion cannot read the location (for instance, a CSV with no header).
pub async fn input_frame(ctx: &SessionContext, input: &SqlInput) -> Result<DataFrame> {
    let base = store_url(&input.store);
    let (url, extension) = match &input.location {
        ReadLocation::Version { prefix, .. } => (
            format!("{base}{prefix}/"),
            format!(".{}", input.format.extension()),
        ),
        ReadLocation::Folder(p) => (
            format!("{base}{p}/"),
            format!(".{}", input.format.extension()),
        ),
        ReadLocation::File(p) => {
            let ext = p.extension().map(|e| format!(".{e}")).unwrap_or_default();
            (format!("{base}{p}"), ext)
        }
    };
    let frame = match input.format {
        Format::Parquet => {
            let opts = ParquetReadOptions::default().file_extension(&extension);
            ctx.read_parquet(url.as_str(), opts).await?
        }
        Format::Csv => {
            let opts = CsvReadOptions::new()
                .has_header(true)
                .file_extension(&extension);
            ctx.read_csv(url.as_str(), opts).await?
        }
    };
    Ok(frame)
}

/// A DataFrame over rows already in memory (an input weir has read and
/// checked against its contract), not registered under any name.
///
/// # Errors
/// If the batches do not all have `schema`.
pub fn frame_from_batches(
    ctx: &SessionContext,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<DataFrame> {
    let table = MemTable::try_new(schema, vec![batches])?;
    Ok(ctx.read_table(Arc::new(table))?)
}

/// Runs `sql` and writes its result under `output.prefix` in `store`.
///
/// Returns the files written, with row counts.
///
/// # Errors
/// A query error (with DataFusion's message), or a write error.
pub async fn run_query(
    ctx: &SessionContext,
    sql: &str,
    store: Arc<dyn ObjectStore>,
    output: &SqlOutput,
) -> Result<Vec<ManifestFile>> {
    let df = plan_query(ctx, sql).await?;
    write_result(df, store, output).await
}

/// Plans `sql` with DDL, DML and statements refused.
///
/// # Errors
/// A query error (with DataFusion's message).
pub async fn plan_query(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    Ok(ctx.sql_with_options(sql, options).await?)
}

/// Runs a planned query and writes its result under `output.prefix` in
/// `store`. Returns the files written, with row counts.
///
/// # Errors
/// A query error (with DataFusion's message), or a write error.
pub async fn write_result(
    df: DataFrame,
    store: Arc<dyn ObjectStore>,
    output: &SqlOutput,
) -> Result<Vec<ManifestFile>> {
    let name = format!("part-00000.{}", output.format.extension());
    let path = output.prefix.clone().join(name.as_str());
    let (rows, size) = match output.format {
        Format::Parquet => {
            write_parquet(
                df,
                &format!("{}{path}", store_url(&output.store)),
                store,
                &path,
            )
            .await?
        }
        Format::Csv => write_csv(df.execute_stream().await?, store, &path).await?,
    };
    Ok(vec![ManifestFile { name, size, rows }])
}

fn write_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Write {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// Writes through DataFusion's own Parquet sink, which encodes row groups
/// and columns in parallel; the object store it writes to is the stage's
/// guarded store, resolved through the stage registry like every read.
async fn write_parquet(
    df: datafusion::dataframe::DataFrame,
    url: &str,
    store: Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<(u64, u64)> {
    let mut options = TableParquetOptions::default();
    options.global.compression = Some("snappy".into());
    options.global.created_by = format!("weir {}", env!("CARGO_PKG_VERSION"));
    let counts = df
        .write_parquet(
            url,
            DataFrameWriteOptions::new().with_single_file_output(true),
            Some(options),
        )
        .await?;
    let mut rows = 0u64;
    for batch in &counts {
        if let Some(col) = batch.column_by_name("count")
            && let Some(c) = col.as_any().downcast_ref::<arrow::array::UInt64Array>()
        {
            rows += c.iter().flatten().sum::<u64>();
        }
    }
    let size = store
        .head(path)
        .await
        .map_err(|e| Error::store(path, e))?
        .size;
    Ok((rows, size))
}

async fn write_csv(
    mut stream: datafusion::execution::SendableRecordBatchStream,
    store: Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<(u64, u64)> {
    let schema = stream.schema();
    let mut sink = object_store::buffered::BufWriter::new(store.clone(), path.clone());
    let mut rows = 0u64;
    let mut header = true;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        let mut buf = Vec::new();
        {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(header)
                .build(&mut buf);
            w.write(&batch).map_err(|e| write_error(path, e))?;
        }
        header = false;
        sink.write_all(&buf)
            .await
            .map_err(|e| write_error(path, e))?;
    }
    if header {
        // No batch at all: still write the header, so the file says which
        // columns the (empty) result has.
        let mut buf = Vec::new();
        {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buf);
            w.write(&RecordBatch::new_empty(schema))
                .map_err(|e| write_error(path, e))?;
        }
        sink.write_all(&buf)
            .await
            .map_err(|e| write_error(path, e))?;
    }
    sink.shutdown().await.map_err(|e| write_error(path, e))?;
    let size = store
        .head(path)
        .await
        .map_err(|e| Error::store(path, e))?
        .size;
    Ok((rows, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    async fn ctx_with_csv() -> (SessionContext, Arc<dyn ObjectStore>) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store
            .put(
                &Path::from("raw/a.csv"),
                PutPayload::from_static(b"id,v\n1,10\n2,20\n3,30\n"),
            )
            .await
            .unwrap();
        let ctx = stage_context(HashMap::from([("lake".to_owned(), store.clone())]), 2).unwrap();
        register_input(
            &ctx,
            &SqlInput {
                name: "a".into(),
                store: "lake".into(),
                location: ReadLocation::File(Path::from("raw/a.csv")),
                format: Format::Csv,
            },
        )
        .await
        .unwrap();
        (ctx, store)
    }

    #[tokio::test]
    async fn query_writes_parquet_with_row_count() {
        let (ctx, store) = ctx_with_csv().await;
        let out = SqlOutput {
            store: "lake".into(),
            prefix: Path::from("out/v-1"),
            format: Format::Parquet,
        };
        let files = run_query(
            &ctx,
            "SELECT id, v * 2 AS v2 FROM a WHERE v > 10",
            store.clone(),
            &out,
        )
        .await
        .unwrap();
        assert_eq!(files[0].rows, 2);
        assert!(
            store
                .head(&Path::from("out/v-1/part-00000.parquet"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn ddl_and_copy_are_refused() {
        let (ctx, store) = ctx_with_csv().await;
        let out = SqlOutput {
            store: "lake".into(),
            prefix: Path::from("out/v-1"),
            format: Format::Parquet,
        };
        for sql in [
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'file:///etc/passwd'",
            "COPY a TO 'file:///tmp/x.csv'",
            "SET datafusion.execution.target_partitions = 1",
        ] {
            let err = run_query(&ctx, sql, store.clone(), &out).await.unwrap_err();
            assert!(matches!(err, Error::Query { .. }), "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn reading_a_location_outside_the_stage_fails() {
        let (ctx, _) = ctx_with_csv().await;
        let err = ctx
            .register_csv("x", "file:///etc/", CsvReadOptions::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no store"), "{err}");
    }
}
