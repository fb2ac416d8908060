//! `weir access review`: which grants were used, in part or not at all, and
//! what was denied, over a window of the audit log; with a narrower policy to
//! paste. Each review is itself recorded in the log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;
use weir_audit::{Action as AuditAction, AuditEvent, Decision, Filter};
use weir_auth::{Action, ScopePath};
use weir_engine::Audit;
use weir_policy::{Effect, Grant, PolicySet};

use crate::Output;

/// Usage of one allow grant in the window.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct GrantUse {
    id: String,
    principal: String,
    granted: Vec<&'static str>,
    used: BTreeSet<&'static str>,
    /// Indexes into the grant's resources that some allowed access matched.
    #[serde(skip)]
    resources_used: BTreeSet<usize>,
    unused_resources: Vec<String>,
    events: u64,
}

/// The outcome of a review.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Review {
    since: String,
    events: usize,
    never_used: Vec<String>,
    partly_used: Vec<String>,
    grants: Vec<GrantUse>,
    denied: Vec<DeniedAttempt>,
    suggested_policy: String,
}

/// Denied accesses, grouped.
#[derive(Debug, serde::Serialize)]
pub(crate) struct DeniedAttempt {
    actor: String,
    stage: String,
    resource: String,
    action: String,
    count: u64,
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

/// `weir access review`.
pub(crate) fn review(
    state_dir: &Path,
    policies_dir: &Path,
    since: &str,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let Some(policies) = crate::access::load_policies(policies_dir)? else {
        return Ok(ExitCode::from(crate::load::EXIT_INVALID));
    };
    let window = weir_spec::parse_duration(since).ok_or_else(|| {
        anyhow::anyhow!("--since `{since}` is not a duration such as `30d` or `12h`")
    })?;
    let start = Utc::now() - chrono::Duration::from_std(window)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let audit = Audit::open_local(state_dir).await?;
        let events = crate::audit::all_events(&audit, &Filter::all().between(start, Utc::now())).await?;
        let review = analyse(&policies, &events, since);
        let summary = format!(
            "access review over {since}: {} event(s), {} grant(s) never used, {} used in part, {} denied attempt group(s)",
            review.events,
            review.never_used.len(),
            review.partly_used.len(),
            review.denied.len()
        );
        let actor = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let actor = if actor.is_empty() || actor.len() > 64 { "unknown".into() } else { actor };
        audit
            .record(audit.event(&actor, AuditAction::AccessReview, Decision::None).with_reason(summary.clone()))
            .await?;
        match output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&review)?),
            Output::Text => print!("{}", render(&review, &summary)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Matches every allowed access to the allow grants that justify it.
pub(crate) fn analyse(policies: &PolicySet, events: &[AuditEvent], since: &str) -> Review {
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

fn render(r: &Review, summary: &str) -> String {
    let mut out = format!("{summary}\n");
    out.push_str("\nGRANT                                     USED ACTIONS / GRANTED          EVENTS  UNUSED RESOURCES\n");
    for u in &r.grants {
        let used: Vec<&str> = u.used.iter().copied().collect();
        out.push_str(&format!(
            "{:40}  {:30}  {:>6}  {}\n",
            u.id,
            format!("{} / {}", used.join(","), u.granted.join(",")),
            u.events,
            if u.unused_resources.is_empty() {
                "-".to_owned()
            } else {
                u.unused_resources.join(" ")
            }
        ));
    }
    if !r.denied.is_empty() {
        out.push_str("\ndenied attempts\n");
        for d in &r.denied {
            out.push_str(&format!(
                "  {} stage `{}` {} {} x{}\n",
                d.actor, d.stage, d.action, d.resource, d.count
            ));
        }
    }
    out.push_str(&format!(
        "\nsuggested narrower policy\n\n{}",
        r.suggested_policy
    ));
    out
}
