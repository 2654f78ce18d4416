//! Turns: a session's messages, its interrupt, and one-off queries on warm spares. A
//! turn is Server-Sent Events when the client accepts `text/event-stream`, else one
//! JSON reply.

use std::{convert::Infallible, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use claude_code::{CostTracker, Message, MessageStream, ResultMessage};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;

use crate::{
    auth::{Caller, Scope},
    body::{ErrorBody, TurnError, TurnReply},
    error::ApiError,
    state::{check_prompt, parse, session_error, session_key, store_error, AppState, Body},
    store::TurnRow,
};

/// The body of every turn: `{"prompt": "…"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Prompt {
    /// What to ask (at most 256 KiB).
    #[schema(min_length = 1, pattern = "\\S")]
    pub(crate) prompt: String,
}

/// One turn: Server-Sent Events (one event per SDK message, named by its type, ending
/// with `result`) when the client accepts `text/event-stream`, else one JSON reply.
/// The turn runs to its end even when the client goes away, and its cost row is
/// committed before the `result` event is sent.
#[utoipa::path(post, path = "/v1/sessions/{name}/messages", tag = "turns",
    params(crate::routes::sessions::NameParam), request_body = Prompt,
    responses(
        (status = 200, description = "The turn: one JSON reply, or with `Accept: text/event-stream` one SSE event per SDK message (`event:` is the message type: system, assistant, user, stream_event, …) ending with `result`; an `error` event carries an error body",
            content((TurnReply = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Bad body or empty prompt", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Needs write scope", body = ErrorBody),
        (status = 404, description = "No such session for this tenant", body = ErrorBody),
        (status = 409, description = "`lease_lost`: in a cluster, another member took the session over", body = ErrorBody),
        (status = 402, description = "The session's budget at the credential proxy is spent: `session_budget_exceeded` (an SSE turn sends it as an `error` event before its `result`)", body = ErrorBody),
        (status = 413, description = "Body or prompt too large", body = ErrorBody),
        (status = 429, description = "The tenant's turn, rate or spend limit, or the session's budget", body = ErrorBody),
        (status = 502, description = "The Messages API refused (bad key: upstream_auth_failed); in a cluster, `owner_lost`: the owner of a routed session stopped sending the turn (an SSE turn sends it as an `error` event)", body = ErrorBody),
        (status = 503, description = "Draining, or the session's CLI is gone (it restarts); `resource_limit` when it hit a resource limit of `[resources]` (the message names which; the session restarts), `sandbox_unavailable` when its confinement cannot be set up; in a cluster, `owner_unavailable`: the member owning the session does not answer, `cluster_unavailable`: NATS does not answer, `lease_unconfirmed`: this host owns the session but could not renew its lease in time (cut off from NATS)", body = ErrorBody),
        (status = 504, description = "The turn timed out", body = ErrorBody),
    ))]
pub(crate) async fn send_message(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    let key = session_key(&caller.tenant, &name);
    // A leaving host still takes turns on the sessions it hands over: they go to the
    // new owner (see `handover`).
    if state.handover.motion(&key).is_none() {
        state.accepting()?;
    }
    if let Some(cluster) = state.cluster() {
        let key = crate::cluster::owner_key(&caller.tenant, &name);
        if cluster.leases().lost(&key) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "lease_lost",
                format!("another cluster member took over session `{name}` (this host missed renewing its lease); this host no longer serves it"),
            ));
        }
        // Cut off from the cluster past the lease: another member may own the session
        // now. Fail closed until a renewal says whose it is.
        if cluster.leases().unconfirmed(&key) {
            return Err(crate::routes::remote::lease_unconfirmed(&name));
        }
    }
    let (mut prompt, mut permit) = admit_prompt(&state, &caller, &body).await?;
    let sse = wants_sse(&headers);
    let mut routed = false;
    loop {
        let Some(held) = state.handover.enter(&key) else {
            return crate::handover::forward_moved(
                &state,
                &caller.tenant,
                &name,
                prompt,
                permit,
                sse,
            )
            .await;
        };
        let before = state.session_cost(&key).await;
        // One lookup: an unknown name is the supervisor's NotFound, a 404.
        let stream = match state.sup.session(&key).stream(prompt.clone()).await {
            Ok(stream) => stream,
            // In a cluster, a session this host does not have may be another member's
            // (or, handed over meanwhile, this host's now: then it runs here).
            Err(claude_code::SupervisorError::NotFound { .. })
                if state.cluster().is_some() && !routed =>
            {
                drop(held);
                routed = true;
                // An orphan (its owner is gone) is taken over here, now.
                if crate::failover::take_over_orphan(&state, &caller.tenant, &name).await {
                    continue;
                }
                let forwarded = crate::routes::remote::forward(
                    &state,
                    &caller.tenant,
                    &name,
                    prompt,
                    permit,
                    sse,
                )
                .await;
                match &forwarded {
                    Ok(crate::routes::remote::Routed::Answered(r)) => {
                        crate::routes::remote_calls::count_turn_out(&state, Ok(r));
                    }
                    Ok(crate::routes::remote::Routed::Here { .. }) => {}
                    Err(e) => crate::routes::remote_calls::count_turn_out(&state, Err(e)),
                }
                match forwarded? {
                    crate::routes::remote::Routed::Answered(response) => return Ok(response),
                    crate::routes::remote::Routed::Here {
                        prompt: p,
                        permit: t,
                    } => {
                        (prompt, permit) = (p, t);
                        continue;
                    }
                }
            }
            Err(e) => return Err(session_error(e, &name)),
        };
        let turn = Turn {
            tenant: caller.tenant,
            kind: "session",
            target: name,
            cost: CostSource::Supervised {
                key,
                before,
                held: Some(held),
            },
            permit,
        };
        return Ok(run(state, stream, turn, sse).await);
    }
}

/// A turn's body checked (`{"prompt"}`, not blank, not too long) and admitted: the
/// prompt, and the tenant's concurrent-turn permit.
pub(crate) async fn admit_prompt(
    state: &Arc<AppState>,
    caller: &Caller,
    body: &[u8],
) -> Result<(String, Option<OwnedSemaphorePermit>), ApiError> {
    let req: Prompt = parse(body)?;
    check_prompt(&req.prompt)?;
    let permit = admit_turn(state, caller).await?;
    Ok((req.prompt, permit))
}

/// Checks the tenant's spend and takes one of its concurrent-turn permits.
async fn admit_turn(
    state: &Arc<AppState>,
    caller: &Caller,
) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
    let permit = state.limits.turn_permit(&caller.tenant)?;
    if state.limits.of(&caller.tenant).max_spend_usd.is_some() {
        let tenant = caller.tenant.clone();
        let spent = state
            .store
            .run(move |s| s.tenant_spend(&tenant))
            .await
            .map_err(store_error)?;
        state.limits.check_spend(&caller.tenant, spent)?;
    }
    Ok(permit)
}

/// Where a turn's cost comes from.
pub(crate) enum CostSource {
    /// The supervisor's accounting of the session `key` (exact across restarts).
    Supervised {
        /// The supervised name.
        key: String,
        /// Its cost before the turn.
        before: f64,
        /// Keeps the session from being handed over (graceful leave) until the turn
        /// ended and its checkpoint is stored.
        held: Option<crate::handover::TurnGuard>,
    },
    /// The turn's own result (a pool member or a fresh spare).
    Result,
}

/// A running turn: whom it is for, and what to record when it ends.
pub(crate) struct Turn {
    pub(crate) tenant: String,
    /// `session`, `pool` or `query`.
    pub(crate) kind: &'static str,
    /// The session or pool name.
    pub(crate) target: String,
    pub(crate) cost: CostSource,
    /// The tenant's concurrent-turn permit, held until the turn ends.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// How a turn ended, for the JSON reply.
pub(crate) struct Outcome {
    pub(crate) result: Option<ResultMessage>,
    pub(crate) cost_usd: f64,
    pub(crate) error: Option<ApiError>,
}

/// Runs a turn to its end on a task of its own (so that a client going away does not
/// cut it short), commits its ledger row before forwarding the `result`, and answers
/// with SSE or JSON.
pub(crate) async fn run(
    state: Arc<AppState>,
    stream: MessageStream,
    turn: Turn,
    sse: bool,
) -> Response {
    let (tx, rx) = mpsc::channel(SSE_BUFFER);
    let task = tokio::spawn(drive(state, stream, turn, sse.then_some(tx)));
    if sse {
        return sse_response(ReceiverStream::new(rx));
    }
    match task.await {
        Ok(outcome) => json_reply(outcome).into_response(),
        Err(e) => ApiError::internal(format!("the turn's task failed: {e}")).into_response(),
    }
}

/// Messages buffered for a slow SSE client before the turn waits for it.
pub(crate) const SSE_BUFFER: usize = 64;

pub(crate) async fn drive(
    state: Arc<AppState>,
    mut stream: MessageStream,
    mut turn: Turn,
    mut client: Option<mpsc::Sender<Result<Message, ApiError>>>,
) -> Outcome {
    let _permit = turn.permit.take();
    // Released when this turn and its checkpoint are done (a hand-over waits for it).
    let _held = match &mut turn.cost {
        CostSource::Supervised { held, .. } => held.take(),
        CostSource::Result => None,
    };
    let mut outcome = Outcome {
        result: None,
        cost_usd: 0.0,
        error: None,
    };
    loop {
        let next = match &client {
            Some(tx) => tokio::select! {
                item = stream.next() => item,
                () = tx.closed() => {
                    client_left(&state, &turn).await;
                    client = None;
                    continue;
                }
            },
            None => stream.next().await,
        };
        let Some(item) = next else { break };
        let item = match item {
            Ok(message) => {
                if let Message::Result(r) = &message {
                    // Committed before the client sees `result`: nothing acknowledged
                    // is lost.
                    outcome.cost_usd = record(&state, &turn, r).await;
                    outcome.result = Some((**r).clone());
                    // The credential proxy's budget refusal is a typed error, sent
                    // before the `result` that carries it.
                    if let Some(e @ claude_code::Error::BudgetExceeded { .. }) =
                        claude_code::Error::from_result(r)
                    {
                        let e = ApiError::from(e);
                        outcome.error = Some(e.clone());
                        if let Some(tx) = &client {
                            let _ = tx.send(Err(e)).await;
                        }
                    }
                }
                Ok(message)
            }
            Err(e) => {
                let skipped = matches!(e, claude_code::Error::LineTooLong { .. });
                let e = turn_error(&state, &turn, e).await;
                if !skipped {
                    outcome.error = Some(e.clone());
                }
                Err(e)
            }
        };
        if let Some(tx) = &client {
            if tx.send(item).await.is_err() {
                client_left(&state, &turn).await;
                client = None;
            }
        }
    }
    // In a cluster, the conversation so far is what another host resumes if this one dies.
    if let (CostSource::Supervised { .. }, "session") = (&turn.cost, turn.kind) {
        crate::failover::checkpoint(&state, &turn.tenant, &turn.target).await;
    }
    outcome
}

/// The API error for an error of a running turn. A session deleted while its turn ran
/// is gone, not unavailable: 404 (a 503 says "try again", and it would be a 404 then).
async fn turn_error(state: &AppState, turn: &Turn, e: claude_code::Error) -> ApiError {
    if let (true, CostSource::Supervised { key, .. }) = (e.is_closed(), &turn.cost) {
        let gone = state
            .sup
            .list_sessions()
            .await
            .is_ok_and(|children| !children.iter().any(|c| c.name == *key));
        if gone {
            return ApiError::not_found(format!(
                "the session `{}` was deleted while this turn ran",
                turn.target
            ));
        }
    }
    ApiError::from(e)
}

/// Interrupts the session's running turn (which then ends with its `result`); in a
/// cluster, on the member that holds the session, also for a turn sent through another.
#[utoipa::path(post, path = "/v1/sessions/{name}/interrupt", tag = "turns",
    params(crate::routes::sessions::NameParam),
    responses(
        (status = 204, description = "Interrupted (or nothing was running)"),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Needs write scope", body = ErrorBody),
        (status = 404, description = "No such session for this tenant", body = ErrorBody),
        (status = 503, description = "The session's CLI is gone (`resource_limit`: it hit a resource limit); in a cluster, when another member holds the session: `owner_unavailable` (it does not answer), `cluster_unavailable` (NATS does not answer); when this host holds it: `lease_unconfirmed` (it could not renew the lease in time, e.g. NATS is down)", body = ErrorBody),
    ))]
pub(crate) async fn interrupt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Write)?;
    state
        .sup
        .session(session_key(&caller.tenant, &name))
        .interrupt()
        .await
        .map_err(|e| session_error(e, &name))?;
    Ok(StatusCode::NO_CONTENT)
}

/// One prompt on a fresh, isolated session from the warm spares (never reused); the
/// same reply shapes as a session's messages.
#[utoipa::path(post, path = "/v1/query", tag = "turns", request_body = Prompt,
    responses(
        (status = 200, description = "The turn, as JSON or SSE (see the session messages route)",
            content((TurnReply = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Bad body or empty prompt", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Needs write scope", body = ErrorBody),
        (status = 402, description = "The query sessions' budget at the credential proxy is spent: `session_budget_exceeded`", body = ErrorBody),
        (status = 413, description = "Body or prompt too large", body = ErrorBody),
        (status = 429, description = "The tenant's turn, rate or spend limit", body = ErrorBody),
        (status = 502, description = "The Messages API refused", body = ErrorBody),
        (status = 503, description = "Draining, or no warm session could start; `resource_limit` when the CLI hit a resource limit", body = ErrorBody),
    ))]
pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    state.accepting()?;
    let (prompt, permit) = admit_prompt(&state, &caller, &body).await?;
    let spare =
        state.spares.acquire().await.map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_session", e.to_string())
        })?;
    let context = crate::audit::turn_context(&caller.tenant, "query");
    let stream = spare
        .stream(claude_code::UserInput::text(prompt).with_audit_context(context))
        .await?;
    let turn = Turn {
        tenant: caller.tenant,
        kind: "query",
        target: "-".to_string(),
        cost: CostSource::Result,
        permit,
    };
    Ok(run(state, stream, turn, wants_sse(&headers)).await)
}

pub(crate) fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The client went away: the turn goes on, unobserved, unless the host interrupts such
/// turns (then it still ends with a `result`, which is recorded).
async fn client_left(state: &AppState, turn: &Turn) {
    if let (true, CostSource::Supervised { key, .. }) = (state.interrupt_on_disconnect, &turn.cost)
    {
        if let Err(e) = state.sup.session(key.as_str()).interrupt().await {
            tracing::warn!(error = %e, "cannot interrupt a turn whose client left");
        }
    }
}

/// Commits the turn's ledger row (and, for a session, its conversation id); returns the
/// turn's cost.
async fn record(state: &AppState, turn: &Turn, r: &ResultMessage) -> f64 {
    let cost_usd = match &turn.cost {
        CostSource::Supervised { key, before, .. } => {
            (state.session_cost(key).await - before).max(0.0)
        }
        CostSource::Result => CostTracker::new()
            .record_result(r)
            .map_or(0.0, |t| t.cost_usd),
    };
    // The proxy enforces the session's budget from this ledger's figures.
    let grant = match (&turn.cost, turn.kind) {
        (CostSource::Supervised { key, .. }, _) => key.clone(),
        (CostSource::Result, "pool") => format!("pool:{}", turn.target),
        (CostSource::Result, _) => "query".to_string(),
    };
    state.proxies.record_spend(&grant, cost_usd);
    let usage = r.usage.as_ref();
    let row = TurnRow {
        tenant: turn.tenant.clone(),
        kind: turn.kind,
        target: turn.target.clone(),
        session_id: r.session_id.clone(),
        cost_usd,
        input_tokens: usage.map_or(0, |u| u.input_tokens),
        output_tokens: usage.map_or(0, |u| u.output_tokens),
        is_error: r.is_error,
    };
    if let Err(e) = state.store.run(move |s| s.record_turn(&row)).await {
        tracing::error!(error = %e, "cannot record a turn's cost");
    }
    cost_usd
}

/// One SSE event per SDK message, named by its type; errors as `error` events.
pub(crate) fn sse_response(
    stream: impl futures::Stream<Item = Result<Message, ApiError>> + Send + 'static,
) -> Response {
    let events = stream.map(|item| {
        let event = match item {
            Ok(message) => Event::default()
                .event(message.type_name())
                .json_data(&message),
            Err(e) => Event::default().event("error").json_data(e.body()),
        };
        Ok::<_, Infallible>(event.unwrap_or_else(|_| Event::default().event("error")))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The JSON reply of a turn: `{text, session_id, cost_usd, is_error}`; a turn that ended
/// with an error result is still a 200, with `is_error` and the error.
pub(crate) fn json_reply(outcome: Outcome) -> Result<Json<TurnReply>, ApiError> {
    if let Some(e) = outcome
        .error
        .as_ref()
        .filter(|e| e.code() == claude_code::BUDGET_EXCEEDED_CODE)
    {
        return Err(e.clone());
    }
    let Some(r) = outcome.result else {
        return Err(outcome
            .error
            .unwrap_or_else(|| claude_code::Error::NoResult.into()));
    };
    if !r.is_error {
        return Ok(Json(TurnReply {
            text: r.result.unwrap_or_default(),
            session_id: r.session_id,
            cost_usd: outcome.cost_usd,
            is_error: false,
            error: None,
        }));
    }
    let message = if r.errors.is_empty() {
        r.result.clone().unwrap_or_default()
    } else {
        r.errors.join("; ")
    };
    Ok(Json(TurnReply {
        text: String::new(),
        session_id: r.session_id,
        cost_usd: outcome.cost_usd,
        is_error: true,
        error: Some(TurnError {
            subtype: r.subtype,
            message,
            api_status: r.api_error_status,
        }),
    }))
}
