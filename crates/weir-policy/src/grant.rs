//! Grants: who may do what, where, until when.

use std::fmt;

use chrono::NaiveDate;
use weir_auth::{Action, ActionSet, ColumnRule, ScopePath};
use weir_spec::Location;

use crate::pattern::PathPattern;

/// Whether a grant allows or forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Allows the actions (unless a deny also matches).
    Allow,
    /// Forbids the actions, whatever any allow says.
    Deny,
}

impl Effect {
    /// Every effect's name as written in policy files.
    pub const NAMES: &'static [&'static str] = &["allow", "deny"];

    /// Parses an effect's name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "allow" => Some(Self::Allow),
            "deny" => Some(Self::Deny),
            _ => None,
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        })
    }
}

/// A set of paths in one store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    /// The store, as bound by the policy's `stores:`.
    pub store: String,
    /// The paths.
    pub pattern: PathPattern,
}

/// A validated grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Unique id (`[a-z][a-z0-9_-]*`).
    pub id: String,
    /// The principal it applies to.
    pub principal: String,
    /// Allow or deny.
    pub effect: Effect,
    /// The actions it applies to (never empty).
    pub actions: ActionSet,
    /// Where it applies (never empty).
    pub resources: Vec<Resource>,
    /// A column restriction carried into scopes (allow grants only).
    pub columns: Option<ColumnRule>,
    /// The last day (UTC, inclusive) the grant is in force.
    pub expires: Option<NaiveDate>,
    /// Free text.
    pub description: Option<String>,
    /// Where it is declared.
    pub origin: Location,
}

impl Grant {
    /// Whether the grant is in force on `today` (UTC). An expired grant
    /// matches nothing.
    #[must_use]
    pub fn is_active(&self, today: NaiveDate) -> bool {
        self.expires.is_none_or(|last| today <= last)
    }

    /// Whether the grant applies to `action` on `path` in `store` on `today`.
    #[must_use]
    pub fn matches(&self, store: &str, path: &ScopePath, action: Action, today: NaiveDate) -> bool {
        self.applies(action, today)
            && self
                .resources
                .iter()
                .any(|r| r.store == store && r.pattern.matches(path))
    }

    /// Whether the grant is in force on `today` and names `action`.
    pub(crate) fn applies(&self, action: Action, today: NaiveDate) -> bool {
        self.is_active(today) && self.actions.contains(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires: Option<NaiveDate>) -> Grant {
        Grant {
            id: "g".into(),
            principal: "svc".into(),
            effect: Effect::Allow,
            actions: ActionSet::empty().with(Action::Read),
            resources: vec![Resource {
                store: "lake".into(),
                pattern: PathPattern::parse("raw/**").unwrap(),
            }],
            columns: None,
            expires,
            description: None,
            origin: Location::new("p.yaml", 1, 1),
        }
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn expiry_is_inclusive_end_of_day() {
        let g = grant(Some(day(2027, 6, 30)));
        assert!(g.is_active(day(2027, 6, 30)));
        assert!(!g.is_active(day(2027, 7, 1)));
        assert!(grant(None).is_active(day(9999, 1, 1)));
    }

    #[test]
    fn expired_grant_matches_nothing() {
        let g = grant(Some(day(2020, 1, 1)));
        let path = ScopePath::parse("raw/x").unwrap();
        assert!(!g.matches("lake", &path, Action::Read, day(2021, 1, 1)));
        assert!(g.matches("lake", &path, Action::Read, day(2020, 1, 1)));
        assert!(!g.matches("lake", &path, Action::Write, day(2020, 1, 1)));
        assert!(!g.matches("other", &path, Action::Read, day(2020, 1, 1)));
    }
}
