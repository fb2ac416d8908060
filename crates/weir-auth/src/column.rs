//! Column limits carried with a scope entry: which columns (and struct
//! fields) of a dataset a stage may read, which it sees masked, and which
//! grants said so.
//!
//! `weir-auth` carries and validates them; the readers in `weir-engine`
//! enforce them.
//!
//! # Names
//!
//! A column name is a dotted path: `email` names a top-level column,
//! `contact.email` the field `email` inside the struct column `contact`
//! (inside a list of structs too). A dot always separates segments, so
//! `contact` covers `contact.email` *and* a top-level column literally named
//! `contact.email`. Names match ignoring case, so a `deny: [ssn]` also hides
//! a column spelled `SSN`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most column names in each list of a [`ColumnRule`].
pub const MAX_COLUMNS: usize = 1024;
/// Longest accepted column name, in bytes.
pub const MAX_COLUMN_NAME_BYTES: usize = 256;
/// Most grant ids a [`ColumnRule`] may name.
pub const MAX_COLUMN_GRANTS: usize = 32;
/// Longest accepted grant id in a [`ColumnRule`], in bytes.
pub const MAX_GRANT_ID_BYTES: usize = 128;

/// How the values of a readable column are disguised. Ordered by strength:
/// `Hash < Redact < Null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mask {
    /// Hex HMAC-SHA256 of the value's text under a per-pipeline key: equal
    /// values stay equal (joins work), the value itself is not revealed.
    Hash,
    /// The string `[redacted]` for every non-null value.
    Redact,
    /// A null of the column's type.
    Null,
}

impl Mask {
    /// Every mask's name as written in policy files.
    pub const NAMES: &'static [&'static str] = &["hash", "redact", "null"];

    /// Parses a mask's name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "hash" => Some(Self::Hash),
            "redact" => Some(Self::Redact),
            "null" => Some(Self::Null),
            _ => None,
        }
    }

    /// The mask's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::Redact => "redact",
            Self::Null => "null",
        }
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The column limits of one scope entry (or of one grant).
///
/// A column (or struct field) is readable when an `allow` name covers it
/// (or there is no `allow` list) and no `deny` name covers it. A readable
/// column that a `mask` name covers is disguised (the strongest such mask
/// wins); masks apply inside out, so a masked struct is masked after its own
/// masked or hidden fields.
///
/// Serialized compactly: empty parts are left out, so a plain allow list is
/// `{"allow":["a","b"]}`.
///
/// # Guarantees (once validated, which [`Scope`](crate::Scope) does)
///
/// It limits something (an `allow` list, a `deny` or a `mask`); every name
/// is 1 to [`MAX_COLUMN_NAME_BYTES`] bytes without control characters or
/// empty dotted segments; no list repeats a name (ignoring case); every
/// masked column is readable; `grants` is sorted, without repeats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    /// Only these columns (and what they contain); `None`: every column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Never these columns (and what they contain).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Readable columns whose values are disguised.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mask: BTreeMap<String, Mask>,
    /// The ids of the grants whose column limits shaped this rule, so a
    /// reader can name them when it refuses a column. Empty in a grant's own
    /// rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

impl ColumnRule {
    /// Only `columns`.
    #[must_use]
    pub fn allow<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Self {
            allow: Some(columns.into_iter().map(Into::into).collect()),
            ..Self::default()
        }
    }

    /// Every column but `columns`.
    #[must_use]
    pub fn deny<S: Into<String>>(columns: impl IntoIterator<Item = S>) -> Self {
        Self {
            deny: columns.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Whether `outer` names `inner` or something that contains it: equal,
    /// or `inner` continues `outer` after a dot. Ignores case.
    #[must_use]
    pub fn covers(outer: &str, inner: &str) -> bool {
        let (outer, inner) = (outer.to_lowercase(), inner.to_lowercase());
        inner
            .strip_prefix(outer.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    }

    /// Whether the column or field `name` (a dotted path) is readable.
    #[must_use]
    pub fn readable(&self, name: &str) -> bool {
        self.denied_by(name).is_none()
            && self
                .allow
                .as_ref()
                .is_none_or(|allow| allow.iter().any(|a| Self::covers(a, name)))
    }

    /// The first `deny` name that covers `name`.
    #[must_use]
    pub fn denied_by(&self, name: &str) -> Option<&str> {
        self.deny
            .iter()
            .find(|d| Self::covers(d, name))
            .map(String::as_str)
    }

    /// Whether some name of the rule (allow, deny or mask) lies strictly
    /// inside `name`, so a reader must look into its fields.
    #[must_use]
    pub fn reaches_inside(&self, name: &str) -> bool {
        let inside = |n: &String| Self::covers(name, n) && !Self::covers(n, name);
        self.allow.iter().flatten().any(inside)
            || self.deny.iter().any(inside)
            || self.mask.keys().any(inside)
    }

    /// The strongest mask whose name covers `name`, as `deny` and `allow`
    /// names do: a mask on `contact` covers the field `contact.email` and a
    /// top-level column literally named `contact.email` alike.
    #[must_use]
    pub fn mask_for(&self, name: &str) -> Option<Mask> {
        self.mask
            .iter()
            .filter(|(k, _)| Self::covers(k, name))
            .map(|(_, m)| *m)
            .max()
    }

    /// Checks the rule's invariants (see the type's guarantees).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidScope`] naming the rule broken.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason| Err(Error::InvalidScope { reason });
        if self.allow.is_none() && self.deny.is_empty() && self.mask.is_empty() {
            return invalid("a column rule must allow, deny or mask something");
        }
        if let Some(allow) = &self.allow
            && allow.is_empty()
        {
            return invalid("a column allow list must name at least one column");
        }
        let lists = [
            self.allow.as_deref().unwrap_or_default(),
            self.deny.as_slice(),
        ];
        if lists.iter().any(|l| l.len() > MAX_COLUMNS) || self.mask.len() > MAX_COLUMNS {
            return invalid("a column list may name at most 1024 columns");
        }
        let names = lists.iter().flat_map(|l| l.iter()).chain(self.mask.keys());
        for name in names {
            if let Err(reason) = check_column_name(name) {
                return invalid(reason);
            }
        }
        if lists.iter().any(|l| has_repeats(l)) {
            return invalid("a column list repeats a name");
        }
        if self.mask.keys().any(|m| !self.readable(m)) {
            return invalid("a masked column must be readable");
        }
        if self.grants.len() > MAX_COLUMN_GRANTS {
            return invalid("a column rule may name at most 32 grants");
        }
        if self.grants.iter().any(|g| {
            g.is_empty() || g.len() > MAX_GRANT_ID_BYTES || g.chars().any(char::is_control)
        }) {
            return invalid("grant ids must be 1 to 128 bytes without control characters");
        }
        if self.grants.windows(2).any(|w| w.first() >= w.last()) {
            return invalid("column rule grants must be sorted, without repeats");
        }
        Ok(())
    }
}

/// Checks one column name: 1 to [`MAX_COLUMN_NAME_BYTES`] bytes, no control
/// characters, no empty dotted segment.
///
/// # Errors
///
/// Which rule the name breaks.
pub fn check_column_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_COLUMN_NAME_BYTES || name.chars().any(char::is_control) {
        return Err("column names must be 1 to 256 bytes without control characters");
    }
    if name.split('.').any(str::is_empty) {
        return Err("a column name may not start or end with `.` or contain `..`");
    }
    Ok(())
}

fn has_repeats(names: &[String]) -> bool {
    let mut seen: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    seen.sort_unstable();
    seen.windows(2).any(|w| w.first() == w.last())
}

impl fmt::Display for ColumnRule {
    /// `allow [a, b]; deny [c.d]; mask [email: hash]`, leaving out empty parts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(allow) = &self.allow {
            parts.push(format!("allow [{}]", allow.join(", ")));
        }
        if !self.deny.is_empty() {
            parts.push(format!("deny [{}]", self.deny.join(", ")));
        }
        if !self.mask.is_empty() {
            let masks: Vec<String> = self.mask.iter().map(|(c, m)| format!("{c}: {m}")).collect();
            parts.push(format!("mask [{}]", masks.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn covers_is_dot_segment_aware_and_ignores_case() {
        assert!(ColumnRule::covers("contact", "contact"));
        assert!(ColumnRule::covers("contact", "contact.email"));
        assert!(ColumnRule::covers("Contact", "contact.EMAIL.x"));
        assert!(!ColumnRule::covers("contact", "contacts"));
        assert!(!ColumnRule::covers("contact.email", "contact"));
        assert!(!ColumnRule::covers("con", "contact.email"));
    }

    #[test]
    fn readable_combines_allow_and_deny() {
        let mut rule = ColumnRule::allow(["id", "contact"]);
        rule.deny = names(&["contact.email"]);
        assert!(rule.readable("id"));
        assert!(rule.readable("contact"));
        assert!(rule.readable("contact.phone"));
        assert!(!rule.readable("contact.email"));
        assert!(!rule.readable("contact.email.domain"));
        assert!(!rule.readable("ssn"));
        assert!(rule.reaches_inside("contact"));
        assert!(!rule.reaches_inside("id"));
        let deny = ColumnRule::deny(["SSN"]);
        assert!(!deny.readable("ssn"));
        assert!(deny.readable("email"));
    }

    #[test]
    fn masks_match_ignoring_case_strongest_first() {
        let mut rule = ColumnRule::default();
        rule.mask.insert("email".into(), Mask::Hash);
        rule.mask.insert("EMAIL".into(), Mask::Null);
        assert_eq!(rule.mask_for("Email"), Some(Mask::Null));
        assert_eq!(rule.mask_for("phone"), None);
        assert!(Mask::Null > Mask::Redact && Mask::Redact > Mask::Hash);
    }

    #[test]
    fn a_mask_covers_every_name_inside_its_own() {
        let mut rule = ColumnRule::default();
        rule.mask.insert("contact".into(), Mask::Redact);
        rule.mask.insert("Contact.Phone".into(), Mask::Null);
        rule.mask.insert("contact.email".into(), Mask::Hash);
        // A struct field, or a top-level column literally named so: `contact`
        // covers both, as it does for `deny` and `allow`.
        assert_eq!(rule.mask_for("contact.email"), Some(Mask::Redact));
        assert_eq!(rule.mask_for("CONTACT.EMAIL.domain"), Some(Mask::Redact));
        assert_eq!(rule.mask_for("contact.phone"), Some(Mask::Null));
        assert_eq!(rule.mask_for("contact.fax"), Some(Mask::Redact));
        assert_eq!(rule.mask_for("contact"), Some(Mask::Redact));
        assert_eq!(rule.mask_for("contacts"), None);
        assert_eq!(rule.mask_for("con"), None);
        assert_eq!(rule.mask_for("email"), None);
    }

    #[test]
    fn validation_refuses_each_broken_rule() {
        let ok = ColumnRule::deny(["ssn"]);
        assert!(ok.validate().is_ok());
        let mut bad = Vec::new();
        bad.push(ColumnRule::default());
        bad.push(ColumnRule::allow(Vec::<String>::new()));
        bad.push(ColumnRule::deny([""]));
        bad.push(ColumnRule::deny(["a..b"]));
        bad.push(ColumnRule::deny([".a"]));
        bad.push(ColumnRule::deny(["a\u{7}"]));
        bad.push(ColumnRule::deny(["x".repeat(MAX_COLUMN_NAME_BYTES + 1)]));
        bad.push(ColumnRule::deny(["ssn", "SSN"]));
        bad.push(ColumnRule::deny((0..=MAX_COLUMNS).map(|i| format!("c{i}"))));
        let mut masked_denied = ColumnRule::deny(["contact"]);
        masked_denied
            .mask
            .insert("contact.email".into(), Mask::Hash);
        bad.push(masked_denied);
        let mut masked_not_allowed = ColumnRule::allow(["id"]);
        masked_not_allowed.mask.insert("email".into(), Mask::Redact);
        bad.push(masked_not_allowed);
        let mut unsorted = ok.clone();
        unsorted.grants = names(&["b", "a"]);
        bad.push(unsorted);
        let mut repeated = ok.clone();
        repeated.grants = names(&["a", "a"]);
        bad.push(repeated);
        let mut too_many = ok.clone();
        too_many.grants = (0..=MAX_COLUMN_GRANTS)
            .map(|i| format!("g{i:03}"))
            .collect();
        bad.push(too_many);
        for rule in bad {
            assert!(rule.validate().is_err(), "{rule:?}");
        }
        let mut mask_only = ColumnRule::default();
        mask_only.mask.insert("contact.email".into(), Mask::Hash);
        mask_only.grants = names(&["a", "b"]);
        assert!(mask_only.validate().is_ok());
    }

    #[test]
    fn serialized_compactly_and_strictly() {
        let mut rule = ColumnRule::deny(["ssn"]);
        rule.mask.insert("email".into(), Mask::Hash);
        rule.grants = names(&["g"]);
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(
            json,
            r#"{"deny":["ssn"],"mask":{"email":"hash"},"grants":["g"]}"#
        );
        assert_eq!(serde_json::from_str::<ColumnRule>(&json).unwrap(), rule);
        assert_eq!(
            serde_json::to_string(&ColumnRule::allow(["a"])).unwrap(),
            r#"{"allow":["a"]}"#
        );
        assert!(serde_json::from_str::<ColumnRule>(r#"{"deny":["a"],"x":1}"#).is_err());
        assert!(serde_json::from_str::<ColumnRule>(r#"{"mask":{"a":"blur"}}"#).is_err());
        assert_eq!(rule.to_string(), "deny [ssn]; mask [email: hash]");
    }
}
