//! The Redis connection every Redis type here shares: a reconnecting
//! multiplexed [`ConnectionManager`] for short commands, dedicated
//! connections for blocking ones, and a time limit on everything.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion};

use crate::error::{QueueError, Result};

/// The longest any Redis call waits, beyond a blocking `receive`'s own
/// `wait`: connecting (with retries), sending and reading the reply. A call
/// that runs out returns [`QueueError::Timeout`]; nothing hangs when Redis
/// is down.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// One TCP connect attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a call may be sent again after the connection broke under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Sending it twice has the effect of sending it once.
    Idempotent,
    /// Sending it twice could duplicate its effect (`XADD`).
    Never,
}

/// A Redis client and its shared, reconnecting connection.
#[derive(Clone)]
pub(crate) struct Redis {
    client: Client,
    manager: ConnectionManager,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may hold a password.
        let info = self.client.get_connection_info();
        f.debug_struct("Redis")
            .field("addr", &info.addr().to_string())
            .field("db", &info.redis_settings().db())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects to `url` and checks that Redis answers.
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        // The parser's error may quote the URL, password included: drop it.
        let info = url
            .into_connection_info()
            .map_err(|_| QueueError::invalid("redis url", "not a valid Redis URL"))?;
        // RESP3 lets the manager see a dropped connection at once and
        // reconnect before the next call, instead of failing that call.
        // The library name labels these connections in `CLIENT LIST`.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3)
            .set_lib_name("weir-queue", env!("CARGO_PKG_VERSION"));
        let client = Client::open(info.set_redis_settings(settings))
            .map_err(|_| QueueError::invalid("redis url", "not a valid Redis URL"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let manager = tokio::time::timeout(
            REDIS_TIMEOUT,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| QueueError::Timeout {
            operation: "connect",
            after: REDIS_TIMEOUT,
        })?
        .map_err(|e| QueueError::redis("connect", e))?;
        Ok(Self { client, manager })
    }

    /// Runs `call` on the shared connection within [`REDIS_TIMEOUT`]. If
    /// the connection broke under an idempotent call, the manager
    /// reconnects and the call is sent once more.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        retry: Retry,
        call: F,
    ) -> Result<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempts = async {
            match call(self.manager.clone()).await {
                Err(e) if retry == Retry::Idempotent && e.is_unrecoverable_error() => {
                    tracing::debug!(operation, error = %e, "redis connection lost; retrying once");
                    call(self.manager.clone()).await
                }
                other => other,
            }
        };
        tokio::time::timeout(REDIS_TIMEOUT, attempts)
            .await
            .map_err(|_| QueueError::Timeout {
                operation,
                after: REDIS_TIMEOUT,
            })?
            .map_err(|e| QueueError::redis(operation, e))
    }

    /// A new connection of its own, without a response timeout, for a
    /// blocking command: on the shared multiplexed connection it would
    /// hold up every command queued behind it.
    pub(crate) async fn dedicated(&self) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        tokio::time::timeout(
            REDIS_TIMEOUT,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| QueueError::Timeout {
            operation: "connect",
            after: REDIS_TIMEOUT,
        })?
        .map_err(|e| QueueError::redis("connect", e))
    }
}
