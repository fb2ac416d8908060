//! Explaining a query that failed on a hidden column.

use arrow::datatypes::{DataType, Fields, Schema};
use datafusion::common::{Column, DataFusionError, SchemaError};
use weir_auth::ColumnRule;

use super::{ColumnAccess, Limit, by_grants};

/// Allowed names listed in an error before it says how many more there are.
const LISTED: usize = 8;

/// A query named a column (or struct field) the stage may not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "column `{column}` of dataset `{dataset}` is not readable by this stage: {} limits its columns ({rule})",
    by_grants(grants, "")
)]
pub struct ColumnDenied {
    /// The dataset (table) the column belongs to.
    pub dataset: String,
    /// The column, or a dotted path to a struct field.
    pub column: String,
    /// The grants whose column limits hide it (may be empty for a scope not
    /// compiled from a policy).
    pub grants: Vec<String>,
    /// The part of the rule that hides it, e.g. `deny: ssn` or `allow: id, name`.
    pub rule: String,
}

/// Explains a failed query: if it named a column or struct field that exists
/// in one of `inputs` (table name, its access, its unrestricted schema) but
/// is hidden from the stage, says which and why. Anything else (a typo, a
/// column that does not exist at all) is `None`, and DataFusion's own error
/// stands.
#[must_use]
pub fn explain_denied(
    err: &DataFusionError,
    inputs: &[(&str, &ColumnAccess, &Schema)],
) -> Option<ColumnDenied> {
    let mut pending = vec![err];
    let mut seen = 0;
    while let Some(e) = pending.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        match e {
            DataFusionError::SchemaError(schema_error, _) => {
                if let SchemaError::FieldNotFound { field, .. } = schema_error.as_ref()
                    && let Some(d) = named_column(field, inputs)
                {
                    return Some(d);
                }
            }
            DataFusionError::Plan(m) | DataFusionError::Execution(m) => {
                if let Some(d) = missing_struct_field(m).and_then(|f| struct_field(f, inputs)) {
                    return Some(d);
                }
            }
            DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
                pending.push(inner);
            }
            DataFusionError::Shared(inner) => pending.push(inner),
            DataFusionError::Collection(all) => pending.extend(all.iter().rev()),
            _ => {}
        }
    }
    None
}

/// `name` (as written by a query) in `table`, if it exists but is hidden.
fn hidden(table: &str, access: &ColumnAccess, schema: &Schema, name: &str) -> Option<ColumnDenied> {
    let rule = match &access.limit {
        Limit::Unrestricted => return None,
        Limit::Rule(rule) => Some(rule),
        Limit::Nothing { .. } => None,
    };
    if !paths(schema.fields()).iter().any(|p| p == name)
        || paths(access.visible_schema(schema).fields())
            .iter()
            .any(|p| p == name)
    {
        return None;
    }
    Some(ColumnDenied {
        dataset: table.to_owned(),
        column: name.to_owned(),
        grants: access.grants().to_vec(),
        rule: rule.map_or_else(|| "nothing readable".to_owned(), |r| why(r, name)),
    })
}

/// The part of `rule` that hides `name`.
fn why(rule: &ColumnRule, name: &str) -> String {
    let inside = || rule.deny.iter().find(|d| ColumnRule::covers(name, d));
    if let Some(d) = rule
        .denied_by(name)
        .or_else(|| inside().map(String::as_str))
    {
        return format!("deny: {d}");
    }
    match &rule.allow {
        Some(allow) => {
            let mut shown: Vec<&str> = allow.iter().take(LISTED).map(String::as_str).collect();
            let more = format!("and {} more", allow.len().saturating_sub(LISTED));
            if allow.len() > LISTED {
                shown.push(&more);
            }
            format!("allow: {}", shown.join(", "))
        }
        None => rule.to_string(),
    }
}

/// A column a `SchemaError::FieldNotFound` names: `ssn`, `customers.ssn`,
/// `c.ssn` (an alias) or `contact.email` (a struct field).
fn named_column(field: &Column, inputs: &[(&str, &ColumnAccess, &Schema)]) -> Option<ColumnDenied> {
    let name = field.name.as_str();
    if let Some(relation) = &field.relation {
        let table = relation.table();
        let nested = format!("{relation}.{name}");
        let exact = inputs
            .iter()
            .filter(|(t, _, _)| *t == table)
            .find_map(|(t, a, s)| hidden(t, a, s, name));
        return exact
            .or_else(|| inputs.iter().find_map(|(t, a, s)| hidden(t, a, s, &nested)))
            .or_else(|| inputs.iter().find_map(|(t, a, s)| hidden(t, a, s, name)));
    }
    inputs.iter().find_map(|(t, a, s)| hidden(t, a, s, name))
}

/// The field a `Field x not found in struct` message names.
fn missing_struct_field(message: &str) -> Option<&str> {
    let start = message.find("Field ")? + "Field ".len();
    let rest = message.get(start..)?;
    let end = rest.find(" not found in ")?;
    rest.get(..end)
}

/// A hidden field `leaf` of a struct the stage can see.
fn struct_field(leaf: &str, inputs: &[(&str, &ColumnAccess, &Schema)]) -> Option<ColumnDenied> {
    inputs.iter().find_map(|(table, access, schema)| {
        let visible = paths(access.visible_schema(schema).fields());
        paths(schema.fields()).into_iter().find_map(|p| {
            let parent = p.strip_suffix(leaf)?.strip_suffix('.')?;
            if visible.iter().any(|v| v == parent) {
                hidden(table, access, schema, &p)
            } else {
                None
            }
        })
    })
}

/// Every dotted path in `fields`: columns, struct fields, fields of structs
/// in lists.
fn paths(fields: &Fields) -> Vec<String> {
    fn inside(name: &str, data_type: &DataType, out: &mut Vec<String>) {
        match data_type {
            DataType::Struct(children) => {
                for c in children {
                    let path = format!("{name}.{}", c.name());
                    inside(&path, c.data_type(), out);
                    out.push(path);
                }
            }
            DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
                inside(name, item.data_type(), out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for f in fields {
        out.push(f.name().clone());
        inside(f.name(), f.data_type(), &mut out);
    }
    out
}
