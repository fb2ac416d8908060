//! The handlers behind `/api/v1/...`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use weir_audit::{Cursor, Page};
use weir_engine::audit_query::FilterSpec;
use weir_policy::PrincipalKind;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::roles::Permission;
use crate::runs::StartError;
use crate::state::AppState;

/// Longest pipeline name accepted in a path or body.
const MAX_NAME: usize = 128;
/// How long one poll of a run's event stream waits for news.
const EVENT_POLL: Duration = Duration::from_secs(15);

/// `GET /api/v1/whoami`.
pub async fn whoami(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, Permission::WhoAmI).await?;
    let id = &caller.identity;
    Ok(Json(json!({
        "sub": id.sub,
        "roles": id.roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "issuer": id.issuer,
        "expires_at": id.exp,
    })))
}

/// `GET /api/v1/pipelines`: the pipelines this server runs by name.
pub async fn pipelines(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, Permission::ReadRuns).await?;
    let mut names = Vec::new();
    let entries = std::fs::read_dir(state.pipelines_dir()).map_err(|_| ApiError::Internal)?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(Json(json!({ "pipelines": names })))
}

/// The body of `POST /api/v1/runs`: a pipeline by name, or a whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRun {
    /// A pipeline in the server's pipelines folder, without `.yaml`.
    pub pipeline: Option<String>,
    /// A pipeline file's text, validated as strictly as on the CLI.
    pub yaml: Option<String>,
}

/// `POST /api/v1/runs`.
pub async fn submit_run(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<SubmitRun>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(&state, Permission::SubmitRun).await?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (label, text) = match (body.pipeline, body.yaml) {
        (Some(name), None) => {
            let path = pipeline_path(&state, &name)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|_| ApiError::NotFound(format!("no pipeline `{name}`")))?;
            (format!("{name}.yaml"), text)
        }
        (None, Some(yaml)) => ("uploaded.yaml".to_owned(), yaml),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of `pipeline` (a name) or `yaml` (a pipeline file)".into(),
            ));
        }
    };
    let loaded = weir_spec::load_str(&label, &text, state.pipelines_dir()).map_err(|e| {
        ApiError::BadRequest(match e {
            weir_spec::Error::Invalid {
                source_text,
                diagnostics,
                ..
            } => diagnostics
                .iter()
                .map(|d| d.render(&source_text))
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.to_string(),
        })
    })?;
    let pipeline = loaded.pipeline;
    may_run_as(&state, &caller, &pipeline.principal).await?;
    let run_id = state
        .runs()
        .start(
            Arc::new(pipeline),
            state.security().clone(),
            state.engine(),
            &caller.identity.sub,
        )
        .await
        .map_err(|e| match e {
            StartError::PlanDenied(missing) => ApiError::PlanDenied(missing),
            StartError::Failed(message) => ApiError::BadRequest(message),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/v1/runs/{run_id}"))],
        Json(json!({ "run_id": run_id })),
    )
        .into_response())
}

/// Admins run anything; an engineer only pipelines whose principal its
/// policy entry lists in `run_as`.
async fn may_run_as(state: &AppState, caller: &Caller, principal: &str) -> Result<(), ApiError> {
    if caller.identity.roles.contains(&weir_auth::Role::Admin) {
        return Ok(());
    }
    let allowed = state
        .policies()
        .principal(&caller.identity.sub)
        .is_some_and(|p| p.kind == PrincipalKind::User && p.run_as.iter().any(|s| s == principal));
    if allowed {
        Ok(())
    } else {
        caller
            .deny(state, &format!("running pipelines as `{principal}`"))
            .await
    }
}

fn pipeline_path(state: &AppState, name: &str) -> Result<std::path::PathBuf, ApiError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Err(ApiError::BadRequest(
            "a pipeline name is lower-case letters, digits, `_` and `-`".into(),
        ));
    }
    Ok(state.pipelines_dir().join(format!("{name}.yaml")))
}

/// `GET /api/v1/runs`: run records, newest first, and runs in progress.
pub async fn list_runs(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, Permission::ReadRuns).await?;
    let records = state.run_store().list(None).await.map_err(|e| {
        tracing::error!(error = %e, "listing run records failed");
        ApiError::Internal
    })?;
    Ok(Json(json!({ "runs": records })))
}

/// `GET /api/v1/runs/{id}`.
pub async fn get_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, Permission::ReadRuns).await?;
    check_run_id(&run_id)?;
    let stored = state.run_store().load(&run_id).await.map_err(|e| {
        tracing::error!(error = %e, "loading a run record failed");
        ApiError::Internal
    })?;
    if let Some(record) = stored {
        return Ok(Json(
            serde_json::to_value(record).map_err(|_| ApiError::Internal)?,
        ));
    }
    match state.runs().get(&run_id) {
        Some(run) => Ok(Json(json!({
            "run_id": run_id,
            "pipeline": run.pipeline,
            "status": "running",
            "submitted_by": run.submitted_by,
            "events": run.log.since(0).0,
        }))),
        None => Err(ApiError::NotFound(format!("no run `{run_id}`"))),
    }
}

fn check_run_id(run_id: &str) -> Result<(), ApiError> {
    if run_id.len() == 26 && run_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "a run id is a 26-character ULID".into(),
        ))
    }
}

/// `GET /api/v1/runs/{id}/events`: the run's events as JSON lines, then
/// new ones as they happen, until the run ends.
pub async fn run_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(&state, Permission::ReadRuns).await?;
    check_run_id(&run_id)?;
    let run = state.runs().get(&run_id).ok_or_else(|| {
        ApiError::NotFound(format!("run `{run_id}` was not started by this server"))
    })?;
    let stream =
        futures::stream::unfold((run, 0usize, false), |(run, next, finished)| async move {
            if finished {
                return None;
            }
            loop {
                let (events, done) = run.log.since(next);
                if !events.is_empty() {
                    let count = events.len();
                    let mut chunk = String::new();
                    for e in events {
                        chunk.push_str(&e.to_string());
                        chunk.push('\n');
                    }
                    return Some((
                        Ok::<_, std::convert::Infallible>(chunk),
                        (run, next + count, false),
                    ));
                }
                if done {
                    return None;
                }
                run.log.changed(next, EVENT_POLL).await;
            }
        });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /api/v1/runs/{id}/cancel`.
pub async fn cancel_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(&state, Permission::CancelRun).await?;
    check_run_id(&run_id)?;
    let run = state.runs().get(&run_id).ok_or_else(|| {
        ApiError::NotFound(format!("run `{run_id}` was not started by this server"))
    })?;
    run.cancel.cancel();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "cancelling": true})),
    )
        .into_response())
}

/// Query parameters of `GET /api/v1/audit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    actor: Option<String>,
    run: Option<String>,
    stage: Option<String>,
    store: Option<String>,
    path_prefix: Option<String>,
    action: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Page size, 1 to 10,000 (default 100).
    limit: Option<u32>,
    /// Continue after this sequence number (the `next_after_seq` of the
    /// last page).
    after_seq: Option<u64>,
    /// ... of this chain (the `next_after_chain` of the last page; default:
    /// this server's own chain).
    after_chain: Option<String>,
}

impl AuditParams {
    fn filter(&self) -> Result<weir_audit::Filter, ApiError> {
        FilterSpec {
            actor: self.actor.clone(),
            run: self.run.clone(),
            stage: self.stage.clone(),
            store: self.store.clone(),
            path_prefix: self.path_prefix.clone(),
            action: self.action.clone(),
            decision: self.decision.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
        .to_filter()
        .map_err(ApiError::BadRequest)
    }
}

/// `GET /api/v1/audit`: one page of events, and the cursor of the next.
pub async fn audit_query(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, Permission::ReadAudit).await?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = params.filter()?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > weir_audit::MAX_PAGE_LIMIT {
        return Err(ApiError::BadRequest("`limit` is 1 to 10000".into()));
    }
    let sink = state.audit().sink();
    let chain = match &params.after_chain {
        Some(c) => weir_audit::ChainId::parse(c)
            .map_err(|_| ApiError::BadRequest("`after_chain` is not a chain id".into()))?,
        None => sink.chain().clone(),
    };
    let page = Page {
        after: params.after_seq.map(|seq| Cursor { chain, seq }),
        limit,
    };
    let events = sink
        .query(&filter, page)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let last = events.last().filter(|_| events.len() == limit as usize);
    let (next, next_chain) = (last.map(|e| e.seq), last.map(|e| e.chain.clone()));
    Ok(Json(json!({
        "events": events,
        "next_after_seq": next,
        "next_after_chain": next_chain,
    })))
}

/// `GET /api/v1/audit/export`: every matching event as JSON lines.
pub async fn audit_export(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&state, Permission::ReadAudit).await?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let events = weir_engine::review::all_events(state.audit(), &params.filter()?)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut body = String::new();
    for e in &events {
        body.push_str(&serde_json::to_string(e).map_err(|_| ApiError::Internal)?);
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Query parameters of `GET /api/v1/access-review`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewParams {
    /// The window, e.g. `30d` (default).
    since: Option<String>,
}

/// `GET /api/v1/access-review`: recorded like any review.
pub async fn access_review(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ReviewParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, Permission::AccessReview).await?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let since = params.since.unwrap_or_else(|| "30d".into());
    if weir_spec::parse_duration(&since).is_none() {
        return Err(ApiError::BadRequest(format!(
            "`since` `{since}` is not a duration such as `30d`"
        )));
    }
    let (review, summary) = weir_engine::review::review(
        state.audit(),
        state.policies(),
        &since,
        &caller.identity.sub,
    )
    .await
    .map_err(|_| ApiError::AuditUnavailable)?;
    Ok(Json(json!({ "summary": summary, "review": review })))
}

/// `GET /.well-known/jwks.json`: the stage-token public keys (no auth).
pub async fn jwks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let doc = state.stage_jwks()?;
    Ok(Json(Value::clone(&doc)))
}
