//! Hostile inputs, one test per attack: each must be refused or handled in
//! bounded time and memory, never panic.

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use common::{batch, col, contract, rows_of, run};
use weir_contract::{Checker, Error, Rule, csv};
use weir_spec::{ColumnContract, ColumnType, TimeUnit};

#[test]
fn nested_quantifier_regex_runs_in_linear_time() {
    // `^(a+)+$` backtracks exponentially in some engines; the `regex` crate
    // matches in time linear in the input.
    let c = contract(
        vec![ColumnContract {
            regex: Some("^(a+)+$".into()),
            ..col("s", ColumnType::String)
        }],
        &[],
    );
    let evil = format!("{}!", "a".repeat(200_000));
    let s: ArrayRef = Arc::new(StringArray::from(vec![
        evil.as_str(),
        "aaaa",
        evil.as_str(),
    ]));
    let (verdicts, report) = run(&c, &[batch(vec![("s", s)])]);
    assert_eq!(rows_of(&verdicts, "s", Rule::Regex), vec![0, 2]);
    // Examples are cut to a bounded length.
    assert!(report.violations[0].examples[0].len() < 100);
}

#[test]
fn regex_that_compiles_to_a_huge_program_is_refused() {
    let c = contract(
        vec![ColumnContract {
            regex: Some(r"\w{500}\w{500}\w{500}".into()),
            ..col("s", ColumnType::String)
        }],
        &[],
    );
    let err = Checker::new(&c).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Contract {
                rule: Rule::Regex,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn decimal_with_thousands_of_digits_is_malformed() {
    let c = contract(
        vec![col(
            "p",
            ColumnType::Decimal {
                precision: 38,
                scale: 2,
            },
        )],
        &[],
    );
    let data = format!("p\n{}\n0.{}\n", "9".repeat(10_000), "1".repeat(10_000));
    let out = csv::read(data.as_bytes(), &c, 10).unwrap();
    assert_eq!(out.malformed_rows, 2);
    assert!(
        out.malformed.iter().all(|m| m.reason.len() < 200),
        "{:?}",
        out.malformed
    );
}

#[test]
fn timestamp_beyond_the_units_range_is_malformed() {
    let c = contract(
        vec![col(
            "t",
            ColumnType::Timestamp {
                unit: Some(TimeUnit::Ns),
                tz: Some("UTC".into()),
            },
        )],
        &[],
    );
    let out = csv::read("t\n9999-12-31T23:59:59Z\n".as_bytes(), &c, 10).unwrap();
    assert_eq!(
        out.malformed[0].reason,
        "\"9999-12-31T23:59:59Z\" is a timestamp out of range"
    );
}

#[test]
fn unterminated_quote_swallows_the_rest_without_panicking() {
    let c = contract(
        vec![col("n", ColumnType::Int64), col("s", ColumnType::String)],
        &[],
    );
    let out = csv::read("n,s\n1,\"open\n2,b\n3,c\n".as_bytes(), &c, 10).unwrap();
    assert_eq!(out.rows, 1);
    let s = out.batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(s.value(0), "open\n2,b\n3,c\n");
}

#[test]
fn column_names_that_look_like_separators_stay_names() {
    // `weir_violations` lists `column:rule;...`; odd names are written as
    // they are, the rule is always the last `:`-separated part of a pair.
    let c = contract(
        vec![ColumnContract {
            nullable: false,
            ..col("a:b;c", ColumnType::String)
        }],
        &[],
    );
    let s: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>]));
    let (verdicts, _) = run(&c, &[batch(vec![("a:b;c", s)])]);
    let rows = verdicts[0].bad_rows();
    assert_eq!(rows[0].violations[0].to_string(), "a:b;c:not_null");
}

#[test]
fn wrong_typed_data_is_refused_before_any_row_is_counted() {
    let c = contract(vec![col("n", ColumnType::Int64)], &[]);
    let checker = Checker::new(&c).unwrap();
    let mut validation = checker.begin();
    let s: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
    let err = validation.check(&batch(vec![("n", s)])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the data does not match the contract: column `n`: declared int64, found utf8"
    );
    assert_eq!(validation.rows_checked(), 0);
}
