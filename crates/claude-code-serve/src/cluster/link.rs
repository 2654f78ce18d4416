//! The host's connection to the cluster's NATS server, as the rest of the cluster code
//! sees it: whether it is up now, since when, and how many times it was (re)established.
//!
//! async-nats reconnects on its own (forever, see [`reconnect_delay`]); while it is down,
//! a request would wait for its whole timeout. [`Link::check`] lets every cluster
//! operation fail at once instead, with [`ClusterError::Unreachable`] (503
//! `cluster_unavailable`), and [`Link::lost`] lets a routed turn or call in flight notice
//! a disconnection (its messages in flight are lost) without waiting for a timeout.
//!
//! After a reconnection (or a failed key-value operation) the link is not
//! [`settled`](Link::settled) for a grace period: the other members may not have
//! reconnected and renewed their heartbeats and leases yet, so expired leases of other
//! members are not taken over until then (see [`Leases::claim`](super::Leases::claim)).
//! When the NATS server itself restarts, every member loses it at once; without the grace
//! the first host back would take over the sessions of the others.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::connection::State;
use tokio::sync::watch;

use super::ClusterError;

/// The longest pause between two reconnection attempts (they never stop).
pub const RECONNECT_CAP: Duration = Duration::from_secs(1);

/// The bound on every JetStream request (key-value, object store, job publish acks):
/// a request sent just before the connection dropped fails within it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a cluster pool job's requester waits for the connection to come back before
/// it answers 503 `cluster_unavailable`.
pub const OUTAGE_WAIT: Duration = Duration::from_secs(2);

/// How often the connection's state is looked at.
const POLL: Duration = Duration::from_millis(50);

/// How long [`flush`] waits (a flush waits for the server, so for a reconnection).
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// The pause before reconnection attempt `attempts`: at once, then doubling from 50 ms up
/// to [`RECONNECT_CAP`] (async-nats' default goes up to 4 s, which would keep a host
/// away from a restarted server for that long).
pub fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exp = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    Duration::from_millis(50u64.saturating_mul(1 << exp)).min(RECONNECT_CAP)
}

/// Flushes the client, bounded: a flush while disconnected would wait for the
/// reconnection.
pub(crate) async fn flush(client: &async_nats::Client) {
    let _ = tokio::time::timeout(FLUSH_WAIT, client.flush()).await;
}

/// The connection's state at one moment.
#[derive(Debug, Clone, Copy)]
struct Status {
    connected: bool,
    /// How many times the connection was established (the first connect is 1).
    epoch: u64,
    /// When it became what it is.
    since: Instant,
}

/// The connection's state, watched (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Link {
    client: async_nats::Client,
    rx: watch::Receiver<Status>,
    /// Since when nothing went wrong: set at each (re)connection and failure.
    calm: Arc<Mutex<Instant>>,
    grace: Duration,
}

impl Link {
    /// Watches `client`'s connection (a task polls it every 50 ms while any clone of the
    /// link lives) and reports it as the `claude_cluster_connected{node}` gauge.
    /// `grace`: how long after a reconnection or failure the link is not settled. The
    /// first connection counts as settled at once.
    pub(crate) fn watch(client: async_nats::Client, node: String, grace: Duration) -> Link {
        let now = Instant::now();
        let status = Status {
            connected: client.connection_state() == State::Connected,
            epoch: client
                .statistics()
                .connects
                .load(std::sync::atomic::Ordering::Relaxed),
            since: now,
        };
        let (tx, rx) = watch::channel(status);
        let calm = Arc::new(Mutex::new(now.checked_sub(grace).unwrap_or(now)));
        let link = Link {
            client: client.clone(),
            rx,
            calm: calm.clone(),
            grace,
        };
        crate::metrics::cluster::set_connected(&node, status.connected);
        tokio::spawn(async move {
            let stats = client.statistics();
            let mut last = status;
            loop {
                tokio::time::sleep(POLL).await;
                if tx.is_closed() {
                    return;
                }
                let connected = client.connection_state() == State::Connected;
                let epoch = stats.connects.load(std::sync::atomic::Ordering::Relaxed);
                if connected == last.connected && epoch == last.epoch {
                    continue;
                }
                let now = Instant::now();
                if let Ok(mut calm) = calm.lock() {
                    *calm = now;
                }
                if connected {
                    tracing::info!(%node, "reconnected to the cluster's NATS server");
                } else {
                    tracing::warn!(%node, "lost the connection to the cluster's NATS server; reconnecting");
                }
                crate::metrics::cluster::set_connected(&node, connected);
                last = Status {
                    connected,
                    epoch,
                    since: now,
                };
                tx.send_replace(last);
            }
        });
        link
    }

    /// Whether the connection is up now (as the client knows it this instant, not as
    /// last polled).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// How many times the connection was established; a change means it dropped
    /// meanwhile (messages in flight then may be lost).
    pub fn epoch(&self) -> u64 {
        self.rx.borrow().epoch
    }

    /// How long the connection has been down, when it is.
    pub fn down_for(&self) -> Option<Duration> {
        if self.connected() {
            return None;
        }
        let s = *self.rx.borrow();
        // Not polled yet: it has just dropped.
        Some(if s.connected {
            Duration::ZERO
        } else {
            s.since.elapsed()
        })
    }

    /// `Ok` while the connection is up, else [`ClusterError::Unreachable`] at once.
    pub fn check(&self) -> Result<(), ClusterError> {
        match self.down_for() {
            None => Ok(()),
            Some(down) => Err(ClusterError::Unreachable { down }),
        }
    }

    /// Records a failed cluster operation: the link is not settled for the grace period
    /// from now.
    pub(crate) fn note_failure(&self) {
        if let Ok(mut calm) = self.calm.lock() {
            *calm = Instant::now();
        }
    }

    /// Whether the connection is up and nothing went wrong for the grace period: the
    /// other members had time to reconnect and renew their heartbeats and leases.
    pub fn settled(&self) -> bool {
        self.connected() && self.calm.lock().is_ok_and(|c| c.elapsed() >= self.grace)
    }

    /// The grace period after a reconnection or failure.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Runs `op` unless the connection is down ([`ClusterError::Unreachable`] at once),
    /// and gives it up as soon as the connection drops while it waits (its answer would
    /// be lost with the connection), instead of waiting for its timeout.
    pub(crate) async fn guard<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        self.check()?;
        let epoch = self.epoch();
        tokio::select! {
            done = op => done,
            () = self.lost(epoch) => Err(ClusterError::Unreachable {
                down: self.down_for().unwrap_or_default(),
            }),
        }
    }

    /// Resolves when the connection drops or has dropped since it was at `epoch` (the
    /// messages in flight on it may be lost).
    pub(crate) async fn lost(&self, epoch: u64) {
        let mut rx = self.rx.clone();
        loop {
            {
                let s = rx.borrow_and_update();
                if !s.connected || s.epoch != epoch {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                // The link is gone with its cluster: never resolves.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnection_attempts_back_off_up_to_the_cap_and_never_stop() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3), Duration::from_millis(100));
        assert_eq!(reconnect_delay(6), Duration::from_millis(800));
        assert_eq!(reconnect_delay(7), RECONNECT_CAP);
        assert_eq!(reconnect_delay(usize::MAX), RECONNECT_CAP);
    }
}
