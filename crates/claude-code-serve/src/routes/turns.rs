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
use claude_code::TurnSummary;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    auth::{Caller, Scope},
    error::ApiError,
    state::{check_prompt, parse, session_error, session_key, AppState},
};

/// The body of every turn: `{"prompt": "…"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Prompt {
    pub(crate) prompt: String,
}

/// One turn: Server-Sent Events (one event per SDK message, named by its type, ending
/// with `result`) when the client accepts `text/event-stream`, else one JSON reply.
/// A client that disconnects mid-stream drops the stream, which interrupts the turn;
/// the session itself goes on.
pub(crate) async fn send_message(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    state.accepting()?;
    let req: Prompt = parse(&body)?;
    check_prompt(&req.prompt)?;
    let key = session_key(&caller.tenant, &name);
    // One lookup: an unknown name is the supervisor's NotFound, a 404.
    let session = state.sup.session(&key);
    let stream = session
        .stream(req.prompt)
        .await
        .map_err(|e| session_error(e, &name))?;
    if wants_sse(&headers) {
        return Ok(sse(stream));
    }
    let before = state.session_cost(&key).await;
    let outcome = stream.collect().await;
    let cost_usd = state.session_cost(&key).await - before;
    // The summary carries the id; only a failed turn needs to ask for it.
    let session_id = match &outcome {
        Ok(_) => None,
        Err(_) => session.session_id().await.ok().flatten(),
    };
    Ok(turn_json(outcome, session_id, cost_usd).into_response())
}

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
pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    state.accepting()?;
    let req: Prompt = parse(&body)?;
    check_prompt(&req.prompt)?;
    let spare =
        state.spares.acquire().await.map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_session", e.to_string())
        })?;
    let stream = spare.stream(req.prompt).await?;
    if wants_sse(&headers) {
        return Ok(sse(stream));
    }
    let summary = stream.collect().await;
    Ok(turn_json(summary, None, 0.0).into_response())
}

pub(crate) fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// One SSE event per SDK message, named by its type; errors as `error` events.
pub(crate) fn sse(stream: claude_code::MessageStream) -> Response {
    let events = stream.map(|item| {
        let event = match item {
            Ok(message) => Event::default()
                .event(message.type_name())
                .json_data(&message),
            Err(e) => Event::default()
                .event("error")
                .json_data(ApiError::from(e).body()),
        };
        Ok::<_, Infallible>(event.unwrap_or_else(|_| Event::default().event("error")))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The JSON reply of a turn: `{text, session_id, cost_usd, is_error}` (a turn that ended
/// with an error result is still a 200, with `is_error` and the error).
pub(crate) fn turn_json(
    outcome: claude_code::Result<TurnSummary>,
    session_id: Option<String>,
    cost_usd: f64,
) -> Result<Json<Value>, ApiError> {
    match outcome {
        Ok(summary) => {
            let cost = if cost_usd > 0.0 {
                cost_usd
            } else {
                summary.cost_usd().unwrap_or(0.0)
            };
            Ok(Json(json!({
                "text": summary.text,
                "session_id": summary.session_id().map(str::to_string).or(session_id),
                "cost_usd": cost,
                "is_error": false,
            })))
        }
        Err(claude_code::Error::TurnFailed {
            subtype, message, ..
        }) => Ok(Json(json!({
            "text": "",
            "session_id": session_id,
            "cost_usd": cost_usd,
            "is_error": true,
            "error": {"subtype": subtype, "message": message},
        }))),
        Err(e) => Err(e.into()),
    }
}
