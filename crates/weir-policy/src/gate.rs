//! The per-call check behind [`GuardedStore`](crate::GuardedStore): token
//! expiry, scope, confinement, then exactly one recorded decision, awaited
//! before the caller may delegate.

use std::borrow::Cow;
use std::path::Path as FsPath;
use std::sync::Arc;

use object_store::path::Path;
use weir_auth::{Action, Clock, PathKind, Scope, ScopeEntry, ScopePath, StageClaims};

use crate::access::{AccessDecision, DecisionSink, Operation};
use crate::confinement::LocalRoot;
use crate::error::{Error, Result};

/// Longest path echoed in a denial message.
const MAX_ECHOED_PATH: usize = 256;

/// What one guarded call asks for.
pub(crate) struct Check<'a> {
    pub(crate) op: Operation,
    pub(crate) path: &'a Path,
    pub(crate) action: Action,
    /// The source of a copy or rename and the actions it needs there.
    pub(crate) source: Option<(&'a Path, &'static [Action])>,
}

impl<'a> Check<'a> {
    pub(crate) fn new(op: Operation, path: &'a Path, action: Action) -> Self {
        Self {
            op,
            path,
            action,
            source: None,
        }
    }
}

/// A denial: the path and action that failed, and why.
struct Denial<'a> {
    path: &'a str,
    action: Action,
    reason: &'static str,
}

enum Verdict<'a> {
    Allow,
    Deny(Denial<'a>),
    Expired,
}

/// The state shared by a guarded store, its streams and its uploads.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    store: String,
    principal: String,
    run: String,
    stage: String,
    attempt: u32,
    jti: String,
    exp: i64,
    scope: Scope,
    clock: Arc<dyn Clock>,
    sink: Arc<dyn DecisionSink>,
    root: Option<LocalRoot>,
}

impl Gate {
    pub(crate) fn new(
        store: &str,
        claims: &StageClaims,
        clock: Arc<dyn Clock>,
        sink: Arc<dyn DecisionSink>,
    ) -> Self {
        Self {
            store: store.to_owned(),
            principal: claims.sub.clone(),
            run: claims.run.clone(),
            stage: claims.stage.clone(),
            attempt: claims.attempt,
            jti: claims.jti.clone(),
            exp: claims.exp,
            scope: claims.scope.clone(),
            clock,
            sink,
            root: None,
        }
    }

    pub(crate) fn set_local_root(&mut self, root: &FsPath) -> Result<()> {
        self.root = Some(LocalRoot::new(root)?);
        Ok(())
    }

    pub(crate) fn store(&self) -> &str {
        &self.store
    }

    pub(crate) fn stage(&self) -> &str {
        &self.stage
    }

    /// Checks a call on one path (and a copy or rename's source), records
    /// the decision, and says whether the call may go through.
    ///
    /// Records exactly one decision, allowed or denied, and returns only
    /// once the sink has it; `Ok` means the decision was recorded and the
    /// call is allowed, so the caller delegates only after this resolves.
    pub(crate) async fn authorize(&self, check: Check<'_>) -> object_store::Result<()> {
        let now = self.clock.now();
        let verdict = if now >= self.exp {
            Verdict::Expired
        } else {
            self.verdict(&check)
        };
        let target = check.path.as_ref();
        let source = check.source.map(|(p, _)| p.as_ref());
        self.conclude(check.op, target, source, check.action, verdict, now)
            .await
    }

    /// Checks a list call's prefix (`None`: the store root), records the
    /// decision, and says whether the call may go through. A prefix is
    /// allowed if a readable scope entry lies at, below or above it; the
    /// results are then filtered with [`visible`](Self::visible). Records
    /// exactly one decision, like [`authorize`](Self::authorize).
    pub(crate) async fn authorize_list(
        &self,
        op: Operation,
        prefix: Option<&Path>,
    ) -> object_store::Result<()> {
        let now = self.clock.now();
        let target = prefix.map_or("", |p| p.as_ref());
        let verdict = if now >= self.exp {
            Verdict::Expired
        } else {
            match self.list_denial(target) {
                None => Verdict::Allow,
                Some(d) => Verdict::Deny(d),
            }
        };
        self.conclude(op, target, None, Action::Read, verdict, now)
            .await
    }

    /// Checks only the token's expiry (for the parts of an upload already
    /// allowed), without recording a decision.
    pub(crate) fn check_live(&self, path: &str) -> object_store::Result<()> {
        if self.clock.now() >= self.exp {
            Err(self.expired(path))
        } else {
            Ok(())
        }
    }

    /// Whether a listed object may be shown.
    pub(crate) fn visible(&self, path: &Path) -> bool {
        ScopePath::parse(path.as_ref()).is_ok_and(|p| {
            self.scope.allows(&self.store, &p, Action::Read).is_some() && self.confined(&p)
        })
    }

    /// Whether a listed common prefix may be shown: it leads to, or lies
    /// within, a readable entry.
    pub(crate) fn visible_prefix(&self, path: &Path) -> bool {
        ScopePath::parse(path.as_ref())
            .is_ok_and(|p| self.readable_entries().any(|e| reaches(e, &p)) && self.confined(&p))
    }

    fn readable_entries(&self) -> impl Iterator<Item = &ScopeEntry> {
        self.scope
            .entries()
            .iter()
            .filter(|e| e.store == self.store && e.actions.contains(Action::Read))
    }

    fn confined(&self, path: &ScopePath) -> bool {
        self.root.as_ref().is_none_or(|r| r.contains(path))
    }

    fn verdict<'c>(&self, check: &Check<'c>) -> Verdict<'c> {
        if let Some((source, actions)) = check.source {
            for action in actions {
                if let Some(d) = self.path_denial(source.as_ref(), *action) {
                    return Verdict::Deny(d);
                }
            }
        }
        match self.path_denial(check.path.as_ref(), check.action) {
            Some(d) => Verdict::Deny(d),
            None => Verdict::Allow,
        }
    }

    fn path_denial<'p>(&self, path: &'p str, action: Action) -> Option<Denial<'p>> {
        let deny = |reason| {
            Some(Denial {
                path,
                action,
                reason,
            })
        };
        let Ok(p) = ScopePath::parse(path) else {
            return deny("the path is not canonical");
        };
        if self.scope.allows(&self.store, &p, action).is_none() {
            return deny("no scope entry allows it");
        }
        if !self.confined(&p) {
            return deny("the path resolves outside the store root");
        }
        None
    }

    fn list_denial<'p>(&self, prefix: &'p str) -> Option<Denial<'p>> {
        let deny = |reason| {
            Some(Denial {
                path: prefix,
                action: Action::Read,
                reason,
            })
        };
        let Ok(p) = ScopePath::parse(prefix) else {
            return deny("the path is not canonical");
        };
        if !self.readable_entries().any(|e| reaches(e, &p)) {
            return deny("no scope entry lies at, below or above the prefix");
        }
        if !self.confined(&p) {
            return deny("the path resolves outside the store root");
        }
        None
    }

    /// Records the decision (awaiting the sink) and turns the verdict into
    /// the call's outcome; a decision that cannot be recorded denies.
    async fn conclude(
        &self,
        operation: Operation,
        path: &str,
        source: Option<&str>,
        action: Action,
        verdict: Verdict<'_>,
        now: i64,
    ) -> object_store::Result<()> {
        let (allowed, action, reason) = match &verdict {
            Verdict::Allow => (true, action, "allowed by the stage's scope"),
            Verdict::Deny(d) => (false, d.action, d.reason),
            Verdict::Expired => (false, action, "the stage token has expired"),
        };
        let decision = AccessDecision {
            principal: Cow::Borrowed(&self.principal),
            run: Cow::Borrowed(&self.run),
            stage: Cow::Borrowed(&self.stage),
            attempt: self.attempt,
            jti: Cow::Borrowed(&self.jti),
            store: Cow::Borrowed(&self.store),
            operation,
            path: Cow::Borrowed(path),
            source: source.map(Cow::Borrowed),
            action,
            allowed,
            reason,
            time: now,
        };
        let recorded = self.sink.record(&decision).await;
        match verdict {
            Verdict::Allow => recorded.map_err(|_| {
                self.denied(path, action, "the access decision could not be recorded")
            }),
            Verdict::Deny(d) => Err(self.denied(d.path, d.action, d.reason)),
            Verdict::Expired => Err(self.expired(path)),
        }
    }

    fn denied(&self, path: &str, action: Action, reason: &'static str) -> object_store::Error {
        object_store::Error::PermissionDenied {
            path: path.to_owned(),
            source: Box::new(Error::AccessDenied {
                stage: self.stage.clone(),
                run: self.run.clone(),
                store: self.store.clone(),
                path: path.chars().take(MAX_ECHOED_PATH).collect(),
                action,
                reason,
            }),
        }
    }

    fn expired(&self, path: &str) -> object_store::Error {
        object_store::Error::Unauthenticated {
            path: path.to_owned(),
            source: Box::new(Error::TokenExpired {
                stage: self.stage.clone(),
                run: self.run.clone(),
                exp: self.exp,
            }),
        }
    }
}

/// Whether listing at `p` can reach something `entry` allows: `p` lies
/// within a prefix entry, or `p` is the entry's path or one of its
/// ancestors.
fn reaches(entry: &ScopeEntry, p: &ScopePath) -> bool {
    (entry.kind == PathKind::Prefix && entry.path.covers(p)) || p.covers(&entry.path)
}
