//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations and the typed bodies in `body.rs`.

use axum::Json;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use crate::routes::{audit, cluster, health, pools, sessions, turns};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "claude-code host",
        description = "Supervised Claude Code sessions over HTTP and Server-Sent Events. \
            Every error is a JSON object with a stable `code` and a `message`. Send `Authorization: Bearer <token>` \
            (made with `claude-code token create`); without tokens, a loopback host serves \
            anonymous requests as tenant `default`."
    ),
    paths(
        health::healthz,
        health::readyz,
        crate::metrics::render,
        sessions::create,
        sessions::list,
        sessions::get,
        sessions::delete,
        sessions::transcript,
        turns::send_message,
        turns::interrupt,
        turns::query,
        pools::list,
        pools::send_message,
        audit::list,
        cluster::view,
        openapi_json,
        crate::dashboard::page,
        crate::dashboard::events,
    ),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "sessions", description = "Named, supervised sessions of the caller's tenant"),
        (name = "turns", description = "Prompts, as SSE or one JSON reply"),
        (name = "pools", description = "Configured pools of interchangeable sessions"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "audit", description = "The audit trail (admin scope)"),
        (name = "cluster", description = "The cluster of hosts this host joined (`--cluster`)"),
        (name = "meta", description = "This document"),
        (name = "dashboard", description = "The dashboard page and its live feed"),
    )
)]
pub(crate) struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
