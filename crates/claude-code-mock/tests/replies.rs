//! Scripted turn replies over HTTP: SSE framing for streaming requests, one JSON message
//! otherwise, ids, models, usage, echo, fallback and runtime pushes.

mod support;

use claude_code_mock::{Block, MockServer, Reply, Script};
use serde_json::{json, Value};
use support::{post, streamed_text, turn_body};

#[tokio::test]
async fn streaming_text_reply_is_framed_as_sse() {
    let text = "Hello there, this text arrives in several pieces.";
    let mock = MockServer::start(Script::new().reply(Reply::text(text)))
        .await
        .expect("start");
    let resp = post(
        mock.port(),
        "/v1/messages?beta=true",
        &turn_body("hi", true),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let events = resp.json_events();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert!(deltas >= 2, "text must arrive in several deltas: {names:?}");
    let mut expected = vec!["message_start", "ping", "content_block_start"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "event name matches data type");
    }
    let start = &events[0].1["message"];
    assert_eq!(start["id"], "msg_mock_1");
    assert_eq!(start["model"], "claude-test-model");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(streamed_text(&events), text);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn tool_use_streams_its_input_as_json_deltas() {
    let input = json!({"command": "echo hi", "description": "print a greeting"});
    let mock = MockServer::start(Script::new().reply(Reply::tool_use("Bash", input.clone())))
        .await
        .expect("start");
    let events = post(mock.port(), "/v1/messages", &turn_body("run", true))
        .await
        .json_events();
    let start = &events[2].1["content_block"];
    assert_eq!(start["type"], "tool_use");
    assert_eq!(start["id"], "toolu_mock_1");
    assert_eq!(start["name"], "Bash");
    let partial: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d.pointer("/delta/partial_json").and_then(Value::as_str))
        .collect();
    assert!(partial.len() >= 3, "input arrives in pieces: {partial:?}");
    let joined: Value = serde_json::from_str(&partial.concat()).expect("joined input is json");
    assert_eq!(joined, input);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn thinking_streams_thinking_and_signature_deltas_first() {
    let mock =
        MockServer::start(Script::new().reply(Reply::text("answer").thinking("pondering deeply")))
            .await
            .expect("start");
    let events = post(mock.port(), "/v1/messages", &turn_body("q", true))
        .await
        .json_events();
    assert_eq!(events[2].1["content_block"]["type"], "thinking");
    assert_eq!(events[2].1["index"], 0);
    let thinking: String = events
        .iter()
        .filter_map(|(_, d)| d.pointer("/delta/thinking").and_then(Value::as_str))
        .collect();
    assert_eq!(thinking, "pondering deeply");
    assert!(events
        .iter()
        .any(|(_, d)| d["delta"]["type"] == "signature_delta" && d["index"] == 0));
    let text_start = events
        .iter()
        .find(|(_, d)| d["content_block"]["type"] == "text")
        .expect("text block");
    assert_eq!(text_start.1["index"], 1);
    assert_eq!(streamed_text(&events), "answer");
}

#[tokio::test]
async fn non_streaming_request_gets_one_json_message() {
    let reply = Reply::blocks([
        Block::text("let me look"),
        Block::tool_use("Read", json!({"file_path": "/tmp/x"})),
    ])
    .thinking("hmm")
    .usage(7, 3);
    let mock = MockServer::start(Script::new().reply(reply))
        .await
        .expect("start");
    let resp = post(mock.port(), "/v1/messages", &turn_body("q", false)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );
    let msg = resp.json();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["id"], "msg_mock_1");
    assert_eq!(msg["model"], "claude-test-model");
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["usage"]["input_tokens"], 7);
    assert_eq!(msg["usage"]["output_tokens"], 3);
    let content = msg["content"].as_array().expect("content");
    assert_eq!(content.len(), 3);
    assert_eq!(content[0]["type"], "thinking");
    assert!(content[0]["signature"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(content[1], json!({"type": "text", "text": "let me look"}));
    assert_eq!(
        content[2],
        json!({"type": "tool_use", "id": "toolu_mock_1", "name": "Read", "input": {"file_path": "/tmp/x"}})
    );
}

#[tokio::test]
async fn echo_answers_the_last_user_text() {
    let mock = MockServer::start(Script::new().fallback(Reply::echo()))
        .await
        .expect("start");
    let mut body = turn_body("first", false);
    body["messages"].as_array_mut().expect("messages").extend([
        json!({"role": "assistant", "content": [{"type": "text", "text": "ok"}]}),
        json!({"role": "user", "content": "second question"}),
    ]);
    let msg = post(mock.port(), "/v1/messages", &body).await.json();
    assert_eq!(msg["content"][0]["text"], "echo: second question");
    let msg = post(mock.port(), "/v1/messages", &turn_body("third", false))
        .await
        .json();
    assert_eq!(msg["content"][0]["text"], "echo: third");
    assert_eq!(msg["id"], "msg_mock_2");
}

#[tokio::test]
async fn fallback_serves_when_script_runs_dry_and_push_appends() {
    let mock = MockServer::start(Script::new().reply(Reply::text("one")))
        .await
        .expect("start");
    let text = |v: Value| v["content"][0]["text"].as_str().map(str::to_string);
    let port = mock.port();
    assert_eq!(
        text(
            post(port, "/v1/messages", &turn_body("a", false))
                .await
                .json()
        )
        .as_deref(),
        Some("one")
    );
    assert_eq!(
        text(
            post(port, "/v1/messages", &turn_body("b", false))
                .await
                .json()
        )
        .as_deref(),
        Some("mock: script exhausted")
    );
    mock.push(Reply::text("pushed"));
    assert_eq!(mock.remaining(), 1);
    assert_eq!(
        text(
            post(port, "/v1/messages", &turn_body("c", false))
                .await
                .json()
        )
        .as_deref(),
        Some("pushed")
    );
    assert_eq!(mock.remaining(), 0);

    let mock = MockServer::start(Script::new().fallback(Reply::text("always")))
        .await
        .expect("start");
    for _ in 0..2 {
        let v = post(mock.port(), "/v1/messages", &turn_body("x", false))
            .await
            .json();
        assert_eq!(text(v).as_deref(), Some("always"));
    }
}

#[tokio::test]
async fn script_file_form_drives_the_server() {
    let script = Script::from_json(
        r#"{"replies": [{"type": "message", "blocks": [{"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}]}],
            "fallback": {"type": "echo"}}"#,
    )
    .expect("script parses");
    let mock = MockServer::start(script).await.expect("start");
    let first = post(mock.port(), "/v1/messages", &turn_body("a", false))
        .await
        .json();
    assert_eq!(first["content"][0]["input"]["command"], "ls");
    let second = post(mock.port(), "/v1/messages", &turn_body("b", false))
        .await
        .json();
    assert_eq!(second["content"][0]["text"], "echo: b");
}
