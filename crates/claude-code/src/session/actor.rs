//! The session actor: owns the transport and runs the main loop (commands from handles,
//! stdout lines, stream back-pressure, timeouts) until the CLI stops or dies.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::Duration,
};

use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::control::Pending;
use super::store_hook::StoreHook;
use super::turns::{ActiveTurn, QueuedTurn};
use super::{Batch, Command, Delivery, State, Status, MAX_BATCH};
use crate::audit::{Auditor, ControlOutcome};
use crate::callbacks::Callbacks;
use crate::error::{Error, ExitInfo};
use crate::protocol::{control_request_line, InitializeResponse, OutboundRequest};
use crate::telemetry::{SessionEnd, SessionTelemetry};
use crate::transport::{Line, Transport};
use crate::util::or_pending;

pub(super) struct Actor {
    pub(super) t: Transport,
    pub(super) status: watch::Sender<Status>,
    pub(super) cmd_rx: mpsc::Receiver<Command>,
    pub(super) queue: VecDeque<QueuedTurn>,
    pub(super) active: Option<ActiveTurn>,
    /// Turns written to the CLI behind the active one (`send_now`), in order.
    pub(super) written: VecDeque<ActiveTurn>,
    /// Batches for the active turn waiting for room in its stream (the flag ends the turn).
    pub(super) outbox: VecDeque<(Batch, bool)>,
    /// The batch being filled from the current burst of lines, and whether it ends the turn.
    pub(super) batch: Batch,
    pub(super) batch_last: bool,
    /// Where the initialize handshake stands.
    pub(super) handshake: Handshake,
    pub(super) callbacks: Callbacks,
    pub(super) initialize: crate::protocol::InitializeRequest,
    pub(super) callback_timeout: Duration,
    /// Running answers to CLI requests, by request id (for `control_cancel_request`),
    /// with their subtype and arrival time.
    pub(super) handlers: HashMap<String, (tokio::task::AbortHandle, String, std::time::Instant)>,
    pub(super) pending: HashMap<String, Pending>,
    pub(super) next_request: u64,
    pub(super) max_queued: usize,
    pub(super) turn_timeout: Option<Duration>,
    pub(super) close_grace: Duration,
    pub(super) telemetry: SessionTelemetry,
    /// Saves the transcript to the session store, if one is set.
    pub(super) store: Option<StoreHook>,
    /// In-process MCP tools to check at the first turn (then `None`).
    pub(super) mcp_check: Option<BTreeMap<String, Vec<String>>>,
    /// The audit trail's emitter (disabled without [`Options::audit`](crate::Options::audit)).
    pub(super) auditor: Auditor,
    /// Control requests sent to the CLI and not yet answered, for the audit trail
    /// (subtype, when sent); empty when not auditing.
    pub(super) sent: HashMap<String, (String, std::time::Instant)>,
}

/// Why the actor's loop ended.
pub(super) enum Exit {
    /// Stop requested, or every handle dropped.
    Stop(Option<oneshot::Sender<Option<ExitInfo>>>),
    /// The CLI died.
    Died,
    /// Initialize failed or timed out: reported to `start` once the CLI is gone.
    InitFailed(InitFailure),
}

/// The `start` caller and the error to give it.
pub(super) type InitFailure = (InitReply, Error);

/// Where `start` waits for the handshake's outcome.
pub(super) type InitReply = oneshot::Sender<crate::error::Result<InitializeResponse>>;

/// The initialize handshake, one phase at a time.
pub(super) enum Handshake {
    /// Waiting for the answer to request `id` until `deadline`.
    Waiting {
        id: String,
        reply: InitReply,
        deadline: tokio::time::Instant,
        timeout: Duration,
    },
    /// It failed: `start` is told once the CLI is gone.
    Failed(InitFailure),
    /// The answer came but `start` was cancelled meanwhile: stop.
    Abandoned,
    /// Initialised.
    Done,
}

impl Handshake {
    /// Takes `start`'s reply while the handshake waits, leaving it `Done`.
    pub(super) fn take_reply(&mut self) -> Option<InitReply> {
        match std::mem::replace(self, Handshake::Done) {
            Handshake::Waiting { reply, .. } => Some(reply),
            other => {
                *self = other;
                None
            }
        }
    }

    fn deadline(&self) -> Option<(tokio::time::Instant, Duration)> {
        match self {
            Handshake::Waiting {
                deadline, timeout, ..
            } => Some((*deadline, *timeout)),
            _ => None,
        }
    }
}

impl Actor {
    pub(super) async fn run(mut self, init: InitReply, init_timeout: Duration) {
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
                // The sink has seen every event of the session before `stop` returns.
                self.auditor.close().await;
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
                let exited = match &err {
                    Error::ProcessExited { exit, stderr } => Some((exit.clone(), stderr.clone())),
                    Error::ResourceLimit { kind } => {
                        Some((ExitInfo::ResourceLimit(*kind), self.t.stderr_tail().await))
                    }
                    _ => None,
                };
                if let Some((exit, stderr)) = exited {
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
        self.auditor.close().await;
        // Dropping self closes every stream and pending reply; they read the status.
    }

    pub(super) async fn run_inner(&mut self, init: InitReply, init_timeout: Duration) -> Exit {
        let id = self.request_id();
        let line = control_request_line(&id, &OutboundRequest::Initialize(self.initialize.clone()));
        self.audit_sent(&id, "initialize");
        self.handshake = Handshake::Waiting {
            id,
            reply: init,
            deadline: tokio::time::Instant::now() + init_timeout,
            timeout: init_timeout,
        };
        if self.t.send(line).await.is_err() {
            return Exit::Died;
        }

        loop {
            let init_deadline = self.handshake.deadline();
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
                permit = or_pending(sink.as_ref().map(|s| s.reserve())), if !self.outbox.is_empty() => {
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
                    if let Some(exit) = self.on_stdout_burst(line).await {
                        return exit;
                    }
                },
                _ = or_pending(sink.as_ref().map(|s| s.closed())), if watch_drop => self.consumer_gone().await,
                _ = or_pending(init_deadline.map(|(d, _)| tokio::time::sleep_until(d))), if init_deadline.is_some() => {
                    let after = init_deadline.map_or(Duration::ZERO, |(_, t)| t);
                    if let Handshake::Waiting { id, .. } = &self.handshake {
                        let id = id.clone();
                        self.audit_answered(&id, Err(ControlOutcome::Timeout));
                    }
                    let err = Error::Timeout { what: "the initialize response", after };
                    match self.handshake.take_reply() {
                        Some(reply) => return Exit::InitFailed((reply, err)),
                        None => return Exit::Stop(None),
                    }
                },
                _ = or_pending(turn_deadline.map(tokio::time::sleep_until)), if turn_deadline.is_some() => {
                    if let Some(limit) = self.turn_timeout {
                        tracing::warn!(pid = self.t.pid(), ?limit, "turn timed out; interrupting");
                        self.push(Delivery::Error(Error::Timeout { what: "the turn to finish", after: limit }), false);
                        self.flush().await;
                        if let Some(a) = &mut self.active { a.abandoned = true; }
                        self.interrupt_active().await;
                    }
                },
            }
            match std::mem::replace(&mut self.handshake, Handshake::Done) {
                Handshake::Failed(failure) => return Exit::InitFailed(failure),
                Handshake::Abandoned => return Exit::Stop(None),
                other => self.handshake = other,
            }
        }
    }

    /// The CLI has exited: saves the whole transcript to the session store, if any.
    pub(super) async fn save_to_store(&self) {
        if let Some(store) = &self.store {
            let id = self.status.borrow().session_id.clone();
            store.session_ended(id).await;
        }
    }

    pub(super) fn request_id(&mut self) -> String {
        self.next_request += 1;
        format!("req_{}_rs", self.next_request)
    }

    /// Takes `first` and every line already buffered behind it (up to a batch), routes
    /// them and hands what is for the turn over at once; `Some` when the loop must end.
    async fn on_stdout_burst(&mut self, first: Option<std::io::Result<Line>>) -> Option<Exit> {
        let mut line = Some(first);
        let mut taken = 0;
        while let Some(next) = line.take() {
            match next {
                Some(Ok(Line::Data(bytes))) => {
                    if self.on_line(bytes).await.is_err() {
                        return Some(Exit::Died);
                    }
                }
                Some(Ok(Line::TooLong)) => {
                    let limit = self.t.max_line_bytes();
                    tracing::warn!(limit, "skipped an over-long stdout line");
                    // During the handshake it is most likely the initialize response
                    // itself: fail now, not at the timeout.
                    if let Some(reply) = self.handshake.take_reply() {
                        return Some(Exit::InitFailed((reply, Error::LineTooLong { limit })));
                    }
                    self.push(Delivery::Error(Error::LineTooLong { limit }), false);
                }
                Some(Err(_)) | None => {
                    self.flush().await;
                    return Some(Exit::Died);
                }
            }
            taken += 1;
            if taken < MAX_BATCH && self.outbox.is_empty() {
                line = self.t.stdout.next().now_or_never();
            }
        }
        self.flush().await;
        None
    }

    /// Handles one command; `Some` when the loop must end.
    pub(super) async fn on_command(&mut self, cmd: Command) -> Option<Exit> {
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
                            let turn = self.new_active(sink, input.audit_context);
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
                let mut gave_up = Vec::new();
                self.pending.retain(|id, p| match p {
                    Pending::Call { reply, .. } if reply.is_closed() => {
                        gave_up.push(id.clone());
                        false
                    }
                    _ => true,
                });
                for old in gave_up {
                    self.audit_answered(&old, Err(ControlOutcome::Timeout));
                }
                self.audit_sent(&id, request.subtype());
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
}
