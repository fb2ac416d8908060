//! Opening: signed envelope bytes -> verified header + body.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::envelope::error::EnvelopeError;
use crate::envelope::header::{EnvelopeHeader, EnvelopeType};
use crate::envelope::live_keys::EnvelopeKeys;
use crate::envelope::nonce::NonceStore;
use crate::envelope::wire::{self, Frame};
use crate::envelope::{DEFAULT_MAX_ENVELOPE_BYTES, DEFAULT_MAX_ENVELOPE_LIFETIME};
use crate::error::Error;
use crate::times::{TimePolicy, Validity};
use crate::token::MAX_LEEWAY;
use crate::verifier::DEFAULT_LEEWAY;

/// A verified envelope.
///
/// `Debug` shows the header and the body's length only: a task body carries
/// a stage token.
pub struct Opened {
    /// The verified header.
    pub header: EnvelopeHeader,
    /// The body bytes, exactly as sealed. Not deserialized by this crate.
    pub body: Vec<u8>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("header", &self.header)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Verifies envelopes; see the [module docs](crate::envelope) for the
/// checks and their order.
///
/// # Guarantees
///
/// - The size limit (default [`DEFAULT_MAX_ENVELOPE_BYTES`]) is checked on
///   the raw length before any byte is read.
/// - Nothing but the framing, the key id's syntax and the MAC's encoding is
///   looked at before the MAC verifies; the MAC is compared in constant
///   time. The header JSON is parsed only after that, strictly.
/// - Time checks use at most [`MAX_LEEWAY`] (default [`DEFAULT_LEEWAY`])
///   and a maximum lifetime (default [`DEFAULT_MAX_ENVELOPE_LIFETIME`]).
/// - [`open`](Self::open) claims the nonce last, so a refused envelope
///   never uses up its nonce.
/// - `Debug` shows key ids and limits, never a secret.
pub struct Opener {
    keys: Arc<EnvelopeKeys>,
    clock: Arc<dyn Clock>,
    nonces: Arc<dyn NonceStore>,
    max_size: usize,
    leeway: i64,
    max_lifetime: i64,
}

impl Opener {
    /// An opener trusting `keys`, judging time by `clock` and claiming
    /// nonces in `nonces`.
    #[must_use]
    pub fn new(
        keys: Arc<EnvelopeKeys>,
        clock: Arc<dyn Clock>,
        nonces: Arc<dyn NonceStore>,
    ) -> Self {
        Self {
            keys,
            clock,
            nonces,
            max_size: DEFAULT_MAX_ENVELOPE_BYTES,
            leeway: secs(DEFAULT_LEEWAY),
            max_lifetime: secs(DEFAULT_MAX_ENVELOPE_LIFETIME),
        }
    }

    /// Refuses envelopes longer than `max` bytes (default
    /// [`DEFAULT_MAX_ENVELOPE_BYTES`]).
    #[must_use]
    pub fn with_max_size(mut self, max: usize) -> Self {
        self.max_size = max;
        self
    }

    /// Allows `leeway` of clock skew on `iat` and `exp` (whole seconds;
    /// default [`DEFAULT_LEEWAY`]). Values above [`MAX_LEEWAY`] (30 s) are
    /// lowered to it.
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = secs(leeway.min(MAX_LEEWAY));
        self
    }

    /// Refuses envelopes whose `exp - iat` exceeds `max` (default
    /// [`DEFAULT_MAX_ENVELOPE_LIFETIME`]).
    #[must_use]
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = secs(max);
        self
    }

    /// Verifies `raw` as an envelope of type `expected` and claims its
    /// nonce: every check in the [module docs](crate::envelope#checks-in-order).
    /// Use this for a first delivery, whose body will be executed.
    ///
    /// # Errors
    ///
    /// The first check that fails, as an [`EnvelopeError`]; a nonce seen
    /// before is [`EnvelopeError::Replayed`], a nonce store failure
    /// [`EnvelopeError::Nonces`] (fail closed).
    pub async fn open(&self, raw: &[u8], expected: EnvelopeType) -> Result<Opened, EnvelopeError> {
        let opened = self.verify(raw, expected, self.clock.now())?;
        let remember_until = opened.header.exp.saturating_add(self.leeway);
        if self
            .nonces
            .first_use(&opened.header.nonce, remember_until)
            .await?
        {
            Ok(opened)
        } else {
            Err(EnvelopeError::Replayed)
        }
    }

    /// Verifies `raw` like [`open`](Self::open) but does **not** claim the
    /// nonce.
    ///
    /// Only for a delivery the queue itself reports as a redelivery (its
    /// first delivery was leased and never acknowledged, e.g. the worker
    /// crashed). The body of such a delivery must **not** be executed: the
    /// worker only answers with a "lost" notice naming the task, and the
    /// dispatcher decides whether to sign and send a fresh attempt (new
    /// envelope, new nonce). Verifying it still proves the notice refers to
    /// a task weir really sent, unexpired and of the right type.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that it is never
    /// [`EnvelopeError::Replayed`] or [`EnvelopeError::Nonces`].
    pub async fn open_redelivered(
        &self,
        raw: &[u8],
        expected: EnvelopeType,
    ) -> Result<Opened, EnvelopeError> {
        self.verify(raw, expected, self.clock.now())
    }

    /// Every check but the nonce claim, in the documented order.
    fn verify(
        &self,
        raw: &[u8],
        expected: EnvelopeType,
        now: i64,
    ) -> Result<Opened, EnvelopeError> {
        if raw.len() > self.max_size {
            return Err(EnvelopeError::Oversized {
                len: raw.len(),
                max: self.max_size,
            });
        }
        let frame = Frame::split(raw)?;
        self.check_mac(&frame, now)?;
        // Authentic from here on.
        let header_json = wire::decode_part(frame.header_b64, "header is not base64url")?;
        let header = EnvelopeHeader::parse(&header_json, &frame.kid)?;
        if header.typ != expected {
            return Err(EnvelopeError::WrongType {
                expected,
                found: header.typ,
            });
        }
        self.check_times(&header, now)?;
        let body = wire::decode_part(frame.body_b64, "body is not base64url")?;
        Ok(Opened { header, body })
    }

    /// Looks the key up (reloading once on a miss) and checks the MAC.
    fn check_mac(&self, frame: &Frame<'_>, now: i64) -> Result<(), EnvelopeError> {
        let keys = self.keys.snapshot();
        if let Some(secret) = keys.verifying_key(&frame.kid, now) {
            return frame.verify(secret);
        }
        drop(keys);
        self.keys.reload_after_miss()?;
        let keys = self.keys.snapshot();
        let secret = keys
            .verifying_key(&frame.kid, now)
            .ok_or(EnvelopeError::UnknownKid)?;
        frame.verify(secret)
    }

    fn check_times(&self, header: &EnvelopeHeader, now: i64) -> Result<(), EnvelopeError> {
        let validity = Validity {
            iat: Some(header.iat),
            nbf: None,
            exp: header.exp,
        };
        let policy = TimePolicy {
            leeway: self.leeway,
            max_lifetime: self.max_lifetime,
        };
        validity.check(policy, now).map_err(|e| match e {
            Error::InconsistentTimes => EnvelopeError::InconsistentTimes,
            Error::LifetimeTooLong { lifetime, max } => {
                EnvelopeError::LifetimeTooLong { lifetime, max }
            }
            Error::IssuedInFuture | Error::NotYetValid => EnvelopeError::NotYetValid,
            Error::Expired => EnvelopeError::Expired,
            other => EnvelopeError::Keys(other),
        })
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("keys", &self.keys)
            .field("clock", &self.clock)
            .field("max_size", &self.max_size)
            .field("leeway", &self.leeway)
            .field("max_lifetime", &self.max_lifetime)
            .finish_non_exhaustive()
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
