//! [`Validation`]: checking a stream of batches, with state across them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::SchemaRef;

use crate::checker::Checker;
use crate::error::{Result, internal};
use crate::hash::BytesSet;
use crate::report::{Report, RuleReport};
use crate::rule::{ColumnRule, Rule};
use crate::scan::{check_column, null_rows, slot};
use crate::seen::{Seen, duplicates, tuple_violations};
use crate::value::show;

/// Row numbers kept per rule in a report.
pub(crate) const FIRST_ROWS: usize = 20;
/// Example values kept per rule in a report.
pub(crate) const EXAMPLES: usize = 3;

/// The verdict on one batch: which rows are good, and for the bad ones
/// which rules they broke.
#[derive(Debug, Clone)]
pub struct BatchVerdict {
    first_row: u64,
    good: BooleanArray,
    num_bad: usize,
    rules: Arc<[ColumnRule]>,
    /// (index into `rules`, rows of this batch that broke it, ascending),
    /// for the rules some row broke, in report order.
    failures: Vec<(usize, Vec<usize>)>,
}

/// A bad row of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow<'a> {
    /// Index in the batch.
    pub row: usize,
    /// The rules it broke, in report order.
    pub violations: Vec<&'a ColumnRule>,
}

impl BatchVerdict {
    /// The global number (0-based, in arrival order) of the batch's first
    /// row; row `i` of the batch is row `first_row() + i`.
    #[must_use]
    pub fn first_row(&self) -> u64 {
        self.first_row
    }

    /// Rows in the batch.
    #[must_use]
    pub fn num_rows(&self) -> usize {
        self.good.len()
    }

    /// One value per row, `true` for a good row; never null. Suitable for
    /// [`arrow::compute::filter_record_batch`].
    #[must_use]
    pub fn good(&self) -> &BooleanArray {
        &self.good
    }

    /// Rows that broke at least one rule.
    #[must_use]
    pub fn num_bad(&self) -> usize {
        self.num_bad
    }

    /// Whether every row is good.
    #[must_use]
    pub fn is_all_good(&self) -> bool {
        self.num_bad == 0
    }

    /// For each rule some row broke, in report order: the rule and the rows
    /// (indices in the batch, ascending) that broke it.
    pub fn failures(&self) -> impl Iterator<Item = (&ColumnRule, &[usize])> {
        self.failures
            .iter()
            .filter_map(|(t, rows)| Some((self.rules.get(*t)?, rows.as_slice())))
    }

    /// The bad rows, ascending, each with the rules it broke.
    #[must_use]
    pub fn bad_rows(&self) -> Vec<BadRow<'_>> {
        let mut by_row: BTreeMap<usize, Vec<&ColumnRule>> = BTreeMap::new();
        for (rule, rows) in self.failures() {
            for &row in rows {
                by_row.entry(row).or_default().push(rule);
            }
        }
        by_row
            .into_iter()
            .map(|(row, violations)| BadRow { row, violations })
            .collect()
    }
}

/// Counts, first rows and examples of one rule.
#[derive(Default, Clone)]
struct Stats {
    rows: u64,
    first_rows: Vec<u64>,
    examples: Vec<String>,
}

/// Checks a stream of batches against one contract.
///
/// Rows are numbered globally from 0 in arrival order. `unique` and the
/// primary key hold across batches: the first occurrence of a value is
/// good, every later one is a violation. Their memory grows with the
/// number of distinct values (about 8 to 16 bytes per number, the bytes of
/// each string, plus the hash table's overhead).
///
/// # Security
/// `Debug` shows counts only, never the values held for `unique`.
pub struct Validation {
    checker: Checker,
    next_row: u64,
    rows_bad: u64,
    schema: Option<(SchemaRef, Vec<usize>)>,
    /// Per column, for `unique` (and a single-column key on it).
    seen: Vec<Option<Seen>>,
    /// For a key not covered by `seen`.
    key_seen: Option<Seen>,
    stats: Vec<Stats>,
}

impl fmt::Debug for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validation")
            .field("checker", &self.checker)
            .field("rows_checked", &self.next_row)
            .field("rows_bad", &self.rows_bad)
            .finish_non_exhaustive()
    }
}

impl Validation {
    pub(crate) fn new(checker: Checker) -> Self {
        let inner = &checker.inner;
        let seen = inner
            .columns
            .iter()
            .map(|c| c.unique.map(|_| Seen::for_type(&c.ty)))
            .collect();
        let key_seen = inner.key.as_ref().and_then(|k| match k.columns.as_slice() {
            [one] => match inner.columns.get(*one) {
                Some(c) if c.unique.is_none() => Some(Seen::for_type(&c.ty)),
                _ => None,
            },
            _ => Some(Seen::Bytes(BytesSet::new())),
        });
        let stats = vec![Stats::default(); inner.targets.len()];
        Validation {
            checker,
            next_row: 0,
            rows_bad: 0,
            schema: None,
            seen,
            key_seen,
            stats,
        }
    }

    /// Rows checked so far.
    #[must_use]
    pub fn rows_checked(&self) -> u64 {
        self.next_row
    }

    /// Checks `batch`, the next in the stream.
    ///
    /// # Errors
    /// [`Error::Schema`](crate::Error::Schema) if the batch's schema breaks
    /// the contract (see [`Checker::check_schema`]); nothing is counted then.
    /// [`Error::Internal`](crate::Error::Internal) on a bug, after which this
    /// validation must be dropped.
    pub fn check(&mut self, batch: &RecordBatch) -> Result<BatchVerdict> {
        let indices = self.indices(batch.schema_ref())?;
        let checker = self.checker.clone();
        let inner = &checker.inner;
        let n = batch.num_rows();
        let mut fails: Vec<Vec<usize>> = vec![Vec::new(); inner.targets.len()];
        let mut arrays: Vec<&dyn Array> = Vec::with_capacity(indices.len());
        for (ci, (col, idx)) in inner.columns.iter().zip(&indices).enumerate() {
            let array = batch
                .columns()
                .get(*idx)
                .ok_or_else(|| internal("resolved column index out of range"))?
                .as_ref();
            arrays.push(array);
            check_column(col, array, &mut fails)?;
            if let (Some(t), Some(Some(seen))) = (col.unique, self.seen.get_mut(ci)) {
                duplicates(array, seen, slot(&mut fails, t)?)?;
            }
        }
        if let Some(key) = &inner.key {
            let mut out = Vec::new();
            match key.columns.as_slice() {
                [ci] => {
                    let array = *arrays.get(*ci).ok_or_else(|| internal("key column"))?;
                    null_rows(array, &mut out);
                    let col = inner
                        .columns
                        .get(*ci)
                        .ok_or_else(|| internal("key column"))?;
                    let mut dups = Vec::new();
                    match (col.unique, self.key_seen.as_mut()) {
                        (Some(t), _) => dups.clone_from(slot(&mut fails, t)?),
                        (None, Some(seen)) => duplicates(array, seen, &mut dups)?,
                        (None, None) => return Err(internal("key state missing")),
                    }
                    out = merge(&out, &dups);
                }
                many => {
                    let arrays: Vec<&dyn Array> = many
                        .iter()
                        .map(|ci| {
                            arrays
                                .get(*ci)
                                .copied()
                                .ok_or_else(|| internal("key column"))
                        })
                        .collect::<Result<_>>()?;
                    let Some(Seen::Bytes(seen)) = self.key_seen.as_mut() else {
                        return Err(internal("key state missing"));
                    };
                    tuple_violations(&arrays, n, seen, &mut out)?;
                }
            }
            *slot(&mut fails, key.target)? = out;
        }

        let first_row = self.next_row;
        let (good, num_bad) = mask(n, &fails);
        let mut failures = Vec::new();
        for (t, rows) in fails.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let target = inner.targets.get(t).ok_or_else(|| internal("target"))?;
            let stats = self.stats.get_mut(t).ok_or_else(|| internal("stats"))?;
            stats.rows += rows.len() as u64;
            let room = FIRST_ROWS.saturating_sub(stats.first_rows.len());
            stats
                .first_rows
                .extend(rows.iter().take(room).map(|&r| first_row + r as u64));
            if target.show_values && target.rule.rule != Rule::NotNull {
                let columns: Vec<&dyn Array> = target
                    .columns
                    .iter()
                    .filter_map(|ci| arrays.get(*ci).copied())
                    .collect();
                add_examples(&mut stats.examples, &columns, &rows);
            }
            failures.push((t, rows));
        }
        self.next_row += n as u64;
        self.rows_bad += num_bad as u64;
        Ok(BatchVerdict {
            first_row,
            good,
            num_bad,
            rules: inner.rules.clone(),
            failures,
        })
    }

    /// The report so far.
    #[must_use]
    pub fn report(&self) -> Report {
        let inner = &self.checker.inner;
        let violations = inner
            .targets
            .iter()
            .zip(&self.stats)
            .filter(|(_, s)| s.rows > 0)
            .map(|(t, s)| RuleReport {
                column: t.rule.column.clone(),
                rule: t.rule.rule,
                detail: t.detail.clone(),
                rows: s.rows,
                first_rows: s.first_rows.clone(),
                examples: s.examples.clone(),
            })
            .collect();
        Report {
            source: inner.source.clone(),
            rows_checked: self.next_row,
            rows_bad: self.rows_bad,
            violations,
        }
    }

    /// Ends the stream and returns its report.
    #[must_use]
    pub fn finish(self) -> Report {
        self.report()
    }

    /// The declared columns' indices in `schema`, cached per schema.
    fn indices(&mut self, schema: &SchemaRef) -> Result<Vec<usize>> {
        if let Some((cached, indices)) = &self.schema
            && (Arc::ptr_eq(cached, schema) || cached == schema)
        {
            return Ok(indices.clone());
        }
        let indices = self
            .checker
            .resolve(schema)
            .map_err(Checker::schema_error)?;
        self.schema = Some((schema.clone(), indices.clone()));
        Ok(indices)
    }
}

/// The good-row mask and the number of bad rows.
fn mask(n: usize, fails: &[Vec<usize>]) -> (BooleanArray, usize) {
    if fails.iter().all(Vec::is_empty) {
        return (BooleanArray::new(BooleanBuffer::new_set(n), None), 0);
    }
    let mut good = vec![true; n];
    for &row in fails.iter().flatten() {
        if let Some(g) = good.get_mut(row) {
            *g = false;
        }
    }
    let bad = good.iter().filter(|g| !**g).count();
    (BooleanArray::from(good), bad)
}

/// Two ascending, disjoint row lists as one.
fn merge(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out.sort_unstable();
    out.dedup();
    out
}

fn add_examples(examples: &mut Vec<String>, columns: &[&dyn Array], rows: &[usize]) {
    // Look at a bounded number of rows: they may all hold one value.
    for &row in rows.iter().take(4 * FIRST_ROWS) {
        if examples.len() >= EXAMPLES {
            return;
        }
        let parts: Vec<String> = columns
            .iter()
            .map(|a| show(*a, row).unwrap_or_else(|| "null".to_owned()))
            .collect();
        let example = match parts.as_slice() {
            [one] => one.clone(),
            many => format!("({})", many.join(", ")),
        };
        if !examples.contains(&example) {
            examples.push(example);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Report};

    fn shareable<T: Send + Sync>() {}

    #[test]
    fn state_can_move_between_tasks() {
        shareable::<Checker>();
        shareable::<Validation>();
        shareable::<BatchVerdict>();
        shareable::<Report>();
        shareable::<Error>();
    }

    #[test]
    fn merge_sorts_and_dedups() {
        assert_eq!(merge(&[1, 4], &[2, 3, 9]), vec![1, 2, 3, 4, 9]);
        assert_eq!(merge(&[], &[]), Vec::<usize>::new());
    }
}
