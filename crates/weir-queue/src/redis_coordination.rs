//! [`RedisCoordination`]: [`Leases`], [`OnceSet`] and [`Fences`] on Redis
//! keys, over one shared connection.

use std::time::Duration;

use async_trait::async_trait;
use redis::Value;

use crate::config::millis_ceil;
use crate::connection::{Redis, Retry};
use crate::coordination::{
    Fences, LeaseOutcome, Leases, OnceSet, check_holder, check_key, check_ttl,
};
use crate::error::{QueueError, Result};
use crate::reply;
use crate::script::{FENCE_ADVANCE, LEASE_ACQUIRE, LEASE_RELEASE, LEASE_RENEW};

/// Longer ttls are cut to this (about 100 years): Redis refuses
/// expiry times that overflow its clock.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

fn ttl_ms(ttl: Duration) -> Result<u64> {
    check_ttl(ttl)?;
    Ok(millis_ceil(ttl).min(MAX_TTL_MS))
}

/// [`Leases`], [`OnceSet`] and [`Fences`] on Redis, sharing one
/// reconnecting connection; every call is one round trip and atomic
/// (Lua compare-and-set where it reads before writing).
///
/// Keys: `weir:lease:<key>` (value: the holder), `weir:once:<key>`,
/// `weir:fence:<key>` (value: the decimal token). Every key carries a
/// Redis expiry, so nothing outlives its ttl. Clones share the connection.
///
/// # Non-goals
///
/// Redlock-style safety across several independent Redis servers: a
/// failover to a replica that missed the latest write can lose a lease or
/// fence. Use fencing tokens checked by the resource itself where that
/// matters.
#[derive(Clone, Debug)]
pub struct RedisCoordination {
    redis: Redis,
}

impl RedisCoordination {
    /// Connects to `url` (`redis://host:6379/`).
    ///
    /// # Errors
    ///
    /// [`QueueError::InvalidArgument`] for a malformed URL (not quoted);
    /// [`QueueError::Unavailable`] or [`QueueError::Timeout`] if Redis does
    /// not answer within [`REDIS_TIMEOUT`](crate::REDIS_TIMEOUT).
    pub async fn connect(url: &str) -> Result<Self> {
        let redis = Redis::connect(url).await?;
        Ok(Self { redis })
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Leases for RedisCoordination {
    async fn acquire(&self, key: &str, holder: &str, ttl: Duration) -> Result<LeaseOutcome> {
        check_key(key)?;
        check_holder(holder)?;
        let ttl = ttl_ms(ttl)?;
        let key = format!("weir:lease:{key}");
        let key = &key;
        let reply = self
            .redis
            .run("acquire lease", Retry::Idempotent, |mut c| async move {
                LEASE_ACQUIRE
                    .key(key)
                    .arg(holder)
                    .arg(ttl)
                    .invoke_async::<Value>(&mut c)
                    .await
            })
            .await?;
        let op = "acquire lease";
        let mut items = reply::items(op, reply)?.into_iter();
        match (items.next(), items.next(), items.next()) {
            (Some(Value::Int(1)), None, None) => Ok(LeaseOutcome::Acquired),
            (Some(Value::Int(0)), Some(current), Some(left)) => {
                let current = reply::bytes(op, current)?;
                let holder = String::from_utf8(current.to_vec())
                    .map_err(|_| QueueError::protocol(op, "holder is not UTF-8"))?;
                // -1 (no expiry, set outside this crate) reads as 0.
                let left = u64::try_from(reply::int(op, &left)?).unwrap_or(0);
                Ok(LeaseOutcome::HeldBy {
                    holder,
                    remaining: Duration::from_millis(left),
                })
            }
            _ => Err(QueueError::protocol(op, "unexpected lease reply")),
        }
    }

    async fn renew(&self, key: &str, holder: &str, ttl: Duration) -> Result<bool> {
        check_key(key)?;
        check_holder(holder)?;
        let ttl = ttl_ms(ttl)?;
        let key = format!("weir:lease:{key}");
        let key = &key;
        let renewed = self
            .redis
            .run("renew lease", Retry::Idempotent, |mut c| async move {
                LEASE_RENEW
                    .key(key)
                    .arg(holder)
                    .arg(ttl)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await?;
        Ok(renewed == 1)
    }

    async fn release(&self, key: &str, holder: &str) -> Result<bool> {
        check_key(key)?;
        check_holder(holder)?;
        let key = format!("weir:lease:{key}");
        let key = &key;
        let released = self
            .redis
            // Not retried: a second attempt after a lost reply would
            // report `false` for a lease the first one released.
            .run("release lease", Retry::Never, |mut c| async move {
                LEASE_RELEASE
                    .key(key)
                    .arg(holder)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await?;
        Ok(released == 1)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl OnceSet for RedisCoordination {
    async fn first(&self, key: &str, ttl: Duration) -> Result<bool> {
        check_key(key)?;
        let ttl = ttl_ms(ttl)?;
        let key = format!("weir:once:{key}");
        let key = &key;
        // Not retried: if the first attempt's reply was lost, a second
        // `SET NX` would wrongly report a replay.
        let reply = self
            .redis
            .run("once", Retry::Never, |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg("1")
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async::<Value>(&mut c)
                    .await
            })
            .await?;
        match reply {
            Value::Okay => Ok(true),
            Value::SimpleString(s) if s == "OK" => Ok(true),
            Value::Nil => Ok(false),
            _ => Err(QueueError::protocol("once", "unexpected SET reply")),
        }
    }
}

fn parse_fence(op: &'static str, v: Value) -> Result<u64> {
    let raw = reply::bytes(op, v)?;
    std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| QueueError::protocol(op, "fence is not a decimal u64"))
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl Fences for RedisCoordination {
    async fn advance(&self, key: &str, value: u64, ttl: Duration) -> Result<u64> {
        check_key(key)?;
        let ttl = ttl_ms(ttl)?;
        let key = format!("weir:fence:{key}");
        let key = &key;
        let reply = self
            .redis
            .run("advance fence", Retry::Idempotent, |mut c| async move {
                FENCE_ADVANCE
                    .key(key)
                    .arg(value.to_string())
                    .arg(ttl)
                    .invoke_async::<Value>(&mut c)
                    .await
            })
            .await?;
        parse_fence("advance fence", reply)
    }

    async fn current(&self, key: &str) -> Result<Option<u64>> {
        check_key(key)?;
        let key = format!("weir:fence:{key}");
        let key = &key;
        let reply = self
            .redis
            .run("read fence", Retry::Idempotent, |mut c| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Value>(&mut c)
                    .await
            })
            .await?;
        match reply {
            Value::Nil => Ok(None),
            v => parse_fence("read fence", v).map(Some),
        }
    }
}
