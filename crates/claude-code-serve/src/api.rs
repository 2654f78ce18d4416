//! The HTTP API's routes and handlers (JSON bodies; turns as Server-Sent Events or one
//! JSON reply).

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::UNIX_EPOCH,
};

use axum::{
    extract::{DefaultBodyLimit, Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Json, Router,
};
use claude_code::{
    history::{History, HistoryError},
    ChildInfo, ChildStatus, Options, SessionSpec, Spares, Supervisor, TurnSummary,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) sup: Supervisor,
    /// The options every session starts from (the host's configuration).
    pub(crate) options: Options,
    pub(crate) draining: AtomicBool,
    pub(crate) offline: bool,
    /// Warm, never-reused sessions for `POST /v1/query`.
    pub(crate) spares: Spares,
}

/// Longest prompt accepted, in bytes.
pub(crate) const MAX_PROMPT_BYTES: usize = 256 * 1024;

pub(crate) fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/sessions", post(create_session).get(list_sessions))
        .route(
            "/v1/sessions/{name}",
            get(get_session).delete(delete_session),
        )
        .route("/v1/sessions/{name}/messages", post(send_message))
        .route("/v1/sessions/{name}/interrupt", post(interrupt))
        .route("/v1/sessions/{name}/transcript", get(transcript))
        .route("/v1/query", post(query))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the host is draining",
        )
        .into_response();
    }
    match state.sup.list_sessions().await {
        Ok(_) => Json(json!({"status": "ready", "offline": state.offline})).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Options a client may set when it starts a session; anything else is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionOptions {
    system_prompt: Option<String>,
    append_system_prompt: Option<String>,
    model: Option<String>,
    max_turns: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    name: String,
    #[serde(default)]
    options: SessionOptions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendMessage {
    prompt: String,
}

/// A JSON body, or a 400 that says what is wrong with it.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "session name {name:?} must be 1-64 characters of A-Z, a-z, 0-9, _ or -"
        )))
    }
}

fn accepting(state: &AppState) -> Result<(), ApiError> {
    if state.draining.load(Ordering::Relaxed) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the host is draining and accepts no new work",
        ));
    }
    Ok(())
}

async fn create_session(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    accepting(&state)?;
    let req: CreateSession = parse(&body)?;
    check_name(&req.name)?;
    let mut options = state.options.clone();
    let o = req.options;
    if let Some(p) = o.system_prompt {
        options = options.system_prompt(p);
    }
    if let Some(p) = o.append_system_prompt {
        options = options.append_system_prompt(p);
    }
    if let Some(m) = o.model {
        options = options.model(m);
    }
    if let Some(n) = o.max_turns {
        options = options.max_turns(n);
    }
    state
        .sup
        .start_session(SessionSpec::new(&req.name).options(options))
        .await?;
    let info = find(&state, &req.name).await?;
    Ok((StatusCode::CREATED, Json(session_json(&info))))
}

async fn list_sessions(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let list = state.sup.list_sessions().await?;
    Ok(Json(json!({
        "sessions": list.iter().map(session_json).collect::<Vec<_>>()
    })))
}

async fn get_session(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(session_json(&find(&state, &name).await?)))
}

async fn delete_session(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.sup.terminate_session(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn interrupt(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    // An unknown name is the supervisor's NotFound: a 404.
    state.sup.session(&name).interrupt().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One turn: Server-Sent Events (one event per SDK message, named by its type, ending
/// with `result`) when the client accepts `text/event-stream`, else one JSON reply.
/// A client that disconnects mid-stream drops the stream, which interrupts the turn;
/// the session itself goes on.
async fn send_message(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    accepting(&state)?;
    let req: SendMessage = parse(&body)?;
    check_prompt(&req.prompt)?;
    // One lookup: an unknown name is the supervisor's NotFound, a 404.
    let session = state.sup.session(&name);
    if wants_sse(&headers) {
        return Ok(sse(session.stream(req.prompt).await?));
    }
    let before = session_cost(&state, &name).await;
    let outcome = session.stream(req.prompt).await?.collect().await;
    let cost_usd = session_cost(&state, &name).await - before;
    // The summary carries the id; only a failed turn needs to ask for it.
    let session_id = match &outcome {
        Ok(_) => None,
        Err(_) => session.session_id().await.ok().flatten(),
    };
    Ok(turn_json(outcome, session_id, cost_usd).into_response())
}

fn check_prompt(prompt: &str) -> Result<(), ApiError> {
    if prompt.trim().is_empty() {
        return Err(ApiError::bad_request("the prompt is empty"));
    }
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "prompt_too_large",
            format!("the prompt is over {MAX_PROMPT_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// One SSE event per SDK message, named by its type; errors as `error` events.
fn sse(stream: claude_code::MessageStream) -> Response {
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
fn turn_json(
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

/// The session's conversation, read from the CLI's stored transcript.
async fn transcript(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let info = find(&state, &name).await?;
    let Some(id) = info.session_id else {
        return Ok(Json(json!({"session_id": null, "messages": []})));
    };
    let Some(dir) = state.options.cli_config_dir() else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_config_dir",
            "the CLI's config directory is unknown (neither CLAUDE_CONFIG_DIR nor HOME is set)",
        ));
    };
    let read = {
        let id = id.clone();
        tokio::task::spawn_blocking(move || History::new(dir).transcript(&id)).await
    };
    let transcript = match read {
        Ok(Ok(t)) => t,
        Ok(Err(HistoryError::NotFound { .. })) => {
            return Ok(Json(json!({"session_id": id, "messages": []})))
        }
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "transcript_unreadable",
                e.to_string(),
            ))
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.to_string(),
            ))
        }
    };
    let messages: Vec<Value> = transcript
        .messages()
        .filter_map(|e| {
            if let Some(text) = e.prompt() {
                Some(json!({"role": "user", "text": text}))
            } else {
                e.assistant_text()
                    .map(|text| json!({"role": "assistant", "text": text}))
            }
        })
        .collect();
    Ok(Json(json!({"session_id": id, "messages": messages})))
}

/// One prompt on a fresh, isolated session from the warm spares (never reused); the
/// same reply shapes as a session's messages.
async fn query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    accepting(&state)?;
    let req: SendMessage = parse(&body)?;
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

async fn find(state: &AppState, name: &str) -> Result<ChildInfo, ApiError> {
    state
        .sup
        .list_sessions()
        .await?
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no session named `{name}`"),
            )
        })
}

async fn session_cost(state: &AppState, name: &str) -> f64 {
    state
        .sup
        .cost_report()
        .await
        .ok()
        .and_then(|r| r.sessions.get(name).map(|t| t.cost_usd))
        .unwrap_or(0.0)
}

fn session_json(c: &ChildInfo) -> Value {
    let status = match &c.status {
        ChildStatus::Running => "live",
        ChildStatus::Hibernated => "hibernated",
        ChildStatus::Restarting => "restarting",
        ChildStatus::Stopped => "stopped",
        ChildStatus::Exited(_) => "exited",
        _ => "unknown",
    };
    let secs = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
    json!({
        "name": c.name,
        "status": status,
        "session_id": c.session_id,
        "pid": c.pid,
        "restarts": c.restarts,
        "turns": c.turns,
        "cost_usd": c.cost_usd,
        "started_at": secs(c.started_at),
        "last_activity": c.last_activity.and_then(secs),
    })
}
