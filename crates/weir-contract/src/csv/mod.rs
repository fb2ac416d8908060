//! A typed CSV reader: declared columns are read with their declared types,
//! and rows that do not parse are set aside with their line numbers.
//!
//! The first record is the header and names the columns. A field is parsed
//! by its column's declared type:
//!
//! | type | accepted |
//! |---|---|
//! | integers | optional sign and ASCII digits, within the type's range |
//! | floats | what Rust's `f64`/`f32` parsers accept (`1.5`, `-2e3`, `NaN`, `inf`) |
//! | `boolean` | `true`, `false` |
//! | `date` | `YYYY-MM-DD` |
//! | `timestamp` | RFC 3339 (`2024-01-31T12:00:00Z`, `...+02:00`), stored in UTC; without an offset (`2024-01-31 12:00:00`) only in a column declared without a time zone; at most the column unit's precision |
//! | `decimal(p,s)` | `[+-]digits[.digits]` with at most `s` places and `p` digits |
//! | `string` | valid UTF-8 |
//! | `binary` | the field's bytes |
//!
//! An empty field is null in every column (CSV cannot tell an empty string
//! from a missing one). Undeclared columns are read as strings, or refused
//! when the contract is strict. Nothing is trimmed.
//!
//! # Security
//! A malformed field's value is quoted in [`Malformed::reason`] only for
//! declared columns not marked sensitive; undeclared columns count as
//! sensitive.

mod field;
mod records;

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;
use weir_spec::Contract;

use crate::checker::SchemaViolation;
use crate::error::{Error, Result};
use crate::types::to_arrow;
use crate::value::quote;
use field::{Buf, Cell, Kind, append, finish, kind, new_buf, parse};
use records::Records;

/// Malformed rows kept in [`CsvRead::malformed`]; later ones are counted only.
pub const MAX_MALFORMED: usize = 1000;

/// A row that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    /// The line the row starts on (1-based; the header is usually line 1).
    pub line: u64,
    /// The first column that did not parse; `None` when the row has the
    /// wrong number of fields.
    pub column: Option<String>,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(f, "line {}: column `{column}`: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// What [`read`] read.
#[non_exhaustive]
pub struct CsvRead {
    /// Columns in header order: declared ones with their declared types,
    /// undeclared ones as `Utf8`; all nullable.
    pub schema: SchemaRef,
    /// The rows that parsed, in file order, at most `batch_rows` per batch.
    pub batches: Vec<RecordBatch>,
    /// Data rows read (after the header), malformed ones included.
    pub rows: u64,
    /// The first [`MAX_MALFORMED`] malformed rows, in file order.
    pub malformed: Vec<Malformed>,
    /// Malformed rows in all.
    pub malformed_rows: u64,
}

impl fmt::Debug for CsvRead {
    /// Shapes only: the data may hold sensitive values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvRead")
            .field("columns", &self.schema.fields().len())
            .field("batches", &self.batches.len())
            .field("rows", &self.rows)
            .field("malformed_rows", &self.malformed_rows)
            .field("malformed", &self.malformed)
            .finish()
    }
}

struct Col {
    name: String,
    kind: Kind,
    data_type: DataType,
    sensitive: bool,
    buf: Buf,
}

/// Reads CSV from `reader`, typed by `contract`, in batches of at most
/// `batch_rows` rows.
///
/// Rows that do not parse (a field that is not a value of its column's
/// type, the wrong number of fields) are left out of the batches and
/// listed in [`CsvRead::malformed`] with the line they start on, counted
/// from the `csv` crate's record positions: quoted fields spanning lines
/// and skipped blank lines do not shift later numbers. Lines end with
/// `\n` or `\r\n` (a lone `\r` ends a record but not a line).
///
/// Nothing here checks the contract's rules: pass the batches to a
/// [`Validation`](crate::Validation).
///
/// # Errors
/// [`Error::InvalidArgument`] if `batch_rows` is 0; [`Error::Csv`] on an
/// I/O error, an empty input or a header that is not UTF-8;
/// [`Error::Schema`] if the header lacks a declared column, names a column
/// twice, or (strict contracts) names an undeclared one.
pub fn read(reader: impl std::io::Read, contract: &Contract, batch_rows: usize) -> Result<CsvRead> {
    if batch_rows == 0 {
        return Err(Error::InvalidArgument {
            message: "batch_rows must be at least 1".into(),
        });
    }
    let mut rows = Records::new(reader);
    let mut record = ::csv::ByteRecord::new();
    let Some(header_line) = rows.next(&mut record)? else {
        return Err(Error::Csv {
            line: None,
            message: "the input is empty: no header row".into(),
        });
    };
    let header_line = Some(header_line);
    let mut names = Vec::with_capacity(record.len());
    for field in &record {
        let name = std::str::from_utf8(field).map_err(|_| Error::Csv {
            line: header_line,
            message: "the header is not valid UTF-8".into(),
        })?;
        // The `csv` crate strips a byte order mark only when its first read
        // returns at least 3 bytes.
        let name = match names.is_empty() {
            true => name.strip_prefix('\u{feff}').unwrap_or(name),
            false => name,
        };
        names.push(name.to_owned());
    }
    let capacity = batch_rows.min(8192);
    let mut cols = columns(contract, &names, capacity)?;
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|c| Field::new(c.name.clone(), c.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ));

    let mut out = CsvRead {
        schema: schema.clone(),
        batches: Vec::new(),
        rows: 0,
        malformed: Vec::new(),
        malformed_rows: 0,
    };
    let mut cells = vec![Cell::Null; cols.len()];
    let mut pending = 0usize;
    while let Some(line) = rows.next(&mut record)? {
        out.rows += 1;
        match parse_row(&record, &cols, &mut cells) {
            Ok(()) => {
                for ((col, cell), field) in cols.iter_mut().zip(&cells).zip(&record) {
                    append(&mut col.buf, *cell, field)?;
                }
                pending += 1;
                if pending == batch_rows {
                    out.batches.push(flush(&schema, &mut cols, capacity)?);
                    pending = 0;
                }
            }
            Err((column, reason)) => {
                out.malformed_rows += 1;
                if out.malformed.len() < MAX_MALFORMED {
                    out.malformed.push(Malformed {
                        line,
                        column,
                        reason,
                    });
                }
            }
        }
    }
    if pending > 0 {
        out.batches.push(flush(&schema, &mut cols, capacity)?);
    }
    Ok(out)
}

fn columns(contract: &Contract, names: &[String], capacity: usize) -> Result<Vec<Col>> {
    let mut violations = Vec::new();
    for c in &contract.columns {
        if !names.contains(&c.name) {
            violations.push(SchemaViolation::Missing {
                column: c.name.clone(),
            });
        }
    }
    let mut cols = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let count = names.iter().filter(|n| *n == name).count();
        if count > 1 {
            if !names.iter().take(i).any(|n| n == name) {
                violations.push(SchemaViolation::Duplicate {
                    column: name.clone(),
                    count,
                });
            }
            continue;
        }
        let declared = contract.column(name);
        if declared.is_none() && contract.strict {
            violations.push(SchemaViolation::Extra {
                column: name.clone(),
            });
            continue;
        }
        let (kind, data_type) = match declared {
            Some(c) => (kind(&c.data_type), to_arrow(&c.data_type)),
            None => (Kind::Str, DataType::Utf8),
        };
        cols.push(Col {
            name: name.clone(),
            kind,
            data_type,
            sensitive: contract.is_sensitive(name),
            buf: new_buf(kind, capacity),
        });
    }
    if violations.is_empty() {
        Ok(cols)
    } else {
        Err(Error::Schema { violations })
    }
}

type Bad = (Option<String>, String);

fn parse_row(record: &::csv::ByteRecord, cols: &[Col], cells: &mut [Cell]) -> Result<(), Bad> {
    if record.len() != cols.len() {
        return Err((
            None,
            format!("expected {} fields, found {}", cols.len(), record.len()),
        ));
    }
    for ((col, field), cell) in cols.iter().zip(record).zip(cells.iter_mut()) {
        *cell = parse(col.kind, field).map_err(|why| {
            let reason = match (col.sensitive, std::str::from_utf8(field)) {
                (false, Ok(text)) => format!("{} is {why}", quote(text)),
                _ => format!("the value is {why}"),
            };
            (Some(col.name.clone()), reason)
        })?;
    }
    Ok(())
}

/// The pending rows as a batch; the buffers start over.
fn flush(schema: &SchemaRef, cols: &mut [Col], capacity: usize) -> Result<RecordBatch> {
    let mut arrays = Vec::with_capacity(cols.len());
    for col in cols.iter_mut() {
        let buf = std::mem::replace(&mut col.buf, new_buf(col.kind, capacity));
        arrays.push(finish(buf, &col.data_type)?);
    }
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}
