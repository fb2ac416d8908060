//! Each rule broken and caught, with exact counts and global row numbers
//! across several batches.

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int32Array, Int64Array, LargeStringArray, StringArray, StringViewArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit as ArrowUnit};
use common::{bad, batch, col, contract, range, rows_of, run, text};
use weir_contract::{Checker, Error, Rule, SchemaViolation};
use weir_spec::{ColumnContract, ColumnType, Literal, TimeUnit};

fn ints(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

fn strs(v: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

#[test]
fn not_null_across_batches() {
    let c = contract(
        vec![ColumnContract {
            nullable: false,
            ..col("n", ColumnType::Int64)
        }],
        &[],
    );
    let batches = [
        batch(vec![("n", ints(vec![Some(1), None, Some(3)]))]),
        batch(vec![("n", ints(vec![None, Some(5)]))]),
        batch(vec![("n", ints(vec![]))]),
        batch(vec![("n", ints(vec![None]))]),
    ];
    let (verdicts, report) = run(&c, &batches);
    assert_eq!(rows_of(&verdicts, "n", Rule::NotNull), vec![1, 3, 5]);
    assert_eq!(verdicts[1].first_row(), 3);
    assert_eq!(verdicts[3].first_row(), 5);
    let good: Vec<bool> = verdicts[0].good().iter().map(Option::unwrap).collect();
    assert_eq!(good, vec![true, false, true]);
    assert_eq!((report.rows_checked, report.rows_bad), (6, 3));
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].rows, 3);
    assert_eq!(report.violations[0].first_rows, vec![1, 3, 5]);
    assert!(report.violations[0].examples.is_empty());
}

#[test]
fn unique_strings_first_occurrence_is_good() {
    let c = contract(
        vec![ColumnContract {
            unique: true,
            ..col("s", ColumnType::String)
        }],
        &[],
    );
    let batches = [
        batch(vec![("s", strs(vec![Some("a"), Some("b"), Some("a")]))]),
        batch(vec![(
            "s",
            strs(vec![Some("b"), None, Some("c"), None, Some("a"), Some("")]),
        )]),
        batch(vec![("s", strs(vec![Some(""), Some("c")]))]),
    ];
    let (verdicts, report) = run(&c, &batches);
    assert_eq!(rows_of(&verdicts, "s", Rule::Unique), vec![2, 3, 7, 9, 10]);
    assert_eq!(
        report.violations[0].examples,
        vec!["\"a\"", "\"b\"", "\"\""]
    );
}

#[test]
fn unique_ints_out_of_order_and_negative() {
    let c = contract(
        vec![ColumnContract {
            unique: true,
            ..col("n", ColumnType::Int64)
        }],
        &[],
    );
    let batches = [
        batch(vec![("n", ints(vec![Some(5), Some(3), Some(5), Some(-1)]))]),
        batch(vec![(
            "n",
            ints(vec![
                Some(3),
                Some(10),
                Some(-1),
                Some(7),
                Some(i64::MIN),
                Some(i64::MIN),
            ]),
        )]),
    ];
    let (verdicts, _) = run(&c, &batches);
    assert_eq!(rows_of(&verdicts, "n", Rule::Unique), vec![2, 4, 6, 9]);
}

#[test]
fn unique_floats_zero_signs_and_nan_are_one_value() {
    let c = contract(
        vec![ColumnContract {
            unique: true,
            ..col("f", ColumnType::Float64)
        }],
        &[],
    );
    let f: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(0.0),
        Some(-0.0),
        Some(f64::NAN),
        Some(-f64::NAN),
        Some(1.0),
        None,
        None,
    ]));
    let (verdicts, _) = run(&c, &[batch(vec![("f", f)])]);
    assert_eq!(rows_of(&verdicts, "f", Rule::Unique), vec![1, 3]);
}

#[test]
fn unique_timestamps_compare_instants_across_units() {
    let c = contract(
        vec![ColumnContract {
            unique: true,
            ..col(
                "t",
                ColumnType::Timestamp {
                    unit: None,
                    tz: None,
                },
            )
        }],
        &[],
    );
    let secs: ArrayRef = Arc::new(TimestampSecondArray::from(vec![1, 2]));
    let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1000, 1500, 3000]));
    let (verdicts, _) = run(&c, &[batch(vec![("t", secs)]), batch(vec![("t", millis)])]);
    assert_eq!(rows_of(&verdicts, "t", Rule::Unique), vec![2]);
}

#[test]
fn primary_key_single_column_nulls_and_duplicates() {
    let c = contract(
        vec![ColumnContract {
            nullable: false,
            ..col("id", ColumnType::Int64)
        }],
        &["id"],
    );
    let batches = [
        batch(vec![("id", ints(vec![Some(1), Some(2), None]))]),
        batch(vec![("id", ints(vec![Some(2), Some(3), Some(1)]))]),
    ];
    let (verdicts, report) = run(&c, &batches);
    assert_eq!(rows_of(&verdicts, "id", Rule::PrimaryKey), vec![2, 3, 5]);
    assert_eq!(rows_of(&verdicts, "id", Rule::NotNull), vec![2]);
    assert_eq!(report.rows_bad, 3);
    let pk = report
        .violations
        .iter()
        .find(|v| v.rule == Rule::PrimaryKey)
        .unwrap();
    assert_eq!(pk.examples, vec!["null", "2", "1"]);
}

#[test]
fn primary_key_shares_state_with_unique() {
    let c = contract(
        vec![ColumnContract {
            nullable: false,
            unique: true,
            ..col("id", ColumnType::Int64)
        }],
        &["id"],
    );
    let batches = [
        batch(vec![("id", ints(vec![Some(1), None, Some(1)]))]),
        batch(vec![("id", ints(vec![Some(2), Some(1), None]))]),
    ];
    let (verdicts, _) = run(&c, &batches);
    assert_eq!(rows_of(&verdicts, "id", Rule::Unique), vec![2, 4]);
    assert_eq!(rows_of(&verdicts, "id", Rule::PrimaryKey), vec![1, 2, 4, 5]);
}

#[test]
fn primary_key_tuples() {
    let c = contract(
        vec![
            col("region", ColumnType::String),
            col("n", ColumnType::Int32),
        ],
        &["region", "n"],
    );
    let b = |r: Vec<Option<&str>>, n: Vec<Option<i32>>| {
        batch(vec![
            ("region", strs(r)),
            ("n", Arc::new(Int32Array::from(n)) as ArrayRef),
        ])
    };
    let batches = [
        b(
            vec![Some("eu"), Some("eu"), Some("us")],
            vec![Some(1), Some(2), Some(1)],
        ),
        b(
            vec![
                Some("eu"),
                None,
                Some("us"),
                Some("us"),
                Some("eu"),
                Some("eu"),
            ],
            vec![Some(1), Some(1), Some(2), Some(1), None, None],
        ),
    ];
    let (verdicts, report) = run(&c, &batches);
    assert_eq!(
        rows_of(&verdicts, "region,n", Rule::PrimaryKey),
        vec![3, 4, 6, 7, 8]
    );
    let pk = &report.violations[0];
    assert_eq!(pk.detail, "primary key (`region`, `n`)");
    assert_eq!(pk.examples, vec!["(\"eu\", 1)", "(null, 1)", "(\"us\", 1)"]);
}

#[test]
fn primary_key_tuple_encoding_is_unambiguous() {
    let c = contract(
        vec![col("a", ColumnType::String), col("b", ColumnType::String)],
        &["a", "b"],
    );
    let batches = [batch(vec![
        (
            "a",
            strs(vec![Some("ab"), Some("a"), Some(""), Some("abc")]),
        ),
        (
            "b",
            strs(vec![Some("c"), Some("bc"), Some("abc"), Some("")]),
        ),
    ])];
    let (verdicts, _) = run(&c, &batches);
    assert!(bad(&verdicts).is_empty());
}

#[test]
fn range_of_integers() {
    let c = contract(
        vec![ColumnContract {
            range: range(Some(Literal::Int(18)), Some(Literal::Int(100))),
            ..col("age", ColumnType::Int32)
        }],
        &[],
    );
    let a = |v: Vec<Option<i32>>| batch(vec![("age", Arc::new(Int32Array::from(v)) as ArrayRef)]);
    let batches = [
        a(vec![Some(17), Some(18), Some(100), Some(101), None]),
        a(vec![Some(50), Some(-5), Some(i32::MIN), Some(i32::MAX)]),
    ];
    let (verdicts, report) = run(&c, &batches);
    assert_eq!(rows_of(&verdicts, "age", Rule::Range), vec![0, 3, 6, 7, 8]);
    assert_eq!(
        report.violations[0].to_string(),
        "column `age`: range [18, 100]: 5 rows (rows 0, 3, 6, 7, 8); examples: 17, 101, -5"
    );
}

#[test]
fn range_with_one_bound() {
    let min_only = contract(
        vec![ColumnContract {
            range: range(Some(Literal::Int(0)), None),
            ..col("n", ColumnType::Int64)
        }],
        &[],
    );
    let data = [batch(vec![(
        "n",
        ints(vec![Some(-1), Some(0), Some(i64::MAX), Some(i64::MIN)]),
    )])];
    assert_eq!(
        rows_of(&run(&min_only, &data).0, "n", Rule::Range),
        vec![0, 3]
    );
    let max_only = contract(
        vec![ColumnContract {
            range: range(None, Some(Literal::Int(0))),
            ..col("n", ColumnType::Int64)
        }],
        &[],
    );
    assert_eq!(rows_of(&run(&max_only, &data).0, "n", Rule::Range), vec![2]);
}

#[test]
fn range_of_floats_nan_is_outside() {
    let c = contract(
        vec![ColumnContract {
            range: range(Some(Literal::Int(0)), Some(Literal::Float(1.0))),
            ..col("f", ColumnType::Float64)
        }],
        &[],
    );
    let f: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(0.0),
        Some(1.0),
        Some(f64::NAN),
        Some(-0.0),
        Some(1.000_000_1),
        Some(f64::INFINITY),
        None,
        Some(f64::NEG_INFINITY),
    ]));
    let (verdicts, _) = run(&c, &[batch(vec![("f", f)])]);
    assert_eq!(rows_of(&verdicts, "f", Rule::Range), vec![2, 4, 5, 7]);

    let one_sided = contract(
        vec![ColumnContract {
            range: range(None, Some(Literal::Int(5))),
            ..col("f", ColumnType::Float32)
        }],
        &[],
    );
    let f: ArrayRef = Arc::new(Float32Array::from(vec![
        f32::NAN,
        5.0,
        5.5,
        f32::NEG_INFINITY,
    ]));
    let (verdicts, _) = run(&one_sided, &[batch(vec![("f", f)])]);
    assert_eq!(rows_of(&verdicts, "f", Rule::Range), vec![0, 2]);
}

#[test]
fn range_of_dates() {
    let c = contract(
        vec![ColumnContract {
            range: range(Some(text("2024-01-01")), Some(text("2024-12-31"))),
            ..col("d", ColumnType::Date)
        }],
        &[],
    );
    // 2023-12-31, 2024-01-01, 2024-12-31, 2025-01-01
    let d: ArrayRef = Arc::new(Date32Array::from(vec![19_722, 19_723, 20_088, 20_089]));
    let (verdicts, report) = run(&c, &[batch(vec![("d", d)])]);
    assert_eq!(rows_of(&verdicts, "d", Rule::Range), vec![0, 3]);
    assert_eq!(
        report.violations[0].examples,
        vec!["2023-12-31", "2025-01-01"]
    );
}

#[test]
fn range_of_timestamps_in_any_unit() {
    let c = contract(
        vec![ColumnContract {
            range: range(
                Some(text("2024-01-01T00:00:00.5Z")),
                Some(text("2024-01-01T02:00:01+01:00")),
            ),
            ..col(
                "t",
                ColumnType::Timestamp {
                    unit: None,
                    tz: Some("UTC".into()),
                },
            )
        }],
        &[],
    );
    let midnight: i64 = 1_704_067_200;
    let lo = midnight as i128 * 1_000_000_000 + 500_000_000;
    let hi = (midnight as i128 + 3601) * 1_000_000_000;
    let ns: ArrayRef = Arc::new(
        TimestampNanosecondArray::from(vec![
            (lo - 1) as i64,
            lo as i64,
            hi as i64,
            (hi + 1) as i64,
        ])
        .with_timezone("UTC"),
    );
    let secs: ArrayRef = Arc::new(
        TimestampSecondArray::from(vec![
            midnight,
            midnight + 1,
            midnight + 3601,
            midnight + 3602,
        ])
        .with_timezone("UTC"),
    );
    let (verdicts, report) = run(&c, &[batch(vec![("t", ns)]), batch(vec![("t", secs)])]);
    assert_eq!(rows_of(&verdicts, "t", Rule::Range), vec![0, 3, 4, 7]);
    assert_eq!(
        report.violations[0].examples[0],
        "2024-01-01T00:00:00.499999999Z"
    );
}

#[test]
fn range_of_decimals_and_wide_unsigned() {
    let c = contract(
        vec![
            ColumnContract {
                range: range(Some(text("0.01")), Some(Literal::Int(100))),
                ..col(
                    "price",
                    ColumnType::Decimal {
                        precision: 10,
                        scale: 2,
                    },
                )
            },
            ColumnContract {
                range: range(None, Some(Literal::Int(i64::MAX))),
                ..col("big", ColumnType::UInt64)
            },
        ],
        &[],
    );
    let price: ArrayRef = Arc::new(
        Decimal128Array::from(vec![0, 1, 10_000, 10_001])
            .with_precision_and_scale(10, 2)
            .unwrap(),
    );
    let big: ArrayRef = Arc::new(UInt64Array::from(vec![
        0,
        i64::MAX as u64,
        i64::MAX as u64 + 1,
        u64::MAX,
    ]));
    let (verdicts, report) = run(&c, &[batch(vec![("price", price), ("big", big)])]);
    assert_eq!(rows_of(&verdicts, "price", Rule::Range), vec![0, 3]);
    assert_eq!(rows_of(&verdicts, "big", Rule::Range), vec![2, 3]);
    assert_eq!(report.violations[0].examples, vec!["0.00", "100.01"]);
}

#[test]
fn allowed_values_of_each_kind() {
    let c = contract(
        vec![
            ColumnContract {
                allowed: Some(vec![text("US"), text("DE"), text("")]),
                ..col("country", ColumnType::String)
            },
            ColumnContract {
                allowed: Some(vec![text("a long allowed value"), text("x")]),
                ..col("long", ColumnType::String)
            },
            ColumnContract {
                allowed: Some(vec![Literal::Int(1), Literal::Int(3)]),
                ..col("n", ColumnType::Int64)
            },
            ColumnContract {
                allowed: Some(vec![Literal::Bool(true)]),
                ..col("b", ColumnType::Boolean)
            },
            ColumnContract {
                allowed: Some(vec![Literal::Float(1.5), Literal::Int(2)]),
                ..col("f", ColumnType::Float64)
            },
        ],
        &[],
    );
    let batches = [
        batch(vec![
            (
                "country",
                Arc::new(LargeStringArray::from(vec![Some("US"), Some("us"), None])) as ArrayRef,
            ),
            (
                "long",
                strs(vec![
                    Some("a long allowed value"),
                    Some("a long allowed valuf"),
                    Some("x"),
                ]),
            ),
            ("n", ints(vec![Some(1), Some(2), Some(3)])),
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![1.5, 2.0, 2.5])) as ArrayRef,
            ),
        ]),
        batch(vec![
            (
                "country",
                Arc::new(StringViewArray::from(vec![
                    Some(""),
                    Some("DE"),
                    Some("DEU"),
                ])) as ArrayRef,
            ),
            ("long", strs(vec![None, Some("y"), Some("")])),
            ("n", ints(vec![None, Some(-1), Some(1)])),
            (
                "b",
                Arc::new(BooleanArray::from(vec![
                    Some(false),
                    Some(true),
                    Some(true),
                ])) as ArrayRef,
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![f64::NAN, -0.0, 1.5])) as ArrayRef,
            ),
        ]),
    ];
    let (verdicts, _) = run(&c, &batches);
    assert_eq!(rows_of(&verdicts, "country", Rule::Allowed), vec![1, 5]);
    assert_eq!(rows_of(&verdicts, "long", Rule::Allowed), vec![1, 4, 5]);
    assert_eq!(rows_of(&verdicts, "n", Rule::Allowed), vec![1, 4]);
    assert_eq!(rows_of(&verdicts, "b", Rule::Allowed), vec![1, 3]);
    assert_eq!(rows_of(&verdicts, "f", Rule::Allowed), vec![2, 3, 4]);
}

#[test]
fn allowed_dates_timestamps_and_decimals() {
    let c = contract(
        vec![
            ColumnContract {
                allowed: Some(vec![text("2024-02-29")]),
                ..col("d", ColumnType::Date)
            },
            ColumnContract {
                allowed: Some(vec![text("1970-01-01T00:00:01Z")]),
                ..col(
                    "t",
                    ColumnType::Timestamp {
                        unit: None,
                        tz: None,
                    },
                )
            },
            ColumnContract {
                allowed: Some(vec![text("1.50"), Literal::Int(2)]),
                ..col(
                    "p",
                    ColumnType::Decimal {
                        precision: 5,
                        scale: 2,
                    },
                )
            },
        ],
        &[],
    );
    let d: ArrayRef = Arc::new(Date32Array::from(vec![19_782, 19_783]));
    let t: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1000, 1001]));
    let p: ArrayRef = Arc::new(
        Decimal128Array::from(vec![150, 151])
            .with_precision_and_scale(5, 2)
            .unwrap(),
    );
    let (verdicts, _) = run(&c, &[batch(vec![("d", d), ("t", t), ("p", p)])]);
    assert_eq!(rows_of(&verdicts, "d", Rule::Allowed), vec![1]);
    assert_eq!(rows_of(&verdicts, "t", Rule::Allowed), vec![1]);
    assert_eq!(rows_of(&verdicts, "p", Rule::Allowed), vec![1]);
}

#[test]
fn regex_unanchored_and_anchored() {
    let c = contract(
        vec![
            ColumnContract {
                regex: Some(r"\d".into()),
                ..col("has_digit", ColumnType::String)
            },
            ColumnContract {
                regex: Some(r"^cust-[0-9]{5}$".into()),
                ..col("customer", ColumnType::String)
            },
        ],
        &[],
    );
    let batches = [
        batch(vec![
            ("has_digit", strs(vec![Some("a1"), Some("abc"), None])),
            (
                "customer",
                strs(vec![
                    Some("cust-00001"),
                    Some("xcust-00001"),
                    Some("cust-1"),
                ]),
            ),
        ]),
        batch(vec![
            (
                "has_digit",
                Arc::new(StringViewArray::from(vec![Some("9"), Some("")])) as ArrayRef,
            ),
            (
                "customer",
                Arc::new(StringViewArray::from(vec![
                    Some("cust-123456"),
                    Some("cust-99999"),
                ])) as ArrayRef,
            ),
        ]),
    ];
    let (verdicts, report) = run(&c, &batches);
    assert_eq!(rows_of(&verdicts, "has_digit", Rule::Regex), vec![1, 4]);
    assert_eq!(rows_of(&verdicts, "customer", Rule::Regex), vec![1, 2, 3]);
    assert_eq!(
        report.violations[1].to_string(),
        "column `customer`: regex \"^cust-[0-9]{5}$\": 3 rows (rows 1, 2, 3); \
         examples: \"xcust-00001\", \"cust-1\", \"cust-123456\""
    );
}

#[test]
fn max_length_counts_characters_for_strings_and_bytes_for_binary() {
    let c = contract(
        vec![
            ColumnContract {
                max_length: Some(3),
                ..col("s", ColumnType::String)
            },
            ColumnContract {
                max_length: Some(3),
                ..col("b", ColumnType::Binary)
            },
        ],
        &[],
    );
    let s = strs(vec![
        Some("ééé"),
        Some("abcd"),
        Some("abc"),
        Some("éééé"),
        None,
    ]);
    let b: ArrayRef = Arc::new(BinaryArray::from(vec![
        Some("ééé".as_bytes()),
        Some(b"abcd".as_slice()),
        Some(b"abc".as_slice()),
        Some("é".as_bytes()),
        None,
    ]));
    let (verdicts, report) = run(&c, &[batch(vec![("s", s), ("b", b)])]);
    assert_eq!(rows_of(&verdicts, "s", Rule::MaxLength), vec![1, 3]);
    assert_eq!(rows_of(&verdicts, "b", Rule::MaxLength), vec![0, 1]);
    assert_eq!(
        report.violations[1].examples,
        vec!["c3a9c3a9c3a9", "61626364"]
    );
}

#[test]
fn nulls_pass_every_rule_but_not_null_and_key() {
    let c = contract(
        vec![ColumnContract {
            unique: true,
            range: None,
            allowed: Some(vec![text("a")]),
            regex: Some("^a$".into()),
            max_length: Some(1),
            ..col("s", ColumnType::String)
        }],
        &[],
    );
    let (verdicts, report) = run(
        &c,
        &[batch(vec![("s", strs(vec![None, None, Some("a"), None]))])],
    );
    assert!(bad(&verdicts).is_empty());
    assert!(report.is_clean());
    assert_eq!(
        report.to_string(),
        "contract `test`: 4 rows checked, all good"
    );
}

#[test]
fn sliced_batches_use_their_own_rows() {
    let c = contract(
        vec![ColumnContract {
            range: range(Some(Literal::Int(0)), None),
            ..col("n", ColumnType::Int64)
        }],
        &[],
    );
    let full = batch(vec![(
        "n",
        ints(vec![Some(-1), Some(-2), Some(3), None, Some(-5), Some(6)]),
    )]);
    let (verdicts, report) = run(&c, &[full.slice(2, 3), full.slice(1, 1)]);
    assert_eq!(rows_of(&verdicts, "n", Rule::Range), vec![2, 3]);
    assert_eq!(report.violations[0].examples, vec!["-5", "-2"]);
}

#[test]
fn undeclared_columns_are_ignored_unless_strict() {
    let mut c = contract(vec![col("n", ColumnType::Int64)], &[]);
    let data = batch(vec![
        ("n", ints(vec![Some(1)])),
        ("extra", strs(vec![Some("x")])),
    ]);
    let (verdicts, _) = run(&c, std::slice::from_ref(&data));
    assert!(verdicts[0].is_all_good());
    c.strict = true;
    let checker = Checker::new(&c).unwrap();
    assert_eq!(
        checker.check_schema(data.schema_ref()),
        vec![SchemaViolation::Extra {
            column: "extra".into()
        }]
    );
    let err = checker.begin().check(&data).unwrap_err();
    assert!(matches!(err, Error::Schema { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "the data does not match the contract: column `extra` is not declared (the contract is strict)"
    );
}

#[test]
fn schema_violations_all_at_once() {
    let c = contract(
        vec![
            ColumnContract {
                nullable: false,
                ..col("id", ColumnType::Int64)
            },
            col("name", ColumnType::String),
            col(
                "t",
                ColumnType::Timestamp {
                    unit: Some(TimeUnit::Us),
                    tz: None,
                },
            ),
            col("gone", ColumnType::Date),
            col("twice", ColumnType::Boolean),
        ],
        &[],
    );
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Int32, false),
        Field::new(
            "t",
            DataType::Timestamp(ArrowUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("twice", DataType::Boolean, true),
        Field::new("twice", DataType::Boolean, true),
    ]);
    let violations = Checker::new(&c).unwrap().check_schema(&schema);
    let text: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        vec![
            "column `name`: declared string, found int32",
            "column `t`: declared timestamp[us], found timestamp[us, UTC]",
            "column `gone` is missing",
            "column `twice` appears 2 times",
        ]
    );
}

#[test]
fn verdict_lists_each_bad_rows_rules() {
    let c = contract(
        vec![
            ColumnContract {
                nullable: false,
                range: range(Some(Literal::Int(0)), None),
                ..col("n", ColumnType::Int64)
            },
            ColumnContract {
                max_length: Some(1),
                ..col("s", ColumnType::String)
            },
        ],
        &["n"],
    );
    let data = batch(vec![
        ("n", ints(vec![Some(1), Some(-1), None, Some(1)])),
        ("s", strs(vec![Some("ok"), Some("x"), Some("y"), Some("z")])),
    ]);
    let (verdicts, report) = run(&c, &[data]);
    let v = &verdicts[0];
    assert_eq!(v.num_bad(), 4);
    let listed: Vec<(usize, Vec<String>)> = v
        .bad_rows()
        .into_iter()
        .map(|r| {
            (
                r.row,
                r.violations.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (0, vec!["s:max_length".to_owned()]),
            (1, vec!["n:range".to_owned()]),
            (2, vec!["n:not_null".to_owned(), "n:primary_key".to_owned()]),
            (3, vec!["n:primary_key".to_owned()]),
        ]
    );
    assert_eq!(
        report.to_string(),
        "contract `test`: 4 rows checked, 4 bad\n  \
         column `n`: not_null: 1 row (row 2)\n  \
         column `n`: range [0, ..]: 1 row (row 1); examples: -1\n  \
         column `s`: max_length 1: 1 row (row 0); examples: \"ok\"\n  \
         primary key (`n`): 2 rows (rows 2, 3); examples: null, 1"
    );
}

#[test]
fn report_keeps_first_twenty_rows_and_three_examples() {
    let c = contract(
        vec![ColumnContract {
            range: range(None, Some(Literal::Int(0))),
            ..col("n", ColumnType::Int64)
        }],
        &[],
    );
    let batches: Vec<_> = (0..5)
        .map(|b| {
            batch(vec![(
                "n",
                ints((0..5).map(|i| Some(b * 5 + i + 1)).collect()),
            )])
        })
        .collect();
    let (_, report) = run(&c, &batches);
    let v = &report.violations[0];
    assert_eq!(v.rows, 25);
    assert_eq!(v.first_rows, (0..20).collect::<Vec<u64>>());
    assert_eq!(v.examples, vec!["1", "2", "3"]);
    assert_eq!(
        v.to_string(),
        format!(
            "column `n`: range [.., 0]: 25 rows (first 20: rows {}); examples: 1, 2, 3",
            (0..20)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["rows_checked"], 25);
    assert_eq!(json["rows_bad"], 25);
    assert_eq!(json["violations"][0]["rule"], "range");
    assert_eq!(json["violations"][0]["column"], "n");
    assert_eq!(json["violations"][0]["rows"], 25);
}

#[test]
fn contract_literals_are_checked_when_compiling() {
    let bad = |c: ColumnContract| {
        Checker::new(&contract(vec![c], &[]))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        bad(ColumnContract {
            range: range(Some(text("2024-02-30")), None),
            ..col("d", ColumnType::Date)
        }),
        "contract column `d`: range: \"2024-02-30\" is not a date `YYYY-MM-DD`"
    );
    assert_eq!(
        bad(ColumnContract {
            range: range(Some(Literal::Int(5)), Some(Literal::Int(1))),
            ..col("n", ColumnType::Int64)
        }),
        "contract column `n`: range: min is greater than max"
    );
    assert_eq!(
        bad(ColumnContract {
            allowed: Some(vec![text("1.005")]),
            ..col(
                "p",
                ColumnType::Decimal {
                    precision: 10,
                    scale: 2
                }
            )
        }),
        "contract column `p`: allowed: \"1.005\": more decimal places than decimal(10,2) keeps"
    );
    assert_eq!(
        bad(ColumnContract {
            range: range(Some(text("2024-01-01 00:00:00")), None),
            ..col(
                "t",
                ColumnType::Timestamp {
                    unit: None,
                    tz: Some("UTC".into())
                }
            )
        }),
        "contract column `t`: range: \"2024-01-01 00:00:00\" needs an offset (`Z` or `+HH:MM`): \
         the column's times are zoned"
    );
    assert!(
        bad(ColumnContract {
            regex: Some("(".into()),
            ..col("s", ColumnType::String)
        })
        .starts_with("contract column `s`: regex: does not compile: regex parse error")
    );
    assert!(
        bad(ColumnContract {
            regex: Some("a{1000}{1000}".into()),
            ..col("s", ColumnType::String)
        })
        .contains("exceeds size limit")
    );
    let key = Checker::new(&contract(vec![col("a", ColumnType::Int64)], &["a", "b"])).unwrap_err();
    assert_eq!(
        key.to_string(),
        "contract column `a,b`: primary_key: key column `b` is not declared"
    );
}
