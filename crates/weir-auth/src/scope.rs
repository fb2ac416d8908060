//! The scope carried inside a stage token: which paths of which stores a
//! stage may touch, and how (with the column limits of [`crate::column`]).

use serde::{Deserialize, Serialize, Serializer};

use crate::action::{Action, ActionSet};
use crate::column::ColumnRule;
use crate::error::{Error, Result};
use crate::path::ScopePath;

/// Most entries a scope may hold.
pub const MAX_SCOPE_ENTRIES: usize = 256;
/// Longest accepted store name, in bytes.
pub const MAX_STORE_NAME_BYTES: usize = 128;
/// How an entry's path is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// The path and everything below it, segment-aware
    /// (see [`ScopePath::covers`]).
    Prefix,
    /// Exactly this path.
    Exact,
}

/// One grant inside a [`Scope`]. Validated when the scope is built.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeEntry {
    /// The store (as named in the pipeline) the entry applies to.
    pub store: String,
    /// The path within the store.
    pub path: ScopePath,
    /// Whether `path` is a prefix or an exact object.
    pub kind: PathKind,
    /// The actions allowed.
    pub actions: ActionSet,
    /// Optional column limits: readable columns, masks, and the grants that
    /// set them. `None`: every column, unmasked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<ColumnRule>,
}

impl ScopeEntry {
    /// Whether this entry alone allows `action` on `path` in `store`.
    #[must_use]
    pub fn allows(&self, store: &str, path: &ScopePath, action: Action) -> bool {
        self.store == store
            && self.actions.contains(action)
            && match self.kind {
                PathKind::Exact => self.path == *path,
                PathKind::Prefix => self.path.covers(path),
            }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |reason| Err(Error::InvalidScope { reason });
        if self.store.is_empty() || self.store.len() > MAX_STORE_NAME_BYTES {
            return invalid("store name must be 1 to 128 bytes");
        }
        if self.store.chars().any(|c| c.is_control() || c == '/') {
            return invalid("store name contains '/' or a control character");
        }
        if self.path.is_root() {
            return invalid("an entry may not cover a whole store (root path)");
        }
        if self.actions.is_empty() {
            return invalid("an entry must allow at least one action");
        }
        if let Some(rule) = &self.columns {
            rule.validate()?;
        }
        Ok(())
    }
}

/// A validated, non-empty list of [`ScopeEntry`]s: everything a stage may do.
///
/// # Guarantees
///
/// A `Scope` (whether built with [`Scope::new`] or deserialized from a token)
/// has 1 to [`MAX_SCOPE_ENTRIES`] entries, none covering a whole store and
/// none with an empty action set. Anything not allowed by an entry is denied.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "Vec<ScopeEntry>")]
pub struct Scope {
    entries: Vec<ScopeEntry>,
}

impl Scope {
    /// Validates and wraps `entries`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidScope`] if `entries` is empty or longer than
    /// [`MAX_SCOPE_ENTRIES`], or if an entry has a root path, no action, an
    /// invalid store name or an invalid column rule
    /// ([`ColumnRule::validate`]).
    pub fn new(entries: Vec<ScopeEntry>) -> Result<Self> {
        if entries.is_empty() {
            return Err(Error::InvalidScope {
                reason: "a scope must have at least one entry",
            });
        }
        if entries.len() > MAX_SCOPE_ENTRIES {
            return Err(Error::InvalidScope {
                reason: "a scope may have at most 256 entries",
            });
        }
        for entry in &entries {
            entry.validate()?;
        }
        Ok(Self { entries })
    }

    /// The entries, in the order given.
    #[must_use]
    pub fn entries(&self) -> &[ScopeEntry] {
        &self.entries
    }

    /// The first entry that allows `action` on `path` in `store`, or `None`
    /// (deny). `Exact` entries need an equal path; `Prefix` entries use
    /// segment-aware [`ScopePath::covers`].
    #[must_use]
    pub fn allows(&self, store: &str, path: &ScopePath, action: Action) -> Option<&ScopeEntry> {
        self.entries.iter().find(|e| e.allows(store, path, action))
    }
}

impl TryFrom<Vec<ScopeEntry>> for Scope {
    type Error = Error;
    fn try_from(entries: Vec<ScopeEntry>) -> Result<Self> {
        Self::new(entries)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.entries.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(store: &str, path: &str, kind: PathKind, actions: &[Action]) -> ScopeEntry {
        ScopeEntry {
            store: store.to_owned(),
            path: ScopePath::parse(path).unwrap(),
            kind,
            actions: actions.iter().copied().collect(),
            columns: None,
        }
    }

    fn p(s: &str) -> ScopePath {
        ScopePath::parse(s).unwrap()
    }

    #[test]
    fn refuses_empty_root_actionless_and_oversized_scopes() {
        assert!(Scope::new(vec![]).is_err());
        assert!(Scope::new(vec![entry("s", "", PathKind::Prefix, &[Action::Read])]).is_err());
        assert!(Scope::new(vec![entry("s", "a", PathKind::Prefix, &[])]).is_err());
        assert!(Scope::new(vec![entry("", "a", PathKind::Prefix, &[Action::Read])]).is_err());
        assert!(Scope::new(vec![entry("a/b", "a", PathKind::Prefix, &[Action::Read])]).is_err());
        let one = entry("s", "a", PathKind::Prefix, &[Action::Read]);
        assert!(Scope::new(vec![one.clone(); MAX_SCOPE_ENTRIES]).is_ok());
        assert!(Scope::new(vec![one; MAX_SCOPE_ENTRIES + 1]).is_err());
    }

    #[test]
    fn refuses_bad_column_rules() {
        let mut e = entry("s", "a", PathKind::Prefix, &[Action::Read]);
        e.columns = Some(ColumnRule::allow(Vec::<String>::new()));
        assert!(Scope::new(vec![e.clone()]).is_err());
        e.columns = Some(ColumnRule::deny([""]));
        assert!(Scope::new(vec![e.clone()]).is_err());
        e.columns = Some(ColumnRule::default());
        assert!(Scope::new(vec![e.clone()]).is_err());
        let mut masked_but_denied = ColumnRule::deny(["email"]);
        masked_but_denied
            .mask
            .insert("email".into(), crate::column::Mask::Hash);
        e.columns = Some(masked_but_denied);
        assert!(Scope::new(vec![e.clone()]).is_err());
        e.columns = Some(ColumnRule::deny(["ssn"]));
        assert!(Scope::new(vec![e]).is_ok());
    }

    #[test]
    fn allows_prefix_segment_aware_and_exact_equal() {
        let scope = Scope::new(vec![
            entry(
                "lake",
                "raw/train",
                PathKind::Prefix,
                &[Action::Read, Action::List],
            ),
            entry("lake", "out/model.bin", PathKind::Exact, &[Action::Write]),
        ])
        .unwrap();
        let first = scope.entries().first().unwrap();
        assert_eq!(
            scope.allows("lake", &p("raw/train/x"), Action::Read),
            Some(first)
        );
        assert!(
            scope
                .allows("lake", &p("raw/train"), Action::List)
                .is_some()
        );
        assert!(
            scope
                .allows("lake", &p("raw/training"), Action::Read)
                .is_none()
        );
        assert!(
            scope
                .allows("lake", &p("raw/train/x"), Action::Write)
                .is_none()
        );
        assert!(
            scope
                .allows("other", &p("raw/train/x"), Action::Read)
                .is_none()
        );
        assert!(
            scope
                .allows("lake", &p("out/model.bin"), Action::Write)
                .is_some()
        );
        assert!(
            scope
                .allows("lake", &p("out/model.bin/x"), Action::Write)
                .is_none()
        );
        assert!(scope.allows("lake", &p("out"), Action::Write).is_none());
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let mut e = entry("lake", "raw/train", PathKind::Prefix, &[Action::Read]);
        e.columns = Some(ColumnRule::allow(["a"]));
        let scope = Scope::new(vec![e]).unwrap();
        let json = serde_json::to_string(&scope).unwrap();
        assert_eq!(
            json,
            r#"[{"store":"lake","path":"raw/train","kind":"prefix","actions":["read"],"columns":{"allow":["a"]}}]"#
        );
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        assert!(serde_json::from_str::<Scope>("[]").is_err());
        let root = r#"[{"store":"lake","path":"","kind":"prefix","actions":["read"]}]"#;
        assert!(serde_json::from_str::<Scope>(root).is_err());
        let extra = r#"[{"store":"lake","path":"a","kind":"prefix","actions":["read"],"x":1}]"#;
        assert!(serde_json::from_str::<Scope>(extra).is_err());
    }

    #[test]
    fn column_limits_round_trip_and_are_validated_when_read() {
        let mut e = entry("lake", "raw/c", PathKind::Prefix, &[Action::Read]);
        let mut rule = ColumnRule::deny(["ssn"]);
        rule.mask
            .insert("contact.email".into(), crate::column::Mask::Redact);
        rule.grants = vec!["c-read".into()];
        e.columns = Some(rule);
        let scope = Scope::new(vec![e]).unwrap();
        let json = serde_json::to_string(&scope).unwrap();
        assert!(
            json.ends_with(
                r#""columns":{"deny":["ssn"],"mask":{"contact.email":"redact"},"grants":["c-read"]}}]"#
            ),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
        let head = r#"[{"store":"lake","path":"a","kind":"prefix","actions":["read"],"columns":"#;
        for bad in [
            r#"{}"#,
            r#"{"deny":["ssn"],"mask":{"ssn":"hash"}}"#,
            r#"{"allow":["id"],"mask":{"email":"null"}}"#,
            r#"{"mask":{"email":"blur"}}"#,
            r#"{"deny":["a"],"grants":["b","a"]}"#,
            r#"{"deny":["a"],"extra":1}"#,
        ] {
            let text = format!("{head}{bad}}}]");
            assert!(serde_json::from_str::<Scope>(&text).is_err(), "{bad}");
        }
    }
}
