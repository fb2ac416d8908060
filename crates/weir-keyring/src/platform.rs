//! The one place that picks the OS keyring for this platform.
//!
//! To add a platform (macOS Keychain, Windows Credential Manager), write a
//! module like `keyutils.rs` wrapping that platform's `keyring-core` store,
//! and add one `cfg` arm here.

use crate::{Result, TokenStore};

/// The OS keyring store for this platform, used by `weir login`, `weir
/// logout` and every command that talks to a server.
///
/// # Linux
///
/// The kernel key-retention service (keyutils), via `keyring-core` and
/// `linux-keyutils-keyring-store`. A token is a `user` key described
/// `keyring:<origin>@weir` (for example `keyring:https://weir.example.com:443@weir`),
/// readable only by processes of the same uid that possess it. It is linked
/// into two keyrings:
///
/// - the user's **persistent keyring** (`_persistent.<uid>`), which is what
///   lets the next `weir` command, started from the same or another shell of
///   the same user, find it. The kernel drops that keyring, and the token
///   with it, after `/proc/sys/kernel/keys/persistent_keyring_expiry`
///   seconds (3 days by default) without any `weir` command touching it, and
///   at reboot.
/// - the calling thread's **session keyring**. When the process has none, or
///   only the per-user default (`_uid_ses.<uid>`, the case in a plain shell
///   with no PAM login session), each operation first joins a new anonymous
///   session keyring, as `keyctl session` would: without that, the store
///   adds the key to `_uid_ses.<uid>` and then cannot link it into the
///   persistent keyring (`AccessDenied`).
///
/// A kernel without persistent keyrings (`CONFIG_PERSISTENT_KEYRINGS`) could
/// keep the token only as long as the process, so storing is refused there
/// with [`Error::NotPersistent`](crate::Error::NotPersistent).
///
/// # Other platforms
///
/// Not yet supported.
///
/// # Errors
///
/// [`Error::Unsupported`](crate::Error::Unsupported) on platforms without a
/// store; [`Error::Platform`](crate::Error::Platform) if the store cannot be
/// configured.
pub fn platform_store() -> Result<Box<dyn TokenStore>> {
    store_for_this_platform()
}

#[cfg(target_os = "linux")]
fn store_for_this_platform() -> Result<Box<dyn TokenStore>> {
    Ok(Box::new(crate::keyutils::KeyutilsStore::new()?))
}

#[cfg(not(target_os = "linux"))]
fn store_for_this_platform() -> Result<Box<dyn TokenStore>> {
    Err(crate::Error::Unsupported {
        platform: std::env::consts::OS,
    })
}
