//! Pools: the configured pools with their load, and one prompt on a pool member.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use crate::{
    auth::{Caller, Scope},
    error::ApiError,
    routes::turns::{sse, turn_json, wants_sse, Prompt},
    state::{check_prompt, parse, AppState},
};

/// Every pool with its size, busy members and queued requests.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let mut pools = Vec::with_capacity(state.pools.len());
    for (name, pool) in &state.pools {
        let stats = pool.stats().await?;
        pools.push(json!({
            "name": name,
            "size": stats.size,
            "busy": stats.busy,
            "queued": stats.queued,
            "served": stats.served,
            "rejected": stats.rejected,
        }));
    }
    Ok(Json(json!({ "pools": pools })))
}

/// One prompt on a member of the pool: the same replies as a session's messages. The
/// member is busy until the turn ends (or the client goes away); while every member is
/// busy the request waits in the pool's queue, and a full queue or a wait longer than
/// the queue timeout is a 429 `queue_full` with `Retry-After`.
pub(crate) async fn send_message(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    state.accepting()?;
    let pool = state
        .pools
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no pool named `{name}`")))?;
    let req: Prompt = parse(&body)?;
    check_prompt(&req.prompt)?;
    let stream = pool.stream(req.prompt).await?;
    if wants_sse(&headers) {
        return Ok(sse(stream));
    }
    let outcome = stream.collect().await;
    Ok(turn_json(outcome, None, 0.0).into_response())
}
