//! The storage contract every platform store implements.

use crate::{Result, StoredToken};

/// The service name every entry is stored under; the account is the server's
/// [`ServerOrigin`](crate::ServerOrigin).
pub const SERVICE: &str = "weir";

/// Where `weir login` keeps one API token per server.
///
/// # Contract
///
/// - Entries are keyed by service [`SERVICE`] and the server URL reduced to
///   its [`ServerOrigin`](crate::ServerOrigin), so every spelling of one
///   server (`https://h`, `https://h:443/`, `HTTPS://H`) reaches one entry,
///   and two servers never share one.
/// - [`put`](Self::put) creates or overwrites the entry; a following
///   [`get`](Self::get), from this process or (for a platform store) the
///   next `weir` command, returns that token.
/// - [`get`](Self::get) returns `Ok(None)` when there is no entry, including
///   after [`delete`](Self::delete).
/// - [`delete`](Self::delete) returns whether there was an entry to remove;
///   deleting twice is not an error.
/// - Implementations are usable from any thread.
///
/// # Errors
///
/// Every method returns [`Error::InvalidServerUrl`](crate::Error::InvalidServerUrl)
/// for a URL that [`ServerOrigin::parse`](crate::ServerOrigin::parse)
/// refuses, before touching the store. [`put`](Self::put) returns
/// [`Error::InvalidToken`](crate::Error::InvalidToken) for an empty token,
/// one over [`MAX_TOKEN_BYTES`](crate::MAX_TOKEN_BYTES), or one with
/// whitespace or control characters. Platform stores return
/// [`Error::AccessDenied`](crate::Error::AccessDenied),
/// [`Error::NotPersistent`](crate::Error::NotPersistent),
/// [`Error::CorruptEntry`](crate::Error::CorruptEntry) or
/// [`Error::Platform`](crate::Error::Platform) when the keyring fails.
///
/// # Security
///
/// No error, log line or `Debug` output of an implementation contains the
/// token. [`describe`](Self::describe) says where tokens live, never what
/// they are.
pub trait TokenStore: Send + Sync {
    /// Stores `token` for `server`, replacing any token stored for it.
    ///
    /// # Errors
    ///
    /// See the trait documentation.
    fn put(&self, server: &str, token: &StoredToken) -> Result<()>;

    /// The token stored for `server`, or `None`.
    ///
    /// # Errors
    ///
    /// See the trait documentation.
    fn get(&self, server: &str) -> Result<Option<StoredToken>>;

    /// Removes the token stored for `server`; `true` if there was one.
    ///
    /// # Errors
    ///
    /// See the trait documentation.
    fn delete(&self, server: &str) -> Result<bool>;

    /// Where tokens live, in words for `weir login` output and the README
    /// (for example "the Linux kernel keyring (keyutils): ...").
    fn describe(&self) -> String;
}
