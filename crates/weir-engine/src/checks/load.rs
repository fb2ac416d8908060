//! Reading a dataset's rows for a check: Parquet as stored, CSV with the
//! contract's types (malformed rows counted and kept aside).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use object_store::ObjectStore;
use weir_spec::{Contract, Format};

use super::InputData;
use crate::datafile::{self, DataFile};
use crate::error::{Error, Result};

/// Rows as read for a check, plus CSV rows that could not be parsed.
pub(super) struct Loaded {
    pub(super) data: InputData,
    pub(super) malformed: Vec<weir_contract::csv::Malformed>,
    pub(super) malformed_count: u64,
}

/// Every row of `files`, as stored (Parquet) or with inferred types (CSV
/// without a contract). No rows at all: one empty batch of the footer's
/// schema, so a check still sees the columns.
pub(super) async fn read_plain(
    store: &Arc<dyn ObjectStore>,
    files: &[DataFile],
    format: Format,
) -> Result<InputData> {
    let mut batches = Vec::new();
    let mut empty_schema = None;
    for f in files {
        match format {
            Format::Parquet => {
                let (schema, read) = datafile::read_parquet(store, f).await?;
                empty_schema.get_or_insert(schema);
                batches.extend(read);
            }
            Format::Csv => batches.extend(datafile::read_csv_inferred(store.as_ref(), f).await?),
        }
    }
    if batches.is_empty()
        && let Some(schema) = empty_schema
    {
        // No rows anywhere: keep the footer's schema for the checks.
        batches.push(RecordBatch::new_empty(schema));
    }
    let schema = unify(files, &batches)?;
    Ok(InputData { schema, batches })
}

/// Every row of `files` for a check against `contract`: CSV is parsed
/// with the declared types, its malformed rows counted and kept aside.
pub(super) async fn read_for_check(
    store: &Arc<dyn ObjectStore>,
    files: &[DataFile],
    format: Format,
    contract: &Contract,
) -> Result<Loaded> {
    if format == Format::Parquet {
        return Ok(Loaded {
            data: read_plain(store, files, format).await?,
            malformed: Vec::new(),
            malformed_count: 0,
        });
    }
    let mut batches = Vec::new();
    let mut malformed = Vec::new();
    let mut malformed_count = 0u64;
    for f in files {
        let body = datafile::read_bytes(store.as_ref(), f).await?;
        let contract = contract.clone();
        let path = f.path.to_string();
        let read = tokio::task::spawn_blocking(move || {
            weir_contract::csv::read(body.as_ref(), &contract, datafile::BATCH_ROWS)
        })
        .await
        .map_err(|e| Error::Internal {
            message: format!("reading CSV: {e}"),
        })?
        .map_err(|e| Error::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        malformed_count += read.malformed_rows;
        malformed.extend(read.malformed);
        if read.batches.is_empty() && batches.is_empty() {
            // Keep the declared schema of an empty file.
            batches.push(RecordBatch::new_empty(read.schema));
        } else {
            batches.extend(read.batches);
        }
    }
    let schema = unify(files, &batches)?;
    Ok(Loaded {
        data: InputData { schema, batches },
        malformed,
        malformed_count,
    })
}

/// The one schema of `batches` (all files of a dataset must agree).
pub(super) fn unify(files: &[DataFile], batches: &[RecordBatch]) -> Result<SchemaRef> {
    let Some(first) = batches.first() else {
        return Ok(Arc::new(arrow::datatypes::Schema::empty()));
    };
    let schema = first.schema();
    if let Some(other) = batches
        .iter()
        .find(|b| b.schema().fields() != schema.fields())
    {
        return Err(Error::Read {
            path: files
                .first()
                .map(|f| f.path.to_string())
                .unwrap_or_default(),
            message: format!(
                "the dataset's files disagree on their schema: {} vs {}",
                schema,
                other.schema()
            ),
        });
    }
    Ok(schema)
}
