//! [`Pool`]: N supervised sessions behind one cheap `Clone` handle. A private actor
//! owns the members' bookkeeping (turns in flight, turns served), picks a member per
//! request by [`Selection`], and keeps a bounded FIFO of requests waiting for a free
//! member (a full queue is an immediate [`PoolError::QueueFull`]; a request that waits
//! longer than the queue timeout gets [`PoolError::QueueTimeout`]). Members are children
//! of a private [`Supervisor`], so a crashed member restarts. By default each request
//! gets a fresh conversation on a warm member ([`PoolContext`]): after a request, the
//! member's conversation is cleared before it takes the next one. Optional warm spares
//! ([`Spares`]) serve [`Pool::isolated`] requests, one fresh CLI each; their cost is
//! counted in the pool's [`cost_report`](Pool::cost_report). Running a turn is
//! `session`'s business; restarts are `supervisor`'s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::hosting::admission::{rss_kib, Admission};
use crate::hosting::cost::{CostReport, CostTotals, CostTracker};
pub use crate::hosting::error::PoolError;
use crate::hosting::spares::{SpareStats, Spares};
use crate::hosting::supervisor::{SessionSpec, SupervisedSession, Supervisor, SupervisorError};
use crate::options::Options;
use crate::protocol::{Message, UserInput};
use crate::session::stream::MessageStream;

/// How a pool picks a member for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Selection {
    /// The next member with room, in turn (the default).
    #[default]
    RoundRobin,
    /// The member with the fewest turns in flight (ties: fewest served).
    LeastBusy,
    /// A random member with room.
    Random,
}

/// Whether a pool's requests share their member's conversation.
///
/// **How a conversation is cleared.** After a request's stream ends (its result, or the
/// stream dropped), the pool sends the member the CLI's `/clear` command as a user
/// message and keeps the member out of rotation until its answer arrives. The CLI
/// answers it locally: no model call, a new conversation id (with a
/// `conversation_reset` message), and the next request's API body carries nothing of
/// the earlier requests, only the CLI's short record that `/clear` was run. Verified on
/// CLI 2.1.332 against the mock API's recorded request bodies. We measured it against
/// the alternative, replacing the member's CLI with a fresh one (a restart without
/// resume), on 2 shared cores (`SECTIONS=context` of the `hosting` bench): `/clear`
/// takes ~25 ms (17–45 ms seen) and the next turn ~50–65 ms, while a new CLI takes
/// ~300–380 ms to start plus ~35–55 ms to stop the old one, and its first turn
/// ~115–140 ms. Back to back on one member, a request took ~84 ms with fresh
/// conversations against ~37 ms shared. So `/clear` keeps the member warm and costs
/// about a tenth of a new CLI. If a clear ever fails, or the CLI answers it with a
/// model call or without a new conversation id, the member is restarted without resume
/// instead (counted in [`PoolStats::clear_fallbacks`]).
///
/// Side effects of `/clear`: `SessionStart` hooks run with source `clear`; the clear
/// shows in telemetry (and in [`ChildInfo::turns`](crate::ChildInfo::turns)) as a turn
/// with no model call; a member's conversation id changes after every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PoolContext {
    /// Each request starts a fresh conversation on a warm member (the default): the
    /// member's conversation is cleared after every request (see the type's docs).
    /// Members take one request at a time ([`PoolBuilder::per_session`] is ignored) and
    /// restart without resuming.
    #[default]
    FreshPerRequest,
    /// A member keeps its conversation across requests: a request sees whatever earlier
    /// requests on the same member said (the behaviour before `PoolContext` existed).
    /// Use it only when requests belong together; which member serves which request is
    /// up to the [`Selection`].
    Shared,
}

/// One member in [`PoolStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberStats {
    /// The member's name (`<spec name>-<n>`).
    pub name: String,
    /// Turns in flight.
    pub inflight: usize,
    /// Turns handed to it so far.
    pub served: u64,
    /// Its CLI's process id, while running.
    pub pid: Option<u32>,
    /// Its CLI's resident set size in KiB (sampled from `/proc`).
    pub rss_kib: Option<u64>,
}

/// A snapshot of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Members taking requests (retiring ones excluded).
    pub size: usize,
    /// Members being started by a resize.
    pub starting: usize,
    /// Members with at least one turn in flight.
    pub busy: usize,
    /// Turns in flight over all members.
    pub inflight: usize,
    /// Requests waiting for a member.
    pub queued: usize,
    /// Turns handed to members so far.
    pub served: u64,
    /// Requests refused because the queue was full.
    pub rejected: u64,
    /// Requests that left the queue before being served (timed out or dropped).
    pub abandoned: u64,
    /// Members clearing their conversation right now (out of rotation meanwhile).
    pub clearing: usize,
    /// Conversations cleared between requests ([`PoolContext::FreshPerRequest`]).
    pub cleared: u64,
    /// Members restarted without resume because a clear failed.
    pub clear_fallbacks: u64,
    /// Longest time a served request waited in the queue.
    pub max_queue_wait: Duration,
    /// CLI starts for members (initial, resize, restarts) plus warm-spare starts.
    pub spawns: u64,
    /// Each member.
    pub members: Vec<MemberStats>,
    /// The warm spares, if any.
    pub spares: Option<SpareStats>,
    /// True once a drain has begun (new requests are refused).
    pub draining: bool,
}

/// Builds a [`Pool`]. Defaults: 2 members, one turn at a time per member,
/// [`Selection::RoundRobin`], [`PoolContext::FreshPerRequest`], 64 waiting requests,
/// 30 s queue timeout, no warm spares, a private [`Admission`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PoolBuilder {
    spec: SessionSpec,
    size: usize,
    per_session: usize,
    selection: Selection,
    context: PoolContext,
    max_queue: usize,
    queue_timeout: Duration,
    warm_spares: usize,
    admission: Option<Admission>,
}

impl PoolBuilder {
    /// Whether requests share their member's conversation (default
    /// [`PoolContext::FreshPerRequest`]; see [`PoolContext`]).
    pub fn context(mut self, context: PoolContext) -> Self {
        self.context = context;
        self
    }

    /// Number of members.
    pub fn size(mut self, n: usize) -> Self {
        self.size = n;
        self
    }

    /// Turns in flight per member (default 1; more queue inside the session, up to
    /// [`Options::max_queued_turns`](crate::Options::max_queued_turns)). Only with
    /// [`PoolContext::Shared`]: fresh conversations need one request at a time.
    pub fn per_session(mut self, n: usize) -> Self {
        self.per_session = n.max(1);
        self
    }

    /// The selection strategy.
    pub fn selection(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    /// Most requests waiting when every member is busy.
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = n;
        self
    }

    /// How long a request may wait for a member.
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = timeout;
        self
    }

    /// Ready warm spares kept for [`Pool::isolated`] (0: none).
    pub fn warm_spares(mut self, n: usize) -> Self {
        self.warm_spares = n;
        self
    }

    /// Shared admission control for members and spares.
    pub fn admission(mut self, admission: Admission) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Starts the members (and the spares) and returns once all are ready.
    pub async fn start(mut self) -> Result<Pool, PoolError> {
        let admission = self.admission.clone().unwrap_or_default();
        let base = self.spec.name.clone();
        if self.context == PoolContext::FreshPerRequest {
            // A restart (after a crash, or when a clear failed) must not bring back a
            // conversation; a wake from hibernation resumes the cleared one.
            self.spec.resume_on_restart = false;
            self.per_session = 1;
        }
        let specs: Vec<SessionSpec> = (0..self.size).map(|k| member_spec(&self.spec, k)).collect();
        let isolated_cost = SharedTotals::default();
        let sup = Supervisor::builder()
            .name(format!("{base}-pool"))
            .max_restarts(self.size as u32 * 3 + 3)
            .admission(admission.clone())
            .external_cost(format!("{base}-isolated"), isolated_cost.clone())
            .children(specs)
            .call_timeout(self.queue_timeout.max(Duration::from_secs(60)));
        let spares = async {
            if self.warm_spares == 0 {
                return Ok(None);
            }
            Spares::builder(self.spec.options.clone())
                .count(self.warm_spares)
                .admission(admission.clone())
                .acquire_timeout(self.queue_timeout)
                .max_waiting(self.max_queue)
                .start()
                .await
                .map(Some)
        };
        let (sup, spares) = tokio::join!(sup.start(), spares);
        let sup = match (sup, &spares) {
            (Ok(sup), Ok(_)) => sup,
            (Ok(sup), Err(_)) => {
                let _ = sup.stop().await;
                return Err(spares.err().unwrap_or(PoolError::Stopped));
            }
            (Err(e), _) => {
                if let Ok(Some(s)) = &spares {
                    s.stop().await;
                }
                return Err(e.into());
            }
        };
        let spares = spares?;
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (release_tx, release_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(16);
        let members = (0..self.size)
            .map(|k| Member::new(k as u64, sup.session(format!("{base}-{k}"))))
            .collect();
        let actor_options = self.spec.options.clone().hosted();
        let actor = Actor {
            spec: self.spec,
            sup: sup.clone(),
            per_session: self.per_session,
            context: self.context,
            max_queue: self.max_queue,
            members,
            next_id: self.size as u64,
            starting: 0,
            queue: VecDeque::new(),
            picker: Picker::new(self.selection, seed()),
            release_tx,
            ev_tx,
            stats: PoolStats {
                spawns: self.size as u64,
                ..PoolStats::default()
            },
            draining: false,
            drained: Vec::new(),
        };
        tokio::spawn(actor.run(cmd_rx, release_rx, ev_rx));
        Ok(Pool {
            cmd: cmd_tx,
            sup,
            spares,
            queue_timeout: self.queue_timeout,
            admission,
            options: actor_options,
            isolated_cost,
        })
    }
}

fn member_spec(spec: &SessionSpec, k: usize) -> SessionSpec {
    let mut s = spec.clone();
    s.name = format!("{}-{k}", spec.name);
    s
}

/// A pool of long-lived sessions (see the module docs). Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), claude_code::PoolError> {
/// use claude_code::{Pool, PoolContext, SessionSpec};
/// let pool = Pool::builder(SessionSpec::new("worker"))
///     .size(4)
///     .context(PoolContext::FreshPerRequest) // the default: no context shared
///     .warm_spares(2)
///     .start()
///     .await?;
/// let text = pool.stream("prompt").await?.final_text().await?;
/// let fresh = pool.isolated("per-request prompt").await?.final_text().await?;
/// let spent = pool.cost_report().await?.total.cost_usd; // members and isolated turns
/// pool.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Pool {
    cmd: mpsc::Sender<Cmd>,
    sup: Supervisor,
    spares: Option<Spares>,
    queue_timeout: Duration,
    admission: Admission,
    options: Options,
    /// Cost of isolated turns, reported by the supervisor as `<name>-isolated`.
    isolated_cost: SharedTotals,
}

type SharedTotals = Arc<Mutex<CostTotals>>;

impl Pool {
    /// A builder for a pool of sessions made from `spec` (members are named
    /// `<name>-0`, `<name>-1`, …). Members, isolated sessions and spares run with
    /// [`CliProfile::Lean`](crate::CliProfile::Lean) unless the spec's options name a
    /// profile.
    pub fn builder(spec: SessionSpec) -> PoolBuilder {
        PoolBuilder {
            spec,
            size: 2,
            per_session: 1,
            selection: Selection::RoundRobin,
            context: PoolContext::default(),
            max_queue: 64,
            queue_timeout: Duration::from_secs(30),
            warm_spares: 0,
            admission: None,
        }
    }

    /// Sends a prompt to a member picked by the selection strategy, waiting in the
    /// queue while all are busy. The member counts as busy until the stream yields its
    /// result (or is dropped).
    pub async fn stream(&self, prompt: impl Into<UserInput>) -> Result<MessageStream, PoolError> {
        let lease = self.lease().await?;
        let stream = lease.handle.stream(prompt).await?;
        let mut lease = Some(lease);
        Ok(stream.observe(Box::new(move |m| {
            if matches!(m, Message::Result(_)) {
                lease.take();
            }
        })))
    }

    /// Runs one request on a warm spare: a fresh conversation in a pre-started CLI that
    /// is stopped afterwards. Without warm spares this starts a CLI on the spot. The
    /// turn's cost counts in [`cost_report`](Self::cost_report) under `<name>-isolated`.
    pub async fn isolated(&self, prompt: impl Into<UserInput>) -> Result<MessageStream, PoolError> {
        let stream = if let Some(spares) = &self.spares {
            spares.acquire().await?.stream(prompt).await?
        } else {
            let session = self.admission.start_session(self.options.clone()).await?;
            session.stream(prompt).await?.owning(session)
        };
        Ok(self.count_isolated(stream))
    }

    /// Cost per member (`<name>-0`, …), of isolated turns (`<name>-isolated`) and in
    /// total, retired members included (the members' supervisor's report).
    pub async fn cost_report(&self) -> Result<CostReport, PoolError> {
        Ok(self.sup.cost_report().await?)
    }

    /// Records an isolated turn's cost. Each isolated stream is one turn of its own CLI,
    /// so it gets its own tracker, and the turn is added to the shared totals.
    fn count_isolated(&self, stream: MessageStream) -> MessageStream {
        let totals = self.isolated_cost.clone();
        let mut tracker = CostTracker::new();
        stream.observe(Box::new(move |message| {
            if let Some(turn) = tracker.record(message) {
                totals
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .add(tracker.totals());
                tracing::debug!(
                    cost_usd = turn.cost_usd,
                    input_tokens = turn.usage.input_tokens,
                    output_tokens = turn.usage.output_tokens,
                    "isolated turn cost recorded"
                );
            }
        }))
    }

    /// The warm spares, if the pool has any.
    pub fn spares(&self) -> Option<&Spares> {
        self.spares.as_ref()
    }

    /// The supervisor that owns the members (for `list_sessions`, health, cost).
    pub fn supervisor(&self) -> &Supervisor {
        &self.sup
    }

    /// Changes the number of members: new ones are started (the call returns once they
    /// run); surplus ones stop taking requests and are stopped once their turns end.
    pub async fn resize(&self, n: usize) -> Result<(), PoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Resize { n, reply }).await?;
        rx.await.map_err(|_| PoolError::Stopped)?
    }

    /// Counters, per-member state and CLI memory (sampled from `/proc`).
    pub async fn stats(&self) -> Result<PoolStats, PoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Stats { reply }).await?;
        let mut stats = rx.await.map_err(|_| PoolError::Stopped)?;
        if let Ok(children) = self.sup.list_sessions().await {
            for m in &mut stats.members {
                if let Some(c) = children.iter().find(|c| c.name == m.name) {
                    m.pid = c.pid;
                    m.rss_kib = c.pid.and_then(rss_kib);
                }
            }
        }
        if let Some(spares) = &self.spares {
            if let Ok(s) = spares.stats().await {
                stats.spawns += s.spawned;
                stats.spares = Some(s);
            }
        }
        Ok(stats)
    }

    /// Graceful drain: refuses new requests at once, lets running and already queued
    /// turns finish (up to `timeout`), then stops every CLI. Returns
    /// [`PoolError::DrainTimeout`] if turns had to be cut short.
    pub async fn drain(&self, timeout: Duration) -> Result<(), PoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Drain { reply }).await?;
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let inflight = self.stats().await.map_or(0, |s| s.inflight + s.queued);
                Err(PoolError::DrainTimeout {
                    after: timeout,
                    inflight,
                })
            }
        };
        self.stop().await?;
        outcome
    }

    /// Stops at once: waiting requests fail, running turns end with an error, every CLI
    /// (members and spares) is stopped. Stopping twice is a no-op.
    pub async fn stop(&self) -> Result<(), PoolError> {
        let (reply, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Stop { reply }).await.is_ok() {
            let _ = rx.await;
        }
        if let Some(spares) = &self.spares {
            spares.stop().await;
        }
        self.sup.stop().await?;
        Ok(())
    }

    async fn lease(&self) -> Result<Lease, PoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Acquire {
            reply,
            since: Instant::now(),
        })
        .await?;
        match tokio::time::timeout(self.queue_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PoolError::Stopped),
            Err(_) => Err(PoolError::QueueTimeout {
                waited: self.queue_timeout,
            }),
        }
    }

    async fn send(&self, cmd: Cmd) -> Result<(), PoolError> {
        self.cmd.send(cmd).await.map_err(|_| PoolError::Stopped)
    }
}

/// A member reserved for one request; dropping it frees the member.
struct Lease {
    id: u64,
    handle: SupervisedSession,
    release: Option<mpsc::UnboundedSender<u64>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(self.id);
        }
    }
}

type LeaseReply = oneshot::Sender<Result<Lease, PoolError>>;

enum Cmd {
    Acquire {
        reply: LeaseReply,
        since: Instant,
    },
    Resize {
        n: usize,
        reply: oneshot::Sender<Result<(), PoolError>>,
    },
    Stats {
        reply: oneshot::Sender<PoolStats>,
    },
    Drain {
        reply: oneshot::Sender<()>,
    },
    Stop {
        reply: oneshot::Sender<()>,
    },
}

enum Event {
    /// A member's conversation was reset after a request.
    Reset { id: u64, outcome: Reset },
    /// A resize started these members (or failed).
    Grown {
        requested: usize,
        started: Vec<(u64, SupervisedSession)>,
        result: Result<(), PoolError>,
        reply: oneshot::Sender<Result<(), PoolError>>,
    },
}

struct Member {
    id: u64,
    handle: SupervisedSession,
    inflight: usize,
    served: u64,
    retiring: bool,
    /// Its conversation is being cleared; it takes no request meanwhile.
    clearing: bool,
    /// Could be neither cleared nor restarted: it takes no more requests.
    broken: bool,
}

impl Member {
    fn new(id: u64, handle: SupervisedSession) -> Self {
        Member {
            id,
            handle,
            inflight: 0,
            served: 0,
            retiring: false,
            clearing: false,
            broken: false,
        }
    }
}

struct Waiter {
    reply: LeaseReply,
    since: Instant,
}

struct Actor {
    spec: SessionSpec,
    sup: Supervisor,
    per_session: usize,
    context: PoolContext,
    max_queue: usize,
    members: Vec<Member>,
    next_id: u64,
    starting: usize,
    queue: VecDeque<Waiter>,
    picker: Picker,
    /// One message per lease, and leases are bounded by size × per_session: the channel
    /// is unbounded only so that `Drop` can send without awaiting.
    release_tx: mpsc::UnboundedSender<u64>,
    ev_tx: mpsc::Sender<Event>,
    stats: PoolStats,
    draining: bool,
    drained: Vec<oneshot::Sender<()>>,
}

impl Actor {
    async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Cmd>,
        mut release_rx: mpsc::UnboundedReceiver<u64>,
        mut ev_rx: mpsc::Receiver<Event>,
    ) {
        loop {
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    None => return,
                    Some(Cmd::Stop { reply }) => {
                        for w in self.queue.drain(..) {
                            let _ = w.reply.send(Err(PoolError::Stopped));
                        }
                        let _ = reply.send(());
                        // Later requests find the command channel closed: `Stopped`.
                        return;
                    }
                    Some(cmd) => {
                        // Releases sent before this command count first, so stats and
                        // dispatch see every turn that already ended.
                        while let Ok(id) = release_rx.try_recv() {
                            self.release(id);
                        }
                        self.on_command(cmd)
                    }
                },
                Some(id) = release_rx.recv() => self.release(id),
                Some(event) = ev_rx.recv() => match event {
                    Event::Reset { id, outcome } => self.reset_done(id, outcome),
                    Event::Grown { requested, started, result, reply } => {
                        self.starting -= requested;
                        self.stats.spawns += started.len() as u64;
                        for (id, handle) in started {
                            self.members.push(Member::new(id, handle));
                        }
                        let _ = reply.send(result);
                        self.dispatch();
                    }
                },
            }
        }
    }

    fn on_command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Acquire { reply, since } => {
                if self.draining {
                    let _ = reply.send(Err(PoolError::Draining));
                    return;
                }
                self.purge();
                if self.queue.is_empty() {
                    if let Some(idx) = self.pick() {
                        self.assign(idx, Waiter { reply, since });
                        return;
                    }
                }
                if self.queue.len() >= self.max_queue {
                    self.stats.rejected += 1;
                    let _ = reply.send(Err(PoolError::QueueFull {
                        capacity: self.max_queue,
                    }));
                    return;
                }
                self.queue.push_back(Waiter { reply, since });
            }
            Cmd::Resize { n, reply } => self.resize(n, reply),
            Cmd::Stats { reply } => {
                self.purge();
                let _ = reply.send(self.snapshot());
            }
            Cmd::Drain { reply } => {
                self.draining = true;
                self.drained.push(reply);
                self.check_drained();
            }
            Cmd::Stop { reply } => {
                let _ = reply.send(());
            }
        }
    }

    /// Drops waiters whose caller gave up.
    fn purge(&mut self) {
        let before = self.queue.len();
        self.queue.retain(|w| !w.reply.is_closed());
        self.stats.abandoned += (before - self.queue.len()) as u64;
    }

    fn available(&self, m: &Member) -> bool {
        !m.retiring && !m.clearing && !m.broken && m.inflight < self.per_session
    }

    /// A member with room, by the selection strategy.
    fn pick(&mut self) -> Option<usize> {
        let load: Vec<Option<(usize, u64)>> = self
            .members
            .iter()
            .map(|m| self.available(m).then_some((m.inflight, m.served)))
            .collect();
        self.picker.pick(&load)
    }

    /// Hands member `idx` to `w`; returns false if the caller was gone.
    fn assign(&mut self, idx: usize, w: Waiter) -> bool {
        let m = &mut self.members[idx];
        let lease = Lease {
            id: m.id,
            handle: m.handle.clone(),
            release: Some(self.release_tx.clone()),
        };
        m.inflight += 1;
        m.served += 1;
        match w.reply.send(Ok(lease)) {
            Ok(()) => {
                self.stats.served += 1;
                self.stats.max_queue_wait = self.stats.max_queue_wait.max(w.since.elapsed());
                true
            }
            Err(returned) => {
                // The lease comes back; disarm it and undo.
                if let Ok(mut lease) = returned {
                    lease.release = None;
                }
                let m = &mut self.members[idx];
                m.inflight -= 1;
                m.served -= 1;
                self.stats.abandoned += 1;
                false
            }
        }
    }

    /// Serves waiters while members have room.
    fn dispatch(&mut self) {
        while !self.queue.is_empty() {
            let Some(idx) = self.pick() else { break };
            let Some(w) = self.queue.pop_front() else {
                break;
            };
            if !self.assign(idx, w) {
                continue;
            }
        }
        self.check_drained();
    }

    fn release(&mut self, id: u64) {
        if let Some(idx) = self.members.iter().position(|m| m.id == id) {
            let m = &mut self.members[idx];
            m.inflight = m.inflight.saturating_sub(1);
            if m.retiring && m.inflight == 0 {
                let m = self.members.remove(idx);
                self.retire(m);
            } else if self.context == PoolContext::FreshPerRequest && m.inflight == 0 {
                m.clearing = true;
                let (id, handle, ev) = (m.id, m.handle.clone(), self.ev_tx.clone());
                tokio::spawn(async move {
                    let outcome = reset(&handle).await;
                    let _ = ev.send(Event::Reset { id, outcome }).await;
                });
            }
        }
        self.dispatch();
    }

    /// A member's reset finished: it takes requests again, unless it could be neither
    /// cleared nor restarted (then it stays out of rotation rather than risk serving a
    /// request with an earlier request's conversation).
    fn reset_done(&mut self, id: u64, outcome: Reset) {
        let Some(idx) = self.members.iter().position(|m| m.id == id) else {
            return; // retired meanwhile
        };
        match outcome {
            Reset::Cleared => self.stats.cleared += 1,
            Reset::Restarted => {
                self.stats.clear_fallbacks += 1;
                self.stats.spawns += 1;
            }
            Reset::Failed => self.members[idx].broken = true,
        }
        let m = &mut self.members[idx];
        m.clearing = false;
        if m.retiring && m.inflight == 0 {
            let m = self.members.remove(idx);
            self.retire(m);
        }
        self.dispatch();
    }

    fn retire(&self, m: Member) {
        let sup = self.sup.clone();
        tokio::spawn(async move {
            let _ = sup.terminate_session(m.handle.name()).await;
        });
    }

    fn resize(&mut self, n: usize, reply: oneshot::Sender<Result<(), PoolError>>) {
        let active = self.members.iter().filter(|m| !m.retiring).count() + self.starting;
        if n <= active {
            // Retire the surplus, idle members first.
            let mut surplus = active - n;
            let mut order: Vec<usize> = (0..self.members.len())
                .filter(|&i| !self.members[i].retiring)
                .collect();
            order.sort_by_key(|&i| std::cmp::Reverse((self.members[i].inflight == 0, i)));
            for i in order {
                if surplus == 0 {
                    break;
                }
                self.members[i].retiring = true;
                surplus -= 1;
            }
            let (idle, keep): (Vec<Member>, Vec<Member>) = std::mem::take(&mut self.members)
                .into_iter()
                .partition(|m| m.retiring && m.inflight == 0);
            self.members = keep;
            self.picker.reset();
            for m in idle {
                self.retire(m);
            }
            let _ = reply.send(Ok(()));
            return;
        }
        let grow = n - active;
        self.starting += grow;
        let specs: Vec<(u64, SessionSpec)> = (0..grow)
            .map(|k| {
                let id = self.next_id + k as u64;
                (id, member_spec(&self.spec, id as usize))
            })
            .collect();
        self.next_id += grow as u64;
        let (sup, ev) = (self.sup.clone(), self.ev_tx.clone());
        tokio::spawn(async move {
            let mut started = Vec::new();
            let mut result = Ok(());
            for (id, spec) in specs {
                match sup.start_session(spec).await {
                    Ok(handle) => started.push((id, handle)),
                    Err(e) => {
                        result = Err(PoolError::from(e));
                        break;
                    }
                }
            }
            let _ = ev
                .send(Event::Grown {
                    requested: grow,
                    started,
                    result,
                    reply,
                })
                .await;
        });
    }

    fn snapshot(&self) -> PoolStats {
        let members: Vec<MemberStats> = self
            .members
            .iter()
            .map(|m| MemberStats {
                name: m.handle.name().to_string(),
                inflight: m.inflight,
                served: m.served,
                pid: None,
                rss_kib: None,
            })
            .collect();
        PoolStats {
            size: self.members.iter().filter(|m| !m.retiring).count(),
            starting: self.starting,
            busy: self.members.iter().filter(|m| m.inflight > 0).count(),
            clearing: self.members.iter().filter(|m| m.clearing).count(),
            inflight: self.members.iter().map(|m| m.inflight).sum(),
            queued: self.queue.len(),
            members,
            spares: None,
            draining: self.draining,
            ..self.stats.clone()
        }
    }

    fn check_drained(&mut self) {
        let idle = |m: &Member| m.inflight == 0 && !m.clearing;
        if self.draining && self.queue.is_empty() && self.members.iter().all(idle) {
            for d in self.drained.drain(..) {
                let _ = d.send(());
            }
        }
    }
}

/// How a member's reset after a request went.
enum Reset {
    /// `/clear` started a fresh conversation.
    Cleared,
    /// The clear failed; the member was restarted without resume.
    Restarted,
    /// Neither worked.
    Failed,
}

/// The CLI's command that starts a new conversation in the same process.
const CLEAR_COMMAND: &str = "/clear";

/// Bound on a clear (it takes ~20–50 ms).
const CLEAR_TIMEOUT: Duration = Duration::from_secs(10);

/// Gives a member a fresh conversation: `/clear`, else a restart without resume.
async fn reset(handle: &SupervisedSession) -> Reset {
    let why = match clear(handle).await {
        Ok(()) => return Reset::Cleared,
        Err(why) => why,
    };
    tracing::warn!(member = handle.name(), %why,
        "could not clear a pool member's conversation; restarting it without resume");
    match handle.restart().await {
        Ok(()) => Reset::Restarted,
        // Retired by a resize, or the pool is stopping: nothing to serve any more.
        Err(SupervisorError::NotFound { .. } | SupervisorError::Stopped { .. }) => Reset::Failed,
        Err(e) => {
            tracing::error!(member = handle.name(), error = %e,
                "could not restart a pool member; it takes no more requests");
            Reset::Failed
        }
    }
}

/// Sends `/clear` to the member's current CLI and checks that the CLI answered it
/// locally with a new conversation.
async fn clear(handle: &SupervisedSession) -> Result<(), String> {
    let session = handle.current().await.map_err(|e| e.to_string())?;
    let before = session.session_id();
    let result = session
        .stream(CLEAR_COMMAND)
        .await
        .map_err(|e| e.to_string())?
        .timeout(CLEAR_TIMEOUT)
        .until_result()
        .await
        .map_err(|e| e.to_string())?;
    let local = result.num_turns.unwrap_or(0) == 0
        && result.duration_api_ms.unwrap_or(0) == 0
        && result.total_cost_usd.unwrap_or(0.0) == 0.0;
    if !local {
        return Err(format!(
            "the CLI answered {CLEAR_COMMAND} with a model call (num_turns {:?})",
            result.num_turns
        ));
    }
    match result.session_id {
        Some(after) if Some(&after) != before.as_ref() => Ok(()),
        _ => Err(format!(
            "{CLEAR_COMMAND} did not start a new conversation (id {before:?})"
        )),
    }
}

/// The selection strategy's state, apart from the members themselves (so that it can be
/// tested without sessions).
#[derive(Debug)]
struct Picker {
    selection: Selection,
    cursor: usize,
    rng: u64,
}

impl Picker {
    fn new(selection: Selection, seed: u64) -> Self {
        Picker {
            selection,
            cursor: 0,
            rng: seed | 1,
        }
    }

    /// Forgets the round-robin position (the member list changed shape).
    fn reset(&mut self) {
        self.cursor = 0;
    }

    /// The member to use, given each member's `(inflight, served)` when it has room
    /// (`None`: busy, clearing, retiring or broken).
    fn pick(&mut self, load: &[Option<(usize, u64)>]) -> Option<usize> {
        let n = load.len();
        if n == 0 {
            return None;
        }
        match self.selection {
            Selection::RoundRobin => {
                let idx = (0..n)
                    .map(|k| (self.cursor + k) % n)
                    .find(|&i| load[i].is_some())?;
                self.cursor = (idx + 1) % n;
                Some(idx)
            }
            Selection::LeastBusy => (0..n)
                .filter_map(|i| Some((load[i]?, i)))
                .min()
                .map(|(_, i)| i),
            Selection::Random => {
                let free: Vec<usize> = (0..n).filter(|&i| load[i].is_some()).collect();
                if free.is_empty() {
                    return None;
                }
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                Some(free[(self.rng % free.len() as u64) as usize])
            }
        }
    }
}

/// A seed for the random selection (no need for a cryptographic source).
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    (nanos ^ 0x9E37_79B9_7F4A_7C15) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_rotates_and_skips_members_without_room() {
        let mut p = Picker::new(Selection::RoundRobin, 1);
        let all = [Some((0, 0)); 3];
        let picks: Vec<_> = (0..4).map(|_| p.pick(&all)).collect();
        assert_eq!(picks, [Some(0), Some(1), Some(2), Some(0)]);
        let busy_middle = [Some((0, 0)), None, Some((0, 0))];
        assert_eq!(p.pick(&busy_middle), Some(2), "skips 1");
        assert_eq!(p.pick(&busy_middle), Some(0));
        assert_eq!(p.pick(&[None, None]), None);
        p.reset();
        assert_eq!(p.pick(&all), Some(0));
    }

    #[test]
    fn least_busy_prefers_fewer_inflight_then_fewer_served() {
        let mut p = Picker::new(Selection::LeastBusy, 1);
        assert_eq!(p.pick(&[Some((2, 0)), Some((1, 9)), Some((1, 3))]), Some(2));
        assert_eq!(
            p.pick(&[Some((1, 1)), None, Some((1, 1))]),
            Some(0),
            "ties: lowest index"
        );
        assert_eq!(p.pick(&[]), None);
    }

    #[test]
    fn random_picks_only_members_with_room_and_spreads() {
        let mut p = Picker::new(Selection::Random, 42);
        let load = [Some((0, 0)), None, Some((0, 0)), Some((0, 0))];
        let mut seen = [0usize; 4];
        for _ in 0..300 {
            seen[p.pick(&load).expect("one has room")] += 1;
        }
        assert_eq!(seen[1], 0, "never the busy one");
        assert!(
            seen.iter().enumerate().all(|(i, &n)| i == 1 || n > 50),
            "{seen:?}"
        );
    }

    #[test]
    fn member_names_number_from_zero() {
        let spec = SessionSpec::new("worker");
        assert_eq!(member_spec(&spec, 0).name(), "worker-0");
        assert_eq!(member_spec(&spec, 7).name(), "worker-7");
    }
}
