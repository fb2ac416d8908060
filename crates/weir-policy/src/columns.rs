//! Combining column rules: those of the grants that justify one scope entry
//! or lie inside it (at plan time), or those of the scope entries that cover
//! one dataset or lie inside it (in the reader).
//!
//! The result lets through only what *every* rule lets through:
//!
//! - `allow` lists intersect. Names are dotted paths, so `contact` and
//!   `contact.email` intersect to `contact.email`.
//! - `deny` lists unite. An allowed name that a deny covers is dropped; a
//!   deny strictly inside an allowed name (`allow: [contact]`,
//!   `deny: [contact.email]`) is kept; a deny that no allowed name reaches
//!   is dropped as moot.
//! - `mask`s unite; when two rules mask one column differently the stronger
//!   wins (`null` > `redact` > `hash`). A mask on a column the result hides
//!   is dropped. A mask on a column the result lets through only in part
//!   (`mask: {contact: redact}` with `allow: [contact.email]`) moves onto
//!   each allowed name inside it: a mask goes only with all it covers.
//! - `grants` unite, sorted.
//!
//! So whatever one rule hides, the result hides, and wherever one rule
//! masks a column (or what contains it), the result masks it at least as
//! strongly.
//!
//! A rule that is absent restricts nothing; no rule at all is no
//! restriction. Names match ignoring case, as everywhere in column rules.

use std::collections::BTreeMap;

use weir_auth::ColumnRule;

/// Combines `rules` as described in the [module docs](self). Lists come out
/// sorted, without redundant names.
///
/// # Errors
///
/// A reason if the `allow` lists and `deny`s leave no column at all.
pub fn combine<'a>(
    rules: impl IntoIterator<Item = &'a ColumnRule>,
) -> Result<Option<ColumnRule>, &'static str> {
    let mut allow: Option<Vec<String>> = None;
    let mut deny: Vec<String> = Vec::new();
    let mut mask: BTreeMap<String, weir_auth::Mask> = BTreeMap::new();
    let mut grants: Vec<String> = Vec::new();
    for rule in rules {
        if let Some(these) = &rule.allow {
            allow = Some(match allow {
                None => these.clone(),
                Some(prev) => intersect(&prev, these),
            });
        }
        deny.extend(rule.deny.iter().cloned());
        for (column, m) in &rule.mask {
            add_mask(&mut mask, column, *m);
        }
        grants.extend(rule.grants.iter().cloned());
    }
    let deny = outermost(deny);
    let allow = match allow {
        None => None,
        Some(allowed) => {
            let left: Vec<String> = outermost(allowed)
                .into_iter()
                .filter(|a| !deny.iter().any(|d| ColumnRule::covers(d, a)))
                .collect();
            if left.is_empty() {
                return Err("the column rules of the justifying grants leave no column readable");
            }
            Some(left)
        }
    };
    let deny = match &allow {
        None => deny,
        Some(allowed) => deny
            .into_iter()
            .filter(|d| allowed.iter().any(|a| ColumnRule::covers(a, d)))
            .collect(),
    };
    grants.sort_unstable();
    grants.dedup();
    let mut out = ColumnRule {
        allow,
        deny,
        mask: BTreeMap::new(),
        grants,
    };
    let mut kept = BTreeMap::new();
    for (column, m) in mask {
        if out.readable(&column) {
            add_mask(&mut kept, &column, m);
        } else {
            // Not readable whole, yet the allow list may let through names
            // inside it (`allow: [contact.email]` under `mask: {contact: ..}`):
            // each of those keeps the mask. Allowed names are readable.
            let inside = out.allow.iter().flatten();
            for allowed in inside.filter(|a| ColumnRule::covers(&column, a)) {
                add_mask(&mut kept, allowed, m);
            }
        }
    }
    out.mask = kept;
    if out.allow.is_none() && out.deny.is_empty() && out.mask.is_empty() {
        return Ok(None);
    }
    Ok(Some(out))
}

/// Masks `column` with `m`, or with the stronger of `m` and the mask
/// already on it (under any spelling).
fn add_mask(masks: &mut BTreeMap<String, weir_auth::Mask>, column: &str, m: weir_auth::Mask) {
    let lower = column.to_lowercase();
    match masks.iter_mut().find(|(k, _)| k.to_lowercase() == lower) {
        Some((_, slot)) => *slot = (*slot).max(m),
        None => {
            masks.insert(column.to_owned(), m);
        }
    }
}

/// The names of `a` inside (or equal to) a name of `b`, and those of `b`
/// inside a name of `a`: what both let through.
fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    let inside = |x: &String, ys: &[String]| ys.iter().any(|y| ColumnRule::covers(y, x));
    a.iter()
        .filter(|x| inside(x, b))
        .chain(b.iter().filter(|x| inside(x, a)))
        .cloned()
        .collect()
}

/// `names` sorted, without names another one covers (repeats included,
/// ignoring case).
fn outermost(mut names: Vec<String>) -> Vec<String> {
    names.sort_unstable_by_key(|n| (n.to_lowercase(), n.clone()));
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        // Sorted, so a covering name (a prefix) comes first.
        if !out.iter().any(|o| ColumnRule::covers(o, &name)) {
            out.push(name);
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use weir_auth::Mask;

    use super::*;

    fn allow(c: &[&str]) -> ColumnRule {
        ColumnRule::allow(c.iter().copied())
    }

    fn deny(c: &[&str]) -> ColumnRule {
        ColumnRule::deny(c.iter().copied())
    }

    fn masked(rule: ColumnRule, masks: &[(&str, Mask)]) -> ColumnRule {
        ColumnRule {
            mask: masks.iter().map(|(c, m)| ((*c).to_owned(), *m)).collect(),
            ..rule
        }
    }

    fn by(rule: ColumnRule, grant: &str) -> ColumnRule {
        ColumnRule {
            grants: vec![grant.to_owned()],
            ..rule
        }
    }

    #[test]
    fn no_rules_no_restriction() {
        assert_eq!(combine([]), Ok(None));
    }

    #[test]
    fn allow_lists_intersect_and_deny_lists_unite() {
        assert_eq!(
            combine(&[allow(&["a", "b", "c"]), allow(&["c", "b", "d"])]),
            Ok(Some(allow(&["b", "c"])))
        );
        assert_eq!(
            combine(&[deny(&["email"]), deny(&["ssn", "email"])]),
            Ok(Some(deny(&["email", "ssn"])))
        );
        assert_eq!(
            combine(&[allow(&["id", "email"]), deny(&["email"])]),
            Ok(Some(allow(&["id"])))
        );
    }

    #[test]
    fn dotted_paths_intersect_by_containment() {
        assert_eq!(
            combine(&[allow(&["id", "contact"]), allow(&["contact.email", "id"])]),
            Ok(Some(allow(&["contact.email", "id"])))
        );
        let both = ColumnRule {
            deny: vec!["contact.email".into()],
            ..allow(&["contact", "id"])
        };
        assert_eq!(
            combine(&[allow(&["id", "contact"]), deny(&["contact.email", "ssn"])]),
            Ok(Some(both))
        );
        assert_eq!(
            combine(&[deny(&["contact"]), deny(&["contact.email"])]),
            Ok(Some(deny(&["contact"])))
        );
        assert_eq!(
            combine(&[allow(&["contact.email", "id"]), deny(&["Contact"])]),
            Ok(Some(allow(&["id"])))
        );
    }

    #[test]
    fn masks_unite_the_stronger_wins_and_hidden_masks_go() {
        let a = masked(
            deny(&["ssn"]),
            &[("email", Mask::Hash), ("phone", Mask::Null)],
        );
        let b = masked(
            ColumnRule::default(),
            &[("email", Mask::Redact), ("phone", Mask::Hash)],
        );
        let combined = combine(&[by(a, "g-a"), by(b, "g-b")]).unwrap().unwrap();
        assert_eq!(combined.deny, vec!["ssn".to_owned()]);
        assert_eq!(combined.mask.get("email"), Some(&Mask::Redact));
        assert_eq!(combined.mask.get("phone"), Some(&Mask::Null));
        assert_eq!(combined.grants, vec!["g-a".to_owned(), "g-b".to_owned()]);
        assert!(combined.validate().is_ok());

        let hidden = combine(&[
            masked(allow(&["id", "email"]), &[("email", Mask::Hash)]),
            allow(&["id"]),
        ]);
        assert_eq!(hidden, Ok(Some(allow(&["id"]))));
        let nested = combine(&[
            masked(ColumnRule::default(), &[("contact.email", Mask::Hash)]),
            deny(&["contact"]),
        ]);
        assert_eq!(nested, Ok(Some(deny(&["contact"]))));
    }

    #[test]
    fn a_mask_on_a_struct_moves_onto_the_allowed_fields_inside_it() {
        // Grant `a` redacts the whole struct `contact`; grant `b` allows only
        // one of its fields. Alone, `a` never shows `contact.email` in clear.
        let a = by(
            masked(ColumnRule::default(), &[("contact", Mask::Redact)]),
            "a",
        );
        let b = by(allow(&["id", "contact.email"]), "b");
        for rules in [[a.clone(), b.clone()], [b.clone(), a.clone()]] {
            let combined = combine(&rules).unwrap().unwrap();
            assert_eq!(
                combined.allow,
                Some(vec!["contact.email".to_owned(), "id".to_owned()])
            );
            assert_eq!(
                combined.mask.into_iter().collect::<Vec<_>>(),
                vec![("contact.email".to_owned(), Mask::Redact)]
            );
        }
        // Onto each allowed field, the stronger mask winning where one is
        // already there; a mask on a hidden column still goes.
        let c = masked(
            ColumnRule::default(),
            &[("Contact.Email", Mask::Null), ("contact.phone", Mask::Hash)],
        );
        let d = allow(&["id", "contact.email", "contact.phone", "contact.fax"]);
        let e = masked(deny(&["contact.fax"]), &[("ssn", Mask::Null)]);
        let combined = combine(&[a, c, d, e]).unwrap().unwrap();
        assert_eq!(
            combined.allow,
            Some(vec![
                "contact.email".to_owned(),
                "contact.phone".to_owned(),
                "id".to_owned()
            ])
        );
        assert_eq!(combined.mask_for("contact.email"), Some(Mask::Null));
        assert_eq!(combined.mask_for("contact.phone"), Some(Mask::Redact));
        assert_eq!(combined.mask_for("id"), None);
        assert!(!combined.mask.contains_key("ssn"));
        assert!(combined.validate().is_ok());
    }

    #[test]
    fn grants_are_kept_sorted_and_unique() {
        let combined = combine(&[
            by(deny(&["a"]), "z"),
            by(deny(&["b"]), "m"),
            by(deny(&["a"]), "z"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(combined.grants, vec!["m".to_owned(), "z".to_owned()]);
    }

    #[test]
    fn nothing_left_is_an_error() {
        assert!(combine(&[allow(&["a"]), allow(&["b"])]).is_err());
        assert!(combine(&[allow(&["a"]), deny(&["a"])]).is_err());
        assert!(combine(&[allow(&["a.b"]), deny(&["a"])]).is_err());
    }
}
