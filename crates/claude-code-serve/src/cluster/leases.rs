//! Session ownership: one key per `<tenant>.<session>` in the `claude_owners` bucket,
//! claimed with compare-and-set on the key's revision and held as a lease.
//!
//! nats-server 2.9 has no per-message TTL, so a lease's expiry lives in its value
//! ([`Lease::expires_ms`], wall-clock milliseconds: the hosts' clocks must agree to well
//! within a lease). A claimer takes a free key with `create` (absent or deleted) and an
//! expired lease with `update` at the revision it read; of two claimers racing for one
//! revision, JetStream accepts exactly one. The owner renews with `update` at the revision
//! it last wrote, so an owner whose lease was taken over learns it on its next renewal.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use serde::{Deserialize, Serialize};

use super::{now_ms, ClusterError};

/// The bucket of session leases.
pub const OWNERS_BUCKET: &str = "claude_owners";

/// How much earlier than its expiry a holder stops trusting its own lease.
const CLOCK_MARGIN: Duration = Duration::from_millis(10);

/// The value of an ownership key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Lease {
    /// The member (node name) that owns the session.
    pub owner: String,
    /// When the lease ends unless renewed, in milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

impl Lease {
    /// Whether the lease has ended at `now_ms`.
    pub fn expired_at(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

/// The outcome of [`Leases::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// This node holds the lease now (new, taken over from an expired lease, or already
    /// its own and renewed).
    Won,
    /// Another member holds an unexpired lease.
    Held(Lease),
}

/// This node's handle on the ownership bucket: claims, renews and releases leases and
/// remembers the revision of each lease it holds. It does no background work; the
/// cluster renews its leases on a timer (see [`Cluster`](super::Cluster)).
#[derive(Debug, Clone)]
pub struct Leases {
    kv: kv::Store,
    node: String,
    lease: Duration,
    /// Held leases: key → the revision this node last wrote.
    held: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Until when each held lease is surely this node's, on this node's monotonic clock:
    /// the lease's length from *before* the write that set it, so never later than the
    /// expiry the others read.
    deadlines: Arc<Mutex<BTreeMap<String, Instant>>>,
    /// Leases this node held until another member took them over.
    lost: Arc<Mutex<BTreeSet<String>>>,
    /// The connection to NATS: every operation fails at once while it is down, and
    /// another member's expired lease is not taken over until it is settled.
    link: Option<super::Link>,
}

/// The ownership key of a tenant's session.
pub fn owner_key(tenant: &str, session: &str) -> String {
    format!("{tenant}.{session}")
}

impl Leases {
    pub(super) fn new(kv: kv::Store, node: String, lease: Duration) -> Self {
        Leases {
            kv,
            node,
            lease,
            held: Arc::default(),
            deadlines: Arc::default(),
            lost: Arc::default(),
            link: None,
        }
    }

    /// Watches `link`: operations fail at once with [`ClusterError::Unreachable`] while
    /// the connection is down, and [`claim`](Self::claim) takes no other member's
    /// expired lease over while it is not [settled](super::Link::settled).
    pub(super) fn with_link(mut self, link: super::Link) -> Self {
        self.link = Some(link);
        self
    }

    fn online(&self) -> Result<(), ClusterError> {
        self.link.as_ref().map_or(Ok(()), super::Link::check)
    }

    /// Runs `op` unless the connection is down, and gives it up as soon as the
    /// connection drops (its answer would be lost): [`ClusterError::Unreachable`] then.
    async fn guarded<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        match &self.link {
            Some(link) => link.guard(op).await,
            None => op.await,
        }
    }

    fn fresh(&self) -> Result<bytes_value::Value, ClusterError> {
        let lease = Lease {
            owner: self.node.clone(),
            expires_ms: now_ms().saturating_add(self.lease.as_millis() as u64),
        };
        bytes_value::encode(&lease)
    }

    /// Records a lease written at `revision` by a write that started at `started`.
    fn hold(&self, key: &str, revision: u64, started: Instant) {
        if let Ok(mut held) = self.held.lock() {
            held.insert(key.to_string(), revision);
        }
        if let Ok(mut deadlines) = self.deadlines.lock() {
            // A margin for the value's whole milliseconds and for the wall clock against
            // the monotonic one.
            let margin = CLOCK_MARGIN.max(self.lease / 100);
            deadlines.insert(key.to_string(), started + self.lease.saturating_sub(margin));
        }
        if let Ok(mut lost) = self.lost.lock() {
            lost.remove(key);
        }
    }

    /// Records that another member holds the lease of `key`, which this node has a copy
    /// of (a restored session): it must not serve it.
    pub(crate) fn mark_lost(&self, key: &str) {
        if let Ok(mut lost) = self.lost.lock() {
            lost.insert(key.to_string());
        }
    }

    /// Whether this node held the lease of `key` until another member took it over (and
    /// has not claimed it again since).
    pub fn lost(&self, key: &str) -> bool {
        self.lost.lock().is_ok_and(|l| l.contains(key))
    }

    fn forget(&self, key: &str) -> Option<u64> {
        if let Ok(mut deadlines) = self.deadlines.lock() {
            deadlines.remove(key);
        }
        self.held.lock().ok().and_then(|mut held| held.remove(key))
    }

    /// Re-takes the lease of `key` that this node holds but could not renew at its
    /// revision, when that is still this node's: its value names this node (a write
    /// whose answer was lost with the connection, or a server that lost this node's last
    /// write when it was killed), or the key is gone (the server lost it; only its holder
    /// deletes a held lease). `None` when another member holds it.
    async fn retake(&self, key: &str, started: Instant) -> Option<Result<(), ClusterError>> {
        let entry = match self.kv.entry(key).await {
            Ok(entry) => entry,
            Err(e) => return Some(Err(ClusterError::kv(e))),
        };
        let written = match entry {
            Some(e) if e.operation == Operation::Put => {
                let lease = bytes_value::decode::<Lease>(&e.value).ok()?;
                if lease.owner != self.node {
                    return None;
                }
                let value = match self.fresh() {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                };
                self.kv
                    .update(key, value, e.revision)
                    .await
                    .map_err(ClusterError::kv)
            }
            _ => {
                let value = match self.fresh() {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                };
                match self.kv.create(key, value).await {
                    Ok(r) => Ok(r),
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => return None,
                    Err(e) => Err(ClusterError::kv(e)),
                }
            }
        };
        Some(written.map(|revision| {
            tracing::info!(
                key,
                "re-took a session lease whose last revision this host did not see"
            );
            self.hold(key, revision, started)
        }))
    }

    /// Whether this node holds the lease of `key` but could not renew it before it ran
    /// out (cut off from NATS, or NATS down): another member may own the session by now,
    /// so this node must not serve it until a renewal succeeds (or fails for good, which
    /// makes it [`lost`](Self::lost)).
    pub fn unconfirmed(&self, key: &str) -> bool {
        self.deadlines
            .lock()
            .is_ok_and(|d| d.get(key).is_some_and(|until| Instant::now() >= *until))
    }

    /// The keys of the leases this node holds.
    pub fn held(&self) -> Vec<String> {
        self.held
            .lock()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether this node holds the lease of `key` (as far as its last renewal knows).
    pub fn holds(&self, key: &str) -> bool {
        self.held.lock().is_ok_and(|h| h.contains_key(key))
    }

    /// The current lease of a session, if any (expired ones included).
    pub async fn owner(&self, tenant: &str, session: &str) -> Result<Option<Lease>, ClusterError> {
        self.guarded(async {
            self.online()?;
            let key = owner_key(tenant, session);
            match self
                .kv
                .entry(key.as_str())
                .await
                .map_err(ClusterError::kv)?
            {
                Some(e) if e.operation == Operation::Put => {
                    Ok(Some(bytes_value::decode(&e.value)?))
                }
                _ => Ok(None),
            }
        })
        .await
    }

    /// Every lease in the bucket (expired ones included), by key.
    pub async fn all(&self) -> Result<Vec<(String, Lease)>, ClusterError> {
        self.guarded(async {
            use futures::TryStreamExt;
            self.online()?;
            let keys: Vec<String> = match self.kv.keys().await {
                Ok(keys) => keys.try_collect().await.map_err(ClusterError::kv)?,
                Err(e) => return Err(ClusterError::kv(e)),
            };
            let mut leases = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(e) = self
                    .kv
                    .entry(key.as_str())
                    .await
                    .map_err(ClusterError::kv)?
                {
                    if e.operation == Operation::Put {
                        leases.push((key, bytes_value::decode(&e.value)?));
                    }
                }
            }
            Ok(leases)
        })
        .await
    }

    /// The leases of one tenant's sessions (expired ones included), by session name.
    pub async fn of_tenant(&self, tenant: &str) -> Result<Vec<(String, Lease)>, ClusterError> {
        self.guarded(async {
            use futures::TryStreamExt;
            self.online()?;
            let prefix = owner_key(tenant, "");
            let keys: Vec<String> = match self.kv.keys().await {
                Ok(keys) => keys
                    .try_filter(|k| std::future::ready(k.starts_with(&prefix)))
                    .try_collect()
                    .await
                    .map_err(ClusterError::kv)?,
                Err(e) => return Err(ClusterError::kv(e)),
            };
            let mut leases = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(e) = self
                    .kv
                    .entry(key.as_str())
                    .await
                    .map_err(ClusterError::kv)?
                {
                    if e.operation == Operation::Put {
                        let session = key[prefix.len()..].to_string();
                        leases.push((session, bytes_value::decode(&e.value)?));
                    }
                }
            }
            Ok(leases)
        })
        .await
    }

    /// Claims a session: wins a free key or an expired lease by compare-and-set, renews a
    /// lease this node already holds, or reports the live lease of another member.
    ///
    /// Another member's expired lease is taken over only while the connection to NATS is
    /// settled ([`ClusterError::Unsettled`] otherwise): right after NATS comes back, that
    /// member may not have reconnected and renewed it yet.
    pub async fn claim(&self, tenant: &str, session: &str) -> Result<Claim, ClusterError> {
        self.guarded(async {
            self.online()?;
            let key = owner_key(tenant, session);
            let started = Instant::now();
            let value = self.fresh()?;
            match self.kv.create(key.as_str(), value.clone()).await {
                Ok(revision) => {
                    self.hold(&key, revision, started);
                    return Ok(Claim::Won);
                }
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(ClusterError::kv(e)),
            }
            let Some(entry) = self
                .kv
                .entry(key.as_str())
                .await
                .map_err(ClusterError::kv)?
            else {
                // Gone between the two calls (its owner released it): the caller may retry.
                return Err(ClusterError::Contended { key });
            };
            let current: Lease = bytes_value::decode(&entry.value)?;
            if current.owner != self.node && !current.expired_at(now_ms()) {
                return Ok(Claim::Held(current));
            }
            if current.owner != self.node && self.link.as_ref().is_some_and(|l| !l.settled()) {
                return Err(ClusterError::Unsettled {
                    key,
                    owner: current.owner,
                });
            }
            match self.kv.update(key.as_str(), value, entry.revision).await {
                Ok(revision) => {
                    self.hold(&key, revision, started);
                    Ok(Claim::Won)
                }
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    // Another claimer won this revision: report who holds it now.
                    match self.owner(tenant, session).await? {
                        Some(lease) if lease.owner != self.node => Ok(Claim::Held(lease)),
                        _ => Err(ClusterError::Contended { key }),
                    }
                }
                Err(e) => Err(ClusterError::kv(e)),
            }
        })
        .await
    }

    /// Renews a lease this node holds, at the revision it last wrote. A
    /// [`ClusterError::LeaseLost`] means another member took it over (after it expired);
    /// this node no longer holds it.
    pub async fn renew(&self, tenant: &str, session: &str) -> Result<(), ClusterError> {
        self.renew_key(&owner_key(tenant, session)).await
    }

    pub(super) async fn renew_key(&self, key: &str) -> Result<(), ClusterError> {
        let Some(revision) = self.held.lock().ok().and_then(|h| h.get(key).copied()) else {
            return Err(ClusterError::LeaseLost {
                key: key.to_string(),
                owner: None,
            });
        };
        self.online()?;
        let started = Instant::now();
        match self.kv.update(key, self.fresh()?, revision).await {
            Ok(revision) => {
                self.hold(key, revision, started);
                Ok(())
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                // Our own write may have landed without its answer (the connection
                // dropped), or the server lost its last writes (killed): the lease still
                // names this node, so nobody took it; renew it at the revision found.
                if let Some(retaken) = self.retake(key, started).await {
                    return retaken;
                }
                self.forget(key);
                if let Ok(mut lost) = self.lost.lock() {
                    lost.insert(key.to_string());
                }
                let owner = match self.kv.entry(key).await {
                    Ok(Some(e)) if e.operation == Operation::Put => {
                        bytes_value::decode::<Lease>(&e.value).ok().map(|l| l.owner)
                    }
                    _ => None,
                };
                Err(ClusterError::LeaseLost {
                    key: key.to_string(),
                    owner,
                })
            }
            Err(e) => Err(ClusterError::kv(e)),
        }
    }

    /// Releases a lease this node holds (a delete at its revision, so a lease another
    /// member took over meanwhile is left alone). Releasing a lease not held is a no-op.
    pub async fn release(&self, tenant: &str, session: &str) -> Result<(), ClusterError> {
        self.release_key(&owner_key(tenant, session)).await
    }

    pub(super) async fn release_key(&self, key: &str) -> Result<(), ClusterError> {
        let Some(revision) = self.forget(key) else {
            return Ok(());
        };
        self.online()?;
        match self.kv.delete_expect_revision(key, Some(revision)).await {
            Ok(()) => Ok(()),
            // Taken over meanwhile: nothing of ours to release.
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(ClusterError::kv(e)),
        }
    }
}

/// Hand-over of a lease from this node to another member (graceful leave): the leaving
/// owner stops renewing and gives the member the revision it last wrote; the member takes
/// the lease with an update at exactly that revision, so the lease names one owner at
/// every moment and is never free for others to race for.
impl Leases {
    /// Stops holding (and renewing) the lease of the tenant's session and returns the
    /// revision this node last wrote, for [`take_over`](Self::take_over) by another
    /// member. `None` when this node does not hold it.
    pub(crate) fn hand_off(&self, tenant: &str, session: &str) -> Option<u64> {
        self.forget(&owner_key(tenant, session))
    }

    /// Takes over the lease another member handed off at `revision` (an update at that
    /// revision). [`ClusterError::Contended`] when the lease changed since.
    pub(crate) async fn take_over(
        &self,
        tenant: &str,
        session: &str,
        revision: u64,
    ) -> Result<(), ClusterError> {
        self.online()?;
        let key = owner_key(tenant, session);
        let started = Instant::now();
        match self.kv.update(key.as_str(), self.fresh()?, revision).await {
            Ok(revision) => {
                self.hold(&key, revision, started);
                Ok(())
            }
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                Err(ClusterError::Contended { key })
            }
            Err(e) => Err(ClusterError::kv(e)),
        }
    }

    /// The current lease of a session with its revision, if any.
    pub(crate) async fn entry(
        &self,
        tenant: &str,
        session: &str,
    ) -> Result<Option<(Lease, u64)>, ClusterError> {
        self.guarded(async {
            self.online()?;
            let key = owner_key(tenant, session);
            match self
                .kv
                .entry(key.as_str())
                .await
                .map_err(ClusterError::kv)?
            {
                Some(e) if e.operation == Operation::Put => {
                    Ok(Some((bytes_value::decode(&e.value)?, e.revision)))
                }
                _ => Ok(None),
            }
        })
        .await
    }

    /// Releases a lease handed off at `revision` that no member took (a delete at that
    /// revision; a lease changed since is left alone).
    pub(crate) async fn release_at(
        &self,
        tenant: &str,
        session: &str,
        revision: u64,
    ) -> Result<(), ClusterError> {
        self.online()?;
        let key = owner_key(tenant, session);
        match self
            .kv
            .delete_expect_revision(key.as_str(), Some(revision))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(ClusterError::kv(e)),
        }
    }
}

/// JSON values in KV entries.
pub(super) mod bytes_value {
    use super::ClusterError;

    pub(crate) type Value = bytes::Bytes;

    pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Value, ClusterError> {
        serde_json::to_vec(value)
            .map(Value::from)
            .map_err(|e| ClusterError::Encoding(e.to_string()))
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ClusterError> {
        serde_json::from_slice(bytes).map_err(|e| ClusterError::Encoding(e.to_string()))
    }
}
