//! An in-memory [`TokenStore`] for tests of callers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{Result, ServerOrigin, StoredToken, TokenStore};

/// A [`TokenStore`] in process memory: same keys and checks as a platform
/// store, forgotten when the process exits. For tests of code that takes a
/// `&dyn TokenStore`; never what `weir login` uses.
///
/// ```
/// use weir_keyring::{MemoryStore, StoredToken, TokenStore};
///
/// let store = MemoryStore::new();
/// store.put("https://weir.example.com/", &StoredToken::new("a.b.c".to_owned()))?;
/// let token = store.get("HTTPS://weir.example.com:443")?.unwrap();
/// assert_eq!(token.expose(), "a.b.c");
/// assert!(store.delete("https://weir.example.com")?);
/// assert!(store.get("https://weir.example.com")?.is_none());
/// # Ok::<(), weir_keyring::Error>(())
/// ```
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<BTreeMap<ServerOrigin, StoredToken>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many servers have a token.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether no server has a token.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<ServerOrigin, StoredToken>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every update is one insert or remove), so poisoning is ignored.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenStore for MemoryStore {
    fn put(&self, server: &str, token: &StoredToken) -> Result<()> {
        let origin = ServerOrigin::parse(server)?;
        token.check_storable()?;
        self.entries().insert(origin, token.clone());
        Ok(())
    }

    fn get(&self, server: &str) -> Result<Option<StoredToken>> {
        let origin = ServerOrigin::parse(server)?;
        Ok(self.entries().get(&origin).cloned())
    }

    fn delete(&self, server: &str) -> Result<bool> {
        let origin = ServerOrigin::parse(server)?;
        Ok(self.entries().remove(&origin).is_some())
    }

    fn describe(&self) -> String {
        "process memory (a test store: forgotten when the process exits)".to_owned()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names the servers, never the tokens.
        f.debug_struct("MemoryStore")
            .field("servers", &self.entries().keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn token(text: &str) -> StoredToken {
        StoredToken::new(text.to_owned())
    }

    #[test]
    fn round_trip_overwrite_and_delete() {
        let store = MemoryStore::new();
        let server = "http://127.0.0.1:8080";
        assert!(store.get(server).unwrap().is_none());
        store.put(server, &token("one.two.three")).unwrap();
        assert_eq!(
            store.get(server).unwrap().unwrap().expose(),
            "one.two.three"
        );
        store.put(server, &token("four.five.six")).unwrap();
        assert_eq!(
            store.get(server).unwrap().unwrap().expose(),
            "four.five.six"
        );
        assert_eq!(store.len(), 1);
        assert!(store.delete(server).unwrap());
        assert!(store.get(server).unwrap().is_none());
        assert!(!store.delete(server).unwrap());
        assert!(store.is_empty());
    }

    #[test]
    fn servers_are_keyed_by_origin() {
        let store = MemoryStore::new();
        store.put("https://a.example", &token("a.a.a")).unwrap();
        store
            .put("https://a.example:8443", &token("b.b.b"))
            .unwrap();
        store.put("http://a.example", &token("c.c.c")).unwrap();
        assert_eq!(store.len(), 3);
        assert_eq!(
            store
                .get("HTTPS://A.example:443/")
                .unwrap()
                .unwrap()
                .expose(),
            "a.a.a"
        );
    }

    #[test]
    fn bad_urls_and_tokens_are_refused_before_storing() {
        let store = MemoryStore::new();
        let err = store
            .put("https://u:p@a.example", &token("a.a.a"))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidServerUrl { .. }));
        let err = store.put("https://a.example", &token("")).unwrap_err();
        assert!(matches!(err, Error::InvalidToken { .. }));
        assert!(store.get("https://a.example?x").is_err());
        assert!(store.delete("ftp://a.example").is_err());
        assert!(store.is_empty());
    }

    #[test]
    fn debug_names_servers_not_tokens() {
        let store = MemoryStore::new();
        store
            .put("https://a.example", &token("sekrit.sekrit.sekrit"))
            .unwrap();
        let out = format!("{store:?}");
        assert!(out.contains("https://a.example:443"), "{out}");
        assert!(!out.contains("sekrit"), "{out}");
    }
}
