//! Wire types of the CLI's stream-json protocol: every line the CLI writes to stdout
//! ([`Inbound`]: [`Message`]s and control envelopes), the lines the SDK writes to stdin
//! ([`UserInput`], [`OutboundRequest`] via [`control_request_line`], and the answers to
//! CLI requests via [`control_success_line`] / [`control_error_line`]). Processes,
//! routing and callbacks are left to the transport and session modules.
//!
//! Forward compatible by construction: unknown message types, `system` subtypes, content
//! block types and control subtypes land in an `Unknown` variant holding the raw JSON;
//! unknown fields land in each struct's `extra`; key order does not matter. Parsing a line
//! and serializing it again gives back the same JSON value, so nothing the CLI sends is
//! lost; the two envelopes that carry nothing to act on are the exception: a
//! `keep_alive` keeps no fields, a `control_cancel_request` only its `request_id`. Parsing is a single pass without `#[serde(flatten)]` or an intermediate `Value`.
//!
//! ```
//! use claude_code::protocol::{ContentBlock, Inbound, Message};
//!
//! let line = r#"{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"Hi"}]},"session_id":"s1"}"#;
//! let Inbound::Message(Message::Assistant(a)) = Inbound::parse(line)? else { panic!() };
//! assert!(matches!(&a.message.content[0], ContentBlock::Text(t) if t.text == "Hi"));
//! # Ok::<(), serde_json::Error>(())
//! ```

mod wire;

mod content;
mod control;
mod inbound;
mod input;
mod message;
mod system;

pub use content::{
    ContentBlock, DocumentBlock, ImageBlock, RedactedThinkingBlock, ServerToolUseBlock, TextBlock,
    ThinkingBlock, ToolResultBlock, ToolUseBlock, UserContent, WebSearchToolResultBlock,
};
pub use control::{
    control_error_line, control_request_line, control_success_line, AccountInfo, AgentInfo,
    CanUseToolRequest, ControlError, ControlRequest, ControlResponse, HookCallbackRequest,
    InboundRequest, InitializeRequest, InitializeResponse, McpMessageRequest, ModelInfo,
    OutboundRequest, SlashCommand, KEEP_ALIVE_LINE,
};
pub use inbound::{peek_type, Inbound};
pub use input::UserInput;
pub use message::{
    ApiMessage, AssistantMessage, Delta, Message, ModelUsage, PermissionDenial, RateLimitEvent,
    ResultMessage, StreamEvent, SystemMessage, ToolProgress, Usage, UserMessage, UserMessageBody,
};
pub use system::{InitInfo, McpServerInfo, SystemKind};

#[cfg(test)]
mod tests;
