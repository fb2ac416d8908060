//! Evaluating one request against the grants: default deny, deny wins.

use chrono::NaiveDate;
use weir_auth::{Action, ScopePath};

use crate::grant::Effect;
use crate::set::PolicySet;

/// The outcome of [`PolicySet::evaluate`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// An allow grant matches and no deny grant does.
    Allow {
        /// The first matching allow grant, in file order.
        grant_id: String,
    },
    /// A deny grant matches (whatever any allow says).
    Deny {
        /// The first matching deny grant, in file order.
        grant_id: String,
    },
    /// No grant matches: denied by default.
    NoGrant,
}

impl Decision {
    /// Whether access is allowed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

impl PolicySet {
    /// Evaluates whether `principal` may do `action` on `path` in `store` on
    /// `today` (UTC).
    ///
    /// Only grants of `principal` that are in force and name `action` count;
    /// a grant matches if one of its resources names `store` and its pattern
    /// matches `path` segment by segment. Any matching deny wins; otherwise
    /// the first matching allow; otherwise [`Decision::NoGrant`].
    #[must_use]
    pub fn evaluate(
        &self,
        principal: &str,
        store: &str,
        path: &ScopePath,
        action: Action,
        today: NaiveDate,
    ) -> Decision {
        let mut allow = None;
        for grant in self.grants_for(principal) {
            if !grant.matches(store, path, action, today) {
                continue;
            }
            match grant.effect {
                Effect::Deny => {
                    return Decision::Deny {
                        grant_id: grant.id.clone(),
                    };
                }
                Effect::Allow => {
                    allow.get_or_insert(grant);
                }
            }
        }
        allow.map_or(Decision::NoGrant, |g| Decision::Allow {
            grant_id: g.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const POLICY: &str = r#"
version: 1
stores: { lake: { url: /data }, other: { url: /other } }
principals: { svc: { kind: service }, bob: { kind: user } }
grants:
  - id: read-raw
    principal: svc
    effect: allow
    actions: [read, list]
    resources: [{ store: lake, path: "raw/**" }]
  - id: no-secrets
    principal: svc
    effect: deny
    actions: [read]
    resources: [{ store: lake, path: "raw/secret/**" }]
  - id: old
    principal: svc
    effect: allow
    actions: [write]
    resources: [{ store: lake, path: "raw/**" }]
    expires: 2020-01-01
"#;

    fn set() -> PolicySet {
        PolicySet::load_str("p.yaml", POLICY, Path::new("/")).unwrap()
    }

    fn p(s: &str) -> ScopePath {
        ScopePath::parse(s).unwrap()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
    }

    #[test]
    fn allow_matches_segment_aware() {
        let s = set();
        let d = s.evaluate("svc", "lake", &p("raw/train/x"), Action::Read, today());
        assert_eq!(
            d,
            Decision::Allow {
                grant_id: "read-raw".into()
            }
        );
        assert!(d.is_allowed());
        assert_eq!(
            s.evaluate("svc", "lake", &p("rawdata/x"), Action::Read, today()),
            Decision::NoGrant
        );
    }

    #[test]
    fn explicit_deny_wins_over_allow() {
        let d = set().evaluate("svc", "lake", &p("raw/secret/k"), Action::Read, today());
        assert_eq!(
            d,
            Decision::Deny {
                grant_id: "no-secrets".into()
            }
        );
        let listed = set().evaluate("svc", "lake", &p("raw/secret/k"), Action::List, today());
        assert!(listed.is_allowed());
    }

    #[test]
    fn default_deny_for_other_principal_store_action_and_expired_grant() {
        let s = set();
        assert_eq!(
            s.evaluate("bob", "lake", &p("raw/x"), Action::Read, today()),
            Decision::NoGrant
        );
        assert_eq!(
            s.evaluate("nobody", "lake", &p("raw/x"), Action::Read, today()),
            Decision::NoGrant
        );
        assert_eq!(
            s.evaluate("svc", "other", &p("raw/x"), Action::Read, today()),
            Decision::NoGrant
        );
        assert_eq!(
            s.evaluate("svc", "lake", &p("raw/x"), Action::Delete, today()),
            Decision::NoGrant
        );
        assert_eq!(
            s.evaluate("svc", "lake", &p("raw/x"), Action::Write, today()),
            Decision::NoGrant
        );
        let before = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        assert!(
            s.evaluate("svc", "lake", &p("raw/x"), Action::Write, before)
                .is_allowed()
        );
    }
}
