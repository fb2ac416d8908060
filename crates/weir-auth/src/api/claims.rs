//! Turning a verified payload into an [`Identity`], for each kind of token.
//!
//! Only ever called on payload bytes returned by
//! [`Unverified::verify`](crate::jws::Unverified::verify), that is, after
//! the signature has been checked and repeated JSON keys refused.
//!
//! # Invariants
//!
//! - **weir tokens** carry exactly `iss`, `aud`, `sub`, `roles`, `iat`,
//!   `nbf`, `exp`, `jti` and `typ: "weir/api"`, each with its exact JSON
//!   type (times are integers, `aud` a string, roles known names); any other
//!   claim is refused. `iat <= nbf`.
//! - **external tokens** need `sub`, `exp`, `iss` and `aud` (a string or an
//!   array of strings); `iat`, `nbf`, `jti` and `roles` are read if present
//!   and must then be well typed; unknown role names are dropped; other
//!   claims are ignored. A `typ` claim naming a weir token kind is refused,
//!   so a stage token never passes as an external token, even if an
//!   operator lists weir's own stage keys as an identity provider.
//! - `sub` and `jti` are 1 to 256 bytes without control characters, so
//!   they are safe to write to logs and audit records.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::api::error::ApiAuthError;
use crate::api::role::{Identity, Role};
use crate::times::Validity;
use crate::token::name_ok;

/// The claims a weir API token must carry, and the only ones it may.
const WEIR_CLAIMS: [&str; 9] = [
    "iss", "aud", "sub", "roles", "iat", "nbf", "exp", "jti", "typ",
];
/// The `typ` claim of a weir API token.
const WEIR_API_TYP: &str = "weir/api";
/// Most entries read from an external token's `aud` or `roles` array.
const MAX_ARRAY: usize = 64;

/// A verified caller and the times its token is valid for.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) identity: Identity,
    pub(crate) validity: Validity,
}

/// Whom the claims must name: the issuer and audience bound to the key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) audience: &'a str,
}

type Claims = Map<String, Value>;

/// Checks the claims of a token signed by one of weir's own API keys.
pub(crate) fn weir(payload: &[u8], expected: Expected<'_>) -> Result<Checked, ApiAuthError> {
    let claims = object(payload)?;
    match string(&claims, "typ")? {
        None => return Err(ApiAuthError::MissingClaim("typ")),
        Some(WEIR_API_TYP) => {}
        Some(_) => return Err(ApiAuthError::WrongType),
    }
    if claims.keys().any(|k| !WEIR_CLAIMS.contains(&k.as_str())) {
        return Err(ApiAuthError::MalformedClaims);
    }
    let iss = required(string(&claims, "iss")?, "iss")?;
    let aud = required(string(&claims, "aud")?, "aud")?;
    let sub = required(string(&claims, "sub")?, "sub")?;
    let exp = required(integer(&claims, "exp")?, "exp")?;
    let iat = required(integer(&claims, "iat")?, "iat")?;
    let nbf = required(integer(&claims, "nbf")?, "nbf")?;
    let jti = required(string(&claims, "jti")?, "jti")?;
    let roles = weir_roles(required(claims.get("roles"), "roles")?)?;
    check_issuer_audience(iss, aud == expected.audience, expected)?;
    if iat > nbf {
        return Err(ApiAuthError::InconsistentTimes);
    }
    Ok(Checked {
        identity: identity(sub, roles, Some(jti), exp, iss, false)?,
        validity: Validity {
            iat: Some(iat),
            nbf: Some(nbf),
            exp,
        },
    })
}

/// Checks the claims of a token signed by an external identity provider's key.
pub(crate) fn external(payload: &[u8], expected: Expected<'_>) -> Result<Checked, ApiAuthError> {
    let claims = object(payload)?;
    if let Some(typ) = claims.get("typ").and_then(Value::as_str)
        && typ.starts_with("weir/")
    {
        return Err(ApiAuthError::WrongType);
    }
    let sub = required(string(&claims, "sub")?, "sub")?;
    let exp = required(integer(&claims, "exp")?, "exp")?;
    let iss = required(string(&claims, "iss")?, "iss")?;
    let aud = required(claims.get("aud").filter(|v| !v.is_null()), "aud")?;
    let iat = integer(&claims, "iat")?;
    let nbf = integer(&claims, "nbf")?;
    let jti = string(&claims, "jti")?;
    let roles = match claims.get("roles") {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(v) => external_roles(v)?,
    };
    check_issuer_audience(
        iss,
        external_audience_matches(aud, expected.audience)?,
        expected,
    )?;
    Ok(Checked {
        identity: identity(sub, roles, jti, exp, iss, true)?,
        validity: Validity { iat, nbf, exp },
    })
}

fn object(payload: &[u8]) -> Result<Claims, ApiAuthError> {
    serde_json::from_slice(payload).map_err(|_| ApiAuthError::MalformedClaims)
}

fn required<T>(value: Option<T>, name: &'static str) -> Result<T, ApiAuthError> {
    value.ok_or(ApiAuthError::MissingClaim(name))
}

/// A string claim: `None` if absent or `null`, refused if another type.
fn string<'a>(claims: &'a Claims, name: &str) -> Result<Option<&'a str>, ApiAuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiAuthError::MalformedClaims),
    }
}

/// An integer claim (NumericDate): `None` if absent or `null`, refused if
/// another type, a fraction or out of `i64` range.
fn integer(claims: &Claims, name: &str) -> Result<Option<i64>, ApiAuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(ApiAuthError::MalformedClaims),
        Some(_) => Err(ApiAuthError::MalformedClaims),
    }
}

/// An external `aud`: a string, or an array of at most [`MAX_ARRAY`] strings.
fn external_audience_matches(aud: &Value, expected: &str) -> Result<bool, ApiAuthError> {
    match aud {
        Value::String(s) => Ok(s == expected),
        Value::Array(list) if list.len() <= MAX_ARRAY => {
            let mut found = false;
            for a in list {
                found |= a.as_str().ok_or(ApiAuthError::MalformedClaims)? == expected;
            }
            Ok(found)
        }
        _ => Err(ApiAuthError::MalformedClaims),
    }
}

fn check_issuer_audience(
    iss: &str,
    audience_ok: bool,
    expected: Expected<'_>,
) -> Result<(), ApiAuthError> {
    if iss != expected.issuer {
        return Err(ApiAuthError::WrongIssuer);
    }
    if !audience_ok {
        return Err(ApiAuthError::WrongAudience);
    }
    Ok(())
}

/// weir roles: an array of known role names.
fn weir_roles(value: &Value) -> Result<BTreeSet<Role>, ApiAuthError> {
    let list = value.as_array().ok_or(ApiAuthError::MalformedClaims)?;
    list.iter()
        .map(|r| {
            r.as_str()
                .and_then(|s| s.parse::<Role>().ok())
                .ok_or(ApiAuthError::MalformedClaims)
        })
        .collect()
}

/// External roles: an array of at most [`MAX_ARRAY`] strings; names that
/// are not weir roles are dropped.
fn external_roles(value: &Value) -> Result<BTreeSet<Role>, ApiAuthError> {
    let list = value
        .as_array()
        .filter(|l| l.len() <= MAX_ARRAY)
        .ok_or(ApiAuthError::MalformedClaims)?;
    let mut roles = BTreeSet::new();
    for r in list {
        let name = r.as_str().ok_or(ApiAuthError::MalformedClaims)?;
        roles.extend(name.parse::<Role>().ok());
    }
    Ok(roles)
}

fn identity(
    sub: &str,
    roles: BTreeSet<Role>,
    jti: Option<&str>,
    exp: i64,
    iss: &str,
    external: bool,
) -> Result<Identity, ApiAuthError> {
    if !name_ok(sub) || jti.is_some_and(|j| !name_ok(j)) {
        return Err(ApiAuthError::MalformedClaims);
    }
    Ok(Identity {
        sub: sub.to_owned(),
        roles,
        jti: jti.map(str::to_owned),
        exp,
        issuer: iss.to_owned(),
        external,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXPECTED: Expected<'static> = Expected {
        issuer: "weir",
        audience: "weir-api",
    };

    fn weir_claims() -> Value {
        json!({"iss": "weir", "aud": "weir-api", "sub": "alice", "roles": ["admin"],
               "iat": 10, "nbf": 10, "exp": 20, "jti": "j", "typ": "weir/api"})
    }

    fn check_weir(v: &Value) -> Result<Checked, ApiAuthError> {
        weir(v.to_string().as_bytes(), EXPECTED)
    }

    fn check_external(v: &Value) -> Result<Checked, ApiAuthError> {
        external(v.to_string().as_bytes(), EXPECTED)
    }

    #[test]
    fn weir_claims_strict() {
        let ok = check_weir(&weir_claims()).unwrap();
        assert_eq!(ok.identity.roles, [Role::Admin].into());
        assert!(!ok.identity.external);
        for name in WEIR_CLAIMS {
            let mut c = weir_claims();
            c.as_object_mut().unwrap().remove(name);
            assert_eq!(
                check_weir(&c).unwrap_err(),
                ApiAuthError::MissingClaim(name)
            );
        }
        for (name, value) in [
            ("exp", json!("20")),
            ("exp", json!(20.5)),
            ("aud", json!(["weir-api"])),
            ("roles", json!(["root"])),
            ("roles", json!("admin")),
            ("sub", json!("")),
            ("sub", json!("a\u{1b}[31m")),
            ("extra", json!(1)),
        ] {
            let mut c = weir_claims();
            c[name] = value;
            assert_eq!(
                check_weir(&c).unwrap_err(),
                ApiAuthError::MalformedClaims,
                "{name}"
            );
        }
        let mut c = weir_claims();
        c["typ"] = json!("weir/stage");
        assert_eq!(check_weir(&c).unwrap_err(), ApiAuthError::WrongType);
        let mut c = weir_claims();
        c["iat"] = json!(11);
        assert_eq!(check_weir(&c).unwrap_err(), ApiAuthError::InconsistentTimes);
    }

    #[test]
    fn external_claims_lenient_where_safe() {
        let c = json!({"iss": "weir", "aud": ["x", "weir-api"], "sub": "bob", "exp": 20,
                       "roles": ["auditor", "superuser", "Admin"], "scope": "openid", "typ": "Bearer"});
        let ok = check_external(&c).unwrap();
        assert_eq!(ok.identity.roles, [Role::Auditor].into());
        assert!(ok.identity.external);
        assert_eq!(ok.identity.jti, None);
        assert!(ok.validity.iat.is_none());
        for name in ["sub", "exp", "iss", "aud"] {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove(name);
            assert_eq!(
                check_external(&c).unwrap_err(),
                ApiAuthError::MissingClaim(name)
            );
        }
        for (name, value, err) in [
            ("aud", json!(["x"]), ApiAuthError::WrongAudience),
            ("aud", json!([1]), ApiAuthError::MalformedClaims),
            ("iss", json!("other"), ApiAuthError::WrongIssuer),
            ("roles", json!("admin"), ApiAuthError::MalformedClaims),
            ("iat", json!("10"), ApiAuthError::MalformedClaims),
            ("typ", json!("weir/stage"), ApiAuthError::WrongType),
            ("typ", json!("weir/api"), ApiAuthError::WrongType),
        ] {
            let mut c = c.clone();
            c[name] = value;
            assert_eq!(check_external(&c).unwrap_err(), err, "{name}");
        }
    }
}
