//! Strict parsing of the JWS compact serialization (`header.payload.signature`).
//!
//! Only structure is checked here; nothing parsed here is trusted until the
//! verifier has checked the signature.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The three base64url parts of a compact JWS. `Debug` shows lengths only.
#[derive(Clone, Copy)]
pub(crate) struct Compact<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a str,
}

impl fmt::Debug for Compact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("header_len", &self.header.len())
            .field("payload_len", &self.payload.len())
            .field("signature_len", &self.signature.len())
            .finish_non_exhaustive()
    }
}

fn malformed(reason: &'static str) -> Error {
    Error::MalformedToken { reason }
}

/// Splits `token` into exactly three non-empty base64url parts.
pub(crate) fn split(token: &str) -> Result<Compact<'_>> {
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(malformed("characters outside base64url"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(malformed("empty part"));
    }
    let signing_input = token
        .get(..header.len() + 1 + payload.len())
        .ok_or(Error::Internal {
            reason: "signing input out of range",
        })?;
    Ok(Compact {
        header,
        payload,
        signature,
        signing_input,
    })
}

/// Decodes one base64url part (no padding, canonical trailing bits).
pub(crate) fn decode(part: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed("invalid base64url"))
}

/// Fails if any JSON object in `json` repeats a key (after unescaping), or if
/// `json` is not a single JSON value.
pub(crate) fn check_unique_keys(json: &[u8], part: &'static str) -> Result<()> {
    match serde_json::from_slice::<UniqueKeys>(json) {
        Ok(UniqueKeys) => Ok(()),
        // Our visitor raises the only data errors; everything else is syntax.
        Err(e) if e.is_data() => Err(Error::DuplicateKey { part }),
        Err(_) => Err(malformed("part is not valid JSON")),
    }
}

/// Walks any JSON value, keeping nothing, failing on a repeated object key.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> std::result::Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<UniqueKeys, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

/// The JOSE header parameters a verifier reads.
#[derive(Debug)]
pub(crate) struct JoseHeader {
    pub(crate) alg: String,
    pub(crate) kid: Option<String>,
}

/// Which header parameters a kind of token may carry beyond `alg` and `kid`.
#[derive(Debug)]
pub(crate) struct HeaderRules {
    /// Accepted values of `typ` (ASCII case-insensitive), if present.
    pub(crate) typs: &'static [&'static str],
    /// Parameters tolerated and ignored (never key material).
    pub(crate) ignored: &'static [&'static str],
}

/// Stage tokens: `alg`, `kid` and `typ: JWT`, nothing else.
pub(crate) const STAGE_HEADER: HeaderRules = HeaderRules {
    typs: &["JWT"],
    ignored: &[],
};

/// Parameters that carry or point to key material. Keys never come from a
/// token, so these are refused under every [`HeaderRules`].
const KEY_BEARING: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// Parses a decoded header: no duplicate keys, no `crit`, nothing beyond
/// `alg`, `kid`, `typ` and `rules.ignored` (keys never come from the token:
/// `jwk`, `jku`, `x5u`, `x5c` are refused), `typ` if present one of
/// `rules.typs`.
pub(crate) fn parse_header(json: &[u8], rules: &HeaderRules) -> Result<JoseHeader> {
    check_unique_keys(json, "header")?;
    let map: Map<String, Value> =
        serde_json::from_slice(json).map_err(|_| malformed("header is not a JSON object"))?;
    if map.contains_key("crit") {
        return Err(Error::CriticalHeader);
    }
    let allowed = |k: &str| {
        matches!(k, "alg" | "kid" | "typ")
            || (rules.ignored.contains(&k) && !KEY_BEARING.contains(&k))
    };
    if map.keys().any(|k| !allowed(k)) {
        return Err(Error::UnsupportedHeader);
    }
    if let Some(typ) = map.get("typ") {
        match typ.as_str() {
            Some(t) if rules.typs.iter().any(|ok| t.eq_ignore_ascii_case(ok)) => {}
            _ => return Err(malformed("header typ is not accepted")),
        }
    }
    let alg = match map.get("alg") {
        Some(Value::String(alg)) => alg.clone(),
        _ => return Err(malformed("header alg missing or not a string")),
    };
    let kid = match map.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed("header kid is not a string")),
    };
    Ok(JoseHeader { alg, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_requires_three_non_empty_base64url_parts() {
        assert!(split("a.b.c").is_ok());
        let c = split("aa.bb.cc").unwrap();
        assert_eq!(c.signing_input, "aa.bb");
        assert_eq!((c.header, c.payload, c.signature), ("aa", "bb", "cc"));
        for bad in [
            "", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "a.b.c=", "a.b+.c", "a b.c.d",
        ] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duplicate_keys_found_at_any_depth_and_through_escapes() {
        assert!(check_unique_keys(br#"{"a":1,"b":{"c":[{"d":1}]}}"#, "payload").is_ok());
        for dup in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"x":{"a":1,"a":2}}"#,
            br#"{"x":[{"a":1,"a":2}]}"#,
            br#"{"exp":1,"e\u0078p":2}"#,
        ] {
            assert!(matches!(
                check_unique_keys(dup, "payload"),
                Err(Error::DuplicateKey { part: "payload" })
            ));
        }
        assert!(matches!(
            check_unique_keys(b"{\"a\":1} x", "payload"),
            Err(Error::MalformedToken { .. })
        ));
    }

    fn parse_header_stage(json: &[u8]) -> Result<JoseHeader> {
        parse_header(json, &STAGE_HEADER)
    }

    #[test]
    fn header_rules() {
        let h = parse_header_stage(br#"{"typ":"JWT","alg":"EdDSA","kid":"k1"}"#).unwrap();
        assert_eq!(h.alg, "EdDSA");
        assert_eq!(h.kid.as_deref(), Some("k1"));
        assert!(matches!(
            parse_header_stage(br#"{"alg":"EdDSA","kid":"k","crit":["exp"]}"#),
            Err(Error::CriticalHeader)
        ));
        assert!(matches!(
            parse_header_stage(br#"{"alg":"EdDSA","jku":"https://evil"}"#),
            Err(Error::UnsupportedHeader)
        ));
        assert!(parse_header_stage(br#"{"alg":"EdDSA","typ":"JWE"}"#).is_err());
        assert!(parse_header_stage(br#"{"alg":1}"#).is_err());
        assert!(parse_header_stage(br#"{"alg":"EdDSA","kid":5}"#).is_err());
        assert!(parse_header_stage(br#"[]"#).is_err());
    }
}
