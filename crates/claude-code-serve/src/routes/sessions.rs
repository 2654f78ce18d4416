//! Sessions: create, list, read, delete, and the stored transcript.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use claude_code::{
    history::{History, HistoryError},
    SessionSpec,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    auth::{Caller, Scope},
    error::ApiError,
    state::{check_name, parse, session_error, session_json, session_key, AppState},
};

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
    /// A configured template whose options the session starts from.
    template: Option<String>,
    #[serde(default)]
    options: SessionOptions,
}

pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::Write)?;
    state.accepting()?;
    let req: CreateSession = parse(&body)?;
    check_name("session", &req.name)?;
    let mut options = match &req.template {
        None => state.options.clone(),
        Some(t) => state.templates.get(t).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_template",
                format!("no template named {t:?}"),
            )
        })?,
    };
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
    let key = session_key(&caller.tenant, &req.name);
    state
        .sup
        .start_session(
            SessionSpec::new(&key)
                .options(options)
                .idle_timeout(state.idle_timeout),
        )
        .await
        .map_err(|e| session_error(e, &req.name))?;
    let info = state.find(&caller, &req.name).await?;
    Ok((StatusCode::CREATED, Json(session_json(&info))))
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let list = state.list(&caller).await?;
    Ok(Json(json!({
        "sessions": list.iter().map(session_json).collect::<Vec<_>>()
    })))
}

pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(session_json(&state.find(&caller, &name).await?)))
}

pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Write)?;
    state
        .sup
        .terminate_session(&session_key(&caller.tenant, &name))
        .await
        .map_err(|e| session_error(e, &name))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The session's conversation, read from the CLI's stored transcript.
pub(crate) async fn transcript(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let info = state.find(&caller, &name).await?;
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
        Err(e) => return Err(ApiError::internal(e.to_string())),
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
