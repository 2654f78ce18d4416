//! Reading token usage out of responses as they stream past, without holding them: SSE
//! bodies are scanned line by line (only the current, unfinished line is kept, and only
//! up to [`MAX_LINE`]); JSON bodies are copied up to [`MAX_JSON`] and read at their end.

use serde_json::Value;

use crate::cost::TokenUsage;

/// What the proxy saw for one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyUsage {
    /// Requests forwarded upstream.
    pub requests: u64,
    /// Requests refused (budget or rate) without being forwarded.
    pub refused: u64,
    /// Tokens reported in the responses (input, output, cache writes and reads).
    pub tokens: TokenUsage,
}

/// Longest SSE line examined; a longer one (a big content delta) carries no usage and
/// is skipped.
const MAX_LINE: usize = 64 * 1024;
/// Largest JSON body examined for its `usage`.
const MAX_JSON: usize = 1024 * 1024;

pub(crate) fn add(to: &mut TokenUsage, t: &TokenUsage) {
    to.input_tokens = to.input_tokens.saturating_add(t.input_tokens);
    to.output_tokens = to.output_tokens.saturating_add(t.output_tokens);
    to.cache_creation_input_tokens = to
        .cache_creation_input_tokens
        .saturating_add(t.cache_creation_input_tokens);
    to.cache_read_input_tokens = to
        .cache_read_input_tokens
        .saturating_add(t.cache_read_input_tokens);
}

/// How a response body is read.
#[derive(Debug)]
enum Mode {
    /// `text/event-stream`.
    Sse {
        line: Vec<u8>,
        /// The current line went over [`MAX_LINE`]: skip to its end.
        skipping: bool,
        /// Usage of the message so far (SSE usage figures are cumulative per message).
        message: TokenUsage,
    },
    /// `application/json`.
    Json { body: Vec<u8>, whole: bool },
    /// Anything else.
    Off,
}

/// Scans one response body. [`UsageScanner::feed`] returns the tokens to add to the
/// session's totals as soon as they are known.
#[derive(Debug)]
pub(crate) struct UsageScanner {
    mode: Mode,
}

impl UsageScanner {
    /// A scanner for a response with this `content-type`.
    pub(crate) fn new(content_type: Option<&str>) -> Self {
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        let mode = if ct.starts_with("text/event-stream") {
            Mode::Sse {
                line: Vec::new(),
                skipping: false,
                message: TokenUsage::default(),
            }
        } else if ct.starts_with("application/json") {
            Mode::Json {
                body: Vec::new(),
                whole: true,
            }
        } else {
            Mode::Off
        };
        UsageScanner { mode }
    }

    /// Reads a chunk; returns the tokens it added.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> TokenUsage {
        let mut added = TokenUsage::default();
        match &mut self.mode {
            Mode::Sse {
                line,
                skipping,
                message,
            } => {
                let mut rest = chunk;
                while let Some(i) = memchr::memchr(b'\n', rest) {
                    if !*skipping && line.len() + i <= MAX_LINE {
                        line.extend_from_slice(&rest[..i]);
                        sse_line(line, message, &mut added);
                    }
                    line.clear();
                    *skipping = false;
                    rest = &rest[i + 1..];
                }
                if !*skipping {
                    if line.len() + rest.len() > MAX_LINE {
                        line.clear();
                        *skipping = true;
                    } else {
                        line.extend_from_slice(rest);
                    }
                }
            }
            Mode::Json { body, whole } => {
                if *whole && body.len() + chunk.len() <= MAX_JSON {
                    body.extend_from_slice(chunk);
                } else {
                    *whole = false;
                    body.clear();
                }
            }
            Mode::Off => {}
        }
        added
    }

    /// The body ended; returns what it still adds (a JSON body's usage).
    pub(crate) fn finish(&mut self) -> TokenUsage {
        match std::mem::replace(&mut self.mode, Mode::Off) {
            Mode::Json { body, whole: true } => serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("usage").map(read_usage))
                .unwrap_or_default(),
            _ => TokenUsage::default(),
        }
    }
}

/// One SSE line: a `data:` line of a `message_start` or `message_delta` event updates
/// the message's usage; what grew is added.
fn sse_line(line: &[u8], message: &mut TokenUsage, added: &mut TokenUsage) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(data) = line.strip_prefix(b"data:") else {
        return;
    };
    if memchr::memmem::find(data, b"\"usage\"").is_none() {
        return;
    }
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let usage = match event.get("type").and_then(Value::as_str) {
        Some("message_start") => {
            *message = TokenUsage::default();
            event.get("message").and_then(|m| m.get("usage"))
        }
        Some("message_delta") => event.get("usage"),
        _ => None,
    };
    let Some(usage) = usage else { return };
    // Figures are cumulative within a message: take each one that is present, and add
    // the growth.
    let new = read_usage(usage);
    let grow = |now: &mut u64, field: &str, v: u64| {
        if usage.get(field).and_then(Value::as_u64).is_some() && v > *now {
            let d = v - *now;
            *now = v;
            d
        } else {
            0
        }
    };
    added.input_tokens += grow(&mut message.input_tokens, "input_tokens", new.input_tokens);
    added.output_tokens += grow(
        &mut message.output_tokens,
        "output_tokens",
        new.output_tokens,
    );
    added.cache_creation_input_tokens += grow(
        &mut message.cache_creation_input_tokens,
        "cache_creation_input_tokens",
        new.cache_creation_input_tokens,
    );
    added.cache_read_input_tokens += grow(
        &mut message.cache_read_input_tokens,
        "cache_read_input_tokens",
        new.cache_read_input_tokens,
    );
}

fn read_usage(usage: &Value) -> TokenUsage {
    let n = |field: &str| usage.get(field).and_then(Value::as_u64).unwrap_or(0);
    TokenUsage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cache_creation_input_tokens: n("cache_creation_input_tokens"),
        cache_read_input_tokens: n("cache_read_input_tokens"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\r\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\\"usage\\\" is not here\"}}\n\
\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\
\n";

    fn total(scanner: &mut UsageScanner, chunks: &[&[u8]]) -> TokenUsage {
        let mut t = TokenUsage::default();
        for c in chunks {
            add(&mut t, &scanner.feed(c));
        }
        add(&mut t, &scanner.finish());
        t
    }

    fn expected() -> TokenUsage {
        TokenUsage {
            input_tokens: 12,
            output_tokens: 7,
            cache_creation_input_tokens: 3,
            cache_read_input_tokens: 4,
        }
    }

    #[test]
    fn sse_usage_is_read_whatever_the_chunking() {
        let bytes = STREAM.as_bytes();
        for size in [1, 2, 7, 64, bytes.len()] {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            let mut s = UsageScanner::new(Some("text/event-stream; charset=utf-8"));
            assert_eq!(total(&mut s, &chunks), expected(), "chunks of {size}");
        }
    }

    #[test]
    fn a_json_body_is_read_at_its_end() {
        let body = br#"{"id":"m","usage":{"input_tokens":12,"output_tokens":7,"cache_creation_input_tokens":3,"cache_read_input_tokens":4}}"#;
        let mut s = UsageScanner::new(Some("application/json"));
        assert_eq!(total(&mut s, &[&body[..10], &body[10..]]), expected());
    }

    #[test]
    fn long_lines_and_other_bodies_are_skipped_without_growing() {
        let mut s = UsageScanner::new(Some("text/event-stream"));
        let big = vec![b'x'; MAX_LINE * 2];
        assert_eq!(s.feed(&big), TokenUsage::default());
        if let Mode::Sse { line, skipping, .. } = &s.mode {
            assert!(line.is_empty() && *skipping);
        }
        // The line after the long one is read again.
        assert_eq!(total(&mut s, &[b"\n", STREAM.as_bytes()]), expected());
        let mut s = UsageScanner::new(Some("text/plain"));
        assert_eq!(total(&mut s, &[STREAM.as_bytes()]), TokenUsage::default());
    }
}
