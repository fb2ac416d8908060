//! Who may call what: the role x route matrix, in one table.
//!
//! # Security
//! Every authenticated route names one [`Permission`]; [`allows`] is the
//! only place that decides. `engineer` may additionally only start
//! pipelines whose principal its policy entry lists in `run_as`.

use std::collections::BTreeSet;

use weir_auth::Role;

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Submit a run.
    SubmitRun,
    /// List and read runs and their events.
    ReadRuns,
    /// Cancel a run.
    CancelRun,
    /// Query and export the audit log.
    ReadAudit,
    /// Run an access review (which is itself recorded).
    AccessReview,
    /// Who am I (any authenticated caller).
    WhoAmI,
}

impl Permission {
    /// A short name for audit records.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubmitRun => "submit_run",
            Self::ReadRuns => "read_runs",
            Self::CancelRun => "cancel_run",
            Self::ReadAudit => "read_audit",
            Self::AccessReview => "access_review",
            Self::WhoAmI => "whoami",
        }
    }
}

/// The matrix. `worker` holds no API permission beyond `whoami`: workers
/// talk to the queue, not to this API.
#[must_use]
pub fn role_allows(role: Role, permission: Permission) -> bool {
    use Permission as P;
    match role {
        Role::Admin => true,
        Role::Engineer => matches!(
            permission,
            P::SubmitRun | P::ReadRuns | P::CancelRun | P::WhoAmI
        ),
        Role::Auditor => matches!(permission, P::ReadAudit | P::AccessReview | P::WhoAmI),
        Role::Worker => matches!(permission, P::WhoAmI),
    }
}

/// Whether any of `roles` allows `permission`.
#[must_use]
pub fn allows(roles: &BTreeSet<Role>, permission: Permission) -> bool {
    roles.iter().any(|r| role_allows(*r, permission))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditors_never_touch_runs_or_data_and_engineers_never_read_the_log() {
        for p in [
            Permission::SubmitRun,
            Permission::CancelRun,
            Permission::ReadRuns,
        ] {
            assert!(!role_allows(Role::Auditor, p));
            assert!(!role_allows(Role::Worker, p));
        }
        for p in [Permission::ReadAudit, Permission::AccessReview] {
            assert!(!role_allows(Role::Engineer, p));
            assert!(!role_allows(Role::Worker, p));
        }
        assert!(!allows(&BTreeSet::new(), Permission::WhoAmI));
    }
}
