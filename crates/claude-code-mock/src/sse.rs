//! Server-sent-event framing of a [`Message`] the way the Messages API streams it:
//! `message_start`, `ping`, per block `content_block_start` / deltas /
//! `content_block_stop`, then `message_delta` and `message_stop`. Pacing the events
//! (chunk delays) is the server's job.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::message::{Content, Message, FAKE_SIGNATURE};

/// Most characters in one text, thinking or JSON delta.
const MAX_CHUNK_CHARS: usize = 32;
/// Deltas a short string is split into (so even short texts arrive in pieces).
const TARGET_CHUNKS: usize = 4;

/// One `event:` / `data:` frame.
fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// Splits `s` on char boundaries into a few pieces of at most [`MAX_CHUNK_CHARS`].
fn chunks(s: &str) -> Vec<&str> {
    let n = s.chars().count();
    if n == 0 {
        return Vec::new();
    }
    let size = n.div_ceil(TARGET_CHUNKS).clamp(1, MAX_CHUNK_CHARS);
    let mut out = Vec::with_capacity(n.div_ceil(size));
    let mut start = 0;
    let mut count = 0;
    for (i, _) in s.char_indices() {
        if count == size {
            out.push(&s[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    out.push(&s[start..]);
    out
}

fn block_start(index: usize, block: Value) -> Bytes {
    event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

fn block_delta(index: usize, delta: Value) -> Bytes {
    event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn block_stop(index: usize) -> Bytes {
    event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}

fn message_start(msg: &Message) -> [Bytes; 2] {
    [
        event(
            "message_start",
            &json!({"type": "message_start", "message": msg.start_json()}),
        ),
        event("ping", &json!({"type": "ping"})),
    ]
}

/// All frames of a streamed message, in order.
pub(crate) fn message_events(msg: &Message) -> Vec<Bytes> {
    let mut out: Vec<Bytes> = message_start(msg).into();
    for (index, content) in msg.content.iter().enumerate() {
        match content {
            Content::Text(text) => {
                out.push(block_start(index, json!({"type": "text", "text": ""})));
                for piece in chunks(text) {
                    out.push(block_delta(
                        index,
                        json!({"type": "text_delta", "text": piece}),
                    ));
                }
            }
            Content::ToolUse { id, name, input } => {
                out.push(block_start(
                    index,
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                ));
                out.push(block_delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": ""}),
                ));
                let input = input.to_string();
                for piece in chunks(&input) {
                    out.push(block_delta(
                        index,
                        json!({"type": "input_json_delta", "partial_json": piece}),
                    ));
                }
            }
            Content::Thinking(thinking) => {
                out.push(block_start(
                    index,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                ));
                for piece in chunks(thinking) {
                    out.push(block_delta(
                        index,
                        json!({"type": "thinking_delta", "thinking": piece}),
                    ));
                }
                out.push(block_delta(
                    index,
                    json!({"type": "signature_delta", "signature": FAKE_SIGNATURE}),
                ));
            }
        }
        out.push(block_stop(index));
    }
    out.push(event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": msg.stop_reason, "stop_sequence": null},
            "usage": msg.usage_json(),
        }),
    ));
    out.push(event("message_stop", &json!({"type": "message_stop"})));
    out
}

/// A stream that starts a text block, then sends a `data:` line of invalid JSON.
pub(crate) fn malformed_events(msg: &Message) -> Vec<Bytes> {
    let mut out: Vec<Bytes> = message_start(msg).into();
    out.push(block_start(0, json!({"type": "text", "text": ""})));
    out.push(block_delta(
        0,
        json!({"type": "text_delta", "text": "this stream breaks"}),
    ));
    out.push(Bytes::from_static(
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"unterminated\n\n",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_on_char_boundaries_and_rejoin() {
        let s = "héllo wörld, this is a longer text that needs more than four chunks ✓";
        let parts = chunks(s);
        assert!(parts.len() >= TARGET_CHUNKS);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_CHUNK_CHARS));
        assert_eq!(parts.concat(), s);
        assert_eq!(chunks("ab"), vec!["a", "b"]);
        assert!(chunks("").is_empty());
    }
}
