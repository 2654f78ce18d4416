//! `GET /v1/audit`: the caller's tenant's newest API calls (admin scope).

use std::sync::Arc;

use axum::{
    extract::{Query, State},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    auth::{Caller, Scope},
    error::ApiError,
    state::{store_error, AppState},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Most rows (default 100, at most 1000).
    limit: Option<u32>,
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Admin)?;
    // Calls still queued for the writer are part of the answer.
    state.audit.flush().await;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let tenant = caller.tenant.clone();
    let rows = state
        .store
        .run(move |s| s.audit(Some(&tenant), limit))
        .await
        .map_err(store_error)?;
    let events: Vec<Value> = rows
        .into_iter()
        .map(|a| {
            json!({
                "at": a.at,
                "request_id": a.request_id,
                "tenant": a.tenant,
                "token_id": a.token_id,
                "method": a.method,
                "route": a.route,
                "status": a.status,
                "millis": a.millis,
            })
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}
