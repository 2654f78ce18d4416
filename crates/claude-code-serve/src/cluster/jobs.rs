//! Cluster pools: pool work as a JetStream work queue.
//!
//! A pool request on a clustered host becomes a [`Job`] published to the stream
//! [`JOBS_STREAM`] on `claude.jobs.<pool>` ([`job_subject`]), with the job id as its
//! `Nats-Msg-Id` (the stream drops a republished id within [`DUPLICATE_WINDOW`]). The
//! stream's retention is *work queue*: a job is deleted once acknowledged. Every host that
//! has the pool pulls from one durable consumer per pool ([`consumer_name`]), shared by
//! all of them, filtered to the pool's subject: a work-queue stream allows one consumer
//! per subject, and a shared durable consumer is what spreads the jobs over the hosts
//! (each pull request gets different jobs) and redelivers a job whose host did not
//! acknowledge it within the consumer's ack wait.
//!
//! **Exactly one answer per job.** Each job has one key in the key-value bucket
//! [`DONE_BUCKET`] ([`JobRecord`]), changed only by compare-and-set on its revision:
//! absent → `running` (an executor claims it) or `cancelled` (the requester gave up
//! before any host started it); `running` → `running` (a redelivered job taken over from
//! a host presumed dead) or `done` (with the reply, written by the executor that holds
//! the latest claim before it sends the reply). A redelivered job whose key says `done`
//! is not run again: its stored reply is sent again, and the requester, which answers
//! its client once and then forgets the job, ignores any second reply. A job whose key
//! says `cancelled` is dropped.
//!
//! **Streamed (SSE) jobs** carry a credit subject ([`Job::credit`]). Their executor
//! streams the turn's SDK messages to the requester's inbox ([`JobFrame::Message`],
//! [`JobFrame::Error`]) under a credit window ([`JobCredit`]), and before it sends the
//! first of them it moves the record `running` → `streaming` (compare-and-set on its
//! claim). A redelivered job whose record says `streaming` (or `done`) is dropped, never
//! run again: its requester's client has seen part of the turn, which cannot be replayed.
//! A redelivered job whose record still says `running` sent nothing, and is taken over.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer},
    kv,
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType},
};
use serde::{Deserialize, Serialize};

use super::ClusterError;

/// The work-queue stream of every cluster pool's jobs.
pub const JOBS_STREAM: &str = "CLAUDE_JOBS";

/// The key-value bucket of job records ([`JobRecord`]), one key per job id.
pub const DONE_BUCKET: &str = "claude_jobs_done";

/// How long the stream remembers a job id to drop a republished one.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long a job may wait in the stream before it is discarded (its requester gave up
/// long before).
const JOB_MAX_AGE: Duration = Duration::from_secs(3600);

/// How long a job record is kept (longer than a job can wait in the stream, so that a
/// redelivered job always finds its record).
const RECORD_MAX_AGE: Duration = Duration::from_secs(2 * 3600);

/// Hard cap of jobs stored per pool (waiting or running), whatever the hosts' queues
/// say; the per-pool bound each requester checks is the pool's `max_queue`.
const MAX_JOBS_PER_POOL: i64 = 100_000;

/// The subject a pool's jobs are published on.
pub fn job_subject(pool: &str) -> String {
    format!("claude.jobs.{pool}")
}

/// The durable consumer every host serving `pool` pulls from.
pub fn consumer_name(pool: &str) -> String {
    format!("pool-{pool}")
}

/// One pool request, as published to the stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// A fresh UUID (v4), also the message's `Nats-Msg-Id`.
    pub id: String,
    /// The tenant that asked (its ledger row on the executor names it).
    pub tenant: String,
    /// The prompt (already checked by the requester).
    pub prompt: String,
    /// The requester's inbox for [`JobFrame`]s.
    pub inbox: String,
    /// A streamed (SSE) job: the subject its requester sends [`JobCredit`]s on; absent
    /// for a job answered with one JSON reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<String>,
}

/// A streamed job's credit, from its requester: `n` more frames of delivery `attempt`
/// taken by the HTTP client; `n == 0`: the requester is gone (any attempt), stop
/// sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCredit {
    /// The delivery attempt whose frames were taken.
    pub attempt: i64,
    /// Frames taken since the last credit; 0: gone.
    pub n: usize,
}

/// The HTTP answer to a job: its status and JSON body (a turn reply, or an error body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReply {
    /// HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: serde_json::Value,
    /// `Retry-After`, for an error that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// A job's state in [`DONE_BUCKET`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobRecord {
    /// A host runs it.
    Running {
        /// The host.
        node: String,
        /// Its delivery attempt (1 the first time).
        attempt: i64,
    },
    /// A streamed job whose first message went (or is about to go) to its requester:
    /// never run again, whatever happens to its host.
    Streaming {
        /// The host streaming it.
        node: String,
        /// Its delivery attempt.
        attempt: i64,
    },
    /// It ran; this is its answer.
    Done {
        /// The host that ran it.
        node: String,
        /// Its delivery attempt.
        attempt: i64,
        /// The answer.
        reply: JobReply,
    },
    /// The requester gave up before any host started it: never run it.
    Cancelled,
}

/// A message on a job's reply inbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum JobFrame {
    /// A host started the job.
    Started {
        /// The job.
        id: String,
        /// The host.
        node: String,
        /// Its delivery attempt.
        attempt: i64,
    },
    /// One SDK message of a streamed job's turn (an SSE event named by its type).
    Message {
        /// The job.
        id: String,
        /// The delivery attempt streaming it.
        attempt: i64,
        /// The message.
        message: Box<claude_code::Message>,
    },
    /// An error a streamed job's turn sent its client (an SSE `error` event).
    Error {
        /// The job.
        id: String,
        /// The delivery attempt streaming it.
        attempt: i64,
        /// Its status and error body.
        error: JobReply,
    },
    /// The job's answer (for a streamed job: the end of its stream; the turn's JSON
    /// reply, as stored in its record).
    Done {
        /// The job.
        id: String,
        /// The host that ran it.
        node: String,
        /// Its delivery attempt.
        attempt: i64,
        /// The answer.
        reply: JobReply,
    },
}

/// What an executor may do with a job it was delivered ([`Jobs::claim`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed {
    /// Run it; `revision` is the claim's, for [`Jobs::finish`] or [`Jobs::release`].
    Run {
        /// The record's revision.
        revision: u64,
        /// The host that held it before (a redelivered job taken over), if any.
        from: Option<String>,
    },
    /// It already ran: send this record's answer again, do not run it.
    Done(JobRecord),
    /// Its requester cancelled it: drop it.
    Cancelled,
    /// A streamed job that already sent messages from `node`: drop it (never replayed).
    Streamed(String),
}

/// What a requester's [`Jobs::cancel`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// Cancelled: no host will run it.
    Cancelled,
    /// It ran already: this is its answer.
    Done(JobReply, String, i64),
    /// A live claim: the job runs on this host.
    Running(String),
    /// A streamed job whose host died after it sent messages: it is not run again.
    Lost(String),
}

/// The cluster's job stream and job records.
#[derive(Debug, Clone)]
pub struct Jobs {
    js: jetstream::Context,
    records: kv::Store,
    ack_wait: Duration,
}

fn jobs_error(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Jobs(e.to_string())
}

impl Jobs {
    /// Opens (creating when absent) the job stream and the record bucket. `ack_wait`:
    /// how long a delivered job may go without an acknowledgement or progress before it
    /// is redelivered to another host.
    pub(crate) async fn open(
        js: &jetstream::Context,
        ack_wait: Duration,
    ) -> Result<Jobs, ClusterError> {
        let config = Config {
            name: JOBS_STREAM.to_string(),
            description: Some("claude-code cluster pools: jobs".into()),
            subjects: vec![job_subject(">")],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            max_age: JOB_MAX_AGE,
            max_messages_per_subject: MAX_JOBS_PER_POOL,
            discard: DiscardPolicy::New,
            discard_new_per_subject: true,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: 1,
            ..Default::default()
        };
        if let Err(create) = js.create_stream(config).await {
            // It exists (another host made it); anything else shows when it is used.
            js.get_stream(JOBS_STREAM).await.map_err(|_| {
                jobs_error(format!("cannot create the stream {JOBS_STREAM}: {create}"))
            })?;
        }
        let records = super::bucket(js, DONE_BUCKET, RECORD_MAX_AGE).await?;
        Ok(Jobs {
            js: js.clone(),
            records,
            ack_wait,
        })
    }

    /// The ack wait of the pools' consumers.
    pub fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    /// The durable pull consumer of `pool` (created when absent; every host serving the
    /// pool pulls from this one).
    pub async fn consumer(&self, pool: &str) -> Result<PullConsumer, ClusterError> {
        let config = pull::Config {
            durable_name: Some(consumer_name(pool)),
            description: Some(format!("claude-code cluster pool {pool}")),
            filter_subject: job_subject(pool),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            // Redelivered until some host answers it (or the requester cancels it).
            max_deliver: -1,
            // Each host bounds its own share; this bounds the whole cluster's.
            max_ack_pending: 10_000,
            ..Default::default()
        };
        self.js
            .create_consumer_on_stream(config, JOBS_STREAM)
            .await
            .map_err(|e| jobs_error(format!("cannot open the consumer of pool {pool}: {e}")))
    }

    /// Jobs of `pool` waiting for a host (not yet delivered).
    pub async fn waiting(&self, consumer: &PullConsumer) -> Result<u64, ClusterError> {
        Ok(consumer.get_info().await.map_err(jobs_error)?.num_pending)
    }

    /// Publishes a job to `pool` and waits for the stream to store it. A job id the
    /// stream already has (within [`DUPLICATE_WINDOW`]) is dropped by the stream; this
    /// reports it as stored. A pool whose stored jobs reach the hard cap is
    /// [`ClusterError::JobsFull`].
    pub async fn publish(&self, pool: &str, job: &Job) -> Result<(), ClusterError> {
        let payload = serde_json::to_vec(job).map_err(|e| ClusterError::Encoding(e.to_string()))?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", job.id.as_str());
        let mut last = None;
        // Once more on failure, with the same id: the stream keeps one of the two.
        for _ in 0..2 {
            let ack = self
                .js
                .publish_with_headers(job_subject(pool), headers.clone(), payload.clone().into())
                .await;
            let stored = match ack {
                Ok(future) => future.await,
                Err(e) => {
                    last = Some(e.to_string());
                    continue;
                }
            };
            match stored {
                Ok(_) => return Ok(()),
                Err(e) if e.to_string().contains("maximum messages per subject") => {
                    return Err(ClusterError::JobsFull {
                        pool: pool.to_string(),
                    })
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(jobs_error(format!(
            "cannot publish a job to pool {pool}: {}",
            last.unwrap_or_default()
        )))
    }

    async fn record(&self, id: &str) -> Result<Option<(JobRecord, u64)>, ClusterError> {
        let Some(entry) = self.records.entry(id).await.map_err(jobs_error)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let record = serde_json::from_slice(&entry.value)
            .map_err(|e| ClusterError::Encoding(format!("job record {id}: {e}")))?;
        Ok(Some((record, entry.revision)))
    }

    /// A job's record, if it has one (its requester reads it after a reconnection, when
    /// the frames sent meanwhile may be lost).
    pub async fn record_of(&self, id: &str) -> Result<Option<JobRecord>, ClusterError> {
        Ok(self.record(id).await?.map(|(record, _)| record))
    }

    fn encode(record: &JobRecord) -> Result<bytes::Bytes, ClusterError> {
        serde_json::to_vec(record)
            .map(Into::into)
            .map_err(|e| ClusterError::Encoding(e.to_string()))
    }

    /// Claims a delivered job for `node`: [`Claimed::Run`] when it has no record (or a
    /// `running` one: a redelivery, taken over by compare-and-set), else what its record
    /// says.
    pub async fn claim(&self, id: &str, node: &str, attempt: i64) -> Result<Claimed, ClusterError> {
        let running = Self::encode(&JobRecord::Running {
            node: node.to_string(),
            attempt,
        })?;
        // The usual case first: a job nobody has claimed.
        match self.records.create(id, running.clone()).await {
            Ok(revision) => {
                return Ok(Claimed::Run {
                    revision,
                    from: None,
                })
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(jobs_error(e)),
        }
        // A few rounds: each lost race means the record changed, and is read again.
        for _ in 0..5 {
            match self.record(id).await? {
                None => match self.records.create(id, running.clone()).await {
                    Ok(revision) => {
                        return Ok(Claimed::Run {
                            revision,
                            from: None,
                        })
                    }
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(jobs_error(e)),
                },
                Some((JobRecord::Running { node: from, .. }, revision)) => {
                    match self.records.update(id, running.clone(), revision).await {
                        Ok(revision) => {
                            return Ok(Claimed::Run {
                                revision,
                                from: Some(from),
                            })
                        }
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(jobs_error(e)),
                    }
                }
                Some((record @ JobRecord::Done { .. }, _)) => return Ok(Claimed::Done(record)),
                Some((JobRecord::Cancelled, _)) => return Ok(Claimed::Cancelled),
                Some((JobRecord::Streaming { node, .. }, _)) => return Ok(Claimed::Streamed(node)),
            }
        }
        Err(ClusterError::Contended {
            key: format!("{DONE_BUCKET}.{id}"),
        })
    }

    /// Stores a job's answer under the claim at `revision`. `Ok(false)`: another host
    /// took the job over meanwhile (this host was presumed dead); its answer wins, and
    /// this one must not be sent.
    pub async fn finish(
        &self,
        id: &str,
        revision: u64,
        node: &str,
        attempt: i64,
        reply: &JobReply,
    ) -> Result<bool, ClusterError> {
        let done = Self::encode(&JobRecord::Done {
            node: node.to_string(),
            attempt,
            reply: reply.clone(),
        })?;
        match self.records.update(id, done, revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(jobs_error(e)),
        }
    }

    /// Marks a streamed job `streaming` under the claim at `revision`, before its first
    /// message goes out: from then on a redelivery drops it. `Ok(Some(revision))`: the
    /// mark's revision (for [`finish`](Self::finish)); `Ok(None)`: another host took
    /// the job over meanwhile (this one was presumed dead), so this one must not stream.
    pub async fn stream(
        &self,
        id: &str,
        revision: u64,
        node: &str,
        attempt: i64,
    ) -> Result<Option<u64>, ClusterError> {
        let streaming = Self::encode(&JobRecord::Streaming {
            node: node.to_string(),
            attempt,
        })?;
        match self.records.update(id, streaming, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(jobs_error(e)),
        }
    }

    /// Gives up a claim without an answer (the job could not start here), so that the
    /// redelivered job starts afresh elsewhere.
    pub async fn release(&self, id: &str, revision: u64) -> Result<(), ClusterError> {
        self.records
            .delete_expect_revision(id, Some(revision))
            .await
            .map_err(jobs_error)
    }

    /// The requester gives a job up unless it started: cancels it when it has no record
    /// or a `running` one whose host `is_dead`; otherwise says what the record holds
    /// (a `streaming` one whose host `is_dead` is [`Cancel::Lost`]).
    pub async fn cancel<F>(
        &self,
        id: &str,
        is_dead: impl Fn(String) -> F,
    ) -> Result<Cancel, ClusterError>
    where
        F: std::future::Future<Output = bool>,
    {
        let cancelled = Self::encode(&JobRecord::Cancelled)?;
        for _ in 0..5 {
            match self.record(id).await? {
                None => match self.records.create(id, cancelled.clone()).await {
                    Ok(_) => return Ok(Cancel::Cancelled),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(jobs_error(e)),
                },
                Some((JobRecord::Running { node, .. }, revision)) => {
                    if !is_dead(node.clone()).await {
                        return Ok(Cancel::Running(node));
                    }
                    match self.records.update(id, cancelled.clone(), revision).await {
                        Ok(_) => return Ok(Cancel::Cancelled),
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(jobs_error(e)),
                    }
                }
                Some((
                    JobRecord::Done {
                        reply,
                        node,
                        attempt,
                    },
                    _,
                )) => return Ok(Cancel::Done(reply, node, attempt)),
                Some((JobRecord::Cancelled, _)) => return Ok(Cancel::Cancelled),
                Some((JobRecord::Streaming { node, .. }, _)) => {
                    if is_dead(node.clone()).await {
                        return Ok(Cancel::Lost(node));
                    }
                    return Ok(Cancel::Running(node));
                }
            }
        }
        Err(ClusterError::Contended {
            key: format!("{DONE_BUCKET}.{id}"),
        })
    }
}
