//! Splitting batches by their verdict: good rows on, bad rows to quarantine
//! with their global row numbers and broken rules.

mod common;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, UInt64Type};
use common::{batch, col, contract, range};
use weir_contract::{
    Checker, Error, ROW_COLUMN, VIOLATIONS_COLUMN, filter_good, quarantine_rows, quarantine_schema,
};
use weir_spec::{ColumnContract, ColumnType, Literal};

fn ints(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

#[test]
fn good_rows_continue_and_bad_rows_are_quarantined_with_numbers_and_rules() {
    let c = contract(
        vec![
            ColumnContract {
                nullable: false,
                range: range(Some(Literal::Int(0)), None),
                ..col("id", ColumnType::Int64)
            },
            ColumnContract {
                max_length: Some(2),
                ..col("s", ColumnType::String)
            },
        ],
        &["id"],
    );
    let checker = Checker::new(&c).unwrap();
    let mut validation = checker.begin();
    let first = batch(vec![
        ("id", ints(vec![Some(1), Some(2)])),
        ("s", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef),
    ]);
    let v = validation.check(&first).unwrap();
    assert!(v.is_all_good());
    assert_eq!(filter_good(&first, &v).unwrap(), first);
    assert_eq!(quarantine_rows(&first, &v).unwrap().num_rows(), 0);

    let second = batch(vec![
        ("id", ints(vec![Some(3), Some(-1), Some(2), None, Some(4)])),
        (
            "s",
            Arc::new(StringArray::from(vec!["ok", "too long", "x", "y", "z"])) as ArrayRef,
        ),
    ]);
    let v = validation.check(&second).unwrap();
    let good = filter_good(&second, &v).unwrap();
    let ids: Vec<i64> = good.column(0).as_primitive::<Int64Type>().values().to_vec();
    assert_eq!(ids, vec![3, 4]);

    let bad = quarantine_rows(&second, &v).unwrap();
    assert_eq!(
        bad.schema().as_ref(),
        &quarantine_schema(second.schema_ref()).unwrap()
    );
    let ids = bad.column(0).as_primitive::<Int64Type>();
    assert_eq!(
        ids.iter().collect::<Vec<_>>(),
        vec![Some(-1), Some(2), None]
    );
    let rows: Vec<u64> = bad
        .column_by_name(ROW_COLUMN)
        .unwrap()
        .as_primitive::<UInt64Type>()
        .values()
        .to_vec();
    assert_eq!(rows, vec![3, 4, 5]);
    let listed: Vec<&str> = bad
        .column_by_name(VIOLATIONS_COLUMN)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(
        listed,
        vec![
            "id:range;s:max_length",
            "id:primary_key",
            "id:not_null;id:primary_key"
        ]
    );
    assert_eq!(
        bad.column_by_name(VIOLATIONS_COLUMN).unwrap().null_count(),
        0
    );
}

#[test]
fn a_verdict_for_another_batch_is_refused() {
    let c = contract(vec![col("n", ColumnType::Int64)], &[]);
    let checker = Checker::new(&c).unwrap();
    let two = batch(vec![("n", ints(vec![Some(1), Some(2)]))]);
    let three = batch(vec![("n", ints(vec![Some(1), Some(2), Some(3)]))]);
    let v = checker.begin().check(&two).unwrap();
    assert!(matches!(
        filter_good(&three, &v),
        Err(Error::VerdictMismatch {
            expected: 2,
            found: 3
        })
    ));
    assert!(matches!(
        quarantine_rows(&three, &v),
        Err(Error::VerdictMismatch { .. })
    ));
}

#[test]
fn quarantine_columns_must_not_exist_yet() {
    let schema = Schema::new(vec![Field::new(ROW_COLUMN, DataType::Int64, true)]);
    let err = quarantine_schema(&schema).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid argument: the data already has a column `weir_row`, which quarantine adds"
    );
    let schema = Schema::new(vec![Field::new("a", DataType::Int64, true)]);
    let q = quarantine_schema(&schema).unwrap();
    let names: Vec<&str> = q.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, vec!["a", ROW_COLUMN, VIOLATIONS_COLUMN]);
    assert_eq!(q.field(1).data_type(), &DataType::UInt64);
    assert_eq!(q.field(2).data_type(), &DataType::Utf8);
}
