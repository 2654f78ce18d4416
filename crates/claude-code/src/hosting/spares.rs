//! Warm spares: pre-spawned, pre-initialised CLI sessions handed out for exactly one
//! request each. [`Spares`] is a cheap `Clone` handle to a private actor that keeps
//! `count` ready sessions, hands one out at once on [`Spares::acquire`], and refills in
//! the background with a bounded number of concurrent starts (and under the shared
//! [`Admission`] limits). A [`Spare`] is never reused: its session stops when its one
//! stream ends or when it is dropped, so two requests never share a conversation.
//! Long-lived, shared sessions are `pool`'s business.
//!
//! **Warm-up.** A freshly initialised CLI runs its first turn 2–4 times slower than later
//! ones: the input path, the engine, the request builder and the stream parser all run
//! for the first time (CPU-bound first-execution cost in the CLI's JavaScript engine, not
//! I/O). By default a new spare is therefore sent one whitespace-only prompt before it is
//! marked ready ([`SparesBuilder::warm_up`]). The CLI answers such a prompt locally
//! ("Blank prompt … nothing was sent to the model", `num_turns: 0`): no API request, no
//! hook, and nothing in the model's context, live or after `--resume` (verified on CLI
//! 2.1.332 by comparing the next request's body with that of an unwarmed session). That
//! runs the input path once, which takes a few per cent off the request's first turn
//! with the SDK's default empty system prompt (2–6% in the hosting bench) and about 20%
//! with the CLI's own prompt (measured on 2 cores). It cannot warm what comes after the
//! input path (engine, tools, HTTP client, stream parser): only a model call reaches that
//! code, and slash commands, the other local turns, leave their output in the
//! conversation. If a CLI ever answers the warm-up with a model call, that spare is
//! discarded and warm-up is switched off for the set.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::hosting::admission::{Admission, AdmittedError};
use crate::hosting::error::PoolError;
use crate::options::Options;
use crate::protocol::UserInput;
use crate::session::stream::MessageStream;
use crate::session::Session;

/// A pre-started session for one request. Dropping it stops its CLI.
#[derive(Debug)]
pub struct Spare {
    session: Session,
}

impl Spare {
    /// The underlying session (for inspection; do not keep clones, or the CLI outlives
    /// the request).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The CLI's process id.
    pub fn pid(&self) -> Option<u32> {
        self.session.pid()
    }

    /// Runs the one request: the returned stream owns the session, which stops once the
    /// stream ends or is dropped.
    pub async fn stream(self, prompt: impl Into<UserInput>) -> crate::Result<MessageStream> {
        let stream = self.session.stream(prompt).await?;
        Ok(stream.owning(self.session))
    }
}

/// Counters of a [`Spares`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SpareStats {
    /// Spares ready to hand out.
    pub ready: usize,
    /// Spares being started now.
    pub spawning: usize,
    /// The target number of ready spares.
    pub target: usize,
    /// CLIs started so far (all of them in the background).
    pub spawned: u64,
    /// Spares handed out.
    pub acquired: u64,
    /// Acquires that found no ready spare and waited for a start: spawns on the
    /// request path. Zero when the spares keep up.
    pub cold_acquires: u64,
    /// Starts that failed.
    pub failures: u64,
    /// Spares warmed up before they were marked ready (see [`SparesBuilder::warm_up`]).
    pub warmed: u64,
}

/// Builds [`Spares`]. Defaults: 2 spares, 2 concurrent refills, a private
/// [`Admission`], 60 s acquire timeout, at most 256 acquires waiting, warm-up on.
#[derive(Debug, Clone)]
#[must_use]
pub struct SparesBuilder {
    options: Options,
    count: usize,
    refill_concurrency: usize,
    admission: Option<Admission>,
    acquire_timeout: Duration,
    max_waiting: usize,
    refill_delay: Duration,
    warm_up: bool,
}

impl SparesBuilder {
    /// Whether to send each new spare one whitespace-only prompt before marking it
    /// ready (default: on). The CLI answers it locally, without a model call and without
    /// adding anything to the conversation, and the request's first turn then runs 2–20%
    /// faster (see the module docs). It costs ~50 ms of CPU per spare, in the background,
    /// and shows in telemetry as a turn with no model call. A spare whose CLI answered
    /// the warm-up with a model call is discarded and warm-up is switched off for the set.
    pub fn warm_up(mut self, on: bool) -> Self {
        self.warm_up = on;
        self
    }

    /// Waits this long after handing out a spare before starting its replacement, so
    /// that the start (CPU-bound, ~0.8 CPU-seconds) does not compete with the request
    /// on a small host (default: none). Acquires that find no spare never wait for it.
    pub fn refill_delay(mut self, delay: Duration) -> Self {
        self.refill_delay = delay;
        self
    }

    /// How many ready spares to keep.
    pub fn count(mut self, n: usize) -> Self {
        self.count = n;
        self
    }

    /// Most spares starting at once (at least 1; the admission's start limit also applies).
    pub fn refill_concurrency(mut self, n: usize) -> Self {
        self.refill_concurrency = n.max(1);
        self
    }

    /// The shared admission control that every spare counts against.
    pub fn admission(mut self, admission: Admission) -> Self {
        self.admission = Some(admission);
        self
    }

    /// How long [`Spares::acquire`] waits when no spare is ready.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Most acquires waiting for a spare; more fail at once with
    /// [`PoolError::QueueFull`].
    pub fn max_waiting(mut self, n: usize) -> Self {
        self.max_waiting = n;
        self
    }

    /// Starts the set and waits until the first `count` spares are ready (or one failed
    /// to start, which fails this call).
    pub async fn start(self) -> Result<Spares, PoolError> {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let spares = Spares {
            cmd: cmd_tx,
            acquire_timeout: self.acquire_timeout,
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        let actor = Actor {
            admission: self.admission.unwrap_or_default(),
            options: self.options,
            target: self.count,
            refill_concurrency: self.refill_concurrency,
            max_waiting: self.max_waiting,
            refill_delay: self.refill_delay,
            warm_up: Arc::new(AtomicBool::new(self.warm_up)),
            ready: VecDeque::new(),
            waiting: VecDeque::new(),
            spawning: 0,
            stats: SpareStats::default(),
            ev_tx,
            initial: Some(ready_tx),
            stopping: false,
        };
        tokio::spawn(actor.run(cmd_rx, ev_rx));
        match ready_rx.await {
            Ok(Ok(())) => Ok(spares),
            Ok(Err(e)) => {
                spares.stop().await;
                Err(e)
            }
            Err(_) => Err(PoolError::Stopped),
        }
    }
}

/// A set of warm spares (see the module docs). Cheap to clone; the last handle dropped
/// stops the ready spares.
///
/// ```no_run
/// # async fn demo() -> Result<(), claude_code::PoolError> {
/// use claude_code::{Options, Spares};
/// let spares = Spares::builder(Options::new()).count(2).start().await?;
/// let text = spares.acquire().await?.stream("fresh conversation").await?.final_text().await?;
/// spares.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Spares {
    cmd: mpsc::Sender<Cmd>,
    acquire_timeout: Duration,
}

impl Spares {
    /// A builder for spares started with `options`, with [`CliProfile::Lean`](crate::CliProfile::Lean)
    /// unless they name a profile ([`Options::cli_profile`]).
    pub fn builder(options: Options) -> SparesBuilder {
        SparesBuilder {
            options: options.hosted(),
            count: 2,
            refill_concurrency: 2,
            admission: None,
            acquire_timeout: Duration::from_secs(60),
            max_waiting: 256,
            refill_delay: Duration::ZERO,
            warm_up: true,
        }
    }

    /// A ready spare, at once if one is ready, else the next one started (bounded by the
    /// acquire timeout). A refill starts in the background either way.
    pub async fn acquire(&self) -> Result<Spare, PoolError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Acquire { reply })
            .await
            .map_err(|_| PoolError::Stopped)?;
        match tokio::time::timeout(self.acquire_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PoolError::Stopped),
            Err(_) => Err(PoolError::QueueTimeout {
                waited: self.acquire_timeout,
            }),
        }
    }

    /// Counters.
    pub async fn stats(&self) -> Result<SpareStats, PoolError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Stats { reply })
            .await
            .map_err(|_| PoolError::Stopped)?;
        rx.await.map_err(|_| PoolError::Stopped)
    }

    /// Waits until `n` spares are ready (bounded by the acquire timeout).
    pub async fn wait_ready(&self, n: usize) -> Result<(), PoolError> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        loop {
            if self.stats().await?.ready >= n {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PoolError::QueueTimeout {
                    waited: self.acquire_timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the ready spares and fails waiting acquires. Spares already handed out are
    /// not affected. Stopping twice is a no-op.
    pub async fn stop(&self) {
        let (reply, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Stop { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

enum Cmd {
    Acquire {
        reply: oneshot::Sender<Result<Spare, PoolError>>,
    },
    Stats {
        reply: oneshot::Sender<SpareStats>,
    },
    Stop {
        reply: oneshot::Sender<()>,
    },
}

enum Event {
    /// A start finished.
    Started {
        result: Result<Session, AdmittedError>,
        start: Start,
    },
    Retry,
}

/// Pause before refilling after a failed start.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// The warm-up prompt: whitespace only, which the CLI answers without the model.
const WARM_UP_PROMPT: &str = " ";

/// Bound on the warm-up turn (it takes ~50 ms).
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// How a start went, for the counters.
#[derive(Debug, Clone, Copy, Default)]
struct Start {
    /// The spare was warmed up.
    warmed: bool,
    /// A CLI was started and discarded because its warm-up failed.
    discarded: bool,
}

/// Starts one spare and, if `warm_up` is on, warms it up.
async fn start_spare(
    admission: &Admission,
    options: Options,
    warm_up: &AtomicBool,
) -> (Result<Session, AdmittedError>, Start) {
    let session = match admission.start_session(options.clone()).await {
        Ok(session) => session,
        Err(e) => return (Err(e), Start::default()),
    };
    if !warm_up.load(Ordering::Relaxed) {
        return (Ok(session), Start::default());
    }
    match warm(&session).await {
        Ok(()) => (
            Ok(session),
            Start {
                warmed: true,
                discarded: false,
            },
        ),
        Err(why) => {
            // Never hand out a spare whose conversation may not be fresh: discard it,
            // stop warming this set, and start a plain one instead.
            warm_up.store(false, Ordering::Relaxed);
            tracing::warn!(%why, "warm spare warm-up failed; warm-up switched off");
            let _ = session.stop().await;
            let start = Start {
                warmed: false,
                discarded: true,
            };
            (admission.start_session(options).await, start)
        }
    }
}

/// Sends the warm-up prompt and checks that the CLI answered it locally.
async fn warm(session: &Session) -> Result<(), String> {
    let result = session
        .stream(WARM_UP_PROMPT)
        .await
        .map_err(|e| e.to_string())?
        .timeout(WARM_UP_TIMEOUT)
        .until_result()
        .await
        .map_err(|e| e.to_string())?;
    let local = result.num_turns.unwrap_or(0) == 0
        && result.duration_api_ms.unwrap_or(0) == 0
        && result.total_cost_usd.unwrap_or(0.0) == 0.0;
    if local {
        Ok(())
    } else {
        Err(format!(
            "the CLI answered the blank warm-up prompt with a model call (num_turns {:?})",
            result.num_turns
        ))
    }
}

struct Actor {
    admission: Admission,
    options: Options,
    target: usize,
    refill_concurrency: usize,
    max_waiting: usize,
    refill_delay: Duration,
    /// Shared with the start tasks, which switch it off if a warm-up goes wrong.
    warm_up: Arc<AtomicBool>,
    ready: VecDeque<Session>,
    waiting: VecDeque<oneshot::Sender<Result<Spare, PoolError>>>,
    spawning: usize,
    stats: SpareStats,
    ev_tx: mpsc::Sender<Event>,
    /// Told once the first `target` spares are ready (or the first start failed).
    initial: Option<oneshot::Sender<Result<(), PoolError>>>,
    stopping: bool,
}

impl Actor {
    async fn run(mut self, mut cmd_rx: mpsc::Receiver<Cmd>, mut ev_rx: mpsc::Receiver<Event>) {
        self.refill(Duration::ZERO);
        self.check_initial();
        loop {
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Stop { reply }) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        self.stopped(cmd_rx, ev_rx).await;
                        return;
                    }
                    Some(Cmd::Acquire { reply }) => self.acquire(reply),
                    Some(Cmd::Stats { reply }) => { let _ = reply.send(self.snapshot()); }
                },
                Some(event) = ev_rx.recv() => match event {
                    Event::Started { result, start } => self.started(result, start),
                    Event::Retry => self.refill(Duration::ZERO),
                },
            }
        }
        self.shutdown().await;
    }

    /// After a stop: answers calls with errors and stops spares whose start was
    /// already under way, until every handle is gone.
    async fn stopped(&mut self, mut cmd_rx: mpsc::Receiver<Cmd>, mut ev_rx: mpsc::Receiver<Event>) {
        loop {
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Acquire { reply }) => {
                        let _ = reply.send(Err(PoolError::Stopped));
                    }
                    Some(Cmd::Stats { reply }) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Some(Cmd::Stop { reply }) => {
                        let _ = reply.send(());
                    }
                },
                Some(Event::Started { result, .. }) = ev_rx.recv() => {
                    self.spawning -= 1;
                    if let Ok(session) = result {
                        self.stats.spawned += 1;
                        let _ = session.stop().await;
                    }
                }
            }
        }
        // Starts still under way stop their session when the send fails.
    }

    fn snapshot(&self) -> SpareStats {
        SpareStats {
            ready: self.ready.len(),
            spawning: self.spawning,
            target: self.target,
            ..self.stats
        }
    }

    fn acquire(&mut self, reply: oneshot::Sender<Result<Spare, PoolError>>) {
        while let Some(session) = self.ready.pop_front() {
            if session.is_closed() {
                continue; // died while waiting; never hand out a dead spare
            }
            self.stats.acquired += 1;
            if let Err(Ok(spare)) = reply.send(Ok(Spare { session })) {
                // The caller gave up; the spare is still unused.
                self.stats.acquired -= 1;
                self.ready.push_front(spare.session);
            }
            self.refill(self.refill_delay);
            return;
        }
        self.waiting.retain(|w| !w.is_closed());
        if self.waiting.len() >= self.max_waiting {
            let _ = reply.send(Err(PoolError::QueueFull {
                capacity: self.max_waiting,
            }));
            return;
        }
        self.stats.cold_acquires += 1;
        self.waiting.push_back(reply);
        self.refill(Duration::ZERO);
    }

    /// Starts spares until ready + starting covers the target and the waiters.
    fn refill(&mut self, delay: Duration) {
        if self.stopping {
            return;
        }
        let want = self.target + self.waiting.len();
        while self.ready.len() + self.spawning < want && self.spawning < self.refill_concurrency {
            self.spawning += 1;
            let (admission, options, ev, warm_up) = (
                self.admission.clone(),
                self.options.clone(),
                self.ev_tx.clone(),
                self.warm_up.clone(),
            );
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let (result, start) = start_spare(&admission, options, &warm_up).await;
                if let Err(mpsc::error::SendError(Event::Started {
                    result: Ok(session),
                    ..
                })) = ev.send(Event::Started { result, start }).await
                {
                    let _ = session.stop().await;
                }
            });
        }
    }

    fn started(&mut self, result: Result<Session, AdmittedError>, start: Start) {
        self.spawning -= 1;
        self.stats.spawned += u64::from(start.discarded);
        self.stats.warmed += u64::from(start.warmed);
        match result {
            Ok(session) => {
                self.stats.spawned += 1;
                if self.stopping {
                    drop(session);
                    return;
                }
                let mut session = Some(session);
                while let Some(w) = self.waiting.pop_front() {
                    let Some(s) = session.take() else { break };
                    self.stats.acquired += 1;
                    if let Err(returned) = w.send(Ok(Spare { session: s })) {
                        // That caller gave up; offer the unused spare to the next one.
                        self.stats.acquired -= 1;
                        session = returned.ok().map(|spare| spare.session);
                    } else {
                        break;
                    }
                }
                if let Some(s) = session {
                    self.ready.push_back(s);
                }
            }
            Err(e) => {
                self.stats.failures += 1;
                tracing::warn!(error = %e, "warm spare failed to start");
                let err = PoolError::from(e);
                if let Some(initial) = self.initial.take() {
                    let _ = initial.send(Err(err));
                    self.stopping = true;
                    return;
                }
                if let Some(w) = self.waiting.pop_front() {
                    let _ = w.send(Err(err));
                }
                // Do not spin on a broken CLI: refill again after a pause.
                let ev = self.ev_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RETRY_AFTER).await;
                    let _ = ev.send(Event::Retry).await;
                });
                return;
            }
        }
        self.refill(Duration::ZERO);
        self.check_initial();
    }

    fn check_initial(&mut self) {
        if self.ready.len() >= self.target {
            if let Some(initial) = self.initial.take() {
                let _ = initial.send(Ok(()));
            }
        }
    }

    async fn shutdown(&mut self) {
        self.stopping = true;
        for w in self.waiting.drain(..) {
            let _ = w.send(Err(PoolError::Stopped));
        }
        let stops = self.ready.drain(..).map(|s| async move {
            let _ = s.stop().await;
        });
        futures::future::join_all(stops).await;
    }
}
