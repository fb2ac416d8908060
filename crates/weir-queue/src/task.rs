//! Task identifiers and what `receive`, `dead_letters` and `len` return.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::QueueError;

/// Identifies one enqueued task within its queue.
///
/// Opaque: on Redis it is the stream entry id (`<ms>-<seq>`), in process a
/// counter in the same format. Ids of one queue order like their
/// `enqueue` calls completed; ids of different queues are unrelated.
/// [`Display`](fmt::Display) and [`FromStr`] round-trip, so an id can be
/// stored and acked later by another process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    ms: u64,
    seq: u64,
}

impl TaskId {
    pub(crate) const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    pub(crate) const fn parts(self) -> (u64, u64) {
        (self.ms, self.seq)
    }

    pub(crate) fn from_bytes(raw: &[u8]) -> Option<Self> {
        std::str::from_utf8(raw).ok()?.parse().ok()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for TaskId {
    type Err = QueueError;

    /// Parses `<u64>-<u64>` in canonical decimal (no sign, no leading zeros).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || QueueError::invalid("task id", "expected <ms>-<seq>");
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        let part = |p: &str| {
            let canonical = !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'));
            if canonical {
                p.parse::<u64>().ok()
            } else {
                None
            }
        };
        Ok(Self {
            ms: part(ms).ok_or_else(bad)?,
            seq: part(seq).ok_or_else(bad)?,
        })
    }
}

/// A task handed to a consumer by [`WorkQueue::receive`](crate::WorkQueue::receive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The task; pass it to `ack` when done, to `extend` while working.
    pub id: TaskId,
    /// The bytes given to `enqueue`, unchanged.
    pub payload: Bytes,
    /// How many times the task has been delivered, this time included:
    /// 1 on first delivery, more after a consumer failed to ack in time.
    pub deliveries: u32,
}

/// A task that was delivered [`QueueConfig::max_deliveries`](crate::QueueConfig::max_deliveries)
/// times without an ack, and will not be delivered again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The task's id in its queue.
    pub id: TaskId,
    /// The bytes given to `enqueue`, unchanged.
    pub payload: Bytes,
    /// How many times it was delivered.
    pub deliveries: u32,
}

/// How many tasks a queue holds, for progress displays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Enqueued, never delivered.
    pub ready: u64,
    /// Delivered, not yet acked (in progress, or held by a consumer that
    /// died and waiting for its visibility timeout).
    pub pending: u64,
    /// Dead letters.
    pub dead: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id: TaskId = "1718000000000-7".parse().unwrap();
        assert_eq!(id, TaskId::new(1_718_000_000_000, 7));
        assert_eq!(id.to_string(), "1718000000000-7");
        assert_eq!(TaskId::from_bytes(b"0-0"), Some(TaskId::new(0, 0)));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "1",
            "-1",
            "1-",
            "1-2-3",
            "01-2",
            "+1-2",
            "a-b",
            " 1-2",
            "1-2 ",
            "*",
            "18446744073709551616-0",
        ] {
            assert!(bad.parse::<TaskId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_order_like_redis() {
        let a: TaskId = "5-10".parse().unwrap();
        let b: TaskId = "10-1".parse().unwrap();
        assert!(a < b);
    }
}
