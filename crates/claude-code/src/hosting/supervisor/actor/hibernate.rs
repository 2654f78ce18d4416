//! Hibernation and admission for supervised children, as part of the supervisor actor.
//! A child whose spec has an `idle_timeout` and whose CLI has been idle that long is
//! stopped gracefully (the CLI writes its transcript on stdin EOF) and marked
//! [`ChildStatus::Hibernated`], keeping its name, options and conversation id; the next
//! lookup queues a wake, which restarts it with `--resume`. With shared [`Admission`],
//! every start takes a live-CLI slot; when none is free, the least recently used idle
//! hibernatable child is hibernated to make room, else the wake waits in a queue that
//! the actor retries on a short tick. Restarts and strategies stay in `actor`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::{Actor, ChildStatus, SupervisorError};
use crate::hosting::admission::{Admission, AdmissionError, LivePermit};
use crate::session::Session;

use crate::telemetry::metric::{HIBERNATIONS, WAKES};

/// How often queued wakes retry for a free slot.
const WAKE_RETRY: Duration = Duration::from_millis(10);
/// A child looked up this recently is about to get a turn: never evict it.
const EVICT_GRACE: Duration = Duration::from_millis(200);

/// Per-child hibernation state.
#[derive(Debug)]
pub(super) struct Live {
    /// The live-CLI slot held while a CLI runs (only with admission control).
    pub(super) permit: Option<LivePermit>,
    /// Wakes from hibernation.
    pub(super) wakes: u32,
    /// Last lookup, or last time it was seen busy.
    last_used: Instant,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            permit: None,
            wakes: 0,
            last_used: Instant::now(),
        }
    }
}

impl Live {
    /// Marks the child as just used.
    pub(super) fn touch(&mut self) {
        self.last_used = Instant::now();
    }
}

/// Supervisor-wide hibernation state.
#[derive(Debug)]
pub(super) struct Hosting {
    admission: Option<Admission>,
    /// Hibernated children waiting for a live slot, in request order.
    wake_queue: VecDeque<String>,
    /// Wakes so far.
    pub(super) wakes: u64,
}

impl Hosting {
    pub(super) fn new(admission: Option<Admission>) -> Self {
        Hosting {
            admission,
            wake_queue: VecDeque::new(),
            wakes: 0,
        }
    }
}

impl Actor {
    /// When the actor next needs to look at idle children or queued wakes.
    pub(super) fn next_idle_check(&self) -> Option<Instant> {
        let mut next = (!self.hosting.wake_queue.is_empty()).then(|| Instant::now() + WAKE_RETRY);
        for c in &self.children {
            if let (ChildStatus::Running, Some(t)) = (&c.status, c.spec.idle_timeout) {
                let at = c.live.last_used + t;
                next = Some(next.map_or(at, |n: Instant| n.min(at)));
            }
        }
        next
    }

    /// Hibernates children idle past their timeout, then retries queued wakes.
    pub(super) async fn on_idle_tick(&mut self) {
        let now = Instant::now();
        for idx in 0..self.children.len() {
            let c = &mut self.children[idx];
            let Some(timeout) = c.spec.idle_timeout else {
                continue;
            };
            if c.status != ChildStatus::Running {
                continue;
            }
            if c.session().is_some_and(Session::is_busy) {
                c.live.last_used = now;
                continue;
            }
            if now >= c.live.last_used + timeout {
                self.hibernate(idx).await;
            }
        }
        self.pump_wakes().await;
    }

    /// Stops child `idx`'s CLI gracefully and keeps everything needed to resume it.
    async fn hibernate(&mut self, idx: usize) {
        self.stop_process(idx).await;
        let c = &mut self.children[idx];
        c.status = ChildStatus::Hibernated;
        c.live.permit = None;
        tracing::info!(supervisor = %self.name, child = %c.spec.name,
            session_id = c.last_session_id.as_deref(), "session hibernated");
        metrics::counter!(HIBERNATIONS, "supervisor" => self.name.clone()).increment(1);
    }

    /// Queues a wake for hibernated child `idx` (its lookup is already waiting).
    pub(super) async fn request_wake(&mut self, idx: usize) {
        let name = self.children[idx].spec.name.clone();
        if !self.hosting.wake_queue.contains(&name) {
            self.hosting.wake_queue.push_back(name);
        }
        self.pump_wakes().await;
    }

    /// Wakes queued children, in order, while live slots can be had.
    async fn pump_wakes(&mut self) {
        while let Some(name) = self.hosting.wake_queue.front().cloned() {
            let Some(idx) = self.find(&name) else {
                self.hosting.wake_queue.pop_front();
                continue;
            };
            if self.children[idx].status != ChildStatus::Hibernated {
                self.hosting.wake_queue.pop_front();
                continue;
            }
            match self.try_admit(idx).await {
                Ok(true) => {}
                Ok(false) => return, // retried on the next tick
                Err(e) => {
                    self.hosting.wake_queue.pop_front();
                    self.children[idx].answer_waiters(|| Err(e.clone().into()));
                    continue;
                }
            }
            self.hosting.wake_queue.pop_front();
            match self.start_process(idx).await {
                Ok(()) => {
                    let c = &mut self.children[idx];
                    c.live.wakes += 1;
                    c.live.touch();
                    self.hosting.wakes += 1;
                    tracing::info!(supervisor = %self.name, child = %name, "session woken");
                    metrics::counter!(WAKES, "supervisor" => self.name.clone()).increment(1);
                }
                Err(e) => {
                    let c = &mut self.children[idx];
                    c.live.permit = None;
                    tracing::warn!(supervisor = %self.name, child = %name, error = %e,
                        "waking a hibernated session failed");
                    let msg = e.to_string();
                    c.answer_waiters(|| {
                        Err(SupervisorError::StartFailed {
                            child: name.clone(),
                            source: crate::Error::closed(msg.clone()),
                        })
                    });
                }
            }
        }
    }

    /// Gives child `idx` a live slot: a free one, or one freed by hibernating the least
    /// recently used idle hibernatable child. `Ok(false)`: none can be had now.
    async fn try_admit(&mut self, idx: usize) -> Result<bool, AdmissionError> {
        let Some(admission) = self.hosting.admission.clone() else {
            return Ok(true);
        };
        if self.children[idx].live.permit.is_some() {
            return Ok(true);
        }
        if let Some(permit) = admission.try_live()? {
            self.children[idx].live.permit = Some(permit);
            return Ok(true);
        }
        let now = Instant::now();
        let victim = self
            .children
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                *i != idx
                    && c.status == ChildStatus::Running
                    && c.live.permit.is_some()
                    && c.spec.idle_timeout.is_some()
                    && now.duration_since(c.live.last_used) >= EVICT_GRACE
                    && !c.session().is_some_and(Session::is_busy)
            })
            .min_by_key(|(_, c)| c.live.last_used)
            .map(|(i, _)| i);
        let Some(victim) = victim else {
            return Ok(false);
        };
        self.hibernate(victim).await;
        let permit = admission.try_live()?;
        let admitted = permit.is_some();
        self.children[idx].live.permit = permit;
        Ok(admitted)
    }

    /// Waits (retrying eviction) for a live slot for child `idx`, up to the admission's
    /// wait timeout. Used for first starts and manual restarts; blocks the actor.
    pub(super) async fn admit_blocking(&mut self, idx: usize) -> Result<(), AdmissionError> {
        let Some(wait) = self.hosting.admission.as_ref().map(Admission::wait) else {
            return Ok(());
        };
        let deadline = Instant::now() + wait;
        loop {
            if self.try_admit(idx).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let max_live = self
                    .hosting
                    .admission
                    .as_ref()
                    .map_or(0, |a| a.stats().max_live);
                return Err(AdmissionError::LiveLimit {
                    max_live,
                    waited: wait,
                });
            }
            tokio::time::sleep(WAKE_RETRY).await;
        }
    }
}
