//! What the API answers when something is refused or fails.
//!
//! # Security
//! Authentication failures all look alike to the caller: 401, the header
//! `WWW-Authenticate: Bearer error="invalid_token"`, and a body that says
//! nothing about why (the reason goes to the audit log). No handler error
//! ever echoes a token.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API failure, mapped to one status code each.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, malformed, expired, revoked... credentials (401).
    #[error("invalid token")]
    Unauthenticated,
    /// Authenticated, but the roles do not allow this (403).
    #[error("forbidden")]
    Forbidden,
    /// Too many failed authentications from this client (429).
    #[error("too many failed authentications")]
    TooManyFailures,
    /// The request is wrong; the message says what and where (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such run, pipeline... (404).
    #[error("{0}")]
    NotFound(String),
    /// The pipeline needs grants its principal does not have (422); the
    /// grants to add, as YAML.
    #[error("plan denied")]
    PlanDenied(Vec<String>),
    /// The audit log could not record the decision, so the request is
    /// refused (503, fail closed).
    #[error("the audit log is unavailable")]
    AuditUnavailable,
    /// Anything else (500); details are logged, not returned.
    #[error("internal error")]
    Internal,
}

/// The challenge sent with every 401 (RFC 6750).
pub const CHALLENGE: &str = "Bearer error=\"invalid_token\"";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"})),
            Self::Forbidden => (StatusCode::FORBIDDEN, json!({"error": "forbidden"})),
            Self::TooManyFailures => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "too_many_failed_authentications"}),
            ),
            Self::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "message": m}),
            ),
            Self::NotFound(m) => (
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "message": m}),
            ),
            Self::PlanDenied(missing) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "plan_denied", "missing_grants": missing}),
            ),
            Self::AuditUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "audit_unavailable"}),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "internal"}),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        match self {
            Self::Unauthenticated => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(CHALLENGE),
                );
            }
            Self::TooManyFailures => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            _ => {}
        }
        response
    }
}
