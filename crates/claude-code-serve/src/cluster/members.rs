//! Membership: one key per node in the `claude_members` bucket, put every heartbeat; the
//! bucket's `max_age` (three heartbeats) removes the key of a node that stopped, so the
//! live keys are the members.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::{leases::bytes_value, now_ms, ClusterError};

/// The bucket of heartbeats.
pub const MEMBERS_BUCKET: &str = "claude_members";

/// One member's last heartbeat: who it is, where its HTTP API is, and its capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct Member {
    /// Its node name (unique in the cluster).
    pub node: String,
    /// Its HTTP API (`http://<listen address>`).
    pub url: String,
    /// CLIs running now: live sessions (not hibernated ones) and pool members.
    pub live_clis: usize,
    /// The machine's available memory in bytes (`MemAvailable`), when known.
    pub mem_available: Option<u64>,
    /// Requests waiting for a pool member, over all its pools.
    pub queue_depth: usize,
    /// Sessions it holds (live or hibernated, every tenant).
    pub sessions: usize,
    /// When it sent this heartbeat, in milliseconds since the Unix epoch.
    pub updated: u64,
}

/// A host's load, as its heartbeat reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Load {
    /// CLIs running now.
    pub live_clis: usize,
    /// Available memory in bytes.
    pub mem_available: Option<u64>,
    /// Requests waiting for a pool member.
    pub queue_depth: usize,
    /// Sessions held.
    pub sessions: usize,
}

/// The membership bucket, as one node sees it.
#[derive(Debug, Clone)]
pub(super) struct Members {
    kv: kv::Store,
    node: String,
    url: String,
    /// Operations fail at once while the connection to NATS is down.
    link: Option<super::Link>,
}

impl Members {
    pub(super) fn new(kv: kv::Store, node: String, url: String) -> Self {
        Members {
            kv,
            node,
            url,
            link: None,
        }
    }

    /// Watches `link`: operations fail at once while the connection is down.
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

    fn value(&self, load: Load) -> Result<bytes::Bytes, ClusterError> {
        bytes_value::encode(&Member {
            node: self.node.clone(),
            url: self.url.clone(),
            live_clis: load.live_clis,
            mem_available: load.mem_available,
            queue_depth: load.queue_depth,
            sessions: load.sessions,
            updated: now_ms(),
        })
    }

    /// The first heartbeat: creates this node's key, refusing a name a live member uses.
    pub(super) async fn enter(&self, load: Load) -> Result<u64, ClusterError> {
        self.online()?;
        match self.kv.create(self.node.as_str(), self.value(load)?).await {
            Ok(revision) => Ok(revision),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Err(ClusterError::NameTaken {
                node: self.node.clone(),
            }),
            Err(e) => Err(ClusterError::kv(e)),
        }
    }

    /// A heartbeat at `revision` (the last one this node wrote). When the key expired
    /// meanwhile (a stall longer than the TTL) it is created again; when another host took
    /// the name, [`ClusterError::NameTaken`]. When the key holds this node's own
    /// heartbeat at another revision (a heartbeat whose answer was lost with the
    /// connection, or a restarted server that lost the last one), it is updated there.
    pub(super) async fn beat(&self, revision: u64, load: Load) -> Result<u64, ClusterError> {
        self.online()?;
        match self
            .kv
            .update(self.node.as_str(), self.value(load)?, revision)
            .await
        {
            Ok(revision) => Ok(revision),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                match self.enter(load).await {
                    Err(ClusterError::NameTaken { node }) => {
                        let entry = self
                            .kv
                            .entry(self.node.as_str())
                            .await
                            .map_err(ClusterError::kv)?;
                        match entry {
                            Some(e)
                                if e.operation == Operation::Put
                                    && bytes_value::decode::<Member>(&e.value)
                                        .is_ok_and(|m| m.url == self.url) =>
                            {
                                self.kv
                                    .update(self.node.as_str(), self.value(load)?, e.revision)
                                    .await
                                    .map_err(ClusterError::kv)
                            }
                            _ => Err(ClusterError::NameTaken { node }),
                        }
                    }
                    other => other,
                }
            }
            Err(e) => Err(ClusterError::kv(e)),
        }
    }

    /// Removes this node's key (graceful leave).
    pub(super) async fn leave(&self) -> Result<(), ClusterError> {
        self.online()?;
        self.kv
            .delete(self.node.as_str())
            .await
            .map_err(ClusterError::kv)
    }

    /// Whether `node` is a live member (its heartbeat has not expired).
    pub(super) async fn is_live(&self, node: &str) -> Result<bool, ClusterError> {
        self.guarded(async {
            self.online()?;
            match self.kv.entry(node).await.map_err(ClusterError::kv)? {
                Some(e) => Ok(e.operation == Operation::Put),
                None => Ok(false),
            }
        })
        .await
    }

    /// The live members, sorted by node name.
    pub(super) async fn list(&self) -> Result<Vec<Member>, ClusterError> {
        self.guarded(async {
            self.online()?;
            let keys: Vec<String> = match self.kv.keys().await {
                Ok(keys) => keys.try_collect().await.map_err(ClusterError::kv)?,
                Err(e) => return Err(ClusterError::kv(e)),
            };
            let mut members = Vec::with_capacity(keys.len());
            for key in keys {
                match self
                    .kv
                    .entry(key.as_str())
                    .await
                    .map_err(ClusterError::kv)?
                {
                    Some(e) if e.operation == Operation::Put => {
                        members.push(bytes_value::decode::<Member>(&e.value)?);
                    }
                    _ => {}
                }
            }
            members.sort_by(|a, b| a.node.cmp(&b.node));
            Ok(members)
        })
        .await
    }
}

/// The heartbeat TTL for a heartbeat interval: three missed heartbeats.
pub(super) fn ttl(heartbeat: Duration) -> Duration {
    heartbeat * 3
}
