//! [`Report`]: what a validation found, for people (`Display`) and
//! machines (`Serialize`).

use std::fmt;

use serde::Serialize;

use crate::rule::Rule;
use crate::validation::FIRST_ROWS;

/// What checking a stream of batches found.
///
/// # Security
/// Example values are kept only for declared columns not marked
/// `sensitive` (for a primary key, only when no key column is); a
/// sensitive column's rule is described by its name alone, without its
/// bounds, allowed values or pattern. Counts and row numbers are always
/// reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Where the contract was written (`inline` or its file).
    pub source: String,
    /// Rows checked.
    pub rows_checked: u64,
    /// Rows that broke at least one rule.
    pub rows_bad: u64,
    /// One entry per broken (column, rule), in report order (columns as
    /// declared, each column's rules in [`Rule`] order, the key last).
    pub violations: Vec<RuleReport>,
}

/// How often one (column, rule) was broken.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RuleReport {
    /// The column (the key columns joined with `,` for `primary_key`).
    pub column: String,
    /// The rule.
    pub rule: Rule,
    /// The rule as the contract states it: `range [18, 100]`,
    /// `regex "^a+$"`, `primary key (`id`)`.
    pub detail: String,
    /// Rows that broke it.
    pub rows: u64,
    /// The first (up to 20) such rows, by global row number.
    pub first_rows: Vec<u64>,
    /// Up to 3 distinct offending values, as shown in reports (strings
    /// quoted and cut to 64 characters); empty for sensitive columns.
    pub examples: Vec<String>,
}

impl Report {
    /// Whether every row passed.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.rows_bad == 0
    }
}

/// A header line, then one indented line per broken rule:
///
/// ```text
/// contract `inline`: 1000 rows checked, 3 bad
///   column `age`: range [18, 100]: 3 rows (rows 4, 17, 52); examples: 7, 150, 3
///   primary key (`id`): 1 row (row 9)
/// ```
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "contract `{}`: {} ", self.source, self.rows_checked)?;
        f.write_str(if self.rows_checked == 1 {
            "row checked"
        } else {
            "rows checked"
        })?;
        if self.rows_bad == 0 {
            f.write_str(", all good")?;
        } else {
            write!(f, ", {} bad", self.rows_bad)?;
        }
        for v in &self.violations {
            write!(f, "\n  {v}")?;
        }
        Ok(())
    }
}

/// `column `age`: range [18, 100]: 3 rows (rows 4, 17, 52); examples: 7, 150`
impl fmt::Display for RuleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rule == Rule::PrimaryKey {
            f.write_str(&self.detail)?;
        } else {
            write!(f, "column `{}`: {}", self.column, self.detail)?;
        }
        let noun = if self.rows == 1 { "row" } else { "rows" };
        write!(f, ": {} {noun}", self.rows)?;
        let rows: Vec<String> = self.first_rows.iter().map(u64::to_string).collect();
        if !rows.is_empty() {
            let first = if self.rows > FIRST_ROWS as u64 {
                format!("first {}: ", rows.len())
            } else {
                String::new()
            };
            let noun = if rows.len() == 1 { "row" } else { "rows" };
            write!(f, " ({first}{noun} {})", rows.join(", "))?;
        }
        if !self.examples.is_empty() {
            write!(f, "; examples: {}", self.examples.join(", "))?;
        }
        Ok(())
    }
}
