//! The columns of a contract: each one's type, and the constraints that fit
//! that type.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};

use crate::column_type::column_type;
use crate::contract::{ColumnContract, ColumnType, Literal, Range};
use crate::decode::{self, Ctx, Fields};
use crate::diagnostic::{Location, did_you_mean};
use crate::literal;
use crate::pipeline::no_special;
use crate::yaml::{Node, NodeKind, truncate};

const COLUMN: &[&str] = &[
    "type",
    "nullable",
    "sensitive",
    "unique",
    "range",
    "allowed",
    "regex",
    "max_length",
    "description",
];
const RANGE: &[&str] = &["min", "max"];

/// Most values in one `allowed` list.
pub(crate) const MAX_ALLOWED: usize = 10_000;
/// Longest accepted `regex`, in bytes.
const MAX_REGEX: usize = 10_000;
/// Longest column name, in bytes.
const MAX_NAME: usize = 256;

/// A column as read, and where `nullable: true` was written, if it was:
/// a `primary_key` column may not say so.
pub(crate) struct RawColumn {
    pub(crate) column: ColumnContract,
    pub(crate) nullable_true_at: Option<Location>,
}

/// Reads `columns`: every column that decoded, and every name declared
/// (so that a broken column is not also reported as undeclared).
pub(crate) fn decode_columns(cx: &mut Ctx, node: &Node) -> (Vec<RawColumn>, BTreeSet<String>) {
    let mut out = Vec::new();
    let mut declared = BTreeSet::new();
    let NodeKind::Map(pairs) = &node.kind else {
        let b = cx.error(
            &node.loc,
            format!(
                "`columns` must be a mapping of column names, found {}",
                node.type_name()
            ),
        );
        b.hint("write one `name: type` or `name: { type: ..., ... }` entry per line under it");
        return (out, declared);
    };
    if pairs.is_empty() {
        cx.error(&node.loc, "`columns` is empty")
            .hint("declare at least one column, e.g. `id: int64`");
    }
    for (key, value) in pairs {
        let Some(name) = decode::string(cx, key, "a column name") else {
            continue;
        };
        if !declared.insert(name.clone()) {
            continue; // reported as a duplicate key by the loader
        }
        if let Some(problem) = name_problem(&name) {
            let message = if name.is_empty() {
                "a column name is empty".to_owned()
            } else {
                format!("invalid column name `{}`: {problem}", truncate(&name))
            };
            cx.error(&key.loc, message)
            .hint("a column name is 1 to 256 bytes without control characters, as it appears in the data");
            continue;
        }
        if let Some(column) = decode_column(cx, name, value) {
            out.push(column);
        }
    }
    (out, declared)
}

fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME {
        Some("it is longer than 256 bytes")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    }
}

/// The declared column `name` is most likely a typo of. Not attempted for
/// names too long to be columns or among very many columns, where the
/// search would cost more than the hint is worth.
pub(crate) fn suggest<'a>(
    name: &str,
    columns: impl ExactSizeIterator<Item = &'a str>,
) -> Option<&'a str> {
    const MOST: usize = 1000;
    if name.len() > MAX_NAME || columns.len() > MOST {
        return None;
    }
    did_you_mean(name, columns)
}

/// Checks a column name used elsewhere (a split `key`).
pub(crate) fn column_name(cx: &mut Ctx, node: &Node, what: &str) -> Option<String> {
    let name = decode::string(cx, node, what)?;
    match name_problem(&name) {
        None => Some(name),
        Some(problem) => {
            cx.error(
                &node.loc,
                format!("invalid {what} `{}`: {problem}", truncate(&name)),
            )
            .hint("a column name is 1 to 256 bytes without control characters");
            None
        }
    }
}

fn decode_column(cx: &mut Ctx, name: String, node: &Node) -> Option<RawColumn> {
    let what = format!("column `{}`", truncate(&name));
    let errors_before = cx.error_count();
    if let NodeKind::Seq(_) = node.kind {
        cx.error(
            &node.loc,
            format!("{what} must be a type or a mapping, found a list"),
        )
        .hint("write `name: int64`, or `name: { type: int64, nullable: false }`");
        return None;
    }
    if let NodeKind::Scalar { .. } = node.kind {
        let data_type = column_type(cx, node, &what)?;
        return Some(RawColumn {
            column: ColumnContract {
                name,
                data_type,
                nullable: true,
                sensitive: false,
                unique: false,
                range: None,
                allowed: None,
                regex: None,
                max_length: None,
            },
            nullable_true_at: None,
        });
    }
    let f = decode::fields(cx, node, &what, COLUMN, &no_special)?;
    let data_type = f
        .required(cx, "type", &what, "add `type: int64` (or another type)")
        .and_then(|n| column_type(cx, n, &what));
    let flag = |cx: &mut Ctx, field: &str| {
        f.get(field)
            .and_then(|n| decode::boolean(cx, n, &format!("`{field}` of {what}")))
    };
    let nullable = flag(cx, "nullable");
    let sensitive = flag(cx, "sensitive").unwrap_or(false);
    let unique = flag(cx, "unique").unwrap_or(false);
    if let Some(n) = f.get("description") {
        decode::string(cx, n, "`description`");
    }
    let mut constraints = Constraints::default();
    if let Some(ty) = &data_type {
        constraints = decode_constraints(cx, &f, ty, &what);
    }
    if cx.error_count() != errors_before {
        return None;
    }
    let nullable_true_at = match nullable {
        Some(true) => f.get("nullable").map(|n| n.loc.clone()),
        _ => None,
    };
    Some(RawColumn {
        column: ColumnContract {
            name,
            data_type: data_type?,
            nullable: nullable.unwrap_or(true),
            sensitive,
            unique,
            range: constraints.range,
            allowed: constraints.allowed,
            regex: constraints.regex,
            max_length: constraints.max_length,
        },
        nullable_true_at,
    })
}

#[derive(Default)]
struct Constraints {
    range: Option<Range>,
    allowed: Option<Vec<Literal>>,
    regex: Option<String>,
    max_length: Option<u64>,
}

fn decode_constraints(cx: &mut Ctx, f: &Fields<'_>, ty: &ColumnType, what: &str) -> Constraints {
    let mut out = Constraints::default();
    let misfit = |cx: &mut Ctx, node: &Node, field: &str, applies: &str, hint: &str| {
        cx.error(
            &node.loc,
            format!("`{field}` does not apply to {what} of type {ty}: it applies to {applies}"),
        )
        .hint(hint.to_owned());
    };
    if let Some(n) = f.get("range") {
        if ty.is_ordered() {
            out.range = range(cx, n, ty, what);
        } else {
            let hint = if ty.is_string() {
                "use `allowed`, `regex` or `max_length` to constrain strings"
            } else {
                "remove `range`; use `allowed` for a fixed set of values"
            };
            misfit(
                cx,
                n,
                "range",
                "numbers, dates, timestamps and decimals",
                hint,
            );
        }
    }
    if let Some(n) = f.get("allowed") {
        out.allowed = allowed(cx, n, ty, what);
    }
    if let Some(n) = f.get("regex") {
        if ty.is_string() {
            out.regex = regex(cx, n, what);
        } else {
            misfit(
                cx,
                n,
                "regex",
                "strings",
                "remove `regex`, or declare the column as `string`",
            );
        }
    }
    if let Some(n) = f.get("max_length") {
        if ty.is_string() || matches!(ty, ColumnType::Binary) {
            out.max_length = decode::integer(cx, n, "`max_length`", 1, u64::from(u32::MAX));
        } else {
            let hint = if ty.is_ordered() {
                "remove `max_length`; use `range` to bound numbers, dates and timestamps"
            } else {
                "remove `max_length`"
            };
            misfit(cx, n, "max_length", "strings and binary", hint);
        }
    }
    out
}

fn range(cx: &mut Ctx, node: &Node, ty: &ColumnType, what: &str) -> Option<Range> {
    if let NodeKind::Seq(items) = &node.kind {
        let example = match items.as_slice() {
            [lo, hi] => {
                let text = |n: &Node| match &n.kind {
                    NodeKind::Scalar { value, .. } => truncate(value),
                    _ => "...".to_owned(),
                };
                format!("write `range: {{ min: {}, max: {} }}`", text(lo), text(hi))
            }
            _ => "write `range: { min: ..., max: ... }`".to_owned(),
        };
        cx.error(
            &node.loc,
            format!("`range` of {what} must be a mapping, found a list"),
        )
        .hint(example);
        return None;
    }
    let f = decode::fields(cx, node, &format!("`range` of {what}"), RANGE, &no_special)?;
    let min_node = f.get("min");
    let max_node = f.get("max");
    if min_node.is_none() && max_node.is_none() {
        cx.error(
            &node.loc,
            format!("`range` of {what} has neither `min` nor `max`"),
        )
        .hint("give at least one bound: `range: { min: 0 }`");
        return None;
    }
    let min = min_node.map(|n| literal::read(cx, n, ty, &format!("`range.min` of {what}")));
    let max = max_node.map(|n| literal::read(cx, n, ty, &format!("`range.max` of {what}")));
    let (min, max) = match (min, max) {
        (Some(None), _) | (_, Some(None)) => return None,
        (min, max) => (min.flatten(), max.flatten()),
    };
    if let (Some(lo), Some(hi)) = (&min, &max)
        && literal::compare(lo, hi, ty) == Some(Ordering::Greater)
    {
        cx.error(
            &node.loc,
            format!("`range` of {what} is empty: `min` {lo} is greater than `max` {hi}"),
        )
        .hint("swap `min` and `max`");
        return None;
    }
    Some(Range { min, max })
}

fn allowed(cx: &mut Ctx, node: &Node, ty: &ColumnType, what: &str) -> Option<Vec<Literal>> {
    let NodeKind::Seq(items) = &node.kind else {
        let b = cx.error(
            &node.loc,
            format!(
                "`allowed` of {what} must be a list, found {}",
                node.type_name()
            ),
        );
        match &node.kind {
            NodeKind::Scalar { value, .. } => {
                b.hint(format!("write a list: [{}]", truncate(value)))
            }
            _ => b.hint("write a list of values: `allowed: [free, pro]`"),
        }
        return None;
    };
    if items.is_empty() || items.len() > MAX_ALLOWED {
        cx.error(
            &node.loc,
            format!(
                "`allowed` of {what} must hold 1 to {MAX_ALLOWED} values, found {}",
                items.len()
            ),
        )
        .hint(if items.is_empty() {
            "list the values the column may hold, or remove `allowed`"
        } else {
            "a longer list belongs in a reference dataset joined by a stage"
        });
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        let Some(lit) = literal::read(cx, item, ty, &format!("an `allowed` value of {what}"))
        else {
            ok = false;
            continue;
        };
        if !seen.insert(literal::identity(&lit, ty)) {
            cx.error(
                &item.loc,
                format!("{lit} is listed twice in `allowed` of {what}"),
            )
            .hint("remove the repeated value");
            ok = false;
            continue;
        }
        out.push(lit);
    }
    ok.then_some(out)
}

fn regex(cx: &mut Ctx, node: &Node, what: &str) -> Option<String> {
    let pattern = decode::string(cx, node, &format!("`regex` of {what}"))?;
    let problem = if pattern.is_empty() {
        Some("it is empty".to_owned())
    } else if pattern.len() > MAX_REGEX {
        Some(format!("it is longer than {MAX_REGEX} bytes"))
    } else {
        regex::Regex::new(&pattern).err().map(|e| regex_problem(&e))
    };
    match problem {
        None => Some(pattern),
        Some(problem) => {
            cx.error(
                &node.loc,
                format!("invalid `regex` of {what}: {problem}"),
            )
            .hint("write a Rust `regex` pattern (https://docs.rs/regex); quote it with '...' so YAML keeps backslashes as written");
            None
        }
    }
}

/// The one-line reason in a `regex` error (its text spans several lines,
/// with a caret under the pattern).
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || text.lines().next().unwrap_or("").trim().to_owned(),
            str::to_owned,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_problems_are_one_line() {
        let pattern = String::from("(abc");
        let e = regex::Regex::new(&pattern).unwrap_err();
        assert_eq!(regex_problem(&e), "unclosed group");
    }
}
