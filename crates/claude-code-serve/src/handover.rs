//! Graceful leave: a clustered host that shuts down (SIGTERM, `Host::shutdown`) hands
//! each dynamic session it owns to another live member before it leaves, so no failover
//! timeout is needed and no turn fails.
//!
//! For each session it holds the lease of, the leaving host:
//! 1. stops taking new turns on it ([`prepare`], before the host drains): a routed turn
//!    that arrives meanwhile is held until the session has moved and then answered
//!    `moved` (the requester looks the owner up again and sends it there; the turn had not
//!    started, so that is no replay), and an HTTP turn that arrives at this host is
//!    forwarded to the new owner once it is known;
//! 2. lets a running turn end (bounded by the drain timeout) and stores the session's
//!    checkpoint;
//! 3. picks members by free capacity (the same ranking as placement) and asks the best
//!    one on `claude.node.<node>.adopt` ([`adopt_subject`]) to adopt it: the member takes
//!    the lease with an update at the revision the leaving host last wrote (it stopped
//!    renewing first), so there is never a moment with two owners or none, then restores
//!    the checkpoint and registers the session hibernated (it resumes with `--resume` on
//!    the next message) and serves it;
//! 4. then forgets its own copy (stops its CLI, drops it from its state store; its ledger
//!    rows stay). When no member takes the session, the lease is released as before
//!    (logged) and the session stays in this host's store.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::response::Response;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::{error::ApiError, state::session_key, state::AppState};

/// How long a leaving host waits for a member to answer an adopt request.
const ADOPT_WAIT: Duration = Duration::from_secs(10);

/// How long a leaving host holds a routed turn for a session in motion before it answers
/// `moved` anyway (the requester then asks again). Below the requester's accept wait.
pub(crate) const MOVE_HOLD: Duration = Duration::from_secs(5);

/// How long an HTTP turn at the leaving host waits for its session to move.
const FORWARD_WAIT: Duration = Duration::from_secs(30);

/// The subject a member takes adopt requests on.
pub(crate) fn adopt_subject(node: &str) -> String {
    format!("claude.node.{node}.adopt")
}

/// Where a session of a leaving host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Motion {
    /// Being handed over.
    Moving,
    /// Handed to this member.
    Moved(String),
    /// No member took it: its lease was released; it stays here, not served.
    Stayed,
}

#[derive(Debug, Default)]
struct Slot {
    /// Turns running on it here.
    turns: usize,
    motion: Option<Motion>,
    /// This host is adopting it (its lease is this host's, it is not registered yet).
    adopting: bool,
}

impl Slot {
    fn unused(&self) -> bool {
        self.turns == 0 && self.motion.is_none() && !self.adopting
    }
}

/// The sessions' turns and hand-over states on this host.
#[derive(Debug, Clone)]
pub(crate) struct Handover {
    slots: Arc<Mutex<BTreeMap<String, Slot>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Handover {
    fn default() -> Self {
        Handover {
            slots: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

/// Held while a turn runs on a session here: the hand-over of that session waits for it.
#[derive(Debug)]
pub(crate) struct TurnGuard {
    handover: Handover,
    key: String,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.handover.slots.lock() {
            if let Some(slot) = slots.get_mut(&self.key) {
                slot.turns = slot.turns.saturating_sub(1);
                if slot.unused() {
                    slots.remove(&self.key);
                }
            }
        }
        self.handover.changed.send_modify(|g| *g += 1);
    }
}

/// Held while this host adopts a session handed over to it.
#[derive(Debug)]
struct AdoptGuard {
    handover: Handover,
    key: String,
}

impl Drop for AdoptGuard {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.handover.slots.lock() {
            if let Some(slot) = slots.get_mut(&self.key) {
                slot.adopting = false;
                if slot.unused() {
                    slots.remove(&self.key);
                }
            }
        }
        self.handover.changed.send_modify(|g| *g += 1);
    }
}

impl Handover {
    fn adopting(&self, key: &str) -> AdoptGuard {
        if let Ok(mut slots) = self.slots.lock() {
            slots.entry(key.to_string()).or_default().adopting = true;
        }
        AdoptGuard {
            handover: self.clone(),
            key: key.to_string(),
        }
    }

    /// Whether this host was adopting the session `key`; if so, waits (at most `max`)
    /// until the adoption is done.
    pub(crate) async fn adoption(&self, key: &str, max: Duration) -> bool {
        let adopting = |s: &BTreeMap<String, Slot>| s.get(key).is_some_and(|s| s.adopting);
        if !self.slots.lock().is_ok_and(|s| adopting(&s)) {
            return false;
        }
        self.wait_for(Instant::now() + max, |s| (!adopting(s)).then_some(()))
            .await;
        true
    }

    /// Starts a turn on the session `key` (supervised name): `None` when it is being (or
    /// was) handed over, and the turn must go to its new owner.
    pub(crate) fn enter(&self, key: &str) -> Option<TurnGuard> {
        let mut slots = self.slots.lock().ok()?;
        let slot = slots.entry(key.to_string()).or_default();
        if slot.motion.is_some() {
            return None;
        }
        slot.turns += 1;
        Some(TurnGuard {
            handover: self.clone(),
            key: key.to_string(),
        })
    }

    /// The session's hand-over state, if it is (or was) handed over.
    pub(crate) fn motion(&self, key: &str) -> Option<Motion> {
        self.slots
            .lock()
            .ok()
            .and_then(|s| s.get(key).and_then(|s| s.motion.clone()))
    }

    fn set(&self, key: &str, motion: Motion) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.entry(key.to_string()).or_default().motion = Some(motion);
        }
        self.changed.send_modify(|g| *g += 1);
    }

    /// Waits until `check` says yes or `deadline` passes; the last answer.
    async fn wait_for<T>(
        &self,
        deadline: Instant,
        mut check: impl FnMut(&BTreeMap<String, Slot>) -> Option<T>,
    ) -> Option<T> {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(found) = self.slots.lock().ok().and_then(|s| check(&s)) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
                return None;
            }
        }
    }

    /// Waits (until `deadline`) for the turns running on `key` to end.
    async fn idle(&self, key: &str, deadline: Instant) -> bool {
        self.wait_for(deadline, |s| {
            s.get(key).is_none_or(|s| s.turns == 0).then_some(())
        })
        .await
        .is_some()
    }

    /// Waits (at most `max`) while `key` is moving; its state then (`Moving` when the
    /// wait ran out).
    pub(crate) async fn settled(&self, key: &str, max: Duration) -> Option<Motion> {
        let done = self
            .wait_for(Instant::now() + max, |s| {
                match s.get(key)?.motion.clone()? {
                    Motion::Moving => None,
                    done => Some(done),
                }
            })
            .await;
        done.or_else(|| self.motion(key))
    }
}

/// Marks every session this host holds the lease of as moving: from now on its turns go
/// to its next owner. Run before the host starts draining. Without a connection to NATS
/// nothing can move: nothing is marked (the host drains as a lone host would).
pub(crate) fn prepare(state: &AppState) {
    let Some(cluster) = state.cluster() else {
        return;
    };
    if !cluster.link().connected() {
        return;
    }
    for key in cluster.leases().held() {
        if let Some((tenant, name)) = key.split_once('.') {
            state
                .handover
                .set(&session_key(tenant, name), Motion::Moving);
        }
    }
}

/// Hands every session marked by [`prepare`] to another member (concurrently; each waits
/// for its running turn until `drain` has passed). Returns how many moved.
pub(crate) async fn leave(state: &Arc<AppState>, drain: Duration) -> usize {
    let Some(cluster) = state.cluster() else {
        return 0;
    };
    let started = Instant::now();
    let deadline = started + drain;
    let sessions: Vec<(String, String)> = cluster
        .leases()
        .held()
        .iter()
        .filter_map(|k| k.split_once('.'))
        .map(|(t, n)| (t.to_string(), n.to_string()))
        .collect();
    if sessions.is_empty() {
        return 0;
    }
    // NATS down: no member can be asked, no lease moved. The sessions stay in this host's
    // store; their leases run out and the others take them over from their checkpoints
    // once NATS is back and this host's heartbeat has expired (a failover).
    if let Err(e) = cluster.link().check() {
        tracing::warn!(sessions = sessions.len(), error = %e,
            "cannot hand sessions over: the cluster's NATS server is unreachable; they fail over once it is back");
        for (t, n) in &sessions {
            state.handover.set(&session_key(t, n), Motion::Stayed);
        }
        return 0;
    }
    let moves = sessions
        .iter()
        .map(|(t, n)| hand_over(state, t, n, deadline));
    let moved = futures::future::join_all(moves)
        .await
        .into_iter()
        .filter(|m| *m)
        .count();
    tracing::info!(
        moved,
        of = sessions.len(),
        ms = started.elapsed().as_millis() as u64,
        "handed sessions over to other cluster members before leaving"
    );
    moved
}

/// An adopt request: take the lease at `revision` and the session from its checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AdoptRequest {
    tenant: String,
    session: String,
    /// The leaving owner.
    from: String,
    /// The revision of the lease it last wrote.
    revision: u64,
}

/// The member's answer.
#[derive(Debug, Serialize, Deserialize)]
struct AdoptAnswer {
    adopted: bool,
    /// Why not.
    reason: Option<String>,
}

/// Hands one session over; true when a member took it.
async fn hand_over(state: &Arc<AppState>, tenant: &str, name: &str, deadline: Instant) -> bool {
    let Some(cluster) = state.cluster() else {
        return false;
    };
    let key = session_key(tenant, name);
    if !state.handover.idle(&key, deadline).await {
        tracing::warn!(tenant, session = name, "a turn still runs at the drain timeout; handing the session over from its last checkpoint");
    }
    crate::failover::checkpoint(state, tenant, name).await;
    let members = match tokio::time::timeout(ADOPT_WAIT, cluster.members()).await {
        Ok(Ok(m)) => m,
        _ => Vec::new(),
    };
    let ranked = state
        .placement
        .rank(&members, cluster.node(), cluster.heartbeat(), true);
    // Not served here any more before the lease moves (the unsubscription reaches the
    // server before the adopt request, on the same connection): a turn request the new
    // owner can receive never reaches this host too. Turns already held here are
    // answered `moved` once the session moved.
    state.serving.stop(&key);
    let Some(mut revision) = cluster.leases().hand_off(tenant, name) else {
        // Lost meanwhile: another member has it already.
        state.handover.set(&key, Motion::Stayed);
        return false;
    };
    let request = AdoptRequest {
        tenant: tenant.to_string(),
        session: name.to_string(),
        from: cluster.node().to_string(),
        revision,
    };
    for member in ranked {
        let request = AdoptRequest {
            revision,
            ..request.clone()
        };
        let payload = bytes::Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
        // Counted before asking (no await since the ranking): the hand-overs running
        // alongside see it and spread over the members.
        state.placement.placed(&member);
        let asked = crate::routes::remote::ask_member(
            cluster,
            adopt_subject(&member.node),
            payload.clone(),
            &member.node,
            ADOPT_WAIT,
        )
        .await;
        let adopted = match asked {
            Ok(Ok(m)) => match serde_json::from_slice::<AdoptAnswer>(&m.payload) {
                Ok(a) if a.adopted => true,
                Ok(a) => {
                    tracing::info!(tenant, session = name, member = %member.node, reason = a.reason.as_deref().unwrap_or("-"), "a member did not adopt a session");
                    false
                }
                Err(_) => false,
            },
            Ok(Err(e)) => {
                tracing::info!(tenant, session = name, member = %member.node, error = %e, "a member did not answer an adopt request");
                false
            }
            Err(_) => false,
        };
        // An answer lost on the way: the lease says whether it took it.
        let owner = match cluster.leases().entry(tenant, name).await {
            Ok(Some((lease, rev))) => Some((lease.owner, rev)),
            Ok(None) => None,
            Err(_) if adopted => Some((member.node.clone(), 0)),
            Err(_) => Some((cluster.node().to_string(), revision)),
        };
        match owner {
            Some((owner, _)) if owner == member.node => {
                forget_here(state, tenant, name).await;
                state.handover.set(&key, Motion::Moved(member.node.clone()));
                tracing::info!(tenant, session = name, member = %member.node, "handed a session over");
                return true;
            }
            Some((owner, rev)) if owner == cluster.node() && rev == revision => continue,
            // The member took the lease but could not adopt the session and released it
            // (its checkpoint unreadable in time, its CLI refused, ...): take it back and
            // ask the next one, rather than leave the session without an owner.
            None => match retake(cluster, tenant, name).await {
                Some(r) => {
                    tracing::info!(tenant, session = name, member = %member.node, "a member gave a session back during its hand-over; asking the next one");
                    revision = r;
                }
                None => {
                    tracing::warn!(tenant, session = name, "the session's lease was given back and could not be taken again; leaving it");
                    state.handover.set(&key, Motion::Stayed);
                    return false;
                }
            },
            other => {
                // Someone else changed it (or the adopter gave it up and released it).
                tracing::warn!(tenant, session = name, lease = ?other, "the session's lease changed during its hand-over; leaving it");
                state.handover.set(&key, Motion::Stayed);
                return false;
            }
        }
    }
    tracing::warn!(
        tenant,
        session = name,
        "no cluster member could take the session over; releasing its lease (it stays in this host's store)"
    );
    if let Err(e) = cluster.leases().release_at(tenant, name, revision).await {
        tracing::warn!(tenant, session = name, error = %e, "releasing a session lease failed");
    }
    state.handover.set(&key, Motion::Stayed);
    false
}

/// Claims a free lease again for a hand-over to go on: the revision to hand off next.
async fn retake(cluster: &crate::cluster::Cluster, tenant: &str, name: &str) -> Option<u64> {
    match cluster.leases().claim(tenant, name).await {
        Ok(crate::cluster::Claim::Won) => cluster.leases().hand_off(tenant, name),
        _ => None,
    }
}

/// The leaving host's copy of a session that moved: its CLI stops, its grant at the
/// credential proxy goes, and it leaves the state store (its ledger rows stay).
async fn forget_here(state: &Arc<AppState>, tenant: &str, name: &str) {
    let key = session_key(tenant, name);
    let _ = state.sup.terminate_session(&key).await;
    state.proxies.revoke(&key);
    let (t, n) = (tenant.to_string(), name.to_string());
    if let Err(e) = state.store.run(move |s| s.delete_session(&t, &n)).await {
        tracing::warn!(tenant, session = name, error = %e, "cannot forget a session handed over");
    }
}

/// Takes adopt requests on [`adopt_subject`] while the host is in its cluster.
pub(crate) async fn listen(state: &Arc<AppState>) {
    let Some(cluster) = state.cluster() else {
        return;
    };
    let client = cluster.client().clone();
    let subject = adopt_subject(cluster.node());
    let mut sub = match client.subscribe(subject.clone()).await {
        Ok(sub) => sub,
        Err(e) => {
            tracing::warn!(%subject, error = %e, "cannot take sessions handed over to this host");
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
                let answer = match adopt(&state, &msg.payload).await {
                    Ok(()) => AdoptAnswer {
                        adopted: true,
                        reason: None,
                    },
                    Err(reason) => AdoptAnswer {
                        adopted: false,
                        reason: Some(reason),
                    },
                };
                let bytes = serde_json::to_vec(&answer).unwrap_or_default();
                let _ = client.publish(reply, bytes.into()).await;
            });
        }
    });
    state.serving.put(".adopt".to_string(), task);
}

/// The adopting member's side: takes the lease at the leaving owner's revision, then
/// restores the session from its checkpoint, hibernated, and serves it.
async fn adopt(state: &Arc<AppState>, payload: &[u8]) -> Result<(), String> {
    let req: AdoptRequest =
        serde_json::from_slice(payload).map_err(|e| format!("invalid adopt request: {e}"))?;
    let cluster = state.cluster().ok_or("not clustered")?;
    if state.accepting().is_err() {
        return Err("this host is draining".into());
    }
    if !(crate::state::is_valid_name(&req.tenant) && crate::state::is_valid_name(&req.session)) {
        return Err("invalid tenant or session name".into());
    }
    // From before the lease is this host's until the session is registered: a turn
    // here that finds the lease ours waits for it (`remote::forward`).
    let _adopting = state
        .handover
        .adopting(&session_key(&req.tenant, &req.session));
    cluster
        .leases()
        .take_over(&req.tenant, &req.session, req.revision)
        .await
        .map_err(|e| e.to_string())?;
    crate::failover::adopt(state, &req.tenant, &req.session).await;
    if cluster
        .leases()
        .holds(&crate::cluster::owner_key(&req.tenant, &req.session))
    {
        tracing::info!(tenant = %req.tenant, session = %req.session, from = %req.from, "adopted a session handed over by a leaving member");
        Ok(())
    } else {
        Err("could not restore the session from its checkpoint (its lease was released)".into())
    }
}

/// An HTTP turn at the leaving host on a session it hands over: once the session moved,
/// it goes to the new owner; if it stayed (no member took it) or the move takes longer
/// than [`FORWARD_WAIT`], 503 `draining`.
pub(crate) async fn forward_moved(
    state: &Arc<AppState>,
    tenant: &str,
    name: &str,
    prompt: String,
    permit: Option<OwnedSemaphorePermit>,
    sse: bool,
) -> Result<Response, ApiError> {
    let key = session_key(tenant, name);
    match state.handover.settled(&key, FORWARD_WAIT).await {
        Some(Motion::Moved(_)) => {
            match crate::routes::remote::forward(state, tenant, name, prompt, permit, sse).await? {
                crate::routes::remote::Routed::Answered(response) => Ok(response),
                crate::routes::remote::Routed::Here { .. } => Err(draining()),
            }
        }
        _ => Err(draining()),
    }
}

fn draining() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "draining",
        "the host is draining and accepts no new work; no other cluster member took this session over",
    )
}
