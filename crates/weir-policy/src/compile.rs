//! The plan-time check: a stage's declared datasets -> the exact scope its
//! token will carry, each action justified by a grant.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use weir_auth::{Action, ActionSet, ColumnRule, PathKind, Scope, ScopeEntry, ScopePath};
use weir_spec::{Pipeline, Stage};

use crate::columns;
use crate::gap::{DatasetRole, GapReason, MissingGrant};
use crate::grant::{Effect, Grant};
use crate::pattern::PathPattern;
use crate::set::PolicySet;

/// One dataset of a stage, with the grant that justifies each action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledEntry {
    /// The dataset's name in the pipeline.
    pub dataset: String,
    /// Input or output.
    pub role: DatasetRole,
    /// The scope entry (a segment-aware prefix on the dataset's path).
    pub entry: ScopeEntry,
    /// For each action of the entry, the allow grant that justifies it.
    pub justified_by: Vec<(Action, String)>,
}

/// The checked scope of one stage.
///
/// # Guarantees
///
/// The scope is never empty and holds exactly the stage's declared datasets:
/// inputs with `read`, outputs with `read`, `write` and `delete`, each a
/// prefix on the dataset's path. It is never the principal's whole grant
/// set. Each (entry, action) is covered by an allow grant in force for the
/// pipeline's principal, and no deny grant in force matches the dataset's
/// path or anything below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledScope {
    principal: String,
    stage: String,
    entries: Vec<CompiledEntry>,
    scope: Scope,
}

impl CompiledScope {
    /// The principal the stage runs as.
    #[must_use]
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The stage.
    #[must_use]
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// The entries, inputs first, in declaration order.
    #[must_use]
    pub fn entries(&self) -> &[CompiledEntry] {
        &self.entries
    }

    /// The scope to mint into the stage token.
    #[must_use]
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The grant that justifies `action` on `dataset`.
    #[must_use]
    pub fn grant_for(&self, dataset: &str, action: Action) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.dataset == dataset)?
            .justified_by
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, id)| id.as_str())
    }
}

impl From<CompiledScope> for Scope {
    fn from(compiled: CompiledScope) -> Scope {
        compiled.scope
    }
}

/// Compiles `stage` of `pipeline` into a scope, checking every declared
/// dataset against the grants of the pipeline's principal in force on
/// `today` (UTC), and every store the stage uses against the policy's
/// binding ([`PolicySet::check_store_binding`]).
///
/// An allow grant justifies an entry only if it covers the dataset's path
/// *and everything below it* (a pattern ending in `**`); a deny grant
/// forbids it if it matches the path or anything below it. Column rules of
/// all allow grants covering the entry, and of the `read` allow grants that
/// match the path or anything below it (whose objects the stage reads as
/// part of the dataset), are combined (see [`crate::columns`]: allow lists
/// intersect, deny lists and masks unite, the stronger mask wins) and name
/// those grants.
///
/// # Errors
///
/// Every gap at once, one [`MissingGrant`] per dataset (or store) that
/// cannot be granted.
pub fn compile_stage(
    policy: &PolicySet,
    pipeline: &Pipeline,
    stage: &Stage,
    today: NaiveDate,
) -> Result<CompiledScope, Vec<MissingGrant>> {
    let declared = stage
        .inputs
        .iter()
        .map(|d| (d, DatasetRole::Input))
        .chain(stage.outputs.iter().map(|d| (d, DatasetRole::Output)));
    let mut gaps = Vec::new();
    let mut entries = Vec::new();
    let mut stores: BTreeMap<&str, bool> = BTreeMap::new();
    for (name, role) in declared {
        let gap = |store: &str, path: &str, reason| MissingGrant {
            pipeline: pipeline.name.clone(),
            principal: pipeline.principal.clone(),
            principal_declared: policy.principal(&pipeline.principal).is_some(),
            stage: stage.name.clone(),
            dataset: name.clone(),
            role,
            store: store.to_owned(),
            path: path.to_owned(),
            actions: role.actions(),
            reason,
        };
        let Some(ds) = pipeline.datasets.get(name) else {
            gaps.push(gap("", "", GapReason::UnknownDataset));
            continue;
        };
        if !*stores.entry(ds.store.as_str()).or_insert_with(|| {
            match store_problem(policy, pipeline, &ds.store) {
                None => true,
                Some(reason) => {
                    gaps.push(gap(&ds.store, &ds.path, GapReason::StoreBinding { reason }));
                    false
                }
            }
        }) {
            continue;
        }
        let path = match ScopePath::parse(&ds.path) {
            Ok(p) => p,
            Err(e) => {
                let reason = GapReason::InvalidEntry {
                    reason: e.to_string(),
                };
                gaps.push(gap(&ds.store, &ds.path, reason));
                continue;
            }
        };
        let j = justify(
            policy,
            &pipeline.principal,
            &ds.store,
            &path,
            role.actions(),
            today,
        );
        let columns = match columns::combine(&j.column_rules) {
            Ok(c) => c,
            Err(reason) => {
                let reason = GapReason::InvalidEntry {
                    reason: reason.to_owned(),
                };
                gaps.push(gap(&ds.store, &ds.path, reason));
                continue;
            }
        };
        if !j.missing.is_empty() {
            let reason = j
                .denied_by
                .map_or(GapReason::NoGrant, |grant_id| GapReason::Denied {
                    grant_id,
                });
            gaps.push(MissingGrant {
                actions: j.missing,
                ..gap(&ds.store, &ds.path, reason)
            });
            continue;
        }
        entries.push(CompiledEntry {
            dataset: name.clone(),
            role,
            entry: ScopeEntry {
                store: ds.store.clone(),
                path,
                kind: PathKind::Prefix,
                actions: role.actions(),
                columns,
            },
            justified_by: j.granted,
        });
    }
    finish(policy, pipeline, stage, entries, gaps)
}

fn store_problem(policy: &PolicySet, pipeline: &Pipeline, store: &str) -> Option<String> {
    let Some(s) = pipeline.stores.get(store) else {
        return Some(format!("the pipeline does not define store `{store}`"));
    };
    policy
        .check_store_binding(store, &s.location)
        .err()
        .map(|e| e.to_string())
}

fn finish(
    policy: &PolicySet,
    pipeline: &Pipeline,
    stage: &Stage,
    entries: Vec<CompiledEntry>,
    mut gaps: Vec<MissingGrant>,
) -> Result<CompiledScope, Vec<MissingGrant>> {
    if !gaps.is_empty() {
        return Err(gaps);
    }
    match Scope::new(entries.iter().map(|e| e.entry.clone()).collect()) {
        Ok(scope) => Ok(CompiledScope {
            principal: pipeline.principal.clone(),
            stage: stage.name.clone(),
            entries,
            scope,
        }),
        Err(e) => {
            gaps.push(MissingGrant {
                pipeline: pipeline.name.clone(),
                principal: pipeline.principal.clone(),
                principal_declared: policy.principal(&pipeline.principal).is_some(),
                stage: stage.name.clone(),
                dataset: String::new(),
                role: DatasetRole::Output,
                store: String::new(),
                path: String::new(),
                actions: ActionSet::empty(),
                reason: GapReason::InvalidEntry {
                    reason: e.to_string(),
                },
            });
            Err(gaps)
        }
    }
}

/// What the grants say about a prefix entry.
struct Justification {
    granted: Vec<(Action, String)>,
    missing: ActionSet,
    denied_by: Option<String>,
    /// The column rule of each contributing grant, naming that grant.
    column_rules: Vec<ColumnRule>,
}

fn touches(
    grant: &Grant,
    store: &str,
    path: &ScopePath,
    test: fn(&PathPattern, &ScopePath) -> bool,
) -> bool {
    grant
        .resources
        .iter()
        .any(|r| r.store == store && test(&r.pattern, path))
}

fn justify(
    policy: &PolicySet,
    principal: &str,
    store: &str,
    path: &ScopePath,
    actions: ActionSet,
    today: NaiveDate,
) -> Justification {
    let mut j = Justification {
        granted: Vec::new(),
        missing: ActionSet::empty(),
        denied_by: None,
        column_rules: Vec::new(),
    };
    let mut contributors: Vec<&str> = Vec::new();
    for action in actions.iter() {
        let mut allow: Option<&Grant> = None;
        let mut deny: Option<&Grant> = None;
        for g in policy
            .grants_for(principal)
            .filter(|g| g.applies(action, today))
        {
            match g.effect {
                Effect::Deny if touches(g, store, path, PathPattern::intersects_prefix) => {
                    deny.get_or_insert(g);
                }
                Effect::Allow => {
                    let covers = touches(g, store, path, PathPattern::covers_prefix);
                    if covers {
                        allow.get_or_insert(g);
                    }
                    // A grant on paths inside the dataset justifies nothing,
                    // but the stage reads those objects as part of the
                    // dataset: their column limits apply to it too.
                    let limits = covers
                        || (action == Action::Read
                            && touches(g, store, path, PathPattern::intersects_prefix));
                    if limits && !contributors.contains(&g.id.as_str()) {
                        contributors.push(&g.id);
                        j.column_rules
                            .extend(g.columns.iter().map(|rule| ColumnRule {
                                grants: vec![g.id.clone()],
                                ..rule.clone()
                            }));
                    }
                }
                _ => {}
            }
        }
        match (deny, allow) {
            (Some(d), _) => {
                j.missing.insert(action);
                j.denied_by.get_or_insert_with(|| d.id.clone());
            }
            (None, Some(a)) => j.granted.push((action, a.id.clone())),
            (None, None) => {
                j.missing.insert(action);
            }
        }
    }
    j
}
