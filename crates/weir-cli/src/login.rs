//! `weir login`, `weir logout`, and the API token every command that talks to
//! a server sends.
//!
//! Where the token lives: in the OS keyring, never in a file. On Linux that is
//! the kernel keyring (keyutils): a key `keyring:<origin>@weir` in the user's
//! persistent keyring, held in kernel memory, so it is gone after a reboot or
//! after a few days (3 by default) without any `weir` command; then log in
//! again. Any process running as the same user can read it. Other platforms
//! have no store yet. In CI, set `WEIR_TOKEN` instead: it takes precedence
//! over the keyring. See `weir_keyring::platform_store` for the details.
//!
//! Tokens are stored per server origin (`scheme://host:port`), so
//! `https://weir.example.com` and `https://weir.example.com:443/` are one
//! server.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use weir_keyring::{
    MAX_TOKEN_BYTES, ServerOrigin, StoredToken, TokenStore, WEIR_TOKEN_ENV, token_from_env,
};

/// `weir login --server URL`: reads a token and stores it for `server`.
///
/// The token is read from stdin (one line) when `token_from_stdin` is set or
/// stdin is not a terminal; otherwise the user is prompted, with echo turned
/// off where `stty` can do that. Prints where the token was stored, never the
/// token.
pub(crate) fn login(
    server: &str,
    token_from_stdin: bool,
    store: &dyn TokenStore,
) -> anyhow::Result<()> {
    let origin = ServerOrigin::parse(server)?;
    let stdin = std::io::stdin();
    let token = if token_from_stdin || !stdin.is_terminal() {
        read_token_line(&mut stdin.lock())?
    } else {
        prompt_token(&origin)?
    };
    println!(
        "{}",
        store_token(&origin, token, store, token_from_env().is_some())?
    );
    Ok(())
}

/// `weir logout --server URL`: removes the token stored for `server`.
pub(crate) fn logout(server: &str, store: &dyn TokenStore) -> anyhow::Result<()> {
    println!(
        "{}",
        remove_token(server, store, token_from_env().is_some())?
    );
    Ok(())
}

/// The token to send to `server`: `WEIR_TOKEN` if set, else the one
/// `weir login` stored.
pub(crate) fn resolve_token(server: &str, store: &dyn TokenStore) -> anyhow::Result<StoredToken> {
    resolve_token_with(server, store, token_from_env())
}

/// Checks `token` and stores it for `origin`; returns the message to print.
fn store_token(
    origin: &ServerOrigin,
    token: StoredToken,
    store: &dyn TokenStore,
    env_token_set: bool,
) -> anyhow::Result<String> {
    check_token_shape(&token)?;
    store
        .put(origin.as_str(), &token)
        .with_context(|| format!("cannot store the token for {origin}"))?;
    let mut message = format!(
        "logged in to {origin}; the token is stored in {}",
        store.describe()
    );
    if env_token_set {
        message.push_str(&format!(
            "\nnote: {WEIR_TOKEN_ENV} is set in this environment, and commands send it \
             instead of the stored token"
        ));
    }
    Ok(message)
}

/// Removes the token for `server`; returns the message to print.
fn remove_token(
    server: &str,
    store: &dyn TokenStore,
    env_token_set: bool,
) -> anyhow::Result<String> {
    let origin = ServerOrigin::parse(server)?;
    let removed = store
        .delete(origin.as_str())
        .with_context(|| format!("cannot remove the token for {origin}"))?;
    let mut message = if removed {
        format!("logged out of {origin}; its token was removed")
    } else {
        format!("no token was stored for {origin}")
    };
    if env_token_set {
        message.push_str(&format!(
            "\nnote: {WEIR_TOKEN_ENV} is still set in this environment, and commands still send it"
        ));
    }
    Ok(message)
}

/// [`resolve_token`] with the value of `WEIR_TOKEN` passed in.
fn resolve_token_with(
    server: &str,
    store: &dyn TokenStore,
    env_token: Option<StoredToken>,
) -> anyhow::Result<StoredToken> {
    let origin = ServerOrigin::parse(server)?;
    if let Some(token) = env_token {
        check_token_shape(&token).with_context(|| format!("{WEIR_TOKEN_ENV} is unusable"))?;
        return Ok(token);
    }
    match store
        .get(origin.as_str())
        .with_context(|| format!("cannot read the token for {origin}"))?
    {
        Some(token) => Ok(token),
        None => bail!(
            "not logged in to {origin}: run `weir login --server {origin}` \
             (or set {WEIR_TOKEN_ENV})"
        ),
    }
}

/// Reads one line, at most a little over [`MAX_TOKEN_BYTES`], as a token.
fn read_token_line(input: &mut dyn BufRead) -> anyhow::Result<StoredToken> {
    // Room for the longest token and "\r\n" without reallocating (which
    // would leave a copy behind), plus one byte to notice a longer one.
    let limit = MAX_TOKEN_BYTES + 3;
    let mut line = String::with_capacity(limit);
    let read = input.take(limit as u64).read_line(&mut line);
    // Wrapped before anything else, so the buffer is zeroized on every path.
    let token = StoredToken::new(line);
    match read {
        Ok(_) => Ok(token),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            bail!("the token is not UTF-8 text")
        }
        Err(e) => Err(e).context("cannot read the token from stdin"),
    }
}

/// Prompts on the terminal for a token.
fn prompt_token(origin: &ServerOrigin) -> anyhow::Result<StoredToken> {
    let mut stderr = std::io::stderr();
    let echo_off = EchoOff::new();
    if echo_off.is_none() {
        writeln!(
            stderr,
            "note: cannot turn off terminal echo here; the token will be visible as you type"
        )?;
    }
    write!(stderr, "API token for {origin} (from `weir token issue`): ")?;
    stderr.flush()?;
    let token = read_token_line(&mut std::io::stdin().lock());
    if echo_off.is_some() {
        // The Enter the user pressed was not echoed either.
        writeln!(stderr)?;
    }
    drop(echo_off);
    token
}

/// Terminal echo, turned off with `stty -echo` (which acts on the terminal
/// on its stdin, inherited from ours) until dropped. No `rpassword` in the
/// dependency tree, and no `unsafe` for `termios`. Like `rpassword`, echo
/// stays off if the process is killed (Ctrl-C) mid-prompt; `stty echo` or
/// `reset` brings it back.
struct EchoOff;

impl EchoOff {
    fn new() -> Option<Self> {
        (cfg!(unix) && stty("-echo")).then_some(Self)
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        stty("echo");
    }
}

fn stty(setting: &str) -> bool {
    Command::new("stty")
        .arg(setting)
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Refuses what cannot be a weir API token: empty, over 8 KiB, or not a JWT
/// in compact form (three non-empty base64url segments, no padding). The
/// message never includes the token.
fn check_token_shape(token: &StoredToken) -> anyhow::Result<()> {
    let text = token.expose();
    if text.is_empty() {
        bail!(
            "no token given: paste it at the prompt, or pipe it in, e.g. \
             `printf '%s\\n' \"$TOKEN\" | weir login --server URL`"
        );
    }
    if text.len() > MAX_TOKEN_BYTES {
        bail!("the token is longer than 8 KiB; that is not a weir API token");
    }
    let mut segments = 0;
    for segment in text.split('.') {
        segments += 1;
        if !is_base64url(segment) {
            bail!(
                "that is not an API token: expected a JWT, three base64url segments \
                 separated by dots; copy the whole token `weir token issue` printed"
            );
        }
    }
    if segments != 3 {
        bail!(
            "that is not an API token: expected a JWT with 3 dot-separated segments, \
             found {segments}"
        );
    }
    Ok(())
}

/// Unpadded base64url (RFC 4648 section 5), non-empty; a length of 1 mod 4
/// cannot be produced by any encoding.
fn is_base64url(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() % 4 != 1
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_keyring::MemoryStore;

    const SERVER: &str = "http://127.0.0.1:8080";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz";

    fn token(text: &str) -> StoredToken {
        StoredToken::new(text.to_owned())
    }

    fn origin() -> ServerOrigin {
        ServerOrigin::parse(SERVER).unwrap()
    }

    fn login_from(input: &str, store: &dyn TokenStore) -> anyhow::Result<String> {
        let token = read_token_line(&mut input.as_bytes())?;
        store_token(&origin(), token, store, false)
    }

    #[test]
    fn login_reads_one_trimmed_line_and_stores_it() {
        let store = MemoryStore::new();
        let message = login_from(&format!("  {JWT}\r\nsecond line\n"), &store).unwrap();
        assert_eq!(store.get(SERVER).unwrap().unwrap().expose(), JWT);
        assert!(message.contains("http://127.0.0.1:8080"), "{message}");
        assert!(message.contains(&store.describe()), "{message}");
        assert!(!message.contains(JWT), "{message}");
    }

    #[test]
    fn login_accepts_a_last_line_without_newline() {
        let store = MemoryStore::new();
        login_from(JWT, &store).unwrap();
        assert_eq!(store.get(SERVER).unwrap().unwrap().expose(), JWT);
    }

    #[test]
    fn login_refuses_malformed_tokens_without_echoing_them() {
        let long = format!(
            "{}.{}.{}",
            "a".repeat(4096),
            "b".repeat(4096),
            "c".repeat(4)
        );
        let cases = [
            "",
            "\n",
            "   \n",
            "sekrit",
            "sekrit.sekrit",
            "sekrit.sekrit.sekrit.sekrit",
            "sekrit..sekrit",
            "sekrit.sekrit.",
            "sekrit.sekrit.sekr+t/==",
            "sekrit.sekrit.sekrit=",
            "sekrit.sekrit.sekri t",
            "sekrit.sekrit.sekri",
            long.as_str(),
        ];
        for input in cases {
            let store = MemoryStore::new();
            let err = login_from(input, &store).unwrap_err();
            let message = format!("{err:#}");
            assert!(!message.contains("sekrit"), "{input:?}: {message}");
            assert!(store.is_empty(), "{input:?} was stored");
        }
    }

    #[test]
    fn login_refuses_a_token_over_8_kib_and_accepts_one_at_8_kib() {
        // 4094 + 1 + 4094 + 1 + 4 = 8194 bytes; then 8192.
        let over = format!("{}.{}.{}", "a".repeat(4094), "b".repeat(4094), "cccc");
        let store = MemoryStore::new();
        let err = login_from(&over, &store).unwrap_err();
        assert!(format!("{err:#}").contains("8 KiB"), "{err:#}");
        let at_limit = format!("{}.{}.{}", "a".repeat(4094), "b".repeat(4092), "cccc");
        assert_eq!(at_limit.len(), MAX_TOKEN_BYTES);
        login_from(&format!("{at_limit}\n"), &store).unwrap();
        assert_eq!(store.get(SERVER).unwrap().unwrap().len(), MAX_TOKEN_BYTES);
    }

    #[test]
    fn login_refuses_non_utf8_input() {
        let err = read_token_line(&mut &b"\xff\xfe.a.b\n"[..]).unwrap_err();
        assert!(format!("{err:#}").contains("UTF-8"), "{err:#}");
    }

    #[test]
    fn login_overwrites_the_previous_token() {
        let store = MemoryStore::new();
        login_from(JWT, &store).unwrap();
        let newer = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.bmV3ZXI";
        login_from(newer, &store).unwrap();
        assert_eq!(store.get(SERVER).unwrap().unwrap().expose(), newer);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn login_notes_that_weir_token_takes_precedence() {
        let store = MemoryStore::new();
        let message = store_token(&origin(), token(JWT), &store, true).unwrap();
        assert!(message.contains(WEIR_TOKEN_ENV), "{message}");
    }

    #[test]
    fn logout_removes_the_token_and_is_idempotent() {
        let store = MemoryStore::new();
        store.put(SERVER, &token(JWT)).unwrap();
        let message = remove_token("http://127.0.0.1:8080/", &store, false).unwrap();
        assert!(
            message.starts_with("logged out of http://127.0.0.1:8080"),
            "{message}"
        );
        assert!(store.get(SERVER).unwrap().is_none());
        let message = remove_token(SERVER, &store, false).unwrap();
        assert!(message.starts_with("no token was stored"), "{message}");
    }

    #[test]
    fn resolve_prefers_weir_token_then_the_keyring() {
        let store = MemoryStore::new();
        store.put(SERVER, &token(JWT)).unwrap();
        let from_env = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaSJ9.ZW52";
        let resolved = resolve_token_with(SERVER, &store, Some(token(from_env))).unwrap();
        assert_eq!(resolved.expose(), from_env);
        let resolved = resolve_token_with(SERVER, &store, None).unwrap();
        assert_eq!(resolved.expose(), JWT);
    }

    #[test]
    fn resolve_without_a_token_says_to_log_in() {
        let store = MemoryStore::new();
        let err = resolve_token_with(SERVER, &store, None).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("weir login --server http://127.0.0.1:8080"),
            "{message}"
        );
    }

    #[test]
    fn resolve_refuses_a_malformed_weir_token_without_echoing_it() {
        let store = MemoryStore::new();
        let err = resolve_token_with(SERVER, &store, Some(token("sekrit"))).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains(WEIR_TOKEN_ENV), "{message}");
        assert!(!message.contains("sekrit"), "{message}");
    }

    #[test]
    fn server_urls_with_credentials_are_refused_everywhere() {
        let store = MemoryStore::new();
        let url = "https://alice:pw@weir.example.com";
        assert!(remove_token(url, &store, false).is_err());
        let err = resolve_token_with(url, &store, Some(token(JWT))).unwrap_err();
        assert!(!format!("{err:#}").contains("pw@"), "{err:#}");
    }
}
