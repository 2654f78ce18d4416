//! `GET /healthz` (the process is up) and `GET /readyz` (it can take work).

use std::sync::{atomic::Ordering, Arc};

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use crate::{error::ApiError, state::AppState};

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
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
