//! `ColumnAccess` itself: how entries combine, which entries a dataset
//! read uses, and what is shown in the clear.

use super::*;

#[test]
fn missing_key_nothing_left_and_unrestricted() {
    let ctx = SessionContext::new();
    let df = || ctx.read_batch(customers()).unwrap();
    let hashed = ColumnAccess::from_rule(Some(rule(None, &[], &[("email", Mask::Hash)], "g")));
    assert!(matches!(
        restrict(df(), &hashed, None, "customers"),
        Err(ColumnError::MissingMaskKey { .. })
    ));
    let redacted = ColumnAccess::from_rule(Some(rule(None, &[], &[("email", Mask::Redact)], "g")));
    assert!(restrict(df(), &redacted, None, "customers").is_ok());
    let none = ColumnAccess::from_rule(Some(rule(Some(&["absent"]), &[], &[], "g")));
    let err = restrict(df(), &none, None, "customers").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dataset `customers`: the column limits of grant `g` leave no readable column"
    );
    let open = ColumnAccess::unrestricted();
    assert!(open.is_unrestricted());
    assert_eq!(
        restrict(df(), &open, None, "customers")
            .unwrap()
            .schema()
            .fields()
            .len(),
        6
    );
}

#[test]
fn entries_combine_like_grants() {
    let entry = |columns| ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse("raw/customers").unwrap(),
        kind: PathKind::Prefix,
        actions: ActionSet::empty().with(Action::Read),
        columns,
    };
    let a = entry(Some(rule(
        Some(&["id", "email"]),
        &[],
        &[("email", Mask::Hash)],
        "a",
    )));
    let b = entry(Some(rule(None, &[], &[("email", Mask::Null)], "b")));
    let open = entry(None);
    let access = ColumnAccess::from_entries(&[&a, &b, &open]);
    let combined = access.rule().unwrap();
    assert_eq!(combined.mask.get("email"), Some(&Mask::Null));
    assert_eq!(access.grants(), ["a", "b"]);
    assert!(!access.needs_key());
    assert!(ColumnAccess::from_entries(&[&open]).is_unrestricted());
    let c = entry(Some(rule(Some(&["ssn"]), &[], &[], "c")));
    let nothing = ColumnAccess::from_entries(&[&a, &c]);
    let ctx = SessionContext::new();
    let err = restrict(
        ctx.read_batch(customers()).unwrap(),
        &nothing,
        None,
        "customers",
    )
    .unwrap_err();
    assert!(matches!(err, ColumnError::NoColumnLeft { ref grants, .. } if grants == &["a", "c"]));
}

#[test]
fn for_dataset_uses_every_readable_entry_covering_or_inside_the_path() {
    let entry = |path: &str, actions: &[Action], columns| ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse(path).unwrap(),
        kind: PathKind::Prefix,
        actions: actions.iter().copied().collect(),
        columns,
    };
    let scope = Scope::new(vec![
        entry("raw", &[Action::Read], None),
        entry(
            "raw/customers",
            &[Action::Read],
            Some(rule(None, &["ssn"], &[], "inner")),
        ),
        entry(
            "raw/orders",
            &[Action::Read],
            Some(rule(None, &["card"], &[], "orders")),
        ),
        entry(
            "out/x",
            &[Action::Write],
            Some(rule(None, &["id"], &[], "write-only")),
        ),
    ])
    .unwrap();
    // Reading `raw` reads `raw/customers` and `raw/orders` too.
    let outer = ColumnAccess::for_dataset(&scope, "lake", "raw").unwrap();
    assert_eq!(outer.rule().unwrap().deny, ["card", "ssn"]);
    let customers = ColumnAccess::for_dataset(&scope, "lake", "raw/customers").unwrap();
    assert_eq!(customers.rule().unwrap().deny, ["ssn"]);
    assert_eq!(customers.grants(), ["inner"]);
    let other = ColumnAccess::for_dataset(&scope, "lake", "raw/events").unwrap();
    assert!(other.is_unrestricted());
    for (store, path) in [
        ("lake", "out/x"),
        ("lake", "elsewhere"),
        ("sea", "raw"),
        ("lake", "../raw"),
    ] {
        assert!(
            matches!(
                ColumnAccess::for_dataset(&scope, store, path),
                Err(ColumnError::NotInScope { .. })
            ),
            "{store}:{path}"
        );
    }
}

#[test]
fn shows_in_clear_only_what_is_readable_and_unmasked() {
    let access = ColumnAccess::from_rule(Some(rule(
        None,
        &["ssn", "contact.email"],
        &[("email", Mask::Hash), ("profile", Mask::Redact)],
        "g",
    )));
    for (column, clear) in [
        ("id", true),
        ("ssn", false),
        ("email", false),
        ("contact", false),
        ("contact.phone", true),
        ("contact.email", false),
        ("profile", false),
        ("profile.x", false),
    ] {
        assert_eq!(access.shows_in_clear(column), clear, "{column}");
    }
    assert!(access.has_masks() && access.needs_key());
    assert!(ColumnAccess::unrestricted().shows_in_clear("anything"));
}
