//! The claude-code host: supervised Claude Code sessions served over HTTP, with turns as
//! Server-Sent Events or one JSON reply. `claude-code serve` runs it; tests and
//! embedders start it in-process with [`Host::start`].
//!
//! Routes (JSON bodies; every error is `{"code", "message"}` with the fitting status):
//! - `POST /v1/sessions` `{"name", "template"?, "options"?}` → 201, the session (a
//!   named template's options, then the client's);
//!   `GET /v1/sessions`; `GET /v1/sessions/{name}`; `DELETE /v1/sessions/{name}` → 204;
//! - `POST /v1/sessions/{name}/messages` `{"prompt"}`: with `Accept: text/event-stream`,
//!   one event per SDK message (named by its type) ending with `result`; otherwise
//!   `{"text", "session_id", "cost_usd", "is_error"}`;
//! - `POST /v1/sessions/{name}/interrupt` → 204; `GET /v1/sessions/{name}/transcript`
//!   (the conversation from the CLI's stored history);
//! - `POST /v1/query` `{"prompt"}`: one prompt on an isolated session from warm spares;
//! - `POST /v1/pools/{pool}/messages` `{"prompt"}`: one prompt on a member of a
//!   configured pool, with the same replies as a session's messages (a full queue, or
//!   none free within the queue timeout, is 429 `queue_full` with `Retry-After`);
//!   `GET /v1/pools`: each pool's size, busy members and queued requests;
//! - `GET /healthz` (process up), `GET /readyz` (CLI found, supervisor answering, state
//!   store open, not draining); `GET /v1/audit` (admin scope) the tenant's API calls;
//!   `GET /openapi.json` the OpenAPI document ([`openapi`]);
//! - `GET /` the dashboard (server-rendered HTML with inline plain JavaScript, nothing
//!   loaded from elsewhere); `GET /v1/events` its live feed of the caller's sessions (SSE);
//! - `GET /metrics` (read scope): the SDK's and the HTTP layer's metrics in the
//!   Prometheus text format. The first host in a process installs the process's
//!   `metrics` recorder and later hosts share it, so the figures are per process.
//!
//! Every response carries an `x-request-id` (the client's, when valid, else a new one);
//! each request runs in an `http.request` tracing span with that id, the method, the
//! route template, the tenant and session name, status and latency. Install a
//! `tracing` subscriber to see them; no header but `x-request-id`, and no body, is
//! logged.
//!
//! Callers are tenants: a bearer token (made with `claude-code token create`, kept hashed
//! in the [`store`]) names the tenant and its [`Scope`]; a tenant sees only its own
//! sessions, within its [`TenantLimits`]. While no token exists, the host serves
//! anonymous requests as [`DEFAULT_TENANT`] and only on a loopback address. Dynamic
//! sessions, the cost ledger and the audit trail live in SQLite in the data directory,
//! so a restarted host (even after `kill -9`) lists its sessions and resumes them.
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
pub mod cluster;
mod cluster_pools;
mod config;
mod confine;
mod dashboard;
mod error;
mod failover;
mod handover;
mod limits;
mod metrics;
mod openapi;
mod placement;
mod policy;
mod proxy;
mod routes;
mod state;
pub mod store;
mod trace;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
};

use claude_code::{Options, Pool, SessionSpec, Spares, Supervisor};
use claude_code_mock::MockServer;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use auth::{Scope, DEFAULT_TENANT};
pub use config::{
    default_resources, HostConfig, NamedSession, PoolConfig, SandboxConfig, SandboxMode,
    SandboxNetwork, SupervisorSettings, TenantLimits,
};
pub use error::ServeError;
pub use policy::ToolPolicy;

/// The HTTP API's OpenAPI 3.1 document (what `GET /openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    openapi::ApiDoc::openapi()
}

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
        check_declared(&config)?;
        let offline = config
            .offline
            .unwrap_or_else(|| std::env::var_os("ANTHROPIC_API_KEY").is_none());
        let mock = if offline {
            // Echoes each prompt, like `claude-code mock`.
            let script = claude_code_mock::Script::new().fallback(claude_code_mock::Reply::echo());
            let mock = MockServer::start(script).await?;
            tracing::info!(url = %mock.url(), "offline: no ANTHROPIC_API_KEY; every session talks to the built-in mock Messages API");
            Some(mock)
        } else {
            None
        };
        // Once per process; later hosts share the recorder (see `metrics`).
        metrics::install();
        // Offline, every session (host options, named, pooled, templated) talks to the mock.
        let point0 = |o: Options| match &mock {
            Some(mock) => o
                .env("ANTHROPIC_BASE_URL", mock.url())
                .env("ANTHROPIC_API_KEY", "sk-offline-mock"),
            None => o,
        };
        // Every hosted session reports its audit events to the trail (see `audit`).
        let mut audit = audit::AuditLog::start(store.clone(), config.audit_jsonl.as_deref())?;
        let options = point0(config.options.clone());
        for var in ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"] {
            if let Some(secret) = options.cli_env_var(var).and_then(|v| v.into_string().ok()) {
                if !secret.is_empty() {
                    audit.redact_secret(secret);
                }
            }
        }
        let proxies = Arc::new(proxy::Proxies::new(&config));
        let upstream = options
            .cli_env_var("ANTHROPIC_BASE_URL")
            .map(|u| u.to_string_lossy().into_owned());
        let confiner =
            confine::Confiner::resolve(&config, upstream.as_deref(), proxies.proxies(&options))
                .await?;
        if confiner.is_on() {
            tracing::info!("every CLI runs confined (bubblewrap, private network)");
        }
        let confiner = Arc::new(confiner);
        // Every child: the allow-listed environment and its own grant at the proxy, then
        // its confinement (forwarding to the proxy) and its audit sink.
        let mut children = Vec::new();
        for s in config.sessions {
            let key = state::session_key(&s.tenant, s.spec.name());
            let name = s.spec.name().to_string();
            let budget = s.spec.budget();
            let prepared = proxies
                .prepare(&key, point0(s.spec.session_options().clone()), budget)
                .await?;
            let place = confine::Place::Session {
                tenant: &s.tenant,
                name: &name,
            };
            let owner = audit::Owner::Tenant {
                tenant: s.tenant.clone(),
                session: name.clone(),
            };
            let child = audit.attach(confiner.apply(prepared.options, place), owner);
            children.push(s.spec.renamed(key).options(child));
        }
        let spare_options = proxies
            .prepare("query", options.clone(), None)
            .await?
            .options;
        let settings = config.supervisor;
        let mut builder = Supervisor::builder()
            .name("serve")
            .strategy(settings.strategy)
            .max_restarts(settings.max_restarts)
            .max_seconds(settings.max_seconds)
            .children(children);
        if let Some(admission) = config.admission.clone() {
            builder = builder.admission(admission);
        }
        let sup = builder.start().await?;
        let query_options = audit.attach(
            confiner.apply(spare_options, confine::Place::Query),
            audit::Owner::Shared {
                label: "query".into(),
            },
        );
        let spares = match Spares::builder(query_options)
            .count(config.spares)
            .start()
            .await
        {
            Ok(spares) => spares,
            Err(e) => {
                let _ = sup.stop().await;
                return Err(ServeError::Spares(e));
            }
        };
        let cluster_pools = cluster_pools::ClusterPools::new(&config.pools);
        let mut pools = BTreeMap::new();
        for p in config.pools {
            let pool_options = match proxies
                .prepare(&format!("pool:{}", p.name), point0(p.options), None)
                .await
            {
                Ok(prepared) => prepared.options,
                Err(e) => {
                    stop_all(&sup, &spares, &pools).await;
                    return Err(e.into());
                }
            };
            let member = audit.attach(
                confiner.apply(pool_options, confine::Place::Pool(&p.name)),
                audit::Owner::Shared {
                    label: format!("pool:{}", p.name),
                },
            );
            let mut builder = Pool::builder(SessionSpec::new(&p.name).options(member))
                .size(p.size)
                .warm_spares(p.warm_spares)
                .max_queue(p.max_queue)
                .queue_timeout(p.queue_timeout);
            if let Some(admission) = config.admission.clone() {
                builder = builder.admission(admission);
            }
            match builder.start().await {
                Ok(pool) => {
                    pools.insert(p.name, pool);
                }
                Err(source) => {
                    stop_all(&sup, &spares, &pools).await;
                    return Err(ServeError::Pool {
                        name: p.name,
                        source,
                    });
                }
            }
        }
        let bound = match TcpListener::bind(config.listen).await {
            Ok(listener) => listener.local_addr().map(|addr| (listener, addr)),
            Err(e) => Err(e),
        };
        let (listener, addr) = match bound {
            Ok(bound) => bound,
            Err(source) => {
                stop_all(&sup, &spares, &pools).await;
                return Err(ServeError::Bind {
                    addr: config.listen,
                    source,
                });
            }
        };
        let templates = config
            .templates
            .into_iter()
            .map(|(name, o)| (name, point0(o)))
            .collect();
        let state = Arc::new(state::AppState {
            sup,
            options,
            draining: Default::default(),
            offline,
            spares,
            audit,
            store,
            limits: limits::Limits::new(config.limits, config.tenants),
            listen_loopback,
            pools,
            templates,
            idle_timeout: config.idle_timeout,
            interrupt_on_disconnect: config.interrupt_on_disconnect,
            confiner,
            proxies,
            cluster: Default::default(),
            serving: Default::default(),
            adoptions: Default::default(),
            cluster_pools,
            handover: Default::default(),
            placement: Default::default(),
        });
        let restored = match routes::sessions::restore(&state).await {
            Ok(n) => n,
            Err(e) => {
                stop_all(&state.sup, &state.spares, &state.pools).await;
                return Err(e);
            }
        };
        if restored > 0 {
            tracing::info!(sessions = restored, "restored dynamic sessions, hibernated");
        }
        if let Some(cluster) = &config.cluster {
            if let Err(e) = join_cluster(&state, cluster, addr).await {
                stop_all(&state.sup, &state.spares, &state.pools).await;
                return Err(e);
            }
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

    /// This host's node name in its cluster, when it joined one.
    pub fn cluster_node(&self) -> Option<&str> {
        self.state.cluster().map(|c| c.node())
    }

    /// True when sessions talk to the in-process mock API.
    pub fn is_offline(&self) -> bool {
        self.mock.is_some()
    }

    /// Drains and stops: new turns get 503, the server stops accepting connections and
    /// lets running turns finish (for up to the drain timeout), then every session's CLI
    /// is stopped and the audit trail is flushed. In a cluster, the host first hands each
    /// dynamic session it owns to another member (see docs/guides/cluster.md, "Graceful
    /// leave"), then leaves.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.stop(true).await
    }

    /// Stops as a crash would, for failover tests: no graceful leave. The heartbeats,
    /// lease renewals and cluster serving stop at once (the others see this host gone
    /// when its heartbeat expires and take its sessions over when their leases expire),
    /// then the host stops its CLIs without draining.
    #[doc(hidden)]
    pub async fn abort(mut self) -> Result<(), ServeError> {
        self.drain_timeout = std::time::Duration::ZERO;
        self.stop(false).await
    }

    async fn stop(mut self, leave: bool) -> Result<(), ServeError> {
        if leave {
            // Before draining: turns on the sessions to hand over go to their next owner.
            handover::prepare(&self.state);
        }
        self.state.draining.store(true, Ordering::Relaxed);
        // Hand the sessions over, then leave: the others see this host gone at once.
        if let Some(cluster) = self.state.cluster() {
            if leave {
                handover::leave(&self.state, self.drain_timeout).await;
            }
            self.state.serving.stop_all();
            if !leave {
                cluster.stop();
                // Cut off from NATS, as a dead process is: turns in flight send nothing more.
                // (Bounded: a drain waits for the server, which may be down.)
                let drain = cluster.client().drain();
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
            } else if let Err(e) = cluster.leave().await {
                tracing::warn!(error = %e, "leaving the cluster failed; the others drop this host when its heartbeat expires");
            }
        }
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
        // Cluster pool jobs this host runs are answered before its pools stop.
        self.state.cluster_pools.stop(self.drain_timeout).await;
        for (name, pool) in &self.state.pools {
            if let Err(e) = pool.stop().await {
                tracing::warn!(pool = %name, error = %e, "stopping the pool failed");
            }
        }
        self.state.spares.stop().await;
        self.state.sup.stop().await?;
        // The CLIs' cgroups are removed on background threads: let them finish (bounded)
        // before the process may exit.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !claude_code::sandbox::live_cgroups().is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.state.audit.flush().await;
        Ok(())
    }
}

/// Whether `name` may name a session, tenant, pool or template: 1-64 characters of
/// `A-Z a-z 0-9 _ -`.
pub fn is_valid_name(name: &str) -> bool {
    state::is_valid_name(name)
}

/// Checks the declared names before anything starts: valid, and unique (sessions per
/// tenant), and no empty pool.
fn check_declared(config: &HostConfig) -> Result<(), ServeError> {
    let valid = |what: &'static str, name: &str| {
        if state::is_valid_name(name) {
            Ok(())
        } else {
            Err(ServeError::InvalidName {
                what,
                name: name.to_string(),
            })
        }
    };
    let mut keys = BTreeSet::new();
    for s in &config.sessions {
        valid("tenant", &s.tenant)?;
        valid("session", s.spec.name())?;
        let key = state::session_key(&s.tenant, s.spec.name());
        if !keys.insert(key.clone()) {
            return Err(ServeError::DuplicateName {
                what: "session",
                name: key,
            });
        }
    }
    let mut pools = BTreeSet::new();
    for p in &config.pools {
        valid("pool", &p.name)?;
        if !pools.insert(p.name.as_str()) {
            return Err(ServeError::DuplicateName {
                what: "pool",
                name: p.name.clone(),
            });
        }
        if p.size == 0 {
            return Err(ServeError::EmptyPool(p.name.clone()));
        }
    }
    for name in config.templates.keys() {
        valid("template", name)?;
    }
    for name in config.tenants.keys() {
        valid("tenant", name)?;
    }
    Ok(())
}

/// Joins the cluster: heartbeats with this host's load, then claims the leases of the
/// dynamic sessions restored from the state store (one another member holds stays
/// hibernated here and is logged).
async fn join_cluster(
    state: &Arc<state::AppState>,
    config: &cluster::ClusterConfig,
    addr: SocketAddr,
) -> Result<(), ServeError> {
    let weak = Arc::downgrade(state);
    let probe: cluster::LoadProbe = Arc::new(move || {
        let weak = weak.clone();
        Box::pin(async move {
            match weak.upgrade() {
                Some(state) => state.load().await,
                None => cluster::Load::default(),
            }
        })
    });
    let joined = cluster::Cluster::join(
        config,
        format!("http://{addr}"),
        default_node_name(addr.port()),
        probe,
    )
    .await?;
    let _ = state.cluster.set(joined.clone());
    // Pool requests become jobs every host serving the pool takes (see `cluster_pools`).
    cluster_pools::start(state, &joined).await?;
    for s in state.store.run(|s| s.sessions()).await? {
        match joined.leases().claim(&s.tenant, &s.name).await {
            Ok(cluster::Claim::Won) => routes::remote::serve(state, &s.tenant, &s.name).await,
            Ok(cluster::Claim::Held(lease)) => {
                // Not served here: turns on it answer 409 `lease_lost`.
                joined
                    .leases()
                    .mark_lost(&cluster::owner_key(&s.tenant, &s.name));
                tracing::warn!(tenant = %s.tenant, session = %s.name, owner = %lease.owner,
                    "a restored session is owned by another cluster member; this host does not serve it")
            }
            Err(e) => tracing::warn!(tenant = %s.tenant, session = %s.name, error = %e,
                "cannot claim a restored session"),
        }
    }
    failover::watch(state);
    handover::listen(state).await;
    placement::listen(state).await;
    Ok(())
}

/// `<hostname>-<port>`, the hostname cut to the characters a node name may have.
fn default_node_name(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(50)
        .collect();
    let host = if host.is_empty() {
        "host".to_string()
    } else {
        host
    };
    format!("{host}-{port}")
}

/// Stops what a failed start had already started.
async fn stop_all(sup: &Supervisor, spares: &Spares, pools: &BTreeMap<String, Pool>) {
    for pool in pools.values() {
        let _ = pool.stop().await;
    }
    spares.stop().await;
    let _ = sup.stop().await;
}
