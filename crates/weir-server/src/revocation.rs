//! A revocation list shared by every API server through Redis.
//!
//! Each server keeps a local mirror, so the check on every request stays in
//! memory; Redis holds the truth (a sorted set `jti -> until`) and a
//! channel announces each revocation to the mirrors at once.
//!
//! # Security
//! - `revoke` returns only after Redis has stored the entry; the local
//!   mirror is updated too, so this server refuses the token at once and the
//!   others as soon as the announcement arrives.
//! - The mirror re-reads the whole set every [`RESYNC`], so an announcement
//!   lost while a connection was down is caught up.
//! - Fail closed: when the mirror has not synced for [`MAX_STALENESS`],
//!   `is_revoked` answers `true` for every token (the contract of
//!   [`RevocationList`]), so a partitioned server cannot keep accepting
//!   revoked tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use redis::AsyncCommands;
use weir_auth::{InMemoryRevocationList, RevocationList};

/// The sorted set of revoked `jti`s, scored by the time they may be forgotten.
pub const REVOKED_KEY: &str = "weir:revoked";
/// The channel on which revocations are announced (`<until> <jti>`).
pub const REVOKED_CHANNEL: &str = "weir:revoked";
/// How often the mirror re-reads the whole set.
pub const RESYNC: Duration = Duration::from_secs(10);
/// How old the last successful sync may be before every token is refused.
pub const MAX_STALENESS: Duration = Duration::from_secs(60);

/// A Redis-backed [`RevocationList`] with a local mirror.
#[derive(Debug)]
pub struct RedisRevocation {
    client: redis::Client,
    mirror: InMemoryRevocationList,
    last_sync: AtomicI64,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl RedisRevocation {
    /// Connects to `url` (`redis://127.0.0.1:6379`), loads the set and
    /// starts following it. Call from within a tokio runtime.
    ///
    /// # Errors
    /// If Redis cannot be reached or read.
    pub async fn connect(url: &str) -> redis::RedisResult<Arc<Self>> {
        let client = redis::Client::open(url)?;
        let list = Arc::new(Self {
            client,
            mirror: InMemoryRevocationList::new(),
            last_sync: AtomicI64::new(i64::MIN),
        });
        list.resync().await?;
        let follower = Arc::clone(&list);
        tokio::spawn(async move { follower.follow().await });
        Ok(list)
    }

    /// Re-reads the whole set into the mirror, dropping expired entries.
    async fn resync(&self) -> redis::RedisResult<()> {
        let mut conn = self.client.get_multiplexed_async_connection().await?;
        let now = now();
        let _: () = conn.zrembyscore(REVOKED_KEY, "-inf", now).await?;
        let entries: Vec<(String, i64)> = conn
            .zrangebyscore_withscores(REVOKED_KEY, now, "+inf")
            .await?;
        for (jti, until) in entries {
            // The in-memory list cannot fail.
            let _ = self.mirror.revoke(&jti, until);
        }
        self.mirror.purge_expired(now);
        self.last_sync.store(now, Ordering::Release);
        Ok(())
    }

    /// Applies announcements as they come and re-reads the set regularly;
    /// reconnects after errors.
    async fn follow(self: Arc<Self>) {
        loop {
            if let Err(e) = self.follow_once().await {
                tracing::warn!(error = %e, "revocation channel lost; retrying");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn follow_once(&self) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(REVOKED_CHANNEL).await?;
        // Anything revoked before the subscription took effect.
        self.resync().await?;
        let mut messages = pubsub.on_message();
        let mut tick = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { return Ok(()) };
                    let payload: String = message.get_payload()?;
                    if let Some((until, jti)) = payload.split_once(' ')
                        && let Ok(until) = until.parse::<i64>()
                    {
                        let _ = self.mirror.revoke(jti, until);
                    }
                }
                _ = tick.tick() => self.resync().await?,
            }
        }
    }

    fn stale(&self) -> bool {
        let last = self.last_sync.load(Ordering::Acquire);
        let limit = i64::try_from(MAX_STALENESS.as_secs()).unwrap_or(i64::MAX);
        now().saturating_sub(last) > limit
    }
}

impl RevocationList for RedisRevocation {
    // Stores the entry in Redis (blocking: revocation is rare; `ZADD GT`
    // keeps the later `until`), announces it, then updates the mirror.
    fn revoke(&self, jti: &str, until: i64) -> weir_auth::Result<()> {
        let fail = |e: redis::RedisError| {
            tracing::error!(error = %e, "could not record a revocation in redis");
            weir_auth::Error::Revocation {
                reason: "redis refused the revocation or is unreachable",
            }
        };
        let mut conn = self.client.get_connection().map_err(fail)?;
        redis::pipe()
            .atomic()
            .cmd("ZADD")
            .arg(REVOKED_KEY)
            .arg("GT")
            .arg(until)
            .arg(jti)
            .ignore()
            .cmd("PUBLISH")
            .arg(REVOKED_CHANNEL)
            .arg(format!("{until} {jti}"))
            .ignore()
            .query::<()>(&mut conn)
            .map_err(fail)?;
        self.mirror.revoke(jti, until)
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.stale() || self.mirror.is_revoked(jti)
    }
}
