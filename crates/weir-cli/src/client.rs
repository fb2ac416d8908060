//! Talking to a weir server (`--server URL`): the token comes from
//! `WEIR_TOKEN` or the OS keyring (`weir login`), never from a file or the
//! command line.

use anyhow::Context;
use weir_keyring::{MemoryStore, ServerOrigin, TokenStore, platform_store, token_from_env};

use crate::login;

/// The platform keyring, or an empty in-memory store where there is none
/// (so `WEIR_TOKEN` still works there).
pub(crate) fn store() -> Box<dyn TokenStore> {
    if token_from_env().is_some() {
        return Box::new(MemoryStore::new());
    }
    platform_store().unwrap_or_else(|_| Box::new(MemoryStore::new()))
}

/// `GET {server}{path}` with the caller's token; the JSON body.
///
/// # Errors
/// No token, the server unreachable, or a refusal (explained).
pub(crate) fn get_json(server: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let origin = ServerOrigin::parse(server)?;
    let token = login::resolve_token(server, store().as_ref())?;
    let url = format!("{}{path}", origin.as_str());
    let runtime = tokio::runtime::Runtime::new()?;
    let (status, body) = runtime
        .block_on(async {
            let response = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?
                .get(&url)
                .bearer_auth(token.expose())
                .send()
                .await?;
            let status = response.status();
            let body = response.text().await?;
            Ok::<_, reqwest::Error>((status, body))
        })
        .with_context(|| format!("cannot reach {origin}"))?;
    match status.as_u16() {
        200..=299 => serde_json::from_str(&body).context("the server's answer is not JSON"),
        401 => anyhow::bail!(
            "{origin} refused the token (expired, revoked or not for this server): run `weir login --server {origin}` with a new one"
        ),
        403 => anyhow::bail!("{origin}: your roles do not allow this"),
        429 => anyhow::bail!(
            "{origin}: too many failed authentications from this machine; wait a minute"
        ),
        code => {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_default();
            anyhow::bail!("{origin} answered {code}: {message}")
        }
    }
}

/// `s` percent-encoded for a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
