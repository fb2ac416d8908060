//! Store locations: local folders and S3 buckets, read the same way by
//! pipelines and policies (a policy binds each store name to a location, so
//! both must agree on what a `url` means).
//!
//! # Security
//! - A store `url` and `endpoint` may use `${NAME}` or `${NAME:-default}`
//!   to read weir's environment (so one pipeline runs on a laptop folder and
//!   on S3 in CI). Names that look like credentials are refused: a url is
//!   printed by `weir plan` and recorded in run records, and credentials
//!   never belong in one.
//! - URLs with user info (`s3://key:secret@bucket`), query strings or
//!   fragments are refused for the same reason.
//! - An S3 endpoint may use plain `http://` only on a loopback host; anything
//!   that leaves the machine must use TLS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Serialize;

use crate::decode::{self, Ctx, Fields, StoreUrl};
use crate::model::StoreLocation;
use crate::yaml::{Node, truncate};

/// The fields a store may have, in pipelines and policies alike.
pub const STORE_FIELDS: &[&str] = &["url", "endpoint", "region", "description"];

/// Longest S3 key prefix accepted in a store url.
const MAX_PREFIX: usize = 512;

/// Words that make an environment variable name look like a credential.
const SECRET_WORDS: &[&str] = &[
    "SECRET",
    "KEY",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "SESSION",
    "AUTH",
];

/// A store in an S3-compatible bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct S3Location {
    /// Bucket name (validated against S3's naming rules).
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`;
    /// empty for the whole bucket.
    pub prefix: String,
    /// `scheme://host[:port]` of an S3-compatible server; `None` uses
    /// `AWS_ENDPOINT_URL` or AWS itself.
    pub endpoint: Option<String>,
    /// Region; `None` uses `AWS_REGION` or `us-east-1`.
    pub region: Option<String>,
}

impl S3Location {
    /// `s3://bucket/prefix`.
    #[must_use]
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Reads a store's `url`, `endpoint` and `region` into a location.
/// Relative folders resolve against `base_dir`. `folder_hint` is the hint
/// given when `url` is missing.
pub fn decode_location(
    cx: &mut Ctx,
    f: &Fields<'_>,
    what: &str,
    base_dir: &Path,
    folder_hint: &str,
) -> Option<StoreLocation> {
    if let Some(n) = f.get("description") {
        decode::string(cx, n, "`description`");
    }
    let url_node = f.required(cx, "url", what, folder_hint)?;
    let url = expanded(cx, url_node, "`url`")?;
    let endpoint = match f.get("endpoint") {
        Some(n) => expanded(cx, n, "`endpoint`").map(Some)?,
        None => None,
    };
    let region = match f.get("region") {
        Some(n) => expanded(cx, n, "`region`").map(Some)?,
        None => None,
    };
    match decode::classify_store_url(&url) {
        StoreUrl::S3 => s3(cx, url_node, f, &url, endpoint, region),
        StoreUrl::UnknownScheme(scheme) => {
            cx.error(
                &url_node.loc,
                format!("unknown store scheme `{}`", truncate(scheme)),
            )
            .hint("use a local folder (relative to this file, or absolute), `file://` or `s3://bucket/prefix`");
            None
        }
        StoreUrl::Local(_) if url.is_empty() => {
            cx.error(&url_node.loc, format!("{what} has an empty `url`"))
                .hint("write a folder, e.g. `url: ./data`");
            None
        }
        StoreUrl::Local(folder) => {
            for field in ["endpoint", "region"] {
                if let Some(n) = f.get(field) {
                    cx.error(
                        &n.loc,
                        format!("{what}: `{field}` only applies to `s3://` stores"),
                    )
                    .hint(format!(
                        "remove `{field}`, or use an `s3://bucket/prefix` url"
                    ));
                }
            }
            (f.get("endpoint").is_none() && f.get("region").is_none())
                .then(|| StoreLocation::Local(base_dir.join(folder)))
        }
    }
}

/// A string field with `${NAME}` references expanded; errors at the field.
fn expanded(cx: &mut Ctx, node: &Node, what: &str) -> Option<String> {
    let raw = decode::string(cx, node, what)?;
    match expand_env(&raw, |name| std::env::var(name).ok()) {
        Ok(text) => Some(text),
        Err(e) => {
            let (message, hint) = e.describe(what);
            cx.error(&node.loc, message).hint(hint);
            None
        }
    }
}

/// Why `${...}` expansion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `${` without a closing `}`, or an empty name.
    Malformed,
    /// A name outside `[A-Z_][A-Z0-9_]*`.
    BadName(String),
    /// A name that looks like a credential.
    SecretName(String),
    /// The variable is unset and there is no default.
    Unset(String),
}

impl ExpandError {
    fn describe(&self, what: &str) -> (String, String) {
        match self {
            Self::Malformed => (
                format!("{what}: unterminated or empty `${{...}}`"),
                "write `${NAME}` or `${NAME:-default}`; a `$` not followed by `{` is kept as is"
                    .into(),
            ),
            Self::BadName(n) => (
                format!("{what}: `{}` is not an environment variable name", truncate(n)),
                "names are upper-case letters, digits and `_`, e.g. `${WEIR_LAKE_URL}`".into(),
            ),
            Self::SecretName(n) => (
                format!("{what}: `${{{n}}}` looks like a credential"),
                "store urls are printed and recorded; S3 credentials come from \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in weir's environment, never from a url"
                    .into(),
            ),
            Self::Unset(n) => (
                format!("{what}: environment variable `{n}` is not set"),
                format!("set `{n}`, or give a default: `${{{n}:-value}}`"),
            ),
        }
    }
}

/// Expands `${NAME}` and `${NAME:-default}` in `text` with `lookup`.
///
/// # Errors
/// See [`ExpandError`]. An empty value counts as unset for `:-`.
pub fn expand_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let end = after.find('}').ok_or(ExpandError::Malformed)?;
        let body = after.get(..end).unwrap_or_default();
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        check_name(name)?;
        match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(ExpandError::Unset(name.to_owned())),
        }
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

fn check_name(name: &str) -> Result<(), ExpandError> {
    if name.is_empty() {
        return Err(ExpandError::Malformed);
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_');
    if !first_ok
        || !chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        || name.len() > 64
    {
        return Err(ExpandError::BadName(name.to_owned()));
    }
    if SECRET_WORDS.iter().any(|w| name.contains(w)) {
        return Err(ExpandError::SecretName(name.to_owned()));
    }
    Ok(())
}

fn s3(
    cx: &mut Ctx,
    url_node: &Node,
    f: &Fields<'_>,
    url: &str,
    endpoint: Option<String>,
    region: Option<String>,
) -> Option<StoreLocation> {
    let rest = url.strip_prefix("s3://").unwrap_or_default();
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let mut ok = true;
    if let Err(why) = check_bucket(bucket) {
        cx.error(
            &url_node.loc,
            format!("`{}` is not a valid S3 url: {why}", truncate(url)),
        )
        .hint("write `s3://bucket/prefix`; bucket names are 3-63 lower-case letters, digits, `-` and `.`");
        ok = false;
    }
    let prefix = prefix.trim_end_matches('/');
    if let Err(why) = check_prefix(prefix) {
        cx.error(
            &url_node.loc,
            format!("`{}` is not a valid S3 url: {why}", truncate(url)),
        )
        .hint("a prefix is `/`-separated segments without `.`, `..`, `%`, `?`, `#` or empty parts");
        ok = false;
    }
    let endpoint = endpoint.filter(|e| !e.is_empty());
    if let (Some(e), Some(n)) = (&endpoint, f.get("endpoint"))
        && let Err(why) = check_endpoint(e)
    {
        cx.error(
            &n.loc,
            format!("`endpoint` `{}` is not allowed: {why}", truncate(e)),
        )
        .hint("write `https://host[:port]`; plain `http://` only for 127.0.0.1, ::1 or localhost");
        ok = false;
    }
    let region = region.filter(|r| !r.is_empty());
    if let (Some(r), Some(n)) = (&region, f.get("region"))
        && !(r.len() <= 32
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        cx.error(
            &n.loc,
            format!("`region` `{}` is not a region name", truncate(r)),
        )
        .hint("e.g. `us-east-1`");
        ok = false;
    }
    ok.then(|| {
        StoreLocation::S3(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint,
            region,
        })
    })
}

/// S3's bucket naming rules (the subset that matters for path-style access).
fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    if bucket.contains(['@', ':']) {
        return Err("user info or a port in the bucket part (credentials never go in a url)");
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err("the bucket name must be 3 to 63 characters");
    }
    if !bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err("the bucket name may hold only lower-case letters, digits, `-` and `.`");
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(bucket.chars().next()) || !edge_ok(bucket.chars().last()) {
        return Err("the bucket name must start and end with a letter or digit");
    }
    if bucket.contains("..") || bucket.parse::<Ipv4Addr>().is_ok() {
        return Err("the bucket name must not hold `..` or be an IP address");
    }
    Ok(())
}

fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.len() > MAX_PREFIX {
        return Err("the prefix is too long");
    }
    if prefix.contains(['?', '#', '%', '\\']) || prefix.chars().any(char::is_control) {
        return Err("the prefix holds `?`, `#`, `%`, `\\` or a control character");
    }
    if prefix
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("the prefix has an empty, `.` or `..` segment");
    }
    Ok(())
}

/// Checks an S3 endpoint: `http(s)://host[:port]`, no user info, path,
/// query or fragment; plain HTTP only to a loopback host.
///
/// # Errors
/// A short reason.
pub fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let (tls, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("it must start with `https://` (or `http://` for a loopback host)");
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', '\\']) {
        return Err("it must be just `scheme://host[:port]`, without user info, path or query");
    }
    let host = host_of(authority).ok_or("the port is not a number")?;
    if !tls && !is_loopback(host) {
        return Err("plain http is allowed only to a loopback host; use https");
    }
    Ok(())
}

/// The host of `host[:port]` or `[v6][:port]`, if the port (when present)
/// is a number.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6.split_once(']')?;
        (h, tail.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    match port {
        Some(p) if p.is_empty() || p.parse::<u16>().is_err() => None,
        _ => Some(host),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<Ipv4Addr>()
            .is_ok_and(|ip| IpAddr::V4(ip).is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "WEIR_LAKE_URL" => Some("s3://b-1/lake".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_unset_and_default() {
        assert_eq!(
            expand_env("${WEIR_LAKE_URL:-../data}", env).unwrap(),
            "s3://b-1/lake"
        );
        assert_eq!(expand_env("${NOPE:-../data}", env).unwrap(), "../data");
        assert_eq!(expand_env("${EMPTY:-x}", env).unwrap(), "x");
        assert_eq!(expand_env("a$b/${NOPE:-}/c", env).unwrap(), "a$b//c");
        assert_eq!(
            expand_env("${NOPE}", env),
            Err(ExpandError::Unset("NOPE".into()))
        );
    }

    #[test]
    fn refuses_malformed_and_secret_names() {
        assert_eq!(expand_env("${", env), Err(ExpandError::Malformed));
        assert_eq!(expand_env("${}", env), Err(ExpandError::Malformed));
        assert!(matches!(
            expand_env("${lower}", env),
            Err(ExpandError::BadName(_))
        ));
        for n in [
            "AWS_SECRET_ACCESS_KEY",
            "GITHUB_TOKEN",
            "DB_PASSWORD",
            "AWS_SESSION_TOKEN",
        ] {
            assert_eq!(
                expand_env(&format!("${{{n}:-x}}"), env),
                Err(ExpandError::SecretName(n.into()))
            );
        }
    }

    #[test]
    fn bucket_rules() {
        for ok in ["abc", "weir-ci", "a.b-c.d1", "0ab"] {
            assert!(check_bucket(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Upper",
            "-ab",
            "ab-",
            "a..b",
            "10.0.0.1",
            "key:secret@bucket",
            &"a".repeat(64),
        ] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_rules() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("lake/ci-1").is_ok());
        for bad in ["a//b", "a/../b", "./a", "a%2Fb", "a?x=1", "a#f", "a\\b"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoint_rules() {
        for ok in [
            "https://s3.example.com",
            "https://minio.internal:9000",
            "http://127.0.0.1:9100",
            "http://127.8.0.1",
            "http://localhost:9000/",
            "http://[::1]:9000",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:9000",
            "http://s3.example.com",
            "http://127.0.0.1.evil.com",
            "ftp://127.0.0.1",
            "https://user:pw@host",
            "https://host/path",
            "https://host?x=1",
            "http://127.0.0.1:99999",
            "http://[::2]:9000",
            "127.0.0.1:9000",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
