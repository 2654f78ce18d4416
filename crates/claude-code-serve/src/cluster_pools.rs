//! Cluster pools, the serving side: in a cluster, `POST /v1/pools/{pool}/messages` (JSON)
//! publishes the request as a job to the work-queue stream (see
//! [`cluster::Jobs`](crate::cluster::Jobs)) and waits for its answer; every host that has
//! the pool pulls jobs from the pool's shared durable consumer and runs them on its local
//! pool.
//!
//! - **Executor.** One pull loop per pool per host asks for at most as many jobs as the
//!   host has free slots (the pool's size), so a host never holds more jobs than it has
//!   members: jobs it cannot run yet stay in the stream for the other hosts, and the local
//!   pool's admission control and queue still apply. A job is claimed in the job records
//!   (compare-and-set), run, its reply stored in its record, sent to the requester's
//!   inbox, and only then acknowledged. While the turn runs the host reports progress
//!   every third of the ack wait, so a long turn is not redelivered from a live host; a
//!   job whose host dies before acknowledging it is redelivered to another host after the
//!   ack wait. A redelivered job whose record holds a reply is not run again: the stored
//!   reply is sent again.
//! - **Requester.** Checks the pool's waiting jobs against the pool's `max_queue` (429
//!   `queue_full`), publishes the job (id: a UUID, also the stream's dedup id), and waits
//!   for the first reply carrying that id; any later reply is ignored. If no host starts
//!   the job within the pool's queue timeout (or, once a host that started it has left the
//!   cluster, within the ack wait plus the queue timeout), the requester cancels it in its
//!   record (so no host runs it later) and answers 429 `queue_full`, unless the record
//!   shows the job ran or runs on a live host.
//!
//! Server-Sent Events stay local: a pool request with `Accept: text/event-stream` runs on
//! the host that got it, as without a cluster.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use async_nats::jetstream::{self, consumer::PullConsumer, AckKind};
use axum::{
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures::StreamExt;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
};

use crate::{
    body::ErrorBody,
    cluster::{Cancel, Claimed, Cluster, ClusterError, Job, JobFrame, JobRecord, JobReply},
    config::PoolConfig,
    error::ApiError,
    routes::turns::{drive, json_reply, CostSource, Turn},
    state::AppState,
};

/// The response header naming the cluster member that ran a pool job.
pub(crate) const NODE_HEADER: &str = "x-claude-pool-node";

/// The response header with the job's delivery attempt (2 or more: redelivered after the
/// host that had it first died or stalled).
pub(crate) const ATTEMPT_HEADER: &str = "x-claude-pool-attempt";

/// How long one pull request waits at the server for jobs.
const PULL_WAIT: Duration = Duration::from_secs(1);

/// What the cluster side of a pool needs from its configuration.
#[derive(Debug, Clone)]
struct Settings {
    max_queue: usize,
    queue_timeout: Duration,
    /// This host's slots for the pool's jobs (its size).
    slots: Arc<Semaphore>,
    size: usize,
}

/// This host's share of the cluster pools: the pools' settings, their consumers and the
/// pull loops.
#[derive(Debug, Default)]
pub(crate) struct ClusterPools {
    settings: BTreeMap<String, Settings>,
    consumers: Mutex<BTreeMap<String, PullConsumer>>,
    pullers: Mutex<Vec<JoinHandle<()>>>,
}

impl ClusterPools {
    /// The cluster side of the configured pools (nothing runs until [`start`]).
    pub(crate) fn new(pools: &[PoolConfig]) -> Self {
        let settings = pools
            .iter()
            .map(|p| {
                let settings = Settings {
                    max_queue: p.max_queue,
                    queue_timeout: p.queue_timeout,
                    slots: Arc::new(Semaphore::new(p.size)),
                    size: p.size,
                };
                (p.name.clone(), settings)
            })
            .collect();
        ClusterPools {
            settings,
            ..Default::default()
        }
    }

    fn consumer(&self, pool: &str) -> Option<PullConsumer> {
        self.consumers.lock().ok()?.get(pool).cloned()
    }

    /// Stops pulling jobs, then waits (up to `timeout`) for the jobs this host runs to
    /// be answered. A job cut short after that is redelivered to another host.
    pub(crate) async fn stop(&self, timeout: Duration) {
        if let Ok(mut pullers) = self.pullers.lock() {
            for task in pullers.drain(..) {
                task.abort();
            }
        }
        let idle = async {
            for s in self.settings.values() {
                let n = u32::try_from(s.size).unwrap_or(u32::MAX);
                let _ = s.slots.acquire_many(n).await;
            }
        };
        if tokio::time::timeout(timeout, idle).await.is_err() {
            tracing::warn!(
                ?timeout,
                "cluster pool jobs still running at shutdown; they are redelivered to other hosts"
            );
        }
    }
}

/// Opens each pool's consumer and starts pulling its jobs (the host joined a cluster).
pub(crate) async fn start(state: &Arc<AppState>, cluster: &Cluster) -> Result<(), ClusterError> {
    for (name, settings) in &state.cluster_pools.settings {
        let consumer = cluster.jobs().consumer(name).await?;
        if let Ok(mut consumers) = state.cluster_pools.consumers.lock() {
            consumers.insert(name.clone(), consumer.clone());
        }
        let task = tokio::spawn(pull(
            Arc::downgrade(state),
            name.clone(),
            consumer,
            settings.slots.clone(),
        ));
        if let Ok(mut pullers) = state.cluster_pools.pullers.lock() {
            pullers.push(task);
        }
    }
    Ok(())
}

/// Pulls `pool`'s jobs, as many at a time as there are free slots, and runs each.
async fn pull(weak: Weak<AppState>, pool: String, consumer: PullConsumer, slots: Arc<Semaphore>) {
    loop {
        let Ok(first) = slots.clone().acquire_owned().await else {
            return;
        };
        // NATS down: wait for it quietly (a pull would fail; the consumer and its jobs are
        // in the server's store and are pulled again once it is back).
        let down = weak
            .upgrade()
            .and_then(|s| s.cluster().map(|c| !c.link().connected()));
        if down != Some(false) {
            if down.is_none() {
                return;
            }
            drop(first);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let mut permits = vec![first];
        while let Ok(more) = slots.clone().try_acquire_owned() {
            permits.push(more);
        }
        let batch = consumer
            .batch()
            .max_messages(permits.len())
            .expires(PULL_WAIT)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(pool = %pool, error = %e, "cannot pull cluster pool jobs; retrying");
                drop(permits);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(item) = batch.next().await {
            match item {
                Ok(msg) => {
                    let Some(state) = weak.upgrade() else { return };
                    match permits.pop() {
                        Some(permit) => {
                            tokio::spawn(execute(state, pool.clone(), msg, permit));
                        }
                        // More than asked for (never expected): let another host take it.
                        None => {
                            let _ = msg.ack_with(AckKind::Nak(None)).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(pool = %pool, error = %e, "a pull of cluster pool jobs ended");
                    break;
                }
            }
        }
    }
}

/// Sends a frame to a job's requester.
async fn send(client: &async_nats::Client, inbox: &str, frame: &JobFrame) {
    let payload = serde_json::to_vec(frame).unwrap_or_default();
    if let Err(e) = client
        .publish(async_nats::Subject::from(inbox), payload.into())
        .await
    {
        tracing::warn!(error = %e, "cannot send a cluster pool job's frame");
    }
}

async fn ack(msg: &jetstream::Message, kind: AckKind) {
    if let Err(e) = msg.ack_with(kind).await {
        tracing::warn!(error = %e, "cannot acknowledge a cluster pool job");
    }
}

/// Runs one delivered job (holding one of the host's slots for the pool).
async fn execute(
    state: Arc<AppState>,
    pool_name: String,
    msg: jetstream::Message,
    _slot: OwnedSemaphorePermit,
) {
    let Some(cluster) = state.cluster().cloned() else {
        return;
    };
    let jobs = cluster.jobs();
    let client = cluster.client();
    let node = cluster.node().to_string();
    let attempt = msg.info().map_or(1, |i| i.delivered);
    let job: Job = match serde_json::from_slice(&msg.payload) {
        Ok(job) => job,
        Err(e) => {
            tracing::warn!(pool = %pool_name, error = %e, "dropping an unreadable cluster pool job");
            ack(&msg, AckKind::Term).await;
            return;
        }
    };
    let revision = match jobs.claim(&job.id, &node, attempt).await {
        Ok(Claimed::Run { revision, from }) => {
            if let Some(from) = from {
                tracing::info!(job = %job.id, pool = %pool_name, %from, attempt,
                    "taking over a cluster pool job redelivered from another host");
            }
            revision
        }
        Ok(Claimed::Done(JobRecord::Done {
            node: ran_on,
            attempt: ran,
            reply,
        })) => {
            // It ran already (its host died before acknowledging): answer, do not run.
            tracing::info!(job = %job.id, pool = %pool_name, %ran_on,
                "a redelivered cluster pool job already has its reply; sending it again");
            let frame = JobFrame::Done {
                id: job.id.clone(),
                node: ran_on,
                attempt: ran,
                reply,
            };
            send(client, &job.inbox, &frame).await;
            ack(&msg, AckKind::Ack).await;
            return;
        }
        Ok(_) => {
            // Cancelled by its requester.
            ack(&msg, AckKind::Ack).await;
            return;
        }
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "cannot claim a cluster pool job; it is redelivered");
            ack(&msg, AckKind::Nak(Some(Duration::from_millis(500)))).await;
            return;
        }
    };
    let release = || async {
        if let Err(e) = jobs.release(&job.id, revision).await {
            tracing::warn!(job = %job.id, error = %e, "cannot release a cluster pool job's claim");
        }
        ack(&msg, AckKind::Nak(Some(Duration::from_millis(200)))).await;
    };
    let Some(pool) = state.pools.get(&pool_name) else {
        release().await;
        return;
    };
    let context = crate::audit::turn_context(&job.tenant, &format!("pool:{pool_name}"));
    let input = claude_code::UserInput::text(job.prompt.clone()).with_audit_context(context);
    let stream = match pool.stream(input).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(job = %job.id, pool = %pool_name, error = %e,
                "a cluster pool job cannot start here; another host takes it");
            release().await;
            return;
        }
    };
    let started = JobFrame::Started {
        id: job.id.clone(),
        node: node.clone(),
        attempt,
    };
    send(client, &job.inbox, &started).await;
    let turn = Turn {
        tenant: job.tenant.clone(),
        kind: "pool",
        target: pool_name.clone(),
        cost: CostSource::Result,
        permit: None,
    };
    let mut task = tokio::spawn(drive(state.clone(), stream, turn, None));
    // Progress keeps a long turn from being redelivered while this host lives.
    let mut progress = tokio::time::interval((jobs.ack_wait() / 3).max(Duration::from_millis(100)));
    progress.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut task => break outcome,
            _ = progress.tick() => ack(&msg, AckKind::Progress).await,
        }
    };
    let reply = match outcome {
        Ok(o)
            if o.result.is_none() && state.draining.load(std::sync::atomic::Ordering::Relaxed) =>
        {
            // Cut short by this host's shutdown: another host runs it.
            release().await;
            return;
        }
        Ok(o) => to_reply(json_reply(o)),
        Err(e) => to_reply(Err(ApiError::internal(format!(
            "the turn's task failed: {e}"
        )))),
    };
    // NATS down when the turn ended: the reply is stored (and sent, and the job acked)
    // once it is back, so the job is not run again when it is redelivered.
    let mut finished = jobs.finish(&job.id, revision, &node, attempt, &reply).await;
    let deadline = tokio::time::Instant::now() + CANCEL_LATER;
    let mut tries = 0;
    while finished.is_err() && tries < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if cluster.link().connected() {
            tries += 1;
            finished = jobs.finish(&job.id, revision, &node, attempt, &reply).await;
        }
    }
    match finished {
        Ok(true) => {}
        Ok(false) => {
            // Another host took it over (this one was presumed dead): its reply counts.
            tracing::info!(job = %job.id, "a cluster pool job was taken over meanwhile; dropping this host's reply");
            return;
        }
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "cannot store a cluster pool job's reply; sending it anyway");
        }
    }
    let done = JobFrame::Done {
        id: job.id.clone(),
        node,
        attempt,
        reply,
    };
    send(client, &job.inbox, &done).await;
    ack(&msg, AckKind::Ack).await;
}

/// A turn's JSON reply (or error) as a job's reply.
fn to_reply(reply: Result<Json<crate::body::TurnReply>, ApiError>) -> JobReply {
    match reply {
        Ok(Json(turn)) => JobReply {
            status: 200,
            body: serde_json::to_value(turn).unwrap_or_default(),
            retry_after: None,
        },
        Err(e) => JobReply {
            status: e.status().as_u16(),
            body: serde_json::to_value(e.body()).unwrap_or_default(),
            retry_after: e.retry_after_secs(),
        },
    }
}

/// The HTTP answer of a job's reply, naming the host that ran it and the attempt.
fn answer(reply: JobReply, node: &str, attempt: i64) -> Response {
    let mut response = if reply.status == 200 {
        Json(reply.body).into_response()
    } else {
        let body: ErrorBody = serde_json::from_value(reply.body).unwrap_or_else(|e| ErrorBody {
            code: "internal".into(),
            message: format!("an unreadable error from cluster member {node}: {e}"),
        });
        let mut e = ApiError::remote(reply.status, body.code, body.message);
        if let Some(secs) = reply.retry_after {
            e = e.retry_after(secs);
        }
        e.into_response()
    };
    if let Ok(v) = HeaderValue::from_str(node) {
        response.headers_mut().insert(NODE_HEADER, v);
    }
    response
        .headers_mut()
        .insert(ATTEMPT_HEADER, HeaderValue::from(attempt));
    response
}

/// 429 `queue_full`, as the local pool answers.
fn queue_full(message: String, retry_after: u64) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message).retry_after(retry_after)
}

/// A fresh UUID (version 4, random).
fn job_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Unique enough without the OS generator: the time and a counter.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        b[..8].copy_from_slice(&crate::cluster::now_ms().to_be_bytes());
        b[8..].copy_from_slice(&n.to_be_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// How long a requester that gave a job up during a NATS outage keeps trying to cancel
/// it once NATS is back.
const CANCEL_LATER: Duration = Duration::from_secs(600);

/// Cancels a job its requester gave up during a NATS outage, once NATS is back (unless a
/// host started it: then it runs to its end, answered to nobody).
fn cancel_later(cluster: Arc<Cluster>, id: String) {
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + CANCEL_LATER;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !cluster.link().connected() {
                continue;
            }
            match cluster.jobs().cancel(&id, |_| async { false }).await {
                Ok(outcome) => {
                    tracing::info!(job = %id, ?outcome, "a job given up during a NATS outage, after it");
                    return;
                }
                Err(e) => {
                    tracing::debug!(job = %id, error = %e, "cannot cancel a job given up during a NATS outage yet")
                }
            }
        }
    });
}

/// The requester's side: publishes the prompt as a job of `pool` and answers with the
/// first reply for it. `permit` (the tenant's concurrent-turn permit) is held until then.
pub(crate) async fn submit(
    state: &Arc<AppState>,
    cluster: &Arc<Cluster>,
    tenant: String,
    pool: &str,
    prompt: String,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<Response, ApiError> {
    let settings = state
        .cluster_pools
        .settings
        .get(pool)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no pool named `{pool}`")))?;
    let jobs = cluster.jobs();
    let unavailable = |e: ClusterError| match e {
        ClusterError::JobsFull { .. } => queue_full(e.to_string(), 1),
        e => ApiError::cluster(&e),
    };
    // NATS down: 503 at once (no local fallback: the pool's queue and its exactly-once
    // answer are the cluster's).
    let link = cluster.link();
    link.check().map_err(unavailable)?;
    // The pool's queue, cluster-wide: jobs no host has taken yet.
    if let Some(consumer) = state.cluster_pools.consumer(pool) {
        let waiting = jobs.waiting(&consumer).await.map_err(unavailable)?;
        if waiting >= settings.max_queue as u64 {
            return Err(queue_full(
                format!(
                    "pool `{pool}` has {waiting} jobs waiting in the cluster, its queue holds {}; try again later",
                    settings.max_queue
                ),
                1,
            ));
        }
    }
    let client = cluster.client();
    let inbox = client.new_inbox();
    let mut frames = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| unavailable(ClusterError::Jobs(e.to_string())))?;
    let job = Job {
        id: job_id(),
        tenant,
        prompt,
        inbox: inbox.clone(),
    };
    jobs.publish(pool, &job).await.map_err(unavailable)?;
    let _permit = permit;
    // A reconnection since this epoch may have lost frames: the job's record says.
    let mut epoch = link.epoch();
    let tick = cluster.heartbeat().max(Duration::from_millis(200));
    let mut runner: Option<String> = None;
    let mut deadline = tokio::time::Instant::now() + settings.queue_timeout;
    loop {
        match tokio::time::timeout(tick, frames.next()).await {
            Ok(Some(m)) => match serde_json::from_slice::<JobFrame>(&m.payload) {
                Ok(JobFrame::Done {
                    id,
                    node,
                    attempt,
                    reply,
                }) if id == job.id => return Ok(answer(reply, &node, attempt)),
                Ok(JobFrame::Started { id, node, .. }) if id == job.id => runner = Some(node),
                _ => {}
            },
            Ok(None) => {
                return Err(unavailable(ClusterError::Jobs(
                    "the connection to the NATS server closed while waiting for a job".into(),
                )))
            }
            Err(_) => {
                // NATS down past the outage wait: answered, typed; the job is cancelled
                // once NATS is back unless a host has started it.
                if let Some(down) = link.down_for() {
                    if down < crate::cluster::OUTAGE_WAIT {
                        continue;
                    }
                    cancel_later(cluster.clone(), job.id.clone());
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "cluster_unavailable",
                        format!("the connection to the cluster's NATS server dropped while job {} on pool `{pool}` was waiting or running; whether it ran is unknown (it is cancelled once the cluster is back unless it started): try again once the cluster is reachable", job.id),
                    ));
                }
                if link.epoch() != epoch {
                    epoch = link.epoch();
                    match jobs.record_of(&job.id).await {
                        Ok(Some(JobRecord::Done {
                            node,
                            attempt,
                            reply,
                        })) => return Ok(answer(reply, &node, attempt)),
                        Ok(Some(JobRecord::Running { node, .. })) => runner = Some(node),
                        _ => {}
                    }
                }
                if let Some(node) = &runner {
                    // A host that started it and left: the job is redelivered to another
                    // host after the ack wait; wait for that.
                    if let Ok(false) = cluster.is_member(node).await {
                        runner = None;
                        deadline =
                            tokio::time::Instant::now() + jobs.ack_wait() + settings.queue_timeout;
                    }
                    continue;
                }
                if tokio::time::Instant::now() < deadline {
                    continue;
                }
                let dead = |node: String| {
                    let cluster = cluster.clone();
                    async move { matches!(cluster.is_member(&node).await, Ok(false)) }
                };
                match jobs.cancel(&job.id, dead).await.map_err(unavailable)? {
                    Cancel::Cancelled => {
                        return Err(queue_full(
                            format!(
                                "no cluster host started the job on pool `{pool}` within {:?}; it was cancelled",
                                settings.queue_timeout
                            ),
                            settings.queue_timeout.as_secs().clamp(1, 5),
                        ))
                    }
                    Cancel::Done(reply, node, attempt) => return Ok(answer(reply, &node, attempt)),
                    Cancel::Running(node) => runner = Some(node),
                }
            }
        }
    }
}
