//! The claude-code host: supervised Claude Code sessions served over HTTP, with turns as
//! Server-Sent Events or one JSON reply. `claude-code serve` runs it; tests and
//! embedders start it in-process with [`Host::start`].
//!
//! Routes (JSON bodies; every error is `{"code", "message"}` with the fitting status):
//! - `POST /v1/sessions` `{"name", "options"?}` → 201, the session;
//!   `GET /v1/sessions`; `GET /v1/sessions/{name}`; `DELETE /v1/sessions/{name}` → 204;
//! - `POST /v1/sessions/{name}/messages` `{"prompt"}`: with `Accept: text/event-stream`,
//!   one event per SDK message (named by its type) ending with `result`; otherwise
//!   `{"text", "session_id", "cost_usd", "is_error"}`;
//! - `POST /v1/sessions/{name}/interrupt` → 204; `GET /v1/sessions/{name}/transcript`
//!   (the conversation from the CLI's stored history);
//! - `POST /v1/query` `{"prompt"}`: one prompt on an isolated session from warm spares;
//! - `GET /healthz` (process up), `GET /readyz` (supervisor answering, not draining).
//!
//! This is the host's first part: authentication, tenants, durable state, the dashboard,
//! metrics and OpenAPI come next. Until authentication exists the host refuses to listen
//! on anything but a loopback address.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use claude_code_serve::{Host, HostConfig};
//! let host = Host::start(HostConfig::new("127.0.0.1:8787".parse()?)).await?;
//! println!("serving on {}", host.url());
//! host.shutdown().await?;
//! # Ok(()) }
//! ```

mod audit;
mod auth;
mod body;
mod config;
mod error;
mod limits;
mod openapi;
mod routes;
mod state;
pub mod store;

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
};

use claude_code::{Spares, Supervisor};
use claude_code_mock::MockServer;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use auth::{Scope, DEFAULT_TENANT};
pub use config::{HostConfig, NamedSession, PoolConfig, SupervisorSettings, TenantLimits};
pub use error::ServeError;

/// A running host.
#[derive(Debug)]
pub struct Host {
    addr: SocketAddr,
    state: Arc<state::AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    mock: Option<MockServer>,
    drain_timeout: std::time::Duration,
}

impl Host {
    /// Opens the state store, starts the supervisor with the declared sessions and the
    /// stored dynamic ones (hibernated), then serves HTTP. Refuses a non-loopback address
    /// while the store holds no token.
    pub async fn start(config: HostConfig) -> Result<Host, ServeError> {
        let store = match &config.data_dir {
            Some(dir) => store::Store::open(dir)?,
            None => store::Store::in_memory()?,
        };
        let listen_loopback = config.listen.ip().is_loopback();
        if !listen_loopback && !store.has_tokens()? {
            return Err(ServeError::NotLoopback(config.listen));
        }
        let offline = config
            .offline
            .unwrap_or_else(|| std::env::var_os("ANTHROPIC_API_KEY").is_none());
        let mut options = config.options;
        let mut templates = config.templates;
        let mock = if offline {
            // Echoes each prompt, like `claude-code mock`.
            let script = claude_code_mock::Script::new().fallback(claude_code_mock::Reply::echo());
            let mock = MockServer::start(script).await?;
            tracing::info!(url = %mock.url(), "offline: no ANTHROPIC_API_KEY; every session talks to the built-in mock Messages API");
            let to_mock = |o: claude_code::Options| {
                o.env("ANTHROPIC_BASE_URL", mock.url())
                    .env("ANTHROPIC_API_KEY", "sk-offline-mock")
            };
            options = to_mock(options);
            for t in templates.values_mut() {
                *t = to_mock(t.clone());
            }
            Some(mock)
        } else {
            None
        };
        let settings = config.supervisor;
        let mut builder = Supervisor::builder()
            .name("serve")
            .strategy(settings.strategy)
            .max_restarts(settings.max_restarts)
            .max_seconds(settings.max_seconds);
        if let Some(admission) = config.admission.clone() {
            builder = builder.admission(admission);
        }
        let sup = builder.start().await?;
        let spares = Spares::builder(options.clone())
            .count(config.spares)
            .start()
            .await
            .map_err(ServeError::Spares)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let state = Arc::new(state::AppState {
            sup,
            options,
            draining: Default::default(),
            offline,
            spares,
            audit: audit::AuditLog::start(store.clone()),
            store,
            limits: limits::Limits::new(config.limits, config.tenants),
            listen_loopback,
            templates,
            idle_timeout: config.idle_timeout,
        });
        let restored = routes::sessions::restore(&state).await?;
        if restored > 0 {
            tracing::info!(sessions = restored, "restored dynamic sessions, hibernated");
        }
        let app = routes::router(state.clone(), config.max_body_bytes);
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        tracing::info!(%addr, "claude-code host listening");
        Ok(Host {
            addr,
            state,
            shutdown: Some(tx),
            server,
            mock,
            drain_timeout: config.drain_timeout,
        })
    }

    /// The address it listens on (the port is chosen when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// True when sessions talk to the in-process mock API.
    pub fn is_offline(&self) -> bool {
        self.mock.is_some()
    }

    /// Drains and stops: new turns get 503, the server stops accepting connections and
    /// lets running turns finish (for up to the drain timeout), then every session's CLI
    /// is stopped and the audit trail is flushed.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        self.state.draining.store(true, Ordering::Relaxed);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(self.drain_timeout, &mut self.server)
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?self.drain_timeout,
                "turns still running after the drain timeout; stopping their sessions");
            self.server.abort();
        }
        self.state.spares.stop().await;
        self.state.sup.stop().await?;
        self.state.audit.flush().await;
        Ok(())
    }
}
