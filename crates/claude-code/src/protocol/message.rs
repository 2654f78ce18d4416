//! The messages the CLI writes to stdout outside the control protocol: `system`,
//! `assistant`, `user`, `result`, `stream_event`, `rate_limit_event`, `tool_progress`, and
//! [`Message::Unknown`] for anything newer. Content blocks live in `content.rs`, the typed
//! views of `system` subtypes in `system.rs`, control messages in `control.rs`.

use std::collections::BTreeMap;

use serde::de::MapAccess;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::content::{ContentBlock, ToolUseBlock, UserContent};
use super::wire::{finish, parse_tagged, whole_object, wire_struct, Prefix, Tagged, TaggedVisitor};

wire_struct! {
    /// A `system` message. The fields of each subtype stay in `extra`; [`SystemMessage::kind`]
    /// gives a typed view of the known subtypes.
    pub struct SystemMessage : "type" = "system", always = true {
        /// `init`, `status`, `compact_boundary`, `api_retry`, `hook_started`, …
        def "subtype" subtype: String,
        /// The conversation id.
        opt "session_id" session_id: Option<String>,
        /// This message's id.
        opt "uuid" uuid: Option<String>,
    }
}

wire_struct! {
    /// Token usage as the Messages API reports it.
    pub struct Usage {
        /// Input tokens not read from or written to the cache.
        def "input_tokens" input_tokens: u64,
        /// Output tokens.
        def "output_tokens" output_tokens: u64,
        /// Input tokens written to the cache.
        opt "cache_creation_input_tokens" cache_creation_input_tokens: Option<u64>,
        /// Input tokens read from the cache.
        opt "cache_read_input_tokens" cache_read_input_tokens: Option<u64>,
    }
}

impl Usage {
    /// All input tokens: uncached, cache writes and cache reads.
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
    }
}

wire_struct! {
    /// A Messages API message (the `message` of an `assistant` line).
    pub struct ApiMessage : "type" = "message", always = false {
        /// The API message id (`msg_…`).
        opt "id" id: Option<String>,
        /// The model that wrote it.
        opt "model" model: Option<String>,
        /// `assistant`.
        opt "role" role: Option<String>,
        /// The content blocks.
        def "content" content: Vec<ContentBlock>,
        /// Why generation stopped. The CLI writes `null` here; the turn's real stop
        /// reason is in the `result` (or the `message_delta` stream event).
        opt "stop_reason" stop_reason: Option<String>,
        /// The stop sequence that ended generation.
        opt "stop_sequence" stop_sequence: Option<String>,
        /// Token usage.
        opt "usage" usage: Option<Usage>,
        /// Context management details.
        opt "context_management" context_management: Option<Value>,
    }
}

impl ApiMessage {
    /// The text blocks joined with newlines.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(ContentBlock::as_text)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `tool_use` blocks.
    pub fn tool_uses(&self) -> impl Iterator<Item = &ToolUseBlock> {
        self.content.iter().filter_map(ContentBlock::as_tool_use)
    }
}

wire_struct! {
    /// An `assistant` message: one complete Messages API response (or a part of one, when
    /// the model interleaves tool calls).
    pub struct AssistantMessage : "type" = "assistant", always = true {
        /// The API message.
        def "message" message: ApiMessage,
        /// Set when the message comes from a subagent: the id of the `Task` tool use.
        opt "parent_tool_use_id" parent_tool_use_id: Option<String>,
        /// The conversation id.
        opt "session_id" session_id: Option<String>,
        /// This message's id.
        opt "uuid" uuid: Option<String>,
        /// An error kind (`authentication_failed`, `rate_limit`, `max_output_tokens`, …).
        opt "error" error: Option<String>,
        /// When the CLI wrote it (ISO 8601; CLI ≥ 2.1.332).
        opt "timestamp" timestamp: Option<String>,
    }
}

wire_struct! {
    /// The `message` of a `user` line.
    pub struct UserMessageBody {
        /// `user`.
        opt "role" role: Option<String>,
        /// A string or content blocks (`tool_result`, `text`, `image`, …).
        def "content" content: UserContent,
    }
}

impl UserMessageBody {
    /// The content blocks (empty for string content).
    pub fn blocks(&self) -> &[ContentBlock] {
        self.content.blocks()
    }
}

wire_struct! {
    /// A `user` message: tool results, replayed input, or a user turn echoed back.
    pub struct UserMessage : "type" = "user", always = true {
        /// The message.
        def "message" message: UserMessageBody,
        /// Set when the message belongs to a subagent.
        opt "parent_tool_use_id" parent_tool_use_id: Option<String>,
        /// The conversation id.
        opt "session_id" session_id: Option<String>,
        /// This message's id.
        opt "uuid" uuid: Option<String>,
        /// When the CLI wrote it (ISO 8601).
        opt "timestamp" timestamp: Option<String>,
        /// The tool's structured output (e.g. Bash `{stdout, stderr, …}`; a string for a denial).
        opt "tool_use_result" tool_use_result: Option<Value>,
        /// A replay of local input (e.g. `set_model`'s confirmation), not a model turn
        /// (wire `isReplay`).
        def "isReplay" is_replay: bool,
        /// Synthesized by the CLI rather than typed by a user (wire `isSynthetic`).
        def "isSynthetic" is_synthetic: bool,
    }
}

wire_struct! {
    /// Per-model usage in a `result` (wire keys are camelCase).
    pub struct ModelUsage {
        /// Input tokens (wire `inputTokens`).
        def "inputTokens" input_tokens: u64,
        /// Output tokens (wire `outputTokens`).
        def "outputTokens" output_tokens: u64,
        /// Cache reads (wire `cacheReadInputTokens`).
        def "cacheReadInputTokens" cache_read_input_tokens: u64,
        /// Cache writes (wire `cacheCreationInputTokens`).
        def "cacheCreationInputTokens" cache_creation_input_tokens: u64,
        /// Web searches (wire `webSearchRequests`).
        def "webSearchRequests" web_search_requests: u64,
        /// Cost in USD (wire `costUSD`).
        def "costUSD" cost_usd: f64,
        /// The model's context window (wire `contextWindow`).
        opt "contextWindow" context_window: Option<u64>,
        /// The model's output limit (wire `maxOutputTokens`).
        opt "maxOutputTokens" max_output_tokens: Option<u64>,
        /// Thinking tokens (wire `thinkingTokens`; CLI ≥ 2.1.332).
        opt "thinkingTokens" thinking_tokens: Option<u64>,
        /// 5-minute cache writes (wire `cacheCreationEphemeral5mInputTokens`; CLI ≥ 2.1.332).
        opt "cacheCreationEphemeral5mInputTokens" cache_creation_ephemeral_5m_input_tokens: Option<u64>,
        /// 1-hour cache writes (wire `cacheCreationEphemeral1hInputTokens`; CLI ≥ 2.1.332).
        opt "cacheCreationEphemeral1hInputTokens" cache_creation_ephemeral_1h_input_tokens: Option<u64>,
        /// The canonical model id (wire `canonicalModel`; CLI ≥ 2.1.332).
        opt "canonicalModel" canonical_model: Option<String>,
        /// `firstParty`, `bedrock`, … (CLI ≥ 2.1.332).
        opt "provider" provider: Option<String>,
        /// How the cost was computed, e.g. `list` (wire `costBasis`; CLI ≥ 2.1.332).
        opt "costBasis" cost_basis: Option<String>,
    }
}

wire_struct! {
    /// A tool call that was denied during the turn.
    pub struct PermissionDenial {
        /// The tool.
        def "tool_name" tool_name: String,
        /// The tool use id.
        def "tool_use_id" tool_use_id: String,
        /// The input the model gave.
        opt "tool_input" tool_input: Option<Value>,
    }
}

wire_struct! {
    /// A `result` message: the end of a turn.
    pub struct ResultMessage : "type" = "result", always = true {
        /// `success`, `error_during_execution`, `error_max_turns`, `error_max_budget_usd`, …
        def "subtype" subtype: String,
        /// Whether the turn failed. Can be `true` with subtype `success` (an API error;
        /// the text is in `result`).
        def "is_error" is_error: bool,
        /// The final assistant text (success subtype).
        opt "result" result: Option<String>,
        /// Error messages (error subtypes).
        def "errors" errors: Vec<String>,
        /// Wall time of the turn in milliseconds.
        opt "duration_ms" duration_ms: Option<u64>,
        /// Time spent waiting for the API in milliseconds.
        opt "duration_api_ms" duration_api_ms: Option<u64>,
        /// Model round-trips in this turn.
        opt "num_turns" num_turns: Option<u32>,
        /// The conversation id.
        opt "session_id" session_id: Option<String>,
        /// This message's id.
        opt "uuid" uuid: Option<String>,
        /// Why the model stopped (`end_turn`, `max_tokens`, …).
        opt "stop_reason" stop_reason: Option<String>,
        /// Cost in USD, cumulative over the CLI process (not per turn).
        opt "total_cost_usd" total_cost_usd: Option<f64>,
        /// Token usage of this turn.
        opt "usage" usage: Option<Usage>,
        /// Usage per model, cumulative over the process (wire `modelUsage`).
        def "modelUsage" model_usage: BTreeMap<String, ModelUsage>,
        /// Usage per model for this turn only (CLI ≥ 2.1.332).
        opt "model_usage_since_last_result" model_usage_since_last_result: Option<BTreeMap<String, ModelUsage>>,
        /// 0 for the process's first result, then 1, 2, … (CLI ≥ 2.1.332).
        opt "result_index" result_index: Option<u64>,
        /// Tool calls denied during the turn.
        def "permission_denials" permission_denials: Vec<PermissionDenial>,
        /// The structured output (with `--json-schema`).
        opt "structured_output" structured_output: Option<Value>,
        /// Why the turn ended (`completed`, `max_turns`, `aborted_streaming`, …).
        opt "terminal_reason" terminal_reason: Option<String>,
        /// The HTTP status of a failed API call.
        opt "api_error_status" api_error_status: Option<u16>,
    }
}

impl ResultMessage {
    /// Subtype `success` and not `is_error`.
    pub fn is_success(&self) -> bool {
        self.subtype == "success" && !self.is_error
    }
}

wire_struct! {
    /// A `stream_event`: one raw Messages API stream event (with `--include-partial-messages`).
    pub struct StreamEvent : "type" = "stream_event", always = true {
        /// The event (`message_start`, `content_block_delta`, `message_stop`, …).
        def "event" event: Value,
        /// Set when the event belongs to a subagent.
        opt "parent_tool_use_id" parent_tool_use_id: Option<String>,
        /// The conversation id.
        opt "session_id" session_id: Option<String>,
        /// This message's id.
        opt "uuid" uuid: Option<String>,
        /// The API message the event belongs to (CLI ≥ 2.1.332).
        opt "api_message_id" api_message_id: Option<String>,
    }
}

/// The payload of a `content_block_delta` stream event.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Delta<'a> {
    /// `text_delta`: more text.
    Text(&'a str),
    /// `thinking_delta`: more thinking.
    Thinking(&'a str),
    /// `input_json_delta`: a fragment of a tool input's JSON.
    InputJson(&'a str),
    /// `signature_delta`: a thinking block's signature.
    Signature(&'a str),
    /// Any other delta, raw.
    Other(&'a Value),
}

impl StreamEvent {
    /// The event's `type` (`message_start`, `content_block_delta`, …).
    pub fn event_type(&self) -> Option<&str> {
        self.event.get("type")?.as_str()
    }

    /// The content block index of `content_block_*` events.
    pub fn index(&self) -> Option<u64> {
        self.event.get("index")?.as_u64()
    }

    /// The delta of a `content_block_delta` event.
    pub fn delta(&self) -> Option<Delta<'_>> {
        if self.event_type()? != "content_block_delta" {
            return None;
        }
        let delta = self.event.get("delta")?;
        let field = |k: &str| delta.get(k).and_then(Value::as_str);
        Some(match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => field("text").map_or(Delta::Other(delta), Delta::Text),
            Some("thinking_delta") => {
                field("thinking").map_or(Delta::Other(delta), Delta::Thinking)
            }
            Some("input_json_delta") => {
                field("partial_json").map_or(Delta::Other(delta), Delta::InputJson)
            }
            Some("signature_delta") => {
                field("signature").map_or(Delta::Other(delta), Delta::Signature)
            }
            _ => Delta::Other(delta),
        })
    }

    /// The text of a `text_delta`.
    pub fn text_delta(&self) -> Option<&str> {
        match self.delta()? {
            Delta::Text(t) => Some(t),
            _ => None,
        }
    }
}

wire_struct! {
    /// A `rate_limit_event` (informational).
    pub struct RateLimitEvent : "type" = "rate_limit_event", always = true {
        /// `{status, resetsAt, rateLimitType, utilization, …}`.
        def "rate_limit_info" rate_limit_info: Value,
        /// The conversation id.
        opt "session_id" session_id: Option<String>,
        /// This message's id.
        opt "uuid" uuid: Option<String>,
    }
}

wire_struct! {
    /// A `tool_progress` message: a long-running tool is still running.
    pub struct ToolProgress : "type" = "tool_progress", always = true {
        /// The tool use id.
        def "tool_use_id" tool_use_id: String,
        /// The tool.
        def "tool_name" tool_name: String,
        /// Seconds since the tool started.
        opt "elapsed_time_seconds" elapsed_time_seconds: Option<f64>,
        /// Set when the tool runs inside a subagent.
        opt "parent_tool_use_id" parent_tool_use_id: Option<String>,
        /// The background task running the tool, if any.
        opt "task_id" task_id: Option<String>,
        /// The conversation id.
        opt "session_id" session_id: Option<String>,
        /// This message's id.
        opt "uuid" uuid: Option<String>,
    }
}

/// One non-control message from the CLI's stdout.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// `system` (init, status, hooks, tasks, …).
    System(SystemMessage),
    /// `assistant`: model output.
    Assistant(AssistantMessage),
    /// `user`: tool results and replays.
    User(UserMessage),
    /// `result`: the end of a turn (boxed: it is much larger than the others).
    Result(Box<ResultMessage>),
    /// `stream_event`: a partial-message stream event.
    StreamEvent(StreamEvent),
    /// `rate_limit_event`.
    RateLimitEvent(RateLimitEvent),
    /// `tool_progress`.
    ToolProgress(ToolProgress),
    /// Any other type, as received (a newer CLI's message, or an object without `type`).
    Unknown(Value),
}

impl Message {
    /// The conversation id, when the message carries one.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Message::System(m) => m.session_id.as_deref(),
            Message::Assistant(m) => m.session_id.as_deref(),
            Message::User(m) => m.session_id.as_deref(),
            Message::Result(m) => m.session_id.as_deref(),
            Message::StreamEvent(m) => m.session_id.as_deref(),
            Message::RateLimitEvent(m) => m.session_id.as_deref(),
            Message::ToolProgress(m) => m.session_id.as_deref(),
            Message::Unknown(v) => v.get("session_id").and_then(Value::as_str),
        }
    }

    /// The message's id, when it carries one.
    pub fn uuid(&self) -> Option<&str> {
        match self {
            Message::System(m) => m.uuid.as_deref(),
            Message::Assistant(m) => m.uuid.as_deref(),
            Message::User(m) => m.uuid.as_deref(),
            Message::Result(m) => m.uuid.as_deref(),
            Message::StreamEvent(m) => m.uuid.as_deref(),
            Message::RateLimitEvent(m) => m.uuid.as_deref(),
            Message::ToolProgress(m) => m.uuid.as_deref(),
            Message::Unknown(v) => v.get("uuid").and_then(Value::as_str),
        }
    }

    /// The wire `type` (`system`, `assistant`, …; for unknown messages, whatever it says).
    pub fn type_name(&self) -> &str {
        match self {
            Message::System(_) => "system",
            Message::Assistant(_) => "assistant",
            Message::User(_) => "user",
            Message::Result(_) => "result",
            Message::StreamEvent(_) => "stream_event",
            Message::RateLimitEvent(_) => "rate_limit_event",
            Message::ToolProgress(_) => "tool_progress",
            Message::Unknown(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// Parses one line holding a message (control messages become [`Message::Unknown`];
    /// use [`Inbound::parse`](super::Inbound::parse) for stdout lines).
    pub fn parse(line: &str) -> Result<Message, serde_json::Error> {
        parse_tagged(line)
    }
}

impl Tagged for Message {
    const TAG_KEY: &'static str = "type";

    fn dispatch<'de, A: MapAccess<'de>>(
        tag: &str,
        prefix: Prefix,
        map: A,
    ) -> Result<Self, A::Error> {
        Ok(match tag {
            "assistant" => Message::Assistant(finish(prefix, map)?),
            "stream_event" => Message::StreamEvent(finish(prefix, map)?),
            "user" => Message::User(finish(prefix, map)?),
            "system" => Message::System(finish(prefix, map)?),
            "result" => Message::Result(Box::new(finish(prefix, map)?)),
            "rate_limit_event" => Message::RateLimitEvent(finish(prefix, map)?),
            "tool_progress" => Message::ToolProgress(finish(prefix, map)?),
            _ => Message::Unknown(Value::Object(whole_object(
                Self::TAG_KEY,
                tag,
                prefix,
                map,
            )?)),
        })
    }

    fn untagged(object: Map<String, Value>) -> Self {
        Message::Unknown(Value::Object(object))
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TaggedVisitor::<Self>::new("a stream-json message object"))
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Message::System(m) => m.serialize(s),
            Message::Assistant(m) => m.serialize(s),
            Message::User(m) => m.serialize(s),
            Message::Result(m) => m.serialize(s),
            Message::StreamEvent(m) => m.serialize(s),
            Message::RateLimitEvent(m) => m.serialize(s),
            Message::ToolProgress(m) => m.serialize(s),
            Message::Unknown(v) => v.serialize(s),
        }
    }
}
