//! The `Caller` extractor: a verified identity for every authenticated
//! route, or a 401 (the axum counterpart of FastAPI's
//! `Depends(get_current_user)`).
//!
//! # Security
//! - The only credential accepted is `Authorization: Bearer <JWT>`, verified
//!   by [`weir_auth::ApiVerifier`] (key by `kid`, algorithm bound to the key,
//!   `exp`/`iss`/`aud`/`sub` required, revocation checked on every request,
//!   cached or not).
//! - Every success and every failure appends one audit event
//!   (`authenticate`), with the client address and the failure reason, never
//!   the token. If the event cannot be written, the request is refused (503).
//! - A client with too many failures in a minute gets 429 without its token
//!   even being looked at, which bounds the cost of guessing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use weir_audit::{Action as AuditAction, Decision};
use weir_auth::Identity;

use crate::error::ApiError;
use crate::roles::{self, Permission};
use crate::state::AppState;

/// Failed authentications allowed per client per minute.
pub const MAX_FAILURES_PER_MINUTE: u32 = 20;

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who, with which roles.
    pub identity: Identity,
    /// The client's address.
    pub client: IpAddr,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        if state.failures_of(client) >= MAX_FAILURES_PER_MINUTE {
            record_failure(state, client, "rate_limited").await?;
            return Err(ApiError::TooManyFailures);
        }
        let verified = match bearer(parts) {
            None => Err("missing_bearer"),
            // An unknown `kid` may reload the keys (single-flight, rate
            // limited) and verify once more.
            Some(token) => state.keys().verify(token).await.map_err(|e| e.reason()),
        };
        match verified {
            Ok(identity) => {
                let event = state
                    .audit()
                    .event(&identity.sub, AuditAction::Authenticate, Decision::Allow)
                    .with_reason(format!("api from {client}"));
                let event = match &identity.jti {
                    Some(jti) => event.with_token(state.audit().token(jti)),
                    None => event,
                };
                state.record(event).await?;
                Ok(Self { identity, client })
            }
            Err(reason) => {
                state.count_failure(client);
                record_failure(state, client, reason).await?;
                Err(ApiError::Unauthenticated)
            }
        }
    }
}

/// The token of `Authorization: Bearer <token>`; `None` if the header is
/// missing, repeated, not UTF-8 or another scheme.
fn bearer(parts: &Parts) -> Option<&str> {
    let mut values = parts.headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token.trim())
}

async fn record_failure(state: &AppState, client: IpAddr, reason: &str) -> Result<(), ApiError> {
    let event = state
        .audit()
        .event("anonymous", AuditAction::Authenticate, Decision::Deny)
        .with_reason(format!("api from {client}: {reason}"));
    state.record(event).await
}

impl Caller {
    /// Requires `permission`; a denial is audited (`authorize`) and is a 403.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`], or [`ApiError::AuditUnavailable`] if the
    /// denial cannot be recorded.
    pub async fn require(&self, state: &AppState, permission: Permission) -> Result<(), ApiError> {
        if roles::allows(&self.identity.roles, permission) {
            return Ok(());
        }
        self.deny(state, permission.as_str()).await
    }

    /// Records a denial of `what` and returns 403.
    ///
    /// # Errors
    /// Always: [`ApiError::Forbidden`] (or [`ApiError::AuditUnavailable`]).
    pub async fn deny(&self, state: &AppState, what: &str) -> Result<(), ApiError> {
        let roles: Vec<String> = self
            .identity
            .roles
            .iter()
            .map(ToString::to_string)
            .collect();
        let event = state
            .audit()
            .event(&self.identity.sub, AuditAction::Authorize, Decision::Deny)
            .with_reason(format!(
                "api from {}: {what} needs another role (has [{}])",
                self.client,
                roles.join(", ")
            ));
        state.record(event).await?;
        Err(ApiError::Forbidden)
    }
}
