//! What a scripted turn answers: [`Reply`] (a whole model response, an API error or a
//! broken stream) and its content [`Block`]s, with their builders and their JSON form
//! for script files. Turning a reply into wire bytes is left to `message` and `sse`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One content block of a scripted model response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "BlockRepr", into = "BlockRepr")]
pub enum Block {
    /// A `text` block.
    Text(String),
    /// A `tool_use` block; its id (`toolu_mock_N`) is assigned when it is served.
    ToolUse {
        /// Tool name, e.g. `Bash`.
        name: String,
        /// Tool input object.
        input: Value,
    },
    /// A `thinking` block, served with a fake signature.
    Thinking(String),
}

impl Block {
    /// A `text` block.
    pub fn text(text: impl Into<String>) -> Self {
        Block::Text(text.into())
    }

    /// A `tool_use` block calling `name` with `input`.
    pub fn tool_use(name: impl Into<String>, input: Value) -> Self {
        Block::ToolUse {
            name: name.into(),
            input,
        }
    }

    /// A `thinking` block.
    pub fn thinking(text: impl Into<String>) -> Self {
        Block::Thinking(text.into())
    }
}

/// Script-file form of a block: `{"type":"text","text":..}`,
/// `{"type":"tool_use","name":..,"input":..}`, `{"type":"thinking","thinking":..}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockRepr {
    Text {
        text: String,
    },
    ToolUse {
        name: String,
        #[serde(default = "empty_object")]
        input: Value,
    },
    Thinking {
        thinking: String,
    },
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl From<BlockRepr> for Block {
    fn from(r: BlockRepr) -> Self {
        match r {
            BlockRepr::Text { text } => Block::Text(text),
            BlockRepr::ToolUse { name, input } => Block::ToolUse { name, input },
            BlockRepr::Thinking { thinking } => Block::Thinking(thinking),
        }
    }
}

impl From<Block> for BlockRepr {
    fn from(b: Block) -> Self {
        match b {
            Block::Text(text) => BlockRepr::Text { text },
            Block::ToolUse { name, input } => BlockRepr::ToolUse { name, input },
            Block::Thinking(thinking) => BlockRepr::Thinking { thinking },
        }
    }
}

/// The answer to one main agent-loop request: a complete model response, an API error,
/// or a stream that breaks.
///
/// Script-file form (JSON): `{"type":"message","blocks":[...]}`, `{"type":"echo"}`,
/// `{"type":"error","status":529,"error_type":"overloaded_error","message":"..",
/// "retry_after_secs":1}` or `{"type":"malformed_sse"}`, each optionally with
/// `"usage":{"input_tokens":..,"output_tokens":..}`, `"delay_ms"` and `"chunk_delay_ms"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct Reply {
    #[serde(flatten)]
    pub(crate) body: ReplyBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) delay_ms: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) chunk_delay_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What kind of answer a [`Reply`] is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ReplyBody {
    /// A model response made of these blocks.
    Message { blocks: Vec<Block> },
    /// A model response echoing the request's last user text, after `before` blocks.
    Echo {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        before: Vec<Block>,
    },
    /// An HTTP error with an API-style JSON body.
    Error {
        status: u16,
        error_type: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// A 200 event stream with an invalid `data:` line, then the end of the body.
    MalformedSse,
}

/// Token counts reported in a reply's `usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

impl Usage {
    /// Usage reported when a reply does not set its own.
    pub(crate) const DEFAULT: Usage = Usage {
        input_tokens: 10,
        output_tokens: 5,
    };
}

impl Reply {
    fn new(body: ReplyBody) -> Self {
        Reply {
            body,
            usage: None,
            delay_ms: 0,
            chunk_delay_ms: 0,
        }
    }

    /// One text block; `stop_reason` `end_turn`.
    pub fn text(t: impl Into<String>) -> Self {
        Self::blocks([Block::text(t)])
    }

    /// One `tool_use` block (id `toolu_mock_N`, numbered per server); `stop_reason`
    /// `tool_use`.
    pub fn tool_use(name: impl Into<String>, input: Value) -> Self {
        Self::blocks([Block::tool_use(name, input)])
    }

    /// Several blocks; `stop_reason` is `tool_use` if any block is a tool use, else
    /// `end_turn`.
    pub fn blocks(blocks: impl IntoIterator<Item = Block>) -> Self {
        Self::new(ReplyBody::Message {
            blocks: blocks.into_iter().collect(),
        })
    }

    /// Answers `"echo: "` followed by the request's last user text (see
    /// [`RecordedRequest::last_user_text`](crate::RecordedRequest::last_user_text)).
    pub fn echo() -> Self {
        Self::new(ReplyBody::Echo { before: Vec::new() })
    }

    /// An HTTP error `status` with the API's JSON error body
    /// `{"type":"error","error":{"type":error_type,"message":message}}`.
    pub fn error(status: u16, error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ReplyBody::Error {
            status,
            error_type: error_type.into(),
            message: message.into(),
            retry_after_secs: None,
        })
    }

    /// 401 `authentication_error`.
    pub fn unauthorized() -> Self {
        Self::error(401, "authentication_error", "invalid x-api-key")
    }

    /// 429 `rate_limit_error` with a `retry-after` header of `retry_after_secs`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(ReplyBody::Error {
            status: 429,
            error_type: "rate_limit_error".into(),
            message: "Number of requests has exceeded your rate limit".into(),
            retry_after_secs: Some(retry_after_secs),
        })
    }

    /// 529 `overloaded_error`.
    pub fn overloaded() -> Self {
        Self::error(529, "overloaded_error", "Overloaded")
    }

    /// 500 `api_error`.
    pub fn server_error() -> Self {
        Self::error(500, "api_error", "Internal server error")
    }

    /// A 200 `text/event-stream` that starts a text block, then sends a `data:` line of
    /// invalid JSON and ends the body.
    pub fn malformed_sse() -> Self {
        Self::new(ReplyBody::MalformedSse)
    }

    /// Waits `d` before sending the response headers.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay_ms = millis(d);
        self
    }

    /// Waits `d` between server-sent events (streaming requests only).
    pub fn chunk_delay(mut self, d: Duration) -> Self {
        self.chunk_delay_ms = millis(d);
        self
    }

    /// Puts a thinking block (with a fake signature) before the current blocks.
    /// No effect on error and malformed-stream replies.
    pub fn thinking(mut self, text: impl Into<String>) -> Self {
        match &mut self.body {
            ReplyBody::Message { blocks } | ReplyBody::Echo { before: blocks } => {
                blocks.insert(0, Block::thinking(text));
            }
            ReplyBody::Error { .. } | ReplyBody::MalformedSse => {}
        }
        self
    }

    /// Reports these token counts (default: 10 input, 5 output).
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some(Usage {
            input_tokens,
            output_tokens,
        });
        self
    }

    pub(crate) fn delay_duration(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }

    pub(crate) fn chunk_delay_duration(&self) -> Duration {
        Duration::from_millis(self.chunk_delay_ms)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reply_round_trips_through_json() {
        let r = Reply::blocks([
            Block::text("a"),
            Block::tool_use("Bash", json!({"command": "ls"})),
        ])
        .thinking("hmm")
        .usage(3, 4)
        .delay(Duration::from_millis(7))
        .chunk_delay(Duration::from_millis(2));
        let s = serde_json::to_string(&r).expect("serialize");
        let back: Reply = serde_json::from_str(&s).expect("deserialize");
        assert_eq!(back, r);
        assert_eq!(
            serde_json::to_value(&r).expect("value")["blocks"][0],
            json!({"type": "thinking", "thinking": "hmm"})
        );
    }

    #[test]
    fn error_reply_parses_from_script_json() {
        let r: Reply = serde_json::from_str(
            r#"{"type":"error","status":429,"error_type":"rate_limit_error","message":"slow down","retry_after_secs":2}"#,
        )
        .expect("parse");
        assert_eq!(
            r.body,
            ReplyBody::Error {
                status: 429,
                error_type: "rate_limit_error".into(),
                message: "slow down".into(),
                retry_after_secs: Some(2)
            }
        );
    }
}
