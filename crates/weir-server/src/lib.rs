//! weir-server: the HTTP API (`weir serve`).
//!
//! Engineers submit and follow runs, auditors query the audit log and run
//! access reviews, anyone may fetch the stage-token public keys. See
//! [`openapi::ROUTES`] for the routes and who may call them.
//!
//! # Security
//! - Every route except the JWKS and the OpenAPI document needs a bearer
//!   JWT, verified by [`weir_auth::ApiVerifier`] in the [`auth::Caller`]
//!   extractor; every success, failure and denial is an audit event, and a
//!   request whose event cannot be written is refused.
//! - Keys change without a restart ([`refresh::KeyRefresh`]): weir's rotated
//!   API keys and an identity provider's JWKS (file or URL) are reloaded
//!   periodically and on an unknown `kid`, one reload at a time and at most
//!   once per 30 s for unknown `kid`s; a failed reload keeps the last good
//!   keys.
//! - Roles are checked in one table ([`roles`]); an engineer may only start
//!   pipelines whose principal its policy entry lists in `run_as`.
//! - Limits: request bodies (1 MiB), request headers (16 KiB), a 30 s
//!   deadline to produce a response, and 20 failed authentications per
//!   client per minute.

pub mod api;
pub mod auth;
pub mod error;
mod failures;
pub mod openapi;
pub mod refresh;
pub mod revocation;
pub mod roles;
pub mod runs;
pub mod state;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use state::AppState;

/// `iss` of API tokens weir issues.
pub const API_ISSUER: &str = "weir";
/// `aud` of API tokens weir issues (distinct from stage tokens').
pub const API_AUDIENCE: &str = "weir-api";

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest total size of request headers.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Deadline to produce a response (streams may then run longer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The application: every route, with the limits applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(api::jwks))
        .route(
            "/api/v1/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route("/api/v1/whoami", get(api::whoami))
        .route("/api/v1/pipelines", get(api::pipelines))
        .route("/api/v1/runs", post(api::submit_run).get(api::list_runs))
        .route("/api/v1/runs/{run_id}", get(api::get_run))
        .route("/api/v1/runs/{run_id}/events", get(api::run_events))
        .route("/api/v1/runs/{run_id}/cancel", post(api::cancel_run))
        .route("/api/v1/audit", get(api::audit_query))
        .route("/api/v1/audit/export", get(api::audit_export))
        .route("/api/v1/access-review", get(api::access_review))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(limit_headers))
        .with_state(state)
}

/// Refuses requests whose headers are larger than [`MAX_HEADER_BYTES`].
async fn limit_headers(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.into_response();
    }
    next.run(request).await
}

/// Serves `state` on `listener` until `shutdown` completes.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Responses go out as soon as they are written, not held back by
    // Nagle's algorithm until the previous segment is acknowledged.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
