//! Queue configuration and the limits every backend enforces.

use std::time::Duration;

use crate::error::{QueueError, Result};

/// The most tasks one [`WorkQueue::receive`](crate::WorkQueue::receive)
/// returns; a larger `max` is clamped to it.
pub const MAX_BATCH: usize = 10_000;

/// The longest a single [`WorkQueue::receive`](crate::WorkQueue::receive)
/// waits; a longer `wait` is clamped to it (callers loop anyway).
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The largest [`QueueConfig::max_payload`] accepted: Redis refuses bulk
/// strings over 512 MiB.
pub const MAX_PAYLOAD_LIMIT: usize = 512 * 1024 * 1024;

/// The longest consumer name, in bytes.
pub const MAX_CONSUMER_BYTES: usize = 128;

/// How a [`WorkQueue`](crate::WorkQueue) hands out and takes back tasks.
///
/// Every handle on one queue (every process, for Redis) must use the same
/// configuration: each applies its own when it reclaims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// How long a received task stays invisible to other consumers without
    /// an [`ack`](crate::WorkQueue::ack) or an
    /// [`extend`](crate::WorkQueue::extend). After that it is reclaimed by
    /// the next `receive` of any consumer. At least 1 ms; default 30 s.
    pub visibility_timeout: Duration,
    /// How many times a task is delivered before it is moved to the dead
    /// letters instead of being delivered again. At least 1; default 5.
    pub max_deliveries: u32,
    /// The largest payload [`enqueue`](crate::WorkQueue::enqueue) accepts,
    /// in bytes. At most [`MAX_PAYLOAD_LIMIT`]; default 8 MiB.
    pub max_payload: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            max_payload: 8 * 1024 * 1024,
        }
    }
}

impl QueueConfig {
    /// Checks the limits documented on each field.
    ///
    /// # Errors
    ///
    /// [`QueueError::InvalidArgument`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.visibility_timeout < Duration::from_millis(1) {
            return Err(QueueError::invalid(
                "visibility_timeout",
                "must be at least 1 ms",
            ));
        }
        if self.max_deliveries == 0 {
            return Err(QueueError::invalid("max_deliveries", "must be at least 1"));
        }
        if self.max_payload > MAX_PAYLOAD_LIMIT {
            return Err(QueueError::invalid(
                "max_payload",
                "must be at most 512 MiB",
            ));
        }
        Ok(())
    }

    pub(crate) fn check_payload(&self, len: usize) -> Result<()> {
        if len > self.max_payload {
            return Err(QueueError::PayloadTooLarge {
                len,
                max: self.max_payload,
            });
        }
        Ok(())
    }

    /// The visibility timeout in whole milliseconds, rounded up.
    pub(crate) fn visibility_ms(&self) -> u64 {
        millis_ceil(self.visibility_timeout)
    }
}

/// `d` in whole milliseconds, rounded up, saturating.
pub(crate) fn millis_ceil(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

pub(crate) fn check_consumer(consumer: &str) -> Result<()> {
    check_name("consumer", consumer, MAX_CONSUMER_BYTES)
}

/// Non-empty, at most `max` bytes, no control characters.
pub(crate) fn check_name(what: &'static str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(QueueError::invalid(what, "must not be empty"));
    }
    if value.len() > max {
        return Err(QueueError::invalid(what, "too long"));
    }
    if value.chars().any(char::is_control) {
        return Err(QueueError::invalid(what, "contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        QueueConfig::default().validate().unwrap();
    }

    #[test]
    fn zero_visibility_timeout_is_refused() {
        let config = QueueConfig {
            visibility_timeout: Duration::ZERO,
            ..QueueConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(QueueError::InvalidArgument {
                what: "visibility_timeout",
                ..
            })
        ));
    }

    #[test]
    fn zero_max_deliveries_is_refused() {
        let config = QueueConfig {
            max_deliveries: 0,
            ..QueueConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn millis_round_up() {
        assert_eq!(millis_ceil(Duration::from_micros(1)), 1);
        assert_eq!(millis_ceil(Duration::from_millis(7)), 7);
        assert_eq!(millis_ceil(Duration::from_micros(7001)), 8);
        assert_eq!(millis_ceil(Duration::MAX), u64::MAX);
    }

    #[test]
    fn consumer_names_are_checked() {
        assert!(check_consumer("worker-1").is_ok());
        assert!(check_consumer("").is_err());
        assert!(check_consumer("a\nb").is_err());
        assert!(check_consumer(&"x".repeat(MAX_CONSUMER_BYTES + 1)).is_err());
    }
}
