//! [`MessageStream`]: one turn's messages, and the adapters that reduce it.
//!
//! The stream yields every message of the turn in order and ends right after the
//! `result`. If the session ends first, the last item is the error saying why (exit
//! status and stderr tail for a dead CLI). Adapters consume the stream:
//! [`final_text`](MessageStream::final_text), [`collect`](MessageStream::collect),
//! [`until_result`](MessageStream::until_result), [`structured`](MessageStream::structured),
//! [`text_deltas`](MessageStream::text_deltas), [`content_deltas`](MessageStream::content_deltas),
//! [`tool_uses`](MessageStream::tool_uses). Routing messages to streams is `session`'s job.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::{Batch, Delivery, Session, Status};
use crate::error::{Error, Result};
use crate::protocol::{ContentBlock, Delta, Message, ResultMessage, Usage};

/// The messages of one turn, ending with its `result`. Implements
/// `Stream<Item = Result<Message>>`. Dropping it before the result interrupts the turn.
#[must_use = "a turn's stream does nothing unless polled; dropping it interrupts the turn"]
pub struct MessageStream {
    rx: mpsc::Receiver<Batch>,
    buffered: std::vec::IntoIter<Delivery>,
    status: watch::Receiver<Status>,
    done: bool,
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    /// For one-off queries: the session lives exactly as long as its stream.
    owner: Option<Session>,
    /// Sees every message as it is yielded (cost accounting by the supervisor).
    observer: Option<Observer>,
    /// Times the turn's tool calls (telemetry).
    tools: crate::telemetry::ToolTimer,
}

/// A callback that sees each message a stream yields.
pub(crate) type Observer = Box<dyn FnMut(&Message) + Send + Sync>;

impl std::fmt::Debug for MessageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl MessageStream {
    pub(crate) fn new(rx: mpsc::Receiver<Batch>, status: watch::Receiver<Status>) -> Self {
        MessageStream {
            rx,
            buffered: Vec::new().into_iter(),
            status,
            done: false,
            deadline: None,
            owner: None,
            observer: None,
            tools: crate::telemetry::ToolTimer::default(),
        }
    }

    /// Calls `observer` with each message before it is yielded (after any observer
    /// already set).
    pub(crate) fn observe(mut self, mut observer: Observer) -> Self {
        self.observer = Some(match self.observer.take() {
            None => observer,
            Some(mut first) => Box::new(move |m: &Message| {
                first(m);
                observer(m);
            }),
        });
        self
    }

    pub(crate) fn owning(mut self, session: Session) -> Self {
        self.owner = Some(session);
        self
    }

    /// Ends the stream with [`Error::Timeout`] if the result has not arrived within
    /// `timeout` from now (the turn is then interrupted).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Some((Box::pin(tokio::time::sleep(timeout)), timeout));
        self
    }

    /// Waits for the result and returns its final text. An error result (API error,
    /// max turns, budget) is [`Error::TurnFailed`].
    pub async fn final_text(self) -> Result<String> {
        let result = self.until_result().await?;
        Ok(result.result.unwrap_or_default())
    }

    /// Drains the turn and returns its `result` message, or [`Error::TurnFailed`] if the
    /// result reports an error.
    /// A line skipped for its length ([`Error::LineTooLong`]) is not fatal: it is
    /// passed over and the turn goes on.
    pub async fn until_result(mut self) -> Result<ResultMessage> {
        while let Some(item) = self.next().await {
            match item {
                Ok(Message::Result(result)) => return check(result),
                Ok(_) | Err(Error::LineTooLong { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::NoResult)
    }

    /// Collects the whole turn: text, tool calls paired with their results, thinking,
    /// the result with usage and cost, and every message in order.
    /// Lines skipped for their length are counted in [`TurnSummary::skipped_lines`].
    pub async fn collect(mut self) -> Result<TurnSummary> {
        let mut summary = TurnSummary::default();
        while let Some(item) = self.next().await {
            let message = match item {
                Ok(message) => message,
                Err(Error::LineTooLong { .. }) => {
                    summary.skipped_lines += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            summary.absorb(&message);
            let result = match &message {
                Message::Result(r) => Some(r.clone()),
                _ => None,
            };
            summary.messages.push(message);
            if let Some(result) = result {
                let result = check(result)?;
                summary.finish(result);
                return Ok(summary);
            }
        }
        Err(Error::NoResult)
    }

    /// The turn's text as it is generated: the text deltas of `stream_event`s when
    /// partial messages are on, else each assistant text block whole. Ends at the result;
    /// an error result is [`Error::TurnFailed`].
    pub fn text_deltas(self) -> impl Stream<Item = Result<String>> + Send {
        let mut partial = false;
        self.flat_map_ok(move |message| match message {
            Message::StreamEvent(event) => {
                partial = true;
                event.text_delta().map(str::to_string).into_iter().collect()
            }
            Message::Assistant(a) if !partial => a
                .message
                .content
                .into_iter()
                .filter_map(|b| match b {
                    ContentBlock::Text(t) => Some(t.text),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Every content delta in order (text, thinking, tool input JSON) from the
    /// `stream_event`s of [`Options::include_partial_messages`](crate::Options::include_partial_messages).
    pub fn content_deltas(self) -> impl Stream<Item = Result<ContentDelta>> + Send {
        self.flat_map_ok(|message| match message {
            Message::StreamEvent(event) => {
                let index = event.index().unwrap_or(0);
                match event.delta() {
                    Some(Delta::Text(t)) => vec![ContentDelta::Text {
                        index,
                        text: t.to_string(),
                    }],
                    Some(Delta::Thinking(t)) => {
                        vec![ContentDelta::Thinking {
                            index,
                            thinking: t.to_string(),
                        }]
                    }
                    Some(Delta::InputJson(j)) => {
                        vec![ContentDelta::ToolInput {
                            index,
                            partial_json: j.to_string(),
                        }]
                    }
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        })
    }

    /// Waits for the result and deserialises its structured output (see
    /// [`Options::json_schema`](crate::Options::json_schema)).
    pub async fn structured<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        structured_from(&self.until_result().await?)
    }

    /// The tool calls the model makes in this turn, as they arrive.
    pub fn tool_uses(self) -> impl Stream<Item = Result<ToolUse>> + Send {
        self.flat_map_ok(|message| match message {
            Message::Assistant(a) => a
                .message
                .content
                .into_iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolUse(t) => Some(ToolUse {
                        id: t.id,
                        name: t.name,
                        input: t.input,
                    }),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        })
    }

    /// Maps each message to zero or more items; errors (and an error result) pass through.
    fn flat_map_ok<T, F>(self, mut f: F) -> impl Stream<Item = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnMut(Message) -> Vec<T> + Send + 'static,
    {
        self.flat_map(move |item| {
            let items: Vec<Result<T>> = match item {
                // Not fatal, and nothing to show: the session logged it.
                Err(Error::LineTooLong { .. }) => Vec::new(),
                Err(e) => vec![Err(e)],
                Ok(Message::Result(r)) => match check(*r) {
                    Ok(_) => Vec::new(),
                    Err(e) => vec![Err(e)],
                },
                Ok(message) => f(message).into_iter().map(Ok).collect(),
            };
            futures::stream::iter(items)
        })
    }
}

/// Turns an error result into [`Error::TurnFailed`] (or [`Error::BudgetExceeded`] for a
/// credential proxy's budget refusal).
fn check(result: impl Into<Box<ResultMessage>>) -> Result<ResultMessage> {
    let result = *result.into();
    match Error::from_result(&result) {
        Some(e) => Err(e),
        None => Ok(result),
    }
}

impl Stream for MessageStream {
    type Item = Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some((sleep, after)) = &mut self.deadline {
            if sleep.as_mut().poll(cx).is_ready() {
                let after = *after;
                self.finish();
                return Poll::Ready(Some(Err(Error::Timeout {
                    what: "the turn's result",
                    after,
                })));
            }
        }
        loop {
            let delivery = match self.buffered.next() {
                Some(d) => d,
                None => match self.rx.poll_recv(cx) {
                    Poll::Ready(Some(batch)) => {
                        self.buffered = batch.into_iter();
                        continue;
                    }
                    Poll::Ready(None) => {
                        let err = self.status.borrow().closed_error();
                        self.finish();
                        return Poll::Ready(Some(Err(err)));
                    }
                    Poll::Pending => return Poll::Pending,
                },
            };
            let message = match delivery {
                Delivery::Message(m) => *m,
                Delivery::Raw(bytes) => match parse_raw(&bytes) {
                    Some(m) => m,
                    None => continue,
                },
                Delivery::Error(e) => {
                    if !matches!(e, Error::LineTooLong { .. }) {
                        self.finish();
                    }
                    return Poll::Ready(Some(Err(e)));
                }
            };
            self.tools.observe(&message);
            if let Some(observe) = &mut self.observer {
                observe(&message);
            }
            if matches!(message, Message::Result(_)) {
                self.finish();
            }
            return Poll::Ready(Some(Ok(message)));
        }
    }
}

/// Parses a line the session forwarded unparsed (already checked to be UTF-8 with a
/// `type`); a line that still fails is logged and skipped, as the session would.
fn parse_raw(bytes: &[u8]) -> Option<Message> {
    let text = std::str::from_utf8(bytes).ok()?;
    match Message::parse(text) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, len = text.len(), "skipped an unparseable stdout line");
            None
        }
    }
}

impl MessageStream {
    /// No more items: close the channel (the session sees the consumer leave) and
    /// release an owned session.
    fn finish(&mut self) {
        self.done = true;
        self.rx.close();
        self.buffered = Vec::new().into_iter();
        self.deadline = None;
        self.owner = None;
    }
}

/// One piece of a content block as the model generates it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ContentDelta {
    /// Text for the block at `index`.
    Text {
        /// The content block's index in the message.
        index: u64,
        /// The new text.
        text: String,
    },
    /// Thinking for the block at `index`.
    Thinking {
        /// The content block's index in the message.
        index: u64,
        /// The new thinking text.
        thinking: String,
    },
    /// A fragment of a tool call's input JSON for the block at `index`.
    ToolInput {
        /// The content block's index in the message.
        index: u64,
        /// The JSON fragment.
        partial_json: String,
    },
}

fn structured_from<T: serde::de::DeserializeOwned>(result: &ResultMessage) -> Result<T> {
    let value = result.structured_output.clone().ok_or_else(|| {
        Error::StructuredOutput(
            "the result carries no structured_output; set Options::json_schema".into(),
        )
    })?;
    serde_json::from_value(value).map_err(|e| Error::StructuredOutput(e.to_string()))
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolUse {
    /// The tool use id (`toolu_…`), which its result refers to.
    pub id: String,
    /// The tool's name (`Bash`, `Write`, `mcp__server__tool`, …).
    pub name: String,
    /// The input the model gave it.
    pub input: Value,
}

/// A tool call and, once the CLI ran it, its result.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolCall {
    /// The call.
    pub tool_use: ToolUse,
    /// The result's content (a string or content blocks), when it arrived.
    pub result: Option<Value>,
    /// Whether the result is an error (a failure or a permission denial).
    pub is_error: bool,
}

/// Everything one turn produced, from [`MessageStream::collect`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TurnSummary {
    /// The turn's final text (the result's text; else all assistant text joined).
    pub text: String,
    /// Tool calls in order, paired with their results.
    pub tool_calls: Vec<ToolCall>,
    /// Thinking blocks' text, in order.
    pub thinking: Vec<String>,
    /// The result message.
    pub result: Option<ResultMessage>,
    /// Every message of the turn, in order.
    pub messages: Vec<Message>,
    /// Stdout lines skipped because they exceeded
    /// [`Options::max_line_bytes`](crate::Options::max_line_bytes).
    pub skipped_lines: usize,
    assistant_text: Vec<String>,
}

impl TurnSummary {
    fn absorb(&mut self, message: &Message) {
        match message {
            Message::Assistant(a) if a.parent_tool_use_id.is_none() => {
                for block in &a.message.content {
                    match block {
                        ContentBlock::Text(t) => self.assistant_text.push(t.text.clone()),
                        ContentBlock::Thinking(t) => self.thinking.push(t.thinking.clone()),
                        ContentBlock::ToolUse(t) => self.tool_calls.push(ToolCall {
                            tool_use: ToolUse {
                                id: t.id.clone(),
                                name: t.name.clone(),
                                input: t.input.clone(),
                            },
                            result: None,
                            is_error: false,
                        }),
                        _ => {}
                    }
                }
            }
            Message::User(u) => {
                for block in u.message.blocks() {
                    if let ContentBlock::ToolResult(r) = block {
                        if let Some(call) = self
                            .tool_calls
                            .iter_mut()
                            .find(|c| c.tool_use.id == r.tool_use_id)
                        {
                            call.result = r.content.clone();
                            call.is_error = r.is_error.unwrap_or(false);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, result: ResultMessage) {
        self.text = match &result.result {
            Some(text) => text.clone(),
            None => self.assistant_text.join("\n"),
        };
        self.result = Some(result);
    }

    /// The structured output (with [`Options::json_schema`](crate::Options::json_schema)),
    /// deserialised into `T`.
    pub fn structured<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        match &self.result {
            Some(result) => structured_from(result),
            None => Err(Error::NoResult),
        }
    }

    /// The structured output as raw JSON, if any.
    pub fn structured_output(&self) -> Option<&Value> {
        self.result.as_ref()?.structured_output.as_ref()
    }

    /// The conversation id.
    pub fn session_id(&self) -> Option<&str> {
        self.result.as_ref()?.session_id.as_deref()
    }

    /// Token usage of this turn.
    pub fn usage(&self) -> Option<&Usage> {
        self.result.as_ref()?.usage.as_ref()
    }

    /// Cost in USD as the CLI reports it (cumulative over the CLI process).
    pub fn cost_usd(&self) -> Option<f64> {
        self.result.as_ref()?.total_cost_usd
    }

    /// Why the model stopped (`end_turn`, `tool_use`, `max_tokens`, …).
    pub fn stop_reason(&self) -> Option<&str> {
        self.result.as_ref()?.stop_reason.as_deref()
    }

    /// Model round-trips in this turn.
    pub fn num_turns(&self) -> Option<u32> {
        self.result.as_ref()?.num_turns
    }
}
