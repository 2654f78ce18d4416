//! Host-wide admission control for CLI processes: a limit on live CLIs, a limit on
//! CLIs starting at once (start-up is CPU-bound: ~0.8 CPU-seconds each), an optional
//! `MemAvailable` floor read from `/proc/meminfo`, and RSS sampling from
//! `/proc/<pid>/status`. One [`Admission`] is shared (cheap `Clone`) by every pool,
//! spare set and supervisor that should count against the same limits. Deciding *which*
//! session to hibernate when the live limit is reached is the supervisor's business;
//! this module only hands out and counts permits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::options::Options;
use crate::session::Session;

/// Why a new CLI was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// Every live-CLI slot stayed taken for the whole wait.
    #[error(
        "all {max_live} live claude CLI slots stayed taken for {waited:?}; raise \
         Admission::max_live, hibernate idle sessions sooner, or retry later"
    )]
    LiveLimit {
        /// The configured limit.
        max_live: usize,
        /// How long we waited.
        waited: Duration,
    },
    /// `MemAvailable` is below the configured floor.
    #[error(
        "only {available_kib} KiB of memory available, below the {floor_kib} KiB floor; \
         stop or hibernate sessions, or lower Admission::mem_floor_mib"
    )]
    MemoryLow {
        /// `MemAvailable` from `/proc/meminfo`, in KiB.
        available_kib: u64,
        /// The configured floor, in KiB.
        floor_kib: u64,
    },
}

/// Shared limits on CLI processes. Defaults: unlimited live CLIs, at most as many
/// concurrent starts as the machine has cores, no memory floor, 60 s wait for a slot.
///
/// ```
/// use claude_code::Admission;
/// let admission = Admission::new().max_live(64).max_spawns(2).mem_floor_mib(2048);
/// assert_eq!(admission.stats().max_live, 64);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Admission {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    live: Arc<Semaphore>,
    max_live: usize,
    spawns: Arc<Semaphore>,
    max_spawns: usize,
    mem_floor_kib: Option<u64>,
    wait: Duration,
    spawned: AtomicU64,
    refused: AtomicU64,
}

impl Default for Admission {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Admission::build(Semaphore::MAX_PERMITS, cores, None, Duration::from_secs(60))
    }
}

/// A held live-CLI slot; dropping it frees the slot.
#[derive(Debug)]
pub struct LivePermit {
    _permit: OwnedSemaphorePermit,
}

/// A snapshot of an [`Admission`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AdmissionStats {
    /// Live-CLI slots in use.
    pub live: usize,
    /// The live-CLI limit.
    pub max_live: usize,
    /// CLIs starting right now.
    pub spawning: usize,
    /// The concurrent-start limit.
    pub max_spawns: usize,
    /// CLIs started through this admission so far.
    pub spawned: u64,
    /// Starts refused (slot wait timed out, or memory below the floor).
    pub refused: u64,
    /// `MemAvailable` in KiB, when `/proc/meminfo` is readable.
    pub mem_available_kib: Option<u64>,
}

impl Admission {
    /// Limits with the defaults (see the type's docs).
    pub fn new() -> Self {
        Admission::default()
    }

    fn build(max_live: usize, max_spawns: usize, floor: Option<u64>, wait: Duration) -> Self {
        let max_live = max_live.clamp(1, Semaphore::MAX_PERMITS);
        let max_spawns = max_spawns.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            inner: Arc::new(Inner {
                live: Arc::new(Semaphore::new(max_live)),
                max_live,
                spawns: Arc::new(Semaphore::new(max_spawns)),
                max_spawns,
                mem_floor_kib: floor,
                wait,
                spawned: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    fn rebuild(self, f: impl FnOnce(&mut (usize, usize, Option<u64>, Duration))) -> Self {
        let i = &self.inner;
        let mut p = (i.max_live, i.max_spawns, i.mem_floor_kib, i.wait);
        f(&mut p);
        Admission::build(p.0, p.1, p.2, p.3)
    }

    /// Most CLIs alive at once (at least 1). Builder-style: call before sharing.
    pub fn max_live(self, n: usize) -> Self {
        self.rebuild(|p| p.0 = n)
    }

    /// Most CLIs starting at once (at least 1).
    pub fn max_spawns(self, n: usize) -> Self {
        self.rebuild(|p| p.1 = n)
    }

    /// Refuse new CLIs while `MemAvailable` is below this many MiB.
    pub fn mem_floor_mib(self, mib: u64) -> Self {
        self.rebuild(|p| p.2 = Some(mib.saturating_mul(1024)))
    }

    /// How long [`live`](Self::live) waits for a slot (default 60 s).
    pub fn wait_timeout(self, wait: Duration) -> Self {
        self.rebuild(|p| p.3 = wait)
    }

    /// How long [`live`](Self::live) waits for a slot.
    pub(crate) fn wait(&self) -> Duration {
        self.inner.wait
    }

    /// Checks the memory floor.
    fn check_memory(&self) -> Result<(), AdmissionError> {
        let Some(floor_kib) = self.inner.mem_floor_kib else {
            return Ok(());
        };
        match mem_available_kib() {
            Some(available_kib) if available_kib < floor_kib => {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                Err(AdmissionError::MemoryLow {
                    available_kib,
                    floor_kib,
                })
            }
            _ => Ok(()),
        }
    }

    /// A live-CLI slot if one is free now (`Ok(None)`: all taken).
    pub fn try_live(&self) -> Result<Option<LivePermit>, AdmissionError> {
        self.check_memory()?;
        Ok(self
            .inner
            .live
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| LivePermit { _permit: p }))
    }

    /// Waits (up to the wait timeout) for a live-CLI slot.
    pub async fn live(&self) -> Result<LivePermit, AdmissionError> {
        self.check_memory()?;
        let wait = self.inner.wait;
        match tokio::time::timeout(wait, self.inner.live.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(LivePermit { _permit: p }),
            // The semaphore is never closed; treat it like a timeout all the same.
            Ok(Err(_)) | Err(_) => {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                Err(AdmissionError::LiveLimit {
                    max_live: self.inner.max_live,
                    waited: wait,
                })
            }
        }
    }

    /// Starts a session under an already held live slot, waiting for a start slot first
    /// (so at most `max_spawns` CLIs start at once).
    pub(crate) async fn spawn(&self, opts: Options) -> Result<Session, Error> {
        let _start = self.inner.spawns.clone().acquire_owned().await;
        self.inner.spawned.fetch_add(1, Ordering::Relaxed);
        Session::start(opts).await
    }

    /// Takes a live slot (waiting), then starts a session under it; the slot is freed
    /// once that CLI has been stopped and reaped.
    pub async fn start_session(&self, opts: Options) -> crate::Result<Session, AdmittedError> {
        let permit = self.live().await?;
        let session = self.spawn(opts).await?;
        release_when_reaped(&session, permit);
        Ok(session)
    }

    /// The counters now (reads `/proc/meminfo`).
    pub fn stats(&self) -> AdmissionStats {
        let i = &self.inner;
        AdmissionStats {
            live: i.max_live - i.live.available_permits(),
            max_live: i.max_live,
            spawning: i.max_spawns - i.spawns.available_permits(),
            max_spawns: i.max_spawns,
            spawned: i.spawned.load(Ordering::Relaxed),
            refused: i.refused.load(Ordering::Relaxed),
            mem_available_kib: mem_available_kib(),
        }
    }
}

/// Either admission refused the start, or the session failed to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmittedError {
    /// Not admitted.
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// Admitted, but the CLI failed to start.
    #[error(transparent)]
    Session(#[from] Error),
}

/// Holds `permit` until `session`'s CLI is gone.
pub(crate) fn release_when_reaped(session: &Session, permit: LivePermit) {
    let reaped = session.reaped();
    tokio::spawn(async move {
        reaped.await;
        drop(permit);
    });
}

pub use crate::procfs::{mem_available_kib, rss_kib};

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn live_slots_are_limited_and_freed() {
        let a = Admission::new()
            .max_live(2)
            .wait_timeout(Duration::from_millis(50));
        let p1 = a.try_live().expect("mem").expect("slot 1");
        let _p2 = a.live().await.expect("slot 2");
        assert!(a.try_live().expect("mem").is_none());
        assert_eq!(a.stats().live, 2);
        let err = a.live().await.expect_err("full");
        assert!(matches!(err, AdmissionError::LiveLimit { max_live: 2, .. }));
        drop(p1);
        assert!(a.try_live().expect("mem").is_some());
        assert_eq!(a.stats().refused, 1);
    }

    #[test]
    fn an_impossible_memory_floor_refuses() {
        if mem_available_kib().is_none() {
            return; // no /proc here
        }
        let a = Admission::new().mem_floor_mib(u64::MAX / 2048);
        assert!(matches!(
            a.try_live(),
            Err(AdmissionError::MemoryLow { .. })
        ));
    }
}
