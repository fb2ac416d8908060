//! Sealing: header + body -> signed envelope bytes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clock::Clock;
use crate::envelope::error::EnvelopeError;
use crate::envelope::header::{ENVELOPE_VERSION, EnvelopeHeader, EnvelopeType, NONCE_BYTES};
use crate::envelope::live_keys::EnvelopeKeys;
use crate::envelope::wire;
use crate::envelope::{DEFAULT_MAX_ENVELOPE_BYTES, DEFAULT_MAX_ENVELOPE_LIFETIME};
use crate::error::Error;

/// Signs envelopes with the active key of an [`EnvelopeKeys`].
///
/// # Guarantees
///
/// - Every envelope gets `iat = now`, `exp = now + ttl` (ttl at least 1 s
///   and at most the maximum lifetime), a fresh 16-byte nonce from the
///   operating system, and the active key's id; the MAC covers the header
///   and body exactly as framed (see the
///   [module docs](crate::envelope#wire-format)).
/// - An envelope longer than the size limit (default
///   [`DEFAULT_MAX_ENVELOPE_BYTES`]) is refused before it is built, so the
///   producer learns of it rather than the worker.
/// - `Debug` shows key ids and limits, never a secret.
pub struct Sealer {
    keys: Arc<EnvelopeKeys>,
    clock: Arc<dyn Clock>,
    max_size: usize,
    max_lifetime: Duration,
}

impl Sealer {
    /// A sealer using `keys`' active key and `clock` for `iat`.
    #[must_use]
    pub fn new(keys: Arc<EnvelopeKeys>, clock: Arc<dyn Clock>) -> Self {
        Self {
            keys,
            clock,
            max_size: DEFAULT_MAX_ENVELOPE_BYTES,
            max_lifetime: DEFAULT_MAX_ENVELOPE_LIFETIME,
        }
    }

    /// Refuses to build envelopes longer than `max` bytes (default
    /// [`DEFAULT_MAX_ENVELOPE_BYTES`]); keep it at most the openers' limit.
    #[must_use]
    pub fn with_max_size(mut self, max: usize) -> Self {
        self.max_size = max;
        self
    }

    /// Refuses TTLs longer than `max` (default
    /// [`DEFAULT_MAX_ENVELOPE_LIFETIME`]); keep it at most the openers'
    /// limit.
    #[must_use]
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// Seals `body` as an envelope of type `typ` that expires `ttl` from
    /// now (whole seconds; a fraction is dropped).
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::InvalidRequest`] if `ttl` is under 1 s or over the
    /// maximum lifetime; [`EnvelopeError::Oversized`] if the envelope would
    /// exceed the size limit; [`EnvelopeError::Keys`] if the random number
    /// generator fails.
    pub fn seal(
        &self,
        typ: EnvelopeType,
        body: &[u8],
        ttl: Duration,
    ) -> Result<Vec<u8>, EnvelopeError> {
        if ttl < Duration::from_secs(1) || ttl > self.max_lifetime {
            return Err(EnvelopeError::InvalidRequest(
                "ttl must be at least 1 s and at most the maximum envelope lifetime",
            ));
        }
        let ttl = i64::try_from(ttl.as_secs()).map_err(|_| {
            EnvelopeError::InvalidRequest("ttl must be at most the maximum envelope lifetime")
        })?;
        let keys = self.keys.snapshot();
        let (kid, secret) = keys.signing_key();
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|_| Error::Random)?;
        let iat = self.clock.now();
        let header = EnvelopeHeader {
            v: ENVELOPE_VERSION,
            kid: kid.as_str().to_owned(),
            typ,
            iat,
            exp: iat.saturating_add(ttl),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
        };
        let header_json = serde_json::to_vec(&header).map_err(|_| Error::Internal {
            reason: "envelope header serialization failed",
        })?;
        let len = wire::framed_len(kid, header_json.len(), body.len()).unwrap_or(usize::MAX);
        if len > self.max_size {
            return Err(EnvelopeError::Oversized {
                len,
                max: self.max_size,
            });
        }
        wire::frame(kid, secret, &header_json, body, len)
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.keys)
            .field("clock", &self.clock)
            .field("max_size", &self.max_size)
            .field("max_lifetime", &self.max_lifetime)
            .finish()
    }
}
