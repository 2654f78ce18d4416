//! The assistant message the mock serves: blocks resolved to wire content (tool ids,
//! thinking signatures), ids, stop reason and usage, and its non-streaming JSON form.
//! The streaming form is `sse`'s job.

use serde_json::{json, Value};

use crate::reply::{Block, Usage};

/// Signature attached to every thinking block (the CLI does not verify it).
pub(crate) const FAKE_SIGNATURE: &str = "bW9jay1zaWduYXR1cmUtbm90LXZlcmlmaWVk";

/// Per-server counters for `msg_mock_N` and `toolu_mock_N`.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    messages: u64,
    tools: u64,
}

impl Ids {
    pub(crate) fn message(&mut self) -> String {
        self.messages += 1;
        format!("msg_mock_{}", self.messages)
    }

    pub(crate) fn tool(&mut self) -> String {
        self.tools += 1;
        format!("toolu_mock_{}", self.tools)
    }
}

/// One content block as served.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Content {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    Thinking(String),
}

impl Content {
    /// The complete block, as in a non-streaming reply.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Content::Text(text) => json!({"type": "text", "text": text}),
            Content::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            Content::Thinking(thinking) => {
                json!({"type": "thinking", "thinking": thinking, "signature": FAKE_SIGNATURE})
            }
        }
    }
}

/// A complete assistant message.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) content: Vec<Content>,
    pub(crate) stop_reason: &'static str,
    pub(crate) usage: Usage,
}

impl Message {
    /// Resolves `blocks` into a message; `stop_reason` is `tool_use` when a tool is
    /// called, else `end_turn`.
    pub(crate) fn new(ids: &mut Ids, model: &str, blocks: Vec<Block>, usage: Usage) -> Self {
        let content: Vec<Content> = blocks
            .into_iter()
            .map(|b| match b {
                Block::Text(t) => Content::Text(t),
                Block::Thinking(t) => Content::Thinking(t),
                Block::ToolUse { name, input } => Content::ToolUse {
                    id: ids.tool(),
                    name,
                    input,
                },
            })
            .collect();
        let stop_reason = if content.iter().any(|c| matches!(c, Content::ToolUse { .. })) {
            "tool_use"
        } else {
            "end_turn"
        };
        Message {
            id: ids.message(),
            model: model.to_string(),
            content,
            stop_reason,
            usage,
        }
    }

    /// The `usage` object of the complete message.
    pub(crate) fn usage_json(&self) -> Value {
        json!({
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        })
    }

    /// The message with `content` and `stop_reason` as given, for `message_start` and
    /// the JSON reply.
    fn envelope(&self, content: Vec<Value>, stop_reason: Option<&str>, usage: Value) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage,
        })
    }

    /// Non-streaming reply body.
    pub(crate) fn to_json(&self) -> Value {
        self.envelope(
            self.content.iter().map(Content::to_json).collect(),
            Some(self.stop_reason),
            self.usage_json(),
        )
    }

    /// The `message` of a `message_start` event: no content yet, no stop reason.
    pub(crate) fn start_json(&self) -> Value {
        self.envelope(
            Vec::new(),
            None,
            json!({
                "input_tokens": self.usage.input_tokens,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            }),
        )
    }
}

/// The API's JSON error body.
pub(crate) fn error_json(error_type: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_use_sets_stop_reason_and_numbers_ids() {
        let mut ids = Ids::default();
        let m = Message::new(
            &mut ids,
            "m",
            vec![Block::text("a"), Block::tool_use("Bash", json!({}))],
            Usage::DEFAULT,
        );
        assert_eq!(m.stop_reason, "tool_use");
        assert_eq!(m.id, "msg_mock_1");
        assert_eq!(m.to_json()["content"][1]["id"], "toolu_mock_1");
        let m = Message::new(&mut ids, "m", vec![Block::text("b")], Usage::DEFAULT);
        assert_eq!(m.stop_reason, "end_turn");
        assert_eq!(m.id, "msg_mock_2");
    }
}
