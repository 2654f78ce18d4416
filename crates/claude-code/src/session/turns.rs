//! Turns on the actor: the FIFO queue, the active turn, batching lines into its stream
//! with back-pressure, interrupting and failing turns.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::actor::Actor;
use super::control::Pending;
use super::{Batch, Delivery};
use crate::audit::ControlOutcome;
use crate::error::Error;
use crate::protocol::{control_request_line, OutboundRequest, UserInput};
use crate::telemetry::TurnTelemetry;

pub(super) struct ActiveTurn {
    pub(super) sink: mpsc::Sender<Batch>,
    pub(super) started: Instant,
    /// The consumer is gone or was already told the turn failed; drop its messages.
    pub(super) abandoned: bool,
    pub(super) interrupted: bool,
    /// The turn's span and timing; dropping it records the turn.
    pub(super) telemetry: TurnTelemetry,
    /// Its audit context ([`UserInput::with_audit_context`]).
    pub(super) audit_context: Option<String>,
}

pub(super) struct QueuedTurn {
    pub(super) input: UserInput,
    pub(super) sink: mpsc::Sender<Batch>,
}

impl Actor {
    pub(super) async fn start_next_turn(&mut self) {
        while let Some(turn) = self.queue.pop_front() {
            if turn.sink.is_closed() {
                continue; // its stream was dropped while it waited
            }
            let line = turn.input.to_line();
            if let Err(e) = self.t.send(line).await {
                let _ = turn.sink.try_send(vec![Delivery::Error(e)]);
                continue;
            }
            let active = self.new_active(turn.sink, turn.input.audit_context);
            let started = active.started;
            self.active = Some(active);
            self.status.send_modify(|s| s.turn_started = Some(started));
            break;
        }
        self.publish_queue();
    }

    pub(super) fn publish_queue(&self) {
        let queued = self.queue.len();
        self.telemetry.queue_depth(queued);
        self.status.send_if_modified(|s| {
            let changed = s.queued != queued;
            s.queued = queued;
            changed
        });
    }

    pub(super) fn new_active(
        &mut self,
        sink: mpsc::Sender<Batch>,
        audit_context: Option<String>,
    ) -> ActiveTurn {
        let session_id = self.status.borrow().session_id.clone();
        ActiveTurn {
            sink,
            started: Instant::now(),
            abandoned: false,
            interrupted: false,
            telemetry: self.telemetry.turn_started(session_id.as_deref()),
            audit_context,
        }
    }

    pub(super) async fn finish_turn(&mut self) {
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
    pub(super) async fn consumer_gone(&mut self) {
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

    pub(super) async fn interrupt_active(&mut self) {
        let Some(a) = &mut self.active else { return };
        if a.interrupted {
            return;
        }
        a.interrupted = true;
        let id = self.request_id();
        let line = control_request_line(&id, &OutboundRequest::Interrupt);
        self.audit_sent(&id, "interrupt");
        self.pending.insert(id, Pending::Ignore);
        let _ = self.t.send(line).await;
    }

    /// Adds an item for the active turn to the current batch (`last` ends the turn).
    pub(super) fn push(&mut self, item: Delivery, last: bool) {
        match &self.active {
            Some(active) if !active.abandoned => self.batch.push(item),
            Some(_) => {}
            None => return,
        }
        self.batch_last |= last;
    }

    /// Hands the current batch to the active turn's stream, or queues it when the stream
    /// is full; ends the turn when the batch holds its result.
    pub(super) async fn flush(&mut self) {
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

    /// Delivers what the dead CLI wrote before it died (bounded wait for the consumer).
    pub(super) async fn flush_outbox(&mut self) {
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

    /// Ends the active turn at once with `err` (its later messages are dropped) and
    /// interrupts the CLI.
    pub(super) async fn fail_active_turn(&mut self, err: Error) {
        self.push(Delivery::Error(err), false);
        self.flush().await;
        if let Some(a) = &mut self.active {
            a.abandoned = true;
        }
        self.interrupt_active().await;
    }

    /// Fails every turn and control request still waiting.
    pub(super) fn fail_all(&mut self, err: impl Fn() -> Error) {
        if let Some(reply) = self.handshake.take_reply() {
            let _ = reply.send(Err(err()));
        }
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
        let closed = err().to_string();
        let unanswered: Vec<String> = self.sent.keys().cloned().collect();
        for id in unanswered {
            self.audit_answered(
                &id,
                Err(ControlOutcome::Error {
                    message: closed.clone(),
                }),
            );
        }
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Call { reply, .. } => drop(reply.send(Err(err()))),
                Pending::Ignore | Pending::McpCheck(_) => {}
            }
        }
        self.outbox.clear();
    }
}
