//! The `grants:` list of a policy file.

use chrono::NaiveDate;
use weir_auth::{Action, ActionSet, ColumnRule, MAX_COLUMNS, Mask, check_column_name};
use weir_spec::Location;
use weir_spec::decode::{self, Ctx, NameKind};
use weir_spec::yaml::{Node, NodeKind, Style, truncate};

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
const COLUMNS: &[&str] = &["allow", "deny", "mask"];
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
    let (allow, deny, mask) = (f.get("allow"), f.get("deny"), f.get("mask"));
    if allow.is_some() && deny.is_some() {
        cx.error(&f.loc, "`columns` takes `allow` or `deny`, not both")
            .hint("list the readable columns with `allow`, or the hidden ones with `deny`");
        return None;
    }
    if allow.is_none() && deny.is_none() && mask.is_none() {
        cx.error(&f.loc, "`columns` needs `allow`, `deny` or `mask`")
            .hint("write `columns: { allow: [a, b] }`, `columns: { deny: [email] }` or `columns: { mask: { email: hash } }`");
        return None;
    }
    let allow = allow.map(|n| column_names(cx, n));
    let deny = deny.map(|n| column_names(cx, n));
    let mask = mask.map(|n| decode_masks(cx, n));
    let mut rule = ColumnRule::default();
    if let Some(allow) = allow {
        rule.allow = Some(allow?);
    }
    if let Some(deny) = deny {
        rule.deny = deny?;
    }
    let Some(mask) = mask else {
        return Some(rule);
    };
    let mut ok = true;
    for (name, value, loc) in mask? {
        if let Some(d) = rule.denied_by(&name) {
            cx.error(
                &loc,
                format!(
                    "masked column `{}` is hidden by `deny: [{}]`",
                    truncate(&name),
                    truncate(d)
                ),
            )
            .hint("a column is either hidden or masked: remove it from `deny` or from `mask`");
            ok = false;
        } else if !rule.readable(&name) {
            cx.error(
                &loc,
                format!(
                    "masked column `{}` is not in the `allow` list",
                    truncate(&name)
                ),
            )
            .hint("add the column (or the struct that holds it) to `allow`, or drop the mask");
            ok = false;
        }
        rule.mask.insert(name, value);
    }
    ok.then_some(rule)
}

/// The `mask:` mapping: column name -> mask, with each key's location, in
/// source order.
fn decode_masks(cx: &mut Ctx, node: &Node) -> Option<Vec<(String, Mask, Location)>> {
    let NodeKind::Map(pairs) = &node.kind else {
        cx.error(
            &node.loc,
            format!("`mask` must be a mapping, found {}", node.type_name()),
        )
        .hint("map each column to a mask, e.g. `mask: { email: hash, phone: redact }`");
        return None;
    };
    if pairs.is_empty() || pairs.len() > MAX_COLUMNS {
        cx.error(&node.loc, "`mask` must name 1 to 1024 columns")
            .hint("map each column to `hash`, `redact` or `null`");
        return None;
    }
    let mut out: Vec<(String, Mask, Location)> = Vec::with_capacity(pairs.len());
    let mut ok = true;
    for (key, value) in pairs {
        let name = column_name(cx, key);
        let mask = decode_mask(cx, value);
        let (Some(name), Some(mask)) = (name, mask) else {
            ok = false;
            continue;
        };
        if out
            .iter()
            .any(|(n, _, _)| n.to_lowercase() == name.to_lowercase())
        {
            cx.error(
                &key.loc,
                format!("column `{}` is masked twice", truncate(&name)),
            )
            .hint("column names match ignoring case; keep one mask per column");
            ok = false;
        } else {
            out.push((name, mask, key.loc.clone()));
        }
    }
    ok.then_some(out)
}

/// `hash`, `redact` or `null`. A plain `null` is YAML's null, read here as
/// the mask's name.
fn decode_mask(cx: &mut Ctx, node: &Node) -> Option<Mask> {
    if let NodeKind::Scalar { value, style } = &node.kind
        && *style == Style::Plain
        && value == "null"
    {
        return Some(Mask::Null);
    }
    keyword(cx, node, "mask", Mask::NAMES, Mask::from_name)
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
        let Some(name) = column_name(cx, item) else {
            ok = false;
            continue;
        };
        if out.iter().any(|n| n.to_lowercase() == name.to_lowercase()) {
            cx.error(
                &item.loc,
                format!("column `{}` is listed twice", truncate(&name)),
            )
            .hint("column names match ignoring case");
            ok = false;
        } else {
            out.push(name);
        }
    }
    ok.then_some(out)
}

/// One column name: a top-level column or a dotted path into a struct.
fn column_name(cx: &mut Ctx, node: &Node) -> Option<String> {
    let name = decode::string(cx, node, "a column name")?;
    match check_column_name(&name) {
        Ok(()) => Some(name),
        Err(reason) => {
            cx.error(
                &node.loc,
                format!("invalid column name `{}`: {reason}", truncate(&name)),
            )
            .hint("name a column (`email`) or a field inside a struct column (`contact.email`)");
            None
        }
    }
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
    use std::path::Path;

    use super::*;
    use crate::{Error, PolicySet};

    fn with_columns(columns: &str) -> String {
        format!(
            "version: 1\nstores: {{ lake: {{ url: ./d }} }}\nprincipals: {{ svc-a: {{ kind: service }} }}\ngrants:\n  - id: g\n    principal: svc-a\n    effect: allow\n    actions: [read]\n    resources: [{{ store: lake, path: \"raw/**\" }}]\n    columns: {columns}\n"
        )
    }

    fn columns_of(columns: &str) -> Result<Option<ColumnRule>, Vec<String>> {
        match PolicySet::load_str("p.yaml", &with_columns(columns), Path::new("/w")) {
            Ok(set) => Ok(set.grant("g").and_then(|g| g.columns.clone())),
            Err(Error::Invalid { diagnostics, .. }) => Err(diagnostics
                .iter()
                .map(|d| format!("{}:{}: {}", d.loc.line, d.loc.column, d.message))
                .collect()),
            Err(other) => Err(vec![other.to_string()]),
        }
    }

    #[test]
    fn masks_parse_with_allow_deny_or_alone() {
        let rule = columns_of("{ deny: [ssn], mask: { email: hash, contact.phone: redact } }")
            .unwrap()
            .unwrap();
        assert_eq!(rule.deny, ["ssn"]);
        assert_eq!(rule.mask.get("email"), Some(&Mask::Hash));
        assert_eq!(rule.mask.get("contact.phone"), Some(&Mask::Redact));
        assert!(rule.grants.is_empty());
        let alone = columns_of("{ mask: { email: null } }").unwrap().unwrap();
        assert_eq!(alone.allow, None);
        assert!(alone.deny.is_empty());
        assert_eq!(alone.mask.get("email"), Some(&Mask::Null));
        let nested = columns_of("{ allow: [id, contact], mask: { contact.email: hash } }")
            .unwrap()
            .unwrap();
        assert_eq!(nested.allow, Some(vec!["id".into(), "contact".into()]));
    }

    #[test]
    fn bad_masks_are_reported_with_line_and_column() {
        let cases = [
            (
                "{ deny: [ssn], mask: { ssn: hash } }",
                "10:37: masked column `ssn` is hidden by `deny: [ssn]`",
            ),
            (
                "{ deny: [contact], mask: { contact.email: hash } }",
                "10:41: masked column `contact.email` is hidden by `deny: [contact]`",
            ),
            (
                "{ allow: [id], mask: { email: redact } }",
                "10:37: masked column `email` is not in the `allow` list",
            ),
            ("{ mask: { email: blur } }", "10:31: unknown mask `blur`"),
            (
                "{ mask: { email: hash, EMAIL: null } }",
                "10:37: column `EMAIL` is masked twice",
            ),
            ("{ mask: {} }", "10:22: `mask` must name 1 to 1024 columns"),
            ("{ mask: [email] }", "10:22: `mask` must be a mapping"),
            (
                "{ allow: [a], deny: [b] }",
                "10:14: `columns` takes `allow` or `deny`, not both",
            ),
            ("{}", "10:14: `columns` needs `allow`, `deny` or `mask`"),
            (
                "{ deny: [contact..email] }",
                "10:23: invalid column name `contact..email`",
            ),
            (
                "{ deny: [Ssn, ssn] }",
                "10:28: column `ssn` is listed twice",
            ),
            (
                "{ mask: { .email: hash } }",
                "10:24: invalid column name `.email`",
            ),
        ];
        let mut wrong = Vec::new();
        for (columns, expected) in cases {
            let errors = columns_of(columns).unwrap_err();
            if !errors.iter().any(|e| e.starts_with(expected)) {
                wrong.push(format!("{columns}: expected `{expected}` in {errors:?}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

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
