//! Gaps found by the plan check: what a stage needs that its principal was
//! not granted, rendered as a grant ready to paste into `policies/`.

use std::fmt;

use weir_auth::{Action, ActionSet};

/// Whether a dataset is read or written by the stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetRole {
    /// Declared in `inputs`: needs `read`.
    Input,
    /// Declared in `outputs`: needs `read`, `write` and `delete`, because the
    /// commit protocol reads the old manifest and removes failed or expired
    /// versions inside the output's own path.
    Output,
}

impl DatasetRole {
    /// The actions a dataset in this role needs.
    #[must_use]
    pub fn actions(self) -> ActionSet {
        match self {
            DatasetRole::Input => ActionSet::empty().with(Action::Read),
            DatasetRole::Output => ActionSet::empty()
                .with(Action::Read)
                .with(Action::Write)
                .with(Action::Delete),
        }
    }

    /// `input` or `output`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetRole::Input => "input",
            DatasetRole::Output => "output",
        }
    }
}

/// Why a scope entry could not be granted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GapReason {
    /// No allow grant covers the dataset's whole path (default deny).
    NoGrant,
    /// A deny grant matches the dataset's path or something below it.
    Denied {
        /// The deny grant.
        grant_id: String,
    },
    /// The pipeline's store is not the store the policy binds that name to.
    StoreBinding {
        /// Why, as a sentence.
        reason: String,
    },
    /// The stage names a dataset the pipeline does not define.
    UnknownDataset,
    /// The entry could not be built (column rules leave nothing, invalid
    /// path, too many entries).
    InvalidEntry {
        /// Why, as a sentence.
        reason: String,
    },
}

/// One gap between what a stage declared and what its principal may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingGrant {
    /// The pipeline.
    pub pipeline: String,
    /// The principal the pipeline runs as.
    pub principal: String,
    /// Whether a policy file declares that principal.
    pub principal_declared: bool,
    /// The stage.
    pub stage: String,
    /// The dataset.
    pub dataset: String,
    /// Input or output.
    pub role: DatasetRole,
    /// The dataset's store.
    pub store: String,
    /// The dataset's path in the store.
    pub path: String,
    /// The actions not granted.
    pub actions: ActionSet,
    /// Why.
    pub reason: GapReason,
}

impl MissingGrant {
    /// A grant id suggestion: `<principal>-<read|write>-<dataset>`, made to
    /// match `[a-z][a-z0-9_-]*` and at most 63 characters.
    #[must_use]
    pub fn suggested_id(&self) -> String {
        let verb = match self.role {
            DatasetRole::Input => "read",
            DatasetRole::Output => "write",
        };
        let raw = format!("{}-{verb}-{}", self.principal, self.dataset).to_ascii_lowercase();
        let mut id: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
            id.insert_str(0, "g-");
        }
        id.chars().take(63).collect()
    }

    /// A ready-to-paste grant (a `grants:` list item) that closes this gap,
    /// preceded by comments saying why it is needed. For gaps no allow
    /// grant can close (a deny, a store mismatch) the comments say so.
    #[must_use]
    pub fn yaml_snippet(&self) -> String {
        let mut out = format!(
            "# {} `{}` of stage `{}` (pipeline `{}`) needs {} on {}:{}\n",
            self.role.as_str(),
            self.dataset,
            self.stage,
            self.pipeline,
            action_list(self.actions),
            self.store,
            self.path
        );
        match &self.reason {
            GapReason::NoGrant => {}
            GapReason::Denied { grant_id } => out.push_str(&format!(
                "# note: deny grant `{grant_id}` matches this path; an allow cannot override it.\n#       Narrow or remove that deny grant, or give the dataset another path.\n"
            )),
            GapReason::StoreBinding { reason } | GapReason::InvalidEntry { reason } => {
                out.push_str(&format!("# note: no grant can fix this: {reason}\n"));
                return out;
            }
            GapReason::UnknownDataset => {
                out.push_str("# note: no grant can fix this: the pipeline does not define the dataset\n");
                return out;
            }
        }
        if !self.principal_declared {
            out.push_str(&format!(
                "# note: also declare the principal under `principals:`, e.g. {}: {{ kind: service }}\n",
                yaml_scalar(&self.principal)
            ));
        }
        out.push_str(&format!(
            "  - id: {}\n    principal: {}\n    effect: allow\n    actions: [{}]\n    resources:\n      - {{ store: {}, path: {} }}\n    description: {}\n",
            self.suggested_id(),
            yaml_scalar(&self.principal),
            action_list(self.actions),
            self.store,
            quoted(&format!("{}/**", self.path)),
            quoted(&format!("{} `{}` of stage `{}` in pipeline `{}`", self.role.as_str(), self.dataset, self.stage, self.pipeline)),
        ));
        out
    }
}

impl fmt::Display for MissingGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stage `{}` {} `{}` ({}:{}) needs [{}] as `{}`: ",
            self.stage,
            self.role.as_str(),
            self.dataset,
            self.store,
            self.path,
            action_list(self.actions),
            self.principal
        )?;
        match &self.reason {
            GapReason::NoGrant => f.write_str("no grant allows it"),
            GapReason::Denied { grant_id } => write!(f, "denied by grant `{grant_id}`"),
            GapReason::StoreBinding { reason } | GapReason::InvalidEntry { reason } => {
                f.write_str(reason)
            }
            GapReason::UnknownDataset => f.write_str("the pipeline does not define the dataset"),
        }
    }
}

/// Actions in reading order: read, write, list, delete.
fn action_list(actions: ActionSet) -> String {
    [Action::Read, Action::Write, Action::List, Action::Delete]
        .into_iter()
        .filter(|a| actions.contains(*a))
        .map(Action::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn yaml_scalar(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        s.to_owned()
    } else {
        quoted(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(reason: GapReason) -> MissingGrant {
        MissingGrant {
            pipeline: "customer-features".into(),
            principal: "svc-customer-features".into(),
            principal_declared: true,
            stage: "clean-customers".into(),
            dataset: "customers".into(),
            role: DatasetRole::Output,
            store: "lake".into(),
            path: "curated/customers".into(),
            actions: DatasetRole::Output.actions(),
            reason,
        }
    }

    #[test]
    fn snippet_is_a_ready_to_paste_grant() {
        let s = gap(GapReason::NoGrant).yaml_snippet();
        assert!(
            s.contains("  - id: svc-customer-features-write-customers\n"),
            "{s}"
        );
        assert!(s.contains("    principal: svc-customer-features\n"));
        assert!(s.contains("    effect: allow\n"));
        assert!(s.contains("    actions: [read, write, delete]\n"));
        assert!(s.contains("      - { store: lake, path: \"curated/customers/**\" }\n"));
    }

    #[test]
    fn snippet_parses_as_a_policy() {
        let snippet = gap(GapReason::NoGrant).yaml_snippet();
        let text = format!(
            "version: 1\nstores: {{ lake: {{ url: /d }} }}\nprincipals: {{ svc-customer-features: {{ kind: service }} }}\ngrants:\n{snippet}"
        );
        let set = crate::PolicySet::load_str("p.yaml", &text, std::path::Path::new("/")).unwrap();
        assert_eq!(set.grants().len(), 1);
    }

    #[test]
    fn suggested_id_is_a_valid_id() {
        let mut g = gap(GapReason::NoGrant);
        g.principal = "Svc:Ops@corp".into();
        assert_eq!(g.suggested_id(), "svc-ops-corp-write-customers");
        g.principal = "9lives".into();
        assert!(g.suggested_id().starts_with("g-9lives"));
        g.dataset = "x".repeat(100);
        assert_eq!(g.suggested_id().len(), 63);
    }

    #[test]
    fn denied_and_binding_gaps_explain_themselves() {
        let d = gap(GapReason::Denied {
            grant_id: "no-pii".into(),
        });
        assert!(d.yaml_snippet().contains("deny grant `no-pii`"));
        assert!(d.to_string().contains("denied by grant `no-pii`"));
        let b = gap(GapReason::StoreBinding {
            reason: "mismatch".into(),
        })
        .yaml_snippet();
        assert!(b.contains("no grant can fix this: mismatch") && !b.contains("- id:"));
    }
}
