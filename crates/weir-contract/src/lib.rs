//! weir-contract: checks Arrow data against a data contract.
//!
//! A [`weir_spec::Contract`] (validated by `weir-spec`) goes in once, as a
//! [`Checker`]; record batches go through a [`Validation`], one after the
//! other; out come a [`BatchVerdict`] per batch (which rows are good, which
//! rules each bad row broke) and a [`Report`] at the end. [`filter_good`]
//! and [`quarantine_rows`] split a batch by its verdict, and [`csv::read`]
//! reads a CSV file with the contract's types, setting aside rows that do
//! not parse.
//!
//! ```
//! use weir_contract::{Checker, csv, filter_good, quarantine_rows};
//! use weir_spec::{ColumnContract, ColumnType, Contract, OnViolation};
//!
//! let column = |name: &str, data_type| ColumnContract {
//!     name: name.into(),
//!     data_type,
//!     nullable: false,
//!     sensitive: false,
//!     unique: false,
//!     range: None,
//!     allowed: None,
//!     regex: None,
//!     max_length: None,
//! };
//! let contract = Contract {
//!     columns: vec![
//!         column("id", ColumnType::Int64),
//!         ColumnContract { regex: Some("^[a-z]+@[a-z.]+$".into()), ..column("email", ColumnType::String) },
//!     ],
//!     primary_key: vec!["id".into()],
//!     strict: true,
//!     on_violation: OnViolation::Fail,
//!     source: "contracts/users.yaml".into(),
//! };
//! let data = "id,email\n1,ann@example.org\n2,bob\n1,cat@example.org\nx,dan@example.org\n";
//! let read = csv::read(data.as_bytes(), &contract, 1024)?;
//! assert_eq!(read.malformed[0].to_string(), "line 5: column `id`: \"x\" is not an integer");
//!
//! let checker = Checker::new(&contract)?;
//! let mut validation = checker.begin();
//! let batch = &read.batches[0];
//! let verdict = validation.check(batch)?;
//! assert_eq!(filter_good(batch, &verdict)?.num_rows(), 1);
//! assert_eq!(quarantine_rows(batch, &verdict)?.num_rows(), 2);
//! let report = validation.finish();
//! assert_eq!(report.to_string(), "\
//! contract `contracts/users.yaml`: 3 rows checked, 2 bad
//!   column `email`: regex \"^[a-z]+@[a-z.]+$\": 1 row (row 1); examples: \"bob\"
//!   primary key (`id`): 1 row (row 2); examples: 1");
//! # Ok::<(), weir_contract::Error>(())
//! ```
//!
//! # Guarantees
//! - Every rule of the contract is checked on every row: `not_null`,
//!   `unique` and `primary_key` (across all batches of a validation: the
//!   first occurrence is good, later ones are not), `range` (inclusive;
//!   NaN is out of every range), `allowed`, `regex` (unanchored unless the
//!   pattern anchors it), `max_length` (characters for strings, bytes for
//!   binary). A null passes every rule except `not_null` and
//!   `primary_key`. Types are checked per schema ([`Checker::check_schema`],
//!   [`types::fits`]); undeclared columns are ignored unless the contract is
//!   strict.
//! - Rows are numbered from 0 in arrival order across batches; verdicts,
//!   reports and quarantined rows use those numbers.
//! - Values of a column marked `sensitive`, and of undeclared columns,
//!   never appear in a [`Report`], an [`Error`], a [`csv::Malformed`] or
//!   their `Debug` output; neither do a sensitive column's bounds, allowed
//!   values or pattern. Row numbers and counts do.
//! - Untrusted data never panics: indexing, `unwrap` and `expect` are
//!   denied outside tests; regexes are compiled with a 1 MiB size limit and
//!   matched in linear time (the `regex` crate).
//! - Hot loops read Arrow buffers directly (typed slices, validity
//!   bitmaps, `&str` views): no value is copied or allocated to be checked,
//!   except what `unique` and `primary_key` keep (each new string; each
//!   row's key tuple, for a key of several columns).
//!
//! # Non-goals
//! - I/O: data comes in as batches (or a reader, for CSV); writing good and
//!   quarantined rows is the engine's job.
//! - Query engines: no DataFusion here; the crate depends on `arrow`,
//!   `regex` and `csv` only, and sits above `weir-spec`, below `weir-engine`.
//! - Bounded memory for `unique` and `primary_key`: the values seen are
//!   kept for the whole validation.
//! - Dictionary- or run-encoded columns, `Date64`, `Decimal256`: they do not
//!   fit any contract type; decode or cast first.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod checker;
pub mod csv;
mod error;
mod hash;
mod quarantine;
mod report;
mod rule;
mod scan;
mod seen;
pub mod types;
mod validation;
mod value;

pub use checker::{Checker, SchemaViolation};
pub use error::{Error, Result};
pub use quarantine::{
    ROW_COLUMN, VIOLATIONS_COLUMN, filter_good, quarantine_rows, quarantine_schema,
};
pub use report::{Report, RuleReport};
pub use rule::{ColumnRule, Rule};
pub use validation::{BadRow, BatchVerdict, Validation};
