//! The session actor and its handle.
//!
//! One private task (the actor) owns the CLI process: it writes to stdin, reads and routes
//! every stdout line, answers and issues control requests, and runs one turn at a time
//! from a bounded FIFO queue. [`Session`] is a cheap `Clone` handle that talks to the
//! actor over a bounded channel. Shared state the handle may read without asking (session
//! id, health) is published through a `watch` channel. How a turn's messages are consumed
//! is `stream`'s business; the process itself is `transport`'s.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::callbacks::Callbacks;
use crate::cli::{cli_version, CliVersion, MIN_CLI_VERSION};
use crate::error::{Error, ExitInfo, Result};
use crate::options::{Options, PermissionMode};
use crate::protocol::{
    control_error_line, control_request_line, control_success_line, peek_type, ControlRequest,
    ControlResponse, Inbound, InitializeResponse, Message, OutboundRequest, UserInput,
};
use crate::store::StoreHook;
use crate::stream::MessageStream;
use crate::telemetry::{self, Direction, SessionEnd, SessionTelemetry, TurnTelemetry};
use crate::transport::{Line, Transport};

/// Whether a session can take work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Initialised, process alive, no turn stuck.
    Healthy,
    /// Something is wrong; the reason says what.
    Unhealthy(UnhealthyReason),
}

impl Health {
    /// True for [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }
}

/// Why a session is unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnhealthyReason {
    /// The initialize handshake has not completed.
    #[error("not initialised yet")]
    NotInitialized,
    /// The CLI process is gone.
    #[error("claude CLI process exited ({0})")]
    ProcessExited(ExitInfo),
    /// The session was stopped.
    #[error("session stopped")]
    Stopped,
    /// A turn has run longer than the configured turn timeout.
    #[error("turn stuck for {0:?}")]
    TurnStuck(Duration),
    /// The CLI process is stopped (SIGSTOP, or stopped by a debugger): it is alive but
    /// cannot answer.
    #[error("claude CLI process is stopped (SIGSTOP or traced)")]
    Suspended,
    /// The CLI did not answer a control round-trip (a liveness probe) within this time.
    #[error("claude CLI unresponsive: no control response within {0:?}")]
    Unresponsive(Duration),
}

/// Lifecycle state published by the actor.
#[derive(Debug, Clone)]
pub(crate) enum State {
    Starting,
    Ready,
    /// The CLI died; kept so every later call reports why.
    Exited {
        exit: ExitInfo,
        stderr: String,
    },
    Stopped,
}

/// What a handle can read without asking the actor.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) state: State,
    pub(crate) session_id: Option<String>,
    pub(crate) turn_started: Option<Instant>,
    pub(crate) turns_completed: u64,
    pub(crate) queued: usize,
}

impl Status {
    /// The error for a call that found the actor gone.
    pub(crate) fn closed_error(&self) -> Error {
        match &self.state {
            State::Exited { exit, stderr } => Error::ProcessExited {
                exit: exit.clone(),
                stderr: stderr.clone(),
            },
            State::Stopped => Error::closed("stopped"),
            State::Starting | State::Ready => Error::SessionClosed { reason: None },
        }
    }
}

/// One item of a turn's stream, as the actor hands it over.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// A line the stream parses itself, on the consumer's task: the hot path keeps the
    /// actor to a type peek and spreads parsing over the consumer's core.
    Raw(Bytes),
    /// A message the actor already parsed (system and result lines).
    Message(Box<Message>),
    /// An error for the consumer.
    Error(Error),
}

/// Items are handed over in batches: one channel operation and one wake-up per burst
/// of stdout lines rather than per line.
pub(crate) type Batch = Vec<Delivery>;

/// Most lines handed over in one batch.
const MAX_BATCH: usize = 64;

enum Command {
    Turn {
        input: UserInput,
        sink: mpsc::Sender<Batch>,
        accepted: oneshot::Sender<Result<()>>,
        /// Write it to the CLI at once, even while a turn runs (the CLI queues it).
        now: bool,
    },
    Control {
        request: OutboundRequest,
        reply: oneshot::Sender<Result<Option<Value>>>,
    },
    Stop {
        done: oneshot::Sender<Option<ExitInfo>>,
    },
}

/// Facts from the handshake, fixed for the session's life.
#[derive(Debug)]
struct Info {
    init: InitializeResponse,
    pid: Option<u32>,
    cli_version: Option<CliVersion>,
    turn_timeout: Option<Duration>,
    control_timeout: Duration,
    stream_buffer: usize,
}

/// A live Claude Code session: one CLI process, many turns. Cheap to clone; every clone
/// addresses the same process. The CLI is stopped gracefully when the last handle is
/// dropped, or at once with [`Session::stop`].
///
/// ```no_run
/// # async fn demo() -> claude_code::Result<()> {
/// use claude_code::{Options, Session};
/// let session = Session::start(Options::new().model("sonnet")).await?;
/// let text = session.stream("Say hi").await?.final_text().await?;
/// println!("{text}");
/// session.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Session {
    cmd: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    info: Arc<Info>,
}

impl Session {
    /// Spawns the CLI, performs the initialize handshake (bounded by
    /// [`Options::initialize_timeout`]) and returns a ready session.
    pub async fn start(opts: Options) -> Result<Session> {
        opts.validate()?;
        let cli = opts.cli_path.resolve()?;
        let store = StoreHook::prepare(&opts).await?;
        let transport = Transport::spawn(&cli.path, &opts).await?;
        let pid = transport.pid();
        tracing::debug!(pid, path = %cli.path.display(), "claude CLI spawned");

        let (status_tx, status_rx) = watch::channel(Status {
            state: State::Starting,
            session_id: opts.resume.clone(),
            turn_started: None,
            turns_completed: 0,
            queued: 0,
        });
        let (cmd_tx, cmd_rx) = mpsc::channel(32);
        let (init_tx, init_rx) = oneshot::channel();
        let actor = Actor {
            t: transport,
            status: status_tx,
            cmd_rx,
            queue: VecDeque::new(),
            active: None,
            written: VecDeque::new(),
            outbox: VecDeque::new(),
            batch: Vec::new(),
            batch_last: false,
            init_failure: None,
            pending: HashMap::new(),
            next_request: 0,
            max_queued: opts.max_queued_turns,
            callbacks: opts.callbacks.clone(),
            initialize: opts.initialize_request(),
            callback_timeout: opts.callback_timeout,
            handlers: HashMap::new(),
            turn_timeout: opts.turn_timeout,
            close_grace: opts.close_grace,
            telemetry: SessionTelemetry::new(pid),
            store,
            mcp_check: crate::callbacks::registration::expected(&opts.callbacks),
        };
        let span = actor.telemetry.span();
        let init_started = Instant::now();
        tokio::spawn(tracing::Instrument::instrument(
            actor.run(init_tx, opts.initialize_timeout),
            span.clone(),
        ));
        let init = match init_rx.await {
            Ok(result) => result?,
            Err(_) => return Err(status_rx.borrow().closed_error()),
        };
        telemetry::session_ready(&span, pid, init_started.elapsed());
        let version = check_version(&init, &cli.path).await;
        Ok(Session {
            cmd: cmd_tx,
            status: status_rx,
            info: Arc::new(Info {
                init,
                pid,
                cli_version: version,
                turn_timeout: opts.turn_timeout,
                control_timeout: opts.control_timeout,
                stream_buffer: opts.stream_buffer,
            }),
        })
    }

    /// Sends one prompt and returns the stream of that turn's messages, ending with its
    /// `result`. Turns run one at a time in call order; while one runs, up to
    /// [`Options::max_queued_turns`] wait, and more fail with [`Error::QueueFull`].
    /// Dropping the stream before its result interrupts the turn.
    pub async fn stream(&self, prompt: impl Into<UserInput>) -> Result<MessageStream> {
        self.open_turn(prompt.into(), false).await
    }

    /// Sends a user message to the CLI right away, even while a turn is running: the CLI
    /// queues it and runs it as its own turn after the current one. The returned stream
    /// is that turn's. Use it to steer a long task without waiting for it to finish;
    /// [`Session::stream`] instead waits its turn in the SDK's queue.
    pub async fn send_now(&self, prompt: impl Into<UserInput>) -> Result<MessageStream> {
        self.open_turn(prompt.into(), true).await
    }

    async fn open_turn(&self, prompt: UserInput, now: bool) -> Result<MessageStream> {
        let (sink, rx) = mpsc::channel(self.info.stream_buffer.div_ceil(MAX_BATCH).max(2));
        let (accepted, accepted_rx) = oneshot::channel();
        self.send(Command::Turn {
            input: prompt,
            sink,
            accepted,
            now,
        })
        .await?;
        match accepted_rx.await {
            Ok(Ok(())) => Ok(MessageStream::new(rx, self.status.clone())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.closed_error()),
        }
    }

    /// Interrupts the running turn. Its stream then ends with the CLI's error result,
    /// which the adapters report as [`Error::TurnFailed`] (`error_during_execution`).
    pub async fn interrupt(&self) -> Result<()> {
        self.control(OutboundRequest::Interrupt).await.map(drop)
    }

    /// Switches the model for later requests, e.g. `set_model("opus".to_string())`
    /// (`None`: the CLI's default).
    pub async fn set_model(&self, model: impl Into<Option<String>>) -> Result<()> {
        self.control(OutboundRequest::SetModel {
            model: model.into(),
        })
        .await
        .map(drop)
    }

    /// Changes the permission mode for later tool calls.
    pub async fn set_permission_mode(&self, mode: PermissionMode) -> Result<()> {
        self.control(OutboundRequest::SetPermissionMode {
            mode: mode.as_str().to_string(),
        })
        .await
        .map(drop)
    }

    /// Sets or clears the thinking token budget for later turns.
    pub async fn set_max_thinking_tokens(&self, tokens: Option<u64>) -> Result<()> {
        self.control(OutboundRequest::SetMaxThinkingTokens {
            max_thinking_tokens: tokens,
            thinking_display: None,
        })
        .await
        .map(drop)
    }

    /// Status of every MCP server (`{"mcpServers": [{name, status, …}]}`).
    pub async fn mcp_status(&self) -> Result<Value> {
        self.control_payload(OutboundRequest::McpStatus).await
    }

    /// Reconnects an MCP server.
    pub async fn mcp_reconnect(&self, server: impl Into<String>) -> Result<()> {
        self.control(OutboundRequest::McpReconnect {
            server_name: server.into(),
        })
        .await
        .map(drop)
    }

    /// Enables or disables an MCP server.
    pub async fn mcp_toggle(&self, server: impl Into<String>, enabled: bool) -> Result<()> {
        self.control(OutboundRequest::McpToggle {
            server_name: server.into(),
            enabled,
        })
        .await
        .map(drop)
    }

    /// Replaces the dynamically configured MCP servers (`{name: config}`); returns what
    /// the CLI added, removed and failed to start.
    pub async fn mcp_set_servers(&self, servers: Value) -> Result<Value> {
        self.control_payload(OutboundRequest::McpSetServers { servers })
            .await
    }

    /// Undoes file changes made since the user message `user_message_id` (needs
    /// [`Options::enable_file_checkpointing`](crate::Options::enable_file_checkpointing)).
    /// Name the message yourself with [`UserInput::with_uuid`]. With `dry_run`, only
    /// reports what would change (`{canRewind, filesChanged, insertions, deletions}`).
    pub async fn rewind_files(
        &self,
        user_message_id: impl Into<String>,
        dry_run: bool,
    ) -> Result<Value> {
        self.control_payload(OutboundRequest::RewindFiles {
            user_message_id: user_message_id.into(),
            dry_run: Some(dry_run),
        })
        .await
    }

    /// Stops a background task (a subagent or shell) by the `task_id` of its
    /// `task_started` system message
    /// ([`SystemKind::TaskStarted`](crate::protocol::SystemKind::TaskStarted)).
    pub async fn stop_task(&self, task_id: impl Into<String>) -> Result<()> {
        self.control(OutboundRequest::StopTask {
            task_id: task_id.into(),
        })
        .await
        .map(drop)
    }

    /// Context window usage as the CLI reports it (`totalTokens`, `maxTokens`, usage by
    /// category).
    pub async fn context_usage(&self) -> Result<Value> {
        self.control_payload(OutboundRequest::GetContextUsage).await
    }

    async fn control_payload(&self, request: OutboundRequest) -> Result<Value> {
        Ok(self.control(request).await?.unwrap_or(Value::Null))
    }

    /// Sends any control request and returns the CLI's success payload, bounded by
    /// [`Options::control_timeout`].
    pub async fn control(&self, request: OutboundRequest) -> Result<Option<Value>> {
        let subtype = request.subtype().to_owned();
        let span = telemetry::control_span(Direction::Outbound, &subtype, None);
        let started = Instant::now();
        let result =
            tracing::Instrument::instrument(self.control_unobserved(request), span.clone()).await;
        span.in_scope(|| {
            telemetry::control_done(Direction::Outbound, &subtype, started, result.is_ok())
        });
        result
    }

    async fn control_unobserved(&self, request: OutboundRequest) -> Result<Option<Value>> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Control { request, reply }).await?;
        match tokio::time::timeout(self.info.control_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => Err(Error::Timeout {
                what: "a control response from the claude CLI",
                after: self.info.control_timeout,
            }),
        }
    }

    /// Stops the session: interrupts a running turn, fails queued ones, closes stdin,
    /// waits [`Options::close_grace`] for the CLI to exit, then kills its process group.
    /// Returns once the process is reaped. Stopping a stopped session is a no-op.
    pub async fn stop(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        if self.cmd.send(Command::Stop { done }).await.is_err() {
            return Ok(());
        }
        let _ = rx.await;
        Ok(())
    }

    /// Waits until the session has ended: `Ok(())` after [`Session::stop`] (or the last
    /// handle dropped), [`Error::ProcessExited`] when the CLI died on its own.
    pub async fn closed(&self) -> Result<()> {
        let mut status = self.status.clone();
        let ended = |s: &Status| matches!(s.state, State::Exited { .. } | State::Stopped);
        // An error means the actor is gone; its last published state still says why.
        let _ = status.wait_for(ended).await;
        let state = status.borrow().state.clone();
        match state {
            State::Exited { exit, stderr } => Err(Error::ProcessExited { exit, stderr }),
            _ => Ok(()),
        }
    }

    /// True once the session has ended (see [`Session::closed`]).
    pub fn is_closed(&self) -> bool {
        matches!(
            self.status.borrow().state,
            State::Exited { .. } | State::Stopped
        )
    }

    /// The conversation id, known after the first turn starts (or from `resume`).
    pub fn session_id(&self) -> Option<String> {
        self.status.borrow().session_id.clone()
    }

    /// Checks the session without asking the CLI: process alive and not stopped
    /// (SIGSTOP; read from `/proc` on Linux), handshake done, no turn past its timeout.
    /// A CLI that is running but wedged answers nothing and still looks healthy here:
    /// [`Session::probe`] catches it with a control round-trip, and the supervisor's
    /// health monitor probes periodically.
    pub async fn health(&self) -> Health {
        let status = self.status.borrow().clone();
        let reason = match status.state {
            State::Starting => UnhealthyReason::NotInitialized,
            State::Exited { exit, .. } => UnhealthyReason::ProcessExited(exit),
            State::Stopped => UnhealthyReason::Stopped,
            State::Ready => match (status.turn_started, self.info.turn_timeout) {
                (Some(started), Some(limit)) if started.elapsed() > limit => {
                    UnhealthyReason::TurnStuck(started.elapsed())
                }
                _ if self.info.pid.is_some_and(crate::transport::is_suspended) => {
                    UnhealthyReason::Suspended
                }
                _ => return Health::Healthy,
            },
        };
        Health::Unhealthy(reason)
    }

    /// [`Session::health`], then a liveness probe: one control round-trip
    /// (`mcp_status`) that must be answered within `timeout`, else
    /// [`UnhealthyReason::Unresponsive`]. Cheap (the CLI answers locally) and safe
    /// during a turn.
    pub async fn probe(&self, timeout: Duration) -> Health {
        let health = self.health().await;
        if !health.is_healthy() {
            return health;
        }
        match tokio::time::timeout(timeout, self.control_unobserved(OutboundRequest::McpStatus))
            .await
        {
            // Any answer counts, an error reply included: the CLI still reads its stdin.
            Ok(Ok(_)) | Ok(Err(Error::ControlRequest { .. })) => Health::Healthy,
            Ok(Err(Error::Timeout { .. })) | Err(_) => {
                Health::Unhealthy(UnhealthyReason::Unresponsive(timeout))
            }
            // The session ended meanwhile: its own report says how.
            Ok(Err(_)) => self.health().await,
        }
    }

    /// What the CLI reported in the initialize handshake (models, commands, account).
    pub fn initialize_response(&self) -> &InitializeResponse {
        &self.info.init
    }

    /// The CLI's process id.
    pub fn pid(&self) -> Option<u32> {
        self.info.pid
    }

    /// The CLI's version, from the initialize reply (else `claude --version`); `None`
    /// when neither could be read.
    pub fn cli_version(&self) -> Option<CliVersion> {
        self.info.cli_version
    }

    /// Turns completed so far.
    pub fn turns_completed(&self) -> u64 {
        self.status.borrow().turns_completed
    }

    /// Turns waiting behind the running one.
    pub fn queued_turns(&self) -> usize {
        self.status.borrow().queued
    }

    /// True while a turn runs or waits (used by hosting to pick idle sessions).
    pub(crate) fn is_busy(&self) -> bool {
        let s = self.status.borrow();
        s.turn_started.is_some() || s.queued > 0
    }

    /// Resolves once the actor has finished (the CLI stopped and reaped), without
    /// keeping the session open: admission control frees a live-CLI slot on it.
    pub(crate) fn reaped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut status = self.status.clone();
        async move { while status.changed().await.is_ok() {} }
    }

    async fn send(&self, cmd: Command) -> Result<()> {
        self.cmd.send(cmd).await.map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> Error {
        self.status.borrow().closed_error()
    }
}

/// The CLI's version, from the handshake (CLI >= 2.1.332 reports it) or, for older CLIs,
/// from `claude --version` (once per binary); warns when it is older than we test.
async fn check_version(init: &InitializeResponse, path: &std::path::Path) -> Option<CliVersion> {
    let version = match init
        .claude_code_version
        .as_deref()
        .and_then(CliVersion::parse)
    {
        Some(v) => Some(v),
        None => cli_version(path).await,
    };
    match version {
        Some(v) if CliVersion::parse(MIN_CLI_VERSION).is_some_and(|min| v < min) => {
            tracing::warn!(version = %v, min = MIN_CLI_VERSION, path = %path.display(),
                "claude CLI is older than the oldest version this SDK is tested with");
        }
        None => tracing::warn!(path = %path.display(), "could not read the claude CLI's version"),
        _ => {}
    }
    version
}

/// A control request we sent and still wait for.
enum Pending {
    Init(oneshot::Sender<Result<InitializeResponse>>),
    Call {
        subtype: String,
        reply: oneshot::Sender<Result<Option<Value>>>,
    },
    /// Fire and forget (an interrupt the SDK sent on its own).
    Ignore,
    /// The one-time check that the CLI registered every in-process MCP tool.
    McpCheck(BTreeMap<String, Vec<String>>),
}

struct ActiveTurn {
    sink: mpsc::Sender<Batch>,
    started: Instant,
    /// The consumer is gone or was already told the turn failed; drop its messages.
    abandoned: bool,
    interrupted: bool,
    /// The turn's span and timing; dropping it records the turn.
    telemetry: TurnTelemetry,
}

struct QueuedTurn {
    input: UserInput,
    sink: mpsc::Sender<Batch>,
}

struct Actor {
    t: Transport,
    status: watch::Sender<Status>,
    cmd_rx: mpsc::Receiver<Command>,
    queue: VecDeque<QueuedTurn>,
    active: Option<ActiveTurn>,
    /// Turns written to the CLI behind the active one (`send_now`), in order.
    written: VecDeque<ActiveTurn>,
    /// Batches for the active turn waiting for room in its stream (the flag ends the turn).
    outbox: VecDeque<(Batch, bool)>,
    /// The batch being filled from the current burst of lines, and whether it ends the turn.
    batch: Batch,
    batch_last: bool,
    init_failure: Option<InitFailure>,
    callbacks: Callbacks,
    initialize: crate::protocol::InitializeRequest,
    callback_timeout: Duration,
    /// Running answers to CLI requests, by request id (for `control_cancel_request`).
    handlers: HashMap<String, tokio::task::AbortHandle>,
    pending: HashMap<String, Pending>,
    next_request: u64,
    max_queued: usize,
    turn_timeout: Option<Duration>,
    close_grace: Duration,
    telemetry: SessionTelemetry,
    /// Saves the transcript to the session store, if one is set.
    store: Option<StoreHook>,
    /// In-process MCP tools to check at the first turn (then `None`).
    mcp_check: Option<BTreeMap<String, Vec<String>>>,
}

/// Why the actor's loop ended.
enum Exit {
    /// Stop requested, or every handle dropped.
    Stop(Option<oneshot::Sender<Option<ExitInfo>>>),
    /// The CLI died.
    Died,
    /// Initialize failed or timed out: reported to `start` once the CLI is gone.
    InitFailed(InitFailure),
}

/// The `start` caller and the error to give it.
type InitFailure = (oneshot::Sender<Result<InitializeResponse>>, Error);

impl Actor {
    async fn run(
        mut self,
        init: oneshot::Sender<Result<InitializeResponse>>,
        init_timeout: Duration,
    ) {
        let exit = self.run_inner(init, init_timeout).await;
        match exit {
            Exit::Stop(done) => {
                self.telemetry.ended(SessionEnd::Stopped, None);
                // Let the CLI end a running turn cleanly before its stdin closes.
                self.interrupt_active().await;
                self.fail_all(|| Error::closed("stopped"));
                let exit = self.t.shutdown(self.close_grace).await;
                tracing::debug!(pid = self.t.pid(), ?exit, "claude CLI stopped");
                self.save_to_store().await;
                self.status.send_modify(|s| {
                    s.state = State::Stopped;
                    s.turn_started = None;
                });
                if let Some(done) = done {
                    let _ = done.send(exit);
                }
            }
            Exit::Died => {
                let err = self.t.exit_error().await;
                self.telemetry.ended(SessionEnd::Crashed, Some(&err));
                self.flush_outbox().await;
                tracing::warn!(pid = self.t.pid(), error = %err, "claude CLI exited unexpectedly");
                if let Error::ProcessExited { exit, stderr } = &err {
                    let (exit, stderr) = (exit.clone(), stderr.clone());
                    // Published before the streams close, so they report this error.
                    self.status.send_modify(|s| {
                        s.state = State::Exited { exit, stderr };
                        s.turn_started = None;
                    });
                }
                self.t.shutdown(Duration::ZERO).await;
                self.save_to_store().await;
            }
            Exit::InitFailed((tx, err)) => {
                self.telemetry.ended(SessionEnd::InitFailed, Some(&err));
                self.t.shutdown(Duration::ZERO).await;
                self.status.send_modify(|s| s.state = State::Stopped);
                let _ = tx.send(Err(err));
            }
        }
        // Dropping self closes every stream and pending reply; they read the status.
    }

    async fn run_inner(
        &mut self,
        init: oneshot::Sender<Result<InitializeResponse>>,
        init_timeout: Duration,
    ) -> Exit {
        let id = self.request_id();
        let line = control_request_line(&id, &OutboundRequest::Initialize(self.initialize.clone()));
        self.pending.insert(id, Pending::Init(init));
        if self.t.send(line).await.is_err() {
            return Exit::Died;
        }
        let init_deadline = tokio::time::Instant::now() + init_timeout;

        loop {
            let starting = matches!(self.status.borrow().state, State::Starting);
            let turn_deadline = match (&self.active, self.turn_timeout) {
                (Some(a), Some(limit)) if !a.abandoned => {
                    Some(tokio::time::Instant::from_std(a.started + limit))
                }
                _ => None,
            };
            let sink = self.active.as_ref().map(|a| a.sink.clone());
            let watch_drop = self.active.as_ref().is_some_and(|a| !a.abandoned);
            tokio::select! {
                biased;
                cmd = self.cmd_rx.recv() => match cmd {
                    None => return Exit::Stop(None),
                    Some(cmd) => if let Some(exit) = self.on_command(cmd).await {
                        return exit;
                    },
                },
                permit = reserve(sink.as_ref()), if !self.outbox.is_empty() => {
                    if let (Ok(permit), Some((item, last))) = (permit, self.outbox.pop_front()) {
                        permit.send(item);
                        if last {
                            self.finish_turn().await;
                        }
                    } else {
                        self.consumer_gone().await;
                    }
                },
                line = self.t.stdout.next(), if self.outbox.is_empty() => {
                    // Take this line and every line already buffered behind it (up to a
                    // batch), then hand them over at once.
                    let mut line = Some(line);
                    let mut taken = 0;
                    while let Some(next) = line.take() {
                        match next {
                            Some(Ok(Line::Data(bytes))) => {
                                if self.on_line(bytes).await.is_err() {
                                    return Exit::Died;
                                }
                            }
                            Some(Ok(Line::TooLong)) => {
                                let limit = self.t.max_line_bytes();
                                tracing::warn!(limit, "skipped an over-long stdout line");
                                if matches!(self.status.borrow().state, State::Starting) {
                                    // Most likely the initialize response itself: fail
                                    // now rather than at the initialize timeout.
                                    if let Some(Pending::Init(tx)) = self.take_init() {
                                        return Exit::InitFailed((tx, Error::LineTooLong { limit }));
                                    }
                                }
                                self.push(Delivery::Error(Error::LineTooLong { limit }), false);
                            }
                            Some(Err(_)) | None => {
                                self.flush().await;
                                return Exit::Died;
                            }
                        }
                        taken += 1;
                        if taken < MAX_BATCH && self.outbox.is_empty() {
                            line = self.t.stdout.next().now_or_never();
                        }
                    }
                    self.flush().await;
                },
                _ = closed(sink.as_ref()), if watch_drop => self.consumer_gone().await,
                _ = tokio::time::sleep_until(init_deadline), if starting => {
                    let err = Error::Timeout { what: "the initialize response", after: init_timeout };
                    match self.take_init() {
                        Some(Pending::Init(tx)) => return Exit::InitFailed((tx, err)),
                        _ => return Exit::Stop(None),
                    }
                },
                _ = sleep_until_opt(turn_deadline), if turn_deadline.is_some() => {
                    if let Some(limit) = self.turn_timeout {
                        tracing::warn!(pid = self.t.pid(), ?limit, "turn timed out; interrupting");
                        self.push(Delivery::Error(Error::Timeout { what: "the turn to finish", after: limit }), false);
                        self.flush().await;
                        if let Some(a) = &mut self.active { a.abandoned = true; }
                        self.interrupt_active().await;
                    }
                },
            }
            if let Some(failure) = self.init_failure.take() {
                return Exit::InitFailed(failure);
            }
            if matches!(self.status.borrow().state, State::Starting) && !self.init_pending() {
                // The initialize reply arrived but its receiver is gone (start() cancelled).
                return Exit::Stop(None);
            }
        }
    }

    /// The CLI has exited: saves the whole transcript to the session store, if any.
    async fn save_to_store(&self) {
        if let Some(store) = &self.store {
            let id = self.status.borrow().session_id.clone();
            store.session_ended(id).await;
        }
    }

    /// Sends the one-time `mcp_status` check of in-process MCP tools.
    async fn send_mcp_check(&mut self) {
        let Some(expected) = self.mcp_check.take() else {
            return;
        };
        let id = self.request_id();
        let line = control_request_line(&id, &OutboundRequest::McpStatus);
        self.pending.insert(id, Pending::McpCheck(expected));
        let _ = self.t.send(line).await;
    }

    fn request_id(&mut self) -> String {
        self.next_request += 1;
        format!("req_{}_rs", self.next_request)
    }

    fn take_init(&mut self) -> Option<Pending> {
        let id = self
            .pending
            .iter()
            .find(|(_, p)| matches!(p, Pending::Init(_)))
            .map(|(k, _)| k.clone())?;
        self.pending.remove(&id)
    }

    fn init_pending(&self) -> bool {
        self.pending.values().any(|p| matches!(p, Pending::Init(_)))
    }

    /// Handles one command; `Some` when the loop must end.
    async fn on_command(&mut self, cmd: Command) -> Option<Exit> {
        match cmd {
            Command::Turn {
                input,
                sink,
                accepted,
                now,
            } => {
                let waiting = self.queue.len() + self.written.len();
                if self.active.is_some() && waiting >= self.max_queued {
                    let _ = accepted.send(Err(Error::QueueFull {
                        capacity: self.max_queued,
                    }));
                    return None;
                }
                let _ = accepted.send(Ok(()));
                if now && self.active.is_some() {
                    match self.t.send(input.to_line()).await {
                        Ok(()) => {
                            let turn = self.new_active(sink);
                            self.written.push_back(turn);
                        }
                        Err(e) => drop(sink.try_send(vec![Delivery::Error(e)])),
                    }
                    return None;
                }
                self.queue.push_back(QueuedTurn { input, sink });
                if self.active.is_none() {
                    self.start_next_turn().await;
                } else {
                    self.publish_queue();
                }
            }
            Command::Control { request, reply } => {
                let id = self.request_id();
                let line = control_request_line(&id, &request);
                self.pending.retain(|_, p| match p {
                    Pending::Call { reply, .. } => !reply.is_closed(),
                    _ => true,
                });
                self.pending.insert(
                    id,
                    Pending::Call {
                        subtype: request.subtype().to_string(),
                        reply,
                    },
                );
                if let Err(e) = self.t.send(line).await {
                    tracing::debug!(error = %e, "control request not written");
                }
            }
            Command::Stop { done } => return Some(Exit::Stop(Some(done))),
        }
        None
    }

    async fn start_next_turn(&mut self) {
        while let Some(turn) = self.queue.pop_front() {
            if turn.sink.is_closed() {
                continue; // its stream was dropped while it waited
            }
            let line = turn.input.to_line();
            if let Err(e) = self.t.send(line).await {
                let _ = turn.sink.try_send(vec![Delivery::Error(e)]);
                continue;
            }
            let active = self.new_active(turn.sink);
            let started = active.started;
            self.active = Some(active);
            self.status.send_modify(|s| s.turn_started = Some(started));
            break;
        }
        self.publish_queue();
    }

    fn publish_queue(&self) {
        let queued = self.queue.len();
        self.telemetry.queue_depth(queued);
        self.status.send_if_modified(|s| {
            let changed = s.queued != queued;
            s.queued = queued;
            changed
        });
    }

    fn new_active(&mut self, sink: mpsc::Sender<Batch>) -> ActiveTurn {
        let session_id = self.status.borrow().session_id.clone();
        ActiveTurn {
            sink,
            started: Instant::now(),
            abandoned: false,
            interrupted: false,
            telemetry: self.telemetry.turn_started(session_id.as_deref()),
        }
    }

    async fn finish_turn(&mut self) {
        // A turn already written to the CLI (`send_now`) runs next; else the queue's head.
        self.active = self.written.pop_front().map(|mut turn| {
            turn.started = Instant::now();
            turn
        });
        let started = self.active.as_ref().map(|a| a.started);
        self.status.send_modify(|s| {
            s.turn_started = started;
            s.turns_completed += 1;
        });
        if self.active.is_none() {
            self.start_next_turn().await;
        }
    }

    /// The active turn's stream was dropped: stop feeding it and interrupt the turn.
    async fn consumer_gone(&mut self) {
        let ending = self.outbox.iter().any(|(_, last)| *last);
        self.outbox.clear();
        if ending {
            self.finish_turn().await;
            return;
        }
        if let Some(a) = &mut self.active {
            a.abandoned = true;
        }
        self.interrupt_active().await;
    }

    async fn interrupt_active(&mut self) {
        let Some(a) = &mut self.active else { return };
        if a.interrupted {
            return;
        }
        a.interrupted = true;
        let id = self.request_id();
        let line = control_request_line(&id, &OutboundRequest::Interrupt);
        self.pending.insert(id, Pending::Ignore);
        let _ = self.t.send(line).await;
    }

    /// Adds an item for the active turn to the current batch (`last` ends the turn).
    fn push(&mut self, item: Delivery, last: bool) {
        match &self.active {
            Some(active) if !active.abandoned => self.batch.push(item),
            Some(_) => {}
            None => return,
        }
        self.batch_last |= last;
    }

    /// Hands the current batch to the active turn's stream, or queues it when the stream
    /// is full; ends the turn when the batch holds its result.
    async fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        let last = std::mem::take(&mut self.batch_last);
        let Some(active) = &self.active else {
            return;
        };
        if batch.is_empty() {
            if last {
                self.finish_turn().await;
            }
            return;
        }
        if !self.outbox.is_empty() {
            self.outbox.push_back((batch, last));
            return;
        }
        match active.sink.try_send(batch) {
            Ok(()) if last => self.finish_turn().await,
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(batch)) => self.outbox.push_back((batch, last)),
            Err(mpsc::error::TrySendError::Closed(_)) if last => self.finish_turn().await,
            Err(mpsc::error::TrySendError::Closed(_)) => self.consumer_gone().await,
        }
    }

    /// Routes one stdout line. `Err` only when the CLI can no longer be written to.
    async fn on_line(&mut self, bytes: Bytes) -> Result<(), ()> {
        let Ok(text) = std::str::from_utf8(&bytes) else {
            tracing::warn!(len = bytes.len(), "skipped a stdout line that is not UTF-8");
            return Ok(());
        };
        if text.trim().is_empty() {
            return Ok(());
        }
        // Ordinary messages go to the consumer unparsed; only what the actor itself acts
        // on (control envelopes, system and result lines) is parsed here.
        match peek_type(text).as_deref() {
            Some(
                "control_request"
                | "control_response"
                | "control_cancel_request"
                | "keep_alive"
                | "system"
                | "result",
            ) => {}
            Some(_) => {
                self.push(Delivery::Raw(bytes), false);
                return Ok(());
            }
            None => {
                tracing::debug!(line = %truncate(text, 200), "skipped a stdout line without a type");
                return Ok(());
            }
        }
        let inbound = match Inbound::parse(text) {
            Ok(inbound) => inbound,
            Err(e) => {
                if text.trim_start().starts_with('{') {
                    tracing::warn!(error = %e, len = text.len(), "skipped an unparseable stdout line");
                } else {
                    tracing::debug!(line = %truncate(text, 200), "skipped a non-JSON stdout line");
                }
                return Ok(());
            }
        };
        match inbound {
            Inbound::Message(message) => self.on_message(message).await,
            Inbound::ControlResponse(response) => self.on_control_response(response).await,
            Inbound::ControlRequest(request) => return self.on_control_request(request).await,
            Inbound::ControlCancelRequest { request_id } => {
                tracing::debug!(request_id, "control request cancelled by the CLI");
                if let Some(handler) = self.handlers.remove(&request_id) {
                    handler.abort();
                }
            }
            Inbound::KeepAlive => {}
        }
        Ok(())
    }

    async fn on_message(&mut self, message: Message) {
        let is_result = matches!(message, Message::Result(_));
        let new_id = new_session_id(&message, &self.status.borrow());
        if let Some(id) = new_id {
            self.telemetry.session_id(&id);
            self.status.send_modify(|s| s.session_id = Some(id));
        }
        if let (true, Some(store)) = (is_result, &self.store) {
            store.turn_finished(self.status.borrow().session_id.clone());
        }
        if self.active.is_none() {
            tracing::trace!(kind = message.type_name(), "message outside a turn dropped");
            return;
        }
        if let (Message::Result(r), Some(a)) = (&message, &mut self.active) {
            self.telemetry.turn_result(&mut a.telemetry, r);
        }
        let fatal = fatal_api_error(&message);
        let is_init = matches!(&message, Message::System(m) if m.subtype == "init");
        self.push(Delivery::Message(Box::new(message)), is_result);
        if let Some(err) = fatal {
            // Retrying cannot fix this status: end the turn now rather than after the
            // CLI's retries (minutes of back-off for a bad key).
            tracing::warn!(pid = self.t.pid(), error = %err, "non-retryable API error; ending the turn");
            self.fail_active_turn(err).await;
            return;
        }
        if is_init && self.mcp_check.is_some() {
            self.send_mcp_check().await;
        }
        if is_result {
            // Later lines belong to the next turn: hand this one over now.
            self.flush().await;
        }
    }

    async fn on_control_response(&mut self, response: ControlResponse) {
        let Some(pending) = self.pending.remove(&response.request_id) else {
            tracing::debug!(
                request_id = response.request_id,
                "control response for an unknown request"
            );
            return;
        };
        match pending {
            Pending::Init(tx) => {
                let result = match response.result {
                    Ok(payload) => {
                        let payload = payload.unwrap_or(Value::Null);
                        serde_json::from_value::<InitializeResponse>(payload).map_err(|e| {
                            Error::ControlRequest {
                                subtype: "initialize".into(),
                                message: format!("unreadable initialize response: {e}"),
                            }
                        })
                    }
                    Err(e) => Err(Error::ControlRequest {
                        subtype: "initialize".into(),
                        message: e.message,
                    }),
                };
                match result {
                    Ok(init) => {
                        if tx.send(Ok(init)).is_ok() {
                            self.status.send_modify(|s| s.state = State::Ready);
                        }
                    }
                    Err(e) => self.init_failure = Some((tx, e)),
                }
            }
            Pending::Call { subtype, reply } => {
                let _ = reply.send(response.result.map_err(|e| Error::ControlRequest {
                    subtype,
                    message: e.message,
                }));
            }
            Pending::Ignore => {}
            Pending::McpCheck(expected) => {
                let Ok(payload) = response.result else { return };
                let status = payload.unwrap_or(Value::Null);
                use crate::callbacks::registration::{check, Outcome};
                match check(&expected, &status) {
                    Outcome::Registered => {}
                    // Not connected yet: check again at the next turn.
                    Outcome::NotYet => self.mcp_check = Some(expected),
                    Outcome::Missing(err) => {
                        tracing::warn!(error = %err, "in-process MCP tools missing");
                        self.fail_active_turn(err).await;
                    }
                }
            }
        }
    }

    /// Ends the active turn at once with `err` (its later messages are dropped) and
    /// interrupts the CLI.
    async fn fail_active_turn(&mut self, err: Error) {
        self.push(Delivery::Error(err), false);
        self.flush().await;
        if let Some(a) = &mut self.active {
            a.abandoned = true;
        }
        self.interrupt_active().await;
    }

    /// Answers a request from the CLI on its own task, so a slow callback never blocks
    /// the session. Every request gets a reply, or the CLI would wait forever.
    async fn on_control_request(&mut self, request: ControlRequest) -> Result<(), ()> {
        let Some(writer) = self.t.writer() else {
            return Err(());
        };
        let callbacks = self.callbacks.clone();
        let timeout = self.callback_timeout;
        let id = request.request_id.clone();
        let subtype = request.request.subtype().to_owned();
        let span = telemetry::control_span(Direction::Inbound, &subtype, Some(&id));
        let answer = async move {
            let started = Instant::now();
            let answer = callbacks.answer(request.request, timeout).await;
            telemetry::control_done(Direction::Inbound, &subtype, started, answer.is_ok());
            let line = match answer {
                Ok(payload) => control_success_line(&id, payload),
                Err(message) => {
                    tracing::debug!(
                        request_id = id,
                        error = message,
                        "control request answered with an error"
                    );
                    control_error_line(&id, &message)
                }
            };
            let _ = writer.send(line.into()).await;
        };
        let task = tokio::spawn(tracing::Instrument::instrument(answer, span));
        self.handlers.retain(|_, h| !h.is_finished());
        self.handlers
            .insert(request.request_id, task.abort_handle());
        Ok(())
    }

    /// Delivers what the dead CLI wrote before it died (bounded wait for the consumer).
    async fn flush_outbox(&mut self) {
        let Some(active) = &self.active else { return };
        let sink = active.sink.clone();
        let flush = async {
            while let Some((batch, _)) = self.outbox.pop_front() {
                if sink.send(batch).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), flush).await;
        self.outbox.clear();
    }

    /// Fails every turn and control request still waiting.
    fn fail_all(&mut self, err: impl Fn() -> Error) {
        if let Some(active) = self.active.take() {
            if !active.abandoned {
                let _ = active.sink.try_send(vec![Delivery::Error(err())]);
            }
        }
        for turn in self.queue.drain(..) {
            let _ = turn.sink.try_send(vec![Delivery::Error(err())]);
        }
        for turn in self.written.drain(..) {
            let _ = turn.sink.try_send(vec![Delivery::Error(err())]);
        }
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Init(tx) => drop(tx.send(Err(err()))),
                Pending::Call { reply, .. } => drop(reply.send(Err(err()))),
                Pending::Ignore | Pending::McpCheck(_) => {}
            }
        }
        self.outbox.clear();
    }
}

/// HTTP statuses that the CLI retries but retrying cannot fix.
const NON_RETRYABLE: [u64; 4] = [400, 401, 403, 404];

/// The typed error for a `system/api_retry` message about a non-retryable status.
fn fatal_api_error(message: &Message) -> Option<Error> {
    let Message::System(m) = message else {
        return None;
    };
    if m.subtype != "api_retry" {
        return None;
    }
    let status = m.extra.get("error_status").and_then(Value::as_u64)?;
    if !NON_RETRYABLE.contains(&status) {
        return None;
    }
    let error = match m.extra.get("error") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    Some(Error::Api {
        status: u16::try_from(status).unwrap_or(u16::MAX),
        error,
    })
}

fn new_session_id(message: &Message, status: &Status) -> Option<String> {
    let id = match message {
        Message::System(_) | Message::Result(_) => message.session_id()?,
        _ => return None,
    };
    (status.session_id.as_deref() != Some(id)).then(|| id.to_string())
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

async fn reserve(sink: Option<&mpsc::Sender<Batch>>) -> Result<mpsc::Permit<'_, Batch>, ()> {
    match sink {
        Some(s) => s.reserve().await.map_err(drop),
        None => Err(()),
    }
}

async fn closed(sink: Option<&mpsc::Sender<Batch>>) {
    match sink {
        Some(s) => s.closed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
