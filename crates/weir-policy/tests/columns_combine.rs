//! Combining column rules never lets through more than any one rule does.

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use weir_auth::{ColumnRule, Mask};
use weir_policy::columns::combine;

/// Names a rule may use: nested, overlapping, in two spellings.
const NAMES: &[&str] = &["a", "a.x", "A.X", "a.y", "a.x.z", "b", "c.d"];

/// Paths checked against the rules: the names, and around them.
const PATHS: &[&str] = &[
    "a", "a.x", "a.y", "a.x.z", "a.x.w", "a.q", "ab", "b", "b.x", "c", "c.d", "c.d.e", "e",
];

fn mask() -> impl Strategy<Value = Mask> {
    prop_oneof![Just(Mask::Hash), Just(Mask::Redact), Just(Mask::Null)]
}

/// Names without a repeat, ignoring case.
fn unique(names: Vec<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
            out.push(n.to_owned());
        }
    }
    out
}

/// A valid rule (as [`ColumnRule::validate`] accepts), without grants.
fn rule() -> impl Strategy<Value = ColumnRule> {
    (
        proptest::option::of(subsequence(NAMES, 1..=3)),
        subsequence(NAMES, 0..=2),
        proptest::collection::vec((select(NAMES), mask()), 0..=3),
    )
        .prop_map(|(allow, deny, masks)| {
            let mut rule = ColumnRule {
                allow: allow.map(unique),
                deny: unique(deny),
                ..ColumnRule::default()
            };
            for (name, m) in masks {
                if rule.readable(name) && !rule.mask.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                    rule.mask.insert(name.to_owned(), m);
                }
            }
            rule
        })
        .prop_filter("a valid rule", |r| r.validate().is_ok())
}

/// The strongest mask over `path`, by the rule's own names, computed here
/// apart from the code under test.
fn masked(rule: &ColumnRule, path: &str) -> Option<Mask> {
    rule.mask
        .iter()
        .filter(|(name, _)| {
            let (name, path) = (name.to_lowercase(), path.to_lowercase());
            path == name || path.starts_with(&format!("{name}."))
        })
        .map(|(_, m)| *m)
        .max()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_combination_is_at_least_as_restrictive_as_each_rule(
        rules in proptest::collection::vec(rule(), 1..=4),
    ) {
        match combine(&rules) {
            Ok(Some(combined)) => {
                prop_assert!(combined.validate().is_ok(), "{combined:?}");
                for path in PATHS {
                    if !combined.readable(path) {
                        continue;
                    }
                    for rule in &rules {
                        prop_assert!(rule.readable(path), "{path} readable in {combined} not in {rule}");
                        prop_assert!(
                            masked(&combined, path) >= masked(rule, path),
                            "{path}: {combined} masks less than {rule}"
                        );
                    }
                }
            }
            Ok(None) => prop_assert!(false, "valid rules always restrict: {rules:?}"),
            Err(_) => {
                for path in PATHS {
                    prop_assert!(
                        rules.iter().any(|r| !r.readable(path)),
                        "{path} is readable by every rule, yet none is left"
                    );
                }
            }
        }
    }
}
