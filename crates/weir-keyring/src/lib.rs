//! weir-keyring: where the `weir` CLI keeps the API token it uses to talk to a
//! weir server. The token lives in the operating system's keyring, never in a
//! plaintext file.
//!
//! - [`TokenStore`]: put, get and delete one token per server, keyed by
//!   service [`SERVICE`] and the server's normalised origin
//!   ([`ServerOrigin`]: `scheme://host:port`).
//! - [`platform_store`]: the store for this platform. On Linux that is the
//!   kernel key-retention service (keyutils), through `keyring-core` and
//!   `linux-keyutils-keyring-store`; other platforms return
//!   [`Error::Unsupported`] until a store is added in one small module.
//! - [`MemoryStore`]: an in-memory store for tests of callers.
//! - [`token_from_env`]: the token from `WEIR_TOKEN`, for CI.
//!
//! # Guarantees
//!
//! - A token is only ever held in a [`StoredToken`]: `Debug` and `Display`
//!   print `***`, and the buffer is zeroized on drop.
//! - No error carries a token. Errors name the server only after its URL has
//!   been validated (no user info, query or fragment), and never echo a
//!   rejected URL, since it may carry a password.
//! - On Linux, a token stored by one `weir` process is found by the next one
//!   started from the same shell: it is linked into the user's persistent
//!   keyring (see [`platform_store`] for where exactly, and for its limits).
//!
//! # Non-goals
//!
//! - Durable storage. The Linux kernel keyring is memory: a reboot, or a few
//!   days without any `weir` command, and the user logs in again.
//! - Protection from other processes of the same user. Any process running as
//!   the same uid can read the user's keyrings, as it can a desktop secret
//!   service once unlocked.
//! - Checking that a token is valid. The server decides that; the CLI only
//!   refuses obviously malformed input before storing it.

mod error;
#[cfg(target_os = "linux")]
mod keyutils;
mod memory;
mod origin;
mod platform;
mod store;
mod token;

pub use error::{Error, Result};
pub use memory::MemoryStore;
pub use origin::ServerOrigin;
pub use platform::platform_store;
pub use store::{SERVICE, TokenStore};
pub use token::{MAX_TOKEN_BYTES, StoredToken, WEIR_TOKEN_ENV, token_from_env};
