//! The contract schema: YAML nodes -> a validated [`Contract`], written
//! inline under a dataset's `contract:` or alone in a contract file.

use std::collections::{BTreeSet, HashSet};

use crate::column::{self, RawColumn};
use crate::contract::{Contract, OnViolation};
use crate::decode::{self, Ctx, NameKind};
use crate::diagnostic::{Location, did_you_mean};
use crate::pipeline::no_special;
use crate::yaml::{Node, NodeKind, truncate};

const CONTRACT: &[&str] = &[
    "columns",
    "primary_key",
    "strict",
    "on_violation",
    "quarantine",
    "description",
];
const CONTRACT_FILE: &[&str] = &[
    "version",
    "columns",
    "primary_key",
    "strict",
    "on_violation",
    "quarantine",
    "description",
];
const ON_VIOLATION: &[&str] = &["fail", "quarantine"];

/// A contract and where its quarantine dataset is named, for the
/// cross-checks that need the other datasets.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub(crate) contract: Contract,
    pub(crate) quarantine_at: Option<Location>,
}

/// Where a contract comes from.
pub(crate) enum Origin<'a> {
    /// Written under the dataset's `contract:`.
    Inline,
    /// A contract file, named as the pipeline names it.
    File(&'a str),
}

fn inline_special(key: &str) -> Option<String> {
    (key == "version").then(|| {
        "`version` belongs at the top of a contract file, not in an inline contract".to_owned()
    })
}

/// Decodes a contract; `what` names it in messages.
pub(crate) fn decode(cx: &mut Ctx, node: &Node, what: &str, origin: Origin<'_>) -> Option<Decoded> {
    let errors_before = cx.error_count();
    let f = match origin {
        Origin::Inline => decode::fields(cx, node, what, CONTRACT, &inline_special)?,
        Origin::File(_) => decode::fields(cx, node, what, CONTRACT_FILE, &no_special)?,
    };
    if let Some(n) = f.get("version")
        && let Some(v) = decode::integer(cx, n, "`version`", 0, u64::MAX)
        && v != 1
    {
        cx.error(&n.loc, format!("unsupported contract `version` {v}"))
            .hint("this weir reads `version: 1`");
    }
    let (mut columns, declared) = f
        .required(
            cx,
            "columns",
            what,
            "add `columns:` with one `name: type` entry per column",
        )
        .map(|n| column::decode_columns(cx, n))
        .unwrap_or_default();
    let primary_key = f
        .get("primary_key")
        .map(|n| primary_key(cx, n, &declared))
        .unwrap_or_default();
    let key_columns: HashSet<&String> = primary_key.iter().collect();
    for col in &mut columns {
        if !key_columns.contains(&col.column.name) {
            continue;
        }
        if let Some(at) = &col.nullable_true_at {
            cx.error(
                at,
                format!(
                    "column `{}` is in `primary_key`, so it cannot be `nullable: true`",
                    truncate(&col.column.name)
                ),
            )
            .hint("remove `nullable: true`: key columns are never null");
        }
        col.column.nullable = false;
    }
    let strict = f
        .get("strict")
        .and_then(|n| decode::boolean(cx, n, "`strict`"))
        .unwrap_or(false);
    if let Some(n) = f.get("description") {
        decode::string(cx, n, "`description`");
    }
    let (on_violation, quarantine_at) = on_violation(cx, &f, what);
    if cx.error_count() != errors_before {
        return None;
    }
    let source = match origin {
        Origin::Inline => "inline".to_owned(),
        Origin::File(path) => path.to_owned(),
    };
    Some(Decoded {
        contract: Contract {
            columns: columns.into_iter().map(|c: RawColumn| c.column).collect(),
            primary_key,
            strict,
            on_violation: on_violation?,
            source,
        },
        quarantine_at,
    })
}

/// Reads `primary_key`: declared columns, each once.
fn primary_key(cx: &mut Ctx, node: &Node, declared: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let NodeKind::Seq(items) = &node.kind else {
        let b = cx.error(
            &node.loc,
            format!(
                "`primary_key` must be a list of columns, found {}",
                node.type_name()
            ),
        );
        match &node.kind {
            NodeKind::Scalar { value, .. } => {
                b.hint(format!(
                    "write a list: `primary_key: [{}]`",
                    truncate(value)
                ));
            }
            _ => b.hint("write a list of column names: `primary_key: [id]`"),
        }
        return out;
    };
    if items.is_empty() {
        cx.error(&node.loc, "`primary_key` is empty")
            .hint("name the columns that identify a row, or remove `primary_key`");
    }
    for item in items {
        let Some(name) = decode::string(cx, item, "a `primary_key` column") else {
            continue;
        };
        if seen.contains(&name) {
            cx.error(
                &item.loc,
                format!("`{}` is listed twice in `primary_key`", truncate(&name)),
            )
            .hint("remove the repeated entry");
        } else if !declared.contains(&name) {
            let b = cx.error(
                &item.loc,
                format!(
                    "`primary_key` names undeclared column `{}`",
                    truncate(&name)
                ),
            );
            match column::suggest(&name, declared.iter().map(String::as_str)) {
                Some(c) => b.hint(format!("did you mean `{c}`?")),
                None => b.hint("declare the column under `columns:`"),
            }
        } else {
            seen.insert(name.clone());
            out.push(name);
        }
    }
    out
}

/// Reads `on_violation` and `quarantine`.
fn on_violation(
    cx: &mut Ctx,
    f: &decode::Fields<'_>,
    what: &str,
) -> (Option<OnViolation>, Option<Location>) {
    let quarantine = match f.get("on_violation") {
        None => Some(false),
        Some(n) => match decode::string(cx, n, "`on_violation`").as_deref() {
            None => None,
            Some("fail") => Some(false),
            Some("quarantine") => Some(true),
            Some(other) => {
                let b = cx.error(
                    &n.loc,
                    format!("unknown `on_violation` `{}`", truncate(other)),
                );
                match did_you_mean(other, ON_VIOLATION.iter().copied()) {
                    Some(c) => b.hint(format!("did you mean `{c}`?")),
                    None => b.hint(
                        "expected `fail` (the stage fails) or `quarantine` (bad rows go to the `quarantine` dataset)",
                    ),
                }
                None
            }
        },
    };
    match (quarantine, f.get("quarantine")) {
        (Some(true), _) => {
            let Some(n) = f.required(
                cx,
                "quarantine",
                what,
                "add `quarantine: <dataset>`, the dataset bad rows are written to",
            ) else {
                return (None, None);
            };
            let dataset = decode::name(cx, n, "quarantine dataset name", NameKind::Identifier);
            (
                dataset.map(|dataset| OnViolation::Quarantine { dataset }),
                Some(n.loc.clone()),
            )
        }
        (Some(false), Some(n)) => {
            cx.error(
                &n.loc,
                "`quarantine` only applies with `on_violation: quarantine`",
            )
            .hint("add `on_violation: quarantine`, or remove `quarantine`");
            (None, None)
        }
        (Some(false), None) => (Some(OnViolation::Fail), None),
        (None, _) => (None, None),
    }
}
