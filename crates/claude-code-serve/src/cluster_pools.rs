//! Cluster pools, the serving side: in a cluster, `POST /v1/pools/{pool}/messages`
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
//!   ack wait. A redelivered JSON job whose record holds a reply is not run again: the
//!   stored reply is sent again.
//! - **Requester.** Checks the pool's waiting jobs against the pool's `max_queue` (429
//!   `queue_full`), publishes the job (id: a UUID, also the stream's dedup id), and waits
//!   for the first reply carrying that id; any later reply is ignored. If no host starts
//!   the job within the pool's queue timeout (or, once a host that started it has left the
//!   cluster, within the ack wait plus the queue timeout), the requester cancels it in its
//!   record (so no host runs it later) and answers 429 `queue_full`, unless the record
//!   shows the job ran or runs on a live host. A client that goes away before any host
//!   started its job cancels it the same way.
//! - **Streamed jobs** (`Accept: text/event-stream`). The job carries a credit subject.
//!   Its executor sends the turn's SDK messages to the requester's inbox, one NATS
//!   message each, at most [`WINDOW`] that the requester has not credited (behind them
//!   the turn waits in the same bounded buffer as a local SSE turn), and before the first
//!   it marks the job `streaming` in its record (compare-and-set on its claim), so a
//!   redelivery never runs it again. The requester answers its client with the SSE head
//!   once a host started the job, then one event per message, ending with `result`,
//!   crediting frames as the client takes them. If the executor's heartbeat expires
//!   before any message reached the client, the job is redelivered (nothing was seen)
//!   and the stream goes on from the new executor; after that, the stream ends with an
//!   `error` event, 502 `owner_lost`, and the job is not run again. A client that leaves
//!   sends credit 0: the turn runs to its end on the executor, unobserved, and is
//!   recorded there once.

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

use claude_code::Message;

use crate::{
    body::ErrorBody,
    cluster::{
        Cancel, Claimed, Cluster, ClusterError, Job, JobCredit, JobFrame, JobRecord, JobReply,
    },
    config::PoolConfig,
    error::ApiError,
    metrics::cluster as m,
    routes::{
        remote::{CREDIT_WAIT, WINDOW},
        turns::{drive, json_reply, sse_response, CostSource, Outcome, Turn, SSE_BUFFER},
    },
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
    m::register_pools(
        cluster.node(),
        state.cluster_pools.settings.keys().map(String::as_str),
    );
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
    if attempt > 1 {
        m::pool_job(&node, &pool_name, "redelivered");
    }
    // A streamed job: its requester's credits (and its `gone`) from before the claim on,
    // so that a requester whose client left as the job started is heard.
    let credits = match &job.credit {
        Some(subject) => match client.subscribe(subject.clone()).await {
            Ok(sub) => Some(sub),
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "cannot subscribe to a streamed cluster pool job's credits; it is redelivered");
                ack(&msg, AckKind::Nak(Some(Duration::from_millis(500)))).await;
                return;
            }
        },
        None => None,
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
        })) if job.credit.is_none() => {
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
            m::pool_job(&node, &pool_name, "answered_from_record");
            ack(&msg, AckKind::Ack).await;
            return;
        }
        Ok(Claimed::Streamed(ran_on)) | Ok(Claimed::Done(JobRecord::Done { node: ran_on, .. })) => {
            // A streamed job whose messages went out from a host that died: its client
            // saw part of the turn, which is never replayed.
            tracing::info!(job = %job.id, pool = %pool_name, %ran_on,
                "a redelivered streamed cluster pool job already sent messages; not running it again");
            m::pool_job(&node, &pool_name, "dropped");
            ack(&msg, AckKind::Ack).await;
            return;
        }
        Ok(_) => {
            // Cancelled by its requester.
            m::pool_job(&node, &pool_name, "dropped");
            ack(&msg, AckKind::Ack).await;
            return;
        }
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "cannot claim a cluster pool job; it is redelivered");
            ack(&msg, AckKind::Nak(Some(Duration::from_millis(500)))).await;
            return;
        }
    };
    let Some(pool) = state.pools.get(&pool_name) else {
        release(jobs, &job.id, revision, &msg).await;
        return;
    };
    let context = crate::audit::turn_context(&job.tenant, &format!("pool:{pool_name}"));
    let input = claude_code::UserInput::text(job.prompt.clone()).with_audit_context(context);
    let stream = match pool.stream(input).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(job = %job.id, pool = %pool_name, error = %e,
                "a cluster pool job cannot start here; another host takes it");
            release(jobs, &job.id, revision, &msg).await;
            return;
        }
    };
    let started = JobFrame::Started {
        id: job.id.clone(),
        node: node.clone(),
        attempt,
    };
    send(client, &job.inbox, &started).await;
    m::pool_job(&node, &pool_name, "run");
    let _in_flight = m::PoolJobInFlight::new(&node, &pool_name);
    let turn = Turn {
        tenant: job.tenant.clone(),
        kind: "pool",
        target: pool_name.clone(),
        cost: CostSource::Result,
        permit: None,
    };
    let run = Run {
        state: &state,
        cluster: &cluster,
        msg: &msg,
        job: &job,
        attempt,
    };
    let (outcome, revision, streamed) = match credits {
        Some(credits) => run.streamed(stream, turn, revision, credits).await,
        None => {
            let task = tokio::spawn(drive(state.clone(), stream, turn, None));
            (run.finish_turn(task).await, Some(revision), false)
        }
    };
    let Some(revision) = revision else {
        // Another host took it over before it streamed anything (this one was presumed
        // dead): its answer counts.
        return;
    };
    let reply = match outcome {
        Ok(o)
            if o.result.is_none()
                && !streamed
                && state.draining.load(std::sync::atomic::Ordering::Relaxed) =>
        {
            // Cut short by this host's shutdown before anything was sent: another host
            // runs it.
            release(jobs, &job.id, revision, &msg).await;
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

/// Gives a claim up without an answer, so that the redelivered job starts afresh
/// elsewhere (soon).
async fn release(jobs: &crate::cluster::Jobs, id: &str, revision: u64, msg: &jetstream::Message) {
    if let Err(e) = jobs.release(id, revision).await {
        tracing::warn!(job = %id, error = %e, "cannot release a cluster pool job's claim");
    }
    ack(msg, AckKind::Nak(Some(Duration::from_millis(200)))).await;
}

/// One job running on this host.
struct Run<'a> {
    state: &'a Arc<AppState>,
    cluster: &'a Arc<Cluster>,
    msg: &'a jetstream::Message,
    job: &'a Job,
    attempt: i64,
}

type TurnResult = Result<Outcome, tokio::task::JoinError>;

impl Run<'_> {
    fn progress(&self) -> tokio::time::Interval {
        let every = (self.cluster.jobs().ack_wait() / 3).max(Duration::from_millis(100));
        tokio::time::interval_at(tokio::time::Instant::now() + every, every)
    }

    /// Waits for the turn's end, reporting progress (`+WPI`) every third of the ack wait
    /// so that a long turn is not redelivered from a live host.
    async fn finish_turn(&self, mut task: JoinHandle<Outcome>) -> TurnResult {
        let mut progress = self.progress();
        loop {
            tokio::select! {
                outcome = &mut task => break outcome,
                _ = progress.tick() => ack(self.msg, AckKind::Progress).await,
            }
        }
    }

    /// A streamed job: forwards the turn's messages to the requester's inbox, at most
    /// [`WINDOW`] frames it has not credited, marking the job `streaming` before the
    /// first. Returns the turn's outcome, the record's revision to finish it at (`None`:
    /// another host took the job over before anything was sent, this host must not
    /// answer), and whether anything was sent.
    async fn streamed(
        &self,
        stream: claude_code::MessageStream,
        turn: Turn,
        claim: u64,
        mut credits: async_nats::Subscriber,
    ) -> (TurnResult, Option<u64>, bool) {
        let jobs = self.cluster.jobs();
        let client = self.cluster.client();
        let node = self.cluster.node();
        let (tx, mut rx) = tokio::sync::mpsc::channel(SSE_BUFFER);
        let task = tokio::spawn(drive(self.state.clone(), stream, turn, Some(tx)));
        let inbox = async_nats::Subject::from(self.job.inbox.as_str());
        let mut progress = self.progress();
        let mut revision = Some(claim);
        let mut streaming = false;
        let mut unacked = 0usize;
        // Since when the window is full (the requester credits nothing).
        let mut starved: Option<tokio::time::Instant> = None;
        loop {
            let starving = async {
                match starved {
                    Some(since) => tokio::time::sleep_until(since + CREDIT_WAIT).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                credit = credits.next() => match credit.map(|m| serde_json::from_slice::<JobCredit>(&m.payload)) {
                    // Its client left (or the subscription ended): the turn runs on.
                    None | Some(Ok(JobCredit { n: 0, .. })) => break,
                    Some(Ok(JobCredit { attempt, n })) if attempt == self.attempt => {
                        unacked = unacked.saturating_sub(n);
                        if unacked < WINDOW {
                            starved = None;
                        }
                    }
                    // Another delivery's, or unreadable.
                    Some(_) => {}
                },
                _ = progress.tick() => ack(self.msg, AckKind::Progress).await,
                () = starving => {
                    tracing::info!(job = %self.job.id, "a streamed cluster pool job's requester credited nothing in time; the turn runs on unobserved");
                    break;
                }
                item = rx.recv(), if unacked < WINDOW => {
                    let Some(item) = item else { break };
                    if !streaming {
                        // From here on a redelivery never runs it again.
                        match jobs.stream(&self.job.id, claim, node, self.attempt).await {
                            Ok(Some(r)) => {
                                revision = Some(r);
                                streaming = true;
                            }
                            Ok(None) => {
                                tracing::info!(job = %self.job.id, "a streamed cluster pool job was taken over before its first message; not streaming it here");
                                revision = None;
                                break;
                            }
                            Err(e) => {
                                // Unmarked, a redelivery could replay what the client
                                // saw: send nothing; the turn runs on unobserved.
                                tracing::warn!(job = %self.job.id, error = %e, "cannot mark a cluster pool job streaming; not streaming it");
                                break;
                            }
                        }
                    }
                    let (id, attempt) = (self.job.id.clone(), self.attempt);
                    let frame = match item {
                        Ok(message) => JobFrame::Message { id, attempt, message: Box::new(message) },
                        Err(e) => JobFrame::Error { id, attempt, error: to_reply(Err(e)) },
                    };
                    let payload = serde_json::to_vec(&frame).unwrap_or_default();
                    if client.publish(inbox.clone(), payload.into()).await.is_err() {
                        break;
                    }
                    unacked += 1;
                    if unacked >= WINDOW {
                        starved = Some(tokio::time::Instant::now());
                    }
                }
            }
        }
        // Dropping the buffer tells the turn its client left; it runs on to its end.
        drop(rx);
        (self.finish_turn(task).await, revision, streaming)
    }
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

/// A job's error reply as the API error it carries.
fn reply_error(reply: JobReply, node: &str) -> ApiError {
    let body: ErrorBody = serde_json::from_value(reply.body).unwrap_or_else(|e| ErrorBody {
        code: "internal".into(),
        message: format!("an unreadable error from cluster member {node}: {e}"),
    });
    let mut e = ApiError::remote(reply.status, body.code, body.message);
    if let Some(secs) = reply.retry_after {
        e = e.retry_after(secs);
    }
    e
}

/// Names the host that ran a job and its delivery attempt in the response's headers.
fn name_runner(response: &mut Response, node: &str, attempt: i64) {
    if let Ok(v) = HeaderValue::from_str(node) {
        response.headers_mut().insert(NODE_HEADER, v);
    }
    response
        .headers_mut()
        .insert(ATTEMPT_HEADER, HeaderValue::from(attempt));
}

/// The HTTP answer of a job's reply, naming the host that ran it and the attempt.
fn answer(reply: JobReply, node: &str, attempt: i64) -> Response {
    let mut response = if reply.status == 200 {
        Json(reply.body).into_response()
    } else {
        reply_error(reply, node).into_response()
    };
    name_runner(&mut response, node, attempt);
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
/// first reply for it (`sse`: streams its messages as Server-Sent Events from the
/// moment a host started it). `permit` (the tenant's concurrent-turn permit) is held
/// until then.
pub(crate) async fn submit(
    state: &Arc<AppState>,
    cluster: &Arc<Cluster>,
    tenant: String,
    pool: &str,
    prompt: String,
    permit: Option<OwnedSemaphorePermit>,
    sse: bool,
) -> Result<Response, ApiError> {
    let settings = state
        .cluster_pools
        .settings
        .get(pool)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no pool named `{pool}`")))?;
    let jobs = cluster.jobs();
    // NATS down: 503 at once (no local fallback: the pool's queue and its exactly-once
    // answer are the cluster's).
    cluster.link().check().map_err(unavailable)?;
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
        inbox,
        credit: sse.then(|| client.new_inbox()),
    };
    jobs.publish(pool, &job).await.map_err(unavailable)?;
    let published = tokio::time::Instant::now();
    m::pool_job(cluster.node(), pool, "published");
    // Until the client has its answer: a client that leaves cancels a job no host
    // started yet, and tells a streaming host it is gone.
    let mut pending = Pending {
        cluster: cluster.clone(),
        pool: pool.to_string(),
        id: job.id.clone(),
        credit: job.credit.clone(),
        armed: true,
    };
    let waited = wait(cluster, &mut frames, &job.id, pool, &settings, sse).await;
    pending.armed = false;
    let (node, attempt) = match waited? {
        Waited::Done {
            reply,
            node,
            attempt,
        } => {
            let mode = if sse { "sse" } else { "json" };
            m::pool_job_seconds(
                cluster.node(),
                pool,
                mode,
                published.elapsed().as_secs_f64(),
            );
            if sse {
                // A streamed job's reply without its stream (it cannot be replayed).
                pending.finish("failed");
                return Err(streamless(reply, &node));
            }
            return Ok(answer(reply, &node, attempt));
        }
        Waited::Started { node, attempt } => (node, attempt),
    };
    // Its messages follow the start on this connection: a reconnection from now on may
    // lose some, and the stream then fails.
    let epoch = cluster.link().epoch();
    pending.armed = true;
    let stream = JobStream {
        cluster: cluster.clone(),
        epoch,
        id: job.id,
        frames,
        credit: job.credit.unwrap_or_default().into(),
        runner: Some(node.clone()),
        attempt,
        events: false,
        taken: 0,
        redelivery: tokio::time::Instant::now(),
        wait_again: jobs.ack_wait() + settings.queue_timeout,
        done: false,
        published,
        pending,
        _permit: permit,
    };
    let items = futures::stream::unfold(stream, |mut s| async move {
        let item = s.next().await?;
        Some((item, s))
    });
    let mut response = sse_response(items);
    name_runner(&mut response, &node, attempt);
    Ok(response)
}

fn unavailable(e: ClusterError) -> ApiError {
    match e {
        ClusterError::JobsFull { .. } => queue_full(e.to_string(), 1),
        e => ApiError::cluster(&e),
    }
}

/// What a requester waited for.
enum Waited {
    /// A streamed job started on `node`.
    Started { node: String, attempt: i64 },
    /// The job's answer.
    Done {
        reply: JobReply,
        node: String,
        attempt: i64,
    },
}

/// Waits for a job's answer (`sse`: for its start). If no host starts the job within
/// the pool's queue timeout (or, after the host that started it left the cluster, within
/// the ack wait plus the queue timeout), cancels it and answers 429 `queue_full`.
async fn wait(
    cluster: &Arc<Cluster>,
    frames: &mut async_nats::Subscriber,
    id: &str,
    pool: &str,
    settings: &Settings,
    sse: bool,
) -> Result<Waited, ApiError> {
    let jobs = cluster.jobs();
    let link = cluster.link();
    // A reconnection since this epoch may have lost frames: the job's record says.
    let mut epoch = link.epoch();
    let tick = cluster.heartbeat().max(Duration::from_millis(200));
    let mut runner: Option<String> = None;
    let mut deadline = tokio::time::Instant::now() + settings.queue_timeout;
    loop {
        match tokio::time::timeout(tick, frames.next()).await {
            Ok(Some(m)) => match serde_json::from_slice::<JobFrame>(&m.payload) {
                Ok(JobFrame::Done {
                    id: of,
                    node,
                    attempt,
                    reply,
                }) if of == id => {
                    return Ok(Waited::Done {
                        reply,
                        node,
                        attempt,
                    })
                }
                Ok(JobFrame::Started {
                    id: of,
                    node,
                    attempt,
                }) if of == id => {
                    if sse {
                        return Ok(Waited::Started { node, attempt });
                    }
                    runner = Some(node);
                }
                _ => {}
            },
            Ok(None) => {
                m::pool_job(cluster.node(), pool, "failed");
                return Err(unavailable(ClusterError::Jobs(
                    "the connection to the NATS server closed while waiting for a job".into(),
                )));
            }
            Err(_) => {
                // NATS down past the outage wait: answered, typed; the job is cancelled
                // once NATS is back unless a host has started it.
                if let Some(down) = link.down_for() {
                    if down < crate::cluster::OUTAGE_WAIT {
                        continue;
                    }
                    cancel_later(cluster.clone(), id.to_string());
                    m::pool_job(cluster.node(), pool, "failed");
                    return Err(nats_lost(id, pool));
                }
                if link.epoch() != epoch {
                    epoch = link.epoch();
                    match jobs.record_of(id).await {
                        Ok(Some(JobRecord::Done {
                            node,
                            attempt,
                            reply,
                        })) => {
                            return Ok(Waited::Done {
                                reply,
                                node,
                                attempt,
                            })
                        }
                        // A streamed job that started meanwhile: its first messages may
                        // be lost with the connection, and it is never replayed.
                        Ok(Some(JobRecord::Running { .. })) if sse => {
                            m::pool_job(cluster.node(), pool, "failed");
                            return Err(nats_lost(id, pool));
                        }
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
                match jobs.cancel(id, dead(cluster)).await.map_err(unavailable)? {
                    Cancel::Cancelled => {
                        m::pool_job(cluster.node(), pool, "cancelled");
                        return Err(queue_full(
                            format!(
                                "no cluster host started the job on pool `{pool}` within {:?}; it was cancelled",
                                settings.queue_timeout
                            ),
                            settings.queue_timeout.as_secs().clamp(1, 5),
                        ));
                    }
                    Cancel::Done(reply, node, attempt) => {
                        return Ok(Waited::Done {
                            reply,
                            node,
                            attempt,
                        })
                    }
                    Cancel::Running(node) => runner = Some(node),
                    Cancel::Lost(node) => {
                        m::pool_job(cluster.node(), pool, "failed");
                        return Err(executor_lost(&node));
                    }
                }
            }
        }
    }
}

/// 503 `cluster_unavailable`: the connection to NATS dropped while the requester waited
/// for job `id` (or streamed it); what was sent meanwhile is lost.
fn nats_lost(id: &str, pool: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unavailable",
        format!("the connection to the cluster's NATS server dropped while job {id} on pool `{pool}` was waiting or running; whether it ran is unknown (it is cancelled once the cluster is back unless it started) and it is not run again for this request: try again once the cluster is reachable"),
    )
}

/// Whether a member is dead (its heartbeat expired), for [`Jobs::cancel`](crate::cluster::Jobs::cancel).
fn dead(cluster: &Arc<Cluster>) -> impl Fn(String) -> futures::future::BoxFuture<'static, bool> {
    let cluster = cluster.clone();
    move |node: String| {
        let cluster = cluster.clone();
        Box::pin(async move { matches!(cluster.is_member(&node).await, Ok(false)) })
    }
}

/// 502 `owner_lost`: the host streaming a job died after its client saw part of it.
fn executor_lost(node: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "owner_lost",
        format!(
            "cluster member `{node}`, which ran this pool job, left the cluster (its heartbeat expired) after the turn's first messages were sent; the rest of the turn is lost and the job is not run again (it may have reached the model): send the prompt again"
        ),
    )
}

/// A streamed job's reply that arrived without its stream: its error, or a 503.
fn streamless(reply: JobReply, node: &str) -> ApiError {
    if reply.status != 200 {
        return reply_error(reply, node);
    }
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster_unavailable",
        format!(
            "cluster member `{node}` ran this pool job but could not stream its messages through the cluster; it is not run again"
        ),
    )
}

/// A job its requester waits for: dropped while armed (the HTTP client left), it cancels
/// the job unless a live host started it, and tells a host streaming it that its client
/// is gone (credit 0).
struct Pending {
    cluster: Arc<Cluster>,
    pool: String,
    id: String,
    credit: Option<String>,
    armed: bool,
}

impl Pending {
    /// The client has its answer (or error); counts `outcome` unless `ok`.
    fn finish(&mut self, outcome: &'static str) {
        self.armed = false;
        if outcome != "ok" {
            m::pool_job(self.cluster.node(), &self.pool, outcome);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (cluster, pool, id, credit) = (
            self.cluster.clone(),
            std::mem::take(&mut self.pool),
            std::mem::take(&mut self.id),
            self.credit.take(),
        );
        tokio::spawn(async move {
            if let Some(credit) = credit {
                let gone = serde_json::to_vec(&JobCredit { attempt: 0, n: 0 }).unwrap_or_default();
                let _ = cluster.client().publish(credit, gone.into()).await;
            }
            if let Ok(Cancel::Cancelled) = cluster.jobs().cancel(&id, dead(&cluster)).await {
                m::pool_job(cluster.node(), &pool, "cancelled");
            }
        });
    }
}

/// The requester's view of a streamed job: its frames as the HTTP client's items,
/// credited as the client takes them.
struct JobStream {
    cluster: Arc<Cluster>,
    /// The connection's epoch when the stream began: a reconnection since lost frames.
    epoch: u64,
    id: String,
    frames: async_nats::Subscriber,
    credit: async_nats::Subject,
    /// The host streaming it; `None`: it died before any message reached the client,
    /// and the job waits for its redelivery.
    runner: Option<String>,
    /// The delivery whose frames are taken.
    attempt: i64,
    /// Whether an event went to the client (from then on, nothing is replayed).
    events: bool,
    /// Frames taken since the last credit.
    taken: usize,
    /// Until when a redelivery is waited for (while `runner` is `None`).
    redelivery: tokio::time::Instant,
    wait_again: Duration,
    done: bool,
    published: tokio::time::Instant,
    pending: Pending,
    /// The tenant's concurrent-turn permit on this host, held until the stream ends.
    _permit: Option<OwnedSemaphorePermit>,
}

impl JobStream {
    fn end(&mut self, outcome: &'static str) {
        self.done = true;
        self.pending.finish(outcome);
        m::pool_job_seconds(
            self.cluster.node(),
            &self.pending.pool,
            "sse",
            self.published.elapsed().as_secs_f64(),
        );
    }

    fn fail(&mut self, outcome: &'static str, e: ApiError) -> Option<Result<Message, ApiError>> {
        self.end(outcome);
        Some(Err(e))
    }

    /// The next item for the HTTP client, crediting what the client took so far.
    async fn next(&mut self) -> Option<Result<Message, ApiError>> {
        if self.done {
            return None;
        }
        if self.taken >= WINDOW / 2 {
            let credit = JobCredit {
                attempt: self.attempt,
                n: self.taken,
            };
            let payload = serde_json::to_vec(&credit).unwrap_or_default();
            let _ = self
                .cluster
                .client()
                .publish(self.credit.clone(), payload.into())
                .await;
            self.taken = 0;
        }
        // Waiting for the next frame, the runner's heartbeat is checked every heartbeat.
        let idle = tokio::time::Instant::now() + CREDIT_WAIT;
        let slice = self.cluster.heartbeat().max(Duration::from_millis(200));
        loop {
            let next = tokio::time::timeout(slice, self.frames.next());
            let link = self.cluster.link().clone();
            let next = tokio::select! {
                // Frames are taken first: those that arrived before the drop count.
                biased;
                next = next => next,
                // The connection dropped: frames sent meanwhile are lost, and a streamed
                // job is never replayed.
                () = link.lost(self.epoch) => {
                    let e = nats_lost(&self.id, &self.pending.pool.clone());
                    return self.fail("failed", e);
                }
            };
            let frame = match next {
                Ok(Some(m)) => serde_json::from_slice::<JobFrame>(&m.payload).ok(),
                Ok(None) => {
                    let e = unavailable(ClusterError::Jobs(
                        "the connection to the NATS server closed while streaming a job".into(),
                    ));
                    return self.fail("failed", e);
                }
                Err(_) => {
                    if let Some(lost) = self.check().await {
                        return lost;
                    }
                    if self.runner.is_some() && tokio::time::Instant::now() >= idle {
                        let e = ApiError::new(
                            StatusCode::BAD_GATEWAY,
                            "owner_lost",
                            "the cluster member running this pool job stopped sending its messages; it is not run again",
                        );
                        return self.fail("failed", e);
                    }
                    continue;
                }
            };
            match frame {
                // Redelivered to another host before any message reached the client.
                Some(JobFrame::Started { id, node, attempt })
                    if id == self.id && !self.events && attempt > self.attempt =>
                {
                    self.runner = Some(node);
                    self.attempt = attempt;
                }
                Some(JobFrame::Message {
                    id,
                    attempt,
                    message,
                }) if id == self.id && attempt == self.attempt => {
                    self.events = true;
                    self.taken += 1;
                    if matches!(*message, Message::Result(_)) {
                        // A turn's stream ends with its result.
                        self.end("ok");
                    }
                    return Some(Ok(*message));
                }
                Some(JobFrame::Error { id, attempt, error })
                    if id == self.id && attempt == self.attempt =>
                {
                    self.events = true;
                    self.taken += 1;
                    let node = self.runner.clone().unwrap_or_default();
                    return Some(Err(reply_error(error, &node)));
                }
                Some(JobFrame::Done {
                    id,
                    attempt,
                    reply,
                    node,
                }) if id == self.id && attempt == self.attempt => {
                    if self.events {
                        self.end("ok");
                        return None;
                    }
                    return self.fail("failed", streamless(reply, &node));
                }
                // Another job's, another delivery's, or unreadable.
                _ => {}
            }
        }
    }

    /// No frame for a heartbeat: is its runner alive, and if it died, what now? `Some`:
    /// the stream's last item.
    async fn check(&mut self) -> Option<Option<Result<Message, ApiError>>> {
        let pool = self.pending.pool.clone();
        match self.runner.clone() {
            Some(node) => {
                if !matches!(self.cluster.is_member(&node).await, Ok(false)) {
                    return None;
                }
                if self.events {
                    // Its client saw part of the turn: never replayed (its record says
                    // `streaming`, so a redelivery is dropped).
                    return Some(self.fail("failed", executor_lost(&node)));
                }
                // Nothing reached the client: the job is redelivered after the ack wait.
                tracing::info!(job = %self.id, %node, "the host running a streamed pool job left before its first message; waiting for its redelivery");
                self.runner = None;
                self.redelivery = tokio::time::Instant::now() + self.wait_again;
                None
            }
            None if tokio::time::Instant::now() < self.redelivery => None,
            None => match self
                .cluster
                .jobs()
                .cancel(&self.id, dead(&self.cluster))
                .await
            {
                Ok(Cancel::Cancelled) => {
                    let e = queue_full(
                        format!("the cluster host running the job on pool `{pool}` left before its first message and no other host started it in time; it was cancelled"),
                        1,
                    );
                    Some(self.fail("cancelled", e))
                }
                Ok(Cancel::Done(reply, node, _)) => {
                    Some(self.fail("failed", streamless(reply, &node)))
                }
                Ok(Cancel::Running(node)) => {
                    self.runner = Some(node);
                    None
                }
                Ok(Cancel::Lost(node)) => Some(self.fail("failed", executor_lost(&node))),
                Err(e) => Some(self.fail("failed", unavailable(e))),
            },
        }
    }
}
