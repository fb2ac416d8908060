//! One policy file: YAML nodes -> stores, principals and grants.
//!
//! Decoded with weir-spec's strict toolkit, so unknown fields, wrong types
//! and duplicate keys are reported with file, line, column and a hint, and
//! every problem in the file is reported at once. Cross-file checks
//! (duplicates, unknown names) happen when files are merged in
//! [`crate::set`].

use std::path::Path;

use weir_spec::decode::{self, Ctx, NameKind};
use weir_spec::store::{STORE_FIELDS, decode_location};
use weir_spec::yaml::{Node, NodeKind, truncate};
use weir_spec::{Location, did_you_mean};

use crate::binding::{BoundLocation, StoreBinding};
use crate::grant::Grant;
use crate::principal::{Principal, PrincipalKind, Role};

mod grants;

const TOP: &[&str] = &["version", "stores", "principals", "grants"];
const PRINCIPAL: &[&str] = &["kind", "roles", "run_as", "description"];

/// A grant with the locations merge-time diagnostics point at.
pub(crate) struct LocatedGrant {
    pub(crate) grant: Grant,
    pub(crate) id_loc: Location,
    pub(crate) principal_loc: Location,
    pub(crate) store_locs: Vec<(String, Location)>,
}

/// Everything one file declares.
#[derive(Default)]
pub(crate) struct Document {
    pub(crate) stores: Vec<StoreBinding>,
    pub(crate) principals: Vec<Principal>,
    pub(crate) grants: Vec<LocatedGrant>,
}

pub(crate) fn no_special(_: &str) -> Option<String> {
    None
}

/// Decodes one policy file. `base_dir` resolves relative store urls.
pub(crate) fn decode(cx: &mut Ctx, root: &Node, base_dir: &Path) -> Option<Document> {
    let top = decode::fields(cx, root, "the policy", TOP, &no_special)?;
    match top.get("version") {
        None => cx
            .error(&top.loc, "the policy is missing required field `version`")
            .hint("start the file with `version: 1`"),
        Some(node) => {
            if decode::integer(cx, node, "`version`", 1, u64::MAX).is_some_and(|v| v != 1) {
                cx.error(&node.loc, "unsupported policy `version`")
                    .hint("this weir reads `version: 1`");
            }
        }
    }
    let mut doc = Document::default();
    if let Some(node) = top.get("stores") {
        for (key, name, value) in named(cx, node, "`stores`", NameKind::Identifier) {
            if let Some(b) = decode_store(cx, key, name, value, base_dir) {
                doc.stores.push(b);
            }
        }
    }
    if let Some(node) = top.get("principals") {
        for (key, name, value) in named(cx, node, "`principals`", NameKind::Principal) {
            if let Some(p) = decode_principal(cx, key, name, value) {
                doc.principals.push(p);
            }
        }
    }
    if let Some(node) = top.get("grants") {
        doc.grants = grants::decode_grants(cx, node);
    }
    Some(doc)
}

/// The entries of a `name: value` mapping whose names are valid.
fn named<'n>(
    cx: &mut Ctx,
    node: &'n Node,
    what: &str,
    kind: NameKind,
) -> Vec<(&'n Node, String, &'n Node)> {
    let NodeKind::Map(pairs) = &node.kind else {
        cx.error(
            &node.loc,
            format!(
                "{what} must be a mapping of names, found {}",
                node.type_name()
            ),
        );
        return Vec::new();
    };
    let mut out: Vec<(&Node, String, &Node)> = Vec::new();
    for (key, value) in pairs {
        let Some(name) = decode::name(cx, key, &format!("name in {what}"), kind) else {
            continue;
        };
        // A repeated key was already reported by the loader.
        if !out.iter().any(|(_, n, _)| *n == name) {
            out.push((key, name, value));
        }
    }
    out
}

fn decode_store(
    cx: &mut Ctx,
    key: &Node,
    name: String,
    node: &Node,
    base_dir: &Path,
) -> Option<StoreBinding> {
    let what = format!("store `{name}`");
    let f = decode::fields(cx, node, &what, STORE_FIELDS, &no_special)?;
    let location = decode_location(
        cx,
        &f,
        &what,
        base_dir,
        "bind the store to a folder, e.g. `url: ../examples/data`, or to `s3://bucket/prefix`",
    )?;
    Some(StoreBinding {
        name,
        location: BoundLocation::of(&location)?,
        origin: key.loc.clone(),
    })
}

/// Reads a string and maps it through `parse`, suggesting one of `names`.
pub(crate) fn keyword<T>(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    names: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let text = decode::string(cx, node, what)?;
    if let Some(v) = parse(&text) {
        return Some(v);
    }
    let b = cx.error(&node.loc, format!("unknown {what} `{}`", truncate(&text)));
    match did_you_mean(&text, names.iter().copied()) {
        Some(c) => b.hint(format!("did you mean `{c}`?")),
        None => b.hint(format!("expected one of: {}", names.join(", "))),
    }
    None
}

/// Reads a non-empty list of keywords without repeats.
pub(crate) fn keyword_list<T: PartialEq>(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    names: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Option<Vec<T>> {
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            &node.loc,
            format!("{what} must be a list, found {}", node.type_name()),
        )
        .hint(format!(
            "write a list, e.g. [{}]",
            names.first().unwrap_or(&"")
        ));
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match keyword(cx, item, what, names, &parse) {
            Some(v) if out.contains(&v) => {
                cx.error(&item.loc, format!("{what} lists the same value twice"));
                ok = false;
            }
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn decode_principal(cx: &mut Ctx, key: &Node, name: String, node: &Node) -> Option<Principal> {
    let what = format!("principal `{name}`");
    let f = decode::fields(cx, node, &what, PRINCIPAL, &no_special)?;
    let kind = f
        .required(cx, "kind", &what, "write `kind: service` or `kind: user`")
        .and_then(|n| {
            keyword(
                cx,
                n,
                "principal `kind`",
                PrincipalKind::NAMES,
                PrincipalKind::from_name,
            )
        });
    let roles = match f.get("roles") {
        Some(n) => keyword_list(cx, n, "`roles`", Role::NAMES, Role::from_name),
        None => Some(Vec::new()),
    };
    let run_as = match f.get("run_as") {
        Some(n) => run_as(cx, n, &what, kind),
        None => Some(Vec::new()),
    };
    let description = f
        .get("description")
        .and_then(|n| decode::string(cx, n, "`description`"));
    Some(Principal {
        name,
        kind: kind?,
        roles: roles?,
        run_as: run_as?,
        description,
        origin: key.loc.clone(),
    })
}

/// `run_as`: the service principals a user may start pipelines as (through
/// the API, with the `engineer` role). Users only; no repeats.
fn run_as(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    kind: Option<PrincipalKind>,
) -> Option<Vec<String>> {
    if kind == Some(PrincipalKind::Service) {
        cx.error(
            &node.loc,
            format!("{what}: `run_as` is only for `kind: user`"),
        )
        .hint("a service principal is what pipelines run as; list it in a user's `run_as`");
        return None;
    }
    let NodeKind::Seq(items) = &node.kind else {
        cx.error(
            &node.loc,
            format!("{what}: `run_as` must be a list of service principals"),
        )
        .hint("e.g. `run_as: [svc-customer-features]`");
        return None;
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match decode::name(cx, item, "a `run_as` entry", NameKind::Principal) {
            Some(n) if out.contains(&n) => {
                cx.error(&item.loc, format!("`{n}` is listed twice in `run_as`"));
                ok = false;
            }
            Some(n) => out.push(n),
            None => ok = false,
        }
    }
    ok.then_some(out)
}
