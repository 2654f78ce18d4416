//! Sessions: create, list, read, delete, and the stored transcript.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use claude_code::{
    history::{History, HistoryError},
    Options, SessionSpec,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{Caller, Scope},
    body::{ErrorBody, SessionList, SessionObject, Transcript, TranscriptMessage},
    cluster::Claim,
    error::ApiError,
    state::{check_name, parse, session_error, session_key, store_error, AppState, Body},
    store::StoredSession,
};

/// Options a client may set when it starts a session; anything else is refused.
#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    append_system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_turns: Option<u32>,
}

/// What a dynamic session is made from: kept in the state store, so that a restarted
/// host can make it again.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionRecipe {
    /// A template of the host's configuration to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) template: Option<String>,
    /// Options on top.
    #[serde(default)]
    pub(crate) options: SessionOptions,
    /// The session's budget in USD, enforced at the credential proxy (else by the
    /// supervisor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) budget_usd: Option<f64>,
}

impl SessionRecipe {
    /// The session's options: the template's (else the host's), then the client's.
    pub(crate) fn options(&self, state: &AppState) -> Result<Options, ApiError> {
        let mut options = match &self.template {
            None => state.options.clone(),
            Some(t) => state.templates.get(t).cloned().ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_template",
                    format!("no session template named `{t}` in the host's configuration"),
                )
            })?,
        };
        let o = self.options.clone();
        if let Some(p) = o.system_prompt {
            options = options.system_prompt(p);
        }
        if let Some(p) = o.append_system_prompt {
            options = options.append_system_prompt(p);
        }
        if let Some(m) = o.model {
            options = options.model(m);
        }
        if let Some(n) = o.max_turns {
            options = options.max_turns(n);
        }
        Ok(options)
    }

    /// The supervisor's spec for the tenant's session `name`, with its grant at the
    /// credential proxy (held by the host until the session is deleted). The budget is
    /// enforced at the proxy when the session has a grant, else by the supervisor.
    pub(crate) async fn spec(
        &self,
        state: &AppState,
        tenant: &str,
        name: &str,
    ) -> Result<SessionSpec, ApiError> {
        let key = session_key(tenant, name);
        let prepared = state
            .proxies
            .prepare(&key, self.options(state)?, self.budget_usd)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let owner = crate::audit::Owner::Tenant {
            tenant: tenant.to_string(),
            session: name.to_string(),
        };
        let place = crate::confine::Place::Session { tenant, name };
        let options = state.confiner.apply(prepared.options, place);
        let spec = SessionSpec::new(key)
            .options(state.audit.attach(options, owner))
            .idle_timeout(state.idle_timeout);
        Ok(match self.budget_usd {
            Some(usd) if !prepared.granted => spec.budget_usd(usd),
            _ => spec,
        })
    }

    /// A 400 unless the budget, if any, is a positive number.
    fn check_budget(&self) -> Result<(), ApiError> {
        match self.budget_usd {
            Some(b) if !(b.is_finite() && b > 0.0) => Err(ApiError::bad_request(
                "budget_usd must be a positive number of USD",
            )),
            _ => Ok(()),
        }
    }
}

/// `POST /v1/sessions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSession {
    /// 1-64 characters of `A-Z a-z 0-9 _ -`, unique within the tenant.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    name: String,
    /// A template of the host's configuration to start from.
    #[serde(default)]
    template: Option<String>,
    /// Options on top of the template (or of the host's options).
    #[serde(default)]
    options: SessionOptions,
    /// Most USD the session may spend. Enforced per API request at the host's credential
    /// proxy: once spent, its turns end with 402 `session_budget_exceeded`.
    #[serde(default)]
    budget_usd: Option<f64>,
    /// In a cluster: `capacity` makes the session on the member with the most free
    /// capacity, `local` on this host (default: the host's `[cluster] placement`).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(capacity|local)$")]
    placement: Option<crate::placement::Placement>,
}

/// Starts a dynamic session (kept in the state store: it outlives host restarts).
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = CreateSession,
    responses(
        (status = 201, description = "Started; in a cluster on the member placement chose (its `owner`)", body = SessionObject),
        (status = 400, description = "Bad body, name or template", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Needs write scope", body = ErrorBody),
        (status = 409, description = "The tenant has a session of that name (`name_taken`), or in a cluster another member owns it (`owned_elsewhere`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 429, description = "The tenant's session or rate limit", body = ErrorBody),
        (status = 503, description = "Draining, or admission refused, or `sandbox_unavailable`: its confinement cannot be set up, or `cluster_unavailable`: its lease cannot be claimed", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write)?;
    state.accepting()?;
    let req: CreateSession = parse(&body)?;
    check_name("session", &req.name)?;
    crate::trace::record_session(&req.name);
    // In a cluster, on the member with the most free capacity (see `placement`).
    if let Some(placed) =
        crate::placement::place(&state, &caller, &req.name, req.placement, &body).await
    {
        return placed;
    }
    let object = create_here(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(object)).into_response())
}

/// Makes the caller's dynamic session on this host (a local create, or one another
/// member placed here).
pub(crate) async fn create_here(
    state: &Arc<AppState>,
    caller: &Caller,
    req: CreateSession,
) -> Result<SessionObject, ApiError> {
    check_name("session", &req.name)?;
    let recipe = SessionRecipe {
        template: req.template,
        options: req.options,
        budget_usd: req.budget_usd,
    };
    recipe.check_budget()?;
    // Checked now (unknown template); the grant is made once the name is known free.
    let _ = recipe.options(state)?;
    let live = state.list(caller).await?.len();
    state.limits.check_sessions(&caller.tenant, live)?;
    // In a cluster, the session is this host's only once it holds its lease.
    if let Some(cluster) = state.cluster() {
        match cluster.leases().claim(&caller.tenant, &req.name).await {
            Ok(Claim::Won) => {}
            Ok(Claim::Held(lease)) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "owned_elsewhere",
                    format!(
                        "a session named `{}` is owned by cluster member `{}`",
                        req.name, lease.owner
                    ),
                ))
            }
            Err(e) => return Err(ApiError::cluster(&e)),
        }
    }
    // Stored first: a host killed right after the start still knows the session.
    let stored = StoredSession {
        tenant: caller.tenant.clone(),
        name: req.name.clone(),
        spec: serde_json::to_string(&recipe).map_err(|e| ApiError::internal(e.to_string()))?,
        session_id: None,
    };
    let inserted = state
        .store
        .run(move |s| s.insert_session(&stored))
        .await
        .map_err(store_error)?;
    if !inserted {
        return Err(session_error(
            claude_code::SupervisorError::DuplicateName {
                name: req.name.clone(),
            },
            &req.name,
        ));
    }
    let started = match recipe.spec(state, &caller.tenant, &req.name).await {
        Ok(spec) => state
            .sup
            .start_session(spec)
            .await
            .map_err(|e| session_error(e, &req.name)),
        Err(e) => Err(e),
    };
    if let Err(e) = started {
        state
            .proxies
            .revoke(&session_key(&caller.tenant, &req.name));
        release(state, &caller.tenant, &req.name).await;
        let (tenant, name) = (caller.tenant.clone(), req.name.clone());
        if let Err(e) = state
            .store
            .run(move |s| s.delete_session(&tenant, &name))
            .await
        {
            tracing::error!(error = %e, "cannot forget a session that failed to start");
        }
        return Err(e);
    }
    crate::failover::checkpoint(state, &caller.tenant, &req.name).await;
    crate::routes::remote::serve(state, &caller.tenant, &req.name).await;
    let info = state.find(caller, &req.name).await?;
    state.describe_one(caller, &info).await
}

/// The caller's sessions; in a cluster, those of every member.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    responses(
        (status = 200, description = "The tenant's sessions; in a cluster, those of every member, each with its `owner`, and under `unreachable` those whose owner did not answer", body = SessionList),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 429, description = "The tenant's rate limit", body = ErrorBody),
        (status = 503, description = "In a cluster: `cluster_unavailable`, NATS does not answer", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<SessionList>, ApiError> {
    caller.require(Scope::Read)?;
    let list = state.list(&caller).await?;
    Ok(Json(SessionList {
        sessions: state.describe(&caller, &list).await?,
        unreachable: Vec::new(),
    }))
}

/// One of the caller's sessions; in a cluster, answered by the member that holds it.
#[utoipa::path(get, path = "/v1/sessions/{name}", tag = "sessions", params(NameParam),
    responses(
        (status = 200, description = "The session (in a cluster, as its owner describes it)", body = SessionObject),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such session for this tenant", body = ErrorBody),
        (status = 503, description = "In a cluster, when another member holds the session: `owner_unavailable` (it does not answer), `cluster_unavailable` (NATS does not answer); when this host holds it: `lease_unconfirmed` (it could not renew the lease in time, e.g. NATS is down)", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<SessionObject>, ApiError> {
    caller.require(Scope::Read)?;
    let info = state.find(&caller, &name).await?;
    Ok(Json(state.describe_one(&caller, &info).await?))
}

/// Stops a session and forgets it (its ledger rows stay); in a cluster, on the member
/// that holds it.
#[utoipa::path(delete, path = "/v1/sessions/{name}", tag = "sessions", params(NameParam),
    responses(
        (status = 204, description = "Stopped and forgotten (in a cluster, by its owner, which releases its lease and checkpoint)"),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Needs write scope", body = ErrorBody),
        (status = 404, description = "No such session for this tenant", body = ErrorBody),
        (status = 503, description = "In a cluster, when another member holds the session: `owner_unavailable` (it does not answer), `cluster_unavailable` (NATS does not answer; also for a session this host holds, whose lease and checkpoint could not be released)", body = ErrorBody),
    ))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Write)?;
    let key = session_key(&caller.tenant, &name);
    state
        .sup
        .terminate_session(&key)
        .await
        .map_err(|e| session_error(e, &name))?;
    state.proxies.revoke(&key);
    let tenant = caller.tenant.clone();
    let removed = name.clone();
    state
        .store
        .run(move |s| s.delete_session(&tenant, &name))
        .await
        .map_err(store_error)?;
    // Its CLI has ended (terminated above): its work dir, transcript included, goes.
    release(&state, &caller.tenant, &removed).await;
    let (confiner, tenant) = (state.confiner.clone(), caller.tenant.clone());
    let _ = tokio::task::spawn_blocking(move || confiner.remove(&tenant, &removed)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Releases the session's lease in the cluster, if any (logged when it fails: the
/// lease then runs out on its own).
async fn release(state: &AppState, tenant: &str, name: &str) {
    if let Some(cluster) = state.cluster() {
        state.serving.stop(&session_key(tenant, name));
        if let Err(e) = cluster.forget_checkpoint(tenant, name).await {
            tracing::warn!(tenant = %tenant, session = %name, error = %e, "deleting a session's checkpoint failed");
        }
        if let Err(e) = cluster.leases().release(tenant, name).await {
            tracing::warn!(tenant = %tenant, session = %name, error = %e, "releasing a session lease failed");
        }
    }
}

/// The session's conversation, read from the CLI's stored transcript (in a cluster, on
/// the member that holds it).
#[utoipa::path(get, path = "/v1/sessions/{name}/transcript", tag = "sessions", params(NameParam),
    responses(
        (status = 200, description = "Prompts and replies in order", body = Transcript),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such session for this tenant", body = ErrorBody),
        (status = 500, description = "The stored transcript is unreadable", body = ErrorBody),
        (status = 503, description = "In a cluster, when another member holds the session: `owner_unavailable` (it does not answer), `cluster_unavailable` (NATS does not answer); when this host holds it: `lease_unconfirmed` (it could not renew the lease in time, e.g. NATS is down)", body = ErrorBody),
    ))]
pub(crate) async fn transcript(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Transcript>, ApiError> {
    caller.require(Scope::Read)?;
    let info = state.find(&caller, &name).await?;
    let empty = |session_id| {
        Json(Transcript {
            session_id,
            messages: Vec::new(),
        })
    };
    let Some(id) = info.session_id else {
        return Ok(empty(None));
    };
    let own = state.confiner.config_dir(&caller.tenant, &name);
    let Some(dir) = own.or_else(|| state.options.cli_config_dir()) else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_config_dir",
            "the CLI's config directory is unknown (neither CLAUDE_CONFIG_DIR nor HOME is set)",
        ));
    };
    let read = {
        let id = id.clone();
        tokio::task::spawn_blocking(move || History::new(dir).transcript(&id)).await
    };
    let transcript = match read {
        Ok(Ok(t)) => t,
        Ok(Err(HistoryError::NotFound { .. })) => return Ok(empty(Some(id))),
        Ok(Err(e)) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "transcript_unreadable",
                e.to_string(),
            ))
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let messages = transcript
        .messages()
        .filter_map(|e| {
            if let Some(text) = e.prompt() {
                Some(TranscriptMessage {
                    role: "user",
                    text: text.to_string(),
                })
            } else {
                e.assistant_text().map(|text| TranscriptMessage {
                    role: "assistant",
                    text: text.to_string(),
                })
            }
        })
        .collect();
    Ok(Json(Transcript {
        session_id: Some(id),
        messages,
    }))
}

/// The `{name}` path parameter.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // read by the OpenAPI derive only
pub(crate) struct NameParam {
    /// The session's name.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    name: String,
}

/// Registers every stored dynamic session with the supervisor, hibernated: the next
/// message starts its CLI with `--resume <last conversation id>`. Returns how many.
pub(crate) async fn restore(state: &AppState) -> Result<usize, crate::ServeError> {
    let stored = state.store.run(|s| s.sessions()).await?;
    let mut restored = 0;
    for s in stored {
        let recipe: SessionRecipe = match serde_json::from_str(&s.spec) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(tenant = %s.tenant, session = %s.name, error = %e,
                    "a stored session's recipe is unreadable; it is not restored");
                continue;
            }
        };
        let spec = match recipe.spec(state, &s.tenant, &s.name).await {
            Ok(spec) => spec,
            Err(e) => {
                tracing::error!(tenant = %s.tenant, session = %s.name, error = ?e.body(),
                    "a stored session cannot be made again (its template is gone?); it is not restored");
                continue;
            }
        };
        let spec = match &s.session_id {
            Some(id) => spec.with_options(|o| o.resume(id.clone())),
            None => spec,
        };
        state.sup.start_session(spec.start_hibernated()).await?;
        // The proxy's spend starts from the ledger: a budget outlives host restarts.
        let (tenant, name) = (s.tenant.clone(), s.name.clone());
        let spent = state
            .store
            .run(move |st| st.session_totals(&tenant))
            .await?
            .get(&name)
            .map_or(0.0, |t| t.cost_usd);
        state
            .proxies
            .record_spend(&session_key(&s.tenant, &s.name), spent);
        restored += 1;
    }
    Ok(restored)
}
