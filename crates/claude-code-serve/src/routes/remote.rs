//! Routing a session's turns through the cluster: the HTTP API of any host serves a
//! session another member owns, over NATS.
//!
//! The owner subscribes to `claude.<tenant>.sessions.<name>.turn` while it holds the
//! session's lease. A host that gets `POST /v1/sessions/{name}/messages` for a session it
//! does not have looks up the owner's lease and sends a [`TurnRequest`] there
//! (request-reply): the owner answers [`Answer::Accepted`] with a credit subject,
//! [`Answer::Refused`] with the error it would have answered itself, or, while it hands
//! the session over on a graceful leave, [`Answer::Moved`]: the requester looks the owner
//! up again and asks it (see `handover`). The turn's messages
//! then come to the requester's per-turn inbox, one NATS message per SDK message
//! ([`Frame::Message`], or [`Frame::Error`]), ending with [`Frame::End`] (the cost, and
//! the turn's error for a JSON reply).
//!
//! Flow control: the owner sends at most [`WINDOW`] frames that the requester has not
//! credited; the requester credits frames as its HTTP client takes them (every
//! `WINDOW / 2`). Behind the window the owner's turn waits in the same bounded buffer as
//! a local SSE turn, so a slow client never makes the owner buffer without bound. A
//! requester that stops crediting for [`CREDIT_WAIT`] (or says it is gone) is dropped:
//! the turn runs to its end on the owner, unobserved, and is recorded there.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use axum::{http::StatusCode, response::IntoResponse, response::Response};
use claude_code::Message;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::{sync::OwnedSemaphorePermit, task::JoinHandle};

use crate::{
    body::ErrorBody,
    error::ApiError,
    routes::turns::{drive, json_reply, sse_response, CostSource, Outcome, Turn, SSE_BUFFER},
    state::{check_prompt, no_session, session_error, session_key, AppState},
};

/// Frames in flight on the wire for one turn before the owner waits for credit.
pub(crate) const WINDOW: usize = 32;

/// How long an owner waits for credit (or a requester for the next frame) before it
/// gives the other side up.
pub(crate) const CREDIT_WAIT: Duration = Duration::from_secs(120);

/// How long a requester waits for the owner to accept a turn.
const ACCEPT_WAIT: Duration = Duration::from_secs(10);

/// The subject an owner serves a session's turns on.
pub(crate) fn turn_subject(tenant: &str, name: &str) -> String {
    format!("claude.{tenant}.sessions.{name}.turn")
}

/// A routed turn.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TurnRequest {
    /// The prompt (already checked by the requester; checked again by the owner).
    pub(crate) prompt: String,
    /// Where the owner sends the turn's frames.
    pub(crate) inbox: String,
}

/// The owner's answer to a [`TurnRequest`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    /// The turn runs; credit frames on `credit`.
    Accepted {
        /// The owner's credit subject for this turn.
        credit: String,
    },
    /// The owner refused, with the error it would have answered.
    Refused {
        /// HTTP status.
        status: u16,
        /// The error body.
        error: ErrorBody,
    },
    /// The owner is leaving and hands the session over (the turn did not start): look
    /// the owner up again and send it there.
    Moved {
        /// The new owner, once known.
        owner: Option<String>,
    },
}

/// One message on a turn's inbox.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Frame {
    /// An SDK message.
    Message(Box<Message>),
    /// An error the turn sent its client (an SSE `error` event).
    Error {
        /// HTTP status.
        status: u16,
        /// The error body.
        error: ErrorBody,
    },
    /// The turn ended.
    End {
        /// What it cost, USD.
        cost_usd: f64,
        /// The turn's error for a JSON reply, if any.
        error: Option<(u16, ErrorBody)>,
    },
}

/// A credit on a turn's credit subject: `n` more frames taken; 0: the requester is gone.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Credit {
    pub(crate) n: usize,
}

/// 503 `lease_unconfirmed`: this host holds the session's lease but could not renew it
/// before it ran out (cut off from NATS, or NATS down): another member may own the
/// session by now, so it is not served here until a renewal confirms it.
pub(crate) fn lease_unconfirmed(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "lease_unconfirmed",
        format!("this host could not renew its lease of session `{name}` in time (it cannot reach the cluster's NATS server, or just reconnected); it does not serve the session until it can confirm it still owns it: try again shortly, or through another host"),
    )
}

/// Whether this host holds the tenant's session `name` under a lease it could not
/// renew in time (see [`lease_unconfirmed`]).
pub(crate) fn unconfirmed(state: &AppState, tenant: &str, name: &str) -> bool {
    state.cluster().is_some_and(|c| {
        c.leases()
            .unconfirmed(&crate::cluster::owner_key(tenant, name))
    })
}

/// 503 `cluster_unavailable` for a routed request whose connection to NATS dropped while
/// it waited: what the owner sent meanwhile is lost.
fn connection_lost(name: &str, during: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unavailable",
        format!("the connection to the cluster's NATS server dropped {during} on session `{name}`; what its owner sent meanwhile is lost and the turn is not retried (whether it reached the model is unknown): send it again once the cluster is reachable"),
    )
}

fn wire_error(e: &ApiError) -> (u16, ErrorBody) {
    (e.status().as_u16(), e.body())
}

fn from_wire(status: u16, body: ErrorBody) -> ApiError {
    ApiError::remote(status, body.code, body.message)
}

fn encode<T: Serialize>(value: &T) -> bytes::Bytes {
    // The wire types serialise infallibly (no maps with non-string keys).
    serde_json::to_vec(value).map_or_else(|_| bytes::Bytes::new(), bytes::Bytes::from)
}

/// The owner's serving tasks, by supervised session key.
#[derive(Debug, Default)]
pub(crate) struct Serving(Mutex<BTreeMap<String, JoinHandle<()>>>);

impl Serving {
    pub(crate) fn put(&self, key: String, task: JoinHandle<()>) {
        if let Ok(mut tasks) = self.0.lock() {
            if let Some(old) = tasks.insert(key, task) {
                old.abort();
            }
        }
    }

    /// Whether this host serves the session `key` over the cluster.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.lock().is_ok_and(|t| t.contains_key(key))
    }

    /// Stops serving the session `key` over the cluster (its turns and its calls).
    pub(crate) fn stop(&self, key: &str) {
        for key in [key.to_string(), super::remote_calls::calls_key(key)] {
            if let Some(task) = self.0.lock().ok().and_then(|mut t| t.remove(&key)) {
                task.abort();
            }
        }
    }

    /// Stops serving every session.
    pub(crate) fn stop_all(&self) {
        if let Ok(mut tasks) = self.0.lock() {
            for (_, task) in std::mem::take(&mut *tasks) {
                task.abort();
            }
        }
    }
}

/// Serves the session's turns over the cluster, from now (the subscription is in place
/// at the server when this returns) until the lease is gone or [`Serving::stop`].
pub(crate) async fn serve(state: &Arc<AppState>, tenant: &str, name: &str) {
    let Some(cluster) = state.cluster() else {
        return;
    };
    let client = cluster.client().clone();
    let subject = turn_subject(tenant, name);
    let mut sub = match client.subscribe(subject.clone()).await {
        Ok(sub) => sub,
        Err(e) => {
            tracing::warn!(%subject, error = %e, "cannot serve a session over the cluster");
            return;
        }
    };
    crate::cluster::flush(&client).await;
    // Its other calls (get, delete, interrupt, transcript) beside its turns.
    super::remote_calls::serve(state, tenant, name).await;
    let weak: Weak<AppState> = Arc::downgrade(state);
    let (tenant, name) = (tenant.to_string(), name.to_string());
    let key = session_key(&tenant, &name);
    let serving = key.clone();
    let task = tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let Some(state) = weak.upgrade() else { return };
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            let Some(cluster) = state.cluster() else {
                return;
            };
            // Serve only under a live lease of this host's, checked at the source: a
            // host that lost it stays silent (the new owner answers) and stops. A lease
            // still this host's that it could not renew in time (NATS was down; it is
            // renewing now) is refused, typed, and the session stays served.
            let owned = cluster.leases().owner(&tenant, &name).await;
            let refused = match owned {
                Ok(Some(l)) if l.owner == cluster.node() => {
                    if l.expired_at(crate::cluster::now_ms()) || unconfirmed(&state, &tenant, &name)
                    {
                        Some(lease_unconfirmed(&name))
                    } else {
                        None
                    }
                }
                Ok(_) => {
                    tracing::info!(tenant = %tenant, session = %name, "no longer the owner; stopped serving it over the cluster");
                    return;
                }
                Err(e) => Some(ApiError::cluster(&e)),
            };
            if let Some(e) = refused {
                super::remote_calls::count_turn_in(&state, false);
                let (status, error) = wire_error(&e);
                let _ = client
                    .publish(reply, encode(&Answer::Refused { status, error }))
                    .await;
                continue;
            }
            // Still this host's, but being handed over (graceful leave).
            if state.handover.motion(&key).is_some() {
                tokio::spawn(answer_moved(state, key.clone(), reply));
                continue;
            }
            let (tenant, name) = (tenant.clone(), name.clone());
            tokio::spawn(async move {
                own_turn(state, tenant, name, msg.payload, reply).await;
            });
        }
    });
    state.serving.put(serving, task);
}

/// The owner's side of one routed turn.
async fn own_turn(
    state: Arc<AppState>,
    tenant: String,
    name: String,
    payload: bytes::Bytes,
    reply: async_nats::Subject,
) {
    let Some(cluster) = state.cluster() else {
        return;
    };
    let client = cluster.client().clone();
    let refuse = |e: ApiError| {
        super::remote_calls::count_turn_in(&state, false);
        let (status, error) = wire_error(&e);
        encode(&Answer::Refused { status, error })
    };
    let req: TurnRequest = match serde_json::from_slice(&payload) {
        Ok(r) => r,
        Err(e) => {
            let e = ApiError::bad_request(format!("invalid routed turn: {e}"));
            let _ = client.publish(reply, refuse(e)).await;
            return;
        }
    };
    let key = session_key(&tenant, &name);
    // Held until the turn's end went out: a hand-over of the session waits for it.
    let Some(_held) = state.handover.enter(&key) else {
        return answer_moved(state, key, reply).await;
    };
    if let Err(e) = state.accepting().and_then(|()| check_prompt(&req.prompt)) {
        let _ = client.publish(reply, refuse(e)).await;
        return;
    }
    if unconfirmed(&state, &tenant, &name) {
        let _ = client
            .publish(reply, refuse(lease_unconfirmed(&name)))
            .await;
        return;
    }
    let before = state.session_cost(&key).await;
    let stream = match state.sup.session(&key).stream(req.prompt).await {
        Ok(s) => s,
        Err(e) => {
            let _ = client.publish(reply, refuse(session_error(e, &name))).await;
            return;
        }
    };
    let credit_subject = client.new_inbox();
    let mut credits = match client.subscribe(credit_subject.clone()).await {
        Ok(sub) => sub,
        Err(e) => {
            let e = ApiError::cluster(&crate::cluster::ClusterError::Kv(e.to_string()));
            let _ = client.publish(reply, refuse(e)).await;
            return;
        }
    };
    let accepted = Answer::Accepted {
        credit: credit_subject,
    };
    let _ = client.publish(reply, encode(&accepted)).await;
    super::remote_calls::count_turn_in(&state, true);
    let (tx, mut rx) = tokio::sync::mpsc::channel(SSE_BUFFER);
    let turn = Turn {
        tenant,
        kind: "session",
        target: name,
        cost: CostSource::Supervised {
            key,
            before,
            held: None,
        },
        permit: None,
    };
    let task = tokio::spawn(drive(state.clone(), stream, turn, Some(tx)));
    let inbox = async_nats::Subject::from(req.inbox);
    let mut unacked = 0usize;
    let mut requester = true;
    while let Some(item) = rx.recv().await {
        while unacked >= WINDOW {
            match tokio::time::timeout(CREDIT_WAIT, credits.next()).await {
                Ok(Some(m)) => match serde_json::from_slice::<Credit>(&m.payload) {
                    Ok(Credit { n }) if n > 0 => unacked = unacked.saturating_sub(n),
                    _ => {
                        requester = false;
                        break;
                    }
                },
                _ => {
                    requester = false;
                    break;
                }
            }
        }
        if !requester {
            break;
        }
        let frame = match item {
            Ok(message) => Frame::Message(Box::new(message)),
            Err(e) => {
                let (status, error) = wire_error(&e);
                Frame::Error { status, error }
            }
        };
        if client.publish(inbox.clone(), encode(&frame)).await.is_err() {
            break;
        }
        unacked += 1;
    }
    // Dropping the buffer tells the turn its client left; it runs on to its end.
    drop(rx);
    let outcome = task.await;
    if requester {
        let (cost_usd, error) = match outcome {
            Ok(o) => (o.cost_usd, o.error.as_ref().map(wire_error)),
            Err(e) => (
                0.0,
                Some(wire_error(&ApiError::internal(format!(
                    "the turn's task failed: {e}"
                )))),
            ),
        };
        let _ = client
            .publish(inbox, encode(&Frame::End { cost_usd, error }))
            .await;
    }
}

/// A routed turn's outcome for the requester.
pub(crate) enum Routed {
    /// The owner ran it (or refused it): the client's answer.
    Answered(Response),
    /// The session moved to this host while the turn was being routed: run it here.
    Here {
        /// The prompt.
        prompt: String,
        /// The tenant's concurrent-turn permit.
        permit: Option<OwnedSemaphorePermit>,
    },
}

/// How often a requester follows a leaving owner's `moved` answer.
const MOVE_RETRIES: usize = 10;

/// Whether the session's lease names another owner than `owner` now.
async fn owner_changed(
    cluster: &crate::cluster::Cluster,
    tenant: &str,
    name: &str,
    owner: &str,
) -> bool {
    match cluster.leases().owner(tenant, name).await {
        Ok(Some(lease)) => lease.owner != owner,
        _ => false,
    }
}

/// How often a requester asks again when no host serves the session's subject (a
/// hand-over between the lease's update and the new owner's subscription), and the pause.
const NO_RESPONDER_RETRIES: usize = 10;
const NO_RESPONDER_PAUSE: Duration = Duration::from_millis(100);

fn owner_unavailable(name: &str, owner: &str, detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "owner_unavailable",
        format!(
            "session `{name}` is owned by cluster member `{owner}`, which does not answer ({detail}); try again"
        ),
    )
}

/// The owner's answer to a turn for a session it is handing over: `moved` once the
/// session moved (or after [`MOVE_HOLD`](crate::handover::MOVE_HOLD)), 503 `draining`
/// when no member took it.
async fn answer_moved(state: Arc<AppState>, key: String, reply: async_nats::Subject) {
    let Some(cluster) = state.cluster() else {
        return;
    };
    let answer = match state
        .handover
        .settled(&key, crate::handover::MOVE_HOLD)
        .await
    {
        Some(crate::handover::Motion::Moved(owner)) => Answer::Moved { owner: Some(owner) },
        Some(crate::handover::Motion::Stayed) => {
            let (status, error) = wire_error(&ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "the session's owner is leaving the cluster and no other member took the session over",
            ));
            Answer::Refused { status, error }
        }
        _ => Answer::Moved { owner: None },
    };
    let _ = cluster.client().publish(reply, encode(&answer)).await;
}

/// Why an owner gave no answer to a request.
pub(crate) enum NoAnswer {
    /// None within the wait.
    InTime,
    /// Its heartbeat expired while the requester waited.
    Left,
}

/// Sends a request to a cluster member and waits for the answer (at most `wait`),
/// checking the member's heartbeat every heartbeat: a member cut off or dead is given up
/// within the heartbeat TTL, not after the whole wait. Routed turns and calls, placement
/// and hand-over all ask a member this way.
pub(crate) async fn ask_member(
    cluster: &crate::cluster::Cluster,
    subject: String,
    payload: bytes::Bytes,
    member: &str,
    wait: Duration,
) -> Result<Result<async_nats::Message, async_nats::RequestError>, NoAnswer> {
    let mut request = Box::pin(cluster.client().request(subject, payload));
    let deadline = tokio::time::Instant::now() + wait;
    let slice = cluster.heartbeat().max(Duration::from_millis(200));
    loop {
        match tokio::time::timeout(slice, &mut request).await {
            Ok(answer) => return Ok(answer),
            Err(_) if tokio::time::Instant::now() >= deadline => return Err(NoAnswer::InTime),
            Err(_) => {
                if let Ok(false) = cluster.is_member(member).await {
                    return Err(NoAnswer::Left);
                }
            }
        }
    }
}

/// The requester's side: forwards the turn to the session's owner and answers the HTTP
/// client (SSE or JSON) from the frames. `Err` when the session is not in the cluster
/// either (404) or its owner does not answer (503 `owner_unavailable`). An owner that
/// hands the session over answers `moved`: the owner is looked up again and asked (at
/// most [`MOVE_RETRIES`] times); [`Routed::Here`] when that is this host.
pub(crate) async fn forward(
    state: &Arc<AppState>,
    tenant: &str,
    name: &str,
    prompt: String,
    permit: Option<OwnedSemaphorePermit>,
    sse: bool,
) -> Result<Routed, ApiError> {
    let Some(cluster) = state.cluster() else {
        return Err(no_session(name));
    };
    // NATS down: at once, not after a request's timeout.
    cluster.link().check().map_err(|e| ApiError::cluster(&e))?;
    // A reconnection from now on may have lost the owner's messages: the turn fails then.
    let epoch = cluster.link().epoch();
    let client = cluster.client().clone();
    let inbox = client.new_inbox();
    let frames = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| ApiError::cluster(&crate::cluster::ClusterError::Kv(e.to_string())))?;
    let request = encode(&TurnRequest {
        prompt: prompt.clone(),
        inbox,
    });
    let (mut moves, mut silent) = (0, 0);
    let (owner, credit) = loop {
        let lease = cluster
            .leases()
            .owner(tenant, name)
            .await
            .map_err(|e| ApiError::cluster(&e))?;
        let Some(lease) = lease else {
            return Err(no_session(name));
        };
        if lease.owner == cluster.node() {
            // Handed over to this host since it looked (or being adopted here right
            // now): it runs here (a 404 there if it is not here after all).
            state
                .handover
                .adoption(&session_key(tenant, name), ACCEPT_WAIT)
                .await;
            return Ok(Routed::Here { prompt, permit });
        }
        let owner = lease.owner;
        let asked = ask_member(
            cluster,
            turn_subject(tenant, name),
            request.clone(),
            &owner,
            ACCEPT_WAIT,
        );
        let answer = tokio::select! {
            answer = asked => answer,
            () = cluster.link().lost(epoch) => {
                return Err(connection_lost(name, "while a turn was being sent"));
            }
        };
        let answer = match answer {
            Ok(Ok(answer)) => Ok(answer),
            // Unanswered, and the session moved meanwhile: the old owner had stopped
            // serving it as this request reached it; ask the new one.
            Ok(Err(_)) | Err(_)
                if moves < MOVE_RETRIES && owner_changed(cluster, tenant, name, &owner).await =>
            {
                moves += 1;
                continue;
            }
            Err(NoAnswer::InTime) => {
                return Err(owner_unavailable(name, &owner, "no answer in time"))
            }
            Err(NoAnswer::Left) => {
                return Err(owner_unavailable(
                    name,
                    &owner,
                    "it left the cluster: its heartbeat expired; the session moves to another member once its lease runs out",
                ))
            }
            Ok(Err(e)) => Err(e),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(e)
                if e.kind() == async_nats::RequestErrorKind::NoResponders
                    && silent < NO_RESPONDER_RETRIES =>
            {
                silent += 1;
                tokio::time::sleep(NO_RESPONDER_PAUSE).await;
                continue;
            }
            Err(e) => return Err(owner_unavailable(name, &owner, &e.to_string())),
        };
        match serde_json::from_slice::<Answer>(&answer.payload) {
            Ok(Answer::Accepted { credit }) => break (owner, credit),
            Ok(Answer::Refused { status, error }) => return Err(from_wire(status, error)),
            Ok(Answer::Moved { .. }) if moves < MOVE_RETRIES => moves += 1,
            Ok(Answer::Moved { .. }) => {
                return Err(owner_unavailable(
                    name,
                    &owner,
                    "it is still handing the session over",
                ))
            }
            Err(e) => {
                return Err(owner_unavailable(
                    name,
                    &owner,
                    &format!("unreadable answer: {e}"),
                ))
            }
        }
    };
    let unavailable = |detail: String| owner_unavailable(name, &owner, &detail);
    let end = Arc::new(Mutex::new(None));
    let stream = Frames {
        cluster: cluster.clone(),
        name: name.to_string(),
        epoch,
        owner: owner.clone(),
        frames,
        client,
        credit: credit.into(),
        taken: 0,
        done: false,
        end: end.clone(),
        _permit: permit,
    };
    let items = futures::stream::unfold(stream, |mut s| async move {
        let item = s.next().await?;
        Some((item, s))
    });
    if sse {
        return Ok(Routed::Answered(sse_response(items)));
    }
    let mut result = None;
    let mut failed = None;
    let mut items = std::pin::pin!(items);
    while let Some(item) = items.next().await {
        match item {
            Ok(Message::Result(r)) => result = Some((*r).clone()),
            Ok(_) => {}
            Err(e) => failed = Some(e),
        }
    }
    // Without the owner's end, the last error (`owner_lost`) is the turn's.
    let (cost_usd, error) = end.lock().ok().and_then(|mut e| e.take()).unwrap_or((
        0.0,
        Some(failed.unwrap_or_else(|| unavailable("the turn's stream ended early".into()))),
    ));
    Ok(Routed::Answered(
        json_reply(Outcome {
            result,
            cost_usd,
            error,
        })
        .into_response(),
    ))
}

/// 502 `owner_lost`: the owner's heartbeat expired while it ran the turn.
fn owner_died(owner: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "owner_lost",
        format!(
            "cluster member `{owner}`, which ran this turn, left the cluster (its heartbeat expired) before the turn ended; whether the turn reached the model is unknown and it is not retried; the session moves to another member once its lease expires: send the message again"
        ),
    )
}

/// A routed turn's end as the owner reported it: its cost, and its error for a JSON reply.
type End = (f64, Option<ApiError>);

/// The requester's view of a routed turn's inbox.
struct Frames {
    cluster: Arc<crate::cluster::Cluster>,
    /// The session.
    name: String,
    /// The connection's epoch when the turn was sent: a reconnection since lost frames.
    epoch: u64,
    /// The owner running the turn.
    owner: String,
    frames: async_nats::Subscriber,
    client: async_nats::Client,
    credit: async_nats::Subject,
    /// Frames taken since the last credit.
    taken: usize,
    done: bool,
    end: Arc<Mutex<Option<End>>>,
    /// The tenant's concurrent-turn permit on this host, held until the turn ends.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Frames {
    /// The next item for the HTTP client, crediting what the client took so far.
    async fn next(&mut self) -> Option<Result<Message, ApiError>> {
        if self.done {
            return None;
        }
        if self.taken >= WINDOW / 2 {
            let credit = encode(&Credit { n: self.taken });
            let _ = self.client.publish(self.credit.clone(), credit).await;
            self.taken = 0;
        }
        // Waiting for the next frame, the owner's heartbeat is checked every heartbeat: an
        // owner that died mid-turn fails the turn within the heartbeat TTL.
        let deadline = tokio::time::Instant::now() + CREDIT_WAIT;
        let slice = self.cluster.heartbeat().max(Duration::from_millis(200));
        let frame = loop {
            let next = tokio::time::timeout(slice, self.frames.next());
            let next = tokio::select! {
                // Frames are taken first: those that arrived before the drop count.
                biased;
                next = next => next,
                () = self.cluster.link().lost(self.epoch) => {
                    self.done = true;
                    return Some(Err(connection_lost(&self.name, "while its turn ran")));
                }
            };
            match next {
                Ok(Some(m)) => break serde_json::from_slice::<Frame>(&m.payload).ok(),
                Ok(None) => break None,
                Err(_) if tokio::time::Instant::now() >= deadline => break None,
                Err(_) => {
                    if let Ok(false) = self.cluster.is_member(&self.owner).await {
                        self.done = true;
                        return Some(Err(owner_died(&self.owner)));
                    }
                }
            }
        };
        self.taken += 1;
        match frame {
            Some(Frame::Message(m)) => Some(Ok(*m)),
            Some(Frame::Error { status, error }) => Some(Err(from_wire(status, error))),
            Some(Frame::End { cost_usd, error }) => {
                self.done = true;
                if let Ok(mut end) = self.end.lock() {
                    *end = Some((cost_usd, error.map(|(s, b)| from_wire(s, b))));
                }
                None
            }
            None => {
                self.done = true;
                Some(Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "owner_lost",
                    "the session's owner stopped sending this turn's messages",
                )))
            }
        }
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        if !self.done {
            // The HTTP client went away: tell the owner to stop sending.
            let (client, credit) = (self.client.clone(), self.credit.clone());
            tokio::spawn(async move {
                let _ = client.publish(credit, encode(&Credit { n: 0 })).await;
            });
        }
    }
}
