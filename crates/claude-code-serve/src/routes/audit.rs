//! `GET /v1/audit`: the caller's tenant's newest API calls (admin scope).

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
};

/// `GET /v1/audit`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Most rows (default 100, at most 1000).
    limit: Option<u32>,
}

/// The caller's tenant's newest API calls.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "Newest first", body = AuditEvents),
        (status = 400, description = "Bad query", body = ErrorBody),
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
    // Calls still queued for the writer are part of the answer.
    state.audit.flush().await;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let tenant = caller.tenant.clone();
    let rows = state
        .store
        .run(move |s| s.audit(Some(&tenant), limit))
        .await
        .map_err(store_error)?;
    let events = rows
        .into_iter()
        .map(|a| AuditEvent {
            at: a.at,
            request_id: a.request_id,
            tenant: a.tenant,
            token_id: a.token_id,
            method: a.method,
            route: a.route,
            status: a.status,
            millis: a.millis,
        })
        .collect();
    Ok(Json(AuditEvents { events }))
}
