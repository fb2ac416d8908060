//! The checker against a simple reference checker written here: random
//! small contracts, random rows (nulls, duplicates, out-of-range values,
//! strings that match a regex or not), random batch splits. Both must name
//! exactly the same bad rows for every (column, rule).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use common::{bad, col, contract};
use proptest::prelude::*;
use regex::Regex;
use weir_contract::{Checker, Rule};
use weir_spec::{ColumnContract, ColumnType, Contract, Literal, Range};

const STRS: [&str; 10] = ["", "a", "b", "ab", "ba", "abc", "c", "aab", "é", "éé"];
const FLOATS: [f64; 9] = [
    -1.0,
    0.0,
    -0.0,
    0.5,
    1.0,
    2.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];
const PATTERNS: [&str; 5] = ["^a", "b$", "^[ab]+$", "c", "^$"];

#[derive(Debug, Clone)]
struct Common {
    nullable: bool,
    unique: bool,
}

#[derive(Debug, Clone)]
struct IntSpec {
    common: Common,
    range: Option<(Option<i64>, Option<i64>)>,
    allowed: Option<Vec<i64>>,
}

#[derive(Debug, Clone)]
struct StrSpec {
    common: Common,
    regex: Option<&'static str>,
    max_length: Option<u64>,
    allowed: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
struct FloatSpec {
    common: Common,
    range: Option<(Option<i64>, Option<i64>)>,
    allowed: Option<Vec<f64>>,
}

#[derive(Debug, Clone)]
struct Row {
    i: Option<i64>,
    s: Option<&'static str>,
    f: Option<f64>,
}

#[derive(Debug, Clone)]
struct Case {
    i: Option<IntSpec>,
    s: Option<StrSpec>,
    f: Option<FloatSpec>,
    /// Which of `i`, `s` make the key (only declared ones are used).
    key: (bool, bool),
    rows: Vec<Row>,
    cuts: Vec<usize>,
    /// 0: Utf8, 1: LargeUtf8, 2: Utf8View.
    layout: u8,
    sliced: bool,
}

fn common() -> impl Strategy<Value = Common> {
    (any::<bool>(), any::<bool>()).prop_map(|(nullable, unique)| Common { nullable, unique })
}

fn bound() -> impl Strategy<Value = Option<(Option<i64>, Option<i64>)>> {
    prop::option::of(
        (prop::option::of(-3i64..=3), prop::option::of(-3i64..=3))
            .prop_filter("a range has a bound and is not empty", |(lo, hi)| {
                (lo.is_some() || hi.is_some()) && lo.zip(*hi).is_none_or(|(l, h)| l <= h)
            }),
    )
}

fn case() -> impl Strategy<Value = Case> {
    let int = prop::option::of((
        common(),
        bound(),
        prop::option::of(prop::collection::vec(-3i64..=3, 1..4)),
    ))
    .prop_map(|o| {
        o.map(|(common, range, allowed)| IntSpec {
            common,
            range,
            allowed,
        })
    });
    let string = prop::option::of((
        common(),
        prop::option::of(prop::sample::select(PATTERNS.to_vec())),
        prop::option::of(0u64..4),
        prop::option::of(prop::collection::vec(
            prop::sample::select(STRS.to_vec()),
            1..4,
        )),
    ))
    .prop_map(|o| {
        o.map(|(common, regex, max_length, allowed)| StrSpec {
            common,
            regex,
            max_length,
            allowed,
        })
    });
    let float = prop::option::of((
        common(),
        bound(),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec![-1.0, 0.0, 0.5, 2.0]),
            1..3,
        )),
    ))
    .prop_map(|o| {
        o.map(|(common, range, allowed)| FloatSpec {
            common,
            range,
            allowed,
        })
    });
    let row = (
        prop::option::of(-4i64..=4),
        prop::option::of(prop::sample::select(STRS.to_vec())),
        prop::option::of(prop::sample::select(FLOATS.to_vec())),
    )
        .prop_map(|(i, s, f)| Row { i, s, f });
    (
        int,
        string,
        float,
        (any::<bool>(), any::<bool>()),
        prop::collection::vec(row, 0..40),
        prop::collection::vec(0usize..40, 0..5),
        0u8..3,
        any::<bool>(),
    )
        .prop_map(|(i, s, f, key, rows, cuts, layout, sliced)| Case {
            i,
            s,
            f,
            key,
            rows,
            cuts,
            layout,
            sliced,
        })
}

fn lit_range(r: (Option<i64>, Option<i64>)) -> Option<Range> {
    Some(Range {
        min: r.0.map(Literal::Int),
        max: r.1.map(Literal::Int),
    })
}

fn build_contract(case: &Case) -> Contract {
    let mut columns = Vec::new();
    let mut key = Vec::new();
    if let Some(i) = &case.i {
        columns.push(ColumnContract {
            nullable: i.common.nullable,
            unique: i.common.unique,
            range: i.range.and_then(lit_range),
            allowed: i
                .allowed
                .as_ref()
                .map(|a| a.iter().map(|v| Literal::Int(*v)).collect()),
            ..col("i", ColumnType::Int64)
        });
        if case.key.0 {
            key.push("i");
        }
    }
    if let Some(s) = &case.s {
        columns.push(ColumnContract {
            nullable: s.common.nullable,
            unique: s.common.unique,
            regex: s.regex.map(str::to_owned),
            max_length: s.max_length,
            allowed: s
                .allowed
                .as_ref()
                .map(|a| a.iter().map(|v| Literal::Text((*v).to_owned())).collect()),
            ..col("s", ColumnType::String)
        });
        if case.key.1 {
            key.push("s");
        }
    }
    if let Some(f) = &case.f {
        columns.push(ColumnContract {
            nullable: f.common.nullable,
            unique: f.common.unique,
            range: f.range.and_then(lit_range),
            allowed: f
                .allowed
                .as_ref()
                .map(|a| a.iter().map(|v| Literal::Float(*v)).collect()),
            ..col("f", ColumnType::Float64)
        });
    }
    contract(columns, &key)
}

fn build_batch(rows: &[Row], layout: u8) -> RecordBatch {
    let i: ArrayRef = Arc::new(rows.iter().map(|r| r.i).collect::<Int64Array>());
    let strs = rows.iter().map(|r| r.s);
    let s: ArrayRef = match layout {
        0 => Arc::new(strs.collect::<StringArray>()),
        1 => Arc::new(strs.collect::<LargeStringArray>()),
        _ => Arc::new(strs.collect::<StringViewArray>()),
    };
    let f: ArrayRef = Arc::new(rows.iter().map(|r| r.f).collect::<Float64Array>());
    common::batch(vec![("i", i), ("s", s), ("f", f)])
}

/// Row ranges of the batches.
fn splits(n: usize, cuts: &[usize]) -> Vec<(usize, usize)> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (n + 1)).collect();
    points.push(0);
    points.push(n);
    points.sort_unstable();
    points.windows(2).map(|w| (w[0], w[1] - w[0])).collect()
}

type Bad = BTreeMap<(String, Rule), BTreeSet<u64>>;

fn add(bad: &mut Bad, column: &str, rule: Rule, row: usize) {
    bad.entry((column.to_owned(), rule))
        .or_default()
        .insert(row as u64);
}

fn same_float(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn in_range(v: f64, (lo, hi): (Option<i64>, Option<i64>)) -> bool {
    lo.is_none_or(|lo| v >= lo as f64) && hi.is_none_or(|hi| v <= hi as f64) && !v.is_nan()
}

/// The reference: every rule written out directly over all rows.
fn reference(case: &Case) -> Bad {
    let mut bad = Bad::new();
    let rows = &case.rows;
    for (n, row) in rows.iter().enumerate() {
        let earlier = &rows[..n];
        if let Some(spec) = &case.i {
            match row.i {
                None if !spec.common.nullable => add(&mut bad, "i", Rule::NotNull, n),
                None => {}
                Some(v) => {
                    if spec.common.unique && earlier.iter().any(|r| r.i == Some(v)) {
                        add(&mut bad, "i", Rule::Unique, n);
                    }
                    if let Some((lo, hi)) = spec.range
                        && (lo.is_some_and(|lo| v < lo) || hi.is_some_and(|hi| v > hi))
                    {
                        add(&mut bad, "i", Rule::Range, n);
                    }
                    if spec.allowed.as_ref().is_some_and(|a| !a.contains(&v)) {
                        add(&mut bad, "i", Rule::Allowed, n);
                    }
                }
            }
        }
        if let Some(spec) = &case.s {
            match row.s {
                None if !spec.common.nullable => add(&mut bad, "s", Rule::NotNull, n),
                None => {}
                Some(v) => {
                    if spec.common.unique && earlier.iter().any(|r| r.s == Some(v)) {
                        add(&mut bad, "s", Rule::Unique, n);
                    }
                    if spec.allowed.as_ref().is_some_and(|a| !a.contains(&v)) {
                        add(&mut bad, "s", Rule::Allowed, n);
                    }
                    if spec
                        .regex
                        .is_some_and(|p| !Regex::new(p).unwrap().is_match(v))
                    {
                        add(&mut bad, "s", Rule::Regex, n);
                    }
                    if spec
                        .max_length
                        .is_some_and(|m| v.chars().count() as u64 > m)
                    {
                        add(&mut bad, "s", Rule::MaxLength, n);
                    }
                }
            }
        }
        if let Some(spec) = &case.f {
            match row.f {
                None if !spec.common.nullable => add(&mut bad, "f", Rule::NotNull, n),
                None => {}
                Some(v) => {
                    let seen = earlier
                        .iter()
                        .any(|r| r.f.is_some_and(|e| same_float(e, v)));
                    if spec.common.unique && seen {
                        add(&mut bad, "f", Rule::Unique, n);
                    }
                    if spec.range.is_some_and(|r| !in_range(v, r)) {
                        add(&mut bad, "f", Rule::Range, n);
                    }
                    if spec
                        .allowed
                        .as_ref()
                        .is_some_and(|a| !a.iter().any(|x| same_float(*x, v)))
                    {
                        add(&mut bad, "f", Rule::Allowed, n);
                    }
                }
            }
        }
        let key = |r: &Row| {
            let i = case.i.is_some() && case.key.0;
            let s = case.s.is_some() && case.key.1;
            (i.then_some(r.i), s.then_some(r.s))
        };
        let (ki, ks) = key(row);
        if ki.is_some() || ks.is_some() {
            let name = match (ki.is_some(), ks.is_some()) {
                (true, true) => "i,s",
                (true, false) => "i",
                _ => "s",
            };
            let has_null = ki == Some(None) || ks == Some(None);
            if has_null || earlier.iter().any(|r| key(r) == (ki, ks)) {
                add(&mut bad, name, Rule::PrimaryKey, n);
            }
        }
    }
    bad
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn checker_matches_the_reference(case in case()) {
        let c = build_contract(&case);
        let checker = Checker::new(&c).unwrap();
        let mut validation = checker.begin();
        let full = build_batch(&case.rows, case.layout);
        let mut verdicts = Vec::new();
        for (offset, len) in splits(case.rows.len(), &case.cuts) {
            let batch = if case.sliced {
                full.slice(offset, len)
            } else {
                build_batch(&case.rows[offset..offset + len], case.layout)
            };
            let verdict = validation.check(&batch).unwrap();
            prop_assert_eq!(verdict.first_row(), offset as u64);
            verdicts.push(verdict);
        }
        let report = validation.finish();

        let expected = reference(&case);
        let actual: Bad = bad(&verdicts)
            .into_iter()
            .map(|(k, rows)| (k, rows.into_iter().collect()))
            .collect();
        prop_assert_eq!(&actual, &expected);

        let all_bad: BTreeSet<u64> = expected.values().flatten().copied().collect();
        prop_assert_eq!(report.rows_checked, case.rows.len() as u64);
        prop_assert_eq!(report.rows_bad, all_bad.len() as u64);
        let good_rows: usize = verdicts.iter().map(|v| v.num_rows() - v.num_bad()).sum();
        prop_assert_eq!(good_rows + all_bad.len(), case.rows.len());
        prop_assert_eq!(report.violations.len(), expected.len());
        for v in &report.violations {
            let rows = &expected[&(v.column.clone(), v.rule)];
            prop_assert_eq!(v.rows, rows.len() as u64);
            let first: Vec<u64> = rows.iter().take(20).copied().collect();
            prop_assert_eq!(&v.first_rows, &first);
        }
    }
}
