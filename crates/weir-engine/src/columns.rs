//! Column limits, enforced in the reader.
//!
//! A stage token's scope entry may carry a [`ColumnRule`]: which columns (and
//! struct fields) of a dataset the stage may read, and which it sees masked.
//! [`restrict`] turns a dataset's [`DataFrame`] into one that projects only
//! what the rule lets through, with masks applied; [`register_restricted`]
//! registers that as a view, so a query can only ever name the view.
//!
//! # Guarantees
//!
//! - A hidden column or field is not in the view's schema, so `SELECT *`,
//!   subqueries, CTEs, joins, struct access (`contact['email']`,
//!   `get_field`), `unnest` and struct functions cannot reach it: they all
//!   resolve names against the view.
//! - A struct column loses its hidden fields (inside lists of structs too);
//!   a null struct stays null. A struct left with no field is hidden.
//! - Masks apply inside out (a masked struct is masked after its own hidden
//!   and masked fields): `hash` is the hex HMAC-SHA256 of the value's text
//!   under the pipeline's [`MaskKey`] (equal values hash equally, so joins
//!   work), `redact` is `[redacted]`, `null` a null of the column's type;
//!   a null stays null.
//! - The masking function holds its key and is never registered in the
//!   session, so a query cannot call it; neither it nor the plan text shows
//!   the key.
//! - A rule that reaches into a column weir cannot look inside (a map, a
//!   union, a dictionary of structs) hides that whole column if it denies or
//!   allows only part of it, and masks the whole column if it masks part of
//!   it.
//!
//! - A query that names a hidden column fails; [`explain_denied`] turns
//!   DataFusion's "no such field" into an error naming the column, the
//!   dataset and the grants.
//!
//! # Non-goals
//!
//! Keeping the underlying table away from the session is the caller's job:
//! register only the view. So is refusing what bypasses the view: raw
//! object access (a presigned URL returns every column), and `EXPLAIN`,
//! whose physical plan prints a Parquet file's column statistics (minimum
//! and maximum of a masked column, in the clear) and the names of a partly
//! hidden struct's fields ([`refuse_explain`]).

use arrow::datatypes::{FieldRef, Schema};
use datafusion::common::{Column, DataFusionError, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;
use weir_auth::{Action, ColumnRule, Mask, Scope, ScopeEntry, ScopePath};

mod denied;
mod mask;
mod project;

pub use denied::{ColumnDenied, explain_denied};
pub use mask::{MaskKey, REDACTED};

/// Why a dataset could not be restricted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ColumnError {
    /// The column limits leave nothing readable.
    #[error(
        "dataset `{dataset}`: {} leave no readable column",
        by_grants(grants, "the column limits of")
    )]
    NoColumnLeft {
        /// The dataset.
        dataset: String,
        /// The grants whose limits apply.
        grants: Vec<String>,
    },
    /// A `hash` mask applies but no key was given.
    #[error("dataset `{dataset}` has hashed columns but no mask key was configured")]
    MissingMaskKey {
        /// The dataset.
        dataset: String,
    },
    /// No entry of the stage's scope lets it read the dataset.
    #[error("the stage's scope does not let it read `{store}:{path}`")]
    NotInScope {
        /// The store.
        store: String,
        /// The dataset's path.
        path: String,
    },
    /// `EXPLAIN` of a query over restricted inputs ([`refuse_explain`]).
    #[error(
        "EXPLAIN is refused in a stage whose inputs have column limits: the plan would show storage statistics (minimum, maximum) of masked columns"
    )]
    Explain,
    /// DataFusion refused the restricted projection.
    #[error("restricting the columns of dataset `{dataset}`: {source}")]
    DataFusion {
        /// The dataset.
        dataset: String,
        /// DataFusion's error.
        source: DataFusionError,
    },
}

fn by_grants(grants: &[String], lead: &str) -> String {
    let lead = if lead.is_empty() {
        String::new()
    } else {
        format!("{lead} ")
    };
    match grants {
        [] => format!("{lead}the stage's scope"),
        [one] => format!("{lead}grant `{one}`"),
        many => format!(
            "{lead}grants {}",
            many.iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What a stage may read of one dataset: the combined column limits of the
/// verified scope entries that cover it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnAccess {
    limit: Limit,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Limit {
    #[default]
    Unrestricted,
    Rule(ColumnRule),
    Nothing {
        grants: Vec<String>,
    },
}

impl ColumnAccess {
    /// Every column, unmasked.
    #[must_use]
    pub fn unrestricted() -> Self {
        Self::default()
    }

    /// The limits of `entries` combined: a column is readable only if every
    /// entry lets it through, and carries the strongest of their masks (see
    /// [`weir_policy::columns`]). Entries without a rule restrict nothing; no
    /// entry with a rule means no restriction.
    #[must_use]
    pub fn from_entries(entries: &[&ScopeEntry]) -> Self {
        let rules: Vec<&ColumnRule> = entries.iter().filter_map(|e| e.columns.as_ref()).collect();
        match weir_policy::columns::combine(rules.iter().copied()) {
            Ok(rule) => Self::from_rule(rule),
            Err(_) => {
                let mut grants: Vec<String> = rules
                    .iter()
                    .flat_map(|r| r.grants.iter().cloned())
                    .collect();
                grants.sort_unstable();
                grants.dedup();
                Self {
                    limit: Limit::Nothing { grants },
                }
            }
        }
    }

    /// The limits for reading the dataset at `path` in `store`: those of
    /// every readable entry of `scope` that covers the path *or lies inside
    /// it* (the objects of a nested dataset are read as part of the outer
    /// one), combined as in [`from_entries`](Self::from_entries).
    ///
    /// # Errors
    ///
    /// [`ColumnError::NotInScope`] if `path` is not a valid scope path or no
    /// entry lets the stage read it.
    pub fn for_dataset(scope: &Scope, store: &str, path: &str) -> Result<Self, ColumnError> {
        let not_in_scope = || ColumnError::NotInScope {
            store: store.to_owned(),
            path: path.to_owned(),
        };
        let path = ScopePath::parse(path).map_err(|_| not_in_scope())?;
        if scope.allows(store, &path, Action::Read).is_none() {
            return Err(not_in_scope());
        }
        let overlapping: Vec<&ScopeEntry> = scope
            .entries()
            .iter()
            .filter(|e| e.store == store && e.actions.contains(Action::Read))
            .filter(|e| e.allows(store, &path, Action::Read) || path.covers(&e.path))
            .collect();
        Ok(Self::from_entries(&overlapping))
    }

    /// The limits of one rule (`None`: unrestricted).
    #[must_use]
    pub fn from_rule(rule: Option<ColumnRule>) -> Self {
        Self {
            limit: rule.map_or(Limit::Unrestricted, Limit::Rule),
        }
    }

    /// Whether every column is readable, unmasked. A restricted dataset must
    /// never be handed out as raw objects.
    #[must_use]
    pub fn is_unrestricted(&self) -> bool {
        self.limit == Limit::Unrestricted
    }

    /// The combined rule, if any.
    #[must_use]
    pub fn rule(&self) -> Option<&ColumnRule> {
        match &self.limit {
            Limit::Rule(rule) => Some(rule),
            _ => None,
        }
    }

    /// Whether any mask applies.
    #[must_use]
    pub fn has_masks(&self) -> bool {
        self.rule().is_some_and(|r| !r.mask.is_empty())
    }

    /// Whether the column (or dotted field) `name` reaches the stage
    /// unchanged: readable, not masked (nor inside a masked struct), and with
    /// nothing inside it hidden or masked.
    #[must_use]
    pub fn shows_in_clear(&self, name: &str) -> bool {
        match &self.limit {
            Limit::Unrestricted => true,
            Limit::Nothing { .. } => false,
            Limit::Rule(rule) => {
                rule.readable(name)
                    && !rule.mask.keys().any(|m| ColumnRule::covers(m, name))
                    && !rule.reaches_inside(name)
            }
        }
    }

    /// Whether a `hash` mask applies, so [`restrict`] needs a [`MaskKey`].
    #[must_use]
    pub fn needs_key(&self) -> bool {
        self.rule()
            .is_some_and(|r| r.mask.values().any(|m| *m == Mask::Hash))
    }

    /// The grants whose column limits apply.
    #[must_use]
    pub fn grants(&self) -> &[String] {
        match &self.limit {
            Limit::Unrestricted => &[],
            Limit::Rule(rule) => &rule.grants,
            Limit::Nothing { grants } => grants,
        }
    }

    /// The schema a stage sees of a dataset whose full schema is `schema`
    /// (masked columns with their masked type).
    #[must_use]
    pub fn visible_schema(&self, schema: &Schema) -> Schema {
        let fields: Vec<FieldRef> = match &self.limit {
            Limit::Unrestricted => schema.fields().iter().cloned().collect(),
            Limit::Nothing { .. } => Vec::new(),
            Limit::Rule(rule) => schema
                .fields()
                .iter()
                .filter_map(|f| project::plan(f, f.name(), rule).map(|n| n.out))
                .collect(),
        };
        Schema::new(fields)
    }
}

/// `df` limited to what `access` lets through, masks applied.
///
/// An `allow` name the data lacks is simply absent.
///
/// # Errors
///
/// [`ColumnError::NoColumnLeft`] if nothing is readable,
/// [`ColumnError::MissingMaskKey`] if a `hash` mask applies and `key` is
/// `None`, [`ColumnError::DataFusion`] if the projection cannot be built.
pub fn restrict(
    df: DataFrame,
    access: &ColumnAccess,
    key: Option<&MaskKey>,
    dataset: &str,
) -> Result<DataFrame, ColumnError> {
    let rule = match &access.limit {
        Limit::Unrestricted => return Ok(df),
        Limit::Nothing { grants } => {
            return Err(ColumnError::NoColumnLeft {
                dataset: dataset.to_owned(),
                grants: grants.clone(),
            });
        }
        Limit::Rule(rule) => rule,
    };
    if access.needs_key() && key.is_none() {
        return Err(ColumnError::MissingMaskKey {
            dataset: dataset.to_owned(),
        });
    }
    let mut exprs: Vec<Expr> = Vec::new();
    for (qualifier, field) in df.schema().iter() {
        if let Some(node) = project::plan(field, field.name(), rule) {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            exprs.push(project::expr(column, field, node, key));
        }
    }
    if exprs.is_empty() {
        return Err(ColumnError::NoColumnLeft {
            dataset: dataset.to_owned(),
            grants: rule.grants.clone(),
        });
    }
    df.select(exprs).map_err(|source| ColumnError::DataFusion {
        dataset: dataset.to_owned(),
        source,
    })
}

/// Registers [`restrict`]`(df, ..)` as the view `table` in `ctx`. Register
/// nothing else for the dataset: the query must only see the view.
///
/// # Errors
///
/// As [`restrict`], or [`ColumnError::DataFusion`] if the view cannot be
/// registered.
pub fn register_restricted(
    ctx: &SessionContext,
    table: &str,
    df: DataFrame,
    access: &ColumnAccess,
    key: Option<&MaskKey>,
) -> Result<(), ColumnError> {
    let view = restrict(df, access, key, table)?.into_view();
    ctx.register_table(TableReference::bare(table), view)
        .map(|_| ())
        .map_err(|source| ColumnError::DataFusion {
            dataset: table.to_owned(),
            source,
        })
}

/// Refuses `EXPLAIN` (and `EXPLAIN ANALYZE`) of a query over restricted
/// inputs: the physical plan prints storage statistics, such as the minimum
/// and maximum of each column a Parquet file records, and those of a masked
/// column are its values in the clear.
///
/// # Errors
///
/// [`ColumnError::Explain`] if `plan` explains a query.
pub fn refuse_explain(plan: &LogicalPlan) -> Result<(), ColumnError> {
    match plan {
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => Err(ColumnError::Explain),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
