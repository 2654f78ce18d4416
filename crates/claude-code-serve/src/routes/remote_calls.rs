//! Routing a session's other calls through the cluster: `GET` and `DELETE
//! /v1/sessions/{name}`, `POST /v1/sessions/{name}/interrupt` and `GET
//! /v1/sessions/{name}/transcript` on a host that does not have the session are answered
//! by the session's owner, and `GET /v1/sessions` lists the tenant's sessions of every
//! member.
//!
//! While it holds a session's lease, the owner subscribes to
//! `claude.<tenant>.sessions.<name>.call` ([`call_subject`]) beside the turn subject. A
//! host asked for a session it does not have (or whose lease it lost) looks up the lease;
//! when another member holds it, the host sends a [`CallRequest`] there (request-reply):
//! the call ([`Op`]), the tenant and the caller's scope and token id. The requester has
//! authenticated the caller and checked the call's scope; the owner checks the tenant
//! against its subject and its own lease, then runs the very handler a local call runs
//! with that tenant and scope (which checks the scope again), and answers the handler's
//! status and JSON body ([`CallReply`]). The requester answers its client with them, so a
//! routed call looks exactly like a local one. The owner does not apply the tenant's rate
//! limit again; the requester did.
//!
//! Errors of the route itself are the turn route's: 503 `owner_unavailable` when the
//! owner does not answer within [`CALL_WAIT`], 503 `cluster_unavailable` when NATS does
//! not answer the lease lookup.

use std::{
    future::Future,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    auth::{Caller, Scope},
    body::UnreachableSession,
    cluster::{owner_key, Lease},
    error::ApiError,
    metrics::cluster as m,
    routes::{
        remote::{self, NoAnswer},
        sessions, turns,
    },
    state::{session_key, AppState},
};

/// How long a requester waits for the owner's answer to a call.
pub(crate) const CALL_WAIT: Duration = Duration::from_secs(10);

/// Most routed `GET`s in flight at once while listing another member's sessions.
const LIST_CONCURRENCY: usize = 16;

/// Largest body an owner answers a call with (a transcript can be long).
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// The subject an owner serves a session's calls on.
pub(crate) fn call_subject(tenant: &str, name: &str) -> String {
    format!("claude.{tenant}.sessions.{name}.call")
}

/// The key of a session's call-serving task in [`Serving`](super::remote::Serving),
/// stopped with the session's turn-serving task.
pub(crate) fn calls_key(key: &str) -> String {
    format!("{key}/calls")
}

/// A routed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    /// `GET /v1/sessions/{name}`.
    Get,
    /// `DELETE /v1/sessions/{name}`.
    Delete,
    /// `POST /v1/sessions/{name}/interrupt`.
    Interrupt,
    /// `GET /v1/sessions/{name}/transcript`.
    Transcript,
}

impl Op {
    /// The scope the call needs.
    fn scope(self) -> Scope {
        match self {
            Op::Get | Op::Transcript => Scope::Read,
            Op::Delete | Op::Interrupt => Scope::Write,
        }
    }

    /// Its `op` metric label.
    fn label(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Delete => "delete",
            Op::Interrupt => "interrupt",
            Op::Transcript => "transcript",
        }
    }
}

/// What a requester sends the owner.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CallRequest {
    /// The call.
    pub(crate) op: Op,
    /// The caller's tenant (must be the subject's).
    pub(crate) tenant: String,
    /// The caller's scope (`read`, `write`, `admin`), checked again by the handler.
    pub(crate) scope: String,
    /// The caller's token id, for the owner's logs.
    pub(crate) token_id: Option<String>,
}

/// The owner's answer: the handler's status and JSON body (none for a 204).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CallReply {
    /// HTTP status.
    pub(crate) status: u16,
    /// The JSON body, if any.
    #[serde(default)]
    pub(crate) body: Option<Value>,
}

impl IntoResponse for CallReply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_GATEWAY);
        match self.body {
            Some(body) => (status, Json(body)).into_response(),
            None => status.into_response(),
        }
    }
}

fn encode<T: Serialize>(value: &T) -> bytes::Bytes {
    // The wire types serialise infallibly (string keys only).
    serde_json::to_vec(value).map_or_else(|_| bytes::Bytes::new(), bytes::Bytes::from)
}

/// Where a call on a session goes.
enum Route {
    /// Answered from this host's state (also: no such session anywhere, a 404).
    Local,
    /// To the member holding the session's lease.
    Remote(Lease),
}

/// Decides where a call on the tenant's session `name` goes: local unless the host is
/// clustered, does not have the session (or lost its lease) and another member holds
/// its lease. An orphan (its lease and its owner's heartbeat expired) is taken over
/// here first, as a turn for it would be, and then answered locally.
///
/// Fails closed while this host's own lease of the session is unconfirmed (503
/// `lease_unconfirmed`: it could not renew it in time, another member may own the
/// session), and a `DELETE` while NATS is down (503 `cluster_unavailable`: the session's
/// lease and checkpoint could not be released, and a later failover would bring it back).
async fn route(state: &Arc<AppState>, tenant: &str, name: &str, op: Op) -> Result<Route, ApiError> {
    let Some(cluster) = state.cluster() else {
        return Ok(Route::Local);
    };
    if op == Op::Delete {
        cluster.link().check().map_err(|e| ApiError::cluster(&e))?;
    }
    let key = session_key(tenant, name);
    let here = state
        .sup
        .list_sessions()
        .await?
        .iter()
        .any(|c| c.name == key);
    if here && !cluster.leases().lost(&owner_key(tenant, name)) {
        if super::remote::unconfirmed(state, tenant, name) {
            return Err(super::remote::lease_unconfirmed(name));
        }
        return Ok(Route::Local);
    }
    match cluster.leases().owner(tenant, name).await {
        Ok(Some(lease)) if lease.owner != cluster.node() => {
            if lease.expired_at(crate::cluster::now_ms())
                && crate::failover::take_over_orphan(state, tenant, name).await
            {
                return Ok(Route::Local);
            }
            Ok(Route::Remote(lease))
        }
        Ok(_) => Ok(Route::Local),
        // A stale copy here still answers; a session not here cannot be found out.
        Err(_) if here => Ok(Route::Local),
        Err(e) => Err(ApiError::cluster(&e)),
    }
}

/// 503 `owner_unavailable`, worded as the turn route words it.
fn unavailable(name: &str, owner: &str, detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "owner_unavailable",
        format!(
            "session `{name}` is owned by cluster member `{owner}`, which does not answer ({detail}); try again"
        ),
    )
}

/// Sends the call to the session's owner (asked as a routed turn asks: its heartbeat
/// checked while waiting) and returns its answer.
async fn forward(
    state: &AppState,
    caller: &Caller,
    name: &str,
    op: Op,
    lease: &Lease,
) -> Result<CallReply, ApiError> {
    let Some(cluster) = state.cluster() else {
        return Err(crate::state::no_session(name));
    };
    let request = CallRequest {
        op,
        tenant: caller.tenant.clone(),
        scope: caller.scope.as_str().to_string(),
        token_id: caller.token_id.clone(),
    };
    let started = Instant::now();
    let link = cluster.link();
    link.check().map_err(|e| ApiError::cluster(&e))?;
    let epoch = link.epoch();
    let sent = remote::ask_member(
        cluster,
        call_subject(&caller.tenant, name),
        encode(&request),
        &lease.owner,
        CALL_WAIT,
    );
    let answered = tokio::select! {
        answered = sent => answered,
        // The answer would be lost with the connection: fail now, typed.
        () = link.lost(epoch) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                format!("the connection to the cluster's NATS server dropped while session `{name}`'s owner was asked; whether it acted is unknown: try again once the cluster is reachable"),
            ));
        }
    };
    let answer = match answered {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            m::routed_call(cluster.node(), op.label(), "out", "owner_unavailable");
            return Err(unavailable(name, &lease.owner, &e.to_string()));
        }
        Err(NoAnswer::InTime) => {
            m::routed_call(cluster.node(), op.label(), "out", "owner_unavailable");
            return Err(unavailable(name, &lease.owner, "no answer in time"));
        }
        Err(NoAnswer::Left) => {
            m::routed_call(cluster.node(), op.label(), "out", "owner_unavailable");
            return Err(unavailable(
                name,
                &lease.owner,
                "it left the cluster: its heartbeat expired; the session moves to another member once its lease runs out",
            ));
        }
    };
    m::routed_call_seconds(cluster.node(), op.label(), started.elapsed().as_secs_f64());
    let reply: CallReply = serde_json::from_slice(&answer.payload).map_err(|e| {
        m::routed_call(cluster.node(), op.label(), "out", "owner_unavailable");
        unavailable(name, &lease.owner, &format!("unreadable answer: {e}"))
    })?;
    let outcome = if (200..300).contains(&reply.status) {
        "ok"
    } else {
        "error"
    };
    m::routed_call(cluster.node(), op.label(), "out", outcome);
    Ok(reply)
}

/// Answers a call locally or through the session's owner.
async fn dispatch<F, Fut, R>(
    state: &Arc<AppState>,
    caller: &Caller,
    name: &str,
    op: Op,
    local: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = R>,
    R: IntoResponse,
{
    if let Err(e) = caller.require(op.scope()) {
        return e.into_response();
    }
    match route(state, &caller.tenant, name, op).await {
        Ok(Route::Local) => local().await.into_response(),
        Ok(Route::Remote(lease)) => match forward(state, caller, name, op, &lease).await {
            Ok(reply) => {
                if op == Op::Delete && reply.status == StatusCode::NO_CONTENT.as_u16() {
                    forget_stale(state, &caller.tenant, name).await;
                }
                reply.into_response()
            }
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// Drops this host's stale copy of a session another member owned and just deleted (a
/// host that came back after its sessions moved keeps them in its store): without
/// this, its next start would claim the freed name and bring the session back. Its
/// lease and checkpoint are the owner's, and are not touched here.
async fn forget_stale(state: &AppState, tenant: &str, name: &str) {
    let key = session_key(tenant, name);
    if state.sup.terminate_session(&key).await.is_err() {
        return; // no copy here
    }
    state.proxies.revoke(&key);
    let (t, n) = (tenant.to_string(), name.to_string());
    if let Err(e) = state.store.run(move |s| s.delete_session(&t, &n)).await {
        tracing::warn!(tenant, session = name, error = %e, "cannot forget a stale copy of a deleted session");
    }
    let (confiner, t, n) = (state.confiner.clone(), tenant.to_string(), name.to_string());
    let _ = tokio::task::spawn_blocking(move || confiner.remove(&t, &n)).await;
}

/// `GET /v1/sessions/{name}` (documented at [`sessions::get`]).
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let local = || sessions::get(State(state.clone()), caller.clone(), Path(name.clone()));
    dispatch(&state, &caller, &name, Op::Get, local).await
}

/// `DELETE /v1/sessions/{name}` (documented at [`sessions::delete`]).
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let local = || sessions::delete(State(state.clone()), caller.clone(), Path(name.clone()));
    dispatch(&state, &caller, &name, Op::Delete, local).await
}

/// `POST /v1/sessions/{name}/interrupt` (documented at [`turns::interrupt`]).
pub(crate) async fn interrupt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let local = || turns::interrupt(State(state.clone()), caller.clone(), Path(name.clone()));
    dispatch(&state, &caller, &name, Op::Interrupt, local).await
}

/// `GET /v1/sessions/{name}/transcript` (documented at [`sessions::transcript`]).
pub(crate) async fn transcript(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let local = || sessions::transcript(State(state.clone()), caller.clone(), Path(name.clone()));
    dispatch(&state, &caller, &name, Op::Transcript, local).await
}

/// `GET /v1/sessions` (documented at [`sessions::list`]): this host's sessions and, in a
/// cluster, those other live members hold a lease of, each asked of its owner.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Json(local) = sessions::list(State(state.clone()), caller.clone()).await?;
    let Some(cluster) = state.cluster() else {
        return Ok(Json(local).into_response());
    };
    let leases = cluster
        .leases()
        .of_tenant(&caller.tenant)
        .await
        .map_err(|e| ApiError::cluster(&e))?;
    let others: Vec<(String, Lease)> = leases
        .into_iter()
        .filter(|(_, l)| l.owner != cluster.node())
        .collect();
    let live: Vec<String> = if others.is_empty() {
        Vec::new()
    } else {
        cluster
            .members()
            .await
            .map_err(|e| ApiError::cluster(&e))?
            .into_iter()
            .map(|m| m.node)
            .collect()
    };
    let mut unreachable = Vec::new();
    let mut asked = Vec::new();
    for (name, lease) in &others {
        if live.contains(&lease.owner) {
            asked.push((name.clone(), lease.clone()));
        } else {
            // Its owner is gone; the session moves once its lease expires.
            unreachable.push(UnreachableSession {
                name: name.clone(),
                owner: lease.owner.clone(),
            });
        }
    }
    let answers: Vec<(String, Lease, Result<CallReply, ApiError>)> = futures::stream::iter(asked)
        .map(|(name, lease)| {
            let (state, caller) = (state.clone(), caller.clone());
            async move {
                let reply = forward(&state, &caller, &name, Op::Get, &lease).await;
                (name, lease, reply)
            }
        })
        .buffer_unordered(LIST_CONCURRENCY)
        .collect()
        .await;
    // A copy here of a session another member holds is stale: the owner's counts.
    let elsewhere: Vec<&str> = others.iter().map(|(n, _)| n.as_str()).collect();
    let mut sessions: Vec<Value> = local
        .sessions
        .iter()
        .filter(|s| !elsewhere.contains(&s.name.as_str()))
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect();
    for (name, lease, reply) in answers {
        match reply {
            Ok(CallReply {
                status: 200,
                body: Some(body),
            }) => sessions.push(body),
            // Deleted meanwhile.
            Ok(CallReply { status: 404, .. }) => {}
            _ => unreachable.push(UnreachableSession {
                name,
                owner: lease.owner,
            }),
        }
    }
    sessions.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    unreachable.sort_by(|a, b| a.name.cmp(&b.name));
    let mut body = serde_json::json!({ "sessions": sessions });
    if !unreachable.is_empty() {
        body["unreachable"] =
            serde_json::to_value(&unreachable).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(Json(body).into_response())
}

/// Serves the session's calls over the cluster while this host holds its lease: from
/// now (the subscription is in place at the server when this returns) until the lease
/// is gone or the session's serving stops ([`Serving::stop`](super::remote::Serving)).
pub(crate) async fn serve(state: &Arc<AppState>, tenant: &str, name: &str) {
    let Some(cluster) = state.cluster() else {
        return;
    };
    let client = cluster.client().clone();
    let subject = call_subject(tenant, name);
    let mut sub = match client.subscribe(subject.clone()).await {
        Ok(sub) => sub,
        Err(e) => {
            tracing::warn!(%subject, error = %e, "cannot serve a session's calls over the cluster");
            return;
        }
    };
    crate::cluster::flush(&client).await;
    let weak: Weak<AppState> = Arc::downgrade(state);
    let (tenant, name) = (tenant.to_string(), name.to_string());
    let key = session_key(&tenant, &name);
    let task = tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let Some(state) = weak.upgrade() else { return };
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            let Some(cluster) = state.cluster() else {
                return;
            };
            // Answered only under a live lease of this host's, checked at the source: a
            // host that lost it stays silent and stops. A lease still this host's that
            // it could not renew in time (NATS was down) is refused, typed, and the
            // session stays served.
            let refused = match cluster.leases().owner(&tenant, &name).await {
                Ok(Some(l)) if l.owner == cluster.node() => {
                    if l.expired_at(crate::cluster::now_ms())
                        || super::remote::unconfirmed(&state, &tenant, &name)
                    {
                        Some(super::remote::lease_unconfirmed(&name))
                    } else {
                        None
                    }
                }
                Ok(_) => {
                    tracing::info!(tenant = %tenant, session = %name, "no longer the owner; stopped serving its calls over the cluster");
                    return;
                }
                Err(e) => Some(ApiError::cluster(&e)),
            };
            if let Some(e) = refused {
                let answer = CallReply {
                    status: e.status().as_u16(),
                    body: serde_json::to_value(e.body()).ok(),
                };
                let _ = cluster.client().publish(reply, encode(&answer)).await;
                continue;
            }
            let (tenant, name) = (tenant.clone(), name.clone());
            tokio::spawn(async move {
                let answer = answer(&state, &tenant, &name, &msg.payload).await;
                if let Some(cluster) = state.cluster() {
                    let _ = cluster.client().publish(reply, encode(&answer)).await;
                }
            });
        }
    });
    state.serving.put(calls_key(&key), task);
}

/// The owner's side of one call: the local handler's answer for the requester's tenant
/// and scope.
async fn answer(state: &Arc<AppState>, tenant: &str, name: &str, payload: &[u8]) -> CallReply {
    let refuse = |e: ApiError| CallReply {
        status: e.status().as_u16(),
        body: serde_json::to_value(e.body()).ok(),
    };
    let request: CallRequest = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => return refuse(ApiError::bad_request(format!("invalid routed call: {e}"))),
    };
    // The subject names the tenant; a request for another one is refused (fail closed).
    let Some(scope) = Scope::parse(&request.scope).filter(|_| request.tenant == tenant) else {
        return refuse(ApiError::bad_request(
            "a routed call's tenant or scope does not match its subject",
        ));
    };
    let caller = Caller {
        tenant: request.tenant,
        scope,
        token_id: request.token_id,
    };
    let (s, path) = (State(state.clone()), Path(name.to_string()));
    let response = match request.op {
        Op::Get => sessions::get(s, caller, path).await.into_response(),
        Op::Delete => sessions::delete(s, caller, path).await.into_response(),
        Op::Interrupt => turns::interrupt(s, caller, path).await.into_response(),
        Op::Transcript => sessions::transcript(s, caller, path).await.into_response(),
    };
    let status = response.status();
    if let Some(cluster) = state.cluster() {
        let outcome = if status.is_success() { "ok" } else { "error" };
        m::routed_call(cluster.node(), request.op.label(), "in", outcome);
    }
    let bytes = match axum::body::to_bytes(response.into_body(), MAX_REPLY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return refuse(ApiError::internal(format!(
                "cannot read the call's answer: {e}"
            )))
        }
    };
    if bytes.is_empty() {
        return CallReply {
            status: status.as_u16(),
            body: None,
        };
    }
    match serde_json::from_slice(&bytes) {
        Ok(body) => CallReply {
            status: status.as_u16(),
            body: Some(body),
        },
        Err(e) => refuse(ApiError::internal(format!(
            "the call's answer is not JSON: {e}"
        ))),
    }
}

/// Counts a turn this host routed to a session's owner, by the outcome `forward`
/// returned (a 404 is not counted: no member held the session, nothing was routed).
pub(crate) fn count_turn_out(state: &AppState, routed: Result<&Response, &ApiError>) {
    let Some(cluster) = state.cluster() else {
        return;
    };
    let outcome = match routed {
        Ok(r) if r.status().is_success() => "ok",
        Ok(_) => "error",
        Err(e) => match e.code() {
            "not_found" => return,
            "owner_unavailable" => "owner_unavailable",
            "cluster_unavailable" => "cluster_unavailable",
            _ => "error",
        },
    };
    m::routed_turn(cluster.node(), "out", outcome);
}

/// Counts a turn this host was asked to run for another member.
pub(crate) fn count_turn_in(state: &AppState, accepted: bool) {
    if let Some(cluster) = state.cluster() {
        let outcome = if accepted { "accepted" } else { "refused" };
        m::routed_turn(cluster.node(), "in", outcome);
    }
}
