//! Access review: which grants were used, in part or not at all, and what
//! was denied, over a window of the audit log; with a narrower policy to
//! paste. Shared by `weir access review` and the HTTP API. Each review is
//! itself recorded in the log.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use weir_audit::{Action as AuditAction, AuditEvent, Decision, Filter, Page};
use weir_auth::{Action, ScopePath};
use weir_policy::{Effect, Grant, PolicySet};

use crate::audit::Audit;
use crate::error::{Error, Result};

/// Usage of one allow grant in the window.
#[derive(Debug, Default, serde::Serialize)]
pub struct GrantUse {
    /// The grant's id.
    pub id: String,
    /// Its principal.
    pub principal: String,
    /// Actions it grants.
    pub granted: Vec<&'static str>,
    /// Actions used in the window.
    pub used: BTreeSet<&'static str>,
    /// Indexes into the grant's resources that some allowed access matched.
    #[serde(skip)]
    resources_used: BTreeSet<usize>,
    /// Resources never matched by an allowed access.
    pub unused_resources: Vec<String>,
    /// Allowed accesses it justified.
    pub events: u64,
}

/// The outcome of a review.
#[derive(Debug, serde::Serialize)]
pub struct Review {
    /// The window, as given (`30d`).
    pub since: String,
    /// Events read.
    pub events: usize,
    /// Allow grants with no use.
    pub never_used: Vec<String>,
    /// Allow grants used for only some actions or resources.
    pub partly_used: Vec<String>,
    /// Per-grant usage.
    pub grants: Vec<GrantUse>,
    /// Denied attempts, grouped.
    pub denied: Vec<DeniedAttempt>,
    /// The grants narrowed to what was used, as YAML.
    pub suggested_policy: String,
}

/// Denied accesses, grouped.
#[derive(Debug, serde::Serialize)]
pub struct DeniedAttempt {
    /// Principal.
    pub actor: String,
    /// Stage.
    pub stage: String,
    /// `store:path`.
    pub resource: String,
    /// Action.
    pub action: String,
    /// How many times.
    pub count: u64,
}

fn to_action(a: AuditAction) -> Option<Action> {
    Some(match a {
        AuditAction::Read => Action::Read,
        AuditAction::Write => Action::Write,
        AuditAction::List => Action::List,
        AuditAction::Delete => Action::Delete,
        _ => return None,
    })
}

/// Every event matching `filter`, page by page.
///
/// # Errors
/// [`Error::Audit`] if the log cannot be read.
pub async fn all_events(audit: &Audit, filter: &Filter) -> Result<Vec<AuditEvent>> {
    let mut out: Vec<AuditEvent> = Vec::new();
    let mut page = Page::first(weir_audit::MAX_PAGE_LIMIT);
    loop {
        let batch = audit
            .sink()
            .query(filter, page.clone())
            .await
            .map_err(Error::audit)?;
        let done = batch.len() < page.limit as usize;
        if let Some(last) = batch.last() {
            page = Page::after(last, page.limit);
        }
        out.extend(batch);
        if done {
            return Ok(out);
        }
    }
}

/// Reviews the window `since` (a duration such as `30d`) ending now, and
/// records the review (by `actor`) in the log. Returns the review and a
/// one-line summary.
///
/// # Errors
/// [`Error::Internal`] for a bad window; [`Error::Audit`] if the log cannot
/// be read or the review cannot be recorded.
pub async fn review(
    audit: &Audit,
    policies: &PolicySet,
    since: &str,
    actor: &str,
) -> Result<(Review, String)> {
    let window = weir_spec::parse_duration(since)
        .and_then(|w| chrono::Duration::from_std(w).ok())
        .ok_or_else(|| Error::Internal {
            message: format!("`{since}` is not a duration such as `30d` or `12h`"),
        })?;
    let now = Utc::now();
    let events = all_events(audit, &Filter::all().between(now - window, now)).await?;
    let review = analyse(policies, &events, since);
    let summary = format!(
        "access review over {since}: {} event(s), {} grant(s) never used, {} used in part, {} denied attempt group(s)",
        review.events,
        review.never_used.len(),
        review.partly_used.len(),
        review.denied.len()
    );
    audit
        .record(
            audit
                .event(actor, AuditAction::AccessReview, Decision::None)
                .with_reason(summary.clone()),
        )
        .await?;
    // A review usually runs in a short-lived process: seal its record now.
    audit.checkpoint().await?;
    Ok((review, summary))
}

/// Matches every allowed access to the allow grants that justify it.
pub fn analyse(policies: &PolicySet, events: &[AuditEvent], since: &str) -> Review {
    let allow: Vec<&Grant> = policies
        .grants()
        .iter()
        .filter(|g| g.effect == Effect::Allow)
        .collect();
    let mut uses: Vec<GrantUse> = allow
        .iter()
        .map(|g| GrantUse {
            id: g.id.clone(),
            principal: g.principal.clone(),
            granted: g.actions.iter().map(Action::as_str).collect(),
            ..GrantUse::default()
        })
        .collect();
    let mut denied: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
    for e in events {
        let (Some(action), Some(store), Some(path)) = (to_action(e.action), &e.store, &e.path)
        else {
            continue;
        };
        if e.decision == Decision::Deny {
            let key = (
                e.actor.clone(),
                e.stage.clone().unwrap_or_default(),
                format!("{store}:{path}"),
                action.as_str().to_owned(),
            );
            *denied.entry(key).or_default() += 1;
            continue;
        }
        let Ok(path) = ScopePath::parse(path) else {
            continue;
        };
        for (g, usage) in allow.iter().zip(uses.iter_mut()) {
            if g.principal != e.actor || !g.actions.contains(action) {
                continue;
            }
            for (i, r) in g.resources.iter().enumerate() {
                if r.store == *store && r.pattern.matches(&path) {
                    usage.used.insert(action.as_str());
                    usage.resources_used.insert(i);
                    usage.events += 1;
                }
            }
        }
    }
    for (g, usage) in allow.iter().zip(uses.iter_mut()) {
        usage.unused_resources = g
            .resources
            .iter()
            .enumerate()
            .filter(|(i, _)| !usage.resources_used.contains(i))
            .map(|(_, r)| format!("{}:{}", r.store, r.pattern.as_str()))
            .collect();
    }
    let never_used = uses
        .iter()
        .filter(|u| u.events == 0)
        .map(|u| u.id.clone())
        .collect();
    let partly_used = uses
        .iter()
        .filter(|u| {
            u.events > 0 && (u.used.len() < u.granted.len() || !u.unused_resources.is_empty())
        })
        .map(|u| u.id.clone())
        .collect();
    let suggested_policy = suggest(&allow, &uses);
    Review {
        since: since.to_owned(),
        events: events.len(),
        never_used,
        partly_used,
        grants: uses,
        denied: denied
            .into_iter()
            .map(|((actor, stage, resource, action), count)| DeniedAttempt {
                actor,
                stage,
                resource,
                action,
                count,
            })
            .collect(),
        suggested_policy,
    }
}

/// The grants as they were used: unused grants dropped, actions and
/// resources narrowed to what was exercised.
fn suggest(allow: &[&Grant], uses: &[GrantUse]) -> String {
    let mut out = String::from("grants:\n");
    for (g, u) in allow.iter().zip(uses) {
        if u.events == 0 {
            out.push_str(&format!(
                "  # `{}` was never used in the window: remove it\n",
                g.id
            ));
            continue;
        }
        out.push_str(&format!(
            "  - id: {}\n    principal: {}\n    effect: allow\n",
            g.id, g.principal
        ));
        let actions: Vec<&str> = u.used.iter().copied().collect();
        out.push_str(&format!(
            "    actions: [{}]\n    resources:\n",
            actions.join(", ")
        ));
        for (i, r) in g.resources.iter().enumerate() {
            if u.resources_used.contains(&i) {
                out.push_str(&format!(
                    "      - {{ store: {}, path: \"{}\" }}\n",
                    r.store,
                    r.pattern.as_str()
                ));
            }
        }
    }
    out
}
