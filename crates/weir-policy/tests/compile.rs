//! The plan-time check: compile_stage over a real pipeline.

use std::path::Path;

use chrono::NaiveDate;
use weir_auth::{Action, ColumnRule, Mask, PathKind};
use weir_policy::{DatasetRole, GapReason, PolicySet, compile_stage};
use weir_spec::Pipeline;

const PIPELINE: &str = r#"
name: customer-features
principal: svc-customer-features
stores:
  lake: { url: ../examples/data }
datasets:
  raw_customers: { store: lake, path: raw/customers.csv, format: csv }
  customers: { store: lake, path: curated/customers }
  features: { store: lake, path: features/customer_features }
stages:
  - { name: clean-customers, kind: sql, inputs: [raw_customers], outputs: [customers], sql: SELECT 1 }
  - { name: features, kind: sql, inputs: [customers], outputs: [features], sql: SELECT 1 }
"#;

const POLICY: &str = r#"
version: 1
stores:
  lake: { url: ../examples/data }
principals:
  svc-customer-features: { kind: service }
grants:
  - id: features-read-raw
    principal: svc-customer-features
    effect: allow
    actions: [read]
    resources:
      - { store: lake, path: "raw/**" }
    columns: { deny: [email] }
  - id: features-curated
    principal: svc-customer-features
    effect: allow
    actions: [read, write, delete]
    resources:
      - { store: lake, path: "curated/**" }
    expires: 2027-06-30
"#;

fn pipeline() -> Pipeline {
    weir_spec::load_str("p.yaml", PIPELINE, Path::new("/w/pipelines"))
        .unwrap()
        .pipeline
}

fn policy(text: &str) -> PolicySet {
    PolicySet::load_str("policy.yaml", text, Path::new("/w/policies")).unwrap()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 5, 1).unwrap()
}

#[test]
fn declared_datasets_become_justified_prefix_entries() {
    let p = pipeline();
    let compiled = compile_stage(
        &policy(POLICY),
        &p,
        p.stage("clean-customers").unwrap(),
        today(),
    )
    .unwrap();
    let entries = compiled.scope().entries();
    assert_eq!(entries.len(), 2);
    let input = &compiled.entries()[0];
    assert_eq!(
        (input.dataset.as_str(), input.role),
        ("raw_customers", DatasetRole::Input)
    );
    assert_eq!(input.entry.path.as_str(), "raw/customers.csv");
    assert_eq!(input.entry.kind, PathKind::Prefix);
    assert_eq!(
        input.entry.actions.iter().collect::<Vec<_>>(),
        [Action::Read]
    );
    assert_eq!(
        input.entry.columns,
        Some(ColumnRule {
            grants: vec!["features-read-raw".into()],
            ..ColumnRule::deny(["email"])
        })
    );
    assert_eq!(compiled.entries()[1].entry.columns, None);
    let output = &compiled.entries()[1];
    assert_eq!(output.entry.actions, DatasetRole::Output.actions());
    assert_eq!(
        compiled.grant_for("customers", Action::Delete),
        Some("features-curated")
    );
    assert_eq!(
        compiled.grant_for("raw_customers", Action::Read),
        Some("features-read-raw")
    );
    let scope: weir_auth::Scope = compiled.into();
    assert_eq!(scope.entries().len(), 2);
}

#[test]
fn scope_is_only_what_the_stage_declared() {
    let p = pipeline();
    let compiled = compile_stage(
        &policy(POLICY),
        &p,
        p.stage("clean-customers").unwrap(),
        today(),
    )
    .unwrap();
    let scope = compiled.scope();
    let other = weir_auth::ScopePath::parse("raw/orders.csv").unwrap();
    assert!(
        scope.allows("lake", &other, Action::Read).is_none(),
        "granted but not declared"
    );
    let sibling = weir_auth::ScopePath::parse("curated/customers_v2").unwrap();
    assert!(scope.allows("lake", &sibling, Action::Write).is_none());
}

#[test]
fn missing_grant_names_the_gap_and_renders_a_grant() {
    let p = pipeline();
    let gaps =
        compile_stage(&policy(POLICY), &p, p.stage("features").unwrap(), today()).unwrap_err();
    assert_eq!(gaps.len(), 1);
    let gap = &gaps[0];
    assert_eq!(
        (gap.dataset.as_str(), gap.reason.clone()),
        ("features", GapReason::NoGrant)
    );
    let snippet = gap.yaml_snippet();
    assert!(
        snippet.contains("path: \"features/customer_features/**\""),
        "{snippet}"
    );
    assert!(
        snippet.contains("actions: [read, write, delete]"),
        "{snippet}"
    );
    let fixed = policy(&format!("{POLICY}{}", snippet));
    compile_stage(&fixed, &p, p.stage("features").unwrap(), today()).unwrap();
}

#[test]
fn explicit_deny_below_the_dataset_refuses_it() {
    let deny = "  - id: no-pii\n    principal: svc-customer-features\n    effect: deny\n    actions: [read]\n    resources:\n      - { store: lake, path: \"raw/customers.csv/pii\" }\n";
    let p = pipeline();
    let gaps = compile_stage(
        &policy(&format!("{POLICY}{deny}")),
        &p,
        p.stage("clean-customers").unwrap(),
        today(),
    )
    .unwrap_err();
    assert_eq!(
        gaps[0].reason,
        GapReason::Denied {
            grant_id: "no-pii".into()
        }
    );
}

#[test]
fn expired_grant_justifies_nothing() {
    let p = pipeline();
    let later = NaiveDate::from_ymd_opt(2027, 7, 1).unwrap();
    let gaps = compile_stage(
        &policy(POLICY),
        &p,
        p.stage("clean-customers").unwrap(),
        later,
    )
    .unwrap_err();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].dataset, "customers");
    let last_day = NaiveDate::from_ymd_opt(2027, 6, 30).unwrap();
    compile_stage(
        &policy(POLICY),
        &p,
        p.stage("clean-customers").unwrap(),
        last_day,
    )
    .unwrap();
}

#[test]
fn exact_path_grant_does_not_justify_a_dataset_prefix() {
    let text = POLICY.replace("\"raw/**\"", "\"raw/customers.csv\"");
    let p = pipeline();
    let gaps = compile_stage(
        &policy(&text),
        &p,
        p.stage("clean-customers").unwrap(),
        today(),
    )
    .unwrap_err();
    assert_eq!(gaps[0].dataset, "raw_customers");
}

#[test]
fn pipeline_store_named_lake_elsewhere_cannot_borrow_grants() {
    let evil = PIPELINE.replace("../examples/data", "/tmp/attacker");
    let p = weir_spec::load_str("p.yaml", &evil, Path::new("/w/pipelines"))
        .unwrap()
        .pipeline;
    let gaps = compile_stage(
        &policy(POLICY),
        &p,
        p.stage("clean-customers").unwrap(),
        today(),
    )
    .unwrap_err();
    assert_eq!(gaps.len(), 1, "one gap per store: {gaps:?}");
    assert!(
        matches!(gaps[0].reason, GapReason::StoreBinding { .. }),
        "{gaps:?}"
    );
    assert!(!gaps[0].yaml_snippet().contains("- id:"));
}

#[test]
fn unknown_principal_gets_default_deny_and_a_hint() {
    let other = PIPELINE.replace(
        "principal: svc-customer-features",
        "principal: svc-intruder",
    );
    let p = weir_spec::load_str("p.yaml", &other, Path::new("/w/pipelines"))
        .unwrap()
        .pipeline;
    let gaps = compile_stage(
        &policy(POLICY),
        &p,
        p.stage("clean-customers").unwrap(),
        today(),
    )
    .unwrap_err();
    assert_eq!(gaps.len(), 2);
    assert!(!gaps[0].principal_declared);
    assert!(
        gaps[0]
            .yaml_snippet()
            .contains("also declare the principal")
    );
}

#[test]
fn column_rules_of_all_justifying_grants_combine() {
    let extra = "  - id: only-some\n    principal: svc-customer-features\n    effect: allow\n    actions: [read]\n    resources:\n      - { store: lake, path: \"raw/customers.csv/**\" }\n    columns: { allow: [customer_id, email, age] }\n";
    let p = pipeline();
    let compiled = compile_stage(
        &policy(&format!("{POLICY}{extra}")),
        &p,
        p.stage("clean-customers").unwrap(),
        today(),
    )
    .unwrap();
    assert_eq!(
        compiled.entries()[0].entry.columns,
        Some(ColumnRule {
            grants: vec!["features-read-raw".into(), "only-some".into()],
            ..ColumnRule::allow(["age", "customer_id"])
        })
    );
}

#[test]
fn masks_of_all_justifying_grants_combine_the_stronger_wins() {
    let extra = r#"  - id: masked
    principal: svc-customer-features
    effect: allow
    actions: [read]
    resources:
      - { store: lake, path: "raw/customers.csv/**" }
    columns: { mask: { phone: redact, contact.city: hash, email: null } }
  - id: hashed
    principal: svc-customer-features
    effect: allow
    actions: [read]
    resources:
      - { store: lake, path: "raw/**" }
    columns: { allow: [customer_id, phone, contact], mask: { phone: hash, contact.city: null } }
"#;
    let p = pipeline();
    let compiled = compile_stage(
        &policy(&format!("{POLICY}{extra}")),
        &p,
        p.stage("clean-customers").unwrap(),
        today(),
    )
    .unwrap();
    let rule = compiled.entries()[0].entry.columns.clone().unwrap();
    assert_eq!(
        rule.allow,
        Some(vec!["contact".into(), "customer_id".into(), "phone".into()])
    );
    // `email` is denied by features-read-raw and not allowed by `hashed`:
    // its mask goes.
    assert!(rule.deny.is_empty());
    assert_eq!(
        rule.mask.into_iter().collect::<Vec<_>>(),
        vec![
            ("contact.city".to_owned(), Mask::Null),
            ("phone".to_owned(), Mask::Redact),
        ]
    );
    assert_eq!(rule.grants, ["features-read-raw", "hashed", "masked"]);
}

#[test]
fn disjoint_allow_lists_are_a_gap() {
    let extra = "  - id: only-other\n    principal: svc-customer-features\n    effect: allow\n    actions: [read]\n    resources:\n      - { store: lake, path: \"raw/**\" }\n    columns: { allow: [email] }\n";
    let p = pipeline();
    let gaps = compile_stage(
        &policy(&format!("{POLICY}{extra}")),
        &p,
        p.stage("clean-customers").unwrap(),
        today(),
    )
    .unwrap_err();
    assert!(
        matches!(&gaps[0].reason, GapReason::InvalidEntry { reason } if reason.contains("no column")),
        "{:?}",
        gaps[0].reason
    );
}

/// A pipeline whose one input lies above the data a column-limited grant
/// covers: `raw` holds `raw/customers/*.csv`.
const OUTER_PIPELINE: &str = r#"
name: outer
principal: svc-customer-features
stores:
  lake: { url: ../examples/data }
datasets:
  raw_all: { store: lake, path: raw }
  out: { store: lake, path: curated/out }
stages:
  - { name: read-all, kind: sql, inputs: [raw_all], outputs: [out], sql: SELECT 1 }
"#;

fn outer_policy(extra: &str) -> PolicySet {
    policy(&format!(
        r#"
version: 1
stores:
  lake: {{ url: ../examples/data }}
principals:
  svc-customer-features: {{ kind: service }}
  svc-other: {{ kind: service }}
grants:
  - id: raw-all
    principal: svc-customer-features
    effect: allow
    actions: [read]
    resources:
      - {{ store: lake, path: "raw/**" }}
  - id: curated
    principal: svc-customer-features
    effect: allow
    actions: [read, write, delete]
    resources:
      - {{ store: lake, path: "curated/**" }}
  - id: pii
    principal: svc-customer-features
    effect: allow
    actions: [read]
    resources:
      - {{ store: lake, path: "raw/customers/**" }}
    columns: {{ deny: [ssn], mask: {{ email: hash }} }}
{extra}"#
    ))
}

fn outer_columns(policy: &PolicySet, day: NaiveDate) -> Option<ColumnRule> {
    let p = weir_spec::load_str("p.yaml", OUTER_PIPELINE, Path::new("/w/pipelines"))
        .unwrap()
        .pipeline;
    let compiled = compile_stage(policy, &p, p.stage("read-all").unwrap(), day).unwrap();
    assert_eq!(compiled.grant_for("raw_all", Action::Read), Some("raw-all"));
    compiled.entries()[0].entry.columns.clone()
}

#[test]
fn a_column_limited_grant_inside_a_dataset_limits_the_dataset() {
    // `raw-all` alone justifies `raw`, but the stage then reads
    // raw/customers/*.csv, which `pii` shows only without `ssn`.
    let mut expected = ColumnRule {
        grants: vec!["pii".into()],
        ..ColumnRule::deny(["ssn"])
    };
    expected.mask.insert("email".into(), Mask::Hash);
    assert_eq!(
        outer_columns(&outer_policy(""), today()),
        Some(expected.clone())
    );

    // Every grant inside the path counts, whatever its pattern, and the
    // limits combine as for justifying grants.
    let more = r#"  - id: cards
    principal: svc-customer-features
    effect: allow
    actions: [read]
    resources:
      - { store: lake, path: "raw/*/cards.csv" }
    columns: { deny: [card], mask: { email: redact } }
"#;
    let rule = outer_columns(&outer_policy(more), today()).unwrap();
    assert_eq!(rule.deny, ["card", "ssn"]);
    assert_eq!(rule.mask.get("email"), Some(&Mask::Redact));
    assert_eq!(rule.grants, ["cards", "pii"]);
}

#[test]
fn grants_that_cannot_be_used_to_read_inside_the_dataset_limit_nothing() {
    let unrelated = r#"  - id: write-only
    principal: svc-customer-features
    effect: allow
    actions: [write]
    resources:
      - { store: lake, path: "raw/customers/**" }
    columns: { deny: [id] }
  - id: someone-else
    principal: svc-other
    effect: allow
    actions: [read]
    resources:
      - { store: lake, path: "raw/customers/**" }
    columns: { deny: [name] }
  - id: sibling
    principal: svc-customer-features
    effect: allow
    actions: [read]
    resources:
      - { store: lake, path: "raw_archive/**" }
      - { store: lake, path: "raws/**" }
    columns: { deny: [age] }
  - id: expired
    principal: svc-customer-features
    effect: allow
    actions: [read]
    resources:
      - { store: lake, path: "raw/old/**" }
    columns: { deny: [city] }
    expires: 2026-04-30
"#;
    let rule = outer_columns(&outer_policy(unrelated), today()).unwrap();
    assert_eq!(rule.deny, ["ssn"]);
    assert_eq!(rule.grants, ["pii"]);
    // The expired grant counted while it was in force.
    let earlier = NaiveDate::from_ymd_opt(2026, 4, 30).unwrap();
    let rule = outer_columns(&outer_policy(unrelated), earlier).unwrap();
    assert_eq!(rule.deny, ["city", "ssn"]);
}

#[test]
fn a_sub_path_allow_list_disjoint_from_another_is_a_gap_for_the_outer_dataset() {
    let narrow = r#"  - id: orders-only
    principal: svc-customer-features
    effect: allow
    actions: [read]
    resources:
      - { store: lake, path: "raw/orders/**" }
    columns: { allow: [ssn] }
"#;
    let p = weir_spec::load_str("p.yaml", OUTER_PIPELINE, Path::new("/w/pipelines"))
        .unwrap()
        .pipeline;
    let gaps = compile_stage(
        &outer_policy(narrow),
        &p,
        p.stage("read-all").unwrap(),
        today(),
    )
    .unwrap_err();
    assert_eq!(gaps[0].dataset, "raw_all");
    assert!(
        matches!(&gaps[0].reason, GapReason::InvalidEntry { reason } if reason.contains("no column")),
        "{:?}",
        gaps[0].reason
    );
}
