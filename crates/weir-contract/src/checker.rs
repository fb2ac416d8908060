//! [`Checker`]: a contract compiled once, then used for schemas and batches.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::Schema;
use serde::Serialize;
use weir_spec::Contract;

use crate::error::{Error, Result};
use crate::rule::{Column, ColumnRule, PrimaryKey, Target, compile};
use crate::types::{arrow_name, fits};
use crate::validation::Validation;

/// A problem with a schema as a whole: no row is checked against a schema
/// that has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SchemaViolation {
    /// A declared column is not in the data.
    Missing {
        /// The column.
        column: String,
    },
    /// A declared column's data has another type.
    WrongType {
        /// The column.
        column: String,
        /// The declared type (`int64`, `timestamp[us, UTC]`).
        declared: String,
        /// The data's Arrow type (`utf8`, `large_utf8`, `timestamp[ns]`).
        found: String,
    },
    /// A declared column's name appears more than once in the data.
    Duplicate {
        /// The column.
        column: String,
        /// How many times.
        count: usize,
    },
    /// A column the contract does not declare, in a `strict` contract.
    Extra {
        /// The column.
        column: String,
    },
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaViolation::Missing { column } => write!(f, "column `{column}` is missing"),
            SchemaViolation::WrongType {
                column,
                declared,
                found,
            } => write!(f, "column `{column}`: declared {declared}, found {found}"),
            SchemaViolation::Duplicate { column, count } => {
                write!(f, "column `{column}` appears {count} times")
            }
            SchemaViolation::Extra { column } => {
                write!(
                    f,
                    "column `{column}` is not declared (the contract is strict)"
                )
            }
        }
    }
}

/// A contract compiled for checking: regexes built, literals parsed into
/// the column types, allowed values in hash sets. Cheap to clone (shared).
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int64Array, RecordBatch};
/// use arrow::datatypes::{DataType, Field, Schema};
/// use weir_contract::{Checker, Rule};
/// use weir_spec::{ColumnContract, ColumnType, Contract, Literal, OnViolation, Range};
///
/// let contract = Contract {
///     columns: vec![ColumnContract {
///         name: "age".into(),
///         data_type: ColumnType::Int64,
///         nullable: true,
///         sensitive: false,
///         unique: false,
///         range: Some(Range { min: Some(Literal::Int(18)), max: Some(Literal::Int(100)) }),
///         allowed: None,
///         regex: None,
///         max_length: None,
///     }],
///     primary_key: vec![],
///     strict: false,
///     on_violation: OnViolation::Fail,
///     source: "inline".into(),
/// };
/// let checker = Checker::new(&contract)?;
/// let schema = Arc::new(Schema::new(vec![Field::new("age", DataType::Int64, true)]));
/// let batch = RecordBatch::try_new(
///     schema,
///     vec![Arc::new(Int64Array::from(vec![Some(30), Some(7), None, Some(150)]))],
/// )?;
/// let mut validation = checker.begin();
/// let verdict = validation.check(&batch)?;
/// assert_eq!(verdict.num_bad(), 2);
/// let report = validation.finish();
/// assert_eq!(report.rows_bad, 2);
/// assert_eq!(report.violations[0].rule, Rule::Range);
/// assert_eq!(report.violations[0].first_rows, vec![1, 3]);
/// assert_eq!(
///     report.to_string().lines().nth(1),
///     Some("  column `age`: range [18, 100]: 2 rows (rows 1, 3); examples: 7, 150")
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Checker {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) source: String,
    pub(crate) strict: bool,
    pub(crate) columns: Vec<Column>,
    pub(crate) targets: Vec<Target>,
    pub(crate) rules: Arc<[ColumnRule]>,
    pub(crate) key: Option<PrimaryKey>,
}

impl fmt::Debug for Checker {
    /// The source and the rules; never a literal (a sensitive column's
    /// allowed values stay private).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checker")
            .field("source", &self.inner.source)
            .field("strict", &self.inner.strict)
            .field("rules", &self.inner.rules)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// Compiles `contract`.
    ///
    /// # Errors
    /// [`Error::Contract`] when a literal does not fit its column's type
    /// (a date that is not `YYYY-MM-DD`, a decimal with more places than
    /// the scale), a range is empty, a regex does not compile or exceeds
    /// 1 MiB compiled, a rule does not apply to its column's type, or the
    /// primary key names an undeclared column. A contract validated by
    /// `weir-spec` passes all of these.
    pub fn new(contract: &Contract) -> Result<Checker> {
        let (columns, targets, key) = compile(contract)?;
        let rules = targets.iter().map(|t| t.rule.clone()).collect();
        Ok(Checker {
            inner: Arc::new(Inner {
                source: contract.source.clone(),
                strict: contract.strict,
                columns,
                targets,
                rules,
                key,
            }),
        })
    }

    /// Every (column, rule) pair a row can break, in report order: columns
    /// in declared order, each column's rules in [`Rule`](crate::Rule)
    /// order, the primary key last.
    #[must_use]
    pub fn rules(&self) -> &[ColumnRule] {
        &self.inner.rules
    }

    /// What is wrong with `schema` as a whole: declared columns missing, of
    /// another type or named twice, undeclared columns when the contract
    /// is strict. A nullable field for a non-nullable column is not a
    /// violation: its data is checked row by row.
    #[must_use]
    pub fn check_schema(&self, schema: &Schema) -> Vec<SchemaViolation> {
        self.resolve(schema).err().unwrap_or_default()
    }

    /// Starts checking a stream of batches.
    #[must_use]
    pub fn begin(&self) -> Validation {
        Validation::new(self.clone())
    }

    /// The index in `schema` of each declared column, or every violation.
    pub(crate) fn resolve(
        &self,
        schema: &Schema,
    ) -> std::result::Result<Vec<usize>, Vec<SchemaViolation>> {
        let mut indices = Vec::with_capacity(self.inner.columns.len());
        let mut violations = Vec::new();
        for column in &self.inner.columns {
            let mut found = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| f.name() == &column.name);
            match (found.next(), found.count()) {
                (None, _) => violations.push(SchemaViolation::Missing {
                    column: column.name.clone(),
                }),
                (Some(_), more) if more > 0 => violations.push(SchemaViolation::Duplicate {
                    column: column.name.clone(),
                    count: more + 1,
                }),
                (Some((i, field)), _) => {
                    if fits(&column.ty, field.data_type()) {
                        indices.push(i);
                    } else {
                        violations.push(SchemaViolation::WrongType {
                            column: column.name.clone(),
                            declared: column.ty.to_string(),
                            found: arrow_name(field.data_type()),
                        });
                    }
                }
            }
        }
        if self.inner.strict {
            for field in schema.fields() {
                if !self.inner.columns.iter().any(|c| &c.name == field.name()) {
                    violations.push(SchemaViolation::Extra {
                        column: field.name().clone(),
                    });
                }
            }
        }
        if violations.is_empty() {
            Ok(indices)
        } else {
            Err(violations)
        }
    }

    pub(crate) fn schema_error(violations: Vec<SchemaViolation>) -> Error {
        Error::Schema { violations }
    }
}
