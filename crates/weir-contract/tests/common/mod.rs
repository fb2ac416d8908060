//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use weir_contract::{BatchVerdict, Checker, Report, Rule};
use weir_spec::{ColumnContract, ColumnType, Contract, Literal, OnViolation, Range};

/// A nullable column with no constraint.
pub fn col(name: &str, data_type: ColumnType) -> ColumnContract {
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

pub fn range(min: Option<Literal>, max: Option<Literal>) -> Option<Range> {
    Some(Range { min, max })
}

pub fn text(s: &str) -> Literal {
    Literal::Text(s.into())
}

pub fn contract(columns: Vec<ColumnContract>, primary_key: &[&str]) -> Contract {
    Contract {
        columns,
        primary_key: primary_key.iter().map(|s| (*s).to_owned()).collect(),
        strict: false,
        on_violation: OnViolation::Fail,
        source: "test".into(),
    }
}

/// A batch of nullable columns.
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// Checks `batches` in order with a fresh validation.
pub fn run(contract: &Contract, batches: &[RecordBatch]) -> (Vec<BatchVerdict>, Report) {
    let checker = Checker::new(contract).unwrap();
    let mut validation = checker.begin();
    let verdicts = batches
        .iter()
        .map(|b| validation.check(b).unwrap())
        .collect();
    (verdicts, validation.finish())
}

/// Global bad rows per (column, rule), from the verdicts.
pub fn bad(verdicts: &[BatchVerdict]) -> BTreeMap<(String, Rule), Vec<u64>> {
    let mut out: BTreeMap<(String, Rule), Vec<u64>> = BTreeMap::new();
    for v in verdicts {
        for (rule, rows) in v.failures() {
            out.entry((rule.column.clone(), rule.rule))
                .or_default()
                .extend(rows.iter().map(|r| v.first_row() + *r as u64));
        }
    }
    out
}

/// The bad rows of one (column, rule), from the verdicts.
pub fn rows_of(verdicts: &[BatchVerdict], column: &str, rule: Rule) -> Vec<u64> {
    bad(verdicts)
        .remove(&(column.to_owned(), rule))
        .unwrap_or_default()
}
