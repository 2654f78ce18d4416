//! `GET /healthz` (the process is up) and `GET /readyz` (it can take work).

use std::sync::{atomic::Ordering, Arc};

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

use crate::{
    body::{ErrorBody, Health, Ready},
    error::ApiError,
    state::AppState,
};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Up", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The host can take work: the CLI is found, its supervisor answers, its state store is
/// open, and it is not draining. In a cluster it also says whether its connection to the
/// NATS server is up (`nats`), without failing on it.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "Draining, the CLI is missing, or the supervisor or store is down", body = ErrorBody),
    ))]
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the host is draining",
        )
        .into_response();
    }
    if let Err(e) = state.options.resolve_cli() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cli_not_found",
            e.to_string(),
        )
        .into_response();
    }
    if let Err(e) = state.sup.list_sessions().await {
        return ApiError::from(e).into_response();
    }
    if let Err(e) = state.store.run(|s| s.has_tokens()).await {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "state_store",
            e.to_string(),
        )
        .into_response();
    }
    // A lost NATS connection is reported, not made a reason to take the host out of
    // rotation: every member loses it at once, so a load balancer would drop the whole
    // cluster, while each host still answers its named sessions and `/v1/query`, and the
    // cluster's sessions with a typed 503.
    let nats = state.cluster().map(|cluster| {
        if cluster.link().check().is_ok() {
            "connected"
        } else {
            "disconnected"
        }
    });
    Json(Ready {
        status: "ready",
        offline: state.offline,
        nats,
    })
    .into_response()
}
