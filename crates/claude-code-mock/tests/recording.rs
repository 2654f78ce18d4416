//! Request recording and classification: side traffic is answered with defaults and
//! never consumes script replies; every request is recorded in order with credentials
//! redacted.

mod support;

use claude_code_mock::{MockServer, Reply, RequestKind, Script};
use serde_json::json;
use support::{post, request, send, turn_body};

#[tokio::test]
async fn side_requests_get_defaults_and_leave_the_script_alone() {
    let mock = MockServer::start(Script::new().reply(Reply::text("scripted")))
        .await
        .expect("start");
    let port = mock.port();

    let hello = request(port, "HEAD", "/api/hello", None).await;
    assert_eq!(hello.status, 200);

    let probe = post(
        port,
        "/v1/messages?beta=true",
        &json!({"model": "claude-x", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}),
    )
    .await
    .json();
    assert_eq!(probe["stop_reason"], "max_tokens");

    let hook_schema = json!({"type": "object",
        "properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"}},
        "required": ["ok", "reason"]});
    let structured = post(
        port,
        "/v1/messages",
        &json!({"model": "m", "max_tokens": 4096, "tools": [],
            "output_config": {"format": {"type": "json_schema", "schema": hook_schema}},
            "messages": [{"role": "user", "content": "Is this ok?"}]}),
    )
    .await
    .json();
    let verdict: serde_json::Value =
        serde_json::from_str(structured["content"][0]["text"].as_str().expect("text"))
            .expect("structured reply is json");
    assert_eq!(verdict, json!({"ok": true, "reason": "mock"}));

    let helper = post(
        port,
        "/v1/messages",
        &json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "label these tools"}]}),
    )
    .await
    .json();
    assert_eq!(helper["content"][0]["text"], "mock");

    let mut compact = turn_body("x", true);
    compact["messages"]
        .as_array_mut()
        .expect("messages")
        .push(json!({"role": "user", "content": "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools."}));
    let summary = post(port, "/v1/messages", &compact).await;
    assert!(support::streamed_text(&summary.json_events()).contains("<summary>"));

    let count = post(
        port,
        "/v1/messages/count_tokens?beta=true",
        &turn_body("x", false),
    )
    .await
    .json();
    assert!(count["input_tokens"].as_u64().is_some_and(|n| n > 0));

    let unknown = request(port, "GET", "/v1/nothing-here", None).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");

    assert_eq!(mock.remaining(), 1, "no side request consumed the script");
    let turn = post(port, "/v1/messages", &turn_body("real turn", false))
        .await
        .json();
    assert_eq!(turn["content"][0]["text"], "scripted");

    let kinds: Vec<RequestKind> = mock.requests().iter().map(|r| r.kind()).collect();
    assert_eq!(
        kinds,
        [
            RequestKind::Other,
            RequestKind::Probe,
            RequestKind::Structured,
            RequestKind::Helper,
            RequestKind::Compaction,
            RequestKind::CountTokens,
            RequestKind::Other,
            RequestKind::Turn,
        ]
    );
    let turns = mock.turn_requests();
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0].last_user_text().as_deref(), Some("real turn"));
}

#[tokio::test]
async fn requests_are_recorded_with_credentials_redacted() {
    let mock = MockServer::start(Script::new()).await.expect("start");
    let mut body = turn_body("what is in the file?", true);
    body["messages"].as_array_mut().expect("messages").extend([
        json!({"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}]}),
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]}),
    ]);
    let resp = send(
        mock.port(),
        "POST",
        "/v1/messages?beta=true",
        &[
            ("x-api-key", "sk-secret"),
            ("authorization", "Bearer secret"),
            ("anthropic-version", "2023-06-01"),
        ],
        Some(&body),
    )
    .await;
    support::read(resp).await;

    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some("[redacted]"));
    assert_eq!(r.header("Authorization"), Some("[redacted]"));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert!(!format!("{r:?}").contains("secret"));
    assert_eq!(r.body, body);
    assert_eq!(r.model(), Some("claude-test-model"));
    assert!(r.is_streaming());
    assert!(r.is_turn());
    assert!(r.system_text().contains("You are under test."));
    assert_eq!(r.messages().len(), 3);
    assert_eq!(r.last_user_text().as_deref(), Some("what is in the file?"));
    assert_eq!(r.user_texts(), ["what is in the file?"]);
    assert_eq!(
        r.tool_results(),
        [json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"})]
    );
}

#[tokio::test]
async fn invalid_message_bodies_are_rejected_without_consuming_replies() {
    let mock = MockServer::start(Script::new().reply(Reply::text("kept")))
        .await
        .expect("start");
    let resp = request(
        mock.port(),
        "POST",
        "/v1/messages",
        Some(&json!({"no": "messages"})),
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    assert_eq!(mock.remaining(), 1);
    assert_eq!(mock.requests().len(), 1);
    assert!(mock.turn_requests().is_empty());
}
