//! Routing on the actor: each stdout line to the active turn or the control protocol;
//! answers to our control requests; the CLI's requests answered by the user's callbacks
//! on their own tasks.

use std::{collections::BTreeMap, time::Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::oneshot;

use super::actor::{Actor, Handshake};
use super::{Delivery, State, Status};
use crate::audit::{self, AuditScope, ControlDirection, ControlOutcome};
use crate::error::{Error, Result};
use crate::protocol::{
    control_error_line, control_request_line, control_success_line, peek_type, ControlRequest,
    ControlResponse, Inbound, InitializeResponse, Message, OutboundRequest,
};
use crate::telemetry::{self, Direction};

/// A control request we sent and still wait for.
pub(super) enum Pending {
    Call {
        subtype: String,
        reply: oneshot::Sender<Result<Option<Value>>>,
    },
    /// Fire and forget (an interrupt the SDK sent on its own).
    Ignore,
    /// The one-time check that the CLI registered every in-process MCP tool.
    McpCheck(BTreeMap<String, Vec<String>>),
}

impl Actor {
    /// Routes one stdout line. `Err` only when the CLI can no longer be written to.
    pub(super) async fn on_line(&mut self, bytes: Bytes) -> Result<(), ()> {
        let inbound = match route(&bytes) {
            Routed::Skip => return Ok(()),
            Routed::Raw(tool_blocks) => {
                if let (Some(kind), true) = (tool_blocks, self.auditor.enabled()) {
                    if let Ok(text) = std::str::from_utf8(&bytes) {
                        self.audit_line(kind, text);
                    }
                }
                self.push(Delivery::Raw(bytes), false);
                return Ok(());
            }
            Routed::Parsed(inbound) => inbound,
        };
        match inbound {
            Inbound::Message(message) => self.on_message(message).await,
            Inbound::ControlResponse(response) => self.on_control_response(response).await,
            Inbound::ControlRequest(request) => return self.on_control_request(request).await,
            Inbound::ControlCancelRequest { request_id } => {
                tracing::debug!(request_id, "control request cancelled by the CLI");
                if let Some((handler, subtype, started)) = self.handlers.remove(&request_id) {
                    if !handler.is_finished() {
                        handler.abort();
                        self.audit_scope().control(
                            ControlDirection::Inbound,
                            &subtype,
                            &request_id,
                            Err(ControlOutcome::Cancelled),
                            started,
                        );
                    }
                }
            }
            Inbound::KeepAlive => {}
        }
        Ok(())
    }

    pub(super) async fn on_message(&mut self, message: Message) {
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
        if is_result {
            if let Some(kind) = self.t.limit_hit_now() {
                // Fail closed: a turn during which the CLI's cgroup went over a limit
                // (a tool's fork bomb or memory hog) never ends as a success, however
                // the watcher's round and the result line race.
                self.fail_active_turn(Error::ResourceLimit { kind }).await;
                return;
            }
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

    pub(super) async fn on_control_response(&mut self, response: ControlResponse) {
        if self.auditor.enabled() {
            let outcome = match &response.result {
                Ok(_) => Ok(()),
                Err(e) => Err(ControlOutcome::Error {
                    message: e.message.clone(),
                }),
            };
            self.audit_answered(&response.request_id, outcome);
        }
        if matches!(&self.handshake, Handshake::Waiting { id, .. } if *id == response.request_id) {
            self.on_initialize_response(response);
            return;
        }
        let Some(pending) = self.pending.remove(&response.request_id) else {
            tracing::debug!(
                request_id = response.request_id,
                "control response for an unknown request"
            );
            return;
        };
        match pending {
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

    /// Answers a request from the CLI on its own task, so a slow callback never blocks
    /// the session. Every request gets a reply, or the CLI would wait forever.
    /// The answer to our `initialize`: ready, or failed (told to `start`).
    fn on_initialize_response(&mut self, response: ControlResponse) {
        let Some(reply) = self.handshake.take_reply() else {
            return;
        };
        let result = match response.result {
            Ok(payload) => {
                serde_json::from_value::<InitializeResponse>(payload.unwrap_or(Value::Null))
                    .map_err(|e| Error::ControlRequest {
                        subtype: "initialize".into(),
                        message: format!("unreadable initialize response: {e}"),
                    })
            }
            Err(e) => Err(Error::ControlRequest {
                subtype: "initialize".into(),
                message: e.message,
            }),
        };
        match result {
            Ok(init) => {
                if reply.send(Ok(init)).is_ok() {
                    self.status.send_modify(|s| s.state = State::Ready);
                } else {
                    self.handshake = Handshake::Abandoned;
                }
            }
            Err(e) => self.handshake = Handshake::Failed((reply, e)),
        }
    }

    pub(super) async fn on_control_request(&mut self, request: ControlRequest) -> Result<(), ()> {
        let Some(writer) = self.t.writer() else {
            return Err(());
        };
        let callbacks = self.callbacks.clone();
        let timeout = self.callback_timeout;
        let id = request.request_id.clone();
        let subtype = request.request.subtype().to_owned();
        let span = telemetry::control_span(Direction::Inbound, &subtype, Some(&id));
        let scope = self.audit_scope();
        let received = Instant::now();
        let handler_subtype = subtype.clone();
        let answer = async move {
            let started = Instant::now();
            let answer = callbacks.answer(request.request, timeout, &scope).await;
            telemetry::control_done(Direction::Inbound, &subtype, started, answer.is_ok());
            scope.control(
                ControlDirection::Inbound,
                &subtype,
                &id,
                answer
                    .as_ref()
                    .map(drop)
                    .map_err(|m| ControlOutcome::Error { message: m.clone() }),
                started,
            );
            let _ = writer.send(answer_line(&id, answer).into()).await;
        };
        let task = tokio::spawn(tracing::Instrument::instrument(answer, span));
        self.handlers.retain(|_, (h, _, _)| !h.is_finished());
        self.handlers.insert(
            request.request_id,
            (task.abort_handle(), handler_subtype, received),
        );
        Ok(())
    }

    /// The session id and the running turn's context, for events raised now.
    pub(super) fn audit_scope(&self) -> AuditScope {
        if !self.auditor.enabled() {
            return AuditScope::default();
        }
        AuditScope {
            auditor: self.auditor.clone(),
            session_id: self.status.borrow().session_id.clone(),
            context: self.active.as_ref().and_then(|a| a.audit_context.clone()),
        }
    }

    /// Tool uses of an assistant line, tool results of a user line.
    fn audit_line(&self, kind: &str, text: &str) {
        let Some(redactor) = self.auditor.redactor() else {
            return;
        };
        let events = audit::from_stdout_line(kind, text, redactor);
        if events.is_empty() {
            return;
        }
        let scope = self.audit_scope();
        for event in events {
            scope.emit(|_| event);
        }
    }

    /// Notes a control request sent to the CLI, for the audit trail.
    pub(super) fn audit_sent(&mut self, id: &str, subtype: &str) {
        if self.auditor.enabled() {
            self.sent
                .insert(id.to_string(), (subtype.to_string(), Instant::now()));
        }
    }

    /// Records how a control request sent to the CLI ended.
    pub(super) fn audit_answered(&mut self, id: &str, outcome: Result<(), ControlOutcome>) {
        if let Some((subtype, started)) = self.sent.remove(id) {
            self.audit_scope()
                .control(ControlDirection::Outbound, &subtype, id, outcome, started);
        }
    }

    /// Sends the one-time `mcp_status` check of in-process MCP tools.
    pub(super) async fn send_mcp_check(&mut self) {
        let Some(expected) = self.mcp_check.take() else {
            return;
        };
        let id = self.request_id();
        let line = control_request_line(&id, &OutboundRequest::McpStatus);
        self.audit_sent(&id, "mcp_status");
        self.pending.insert(id, Pending::McpCheck(expected));
        let _ = self.t.send(line).await;
    }
}

/// What the actor does with one stdout line.
// Unboxed like `Inbound`: the parsed variant is the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Routed {
    /// Blank, not UTF-8, not JSON, no `type`, or unparseable: logged and skipped.
    Skip,
    /// An ordinary message for the consumer, handed over unparsed; the `type` read on
    /// the way when it may carry tool blocks (`assistant`, `user`), for the audit trail.
    Raw(Option<&'static str>),
    /// A line the actor acts on itself (control envelopes, `system`, `result`).
    Parsed(Inbound),
}

/// Decides what happens to one stdout line (pure: the actor's and the fuzz targets' one
/// entry to line parsing). Ordinary messages go to the consumer unparsed; only what the
/// actor itself acts on is parsed here.
pub(crate) fn route(bytes: &[u8]) -> Routed {
    let Ok(text) = std::str::from_utf8(bytes) else {
        tracing::warn!(len = bytes.len(), "skipped a stdout line that is not UTF-8");
        return Routed::Skip;
    };
    if text.trim().is_empty() {
        return Routed::Skip;
    }
    match peek_type(text).as_deref() {
        Some(
            "control_request"
            | "control_response"
            | "control_cancel_request"
            | "keep_alive"
            | "system"
            | "result",
        ) => {}
        Some("assistant") => return Routed::Raw(Some("assistant")),
        Some("user") => return Routed::Raw(Some("user")),
        Some(_) => return Routed::Raw(None),
        None => {
            tracing::debug!(line = %truncate(text, 200), "skipped a stdout line without a type");
            return Routed::Skip;
        }
    }
    match Inbound::parse(text) {
        Ok(inbound) => Routed::Parsed(inbound),
        Err(e) => {
            if text.trim_start().starts_with('{') {
                tracing::warn!(error = %e, len = text.len(), "skipped an unparseable stdout line");
            } else {
                tracing::debug!(line = %truncate(text, 200), "skipped a non-JSON stdout line");
            }
            Routed::Skip
        }
    }
}

/// The `control_response` line (with its newline) carrying a callback's answer to the
/// CLI request `id`.
pub(crate) fn answer_line(id: &str, answer: std::result::Result<Value, String>) -> String {
    match answer {
        Ok(payload) => control_success_line(id, payload),
        Err(message) => {
            tracing::debug!(
                request_id = id,
                error = message,
                "control request answered with an error"
            );
            control_error_line(id, &message)
        }
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
