//! Who is calling: bearer tokens checked against the state store, the tenant and scope
//! they carry, the per-tenant request rate, and one audit row per API call.
//!
//! [`authenticate`] is a middleware on every route: it resolves the caller once and
//! leaves the outcome in the request's extensions, where the [`Caller`] extractor finds
//! it. Without a token, a request is anonymous (tenant `default`, admin scope) only when
//! the store holds no tokens and the host listens on a loopback address; otherwise it is
//! a 401. Tokens are never logged or stored: the store keeps their SHA-256.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{FromRequestParts, MatchedPath, Request, State},
    http::{header, request::Parts, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::ApiError, state::AppState, store::AuditRow};

/// What a token allows, each scope including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// List and read sessions, transcripts, metrics.
    Read,
    /// Also create and delete sessions and send turns.
    Write,
    /// Also the audit trail.
    Admin,
}

impl Scope {
    /// `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tenant every anonymous request belongs to (no tokens configured, loopback only).
pub const DEFAULT_TENANT: &str = "default";

/// The caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The tenant the request acts for.
    pub(crate) tenant: String,
    /// What the token allows.
    pub(crate) scope: Scope,
    /// The token's public id (`None` when anonymous).
    pub(crate) token_id: Option<String>,
}

impl Caller {
    /// A 403 unless the caller's scope includes `needed`.
    pub(crate) fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.scope >= needed {
            Ok(())
        } else {
            Err(ApiError::forbidden(needed))
        }
    }
}

/// The middleware's verdict, left in the request's extensions.
#[derive(Debug, Clone)]
struct Authenticated(Result<Caller, ApiError>);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Authenticated>() {
            Some(Authenticated(outcome)) => outcome.clone(),
            None => Err(ApiError::internal(
                "the authentication middleware did not run for this route",
            )),
        }
    }
}

/// Resolves the caller, enforces its request rate, runs the handler and audits the call.
pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(req).await;
    }
    let started = Instant::now();
    let audited = path.starts_with("/v1/");
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let request_id = crate::trace::request_id(&req);
    let outcome = resolve(&state, req.headers()).await;
    if let Ok(caller) = &outcome {
        crate::trace::record_tenant(&caller.tenant);
    }
    let limited = match &outcome {
        Ok(caller) if audited => state.limits.check_rate(&caller.tenant).err(),
        _ => None,
    };
    let (tenant, token_id) = match &outcome {
        Ok(c) => (Some(c.tenant.clone()), c.token_id.clone()),
        Err(_) => (None, None),
    };
    req.extensions_mut().insert(Authenticated(outcome));
    let response = match limited {
        Some(e) => e.into_response(),
        None => next.run(req).await,
    };
    if audited {
        state.audit.record(AuditRow {
            at: crate::store::now(),
            request_id,
            tenant,
            token_id,
            method,
            route,
            status: response.status().as_u16(),
            millis: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
        });
    }
    response
}

async fn resolve(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return anonymous(state).await;
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?
        .to_string();
    let owner = state
        .store
        .run(move |s| s.verify(&token))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| unauthorized("the token is unknown, revoked or malformed"))?;
    Ok(Caller {
        tenant: owner.tenant,
        scope: owner.scope,
        token_id: Some(owner.id),
    })
}

async fn anonymous(state: &AppState) -> Result<Caller, ApiError> {
    if !state.listen_loopback {
        return Err(unauthorized(
            "this host is not on a loopback address: every request needs `Authorization: Bearer <token>`",
        ));
    }
    let has_tokens = state
        .store
        .run(|s| s.has_tokens())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if has_tokens {
        return Err(unauthorized(
            "this host has tokens: send `Authorization: Bearer <token>` (create one with `claude-code token create`)",
        ));
    }
    Ok(Caller {
        tenant: crate::auth::DEFAULT_TENANT.to_string(),
        scope: Scope::Admin,
        token_id: None,
    })
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

// --- Optional caller (used by the dashboard page, which renders a shell without one) ---

/// `Option<Caller>`: the caller when the request authenticates, `None` when it does not
/// (no token, a wrong one, or any other rejection of [`Caller`]). Never rejects.
impl axum::extract::OptionalFromRequestParts<Arc<AppState>> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Caller as FromRequestParts<Arc<AppState>>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}
