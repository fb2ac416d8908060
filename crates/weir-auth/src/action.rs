//! Object-store actions and small sets of them.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One kind of access to objects in a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read an object's content or metadata.
    Read,
    /// Create or overwrite an object.
    Write,
    /// List objects under a prefix.
    List,
    /// Delete an object.
    Delete,
}

impl Action {
    /// Every action, in alphabetical order of their names (the serialized order).
    pub const ALL: [Action; 4] = [Action::Delete, Action::List, Action::Read, Action::Write];

    /// The lowercase name used in tokens and policies.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::List => "list",
            Action::Delete => "delete",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Action::Read => 1,
            Action::Write => 1 << 1,
            Action::List => 1 << 2,
            Action::Delete => 1 << 3,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`Action`]s, stored as a bitset.
///
/// Serializes as a list of lowercase names sorted alphabetically
/// (`["list","read"]`); deserialization refuses repeated names.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActionSet(u8);

impl ActionSet {
    /// The empty set.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// All actions.
    #[must_use]
    pub fn all() -> Self {
        Action::ALL.into_iter().collect()
    }

    /// `self` with `action` added.
    #[must_use]
    pub fn with(self, action: Action) -> Self {
        Self(self.0 | action.bit())
    }

    /// Adds `action`; returns whether it was newly added.
    pub fn insert(&mut self, action: Action) -> bool {
        let new = !self.contains(action);
        self.0 |= action.bit();
        new
    }

    /// Whether `action` is in the set.
    #[must_use]
    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// Whether every action of `other` is in `self`.
    #[must_use]
    pub fn is_superset(self, other: ActionSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of actions in the set.
    #[must_use]
    pub fn len(self) -> usize {
        self.iter().count()
    }

    /// The actions, in alphabetical order of their names.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        iter.into_iter().fold(Self::empty(), Self::with)
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for ActionSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for action in self.iter() {
            seq.serialize_element(&action)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ActionSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor;
        impl<'de> Visitor<'de> for SetVisitor {
            type Value = ActionSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of distinct actions")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ActionSet, A::Error> {
                let mut set = ActionSet::empty();
                while let Some(action) = seq.next_element::<Action>()? {
                    if !set.insert(action) {
                        return Err(serde::de::Error::custom("repeated action"));
                    }
                }
                Ok(set)
            }
        }
        deserializer.deserialize_seq(SetVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_sorted_lowercase() {
        let set: ActionSet = [Action::Write, Action::Read, Action::List]
            .into_iter()
            .collect();
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["list","read","write"]"#
        );
        assert_eq!(
            serde_json::to_string(&ActionSet::all()).unwrap(),
            r#"["delete","list","read","write"]"#
        );
    }

    #[test]
    fn deserialize_round_trips_and_refuses_repeats() {
        let set: ActionSet = serde_json::from_str(r#"["write","read"]"#).unwrap();
        assert!(set.contains(Action::Read) && set.contains(Action::Write));
        assert!(!set.contains(Action::Delete));
        assert_eq!(set.len(), 2);
        assert!(serde_json::from_str::<ActionSet>(r#"["read","read"]"#).is_err());
        assert!(serde_json::from_str::<ActionSet>(r#"["Read"]"#).is_err());
        assert!(serde_json::from_str::<ActionSet>(r#"["admin"]"#).is_err());
    }

    #[test]
    fn set_operations() {
        let mut set = ActionSet::empty();
        assert!(set.is_empty());
        assert!(set.insert(Action::Delete));
        assert!(!set.insert(Action::Delete));
        assert!(ActionSet::all().is_superset(set));
        assert!(!set.is_superset(ActionSet::all()));
        assert_eq!(format!("{set:?}"), "{Delete}");
        assert_eq!(Action::List.to_string(), "list");
    }
}
