//! Query filters and keyset paging.

use chrono::{DateTime, Utc};

use crate::admission::{MAX_NAME_BYTES, MAX_PATH_BYTES};
use crate::audit_key::TokenIdHmac;
use crate::chain_id::ChainId;
use crate::error::{Error, Result};
use crate::event::{Action, AuditEvent, Decision};

/// Most events one [`Page`] may ask for.
pub const MAX_PAGE_LIMIT: u32 = 10_000;

/// Which events a query returns. Every set field must match (AND); unset
/// fields match anything. Text fields match exactly; values are always bound
/// as SQL parameters, never spliced into SQL.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this chain.
    pub chain: Option<ChainId>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this run.
    pub run: Option<String>,
    /// Only this stage.
    pub stage: Option<String>,
    /// Only this store.
    pub store: Option<String>,
    /// Only this path or paths under it, segment-aware: `data/train`
    /// matches `data/train` and `data/train/x`, never `data/training`.
    pub path_prefix: Option<String>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only this decision.
    pub decision: Option<Decision>,
    /// Only events of this token.
    pub token_id_hmac: Option<TokenIdHmac>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events strictly before this time.
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    /// Everything.
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// Only `chain`.
    #[must_use]
    pub fn chain(mut self, chain: ChainId) -> Self {
        self.chain = Some(chain);
        self
    }

    /// Only `actor`.
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Only `run`.
    #[must_use]
    pub fn run(mut self, run: impl Into<String>) -> Self {
        self.run = Some(run.into());
        self
    }

    /// Only `stage`.
    #[must_use]
    pub fn stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = Some(stage.into());
        self
    }

    /// Only `store`.
    #[must_use]
    pub fn store(mut self, store: impl Into<String>) -> Self {
        self.store = Some(store.into());
        self
    }

    /// Only `prefix` and paths under it (segment-aware).
    #[must_use]
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only `action`.
    #[must_use]
    pub fn action(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }

    /// Only `decision`.
    #[must_use]
    pub fn decision(mut self, decision: Decision) -> Self {
        self.decision = Some(decision);
        self
    }

    /// Only events of this token.
    #[must_use]
    pub fn token(mut self, token_id_hmac: TokenIdHmac) -> Self {
        self.token_id_hmac = Some(token_id_hmac);
        self
    }

    /// Only events in `[since, until)`.
    #[must_use]
    pub fn between(mut self, since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self.until = Some(until);
        self
    }

    /// The path prefix without trailing slashes (`None` if it is empty: the
    /// empty prefix covers everything).
    pub(crate) fn normalized_prefix(&self) -> Option<&str> {
        self.path_prefix
            .as_deref()
            .map(|p| p.trim_end_matches('/'))
            .filter(|p| !p.is_empty())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let too_long = |field: &Option<String>, cap| field.as_ref().is_some_and(|v| v.len() > cap);
        if too_long(&self.actor, MAX_NAME_BYTES)
            || too_long(&self.run, MAX_NAME_BYTES)
            || too_long(&self.stage, MAX_NAME_BYTES)
            || too_long(&self.store, MAX_NAME_BYTES)
            || too_long(&self.path_prefix, MAX_PATH_BYTES)
        {
            return Err(Error::InvalidQuery {
                reason: "filter value too long",
            });
        }
        Ok(())
    }
}

/// Where a page starts: strictly after this `(chain, seq)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Chain of the last event seen.
    pub chain: ChainId,
    /// Seq of the last event seen.
    pub seq: u64,
}

/// A page of query results, ordered by `(chain, seq)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Start strictly after this position; `None` for the first page.
    pub after: Option<Cursor>,
    /// At most this many events (1 to [`MAX_PAGE_LIMIT`]).
    pub limit: u32,
}

impl Page {
    /// The first page of `limit` events.
    #[must_use]
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }

    /// The page following one whose last event was `last`.
    #[must_use]
    pub fn after(last: &AuditEvent, limit: u32) -> Self {
        Self {
            after: Some(Cursor {
                chain: last.chain.clone(),
                seq: last.seq,
            }),
            limit,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_limit(self.limit)
    }
}

pub(crate) fn check_limit(limit: u32) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE_LIMIT {
        return Err(Error::InvalidQuery {
            reason: "limit must be 1 to 10000",
        });
    }
    Ok(())
}

/// A `u64` seq as the signed 64-bit integer SQL stores (seqs above
/// `i64::MAX` never exist: appends stop there).
pub(crate) fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_normalization_drops_trailing_slashes() {
        assert_eq!(
            Filter::all().path_prefix("data/train/").normalized_prefix(),
            Some("data/train")
        );
        assert_eq!(Filter::all().path_prefix("/").normalized_prefix(), None);
        assert_eq!(Filter::all().normalized_prefix(), None);
    }

    #[test]
    fn limits_are_bounded() {
        assert!(Page::first(0).validate().is_err());
        assert!(Page::first(MAX_PAGE_LIMIT + 1).validate().is_err());
        assert!(Page::first(MAX_PAGE_LIMIT).validate().is_ok());
    }

    #[test]
    fn oversized_filter_is_refused() {
        assert!(
            Filter::all()
                .actor("a".repeat(MAX_NAME_BYTES + 1))
                .validate()
                .is_err()
        );
    }

    #[test]
    fn seq_conversion_saturates() {
        assert_eq!(seq_to_sql(5), 5);
        assert_eq!(seq_to_sql(u64::MAX), i64::MAX);
    }
}
