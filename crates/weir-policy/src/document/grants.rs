//! The `grants:` list of a policy file.

use chrono::NaiveDate;
use weir_auth::{Action, ActionSet, ColumnRule, MAX_COLUMN_NAME_BYTES, MAX_COLUMNS};
use weir_spec::Location;
use weir_spec::decode::{self, Ctx, NameKind};
use weir_spec::yaml::{Node, NodeKind, truncate};

use super::{LocatedGrant, keyword, keyword_list, no_special};
use crate::grant::{Effect, Grant, Resource};
use crate::pattern::PathPattern;

const GRANT: &[&str] = &[
    "id",
    "principal",
    "effect",
    "actions",
    "resources",
    "columns",
    "expires",
    "description",
];
const RESOURCE: &[&str] = &["store", "path"];
const COLUMNS: &[&str] = &["allow", "deny"];
const ACTIONS: &[&str] = &["read", "write", "list", "delete"];

pub(super) fn decode_grants(cx: &mut Ctx, node: &Node) -> Vec<LocatedGrant> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            &node.loc,
            format!("`grants` must be a list, found {}", node.type_name()),
        )
        .hint("write each grant as a list item starting with `- id: ...`");
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| decode_grant(cx, item, i))
        .collect()
}

fn decode_grant(cx: &mut Ctx, node: &Node, index: usize) -> Option<LocatedGrant> {
    let label = format!("grant #{}", index + 1);
    let f = decode::fields(cx, node, &label, GRANT, &no_special)?;
    let id_node = f.required(
        cx,
        "id",
        &label,
        "give the grant a unique id, e.g. `id: features-read-raw`",
    )?;
    let id = decode::name(cx, id_node, "grant id", NameKind::Stage)?;
    let what = format!("grant `{id}`");
    let principal_node = f.required(
        cx,
        "principal",
        &what,
        "name the principal the grant applies to",
    );
    let principal =
        principal_node.and_then(|n| decode::name(cx, n, "principal", NameKind::Principal));
    let effect = f
        .required(
            cx,
            "effect",
            &what,
            "write `effect: allow` or `effect: deny`",
        )
        .and_then(|n| keyword(cx, n, "`effect`", Effect::NAMES, Effect::from_name));
    let actions = f
        .required(
            cx,
            "actions",
            &what,
            "list the actions, e.g. `actions: [read]`",
        )
        .and_then(|n| decode_actions(cx, n));
    let resources = f
        .required(
            cx,
            "resources",
            &what,
            "list where it applies, e.g. `resources: [{ store: lake, path: \"raw/**\" }]`",
        )
        .and_then(|n| decode_resources(cx, n));
    let columns = match f.get("columns") {
        Some(n) => decode_columns(cx, n).map(Some),
        None => Some(None),
    };
    let expires = match f.get("expires") {
        Some(n) => decode_date(cx, n).map(Some),
        None => Some(None),
    };
    let description = f
        .get("description")
        .and_then(|n| decode::string(cx, n, "`description`"));
    let (effect, columns) = (effect?, columns?);
    if effect == Effect::Deny && columns.is_some() {
        let at = f.get("columns").map_or(&f.loc, |n| &n.loc);
        cx.error(
            at,
            format!("{what}: `columns` is only allowed on allow grants"),
        )
        .hint("a deny grant forbids whole paths; narrow an allow grant with `columns` instead");
        return None;
    }
    let (resources, store_locs): (Vec<Resource>, Vec<(String, Location)>) =
        resources?.into_iter().unzip();
    Some(LocatedGrant {
        grant: Grant {
            id,
            principal: principal?,
            effect,
            actions: actions?,
            resources,
            columns,
            expires: expires?,
            description,
            origin: f.loc.clone(),
        },
        id_loc: id_node.loc.clone(),
        principal_loc: principal_node.map_or(f.loc.clone(), |n| n.loc.clone()),
        store_locs,
    })
}

fn action_from_name(name: &str) -> Option<Action> {
    Action::ALL.into_iter().find(|a| a.as_str() == name)
}

fn decode_actions(cx: &mut Ctx, node: &Node) -> Option<ActionSet> {
    let list = keyword_list(cx, node, "`actions`", ACTIONS, action_from_name)?;
    if list.is_empty() {
        cx.error(&node.loc, "`actions` is empty")
            .hint("list at least one of: read, write, list, delete");
        return None;
    }
    Some(list.into_iter().collect())
}

fn decode_resources(cx: &mut Ctx, node: &Node) -> Option<Vec<(Resource, (String, Location))>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            &node.loc,
            format!("`resources` must be a list, found {}", node.type_name()),
        )
        .hint("write a list, e.g. `- { store: lake, path: \"raw/**\" }`");
        return None;
    };
    if items.is_empty() {
        cx.error(&node.loc, "`resources` is empty")
            .hint("a grant applies to at least one `{ store, path }`");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match decode_resource(cx, item) {
            Some(r) => out.push(r),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn decode_resource(cx: &mut Ctx, node: &Node) -> Option<(Resource, (String, Location))> {
    let f = decode::fields(cx, node, "a resource", RESOURCE, &no_special)?;
    let store_node = f.required(
        cx,
        "store",
        "a resource",
        "name a store bound under `stores:`",
    );
    let store = store_node.and_then(|n| decode::name(cx, n, "store name", NameKind::Identifier));
    let path_node = f.required(
        cx,
        "path",
        "a resource",
        "write a path pattern, e.g. `path: \"raw/**\"`",
    )?;
    let text = decode::string(cx, path_node, "resource `path`")?;
    let pattern = match PathPattern::parse(&text) {
        Ok(p) => p,
        Err(reason) => {
            cx.error(
                &path_node.loc,
                format!("invalid resource path `{}`: {reason}", truncate(&text)),
            )
            .hint("write a path inside the store: `raw/customers.csv`, `raw/*` or `raw/**`");
            return None;
        }
    };
    let store = store?;
    let loc = store_node.map_or(f.loc.clone(), |n| n.loc.clone());
    Some((
        Resource {
            store: store.clone(),
            pattern,
        },
        (store, loc),
    ))
}

fn decode_columns(cx: &mut Ctx, node: &Node) -> Option<ColumnRule> {
    let f = decode::fields(cx, node, "`columns`", COLUMNS, &no_special)?;
    let (which, list) = match (f.get("allow"), f.get("deny")) {
        (Some(a), None) => ("allow", a),
        (None, Some(d)) => ("deny", d),
        _ => {
            cx.error(&f.loc, "`columns` needs exactly one of `allow` or `deny`")
                .hint("write `columns: { allow: [a, b] }` or `columns: { deny: [email] }`");
            return None;
        }
    };
    let names = column_names(cx, list)?;
    Some(if which == "allow" {
        ColumnRule::Allow(names)
    } else {
        ColumnRule::Deny(names)
    })
}

fn column_names(cx: &mut Ctx, node: &Node) -> Option<Vec<String>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            &node.loc,
            format!("a column list must be a list, found {}", node.type_name()),
        );
        return None;
    };
    if items.is_empty() || items.len() > MAX_COLUMNS {
        cx.error(&node.loc, "a column list must name 1 to 1024 columns");
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        let Some(name) = decode::string(cx, item, "a column name") else {
            ok = false;
            continue;
        };
        if name.is_empty()
            || name.len() > MAX_COLUMN_NAME_BYTES
            || name.chars().any(char::is_control)
        {
            cx.error(
                &item.loc,
                "a column name must be 1 to 256 bytes without control characters",
            );
            ok = false;
        } else if out.contains(&name) {
            cx.error(
                &item.loc,
                format!("column `{}` is listed twice", truncate(&name)),
            );
            ok = false;
        } else {
            out.push(name);
        }
    }
    ok.then_some(out)
}

fn decode_date(cx: &mut Ctx, node: &Node) -> Option<NaiveDate> {
    let text = decode::string(cx, node, "`expires`")?;
    let date = parse_date(&text);
    if date.is_none() {
        cx.error(
            &node.loc,
            format!("`expires` must be a date, found `{}`", truncate(&text)),
        )
        .hint("write a calendar date as YYYY-MM-DD, e.g. `2027-06-30` (the grant ends at the end of that day, UTC)");
    }
    date
}

/// Parses exactly `YYYY-MM-DD`.
pub(crate) fn parse_date(text: &str) -> Option<NaiveDate> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !digits(y, 4) || !digits(m, 2) || !digits(d, 2) {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict() {
        assert_eq!(
            parse_date("2027-06-30"),
            NaiveDate::from_ymd_opt(2027, 6, 30)
        );
        assert_eq!(
            parse_date("2028-02-29"),
            NaiveDate::from_ymd_opt(2028, 2, 29)
        );
        for bad in [
            "2027-6-30",
            "2027-02-30",
            "2027-06-30T00:00",
            "27-06-30",
            "2027/06/30",
            "",
            "+202-06-30",
            "2027-06-30-1",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }
}
