//! The Linux kernel keyring (keyutils) as a [`TokenStore`].
//!
//! See [`platform_store`](crate::platform_store) for which keyrings hold a
//! token and how long. Why each operation joins a session keyring first:
//! `linux-keyutils-keyring-store` 1.0 resolves the session keyring without
//! creating one, which in a process that has none installs the per-user
//! default `_uid_ses.<uid>`; it then fetches the persistent keyring "linked
//! to the session", and the kernel meets that request by giving the thread a
//! new anonymous session keyring. The key is added to `_uid_ses.<uid>`, which
//! the thread no longer possesses, so linking it into the persistent keyring
//! fails with `EACCES` and nothing outlives the process. Joining first (the
//! safe equivalent of `KEYCTL_JOIN_SESSION_KEYRING` with no name, done by
//! asking for the session keyring with "create") makes both steps act on
//! one keyring. Keyrings belong to a thread's credentials, so this is done on
//! the calling thread at every operation, not once at start-up.

use std::sync::Arc;

use keyring_core::Entry;
use keyring_core::api::CredentialStoreApi;
use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};
use linux_keyutils_keyring_store::Store;
use zeroize::Zeroize;

use crate::error::PlatformError;
use crate::{Error, Result, SERVICE, ServerOrigin, StoredToken, TokenStore};

/// How errors and `describe` name this store.
const STORE: &str = "Linux kernel keyring (keyutils)";

/// Where the kernel says how long an unused persistent keyring lives.
const EXPIRY_FILE: &str = "/proc/sys/kernel/keys/persistent_keyring_expiry";

/// The kernel keyring store; see the module documentation.
#[derive(Debug)]
pub(crate) struct KeyutilsStore {
    store: Arc<Store>,
}

impl KeyutilsStore {
    /// The store, configured as `keyring-core`'s default for keyutils (so a
    /// token stored by `weir` shows in `keyctl show` as
    /// `keyring:<origin>@weir`). Touches no keyring yet.
    pub(crate) fn new() -> Result<Self> {
        let store = Store::new().map_err(|e| Error::Platform {
            store: STORE,
            action: "open".to_owned(),
            source: core_error_source(e),
        })?;
        Ok(Self { store })
    }

    /// The entry for `origin`, after giving the calling thread a session
    /// keyring of its own.
    fn entry(&self, origin: &ServerOrigin, action: &str) -> Result<Entry> {
        KeyRing::from_special_id(KeyRingIdentifier::Session, true)
            .map_err(|e| key_error(e, action, origin))?;
        self.store
            .build(SERVICE, origin.as_str(), None)
            .map_err(|e| core_error(e, action, origin))
    }
}

impl TokenStore for KeyutilsStore {
    fn put(&self, server: &str, token: &StoredToken) -> Result<()> {
        let origin = ServerOrigin::parse(server)?;
        token.check_storable()?;
        let entry = self.entry(&origin, "store")?;
        // Without a persistent keyring the key would live only in this
        // process's session keyring; `weir login` must not claim success.
        match KeyRing::get_persistent(KeyRingIdentifier::Session) {
            Ok(_) => {}
            Err(KeyError::OperationNotSupported) => {
                return Err(Error::NotPersistent {
                    store: STORE,
                    reason: "this kernel has no persistent keyrings (CONFIG_PERSISTENT_KEYRINGS)",
                });
            }
            Err(e) => return Err(key_error(e, "store", &origin)),
        }
        // Invalidate the old key first rather than letting `set_secret` add a
        // second one: the store adds a key to the *calling* session keyring,
        // so another login session that still links the old key would keep
        // reading the old token. Invalidating a key removes it from every
        // keyring at once.
        invalidate_all(&entry, &origin)?;
        entry
            .set_secret(token.expose().as_bytes())
            .map_err(|e| core_error(e, "store", &origin))
    }

    fn get(&self, server: &str) -> Result<Option<StoredToken>> {
        let origin = ServerOrigin::parse(server)?;
        let entry = self.entry(&origin, "read")?;
        match entry.get_secret() {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Ok(Some(StoredToken::new(text))),
                Err(e) => {
                    e.into_bytes().zeroize();
                    Err(Error::CorruptEntry {
                        origin: origin.as_str().to_owned(),
                    })
                }
            },
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(core_error(e, "read", &origin)),
        }
    }

    fn delete(&self, server: &str) -> Result<bool> {
        let origin = ServerOrigin::parse(server)?;
        let entry = self.entry(&origin, "delete")?;
        Ok(invalidate_all(&entry, &origin)? > 0)
    }

    fn describe(&self) -> String {
        let expiry = std::fs::read_to_string(EXPIRY_FILE)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or_else(|| "3 days by default".to_owned(), humanize_seconds);
        format!(
            "the {STORE}: a key \"keyring:<server>@{SERVICE}\" in your user's persistent \
             keyring, held in kernel memory (not on disk) and dropped at reboot or after \
             {expiry} without a weir command"
        )
    }
}

/// At most this many keys for one entry are invalidated by one call (one in
/// the session keyring and another in the persistent keyring is the most
/// seen; the bound only guards against a kernel that keeps finding one).
const MAX_COPIES: usize = 8;

/// Invalidates every key for `entry` the calling thread can find (its
/// session keyring first, then the keyrings linked into it, among them the
/// persistent keyring); returns how many.
fn invalidate_all(entry: &Entry, origin: &ServerOrigin) -> Result<usize> {
    let mut removed = 0;
    while removed < MAX_COPIES {
        match entry.delete_credential() {
            Ok(()) => removed += 1,
            Err(keyring_core::Error::NoEntry) => break,
            Err(e) => return Err(core_error(e, "delete", origin)),
        }
    }
    Ok(removed)
}

/// `259200` -> `"3 days"`.
fn humanize_seconds(seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn action_on(action: &str, origin: &ServerOrigin) -> String {
    format!("{action} the token for {origin}")
}

/// A `linux-keyutils` error from our own calls.
fn key_error(e: KeyError, action: &str, origin: &ServerOrigin) -> Error {
    match e {
        KeyError::AccessDenied => Error::AccessDenied {
            store: STORE,
            source: Box::new(e),
        },
        _ => Error::Platform {
            store: STORE,
            action: action_on(action, origin),
            source: Box::new(e),
        },
    }
}

/// A `keyring-core` error from the store.
fn core_error(e: keyring_core::Error, action: &str, origin: &ServerOrigin) -> Error {
    match e {
        keyring_core::Error::NoStorageAccess(source) => Error::AccessDenied {
            store: STORE,
            source,
        },
        other => Error::Platform {
            store: STORE,
            action: action_on(action, origin),
            source: core_error_source(other),
        },
    }
}

/// The cause to keep from a `keyring-core` error, dropping (and zeroizing)
/// any secret bytes it carries.
fn core_error_source(e: keyring_core::Error) -> PlatformError {
    match e {
        keyring_core::Error::PlatformFailure(source)
        | keyring_core::Error::NoStorageAccess(source) => source,
        keyring_core::Error::BadEncoding(mut bytes)
        | keyring_core::Error::BadDataFormat(mut bytes, _) => {
            bytes.zeroize();
            "the entry's data is malformed".into()
        }
        // Display never prints secret data for the remaining variants.
        other => other.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_picks_the_largest_whole_unit() {
        assert_eq!(humanize_seconds(259_200), "3 days");
        assert_eq!(humanize_seconds(86_400), "1 day");
        assert_eq!(humanize_seconds(7_200), "2 hours");
        assert_eq!(humanize_seconds(90), "90 seconds");
        assert_eq!(humanize_seconds(120), "2 minutes");
        assert_eq!(humanize_seconds(1), "1 second");
    }

    #[test]
    fn bad_encoding_errors_keep_no_secret_bytes() {
        let e = core_error(
            keyring_core::Error::BadEncoding(b"sekrit-token".to_vec()),
            "read",
            &ServerOrigin::parse("https://a.example").unwrap(),
        );
        let out = format!("{e:?} {e}");
        assert!(!out.contains("sekrit"), "{out}");
        assert!(!out.contains("115, 101, 107"), "{out}");
    }

    #[test]
    fn describe_says_where_not_what() {
        let text = KeyutilsStore::new().unwrap().describe();
        assert!(text.contains("persistent keyring"), "{text}");
        assert!(text.contains("reboot"), "{text}");
    }
}
