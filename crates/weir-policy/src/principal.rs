//! Principals: the users and services grants are given to.

use std::fmt;

use weir_spec::Location;

/// What kind of identity a principal is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A pipeline or other automated identity.
    Service,
    /// A person.
    User,
}

impl PrincipalKind {
    /// Every kind's name as written in policy files.
    pub const NAMES: &'static [&'static str] = &["service", "user"];

    /// Parses a kind's name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "service" => Some(Self::Service),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

/// A role a principal holds on the weir service (enforced by the server, not
/// by grant evaluation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Manages weir itself.
    Admin,
    /// Writes and runs pipelines.
    Engineer,
    /// Reads the audit log and access reviews.
    Auditor,
    /// Runs stages.
    Worker,
}

impl Role {
    /// Every role's name as written in policy files.
    pub const NAMES: &'static [&'static str] = &["admin", "engineer", "auditor", "worker"];

    /// Parses a role's name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Self::Admin),
            "engineer" => Some(Self::Engineer),
            "auditor" => Some(Self::Auditor),
            "worker" => Some(Self::Worker),
            _ => None,
        }
    }

    /// The role's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Engineer => "engineer",
            Self::Auditor => "auditor",
            Self::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A declared principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The principal's name (as a pipeline's `principal:` names it).
    pub name: String,
    /// Service or user.
    pub kind: PrincipalKind,
    /// Roles on the weir service, without repeats.
    pub roles: Vec<Role>,
    /// Users only: the service principals whose pipelines this user may
    /// start through the API (as an `engineer`).
    pub run_as: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Where it is declared.
    pub origin: Location,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in Role::NAMES {
            assert_eq!(Role::from_name(name).unwrap().as_str(), *name);
        }
        for name in PrincipalKind::NAMES {
            assert!(PrincipalKind::from_name(name).is_some());
        }
        assert!(Role::from_name("root").is_none());
        assert!(PrincipalKind::from_name("Service").is_none());
    }
}
