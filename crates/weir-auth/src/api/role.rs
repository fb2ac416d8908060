//! API roles and the verified identity a request runs as.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What a caller of the weir HTTP API may do. The HTTP layer maps each route
/// to the roles allowed on it; a caller without one of them gets 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including issuing tokens and rotating keys.
    Admin,
    /// Runs the pipelines granted to it.
    Engineer,
    /// Reads the audit log and access reviews; no data, no runs.
    Auditor,
    /// A `weir worker` process.
    Worker,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Self; 4] = [Self::Admin, Self::Engineer, Self::Auditor, Self::Worker];

    /// The role's name as it appears in tokens: `"admin"`, `"engineer"`,
    /// `"auditor"` or `"worker"`.
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

impl FromStr for Role {
    type Err = Error;

    /// Parses a role name exactly as [`Role::as_str`] spells it (lowercase).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownRole`] for anything else.
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(Error::UnknownRole)
    }
}

/// A caller whose token passed every check of
/// [`ApiVerifier::verify`](crate::ApiVerifier::verify).
///
/// Holds no secret: safe to log and to put in audit events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The token's subject (`sub`): who is calling.
    pub sub: String,
    /// The caller's roles. For an external token, the known role names of
    /// its `roles` claim (unknown names are dropped); possibly empty.
    pub roles: BTreeSet<Role>,
    /// The token id, the handle for revocation. Always present on weir
    /// tokens; external tokens may lack one.
    pub jti: Option<String>,
    /// When the token expires (Unix seconds).
    pub exp: i64,
    /// The issuer that vouched for the caller (`iss`).
    pub issuer: String,
    /// Whether an external identity provider issued the token.
    pub external: bool,
}

impl Identity {
    /// Whether the caller has `role`.
    #[must_use]
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the caller has any of `roles`.
    #[must_use]
    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.roles.contains(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_every_form() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(role.to_string(), role.as_str());
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
    }

    #[test]
    fn refuses_other_spellings() {
        for bad in ["", "Admin", "ADMIN", " admin", "root", "admin\0"] {
            assert!(
                matches!(bad.parse::<Role>(), Err(Error::UnknownRole)),
                "{bad:?}"
            );
            assert!(serde_json::from_str::<Role>(&format!("{bad:?}")).is_err());
        }
    }

    #[test]
    fn role_checks() {
        let id = Identity {
            sub: "alice".into(),
            roles: [Role::Engineer].into(),
            jti: None,
            exp: 0,
            issuer: "weir".into(),
            external: false,
        };
        assert!(id.has_role(Role::Engineer));
        assert!(!id.has_role(Role::Admin));
        assert!(id.has_any_role(&[Role::Admin, Role::Engineer]));
        assert!(!id.has_any_role(&[]));
    }
}
