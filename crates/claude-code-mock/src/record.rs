//! [`RecordedRequest`]: one HTTP request as the mock received it, with accessors for the
//! parts tests assert on (model, system prompt, user texts, tool results). Deciding what
//! kind of request it is lives in `classify`.

use serde_json::Value;

use crate::classify::{classify, RequestKind};

/// Replaces the value of credential headers in recordings.
const REDACTED: &str = "[redacted]";

/// Text blocks the CLI injects into user messages; skipped by the user-text accessors.
const SYSTEM_REMINDER: &str = "<system-reminder>";

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query string, e.g. `/v1/messages` (the CLI sends `?beta=true`).
    pub path: String,
    /// Headers in arrival order, names lower case; `x-api-key` and `authorization`
    /// values are replaced by `[redacted]`.
    pub headers: Vec<(String, String)>,
    /// The JSON body; `Null` when empty, a JSON string when the body is not JSON.
    pub body: Value,
}

impl RecordedRequest {
    pub(crate) fn from_http(parts: &axum::http::request::Parts, body: &[u8]) -> Self {
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let name = name.as_str().to_ascii_lowercase();
                let value = if name == "x-api-key" || name == "authorization" {
                    REDACTED.to_string()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name, value)
            })
            .collect();
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        };
        RecordedRequest {
            method: parts.method.as_str().to_string(),
            path: parts.uri.path().to_string(),
            headers,
            body,
        }
    }

    /// What kind of request this is (see the crate docs for the rule).
    pub fn kind(&self) -> RequestKind {
        classify(&self.method, &self.path, &self.body)
    }

    /// Whether this is a main agent-loop turn, the kind that consumes script replies.
    pub fn is_turn(&self) -> bool {
        self.kind() == RequestKind::Turn
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The requested `model`.
    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }

    /// The system prompt: the `system` string, or its text blocks joined by `\n`
    /// (the CLI's first block is an `x-anthropic-billing-header` line).
    pub fn system_text(&self) -> String {
        match self.body.get("system") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(blocks)) => blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }

    /// The `messages` array (empty when absent).
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The last user-written text, searching from the end: string content or `text`
    /// blocks of `user` messages, skipping tool-result-only messages and the CLI's
    /// injected `<system-reminder>` blocks.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages()
            .iter()
            .rev()
            .filter(|m| is_user(m))
            .find_map(|m| user_texts_of(m).into_iter().next_back())
    }

    /// All user-written texts in order (same rules as [`Self::last_user_text`]).
    pub fn user_texts(&self) -> Vec<String> {
        self.messages()
            .iter()
            .filter(|m| is_user(m))
            .flat_map(user_texts_of)
            .collect()
    }

    /// All `tool_result` blocks in the messages, in order.
    pub fn tool_results(&self) -> Vec<Value> {
        self.messages()
            .iter()
            .filter_map(|m| m.get("content").and_then(Value::as_array))
            .flatten()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .cloned()
            .collect()
    }

    /// Whether the body asks for a streamed (SSE) reply.
    pub fn is_streaming(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }
}

fn is_user(message: &Value) -> bool {
    message.get("role").and_then(Value::as_str) == Some("user")
}

fn user_texts_of(message: &Value) -> Vec<String> {
    let keep = |t: &str| !t.trim_start().starts_with(SYSTEM_REMINDER);
    match message.get("content") {
        Some(Value::String(s)) if keep(s) => vec![s.clone()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .filter(|t| keep(t))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(body: Value) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: "/v1/messages".into(),
            headers: Vec::new(),
            body,
        }
    }

    #[test]
    fn user_texts_skip_reminders_and_tool_results() {
        let r = req(json!({"messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>\n"},
                {"type": "text", "text": "first"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "hi"}]},
        ]}));
        assert_eq!(r.last_user_text().as_deref(), Some("first"));
        assert_eq!(r.user_texts(), vec!["first".to_string()]);
        assert_eq!(r.tool_results().len(), 1);
    }

    #[test]
    fn system_text_joins_blocks() {
        let r =
            req(json!({"system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}));
        assert_eq!(r.system_text(), "a\nb");
        assert_eq!(req(json!({"system": "s"})).system_text(), "s");
    }
}
