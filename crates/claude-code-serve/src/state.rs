//! What every handler shares, and the small checks they all make.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, UNIX_EPOCH},
};

use axum::http::StatusCode;
use claude_code::{ChildInfo, ChildStatus, Options, Pool, Spares, Supervisor, SupervisorError};

use crate::{
    audit::AuditLog,
    auth::Caller,
    body::SessionObject,
    error::ApiError,
    limits::Limits,
    store::{Store, Totals},
};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    /// Every session of every tenant, named `<tenant>/<name>` (see [`session_key`]).
    pub(crate) sup: Supervisor,
    /// The options every session starts from (the host's configuration).
    pub(crate) options: Options,
    pub(crate) draining: AtomicBool,
    pub(crate) offline: bool,
    /// Warm, never-reused sessions for `POST /v1/query`.
    pub(crate) spares: Spares,
    /// Durable state: tokens, dynamic sessions, the cost ledger, the audit trail.
    pub(crate) store: Store,
    /// The audit trail's writer.
    pub(crate) audit: AuditLog,
    /// Per-tenant limits.
    pub(crate) limits: Limits,
    /// Whether the host listens on a loopback address (anonymous requests allowed
    /// while no token exists).
    pub(crate) listen_loopback: bool,
    /// The configured pools, by name (`POST /v1/pools/{pool}/messages`).
    pub(crate) pools: BTreeMap<String, Pool>,
    /// Options that `POST /v1/sessions` may start from with `"template"`.
    pub(crate) templates: BTreeMap<String, Options>,
    /// Dynamic sessions hibernate after idling this long.
    pub(crate) idle_timeout: Duration,
    /// Interrupt a session's turn when its client goes away.
    pub(crate) interrupt_on_disconnect: bool,
    /// `[sandbox]` and `[resources]`, applied to each session's options.
    pub(crate) confiner: std::sync::Arc<crate::confine::Confiner>,
    /// The credential proxy, its grants, and the children's environment allow-list.
    pub(crate) proxies: std::sync::Arc<crate::proxy::Proxies>,
    /// The cluster this host joined (set once, right after the state is made).
    pub(crate) cluster: std::sync::OnceLock<std::sync::Arc<crate::cluster::Cluster>>,
    /// The sessions this host serves to the cluster's other members.
    pub(crate) serving: crate::routes::remote::Serving,
    /// One take-over at a time per session (the failover scan and a message racing).
    pub(crate) adoptions: crate::failover::Adoptions,
    /// This host's share of the cluster pools (idle until it joins a cluster).
    pub(crate) cluster_pools: crate::cluster_pools::ClusterPools,
    /// Turns running per session, and the hand-over of sessions on graceful leave.
    pub(crate) handover: crate::handover::Handover,
    /// Placement of new sessions (and hand-overs) by the members' capacity.
    pub(crate) placement: crate::placement::Placer,
}

impl AppState {
    /// The cluster, when the host joined one.
    pub(crate) fn cluster(&self) -> Option<&std::sync::Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// This host's load, for its cluster heartbeat.
    pub(crate) async fn load(&self) -> crate::cluster::Load {
        let mut load = crate::cluster::Load::default();
        if let Ok(sessions) = self.sup.list_sessions().await {
            load.sessions = sessions.len();
            load.live_clis = sessions
                .iter()
                .filter(|c| matches!(c.status, ChildStatus::Running))
                .count();
        }
        for pool in self.pools.values() {
            if let Ok(stats) = pool.stats().await {
                load.queue_depth += stats.queued;
                load.live_clis += stats.size;
            }
        }
        load.mem_available = claude_code::procfs::mem_available_kib().map(|k| k * 1024);
        load
    }

    /// A 503 once the host drains.
    pub(crate) fn accepting(&self) -> Result<(), ApiError> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "the host is draining and accepts no new work",
            ));
        }
        Ok(())
    }

    /// The caller's session `name`, or a 404 (also for another tenant's session).
    pub(crate) async fn find(&self, caller: &Caller, name: &str) -> Result<ChildInfo, ApiError> {
        let key = session_key(&caller.tenant, name);
        self.sup
            .list_sessions()
            .await?
            .into_iter()
            .find(|c| c.name == key)
            .ok_or_else(|| no_session(name))
    }

    /// The caller's sessions.
    pub(crate) async fn list(&self, caller: &Caller) -> Result<Vec<ChildInfo>, ApiError> {
        let prefix = format!("{}/", caller.tenant);
        Ok(self
            .sup
            .list_sessions()
            .await?
            .into_iter()
            .filter(|c| c.name.starts_with(&prefix))
            .collect())
    }

    /// The API's session objects for some of the caller's sessions, with the ledger's
    /// turns and cost.
    pub(crate) async fn describe(
        &self,
        caller: &Caller,
        sessions: &[ChildInfo],
    ) -> Result<Vec<SessionObject>, ApiError> {
        let tenant = caller.tenant.clone();
        let totals = self
            .store
            .run(move |s| s.session_totals(&tenant))
            .await
            .map_err(store_error)?;
        let owner = self.cluster().map(|c| c.node().to_string());
        Ok(sessions
            .iter()
            .map(|c| SessionObject {
                owner: owner.clone(),
                ..session_json(c, totals.get(public_name(&c.name)))
            })
            .collect())
    }

    /// The API's session object for one of the caller's sessions.
    pub(crate) async fn describe_one(
        &self,
        caller: &Caller,
        session: &ChildInfo,
    ) -> Result<SessionObject, ApiError> {
        self.describe(caller, std::slice::from_ref(session))
            .await?
            .pop()
            .ok_or_else(|| ApiError::internal("a described session went missing"))
    }

    /// USD spent so far by the supervised session `key`.
    pub(crate) async fn session_cost(&self, key: &str) -> f64 {
        self.sup
            .cost_report()
            .await
            .ok()
            .and_then(|r| r.sessions.get(key).map(|t| t.cost_usd))
            .unwrap_or(0.0)
    }
}

/// Longest prompt accepted, in bytes.
pub(crate) const MAX_PROMPT_BYTES: usize = 256 * 1024;

/// The supervisor's name for a tenant's session: names are per tenant, and neither part
/// may contain `/`.
pub(crate) fn session_key(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

/// The name a tenant knows a supervised session by.
pub(crate) fn public_name(key: &str) -> &str {
    key.split_once('/').map_or(key, |(_, name)| name)
}

pub(crate) fn no_session(name: &str) -> ApiError {
    ApiError::not_found(format!("no session named `{name}`"))
}

/// A supervisor error about the session `name`, worded with the name the tenant knows.
pub(crate) fn session_error(e: SupervisorError, name: &str) -> ApiError {
    match e {
        SupervisorError::NotFound { .. } => no_session(name),
        SupervisorError::DuplicateName { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "name_taken",
            format!("a session named `{name}` already exists"),
        ),
        e => e.into(),
    }
}

/// A request's raw body; a body over the host's limit is a JSON 413 `body_too_large`
/// (axum's own rejection is plain text).
pub(crate) struct Body(pub(crate) axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e| {
                let status = e.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "body_too_large"
                } else {
                    "bad_request"
                };
                ApiError::new(status, code, e.body_text())
            })
    }
}

/// A JSON body, or a 400 that says what is wrong with it.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

/// Session, pool and tenant names: 1-64 characters of `A-Z a-z 0-9 _ -`.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} name {name:?} must be 1-64 characters of A-Z, a-z, 0-9, _ or -"
        )))
    }
}

/// 1-64 characters of `A-Z a-z 0-9 _ -`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn check_prompt(prompt: &str) -> Result<(), ApiError> {
    if prompt.trim().is_empty() {
        return Err(ApiError::bad_request("the prompt is empty"));
    }
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "prompt_too_large",
            format!("the prompt is over {MAX_PROMPT_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// A state-store failure as a 500 (the message names the file and SQLite's error).
pub(crate) fn store_error(e: crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "state store failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "state_store",
        e.to_string(),
    )
}

/// The session object of the API; turns and cost come from the ledger, so they survive
/// restarts of the CLI and of the host.
pub(crate) fn session_json(c: &ChildInfo, totals: Option<&Totals>) -> SessionObject {
    let status = match &c.status {
        ChildStatus::Running => "live",
        ChildStatus::Hibernated => "hibernated",
        ChildStatus::Restarting => "restarting",
        ChildStatus::Stopped => "stopped",
        ChildStatus::Exited(_) => "exited",
        _ => "unknown",
    };
    let secs = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
    SessionObject {
        name: public_name(&c.name).to_string(),
        status,
        session_id: c.session_id.clone(),
        pid: c.pid,
        restarts: c.restarts,
        turns: totals.map_or(c.turns, |t| t.turns),
        cost_usd: totals.map_or(c.cost_usd, |t| t.cost_usd),
        started_at: secs(c.started_at),
        last_activity: c.last_activity.and_then(secs),
        owner: None,
    }
}
