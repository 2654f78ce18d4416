//! Errors of the HTTP API: every one a JSON object `{"code", "message"}` with the status
//! that fits, and errors of starting the host.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use claude_code::{Error, PoolError, SupervisorError};

/// What can stop the host from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address is not a loopback address and the state store holds no
    /// token: the host refuses to expose sessions to anonymous callers.
    #[error(
        "refusing to listen on {0}: no tokens exist, and anonymous requests are served \
         only on loopback addresses (127.0.0.1, ::1); create one with \
         `claude-code token create --tenant NAME --scope write`"
    )]
    NotLoopback(std::net::SocketAddr),
    /// The state store could not be opened or read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The listen socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The offline mock API could not start.
    #[error("cannot start the offline mock Messages API: {0}")]
    Mock(#[from] claude_code_mock::MockError),
    /// The warm spares for `/v1/query` could not start.
    #[error("cannot start the warm sessions for /v1/query: {0}")]
    Spares(#[source] PoolError),
    /// The supervisor failed (a declared named session that cannot start fails here).
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// A declared session, tenant, pool or template name is not 1-64 characters of
    /// `A-Z a-z 0-9 _ -`.
    #[error(
        "invalid {what} name {name:?}: names are 1-64 characters of A-Z, a-z, 0-9, _ or -; \
         rename it in the configuration"
    )]
    InvalidName {
        /// What carries the name: `session`, `tenant`, `pool` or `template`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Two declared sessions of one tenant, or two pools, share a name.
    #[error("two {what}s are named {name:?}; give each a name of its own")]
    DuplicateName {
        /// `session` or `pool`.
        what: &'static str,
        /// The name (`<tenant>/<name>` for sessions).
        name: String,
    },
    /// The audit trail's JSON lines file ([`HostConfig::audit_jsonl`](crate::HostConfig::audit_jsonl))
    /// could not be opened for appending.
    #[error("cannot open the audit log {path} for appending: {source}; fix the path or its permissions ([audit] jsonl)")]
    AuditFile {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The credential proxy could not start or grant a session.
    #[error("credential proxy: {0}")]
    Proxy(#[from] claude_code::proxy::ProxyError),
    /// A declared pool has no members.
    #[error("pool {0:?} has size 0; give it at least one member")]
    EmptyPool(String),
    /// `[sandbox]` or `[resources]` cannot be honoured on this machine (mode
    /// `required`, or an upstream that network confinement cannot forward).
    #[error("confinement: {0}")]
    Sandbox(String),
    /// The host could not join its cluster (`[cluster]`, `--cluster`).
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A declared pool could not start.
    #[error("cannot start pool {name:?}: {source}")]
    Pool {
        /// The pool's name.
        name: String,
        /// Why.
        #[source]
        source: PoolError,
    },
}

/// An API error: status, stable code, message, and a `Retry-After` for back-pressure.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    /// Static for this host's own errors; an owner's code for a routed turn's errors.
    code: std::borrow::Cow<'static, str>,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// An error another cluster member answered for a routed request, as it said it (an
    /// unknown status becomes 502).
    pub(crate) fn remote(status: u16, code: String, message: String) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            code: code.into(),
            message,
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A cluster operation failed: 503 `cluster_unavailable`.
    pub(crate) fn cluster(e: &crate::cluster::ClusterError) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            e.to_string(),
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn forbidden(needed: crate::auth::Scope) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token's scope does not allow this; it needs {needed:?} scope"),
        )
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Its stable code.
    pub(crate) fn code(&self) -> &str {
        &self.code
    }

    /// Its HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// Its `Retry-After`, in seconds.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
    }

    /// The JSON body (also sent as an SSE `error` event).
    pub(crate) fn body(&self) -> crate::body::ErrorBody {
        crate::body::ErrorBody {
            code: self.code.to_string(),
            message: self.message.clone(),
        }
    }

    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(self.body());
        let mut response = (self.status, body).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<SupervisorError> for ApiError {
    fn from(e: SupervisorError) -> Self {
        let message = e.to_string();
        match e {
            SupervisorError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            SupervisorError::DuplicateName { .. } => {
                ApiError::new(StatusCode::CONFLICT, "name_taken", message)
            }
            SupervisorError::BudgetExceeded { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "budget_exceeded", message)
            }
            SupervisorError::Admission(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "admission_refused",
                message,
            )
            .retry_after(5),
            SupervisorError::Session(e) | SupervisorError::StartFailed { source: e, .. } => {
                ApiError::from(e)
            }
            e if e.is_closed() => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            e if e.is_timeout() => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::QueueFull { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message).retry_after(1)
            }
            Error::InvalidOptions(_) => ApiError::bad_request(message),
            Error::ResourceLimit { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "resource_limit", message)
            }
            Error::SandboxUnavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "sandbox_unavailable",
                message,
            ),
            Error::BudgetExceeded { .. } => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                claude_code::BUDGET_EXCEEDED_CODE,
                message,
            ),
            Error::Api { status, .. } if status == 401 || status == 403 => {
                ApiError::new(StatusCode::BAD_GATEWAY, "upstream_auth_failed", message)
            }
            Error::Api { .. } => ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", message),
            e if e.is_timeout() => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message),
            e if e.is_closed() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "session_unavailable",
                message,
            ),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        let message = e.to_string();
        match e {
            PoolError::QueueFull { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message).retry_after(1)
            }
            PoolError::QueueTimeout { waited } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message)
                    .retry_after(waited.as_secs().clamp(1, 5))
            }
            PoolError::Draining | PoolError::DrainTimeout { .. } | PoolError::Stopped => {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "draining",
                    "the pool is draining and accepts no new work",
                )
            }
            PoolError::Admission(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "admission_refused",
                message,
            )
            .retry_after(5),
            PoolError::Supervisor(e) => e.into(),
            PoolError::Session(e) => e.into(),
            _ => ApiError::internal(message),
        }
    }
}
