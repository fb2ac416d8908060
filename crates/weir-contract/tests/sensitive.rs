//! Values of sensitive columns never leave through a report, an error, a
//! malformed-row list, or their `Debug`, `Display` and JSON forms.

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use common::{batch, col, contract, range, text};
use weir_contract::{Checker, csv};
use weir_spec::{ColumnContract, ColumnType, Literal};

const SECRET: &str = "SECRET-078-05-1120";
const SECRET_NUMBER: i64 = 987_654_321;
const SECRET_PATTERN: &str = "PATTERN-4242";

fn sensitive(c: ColumnContract) -> ColumnContract {
    ColumnContract {
        sensitive: true,
        ..c
    }
}

fn assert_hidden(what: &str, text: &str) {
    for secret in [
        SECRET,
        "078-05-1120",
        &SECRET_NUMBER.to_string(),
        SECRET_PATTERN,
        "ALLOWED-SSN",
    ] {
        assert!(!text.contains(secret), "{what} leaks {secret}: {text}");
    }
}

#[test]
fn reports_verdicts_and_validations_hide_sensitive_values() {
    let c = contract(
        vec![
            sensitive(ColumnContract {
                nullable: false,
                unique: true,
                allowed: Some(vec![text("ALLOWED-SSN-1")]),
                regex: Some(format!("^{SECRET_PATTERN}$")),
                max_length: Some(5),
                ..col("ssn", ColumnType::String)
            }),
            sensitive(ColumnContract {
                range: range(Some(Literal::Int(0)), Some(Literal::Int(SECRET_NUMBER - 1))),
                allowed: Some(vec![Literal::Int(SECRET_NUMBER - 7)]),
                ..col("salary", ColumnType::Int64)
            }),
            col("id", ColumnType::Int64),
        ],
        &["ssn", "id"],
    );
    let data = batch(vec![
        (
            "ssn",
            Arc::new(StringArray::from(vec![Some(SECRET), Some(SECRET), None])) as ArrayRef,
        ),
        (
            "salary",
            Arc::new(Int64Array::from(vec![SECRET_NUMBER, -SECRET_NUMBER, 1])) as ArrayRef,
        ),
        ("id", Arc::new(Int64Array::from(vec![1, 1, 2])) as ArrayRef),
    ]);
    let checker = Checker::new(&c).unwrap();
    assert_hidden("checker debug", &format!("{checker:?}"));
    let mut validation = checker.begin();
    let verdict = validation.check(&data).unwrap();
    assert_eq!(verdict.num_bad(), 3);
    assert_hidden("validation debug", &format!("{validation:?}"));
    assert_hidden("verdict debug", &format!("{verdict:?}"));
    assert_hidden("bad rows", &format!("{:?}", verdict.bad_rows()));
    let report = validation.finish();
    // Every rule of both sensitive columns was broken, with counts and rows.
    assert_eq!(report.violations.len(), 8, "{report}");
    for v in &report.violations {
        assert!(v.rows > 0 && !v.first_rows.is_empty());
        assert!(v.examples.is_empty(), "{v}");
    }
    assert_hidden("report display", &report.to_string());
    assert_hidden("report debug", &format!("{report:?}"));
    assert_hidden("report json", &serde_json::to_string(&report).unwrap());
    assert!(
        report
            .to_string()
            .contains("column `ssn`: regex: 2 rows (rows 0, 1)"),
        "{report}"
    );
}

#[test]
fn contract_errors_hide_sensitive_literals() {
    let bad_regex = contract(
        vec![sensitive(ColumnContract {
            regex: Some(format!("({SECRET_PATTERN}")),
            ..col("ssn", ColumnType::String)
        })],
        &[],
    );
    let err = Checker::new(&bad_regex).unwrap_err();
    assert_eq!(
        err.to_string(),
        "contract column `ssn`: regex: does not compile"
    );
    assert_hidden("error debug", &format!("{err:?}"));

    let bad_date = contract(
        vec![sensitive(ColumnContract {
            range: range(Some(text(SECRET)), None),
            ..col("born", ColumnType::Date)
        })],
        &[],
    );
    let err = Checker::new(&bad_date).unwrap_err();
    assert_eq!(
        err.to_string(),
        "contract column `born`: range: a value (withheld: sensitive column) is not a date `YYYY-MM-DD`"
    );
    assert_hidden("error debug", &format!("{err:?}"));
}

#[test]
fn csv_malformed_rows_hide_sensitive_and_undeclared_values() {
    let c = contract(
        vec![
            sensitive(col("salary", ColumnType::Int64)),
            col("id", ColumnType::Int64),
        ],
        &[],
    );
    let data = format!("salary,id,extra\n{SECRET},1,{SECRET}\n{SECRET_NUMBER},2\n5,12x,z\n");
    let out = csv::read(data.as_bytes(), &c, 10).unwrap();
    let shown: Vec<String> = out.malformed.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "line 2: column `salary`: the value is not an integer",
            "line 3: expected 3 fields, found 2",
            "line 4: column `id`: \"12x\" is not an integer",
        ]
    );
    assert_hidden("malformed debug", &format!("{:?}", out.malformed));
    assert_hidden("csv read debug", &format!("{out:?}"));
    assert_hidden(
        "malformed json",
        &serde_json::to_string(&out.malformed).unwrap(),
    );
}
