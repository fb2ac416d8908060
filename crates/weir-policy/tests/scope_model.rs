//! Property: for random grant sets and random stage declarations, the
//! compiled scope never allows what the grants deny or do not allow,
//! checked against a deliberately naive reference model.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;
use proptest::prelude::*;
use weir_auth::{Action, ScopePath};
use weir_policy::{PolicySet, compile_stage};

const ACTIONS: [Action; 4] = [Action::Read, Action::Write, Action::List, Action::Delete];

#[derive(Clone, Debug)]
struct G {
    allow: bool,
    actions: Vec<Action>,
    store: &'static str,
    pattern: Vec<&'static str>,
    expired: bool,
}

fn pattern() -> impl Strategy<Value = Vec<&'static str>> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "*"]), 0..4),
        any::<bool>(),
    )
        .prop_map(|(mut segs, deep)| {
            if deep || segs.is_empty() {
                segs.push("**");
            }
            segs
        })
}

fn grant() -> impl Strategy<Value = G> {
    (
        prop::bool::weighted(0.7),
        prop::sample::subsequence(ACTIONS.to_vec(), 1..=4),
        prop::sample::select(vec!["lake", "lake", "lake", "other"]),
        pattern(),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(allow, actions, store, pattern, expired)| G {
            allow,
            actions,
            store,
            pattern,
            expired,
        })
}

fn dataset_paths() -> impl Strategy<Value = Vec<Vec<&'static str>>> {
    prop::collection::vec(
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4),
        1..4,
    )
    .prop_map(|paths| {
        let mut kept: Vec<Vec<&str>> = Vec::new();
        for p in paths {
            let overlaps = kept.iter().any(|k| k.starts_with(&p) || p.starts_with(k));
            if !overlaps {
                kept.push(p);
            }
        }
        kept
    })
}

/// Naive recursive matcher over segments.
fn ref_matches(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (Some(&"**"), _) => true,
        (None, None) => true,
        (Some(p), Some(s)) => (*p == "*" || p == s) && ref_matches(&pattern[1..], &path[1..]),
        _ => false,
    }
}

fn ref_allowed(grants: &[G], path: &[&str], action: Action) -> bool {
    let hits: Vec<&G> = grants
        .iter()
        .filter(|g| !g.expired && g.store == "lake" && g.actions.contains(&action))
        .filter(|g| ref_matches(&g.pattern, path))
        .collect();
    !hits.iter().any(|g| !g.allow) && hits.iter().any(|g| g.allow)
}

fn policy_yaml(grants: &[G]) -> String {
    let mut out = String::from(
        "version: 1\nstores: { lake: { url: /data/lake }, other: { url: /data/other } }\nprincipals: { svc: { kind: service } }\ngrants:\n",
    );
    for (i, g) in grants.iter().enumerate() {
        let actions: Vec<&str> = g.actions.iter().map(|a| a.as_str()).collect();
        out.push_str(&format!(
            "  - {{ id: g{i}, principal: svc, effect: {}, actions: [{}], resources: [{{ store: {}, path: \"{}\" }}]{} }}\n",
            if g.allow { "allow" } else { "deny" },
            actions.join(", "),
            g.store,
            g.pattern.join("/"),
            if g.expired { ", expires: 2020-01-01" } else { "" },
        ));
    }
    if grants.is_empty() {
        out.push_str("  []\n");
    }
    out
}

fn pipeline_yaml(paths: &[Vec<&str>]) -> String {
    let mut out =
        String::from("name: p\nprincipal: svc\nstores: { lake: { url: /data/lake } }\ndatasets:\n");
    for (i, p) in paths.iter().enumerate() {
        out.push_str(&format!(
            "  d{i}: {{ store: lake, path: {} }}\n",
            p.join("/")
        ));
    }
    let last = paths.len() - 1;
    let inputs: Vec<String> = (0..last).map(|i| format!("d{i}")).collect();
    out.push_str(&format!(
        "stages:\n  - {{ name: s, kind: sql, inputs: [{}], outputs: [d{last}], sql: SELECT 1 }}\n",
        inputs.join(", ")
    ));
    out
}

/// Every path over a, b, c and a fresh segment z, up to four segments.
fn universe() -> Vec<Vec<&'static str>> {
    let mut all = vec![vec![]];
    let mut frontier: Vec<Vec<&str>> = vec![vec![]];
    for _ in 0..4 {
        let mut next = Vec::new();
        for p in &frontier {
            for s in ["a", "b", "c", "z"] {
                let mut q = p.clone();
                q.push(s);
                next.push(q);
            }
        }
        all.extend(next.iter().cloned());
        frontier = next;
    }
    all.retain(|p| !p.is_empty());
    all
}

/// Cases that compiled (print with `WEIR_PROPTEST_STATS=1`): the property
/// is only as strong as this share.
static COMPILED: AtomicUsize = AtomicUsize::new(0);

#[test]
fn reference_matcher_is_segment_aware() {
    assert!(ref_matches(&["a", "**"], &["a"]));
    assert!(ref_matches(&["a", "*"], &["a", "b"]));
    assert!(!ref_matches(&["a", "*"], &["a"]));
    assert!(!ref_matches(&["a"], &["a", "b"]));
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compiled_scope_never_exceeds_the_grants(
        random in prop::collection::vec(grant(), 0..6),
        paths in dataset_paths(),
        helpers in prop::collection::vec(0usize..4, 4),
    ) {
        // Grants near the declared datasets, so that many cases compile.
        let mut grants = random;
        for (path, depth) in paths.iter().zip(&helpers) {
            if *depth > 0 {
                let mut pattern: Vec<&'static str> = path.iter().take(*depth).copied().collect();
                pattern.push("**");
                grants.push(G { allow: true, actions: ACTIONS.to_vec(), store: "lake", pattern, expired: false });
            }
        }
        let policy = PolicySet::load_str("p.yaml", &policy_yaml(&grants), Path::new("/")).unwrap();
        let loaded = weir_spec::load_str("pipe.yaml", &pipeline_yaml(&paths), Path::new("/")).unwrap();
        let stage = loaded.pipeline.stage("s").unwrap();
        let Ok(compiled) = compile_stage(&policy, &loaded.pipeline, stage, today()) else {
            return Ok(());
        };
        COMPILED.fetch_add(1, Ordering::Relaxed);
        let scope = compiled.scope();
        // Exactly the declared datasets.
        let declared: Vec<String> = paths.iter().map(|p| p.join("/")).collect();
        let entries: Vec<String> = scope.entries().iter().map(|e| e.path.to_string()).collect();
        prop_assert_eq!(entries, declared);
        for path in universe() {
            let sp = ScopePath::parse(&path.join("/")).unwrap();
            for action in ACTIONS {
                if scope.allows("lake", &sp, action).is_some() {
                    prop_assert!(ref_allowed(&grants, &path, action),
                        "scope allows {:?} on {:?} but the grants do not", action, path);
                }
                prop_assert!(scope.allows("other", &sp, action).is_none());
            }
        }
        if std::env::var_os("WEIR_PROPTEST_STATS").is_some() {
            eprintln!("compiled so far: {}", COMPILED.load(Ordering::Relaxed));
        }
    }

    #[test]
    fn evaluate_matches_the_reference_model(grants in prop::collection::vec(grant(), 0..6), path in prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "z"]), 1..5)) {
        let policy = PolicySet::load_str("p.yaml", &policy_yaml(&grants), Path::new("/")).unwrap();
        let sp = ScopePath::parse(&path.join("/")).unwrap();
        for action in ACTIONS {
            let decision = policy.evaluate("svc", "lake", &sp, action, today());
            prop_assert_eq!(decision.is_allowed(), ref_allowed(&grants, &path, action));
        }
    }
}
