//! HMAC-signed task envelopes: how a task travels from the coordinator to a
//! worker (and a result back) through a queue nobody trusts.
//!
//! The coordinator [`Sealer::seal`]s a task body into an envelope and
//! enqueues the bytes; a worker [`Opener::open`]s them, which verifies the
//! MAC over the exact raw bytes before anything is decoded, then checks the
//! header, the times and that the nonce was never used.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use weir_auth::FixedClock;
//! use weir_auth::envelope::{
//!     EnvelopeKeys, EnvelopeType, HmacKeySet, InMemoryNonces, Opener, Sealer,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let state = tempfile::tempdir()?;
//! let now = 1_700_000_000;
//! let clock = Arc::new(FixedClock::new(now));
//!
//! // Coordinator: creates the key set on first use.
//! let keys = Arc::new(EnvelopeKeys::from_set(HmacKeySet::open(state.path(), now)?));
//! let sealer = Sealer::new(keys, clock.clone());
//! let raw = sealer.seal(EnvelopeType::Task, br#"{"stage":"prepare"}"#, Duration::from_secs(600))?;
//!
//! // Worker: loads the existing keys, never creates them.
//! let keys = Arc::new(EnvelopeKeys::load(state.path(), now)?);
//! let nonces = Arc::new(InMemoryNonces::new(10_000, clock.clone()));
//! let opener = Opener::new(keys, clock, nonces);
//! let opened = opener.open(&raw, EnvelopeType::Task).await?;
//! assert_eq!(opened.body, br#"{"stage":"prepare"}"#);
//!
//! // The same bytes again are a replay; a result is never opened as a task.
//! let again = opener.open(&raw, EnvelopeType::Task).await.unwrap_err();
//! assert_eq!(again.reason(), "replayed");
//! let wrong = opener.open_redelivered(&raw, EnvelopeType::Result).await.unwrap_err();
//! assert_eq!(wrong.reason(), "wrong_type");
//! # Ok(()) }
//! ```
//!
//! # Wire format
//!
//! An envelope is ASCII text of five dot-separated parts:
//!
//! ```text
//! weir1.<kid>.<header>.<body>.<mac>
//! ```
//!
//! - `weir1`: the format tag; anything else is refused.
//! - `<kid>`: the signing key's id in plain text, `[A-Za-z0-9_-]{1,64}`
//!   (a [`Kid`](crate::Kid)); it is validated by length and alphabet only,
//!   so the key can be found without parsing anything.
//! - `<header>`: unpadded base64url (RFC 4648 section 5) of the header JSON,
//!   `{"v":1,"kid":"..","typ":"task"|"result","iat":..,"exp":..,"nonce":".."}`
//!   (see [`EnvelopeHeader`]).
//! - `<body>`: unpadded base64url of the body bytes (may be empty).
//! - `<mac>`: unpadded base64url (43 characters) of
//!   HMAC-SHA256(secret of `<kid>`, the ASCII bytes
//!   `weir1.<kid>.<header>.<body>`), i.e. everything before the last dot.
//!
//! The MAC covers the encoded text exactly as received: a header that
//! decodes to the same JSON but is spelled differently (other whitespace,
//! key order, base64 padding or trailing bits) does not verify. The decoder
//! accepts only canonical base64url.
//!
//! # Checks, in order
//!
//! [`Opener::open`] stops at the first failure:
//!
//! 1. length at most the limit (default [`DEFAULT_MAX_ENVELOPE_BYTES`], 8
//!    MiB), on the raw length alone: [`EnvelopeError::Oversized`];
//! 2. framing: the `weir1.` tag, exactly five parts, key id syntax, a
//!    43-character MAC: [`EnvelopeError::Malformed`];
//! 3. a key with that id is current (else one rate-limited reload, then
//!    [`EnvelopeError::UnknownKid`]); a verify-only key past its
//!    `retire_after` counts as unknown;
//! 4. the MAC, compared in constant time: [`EnvelopeError::BadMac`].
//!    **Nothing else has been decoded or parsed up to here.**
//! 5. the header JSON, strictly: no unknown or repeated fields, `v == 1`,
//!    `kid` equal to the outer key id, a well-formed nonce:
//!    [`EnvelopeError::Malformed`];
//! 6. `typ` is the type the caller expects: [`EnvelopeError::WrongType`];
//! 7. times, with the opener's leeway `L` (at most 30 s): `exp > iat`
//!    ([`EnvelopeError::InconsistentTimes`]), `exp - iat` at most the
//!    maximum lifetime ([`EnvelopeError::LifetimeTooLong`]), `iat <= now + L`
//!    ([`EnvelopeError::NotYetValid`]), `now < exp + L`
//!    ([`EnvelopeError::Expired`]);
//! 8. the body's base64url: [`EnvelopeError::Malformed`];
//! 9. ([`Opener::open`] only) the nonce's first use in the
//!    [`NonceStore`], remembered until `exp + L`:
//!    [`EnvelopeError::Replayed`], or [`EnvelopeError::Nonces`] if the
//!    store cannot answer.
//!
//! # Keys, rotation and grace
//!
//! [`HmacKeySet`] keeps the secrets in `<state_dir>/keys/hmac/hmac-keys.json`
//! (0600 in a 0700 directory): one active 32-byte secret that signs, plus
//! verify-only previous secrets, each with a `retire_after` time.
//! [`HmacKeySet::rotate`]`(now, grace)` makes a new active key, keeps the old
//! one verify-only until `now + grace`, and forgets keys past their
//! `retire_after`. A grace of at least the longest envelope lifetime plus the
//! leeway ([`DEFAULT_ENVELOPE_GRACE`]) lets every envelope already in a queue
//! still open. The coordinator calls [`HmacKeySet::open`] (creates the set on
//! first use); workers call [`EnvelopeKeys::load`] (never creates, and says
//! which command does).
//!
//! # Reload
//!
//! A process holds its keys in an [`EnvelopeKeys`]: one immutable snapshot
//! behind an atomic pointer, so a reader never sees half a rotation.
//! [`EnvelopeKeys::reload`] re-reads the file, single-flight: concurrent
//! callers share one read. An opener that meets a well-formed but unknown
//! key id reloads once (at most once per second, so made-up key ids cannot
//! turn into a flood of file reads) and looks again: workers pick up a
//! rotated key without restarting.
//!
//! # Replays and redelivery
//!
//! A nonce is claimed when a delivery is first opened for execution, with
//! [`Opener::open`]; a second open of the same bytes is
//! [`EnvelopeError::Replayed`]. A queue with at-least-once delivery will
//! sometimes hand the same envelope out again (a worker crashed holding its
//! lease). Such a delivery, which the **queue** marks as redelivered, is
//! opened with [`Opener::open_redelivered`], which runs every check except
//! the nonce claim, and its body is **never executed**: the worker only
//! answers with a "lost" notice, and the dispatcher decides whether to sign
//! and send a fresh attempt (new envelope, new nonce). So a given envelope
//! body is executed at most once, and a replay injected into the queue is
//! refused or, if marked redelivered, merely reported.
//!
//! # Limits and non-goals
//!
//! - Integrity and authenticity only: bodies are not encrypted. Anyone who
//!   can read the queue can read the body (and a stage token in it; those
//!   are short-lived and scoped).
//! - HMAC is symmetric: every process that can open envelopes can also
//!   forge them. Workers are trusted not to forge tasks for each other.
//! - [`InMemoryNonces`] protects one process until it restarts; several
//!   workers need a shared store (Redis), implemented elsewhere against
//!   [`NonceStore`].
//! - No locking between two processes rotating the same key file.

mod error;
mod header;
mod keys;
mod live_keys;
mod nonce;
mod open;
mod seal;
mod wire;

use std::time::Duration;

use crate::token::{DEFAULT_MAX_LIFETIME, MAX_LEEWAY};

pub use error::{EnvelopeError, NonceStoreError};
pub use header::{ENVELOPE_VERSION, EnvelopeHeader, EnvelopeType};
pub use keys::{HMAC_KEYS_FILE, HmacKeySet};
pub use live_keys::{DEFAULT_MISS_RELOAD_INTERVAL, EnvelopeKeys};
pub use nonce::{DEFAULT_NONCE_CAPACITY, InMemoryNonces, NonceStore};
pub use open::{Opened, Opener};
pub use seal::Sealer;

/// Default size limit of an envelope: 8 MiB.
pub const DEFAULT_MAX_ENVELOPE_BYTES: usize = 8 * 1024 * 1024;
/// Default longest envelope lifetime (`exp - iat`): 24 h, the longest
/// stage-token lifetime.
pub const DEFAULT_MAX_ENVELOPE_LIFETIME: Duration = DEFAULT_MAX_LIFETIME;
/// Default grace of a rotated-out envelope key: the longest envelope
/// lifetime plus the largest leeway.
pub const DEFAULT_ENVELOPE_GRACE: Duration =
    DEFAULT_MAX_ENVELOPE_LIFETIME.saturating_add(MAX_LEEWAY);
