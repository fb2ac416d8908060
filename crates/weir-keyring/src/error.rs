//! The crate's error type.
//!
//! # Security
//!
//! No variant carries a token or the bytes read from a keyring entry. A server
//! is named only as a validated [`ServerOrigin`](crate::ServerOrigin); a URL
//! that failed validation is never echoed, because it may hold a password
//! (user info) or a token (query string).

/// A platform error, boxed; it describes the failure, never the secret.
pub(crate) type PlatformError = Box<dyn std::error::Error + Send + Sync>;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while storing or reading a token.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server URL cannot name a weir server.
    #[error(
        "invalid server URL: {reason}; give it as scheme://host[:port], \
         for example https://weir.example.com or http://127.0.0.1:8080"
    )]
    InvalidServerUrl {
        /// Which rule the URL broke.
        reason: &'static str,
    },

    /// The token cannot be stored.
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// Which rule the token broke.
        reason: &'static str,
    },

    /// There is no OS keyring store for this platform yet.
    #[error(
        "weir cannot keep a token in the OS keyring on {platform} yet; \
         set the WEIR_TOKEN environment variable instead"
    )]
    Unsupported {
        /// The platform (`std::env::consts::OS`).
        platform: &'static str,
    },

    /// The keyring refused access.
    #[error(
        "access to the {store} was denied; run weir from a normal login \
         session (or under `keyctl session`), or set WEIR_TOKEN instead"
    )]
    AccessDenied {
        /// Which store.
        store: &'static str,
        /// The platform's error.
        #[source]
        source: PlatformError,
    },

    /// The keyring would drop the token as soon as this process exits.
    #[error(
        "the {store} cannot keep a token between weir commands here \
         ({reason}); set WEIR_TOKEN instead"
    )]
    NotPersistent {
        /// Which store.
        store: &'static str,
        /// Why not.
        reason: &'static str,
    },

    /// The stored entry is not a token weir could have written.
    #[error(
        "the token stored for {origin} is unreadable (not UTF-8 text); \
         run `weir logout --server {origin}` and log in again"
    )]
    CorruptEntry {
        /// The server whose entry is broken.
        origin: String,
    },

    /// Any other failure of the platform store.
    #[error("the {store} failed to {action}")]
    Platform {
        /// Which store.
        store: &'static str,
        /// What it was asked to do, e.g. "read the token for https://h:443".
        action: String,
        /// The platform's error.
        #[source]
        source: PlatformError,
    },
}
