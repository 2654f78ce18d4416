//! The session: a handle ([`Session`], this file) and its actor.
//!
//! One private task (the actor) owns the CLI process: it writes to stdin, reads and routes
//! every stdout line, answers and issues control requests, and runs one turn at a time
//! from a bounded FIFO queue. [`Session`] is a cheap `Clone` handle that talks to the
//! actor over a bounded channel. Shared state the handle may read without asking (session
//! id, health) is published through a `watch` channel. How a turn's messages are consumed
//! is `stream`'s business; the process itself is `transport`'s.
//!
//! - `actor`: the actor's state, its main loop and the handshake phases;
//! - `turns`: the queue, the active turn, batching with back-pressure, failing turns;
//! - `control`: routing stdout lines, control responses and the CLI's requests.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

mod actor;
mod control;
#[cfg(feature = "fuzzing")]
pub(crate) use control::{answer_line, route, Routed};
mod store_hook;
pub(crate) mod stream;
mod turns;

use crate::cli::{cli_version, CliVersion, MIN_CLI_VERSION};
use crate::error::{Error, ExitInfo, Result};
use crate::options::{Options, PermissionMode};
use crate::protocol::{InitializeResponse, Message, OutboundRequest, UserInput};
use crate::telemetry::{self, Direction, SessionTelemetry};
use crate::transport::Transport;
use actor::Actor;
use store_hook::StoreHook;
use stream::MessageStream;

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
            State::Exited { exit, stderr } => exited_error(exit.clone(), stderr.clone()),
            State::Stopped => Error::closed("stopped"),
            State::Starting | State::Ready => Error::SessionClosed { reason: None },
        }
    }
}

/// The error for a CLI that ended on its own: [`Error::ResourceLimit`] when the SDK ended
/// it at a limit, else [`Error::ProcessExited`].
pub(crate) fn exited_error(exit: ExitInfo, stderr: String) -> Error {
    match exit {
        ExitInfo::ResourceLimit(kind) => Error::ResourceLimit { kind },
        exit => Error::ProcessExited { exit, stderr },
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
            handshake: actor::Handshake::Done,
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
            auditor: crate::audit::Auditor::start(
                opts.audit_config().as_ref(),
                if opts.audit.is_some() {
                    opts.audit_secrets()
                } else {
                    Vec::new()
                },
            ),
            sent: HashMap::new(),
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
        // Confined, the spawned process is bubblewrap; the CLI (initialized by now) is
        // the member of its process group that is not.
        let pid = match (pid, opts.confinement.is_some()) {
            (Some(wrapper), true) => crate::procfs::group(wrapper)
                .into_iter()
                .filter(|p| {
                    p.comm != "bwrap"
                        && crate::procfs::stat(p.ppid).is_some_and(|parent| parent.comm == "bwrap")
                })
                .map(|p| p.pid)
                .min()
                .or(Some(wrapper)),
            _ => pid,
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
            State::Exited { exit, stderr } => Err(exited_error(exit, stderr)),
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
                _ if self.info.pid.is_some_and(crate::procfs::is_stopped) => {
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

    /// The CLI's process id (confined: the CLI inside the sandbox, not bubblewrap).
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
