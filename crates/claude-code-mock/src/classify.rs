//! Which requests are main agent-loop turns (they consume script replies) and which are
//! side traffic (answered with defaults by `side`). The rule is a pure function of
//! method, path and body, fitted to what CLI 2.1.332 sends; see the crate docs.

use serde_json::Value;

/// Marker of the CLI's compaction request (last user message).
const COMPACTION_MARKER: &str = "CRITICAL: Respond with TEXT ONLY";
/// Marker of the CLI's prompt-suggestion request (last user message).
const SUGGESTION_MARKER: &str = "[SUGGESTION MODE:";

/// What a request is, as far as the mock is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestKind {
    /// A main agent-loop (or subagent) `/v1/messages` call; consumes one script reply.
    Turn,
    /// A `/v1/messages` probe with `max_tokens` ≤ 1 (quota check, model or key check).
    Probe,
    /// A tool-free `/v1/messages` helper with `output_config.format` (prompt hooks,
    /// session titles); answered with JSON matching the schema.
    Structured,
    /// A `/v1/messages` helper without tools and without `thinking` (summaries, labels).
    Helper,
    /// The conversation-compaction call (`/compact`, auto-compact).
    Compaction,
    /// The next-prompt suggestion call (`--prompt-suggestions`).
    Suggestion,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// Anything else: `/api/hello`, unknown endpoints, bodies that are not JSON.
    Other,
}

/// Classifies one request.
pub(crate) fn classify(method: &str, path: &str, body: &Value) -> RequestKind {
    if method != "POST" {
        return RequestKind::Other;
    }
    match path.trim_end_matches('/') {
        "/v1/messages" => {}
        "/v1/messages/count_tokens" => return RequestKind::CountTokens,
        _ => return RequestKind::Other,
    }
    if body.get("messages").and_then(Value::as_array).is_none() {
        return RequestKind::Other;
    }
    if body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_some_and(|n| n <= 1)
    {
        return RequestKind::Probe;
    }
    if body.pointer("/output_config/format").is_some() {
        return RequestKind::Structured;
    }
    let has_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if !has_tools && body.get("thinking").is_none() {
        return RequestKind::Helper;
    }
    let last_user = last_user_texts(body);
    if last_user.iter().any(|t| t.contains(COMPACTION_MARKER)) {
        return RequestKind::Compaction;
    }
    if last_user.iter().any(|t| t.contains(SUGGESTION_MARKER)) {
        return RequestKind::Suggestion;
    }
    RequestKind::Turn
}

/// Every text of the last `user` message (string content or text blocks).
fn last_user_texts(body: &Value) -> Vec<&str> {
    let last = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|ms| {
            ms.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        });
    match last.and_then(|m| m.get("content")) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn_body() -> Value {
        json!({
            "model": "m", "max_tokens": 128000, "stream": true,
            "tools": [{"name": "Bash"}], "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        })
    }

    #[test]
    fn main_call_is_a_turn_even_without_tools() {
        assert_eq!(
            classify("POST", "/v1/messages", &turn_body()),
            RequestKind::Turn
        );
        let mut b = turn_body();
        b["tools"] = json!([]);
        assert_eq!(classify("POST", "/v1/messages", &b), RequestKind::Turn);
    }

    #[test]
    fn side_calls_are_recognised() {
        let probe = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]});
        assert_eq!(classify("POST", "/v1/messages", &probe), RequestKind::Probe);
        let hook = json!({"max_tokens": 100, "tools": [], "output_config": {"format": {"type": "json_schema"}},
            "messages": [{"role": "user", "content": "x"}]});
        assert_eq!(
            classify("POST", "/v1/messages", &hook),
            RequestKind::Structured
        );
        let helper = json!({"max_tokens": 100, "messages": [{"role": "user", "content": "label"}]});
        assert_eq!(
            classify("POST", "/v1/messages", &helper),
            RequestKind::Helper
        );
        let mut compact = turn_body();
        compact["messages"] = json!([{"role": "user", "content": "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools."}]);
        assert_eq!(
            classify("POST", "/v1/messages", &compact),
            RequestKind::Compaction
        );
        assert_eq!(
            classify("POST", "/v1/messages/count_tokens", &turn_body()),
            RequestKind::CountTokens
        );
        assert_eq!(
            classify("HEAD", "/api/hello", &Value::Null),
            RequestKind::Other
        );
    }
}
