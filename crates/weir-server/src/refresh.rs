//! Keeping the API verifier's keys current while the server runs: weir's own
//! HS256 keys re-read from the state folder (after `weir keys rotate --api`),
//! and an identity provider's JWKS re-read from its file or fetched from its
//! URL.
//!
//! # Security
//! - A JWKS URL is `https://`; plain `http://` only to a loopback host. No
//!   user info, no redirects, a 5 s deadline, at most 1 MiB, strict JSON
//!   checked by the same loader as a JWKS file.
//! - At most one reload is in flight: requests that meet an unknown `kid`
//!   while one runs wait for it and use its result. Reloads triggered by
//!   unknown `kid`s happen at most once per interval (30 s by default), so a
//!   flood of tokens with made-up `kid`s costs the identity provider at most
//!   one fetch per interval.
//! - A failed reload keeps the last good keys; the token is then refused
//!   like any token with an unknown `kid` (401).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use reqwest::Url;
use weir_auth::{ApiAuthError, ApiKeySet, ApiVerifier, Identity};

/// Deadline of one JWKS fetch, connection included.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How often [`KeyRefresh::spawn_periodic`] reloads by default.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Least time between two reloads triggered by an unknown `kid`, by default.
pub const DEFAULT_UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(30);

/// Why a JWKS could not be located or loaded. Never holds a URL's path or
/// query, only its host.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The `--jwks` value is not an acceptable location.
    #[error("--jwks {location}: {reason}")]
    Location {
        /// What was given (a URL is cut to scheme and host).
        location: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The JWKS could not be read or fetched.
    #[error("cannot load the JWKS from {from}: {reason}")]
    Load {
        /// The file, or the URL's host.
        from: String,
        /// What went wrong.
        reason: String,
    },
}

/// Where an identity provider's JWKS comes from.
#[derive(Clone, Debug)]
pub enum JwksLocation {
    /// A local file, re-read on reload.
    File(PathBuf),
    /// An `https://` (or loopback `http://`) URL, fetched on reload.
    Url(Url),
}

impl JwksLocation {
    /// `https://...` or `http://...` is a URL (checked), anything else a
    /// file path.
    ///
    /// # Errors
    ///
    /// [`JwksError::Location`] for a URL that does not parse, has user
    /// info, or is plain `http://` to a host that is not loopback.
    pub fn parse(value: &str) -> Result<Self, JwksError> {
        let lower = value.get(..8).unwrap_or(value).to_ascii_lowercase();
        if !lower.starts_with("https://") && !lower.starts_with("http://") {
            return Ok(Self::File(PathBuf::from(value)));
        }
        let url = Url::parse(value).map_err(|_| JwksError::Location {
            location: "(URL)".to_owned(),
            reason: "not a valid URL",
        })?;
        let refuse = |reason| JwksError::Location {
            location: format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
            reason,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("a JWKS URL must not carry user info"));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            _ => {
                return Err(refuse(
                    "plain http is allowed only to a loopback host (127.0.0.1, ::1, localhost); use https",
                ));
            }
        }
        Ok(Self::Url(url))
    }

    /// For messages: the file, or the URL's scheme and host (never its path
    /// or query, which may carry a secret).
    fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Url(url) => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An identity provider's JWKS and the issuer whose keys it replaces.
#[derive(Debug)]
pub struct JwksSource {
    location: JwksLocation,
    issuer: String,
    client: reqwest::Client,
}

impl JwksSource {
    /// The JWKS of the provider with `iss == issuer`, at `location`.
    ///
    /// # Errors
    ///
    /// [`JwksError::Load`] if the HTTP client cannot be built.
    pub fn new(location: JwksLocation, issuer: &str) -> Result<Self, JwksError> {
        let mut builder = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .connect_timeout(JWKS_FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if matches!(&location, JwksLocation::Url(u) if u.scheme() == "https") {
            builder = builder.https_only(true);
        }
        let client = builder.build().map_err(|e| JwksError::Load {
            from: location.describe(),
            reason: format!("HTTP client: {e}"),
        })?;
        Ok(Self {
            location,
            issuer: issuer.to_owned(),
            client,
        })
    }

    /// The issuer whose keys this JWKS holds.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Reads or fetches the document and parses it as strict JSON (its keys
    /// are checked when a verifier takes it).
    ///
    /// # Errors
    ///
    /// [`JwksError::Load`]: unreadable file, connection failure, timeout,
    /// a status other than 200, a body over [`MAX_JWKS_BYTES`], or not
    /// strict JSON.
    pub async fn load(&self) -> Result<serde_json::Value, JwksError> {
        let fail = |reason: String| JwksError::Load {
            from: self.location.describe(),
            reason,
        };
        let bytes = match &self.location {
            JwksLocation::File(path) => read_file(path).await.map_err(fail)?,
            JwksLocation::Url(url) => self.fetch(url).await.map_err(fail)?,
        };
        weir_auth::parse_jwks_document(&bytes).map_err(|e| fail(e.to_string()))
    }

    async fn fetch(&self, url: &Url) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fetch_error(&e))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("HTTP status {}", response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fetch_error(&e))? {
            if body.len().saturating_add(chunk.len()) > MAX_JWKS_BYTES {
                return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A reqwest error without its URL (whose path or query may be secret).
fn fetch_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    kind.to_owned()
}

async fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(MAX_JWKS_BYTES).unwrap_or(u64::MAX);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    Ok(bytes)
}

/// What one reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Whether any key id was added or removed.
    pub changed: bool,
    /// What failed, if anything (the keys of that source are unchanged).
    pub errors: Vec<String>,
}

/// The API verifier of a running server and where its keys come from.
///
/// # Guarantees
/// - **One key set at a time.** Reloads swap the verifier's keys atomically;
///   every verify sees one consistent set.
/// - **Single flight.** Reloads run one at a time, under an async mutex. A
///   request that met an unknown `kid` and had to wait while another reload
///   ran does not reload again: it verifies once more with that reload's
///   result. So N concurrent requests with an unknown `kid` cause one
///   reload.
/// - **Bounded.** Unknown-`kid` reloads happen at most once per interval
///   ([`DEFAULT_UNKNOWN_KID_INTERVAL`]); the periodic reload is separate.
/// - A failed reload keeps the last good keys.
#[derive(Debug)]
pub struct KeyRefresh {
    verifier: ApiVerifier,
    api_keys: Option<PathBuf>,
    jwks: Option<JwksSource>,
    unknown_kid_interval: Duration,
    /// Serializes reloads; holds when the last unknown-`kid` reload began.
    gate: tokio::sync::Mutex<Option<Instant>>,
    /// Reloads completed (incremented under `gate`).
    reloads: AtomicU64,
    /// JWKS loads begun, the initial one excluded: for metrics and tests.
    jwks_loads: AtomicU64,
}

impl From<ApiVerifier> for KeyRefresh {
    fn from(verifier: ApiVerifier) -> Self {
        Self::new(verifier)
    }
}

impl KeyRefresh {
    /// Serves `verifier`'s keys as they are, until sources are added.
    #[must_use]
    pub fn new(verifier: ApiVerifier) -> Self {
        Self {
            verifier,
            api_keys: None,
            jwks: None,
            unknown_kid_interval: DEFAULT_UNKNOWN_KID_INTERVAL,
            gate: tokio::sync::Mutex::new(None),
            reloads: AtomicU64::new(0),
            jwks_loads: AtomicU64::new(0),
        }
    }

    /// Also re-reads weir's own API keys from `state_dir` on reload (never
    /// creating or writing them).
    #[must_use]
    pub fn with_api_keys(mut self, state_dir: &Path) -> Self {
        self.api_keys = Some(state_dir.to_path_buf());
        self
    }

    /// Also reloads `source`, whose issuer the verifier must already trust
    /// (through [`ApiVerifier::with_external_jwks`] with its first load).
    #[must_use]
    pub fn with_jwks(mut self, source: JwksSource) -> Self {
        self.jwks = Some(source);
        self
    }

    /// Sets the least time between two reloads triggered by an unknown `kid`.
    #[must_use]
    pub fn with_unknown_kid_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_interval = interval;
        self
    }

    /// The verifier.
    #[must_use]
    pub fn verifier(&self) -> &ApiVerifier {
        &self.verifier
    }

    /// JWKS loads made by reloads so far.
    #[must_use]
    pub fn jwks_loads(&self) -> u64 {
        self.jwks_loads.load(Ordering::SeqCst)
    }

    /// Verifies `token`; if its `kid` is unknown and a reload is allowed (see
    /// the type's guarantees), reloads and verifies once more.
    ///
    /// # Errors
    ///
    /// As [`ApiVerifier::verify`].
    pub async fn verify(&self, token: &str) -> Result<Identity, ApiAuthError> {
        let seen = self.reloads.load(Ordering::SeqCst);
        match self.verifier.verify(token) {
            Err(ApiAuthError::UnknownKid) if self.has_sources() => {
                if self.reload_after_unknown_kid(seen).await {
                    self.verifier.verify(token)
                } else {
                    Err(ApiAuthError::UnknownKid)
                }
            }
            other => other,
        }
    }

    /// Reloads every source now (waiting for a reload in flight first).
    pub async fn reload(&self) -> Reloaded {
        let _gate = self.gate.lock().await;
        self.reload_locked().await
    }

    /// Reloads every `every` until the last `Arc` of `self` is dropped.
    pub fn spawn_periodic(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(this) = weak.upgrade() else {
                    return;
                };
                this.reload().await;
            }
        })
    }

    fn has_sources(&self) -> bool {
        self.api_keys.is_some() || self.jwks.is_some()
    }

    /// Whether the caller should verify again: a reload completed since it
    /// looked (`seen`), by another caller or by this one.
    async fn reload_after_unknown_kid(&self, seen: u64) -> bool {
        let mut last = self.gate.lock().await;
        if self.reloads.load(Ordering::SeqCst) != seen {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.unknown_kid_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.reload_locked().await;
        true
    }

    async fn reload_locked(&self) -> Reloaded {
        let mut done = Reloaded::default();
        if let Some(dir) = &self.api_keys {
            let dir = dir.clone();
            let read = tokio::task::spawn_blocking(move || ApiKeySet::read(&dir)).await;
            let result = match read {
                Ok(Ok(keys)) => self
                    .verifier
                    .reload_api_keys(&keys)
                    .map_err(|e| e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the key reader stopped".to_owned()),
            };
            match result {
                Ok(changed) => done.changed |= changed,
                Err(e) => done.errors.push(format!("API keys: {e}")),
            }
        }
        if let Some(source) = &self.jwks {
            self.jwks_loads.fetch_add(1, Ordering::SeqCst);
            let result = match source.load().await {
                Ok(doc) => self
                    .verifier
                    .replace_external_jwks(&doc, &source.issuer)
                    .map_err(|e| format!("JWKS of {}: {e}", source.location.describe())),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(changed) => done.changed |= changed,
                Err(e) => done.errors.push(e),
            }
        }
        for e in &done.errors {
            tracing::warn!(error = %e, "key reload failed; keeping the last good keys");
        }
        if done.changed {
            tracing::info!("API verification keys reloaded");
        }
        self.reloads.fetch_add(1, Ordering::SeqCst);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_locations() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9000/jwks",
            "HTTPS://idp.example.com/keys",
        ] {
            assert!(
                matches!(JwksLocation::parse(ok), Ok(JwksLocation::Url(_))),
                "{ok}"
            );
        }
        assert!(matches!(
            JwksLocation::parse("conf/jwks.json"),
            Ok(JwksLocation::File(_))
        ));
        for bad in [
            "http://idp.example.com/jwks",
            "http://10.0.0.5/jwks",
            "http://127.0.0.1.evil.com/jwks",
            "https://user:pw@idp.example.com/jwks",
            "https://",
        ] {
            let err = JwksLocation::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("pw@"), "{err}");
        }
        let err = JwksLocation::parse("http://idp.example.com/secret?token=s3cr3t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback") && !err.contains("s3cr3t"), "{err}");
    }
}
