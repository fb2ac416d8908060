//! Signed checkpoints: the writer's signature over a chain's head.
//!
//! A hash chain shows that no record in the middle was changed, but an
//! attacker with write access to the database can cut the tail off or
//! rewrite a suffix and recompute every hash after it. A checkpoint is an
//! Ed25519 signature over `(chain, seq, hash, time)` made with a key the
//! database does not hold; the verifier checks every stored event against
//! every checkpoint, so such edits show up unless they stay entirely after
//! the newest checkpoint.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::chain_id::ChainId;
use crate::digest::{EventHash, checkpoint_message};
use crate::error::{Error, Result};
use crate::signer::CheckpointSigner;

/// A signed statement "chain `chain` had `seq` events, the last with hash
/// `hash`, at `time`".
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The chain.
    pub chain: ChainId,
    /// The seq of the last event covered.
    pub seq: u64,
    /// That event's hash.
    pub hash: EventHash,
    /// When the checkpoint was signed (UTC, microseconds).
    pub time: DateTime<Utc>,
    /// Ed25519 signature over the encoding in [`EventHash`]'s module docs.
    pub signature: [u8; 64],
}

impl Checkpoint {
    pub(crate) fn sign(
        signer: &CheckpointSigner,
        chain: ChainId,
        seq: u64,
        hash: EventHash,
        time: DateTime<Utc>,
    ) -> Self {
        let msg = checkpoint_message(chain.as_str(), seq, &hash, time.timestamp_micros());
        Self {
            signature: signer.sign(&msg).to_bytes(),
            chain,
            seq,
            hash,
            time,
        }
    }

    /// Whether the signature is valid under `key` (strict Ed25519: no
    /// malleable or small-order encodings).
    #[must_use]
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let msg = checkpoint_message(
            self.chain.as_str(),
            self.seq,
            &self.hash,
            self.time.timestamp_micros(),
        );
        key.verify_strict(&msg, &Signature::from_bytes(&self.signature))
            .is_ok()
    }

    /// The one-line JSON form used by mirror files and exports.
    #[must_use]
    pub fn to_json_line(&self) -> String {
        let line = Line {
            chain: self.chain.as_str().to_owned(),
            seq: self.seq,
            hash: self.hash.to_hex(),
            time_us: self.time.timestamp_micros(),
            signature: hex::encode(self.signature),
        };
        // Serializing plain strings and integers cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Parses [`to_json_line`](Self::to_json_line) output. The signature is
    /// not checked here.
    ///
    /// # Errors
    ///
    /// A static description of what is malformed.
    pub(crate) fn from_json_line(line: &str) -> std::result::Result<Self, &'static str> {
        let line: Line = serde_json::from_str(line).map_err(|_| "not a checkpoint JSON object")?;
        Self::from_stored(
            &line.chain,
            line.seq,
            &line.hash,
            line.time_us,
            &line.signature,
        )
    }

    /// Rebuilds a checkpoint from stored columns.
    pub(crate) fn from_stored(
        chain: &str,
        seq: u64,
        hash: &str,
        time_us: i64,
        signature: &str,
    ) -> std::result::Result<Self, &'static str> {
        let chain = ChainId::parse(chain).map_err(|_| "bad chain")?;
        let hash = EventHash::from_hex(hash).map_err(|_| "bad hash")?;
        let time = DateTime::from_timestamp_micros(time_us).ok_or("bad time")?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(signature, &mut sig).map_err(|_| "bad signature encoding")?;
        Ok(Self {
            chain,
            seq,
            hash,
            time,
            signature: sig,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    chain: String,
    seq: u64,
    hash: String,
    time_us: i64,
    signature: String,
}

/// When the writer signs a checkpoint: after at least `every_events` new
/// events, or `every` after the last checkpoint if anything was appended
/// since, or when asked ([`AuditSink::checkpoint_now`](crate::AuditSink::checkpoint_now)),
/// and when the sink is closed.
///
/// A group-commit batch is never split, so a checkpoint can land up to one
/// batch past `every_events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    every_events: u64,
    every: Duration,
}

impl CheckpointPolicy {
    /// Shortest accepted interval.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

    /// A policy signing every `every_events` events or `every`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `every_events` is 0 or `every` is below
    /// [`MIN_INTERVAL`](Self::MIN_INTERVAL).
    pub fn new(every_events: u64, every: Duration) -> Result<Self> {
        if every_events == 0 {
            return Err(Error::InvalidConfig {
                reason: "checkpoint every_events must be at least 1",
            });
        }
        if every < Self::MIN_INTERVAL {
            return Err(Error::InvalidConfig {
                reason: "checkpoint interval must be at least 10 ms",
            });
        }
        Ok(Self {
            every_events,
            every,
        })
    }

    /// Events between checkpoints.
    #[must_use]
    pub fn every_events(&self) -> u64 {
        self.every_events
    }

    /// Time between checkpoints.
    #[must_use]
    pub fn every(&self) -> Duration {
        self.every
    }
}

impl Default for CheckpointPolicy {
    /// Every 1000 events or 5 seconds.
    fn default() -> Self {
        Self {
            every_events: 1000,
            every: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(signer: &CheckpointSigner) -> Checkpoint {
        let time = DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap();
        Checkpoint::sign(
            signer,
            ChainId::parse("cli").unwrap(),
            42,
            EventHash::from_bytes([9; 32]),
            time,
        )
    }

    #[test]
    fn signature_verifies_and_binds_fields() {
        let signer = CheckpointSigner::generate().unwrap();
        let cp = sample(&signer);
        assert!(cp.verify(&signer.verifying_key()));
        let mut moved = cp.clone();
        moved.seq = 41;
        assert!(!moved.verify(&signer.verifying_key()));
        let other = CheckpointSigner::generate().unwrap();
        assert!(!cp.verify(&other.verifying_key()));
    }

    #[test]
    fn json_line_round_trips() {
        let signer = CheckpointSigner::generate().unwrap();
        let cp = sample(&signer);
        let back = Checkpoint::from_json_line(&cp.to_json_line()).unwrap();
        assert_eq!(back, cp);
        assert!(Checkpoint::from_json_line("{}").is_err());
        assert!(
            Checkpoint::from_json_line(&cp.to_json_line().replace("\"seq\"", "\"x\"")).is_err()
        );
    }

    #[test]
    fn policy_refuses_zero() {
        assert!(CheckpointPolicy::new(0, Duration::from_secs(1)).is_err());
        assert!(CheckpointPolicy::new(1, Duration::ZERO).is_err());
        assert_eq!(CheckpointPolicy::default().every_events(), 1000);
    }
}
