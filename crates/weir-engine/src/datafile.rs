//! A dataset's data as Arrow batches: reading the files a [`ReadLocation`]
//! names and writing batches as one file of a new version, always through
//! the stage's guarded stores.
//!
//! The `sql` operator reads through DataFusion; this module serves the
//! operators that need the rows themselves: contract checks, `validate`,
//! `split`, and inputs whose columns are restricted before a command sees
//! them.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use weir_spec::Format;

use crate::dataset::{ManifestFile, ReadLocation};
use crate::error::{Error, Result};

/// Rows per batch when reading.
pub(crate) const BATCH_ROWS: usize = 8192;

/// One data file.
#[derive(Debug, Clone)]
pub(crate) struct DataFile {
    pub(crate) path: Path,
}

/// The data files at `location`, in a stable order: a version's files in
/// manifest order, a folder's files (with the format's extension) sorted by
/// path, or the one external file.
///
/// # Errors
/// Store errors while listing or reading metadata.
pub(crate) async fn files(
    store: &dyn ObjectStore,
    location: &ReadLocation,
    format: Format,
) -> Result<Vec<DataFile>> {
    match location {
        ReadLocation::Version { prefix, manifest } => manifest
            .files
            .iter()
            .map(|f| {
                let path =
                    Path::parse(format!("{prefix}/{}", f.name)).map_err(|e| Error::Manifest {
                        path: prefix.to_string(),
                        message: format!("invalid file name in manifest: {e}"),
                    })?;
                Ok(DataFile { path })
            })
            .collect(),
        ReadLocation::File(path) => Ok(vec![DataFile { path: path.clone() }]),
        ReadLocation::Folder(base) => {
            let suffix = format!(".{}", format.extension());
            let mut found: Vec<DataFile> = store
                .list(Some(base))
                .map_ok(|m| DataFile { path: m.location })
                .try_collect()
                .await
                .map_err(|e| Error::store(base, e))?;
            found.retain(|f| f.path.as_ref().ends_with(&suffix));
            found.sort_by(|a, b| a.path.as_ref().cmp(b.path.as_ref()));
            Ok(found)
        }
    }
}

/// Reads every row of a Parquet file, in file order. The file is fetched
/// whole: every caller keeps all its rows in memory anyway.
///
/// # Errors
/// [`Error::Read`] if the file is not valid Parquet or cannot be read.
pub(crate) async fn read_parquet(
    store: &Arc<dyn ObjectStore>,
    file: &DataFile,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let body = read_bytes(store.as_ref(), file).await?;
    let path = file.path.to_string();
    tokio::task::spawn_blocking(move || {
        let read_error = |e: &dyn std::fmt::Display| Error::Read {
            path: path.clone(),
            message: e.to_string(),
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(body).map_err(|e| read_error(&e))?;
        // The footer's schema: a file without row groups still has one.
        let schema = Arc::clone(builder.schema());
        let batches = builder
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| read_error(&e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| read_error(&e))?;
        Ok((schema, batches))
    })
    .await
    .map_err(|e| Error::Internal {
        message: format!("reading Parquet: {e}"),
    })?
}

/// The whole content of a (small) file.
///
/// # Errors
/// Store errors.
pub(crate) async fn read_bytes(store: &dyn ObjectStore, file: &DataFile) -> Result<bytes::Bytes> {
    let got = store
        .get(&file.path)
        .await
        .map_err(|e| Error::store(&file.path, e))?;
    got.bytes().await.map_err(|e| Error::store(&file.path, e))
}

/// Reads a CSV file with a header row, inferring column types from the
/// first 1,000 rows (as DataFusion does for an uncontracted CSV input).
///
/// # Errors
/// [`Error::Read`] with the reader's message (which names the line).
pub(crate) async fn read_csv_inferred(
    store: &dyn ObjectStore,
    file: &DataFile,
) -> Result<Vec<RecordBatch>> {
    let body = read_bytes(store, file).await?;
    let read_error = |e: &dyn std::fmt::Display| Error::Read {
        path: file.path.to_string(),
        message: without_values(&e.to_string()),
    };
    let format = arrow::csv::reader::Format::default().with_header(true);
    let (schema, _) = format
        .infer_schema(body.as_ref(), Some(1000))
        .map_err(|e| read_error(&e))?;
    let reader = arrow::csv::ReaderBuilder::new(Arc::new(schema))
        .with_format(format)
        .with_batch_size(BATCH_ROWS)
        .build(body.as_ref())
        .map_err(|e| read_error(&e))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| read_error(&e))
}

/// Writes `batches` (all of `schema`) as the file `name` under `prefix`:
/// Parquet (Snappy) or CSV with a header. An empty `batches` writes a file
/// with the schema and no rows.
///
/// # Errors
/// [`Error::Write`] or a store error.
pub(crate) async fn write(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    name: &str,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<ManifestFile> {
    let path = prefix.clone().join(name);
    let write_error = |e: &dyn std::fmt::Display| Error::Write {
        path: path.to_string(),
        message: e.to_string(),
    };
    let mut rows = 0u64;
    match format {
        Format::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by(format!("weir {}", env!("CARGO_PKG_VERSION")))
                .build();
            let sink = BufWriter::new(Arc::clone(store), path.clone());
            let mut writer = AsyncArrowWriter::try_new(sink, Arc::clone(schema), Some(props))
                .map_err(|e| write_error(&e))?;
            for batch in batches {
                rows += batch.num_rows() as u64;
                writer.write(batch).await.map_err(|e| write_error(&e))?;
            }
            writer.close().await.map_err(|e| write_error(&e))?;
        }
        Format::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                if batches.is_empty() {
                    w.write(&RecordBatch::new_empty(Arc::clone(schema)))
                        .map_err(|e| write_error(&e))?;
                }
                for batch in batches {
                    rows += batch.num_rows() as u64;
                    w.write(batch).map_err(|e| write_error(&e))?;
                }
            }
            store
                .put(&path, PutPayload::from(buf))
                .await
                .map_err(|e| Error::store(&path, e))?;
        }
    }
    let size = store
        .head(&path)
        .await
        .map_err(|e| Error::store(&path, e))?
        .size;
    Ok(ManifestFile {
        name: name.to_owned(),
        size,
        rows,
    })
}

/// `message` without the data values Arrow's CSV reader puts in its parse
/// errors (`... value 'x' ...`, `Row data: '[...]'`), which may belong to a
/// column the reading stage may not see.
pub(crate) fn without_values(message: &str) -> String {
    let mut out = match message.find("Row data:") {
        Some(i) => message[..i].trim_end().trim_end_matches('.').to_owned(),
        None => message.to_owned(),
    };
    if let Some(start) = out.find("value '")
        && let Some(len) = out[start + 7..].find("' as type")
    {
        out.replace_range(start..start + 7 + len + 1, "a value");
    }
    out
}

/// Whether `message` is an Arrow CSV parse error (which quotes data).
pub(crate) fn quotes_values(message: &str) -> bool {
    message.contains("Row data:") || message.contains("Error while parsing value")
}

/// The conventional name of the single file an operator writes.
pub(crate) fn part_name(format: Format) -> String {
    format!("part-00000.{}", format.extension())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::memory::InMemory;

    fn sample() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .unwrap();
        (schema, batch)
    }

    #[test]
    fn csv_parse_errors_lose_their_values() {
        let msg = "Parser error: Error while parsing value 'ann@x.com' as type 'Int64' for column 2 at line 4. Row data: '[1,Ann,ann@x.com]'";
        let clean = without_values(msg);
        assert!(quotes_values(msg));
        assert!(!clean.contains("ann"), "{clean}");
        assert!(clean.contains("line 4"), "{clean}");
        assert!(clean.contains("column 2"), "{clean}");
    }

    #[tokio::test]
    async fn parquet_round_trip_keeps_rows_and_order() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (schema, batch) = sample();
        let prefix = Path::from("ds/v-1");
        let file = write(
            &store,
            &prefix,
            "part-00000.parquet",
            Format::Parquet,
            &schema,
            std::slice::from_ref(&batch),
        )
        .await
        .unwrap();
        assert_eq!(file.rows, 3);
        let back = read_parquet(
            &store,
            &DataFile {
                path: prefix.join("part-00000.parquet"),
            },
        )
        .await
        .unwrap();
        assert_eq!(back.1, vec![batch]);
        assert_eq!(back.0, schema);
    }

    #[tokio::test]
    async fn csv_round_trip_and_empty_file_has_header() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (schema, batch) = sample();
        let prefix = Path::from("ds/v-1");
        write(&store, &prefix, "a.csv", Format::Csv, &schema, &[batch])
            .await
            .unwrap();
        let f = DataFile {
            path: prefix.clone().join("a.csv"),
        };
        let back = read_csv_inferred(store.as_ref(), &f).await.unwrap();
        assert_eq!(back.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
        write(&store, &prefix, "b.csv", Format::Csv, &schema, &[])
            .await
            .unwrap();
        let body = read_bytes(
            store.as_ref(),
            &DataFile {
                path: prefix.join("b.csv"),
            },
        )
        .await
        .unwrap();
        assert_eq!(body.as_ref(), b"id,name\n");
    }
}
