//! The typed CSV reader: types, nulls, malformed rows and their line
//! numbers (including quoted fields that span lines), schema problems.

mod common;

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int8Array, Int64Array, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, UInt16Array,
};
use arrow::datatypes::{DataType, TimeUnit as ArrowUnit};
use common::{col, contract};
use weir_contract::csv::{MAX_MALFORMED, Malformed, read};
use weir_contract::{Error, SchemaViolation};
use weir_spec::{ColumnContract, ColumnType, Contract, TimeUnit};

fn malformed(line: u64, column: Option<&str>, reason: &str) -> Malformed {
    Malformed {
        line,
        column: column.map(str::to_owned),
        reason: reason.into(),
    }
}

#[test]
fn declared_types_are_parsed_and_empty_fields_are_null() {
    let c = contract(
        vec![
            col("b", ColumnType::Boolean),
            col("i8", ColumnType::Int8),
            col("i", ColumnType::Int64),
            col("u", ColumnType::UInt16),
            col("f", ColumnType::Float32),
            col("g", ColumnType::Float64),
            col("d", ColumnType::Date),
            col(
                "t",
                ColumnType::Timestamp {
                    unit: Some(TimeUnit::Ms),
                    tz: Some("UTC".into()),
                },
            ),
            col(
                "naive",
                ColumnType::Timestamp {
                    unit: None,
                    tz: None,
                },
            ),
            col(
                "p",
                ColumnType::Decimal {
                    precision: 6,
                    scale: 2,
                },
            ),
            col("s", ColumnType::String),
            col("bin", ColumnType::Binary),
        ],
        &[],
    );
    let data = "b,i8,i,u,f,g,d,t,naive,p,s,bin,other\n\
                true,-128,9223372036854775807,65535,1.5,-2e3,2024-02-29,2024-01-01T00:00:00.123+01:00,2024-01-01 00:00:00.000001,-12.5,héllo,raw,x\n\
                ,,,,,,,,,,,,\n";
    let out = read(data.as_bytes(), &c, 10).unwrap();
    assert!(out.malformed.is_empty(), "{:?}", out.malformed);
    assert_eq!((out.rows, out.batches.len()), (2, 1));
    let b = &out.batches[0];
    assert_eq!(
        b.schema().field(12).data_type(),
        &DataType::Utf8,
        "undeclared column"
    );
    assert!(b.schema().fields().iter().all(|f| f.is_nullable()));
    for column in b.columns() {
        assert!(column.is_null(1));
    }
    let get = |i: usize| b.column(i).as_ref();
    assert!(
        get(0)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .value(0)
    );
    assert_eq!(
        get(1)
            .as_any()
            .downcast_ref::<Int8Array>()
            .unwrap()
            .value(0),
        -128
    );
    assert_eq!(
        get(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0),
        i64::MAX
    );
    assert_eq!(
        get(3)
            .as_any()
            .downcast_ref::<UInt16Array>()
            .unwrap()
            .value(0),
        65_535
    );
    assert_eq!(
        get(4)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap()
            .value(0),
        1.5
    );
    assert_eq!(
        get(5)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .value(0),
        -2000.0
    );
    assert_eq!(
        get(6)
            .as_any()
            .downcast_ref::<Date32Array>()
            .unwrap()
            .value(0),
        19_782
    );
    let t = get(7)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(t.value(0), (1_704_067_200 - 3600) * 1000 + 123);
    assert_eq!(t.timezone(), Some("UTC"));
    let naive = get(8)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    assert_eq!(naive.value(0), 1_704_067_200 * 1_000_000 + 1);
    assert_eq!(
        naive.data_type(),
        &DataType::Timestamp(ArrowUnit::Microsecond, None)
    );
    let p = get(9).as_any().downcast_ref::<Decimal128Array>().unwrap();
    assert_eq!((p.value(0), p.precision(), p.scale()), (-1250, 6, 2));
    assert_eq!(
        get(10)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0),
        "héllo"
    );
    assert_eq!(
        get(11)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap()
            .value(0),
        b"raw"
    );
}

#[test]
fn malformed_rows_are_reported_with_line_and_column_and_left_out() {
    let c = contract(
        vec![
            col("id", ColumnType::Int64),
            col("day", ColumnType::Date),
            col("note", ColumnType::String),
        ],
        &[],
    );
    let data = "id,day,note\n\
                1,2024-01-01,ok\n\
                2,2024-02-30,bad day\n\
                x,2024-01-02,bad id\n\
                3,2024-01-03\n\
                4,2024-01-04,ok,extra\n\
                5,2024-01-05,ok\n";
    let out = read(data.as_bytes(), &c, 10).unwrap();
    assert_eq!(
        out.malformed,
        vec![
            malformed(3, Some("day"), "\"2024-02-30\" is not a date (YYYY-MM-DD)"),
            malformed(4, Some("id"), "\"x\" is not an integer"),
            malformed(5, None, "expected 3 fields, found 2"),
            malformed(6, None, "expected 3 fields, found 4"),
        ]
    );
    assert_eq!((out.rows, out.malformed_rows), (6, 4));
    let ids: Vec<i64> = out.batches[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values()
        .to_vec();
    assert_eq!(ids, vec![1, 5]);
    assert_eq!(
        out.malformed[0].to_string(),
        "line 3: column `day`: \"2024-02-30\" is not a date (YYYY-MM-DD)"
    );
    assert_eq!(
        out.malformed[2].to_string(),
        "line 5: expected 3 fields, found 2"
    );
}

#[test]
fn line_numbers_count_quoted_fields_that_span_lines() {
    let c = contract(
        vec![
            col("id", ColumnType::Int64),
            col("note", ColumnType::String),
        ],
        &[],
    );
    let data = "id,note\n\
                1,\"first line\nsecond line\nthird line\"\n\
                oops,plain\n\
                2,\"a\r\nb\"\n\
                bad,\"spans\ntwo\"\n\
                3,end\n\
                x,last\n";
    let out = read(data.as_bytes(), &c, 10).unwrap();
    let lines: Vec<u64> = out.malformed.iter().map(|m| m.line).collect();
    assert_eq!(lines, vec![5, 8, 11]);
    assert_eq!(out.rows, 6);
    let notes = out.batches[0].column(1).as_string::<i32>();
    assert_eq!(notes.value(0), "first line\nsecond line\nthird line");
    assert_eq!(notes.value(1), "a\r\nb");
}

#[test]
fn header_is_line_one_and_blank_lines_still_count() {
    let c = contract(vec![col("n", ColumnType::Int64)], &[]);
    let out = read("n\n1\n\nx\n".as_bytes(), &c, 10).unwrap();
    assert_eq!(
        out.malformed,
        vec![malformed(4, Some("n"), "\"x\" is not an integer")]
    );
    let out = read("n\r\n1\r\nx\r\n".as_bytes(), &c, 10).unwrap();
    assert_eq!(out.malformed[0].line, 3);
}

#[test]
fn integers_out_of_their_types_range_are_malformed() {
    let c = contract(
        vec![col("small", ColumnType::Int8), col("u", ColumnType::UInt16)],
        &[],
    );
    let out = read("small,u\n128,1\n1,-1\n1,65536\n+7, 8\n".as_bytes(), &c, 10).unwrap();
    let reasons: Vec<String> = out.malformed.iter().map(ToString::to_string).collect();
    assert_eq!(
        reasons,
        vec![
            "line 2: column `small`: \"128\" is out of range [-128, 127]",
            "line 3: column `u`: \"-1\" is not a non-negative integer",
            "line 4: column `u`: \"65536\" is out of range [0, 65535]",
            "line 5: column `u`: \" 8\" is not a non-negative integer",
        ]
    );
}

#[test]
fn timestamps_respect_zone_and_unit() {
    let c = contract(
        vec![
            col(
                "zoned",
                ColumnType::Timestamp {
                    unit: Some(TimeUnit::S),
                    tz: Some("UTC".into()),
                },
            ),
            col("bool", ColumnType::Boolean),
        ],
        &[],
    );
    let data = "zoned,bool\n\
                2024-01-01T00:00:00Z,false\n\
                2024-01-01T00:00:00,true\n\
                2024-01-01T00:00:00.5Z,true\n\
                2024-01-01T00:00:00Z,TRUE\n\
                not a time,true\n";
    let out = read(data.as_bytes(), &c, 10).unwrap();
    let reasons: Vec<String> = out.malformed.iter().map(|m| m.reason.clone()).collect();
    assert_eq!(
        reasons,
        vec![
            "\"2024-01-01T00:00:00\" is a timestamp without an offset, in a column with a time zone",
            "\"2024-01-01T00:00:00.5Z\" is more precise than the column's time unit",
            "\"TRUE\" is not `true` or `false`",
            "\"not a time\" is not a timestamp (RFC 3339, e.g. 2024-01-31T12:00:00Z)",
        ]
    );
    assert_eq!(out.batches[0].num_rows(), 1);
}

#[test]
fn decimals_are_exact_or_malformed() {
    let c = contract(
        vec![col(
            "p",
            ColumnType::Decimal {
                precision: 4,
                scale: 2,
            },
        )],
        &[],
    );
    let out = read("p\n12.34\n1.234\n123.4\n1e2\n".as_bytes(), &c, 10).unwrap();
    let reasons: Vec<String> = out.malformed.iter().map(|m| m.reason.clone()).collect();
    assert_eq!(
        reasons,
        vec![
            "\"1.234\" is more decimal places than decimal(4,2) keeps",
            "\"123.4\" is too many digits for decimal(4,2)",
            "\"1e2\" is not a decimal number ([+-]digits[.digits])",
        ]
    );
}

#[test]
fn invalid_utf8_in_a_string_column_is_malformed() {
    let c = contract(
        vec![col("s", ColumnType::String), col("b", ColumnType::Binary)],
        &[],
    );
    let data: &[u8] = b"s,b\nok,\xff\n\xff,ok\n";
    let out = read(data, &c, 10).unwrap();
    assert_eq!(
        out.malformed,
        vec![malformed(3, Some("s"), "the value is not valid UTF-8")]
    );
    assert_eq!(out.batches[0].num_rows(), 1);
}

#[test]
fn batches_hold_at_most_batch_rows() {
    let c = contract(vec![col("n", ColumnType::Int64)], &[]);
    let out = read("n\n1\n2\nx\n3\n4\n5\n".as_bytes(), &c, 2).unwrap();
    let sizes: Vec<usize> = out.batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    let out = read("n\n".as_bytes(), &c, 2).unwrap();
    assert!(out.batches.is_empty());
    assert_eq!(out.schema.fields().len(), 1);
    assert!(matches!(
        read("n\n".as_bytes(), &c, 0),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn malformed_list_is_capped_but_counted() {
    let c = contract(vec![col("n", ColumnType::Int64)], &[]);
    let mut data = String::from("n\n");
    for i in 0..3000 {
        data.push_str(if i % 2 == 0 { "x\n" } else { "1\n" });
    }
    let out = read(data.as_bytes(), &c, 100).unwrap();
    assert_eq!(out.malformed.len(), MAX_MALFORMED);
    assert_eq!(out.malformed_rows, 1500);
    assert_eq!(
        out.malformed.last().unwrap().line,
        2 + 2 * (MAX_MALFORMED as u64 - 1)
    );
    assert_eq!(out.rows, 3000);
}

fn strict(columns: Vec<ColumnContract>) -> Contract {
    Contract {
        strict: true,
        ..contract(columns, &[])
    }
}

#[test]
fn header_problems_are_schema_errors() {
    let c = strict(vec![
        col("a", ColumnType::Int64),
        col("b", ColumnType::Int64),
    ]);
    let Err(Error::Schema { violations }) = read("a,c,c,d\n1,2,3,4\n".as_bytes(), &c, 10) else {
        panic!("expected a schema error");
    };
    assert_eq!(
        violations,
        vec![
            SchemaViolation::Missing { column: "b".into() },
            SchemaViolation::Duplicate {
                column: "c".into(),
                count: 2
            },
            SchemaViolation::Extra { column: "d".into() },
        ]
    );
    let err = read("".as_bytes(), &c, 10).unwrap_err();
    assert_eq!(err.to_string(), "CSV: the input is empty: no header row");
    let err = read(&b"a,\xff\n"[..], &c, 10).unwrap_err();
    assert_eq!(err.to_string(), "CSV line 1: the header is not valid UTF-8");
}

#[test]
fn io_errors_are_reported() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let c = contract(vec![], &[]);
    let err = read(Failing, &c, 10).unwrap_err();
    assert!(matches!(err, Error::Csv { .. }));
    assert!(err.to_string().contains("disk on fire"), "{err}");
}

/// Yields its input one byte per `read`, so records straddle every chunk
/// boundary.
struct OneByte<'a>(&'a [u8]);

impl std::io::Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn line_numbers_with_mixed_endings_blank_lines_and_a_bom() {
    let c = contract(vec![col("n", ColumnType::Int64)], &[]);
    for trailing_newline in [true, false] {
        let mut text = String::from("\u{feff}n\r\n");
        let mut line = 2u64;
        let mut expected = Vec::new();
        for i in 0..60 {
            let ending = |k: usize| {
                if (i + k).is_multiple_of(2) {
                    "\n"
                } else {
                    "\r\n"
                }
            };
            for k in 0..i % 3 {
                text.push_str(ending(k));
                line += 1;
            }
            expected.push(line);
            if i % 4 == 0 {
                text.push_str(&format!("\"x{i}\r\nmore\nlines\""));
                line += 2;
            } else {
                text.push_str(&format!("x{i}"));
            }
            if i < 59 || trailing_newline {
                text.push_str(ending(7));
                line += 1;
            }
        }
        let out = read(text.as_bytes(), &c, 10).unwrap();
        let lines: Vec<u64> = out.malformed.iter().map(|m| m.line).collect();
        assert_eq!(lines, expected, "trailing newline: {trailing_newline}");
        let out = read(OneByte(text.as_bytes()), &c, 10).unwrap();
        let lines: Vec<u64> = out.malformed.iter().map(|m| m.line).collect();
        assert_eq!(
            lines, expected,
            "one byte at a time, trailing newline: {trailing_newline}"
        );
    }
}
