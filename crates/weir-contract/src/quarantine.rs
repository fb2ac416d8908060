//! Splitting a checked batch into good rows and quarantined bad rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, UInt64Array};
use arrow::compute::{filter_record_batch, not};
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::{Error, Result};
use crate::validation::BatchVerdict;

/// The quarantine column holding each bad row's global row number.
pub const ROW_COLUMN: &str = "weir_row";
/// The quarantine column listing the rules a row broke, as `column:rule`
/// pairs separated by `;`, in report order. Column names are written as
/// they are; a rule name never contains `:` or `;`, so the rule is what
/// follows a pair's last `:`.
pub const VIOLATIONS_COLUMN: &str = "weir_violations";

/// The schema of quarantined rows: `schema`'s fields, then
/// [`ROW_COLUMN`] (`UInt64`) and [`VIOLATIONS_COLUMN`] (`Utf8`), neither
/// nullable. Metadata is kept.
///
/// # Errors
/// [`Error::InvalidArgument`] if `schema` already has a field of either name.
pub fn quarantine_schema(schema: &Schema) -> Result<Schema> {
    for name in [ROW_COLUMN, VIOLATIONS_COLUMN] {
        if schema.fields().iter().any(|f| f.name() == name) {
            return Err(Error::InvalidArgument {
                message: format!("the data already has a column `{name}`, which quarantine adds"),
            });
        }
    }
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(ROW_COLUMN, DataType::UInt64, false)));
    fields.push(Arc::new(Field::new(
        VIOLATIONS_COLUMN,
        DataType::Utf8,
        false,
    )));
    Ok(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn same_rows(batch: &RecordBatch, verdict: &BatchVerdict) -> Result<()> {
    if batch.num_rows() == verdict.num_rows() {
        Ok(())
    } else {
        Err(Error::VerdictMismatch {
            expected: verdict.num_rows(),
            found: batch.num_rows(),
        })
    }
}

/// The good rows of `batch`, in order (the batch itself when all are good).
///
/// # Errors
/// [`Error::VerdictMismatch`] if `verdict` was computed for a batch of
/// another length.
pub fn filter_good(batch: &RecordBatch, verdict: &BatchVerdict) -> Result<RecordBatch> {
    same_rows(batch, verdict)?;
    if verdict.is_all_good() {
        return Ok(batch.clone());
    }
    Ok(filter_record_batch(batch, verdict.good())?)
}

/// The bad rows of `batch`, in order, with [`ROW_COLUMN`] and
/// [`VIOLATIONS_COLUMN`] added (see [`quarantine_schema`]).
///
/// # Errors
/// [`Error::VerdictMismatch`] if `verdict` was computed for a batch of
/// another length; [`Error::InvalidArgument`] if the batch already has a
/// column of either name.
pub fn quarantine_rows(batch: &RecordBatch, verdict: &BatchVerdict) -> Result<RecordBatch> {
    same_rows(batch, verdict)?;
    let schema = Arc::new(quarantine_schema(batch.schema_ref())?);
    let bad = filter_record_batch(batch, &not(verdict.good())?)?;
    let rows = verdict.bad_rows();
    let numbers =
        UInt64Array::from_iter_values(rows.iter().map(|r| verdict.first_row() + r.row as u64));
    let mut listed = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
    for row in &rows {
        let pairs: Vec<String> = row.violations.iter().map(ToString::to_string).collect();
        listed.append_value(pairs.join(";"));
    }
    let mut columns: Vec<ArrayRef> = bad.columns().to_vec();
    columns.push(Arc::new(numbers));
    columns.push(Arc::new(listed.finish()));
    Ok(RecordBatch::try_new(schema, columns)?)
}
