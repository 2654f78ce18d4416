//! The cluster: `claude-code serve` hosts that share one NATS server with JetStream
//! (`serve --cluster nats://HOST:PORT`).
//!
//! What exists:
//! - **Membership** ([`Member`]): each host puts a heartbeat with its HTTP URL and
//!   capacity (live CLIs, available memory, pool queue depth, sessions) into the
//!   [`MEMBERS_BUCKET`] key-value bucket every [`ClusterConfig::heartbeat`]; the bucket's
//!   `max_age` is three heartbeats, so a host that stops (even `kill -9`) drops out within
//!   that TTL. A node name a live member uses is refused at join.
//! - **Session ownership** ([`Leases`]): a dynamic session created on a host is claimed in
//!   the [`OWNERS_BUCKET`] under `<tenant>.<session>` by compare-and-set and held as a
//!   lease that the host renews every third of [`ClusterConfig::lease`]; a lease not
//!   renewed can be taken over by another host, and the old owner learns it on its next
//!   renewal (then refuses turns on that session with 409 `lease_lost`).
//! - **Graceful leave** ([`Cluster::leave`], run by `Host::shutdown`, so on SIGTERM, after
//!   the hand-over of its sessions): the member key is deleted at once and every lease
//!   still held released.
//!
//! - **Checkpoints** ([`Checkpoint`]): after each turn the owner stores a session's
//!   transcript and recipe in the [`TRANSCRIPTS_BUCKET`] object store; a host that claims
//!   an orphaned session (expired lease, owner not a live member: [`Cluster::orphans`])
//!   restores it from there and resumes it (failover).
//!
//! - **Cluster pools** ([`Jobs`]): pool requests are jobs in the [`JOBS_STREAM`] work-queue
//!   stream, pulled by every host serving the pool, answered exactly once.
//! - **Placement** ([`Placement`]): a new dynamic session is made on the member with the
//!   most free capacity, by the heartbeats' figures.
//! - **Hand-over**: a leaving host hands each session it owns to another member (a
//!   compare-and-set of the lease from it to the member, which adopts the session from
//!   its checkpoint) before it leaves.
//!
//! - **When NATS fails** ([`Link`]): while the connection is down every cluster operation
//!   fails at once ([`ClusterError::Unreachable`], 503 `cluster_unavailable`); async-nats
//!   reconnects forever (pauses capped at [`RECONNECT_CAP`]); heartbeats and lease renewals
//!   are retried every 200 ms until they succeed, so a host re-confirms its membership and
//!   leases right after NATS comes back; and for a grace period after a reconnection no
//!   host takes over another member's expired lease ([`ClusterError::Unsettled`]), so a
//!   restart of the NATS server does not move sessions between live hosts.
//!
//! nats-server 2.9 (Debian's) has no per-message TTL: heartbeats expire through the
//! bucket's `max_age`, and a lease's expiry is wall-clock time inside its value, so the
//! hosts' clocks must agree to well within a lease.

mod auth;
mod checkpoints;
mod jobs;
mod leases;
mod link;
mod members;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_nats::jetstream::{self, kv};
use tokio::task::JoinHandle;

pub use crate::placement::Placement;
pub use auth::{check_url, probe, NatsAuth, NatsTls, Probe, Secret, SecretSource, CONNECT_TIMEOUT};
pub use checkpoints::{Checkpoint, TRANSCRIPTS_BUCKET};
pub use jobs::{
    consumer_name, job_subject, Cancel, Claimed, Job, JobCredit, JobFrame, JobRecord, JobReply,
    Jobs, DONE_BUCKET, DUPLICATE_WINDOW, JOBS_STREAM,
};
pub use leases::{owner_key, Claim, Lease, Leases, OWNERS_BUCKET};
pub(crate) use link::flush;
pub use link::{reconnect_delay, Link, OUTAGE_WAIT, RECONNECT_CAP, REQUEST_TIMEOUT};
pub use members::{Load, Member, MEMBERS_BUCKET};

/// How a host joins a cluster (`[cluster]` in `claude-code.toml`, `serve --cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The NATS server, e.g. `nats://127.0.0.1:4222` (JetStream enabled), or
    /// `tls://HOST:PORT` to require TLS; never with credentials in it (see [`check_url`]).
    pub url: String,
    /// How this host authenticates to the NATS server (default: no credentials).
    pub auth: NatsAuth,
    /// TLS of the connection (default: TLS only when the server asks for it).
    pub tls: NatsTls,
    /// This host's name in the cluster (1-64 characters of `A-Z a-z 0-9 _ -`); default
    /// `<hostname>-<port>`.
    pub node_name: Option<String>,
    /// How often the host puts its heartbeat (default 2 s); a member is gone three
    /// heartbeats after its last one. Every host of a cluster must use the same value.
    pub heartbeat: Duration,
    /// How long a session lease lasts unless renewed (default 15 s; renewed every third).
    pub lease: Duration,
    /// How long a cluster pool job may run on a host without a sign of life before it is
    /// redelivered to another host (default 15 s; the running host reports progress every
    /// third). Every host of a cluster must use the same value.
    pub pool_ack_wait: Duration,
    /// Where `POST /v1/sessions` makes new dynamic sessions (default
    /// [`Placement::Capacity`]; a request's `placement` overrides it).
    pub placement: Placement,
}

impl ClusterConfig {
    /// Joins the NATS server at `url` with the default timings.
    pub fn new(url: impl Into<String>) -> Self {
        ClusterConfig {
            url: url.into(),
            auth: NatsAuth::None,
            tls: NatsTls::default(),
            node_name: None,
            heartbeat: Duration::from_secs(2),
            lease: Duration::from_secs(15),
            pool_ack_wait: Duration::from_secs(15),
            placement: Placement::Capacity,
        }
    }

    /// How this host authenticates to the NATS server.
    #[must_use]
    pub fn auth(mut self, auth: NatsAuth) -> Self {
        self.auth = auth;
        self
    }

    /// TLS of the connection to the NATS server.
    #[must_use]
    pub fn tls(mut self, tls: NatsTls) -> Self {
        self.tls = tls;
        self
    }

    /// This host's node name.
    #[must_use]
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = Some(name.into());
        self
    }

    /// The heartbeat interval.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// The lease duration.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The cluster pools' ack wait (see [`ClusterConfig::pool_ack_wait`]).
    #[must_use]
    pub fn pool_ack_wait(mut self, wait: Duration) -> Self {
        self.pool_ack_wait = wait;
        self
    }

    /// Where new dynamic sessions are made.
    #[must_use]
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }
}

/// What went wrong in the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The NATS server could not be reached.
    #[error("cannot connect to the cluster's NATS server at {url}: {detail}; check [cluster] url / --cluster and that nats-server runs with JetStream (-js)")]
    Connect {
        /// The server's URL.
        url: String,
        /// The client's error.
        detail: String,
    },
    /// The cluster URL is not `nats://HOST:PORT` or `tls://HOST:PORT`, or carries
    /// credentials (shown as `***`).
    #[error("invalid cluster URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, credentials replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A password or token could not be read from its environment variable or file.
    #[error("cannot read the cluster's NATS {what} from {from}: {detail}")]
    Secret {
        /// `password` or `token`.
        what: &'static str,
        /// Where it was to come from (`$VAR`, `the file PATH`), never the secret.
        from: String,
        /// What went wrong.
        detail: String,
    },
    /// The `.creds` file is missing or not a NATS credentials file.
    #[error("cannot use the NATS credentials file {}: {detail}; check [cluster] creds_file (a .creds file with a user JWT and its nkey seed, as `nsc generate creds` writes it)", path.display())]
    Credentials {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The NATS server refused this host's credentials (authorization violation).
    #[error("the NATS server at {url} refused this host's credentials ({method}): {hint}")]
    AuthRefused {
        /// The server's URL.
        url: String,
        /// The method used, without the secret ([`NatsAuth::describe`]).
        method: String,
        /// What to check.
        hint: &'static str,
    },
    /// A TLS file (`tls_ca`, `tls_cert`, `tls_key`) is missing or not PEM.
    #[error("cannot use {} for [cluster] {key}: {detail}", path.display())]
    TlsFile {
        /// The `[cluster]` key.
        key: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The server's certificate is not signed by a CA this host trusts (or does not name
    /// the host of the URL).
    #[error("the NATS server at {url} presented a certificate this host does not trust ({detail}); set [cluster] tls_ca to the PEM file of the CA that signed it, and connect by a host name the certificate names")]
    TlsUntrusted {
        /// The server's URL.
        url: String,
        /// The TLS error.
        detail: String,
    },
    /// The server refused this host's client certificate, or wants one and got none.
    #[error("the NATS server at {url} refused this host's TLS client certificate ({detail}); it verifies clients: set [cluster] tls_cert and tls_key to a certificate signed by the CA it trusts")]
    TlsClientRefused {
        /// The server's URL.
        url: String,
        /// The TLS error.
        detail: String,
    },
    /// TLS is required but the server does not offer it.
    #[error("TLS is required for the cluster's NATS connection ({why}), but the server at {url} does not offer TLS; enable TLS on the server (a tls {{ cert_file, key_file }} block), or point [cluster] url at one that has it")]
    TlsUnavailable {
        /// The server's URL.
        url: String,
        /// What requires TLS (a `tls://` URL, `tls = true`, `tls_ca`, `tls_cert`).
        why: &'static str,
    },
    /// Another TLS failure with the server.
    #[error("the TLS handshake with the NATS server at {url} failed: {detail}; check [cluster] tls_ca, tls_cert and tls_key")]
    Tls {
        /// The server's URL.
        url: String,
        /// The TLS error.
        detail: String,
    },
    /// A bucket could not be created or opened.
    #[error("cannot open the JetStream key-value bucket {bucket}: {detail}; is JetStream enabled on the NATS server (nats-server -js)?")]
    Bucket {
        /// The bucket.
        bucket: &'static str,
        /// The server's or client's error.
        detail: String,
    },
    /// The membership bucket exists with another TTL: hosts disagree on the heartbeat.
    #[error("the bucket {bucket} expires entries after {found:?}, but this host's heartbeat needs {wanted:?}: give every host of the cluster the same [cluster] heartbeat_secs")]
    BucketMismatch {
        /// The bucket.
        bucket: &'static str,
        /// Its `max_age`.
        found: Duration,
        /// This host's.
        wanted: Duration,
    },
    /// A live member already uses this node name.
    #[error("a live cluster member is already named {node:?}; give this host another --node-name (or wait until the other's heartbeat expires)")]
    NameTaken {
        /// The name.
        node: String,
    },
    /// The node name is not 1-64 characters of `A-Z a-z 0-9 _ -`.
    #[error("invalid node name {0:?}: 1-64 characters of A-Z, a-z, 0-9, _ or -")]
    InvalidNodeName(String),
    /// Another member took over a lease this host held (it was not renewed in time).
    #[error("lost the lease of {key}{}; this host no longer serves that session", owner.as_ref().map(|o| format!(" to {o}")).unwrap_or_default())]
    LeaseLost {
        /// The ownership key (`<tenant>.<session>`).
        key: String,
        /// Who holds it now, when known.
        owner: Option<String>,
    },
    /// A claim raced with a release or another claim; trying again decides it.
    #[error("the lease of {key} changed while claiming it; try again")]
    Contended {
        /// The ownership key.
        key: String,
    },
    /// A key-value operation failed (NATS unreachable, a timeout, ...).
    #[error("cluster key-value operation failed: {0}")]
    Kv(String),
    /// The cluster pools' job stream failed (NATS unreachable, a timeout, ...).
    #[error("cluster pool jobs: {0}")]
    Jobs(String),
    /// A pool's jobs in the stream reached the hard cap.
    #[error(
        "the cluster's job stream holds as many jobs of pool {pool} as it may; try again later"
    )]
    JobsFull {
        /// The pool.
        pool: String,
    },
    /// A value in a bucket is not what this version writes.
    #[error("a cluster bucket holds a value this host cannot read: {0}")]
    Encoding(String),
    /// The connection to the NATS server is down (the host reconnects on its own).
    #[error("the cluster's NATS server is unreachable (the connection has been down for {down:.1?}; this host reconnects on its own): try again shortly")]
    Unreachable {
        /// How long it has been down.
        down: Duration,
    },
    /// The connection to NATS came back (or failed) too recently to take over another
    /// member's expired lease: that member may not have renewed it yet.
    #[error("the connection to the cluster's NATS server came back too recently to take over the expired lease of {key} from {owner}, which may still be renewing it: try again in a few seconds")]
    Unsettled {
        /// The ownership key.
        key: String,
        /// The member named in the expired lease.
        owner: String,
    },
}

impl ClusterError {
    fn kv(e: impl std::fmt::Display) -> Self {
        ClusterError::Kv(e.to_string())
    }
}

/// The host's load for its heartbeat, asked for at every heartbeat.
pub type LoadProbe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Load> + Send>> + Send + Sync>;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Connects with `config`'s URL, credentials and TLS (see [`auth`]).
async fn connect(config: &ClusterConfig, node: &str) -> Result<jetstream::Context, ClusterError> {
    let mut js = jetstream::new(auth::connect(config, node).await?);
    js.set_timeout(link::REQUEST_TIMEOUT); // bounded while NATS is down (see link.rs)
    Ok(js)
}

/// Opens `bucket`, creating it when absent; an existing bucket must expire entries after
/// `max_age` (zero: never).
///
/// The bucket's stream is created here with the settings of the key-value convention
/// (`KV_<bucket>` on `$KV.<bucket>.>`, one value per key, rollups, direct get) rather
/// than with `create_key_value`: that call first reads the account's JetStream info,
/// which async-nats 0.51 cannot parse from nats-server 2.9.
async fn bucket(
    js: &jetstream::Context,
    bucket: &'static str,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    use jetstream::stream::{Config, DiscardPolicy, StorageType};
    let stream = format!("KV_{bucket}");
    let config = Config {
        name: stream.clone(),
        description: Some(format!("claude-code cluster: {bucket}")),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        num_replicas: 1,
        discard: DiscardPolicy::New,
        ..Default::default()
    };
    let fail = |e: &dyn std::fmt::Display| ClusterError::Bucket {
        bucket,
        detail: e.to_string(),
    };
    if let Err(create) = js.create_stream(config).await {
        // It exists, with settings of its own: the TTL must be ours.
        let mut existing = js.get_stream(&stream).await.map_err(|_| fail(&create))?;
        let found = existing.info().await.map_err(|e| fail(&e))?.config.max_age;
        if found != max_age {
            return Err(ClusterError::BucketMismatch {
                bucket,
                found,
                wanted: max_age,
            });
        }
    }
    js.get_key_value(bucket).await.map_err(|e| fail(&e))
}

impl Leases {
    /// Connects to the NATS server at `url` and opens (or creates) the ownership bucket
    /// for `node`, with leases of `lease`. No background work: the caller renews.
    pub async fn connect(url: &str, node: &str, lease: Duration) -> Result<Leases, ClusterError> {
        Leases::connect_with(&ClusterConfig::new(url), node, lease).await
    }

    /// As [`Leases::connect`], with `config`'s URL, credentials and TLS.
    pub async fn connect_with(
        config: &ClusterConfig,
        node: &str,
        lease: Duration,
    ) -> Result<Leases, ClusterError> {
        check_node(node)?;
        let js = connect(config, node).await?;
        let kv = bucket(&js, OWNERS_BUCKET, Duration::ZERO).await?;
        let link = Link::watch(js.client(), node.to_string(), lease);
        Ok(Leases::new(kv, node.to_string(), lease).with_link(link))
    }
}

fn check_node(node: &str) -> Result<(), ClusterError> {
    if crate::state::is_valid_name(node) {
        Ok(())
    } else {
        Err(ClusterError::InvalidNodeName(node.to_string()))
    }
}

/// This host's membership of a cluster: its heartbeat and its leases, renewed on a
/// timer until [`leave`](Self::leave) (or drop, which stops both without leaving, as a
/// crash would).
#[derive(Debug)]
pub struct Cluster {
    node: String,
    client: async_nats::Client,
    members: members::Members,
    leases: Leases,
    checkpoints: checkpoints::Checkpoints,
    jobs: Jobs,
    ttl: Duration,
    heartbeat: Duration,
    placement: Placement,
    link: Link,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Cluster {
    /// Joins: connects, opens the buckets, puts the first heartbeat (refusing a node name
    /// a live member uses), then keeps heartbeating with `probe`'s load and renewing the
    /// held leases. `url` is this host's HTTP API; `default_node` its name unless the
    /// config gives one.
    pub async fn join(
        config: &ClusterConfig,
        url: String,
        default_node: String,
        probe: LoadProbe,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let node = config.node_name.clone().unwrap_or(default_node);
        check_node(&node)?;
        let js = connect(config, &node).await?;
        let ttl = members::ttl(config.heartbeat);
        let members_kv = bucket(&js, MEMBERS_BUCKET, ttl).await?;
        let owners_kv = bucket(&js, OWNERS_BUCKET, Duration::ZERO).await?;
        let checkpoints = checkpoints::Checkpoints::open(&js).await?;
        let jobs = Jobs::open(&js, config.pool_ack_wait).await?;
        // Not settled for a heartbeat TTL (+ a reconnection) after NATS comes back.
        let link = Link::watch(js.client(), node.clone(), ttl + RECONNECT_CAP);
        let members = members::Members::new(members_kv, node.clone(), url).with_link(link.clone());
        let leases = Leases::new(owners_kv, node.clone(), config.lease).with_link(link.clone());
        let revision = members.enter(probe().await).await?;
        crate::metrics::cluster::register(&node);
        let cluster = Arc::new(Cluster {
            node,
            client: js.client(),
            members,
            leases,
            checkpoints,
            jobs,
            ttl,
            heartbeat: config.heartbeat,
            placement: config.placement,
            link,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(keep_alive(
            Arc::downgrade(&cluster),
            revision,
            config.heartbeat,
            config.lease / 3,
            probe,
        ));
        if let Ok(mut slot) = cluster.task.lock() {
            *slot = Some(task);
        }
        tracing::info!(node = %cluster.node, nats = %config.url, "joined the cluster");
        Ok(cluster)
    }

    /// This host's node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long after its last heartbeat a member drops out.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// Where new dynamic sessions are made unless a request says otherwise.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// The connection to NATS (whether it is up, since when).
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Stores a session's checkpoint (its transcript and recipe) in
    /// [`TRANSCRIPTS_BUCKET`], replacing the previous one.
    pub async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), ClusterError> {
        self.link.check()?;
        self.checkpoints.save(checkpoint).await
    }

    /// The last checkpoint of a session, if any.
    pub async fn checkpoint(
        &self,
        tenant: &str,
        session: &str,
    ) -> Result<Option<Checkpoint>, ClusterError> {
        self.link.check()?;
        self.checkpoints.load(tenant, session).await
    }

    /// Deletes a session's checkpoint (the session was deleted).
    pub async fn forget_checkpoint(&self, tenant: &str, session: &str) -> Result<(), ClusterError> {
        self.link.check()?;
        self.checkpoints.delete(tenant, session).await
    }

    /// The sessions whose owner is gone: their lease has expired and its owner is not a
    /// live member. `(tenant, session)` pairs; another host may claim one first. None
    /// while the connection to NATS is not [settled](Link::settled) (after an outage the
    /// other members may not have renewed their heartbeats yet).
    pub async fn orphans(&self) -> Result<Vec<(String, String)>, ClusterError> {
        if !self.link.settled() {
            self.link.check()?;
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut orphans = Vec::new();
        for (key, lease) in self.leases.all().await? {
            if !lease.expired_at(now) || self.is_member(&lease.owner).await? {
                continue;
            }
            if let Some((tenant, session)) = key.split_once('.') {
                orphans.push((tenant.to_string(), session.to_string()));
            }
        }
        Ok(orphans)
    }

    /// The live members (this host included while it heartbeats), by node name.
    pub async fn members(&self) -> Result<Vec<Member>, ClusterError> {
        self.members.list().await
    }

    /// Whether `node` is a live member (its heartbeat has not expired).
    pub async fn is_member(&self, node: &str) -> Result<bool, ClusterError> {
        self.members.is_live(node).await
    }

    /// The NATS connection (routing uses it).
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The cluster pools' job stream and records.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// This host's leases.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Leaves: stops heartbeating and renewing, deletes this host's member key and
    /// releases every lease it holds, so that the others see it gone at once.
    /// Without a connection to NATS this fails at once (the leases then run out and the
    /// heartbeat expires on their own).
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.stop();
        self.link.check()?;
        let left = self.members.leave().await;
        for key in self.leases.held() {
            if let Err(e) = self.leases.release_key(&key).await {
                tracing::warn!(key = %key, error = %e, "releasing a session lease failed");
            }
        }
        link::flush(&self.client).await;
        tracing::info!(node = %self.node, "left the cluster");
        left
    }

    pub(crate) fn stop(&self) {
        if let Some(task) = self.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How soon a heartbeat or renewal that failed (NATS unreachable, a timeout) is tried
/// again: after NATS comes back, a host renews its heartbeat and leases within this.
const RETRY: Duration = Duration::from_millis(200);

/// Heartbeats every `heartbeat` and renews the held leases every `renew`, while the
/// cluster lives. After a failure (NATS down) both are retried every [`RETRY`] until they
/// succeed, so a host re-confirms its membership and its leases right after NATS comes
/// back, before the other members' grace period ([`Link::settled`]) lets them take any
/// expired lease over.
async fn keep_alive(
    cluster: std::sync::Weak<Cluster>,
    mut revision: u64,
    heartbeat: Duration,
    renew: Duration,
    probe: LoadProbe,
) {
    let mut beat = tokio::time::interval(heartbeat);
    let mut renewal = tokio::time::interval(renew.max(Duration::from_millis(100)));
    let mut retry = tokio::time::interval(RETRY);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    renewal.tick().await;
    // What failed and is retried; warnings are logged once per failing stretch.
    let (mut beat_behind, mut renew_behind) = (false, false);
    loop {
        // (beat, renew, a scheduled heartbeat: counted in the failures metric)
        let (do_beat, do_renew, scheduled) = tokio::select! {
            _ = beat.tick() => (true, false, true),
            _ = renewal.tick() => (false, true, false),
            _ = retry.tick(), if beat_behind || renew_behind => (beat_behind, renew_behind, false),
        };
        let Some(c) = cluster.upgrade() else { return };
        if do_renew {
            let mut failed = None;
            for key in c.leases.held() {
                match c.leases.renew_key(&key).await {
                    Ok(()) => {}
                    Err(e @ ClusterError::LeaseLost { .. }) => {
                        crate::metrics::cluster::lease_lost(&c.node);
                        tracing::warn!(node = %c.node, error = %e, "session lease lost");
                    }
                    Err(e) => failed = Some((key, e)),
                }
            }
            match failed {
                Some((key, e)) => {
                    c.link.note_failure();
                    if !renew_behind {
                        tracing::warn!(node = %c.node, key = %key, error = %e, "renewing session leases failed; retrying");
                    }
                    renew_behind = true;
                }
                None if renew_behind => {
                    renew_behind = false;
                    tracing::info!(node = %c.node, "session leases renewed again");
                }
                None => {}
            }
        }
        if do_beat {
            match c.members.beat(revision, probe().await).await {
                Ok(r) => {
                    revision = r;
                    if beat_behind {
                        beat_behind = false;
                        tracing::info!(node = %c.node, "cluster heartbeat put again");
                    }
                }
                Err(e) => {
                    c.link.note_failure();
                    if scheduled {
                        crate::metrics::cluster::heartbeat_failure(&c.node);
                    }
                    if !beat_behind {
                        tracing::warn!(node = %c.node, error = %e, "cluster heartbeat failed; retrying");
                    }
                    beat_behind = true;
                }
            }
        }
    }
}
