//! `GET /v1/audit`: the caller's tenant's audit trail, newest first (admin scope): its
//! API calls and its sessions' events, filtered by kind, session and time.

use std::sync::Arc;

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    Json,
};
use serde::Deserialize;

use crate::{
    auth::{Caller, Scope},
    body::{AuditEvent, AuditEvents, ErrorBody},
    error::ApiError,
    state::{store_error, AppState},
    store::AuditFilter,
};

/// Every row kind `kind` may name.
const KINDS: [&str; 8] = [
    "http",
    "tool_use",
    "tool_result",
    "permission_decision",
    "hook_decision",
    "control_request",
    "mcp_tool_call",
    "dropped",
];

/// `GET /v1/audit`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Only rows of this kind: `http`, `tool_use`, `tool_result`, `permission_decision`,
    /// `hook_decision`, `control_request`, `mcp_tool_call` or `dropped`.
    kind: Option<String>,
    /// Only events of this session: a session's name, `pool:<name>` or `query`.
    session: Option<String>,
    /// Only rows at or after this time, in seconds since the epoch.
    since: Option<i64>,
    /// Most rows, 1-1000 (default 100).
    limit: Option<u32>,
}

/// The caller's tenant's audit trail: API calls and session events, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "Newest first", body = AuditEvents),
        (status = 400, description = "Bad query (unknown parameter, kind, session, since or limit)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Needs admin scope", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditEvents>, ApiError> {
    caller.require(Scope::Admin)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = filter(q, &caller.tenant)?;
    // Rows still queued for the writer are part of the answer.
    state.audit.flush().await;
    let rows = state
        .store
        .run(move |s| s.audit(&filter))
        .await
        .map_err(store_error)?;
    let events = rows
        .into_iter()
        .map(|a| AuditEvent {
            at: a.at,
            kind: a.kind,
            tenant: a.tenant,
            session: a.session,
            request_id: a.request_id,
            token_id: a.token_id,
            method: a.method,
            route: a.route,
            status: a.status,
            millis: a.millis,
            detail: a.detail.and_then(|d| serde_json::from_str(&d).ok()),
        })
        .collect();
    Ok(Json(AuditEvents { events }))
}

/// The checked query as a store filter for `tenant`'s rows.
fn filter(q: AuditQuery, tenant: &str) -> Result<AuditFilter, ApiError> {
    if let Some(kind) = &q.kind {
        if !KINDS.contains(&kind.as_str()) {
            return Err(ApiError::bad_request(format!(
                "kind must be one of {}; got {kind:?}",
                KINDS.join(", ")
            )));
        }
    }
    if let Some(session) = &q.session {
        let name = session.strip_prefix("pool:").unwrap_or(session.as_str());
        if !crate::state::is_valid_name(name) {
            return Err(ApiError::bad_request(format!(
                "session must be a session name (1-64 characters of A-Z, a-z, 0-9, _ or -), \
                 pool:<name> or query; got {session:?}"
            )));
        }
    }
    if q.since.is_some_and(|s| s < 0) {
        return Err(ApiError::bad_request(
            "since must be seconds since the epoch, 0 or more",
        ));
    }
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit must be 1-1000; got {n}"
            )))
        }
    };
    Ok(AuditFilter {
        tenant: Some(tenant.to_string()),
        kind: q.kind,
        session: q.session,
        since: q.since,
        limit,
    })
}
