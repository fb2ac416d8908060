//! `weir-audit`: the tamper-evident audit log.
//!
//! Every guarded data access and every control-plane event (run start,
//! token mint, key rotation, ...) becomes an [`AuditEvent`] appended to an
//! [`AuditSink`]: [`SqliteSink`] embedded, [`PostgresSink`] when many
//! machines write. Each writer appends to its own hash chain; a
//! [`CheckpointSigner`] periodically signs the chain head; [`verify`] proves
//! the log whole or names the first damaged record.
//!
//! ```
//! use std::sync::Arc;
//! use weir_audit::{
//!     Action, AuditKey, AuditSink, ChainId, CheckpointSigner, Decision, Filter, NewEvent,
//!     Origin, Page, SinkConfig, SqliteSink, verify,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> weir_audit::Result<()> {
//! # let state = tempfile::tempdir().map_err(|_| weir_audit::Error::Internal { reason: "tmp" })?;
//! let signer = Arc::new(CheckpointSigner::open_or_create(state.path())?);
//! let audit_key = AuditKey::open_or_create(state.path())?;
//! let config = SinkConfig::new(ChainId::parse("cli")?, signer.clone());
//! let sink = SqliteSink::open_in_state_dir(state.path(), config).await?;
//!
//! let event = NewEvent::new("svc-train", Action::Read, Decision::Allow, Origin::Cli)
//!     .with_stage("01J0RUN", "prepare", 1)
//!     .with_resource("lake", "raw/train/part-0.parquet")
//!     .with_token(audit_key.token_id_hmac("01J0JTI"));
//! let stored = sink.append(event).await?; // durable once this returns
//! assert_eq!(stored.seq, 1);
//!
//! let found = sink.query(&Filter::all().actor("svc-train").path_prefix("raw/train"), Page::first(100)).await?;
//! assert_eq!(found, vec![stored]);
//!
//! sink.checkpoint_now().await?;
//! assert!(verify(&sink, &signer.verifying_key()).await?.is_ok());
//! sink.close().await?;
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! - **Append-only.** No API updates or deletes an event or checkpoint; the
//!   schema adds triggers that refuse `UPDATE`/`DELETE` (and `TRUNCATE` on
//!   PostgreSQL) as a second line.
//! - **Gapless, ordered chains.** Seqs of a chain are 1, 2, 3, ... under any
//!   number of concurrent appenders, and safely with several sinks on one
//!   chain (SQLite `BEGIN IMMEDIATE`; PostgreSQL `SELECT ... FOR UPDATE` on
//!   the chain's head row).
//! - **Durable on return.** [`AuditSink::append`] returns after the commit
//!   holding the event is on stable storage (group commit amortizes the
//!   `fsync`); an error means the event was not written.
//! - **Tamper evidence.** Each event's hash covers every field and its
//!   predecessor's hash ([`EventFormat`]: in format 2, the SQLite default,
//!   the hash is SHA-256 over the stored record itself; in format 1, over a
//!   documented binary encoding of the columns, see [`EventHash`]);
//!   Ed25519 checkpoints signed with a key outside the database make
//!   truncation and suffix rewrites detectable. [`verify`] reports edits,
//!   deletions, reordering, truncation, forged checkpoints and a
//!   redefined table.
//! - **No secrets stored.** Fields that look like JWTs, hold control
//!   characters or exceed size caps are refused; token ids are stored only
//!   as HMAC-SHA256 under an [`AuditKey`]. Keys are 0600 files in a 0700
//!   directory, refused if looser; key types print `***`.
//! - **Parameterized SQL.** Every statement is static text with bound
//!   values (a test scans this crate's sources).
//! - No `unsafe`; untrusted input and corrupted rows never panic.
//!
//! # Non-goals
//!
//! - Protecting events written after the newest checkpoint from an attacker
//!   who can write the database (keep the interval short, mirror
//!   checkpoints elsewhere).
//! - Confidentiality of the log (paths and principals are stored in clear)
//!   or access control on it: that is the database's and the server's job.
//! - Key rotation for checkpoint signing (verify with the key of the era).
//! - Windows: key-file permission checks need Unix permissions.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(not(unix))]
compile_error!("weir-audit needs Unix file permissions to protect key files");

mod row;

mod admission;
mod audit_key;
mod chain_id;
mod checkpoint;
mod digest;
mod error;
mod event;
mod failing;
mod filter;
mod mirror;
mod postgres;
mod private_file;
mod record;
mod sealer;
mod signer;
mod sink;
mod sqlite;
mod verify;
mod writer;

pub use admission::{MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_REASON_BYTES};
pub use audit_key::{AUDIT_KEY_FILE, AuditKey, TokenIdHmac, key_dir};
pub use chain_id::{ChainId, MAX_CHAIN_ID_BYTES};
pub use checkpoint::{Checkpoint, CheckpointPolicy};
pub use digest::EventHash;
pub use ed25519_dalek::VerifyingKey;
pub use error::{Error, Result};
pub use event::{Action, AuditEvent, Decision, EventFormat, NewEvent, Origin};
pub use failing::FailingSink;
pub use filter::{Cursor, Filter, MAX_PAGE_LIMIT, Page};
pub use mirror::read_mirror;
pub use postgres::PostgresSink;
pub use record::Link;
pub use signer::{CHECKPOINT_KEY_FILE, CheckpointSigner};
pub use sink::{
    AuditSink, DEFAULT_MAX_BATCH, DEFAULT_QUEUE_CAPACITY, MAX_GATHER_WINDOW, NETWORK_GATHER_WINDOW,
    SinkConfig,
};
pub use sqlite::{SQLITE_FILE_NAME, SqliteSink};
pub use verify::{
    Damage, DamageKind, Report, verify, verify_chain, verify_events, verify_with_mirror,
};
