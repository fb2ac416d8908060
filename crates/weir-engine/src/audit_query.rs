//! Audit log filters as users write them (`--actor`, `?since=30d`), shared
//! by `weir audit` and the HTTP API so both read them the same way.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use weir_audit::{Action, Decision, Filter};

/// A filter in text form. Every field is optional; all given ones must match.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Only events by this principal.
    pub actor: Option<String>,
    /// Only events of this run.
    pub run: Option<String>,
    /// Only events of this stage.
    pub stage: Option<String>,
    /// Only events on this store.
    pub store: Option<String>,
    /// Only events on this path or below it (segment-aware).
    pub path_prefix: Option<String>,
    /// Only this action (`read`, `run_start`, `authenticate`, ...).
    pub action: Option<String>,
    /// Only this decision: `allow`, `deny` or `none`.
    pub decision: Option<String>,
    /// From this time: RFC 3339, or a duration ago (`30d`).
    pub since: Option<String>,
    /// Until this time: RFC 3339, or a duration ago.
    pub until: Option<String>,
}

impl FilterSpec {
    /// The filter, or a message naming the bad field.
    ///
    /// # Errors
    /// An unknown action or decision, or a time that is neither RFC 3339
    /// nor a duration.
    pub fn to_filter(&self) -> Result<Filter, String> {
        let mut f = Filter::all();
        if let Some(v) = &self.actor {
            f = f.actor(v);
        }
        if let Some(v) = &self.run {
            f = f.run(v);
        }
        if let Some(v) = &self.stage {
            f = f.stage(v);
        }
        if let Some(v) = &self.store {
            f = f.store(v);
        }
        if let Some(v) = &self.path_prefix {
            f = f.path_prefix(v);
        }
        if let Some(v) = &self.action {
            let action = Action::ALL
                .into_iter()
                .find(|a| a.as_str() == v)
                .ok_or_else(|| format!("unknown action `{v}`"))?;
            f = f.action(action);
        }
        if let Some(v) = &self.decision {
            let decision = [Decision::Allow, Decision::Deny, Decision::None]
                .into_iter()
                .find(|d| d.as_str() == v)
                .ok_or_else(|| format!("unknown decision `{v}` (allow, deny, none)"))?;
            f = f.decision(decision);
        }
        if self.since.is_some() || self.until.is_some() {
            let since = self
                .since
                .as_deref()
                .map(parse_time)
                .transpose()?
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            let until = self
                .until
                .as_deref()
                .map(parse_time)
                .transpose()?
                .unwrap_or_else(Utc::now);
            f = f.between(since, until);
        }
        Ok(f)
    }
}

/// RFC 3339, or a duration before now (`30d`, `12h`).
///
/// # Errors
/// A message naming the text.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    weir_spec::parse_duration(text)
        .and_then(|ago| chrono::Duration::from_std(ago).ok())
        .map(|ago| Utc::now() - ago)
        .ok_or_else(|| format!("`{text}` is neither an RFC 3339 time nor a duration such as `30d`"))
}
