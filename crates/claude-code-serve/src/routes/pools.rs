//! Pools: the configured pools with their load, and one prompt on a pool member.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{Caller, Scope},
    body::{ErrorBody, TurnReply},
    error::ApiError,
    routes::turns::{admit_prompt, run, wants_sse, CostSource, Prompt, Turn},
    state::{AppState, Body},
};

/// `GET /v1/pools`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PoolList {
    /// Every configured pool.
    pools: Vec<PoolObject>,
}

/// A pool and its load.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PoolObject {
    /// Its name.
    name: String,
    /// Members.
    size: usize,
    /// Members running a turn.
    busy: usize,
    /// Requests waiting for a member.
    queued: usize,
    /// Requests served so far.
    served: u64,
    /// Requests refused (queue full or timed out).
    rejected: u64,
}

/// The `{pool}` path parameter.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by the OpenAPI derive only
pub(crate) struct PoolParam {
    /// The pool's name.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pool: String,
}

/// Every pool with its size, busy members and queued requests.
#[utoipa::path(get, path = "/v1/pools", tag = "pools",
    responses(
        (status = 200, description = "The configured pools", body = PoolList),
        (status = 401, description = "No or wrong token", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<PoolList>, ApiError> {
    caller.require(Scope::Read)?;
    let mut pools = Vec::with_capacity(state.pools.len());
    for (name, pool) in &state.pools {
        let stats = pool.stats().await?;
        pools.push(PoolObject {
            name: name.clone(),
            size: stats.size,
            busy: stats.busy,
            queued: stats.queued,
            served: stats.served,
            rejected: stats.rejected,
        });
    }
    Ok(Json(PoolList { pools }))
}

/// One prompt on a member of the pool: the same replies as a session's messages. The
/// member is busy until the turn ends (also when the client goes away first); while
/// every member is busy the request waits in the pool's queue, and a full queue or a
/// wait longer than the queue timeout is a 429 `queue_full` with `Retry-After`.
///
/// In a cluster (`serve --cluster`), a request is a job in the cluster's work queue:
/// any host serving the pool runs it (at most as many at once as the pool has members on
/// that host), a job whose host dies is run by another, and each request is answered
/// exactly once. The queue is then cluster-wide (`max_queue` jobs waiting for a host) and
/// the queue timeout bounds the wait until a host starts the job. The reply names the
/// host that ran it (`x-claude-pool-node`; for SSE, the host that started it) and the
/// delivery attempt (`x-claude-pool-attempt`, 2 or more when redelivered). An SSE
/// request streams the job's events from the host running it; if that host dies after
/// the first event, the stream ends with an `error` event (502 `owner_lost`) and the job
/// is not run again; if it dies before, the job is redelivered and the stream goes on.
#[utoipa::path(post, path = "/v1/pools/{pool}/messages", tag = "turns",
    params(PoolParam), request_body = Prompt,
    responses(
        (status = 200, description = "The turn, as JSON or SSE (see the session messages route)",
            content((TurnReply = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Bad body or empty prompt", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Needs write scope", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
        (status = 402, description = "The pool's budget at the credential proxy is spent: `session_budget_exceeded`", body = ErrorBody),
        (status = 413, description = "Body or prompt too large", body = ErrorBody),
        (status = 429, description = "The pool's queue is full or the wait timed out, or a tenant limit", body = ErrorBody),
        (status = 502, description = "The Messages API refused; in a cluster, `owner_lost`: the host streaming an SSE job died after its first event (sent as an `error` event; the job is not run again)", body = ErrorBody),
        (status = 503, description = "Draining, or admission refused; in a cluster, `cluster_unavailable`: NATS does not answer", body = ErrorBody),
    ))]
pub(crate) async fn send_message(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    state.accepting()?;
    let pool = state
        .pools
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no pool named `{name}`")))?;
    let (prompt, permit) = admit_prompt(&state, &caller, &body).await?;
    let sse = wants_sse(&headers);
    // In a cluster, a request is a job any host serving the pool may take.
    if let Some(cluster) = state.cluster() {
        let cluster = cluster.clone();
        return crate::cluster_pools::submit(
            &state,
            &cluster,
            caller.tenant,
            &name,
            prompt,
            permit,
            sse,
        )
        .await;
    }
    let context = crate::audit::turn_context(&caller.tenant, &format!("pool:{name}"));
    let stream = pool
        .stream(claude_code::UserInput::text(prompt).with_audit_context(context))
        .await?;
    let turn = Turn {
        tenant: caller.tenant,
        kind: "pool",
        target: name,
        cost: CostSource::Result,
        permit,
    };
    Ok(run(state.clone(), stream, turn, sse).await)
}
