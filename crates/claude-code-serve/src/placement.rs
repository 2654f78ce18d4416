//! Placement of new dynamic sessions by capacity.
//!
//! `POST /v1/sessions` on a clustered host picks the member with the most free capacity
//! from the members' heartbeats ([`Placer::rank`]) and, when that is another member,
//! forwards the creation to it over NATS (request-reply on `claude.node.<node>.create`,
//! [`create_subject`]): the member runs the same code path as a local create (its limits,
//! its lease claim) and its answer is the client's. A member that does not answer in
//! [`PLACE_WAIT`], or answers a 5xx, is passed over: the session is made locally.
//!
//! The score (lower is better) is `live_clis + 2 × queue_depth` from the member's last
//! heartbeat, plus the sessions this host placed on it since that heartbeat (so that a
//! burst of creates between two heartbeats spreads out). Members whose heartbeat is
//! older than two heartbeat intervals (stale) or that report less than
//! [`MIN_FREE_MEMORY`] available are not chosen. Ties go to this host, then to the lower
//! node name. The same ranking picks the members a leaving host hands its sessions to
//! (see `handover`).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{http::StatusCode, response::IntoResponse, response::Response, Json};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{
    auth::{Caller, Scope},
    body::ErrorBody,
    cluster::{now_ms, Member},
    error::ApiError,
    state::AppState,
};

/// Where `POST /v1/sessions` makes a new dynamic session in a cluster (`[cluster]
/// placement`, or the request's `placement`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Placement {
    /// On the live member with the most free capacity (this host on ties).
    #[default]
    Capacity,
    /// On the host that was asked.
    Local,
}

impl std::str::FromStr for Placement {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "capacity" => Ok(Placement::Capacity),
            "local" => Ok(Placement::Local),
            other => Err(format!(
                "unknown placement {other:?}: \"capacity\" or \"local\""
            )),
        }
    }
}

/// A member reporting less available memory than this is not given new sessions (a CLI
/// needs about 130 MB resident).
pub const MIN_FREE_MEMORY: u64 = 256 * 1024 * 1024;

/// How long a host waits for the member it placed a session on to answer.
const PLACE_WAIT: Duration = Duration::from_secs(20);

/// The subject a member takes forwarded creations on.
pub(crate) fn create_subject(node: &str) -> String {
    format!("claude.node.{node}.create")
}

/// A member's load score: lower has more free capacity.
pub(crate) fn load_score(m: &Member) -> usize {
    m.live_clis + 2 * m.queue_depth
}

/// Ranks members by free capacity and remembers what this host placed on each since its
/// last heartbeat.
#[derive(Debug, Default)]
pub(crate) struct Placer {
    /// Node → (the heartbeat time placements were counted against, how many).
    placed: Mutex<BTreeMap<String, (u64, usize)>>,
}

impl Placer {
    fn pending(&self, m: &Member) -> usize {
        self.placed
            .lock()
            .ok()
            .and_then(|p| p.get(&m.node).copied())
            .filter(|(updated, _)| *updated == m.updated)
            .map_or(0, |(_, n)| n)
    }

    /// The members that may take a new session, best first: fresh heartbeats only (not
    /// older than two heartbeat intervals), enough memory, by score, then `me` on ties,
    /// then by node name. `me` (this host) is left out when `others_only`.
    pub(crate) fn rank(
        &self,
        members: &[Member],
        me: &str,
        heartbeat: Duration,
        others_only: bool,
    ) -> Vec<Member> {
        let now = now_ms();
        let stale = 2 * heartbeat.as_millis() as u64;
        // A member whose last heartbeat is late (a loaded machine) is still live (its key
        // has not expired): ranked after every punctual one, not left out, so that a
        // hand-over still finds a taker.
        let mut fit: Vec<(bool, usize, bool, Member)> = members
            .iter()
            .filter(|m| !(others_only && m.node == me))
            .filter(|m| m.node == me || m.mem_available.is_none_or(|b| b >= MIN_FREE_MEMORY))
            .map(|m| {
                let late = m.node != me && now.saturating_sub(m.updated) > stale;
                (
                    late,
                    load_score(m) + self.pending(m),
                    m.node != me,
                    m.clone(),
                )
            })
            .collect();
        fit.sort_by(|a, b| (a.0, a.1, a.2, &a.3.node).cmp(&(b.0, b.1, b.2, &b.3.node)));
        fit.into_iter().map(|(_, _, _, m)| m).collect()
    }

    /// Counts a session placed on (or handed to) `m` until its next heartbeat.
    pub(crate) fn placed(&self, m: &Member) {
        if let Ok(mut placed) = self.placed.lock() {
            let slot = placed.entry(m.node.clone()).or_insert((m.updated, 0));
            if slot.0 != m.updated {
                *slot = (m.updated, 0);
            }
            slot.1 += 1;
        }
    }
}

/// A creation forwarded to another member.
#[derive(Debug, Serialize, Deserialize)]
struct CreateRequest {
    tenant: String,
    /// The client's `POST /v1/sessions` body, with `placement` set to `local`.
    body: serde_json::Value,
}

/// The member's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CreateAnswer {
    /// 201 with the session object.
    Created(serde_json::Value),
    /// The error it answered.
    Refused { status: u16, error: ErrorBody },
}

/// Places a new session: `None` when it is to be made here (placement `local`, not
/// clustered, this host is the best, the name is already leased, or the chosen member did
/// not answer in time or failed with a 5xx); otherwise the chosen member's answer.
pub(crate) async fn place(
    state: &Arc<AppState>,
    caller: &Caller,
    name: &str,
    requested: Option<Placement>,
    body: &[u8],
) -> Option<Result<Response, ApiError>> {
    let cluster = state.cluster()?;
    if requested.unwrap_or(cluster.placement()) == Placement::Local {
        return None;
    }
    // A name in use anywhere: the local path answers the conflict.
    if let Ok(Some(lease)) = cluster.leases().owner(&caller.tenant, name).await {
        if !lease.expired_at(now_ms()) {
            return None;
        }
    }
    let members = match tokio::time::timeout(PLACE_WAIT, cluster.members()).await {
        Ok(Ok(m)) => m,
        _ => return None,
    };
    let ranked = state
        .placement
        .rank(&members, cluster.node(), cluster.heartbeat(), false);
    let target = ranked.first()?;
    if target.node == cluster.node() {
        state.placement.placed(target);
        return None;
    }
    let mut body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body.as_object_mut()?
        .insert("placement".into(), serde_json::json!("local"));
    let request = serde_json::to_vec(&CreateRequest {
        tenant: caller.tenant.clone(),
        body,
    })
    .ok()?;
    let asked = crate::routes::remote::ask_member(
        cluster,
        create_subject(&target.node),
        request.into(),
        &target.node,
        PLACE_WAIT,
    )
    .await;
    let answer = match asked {
        Ok(Ok(m)) => serde_json::from_slice::<CreateAnswer>(&m.payload),
        Ok(Err(e)) => {
            tracing::warn!(member = %target.node, session = name, error = %e, "the member chosen for a new session did not take it; making it here");
            return None;
        }
        Err(_) => {
            tracing::warn!(member = %target.node, session = name, "the member chosen for a new session did not answer in time; making it here");
            return None;
        }
    };
    match answer {
        Ok(CreateAnswer::Created(object)) => {
            state.placement.placed(target);
            tracing::info!(member = %target.node, session = name, "placed a new session on the member with the most free capacity");
            Some(Ok((StatusCode::CREATED, Json(object)).into_response()))
        }
        Ok(CreateAnswer::Refused { status, error }) if status < 500 => {
            Some(Err(ApiError::remote(status, error.code, error.message)))
        }
        Ok(CreateAnswer::Refused { error, .. }) => {
            tracing::warn!(member = %target.node, session = name, code = %error.code, "the member chosen for a new session refused it; making it here");
            None
        }
        Err(e) => {
            tracing::warn!(member = %target.node, session = name, error = %e, "unreadable answer from the member chosen for a new session; making it here");
            None
        }
    }
}

/// Takes creations forwarded to this host on [`create_subject`], while it is in its
/// cluster: each runs the local create path for the tenant.
pub(crate) async fn listen(state: &Arc<AppState>) {
    let Some(cluster) = state.cluster() else {
        return;
    };
    let client = cluster.client().clone();
    let subject = create_subject(cluster.node());
    let mut sub = match client.subscribe(subject.clone()).await {
        Ok(sub) => sub,
        Err(e) => {
            tracing::warn!(%subject, error = %e, "cannot take sessions placed on this host");
            return;
        }
    };
    let _ = client.flush().await;
    let weak = Arc::downgrade(state);
    let task = tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let Some(state) = weak.upgrade() else { return };
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            let client = client.clone();
            tokio::spawn(async move {
                let answer = match create_placed(&state, &msg.payload).await {
                    Ok(object) => CreateAnswer::Created(object),
                    Err(e) => CreateAnswer::Refused {
                        status: e.status().as_u16(),
                        error: e.body(),
                    },
                };
                let bytes = serde_json::to_vec(&answer).unwrap_or_default();
                let _ = client.publish(reply, bytes.into()).await;
            });
        }
    });
    state.serving.put(".placement".to_string(), task);
}

async fn create_placed(
    state: &Arc<AppState>,
    payload: &[u8],
) -> Result<serde_json::Value, ApiError> {
    let req: CreateRequest = serde_json::from_slice(payload)
        .map_err(|e| ApiError::bad_request(format!("invalid placed creation: {e}")))?;
    crate::state::check_name("tenant", &req.tenant)?;
    let caller = Caller {
        tenant: req.tenant,
        scope: Scope::Write,
        token_id: None,
    };
    state.accepting()?;
    let create: crate::routes::sessions::CreateSession = serde_json::from_value(req.body)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    let object = crate::routes::sessions::create_here(state, &caller, create).await?;
    serde_json::to_value(object).map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node: &str, live: usize, queue: usize, age_ms: u64) -> Member {
        serde_json::from_value(serde_json::json!({
            "node": node, "url": "http://x", "live_clis": live,
            "mem_available": 8u64 << 30, "queue_depth": queue, "sessions": live,
            "updated": now_ms() - age_ms,
        }))
        .expect("member")
    }

    fn nodes(ranked: &[Member]) -> Vec<&str> {
        ranked.iter().map(|m| m.node.as_str()).collect()
    }

    #[test]
    fn ranks_by_load_prefers_this_host_on_ties_puts_late_members_last_and_skips_short_ones() {
        let p = Placer::default();
        let hb = Duration::from_secs(2);
        let ms = [
            member("a", 3, 0, 0),
            member("b", 1, 0, 0),
            member("c", 1, 0, 0),
            member("d", 0, 0, 10_000),
        ];
        assert_eq!(nodes(&p.rank(&ms, "c", hb, false)), ["c", "b", "a", "d"]);
        assert_eq!(nodes(&p.rank(&ms, "a", hb, false)), ["b", "c", "a", "d"]);
        assert_eq!(nodes(&p.rank(&ms, "a", hb, true)), ["b", "c", "d"]);
        // A queued request weighs two live CLIs.
        let ms2 = [member("a", 2, 0, 0), member("b", 0, 2, 0)];
        assert_eq!(nodes(&p.rank(&ms2, "a", hb, false)), ["a", "b"]);
        // Placements since the last heartbeat count.
        p.placed(&ms[1]);
        p.placed(&ms[1]);
        assert_eq!(nodes(&p.rank(&ms, "a", hb, true)), ["c", "b", "d"]);
        // Short of memory: passed over.
        let mut short = member("e", 0, 0, 0);
        short.mem_available = Some(MIN_FREE_MEMORY - 1);
        assert_eq!(
            nodes(&p.rank(&[short, member("a", 5, 0, 0)], "a", hb, false)),
            ["a"]
        );
        assert_eq!("local".parse::<Placement>(), Ok(Placement::Local));
        assert!("nearest".parse::<Placement>().is_err());
    }
}
