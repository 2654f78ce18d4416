//! The HTTP API's routes: one module per resource.

pub(crate) mod audit;
pub(crate) mod cluster;
pub(crate) mod health;
pub(crate) mod pools;
pub(crate) mod remote;
pub(crate) mod remote_calls;
pub(crate) mod sessions;
pub(crate) mod turns;

use std::sync::Arc;

use axum::{
    extract::DefaultBodyLimit,
    middleware,
    routing::{get, post},
    Router,
};

use crate::{metrics, state::AppState, trace};

pub(crate) fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/", get(crate::dashboard::page))
        .route("/v1/events", get(crate::dashboard::events))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        // In a cluster, calls on a session another member holds go to that member
        // (`remote_calls`); a session's turns are routed inside `send_message`.
        .route(
            "/v1/sessions",
            post(sessions::create).get(remote_calls::list),
        )
        .route(
            "/v1/sessions/{name}",
            get(remote_calls::get).delete(remote_calls::delete),
        )
        .route("/v1/sessions/{name}/messages", post(turns::send_message))
        .route(
            "/v1/sessions/{name}/interrupt",
            post(remote_calls::interrupt),
        )
        .route(
            "/v1/sessions/{name}/transcript",
            get(remote_calls::transcript),
        )
        .route("/v1/query", post(turns::query))
        .route("/v1/pools", get(pools::list))
        .route("/v1/pools/{pool}/messages", post(pools::send_message))
        .route("/v1/audit", get(audit::list))
        .route("/v1/cluster", get(cluster::view))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        // Applied per route, after routing: both see the matched route template. The
        // request span is outermost, so the metrics and the handler run inside it.
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(trace::request))
        .with_state(state)
}

/// Unknown paths: a JSON 404 like every other error.
async fn not_found(uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::not_found(format!("no route {}", uri.path()))
}

/// A known path with another method: a JSON 405.
async fn method_not_allowed(method: axum::http::Method) -> crate::error::ApiError {
    crate::error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take {method}"),
    )
}
