//! One-shot queries and multi-turn conversations against the real CLI.

use claude_code::{query, Message, Session};
use claude_code_tests::{ask, Reply, Script, TestEnv};
use futures::StreamExt;

#[tokio::test]
async fn one_shot_query_returns_the_mock_reply_and_sends_our_settings() {
    let env = TestEnv::new(Script::new().reply(Reply::text("Hello from the mock"))).await;
    let opts = env
        .options()
        .system_prompt("You are a test harness")
        .model("claude-test-model");
    let summary = query("Say hello", opts).await.expect("query succeeds");

    assert_eq!(summary.text, "Hello from the mock");
    let result = summary.result.as_ref().expect("result");
    assert!(!result.is_error);
    assert!(summary.session_id().is_some());
    assert!(summary.usage().is_some());

    let turns = env.mock.turn_requests();
    assert_eq!(turns.len(), 1, "one model call: {turns:#?}");
    assert_eq!(turns[0].last_user_text().as_deref(), Some("Say hello"));
    assert!(turns[0].system_text().contains("You are a test harness"));
    assert_eq!(turns[0].model(), Some("claude-test-model"));
    assert!(env.leftovers().is_empty(), "query() leaves no process");
}

#[tokio::test]
async fn five_turn_conversation_carries_history_to_the_model() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let session = Session::start(env.options()).await.expect("start");
    for i in 1..=5 {
        let text = ask(&session, format!("message {i}")).await;
        assert_eq!(text, format!("echo: message {i}"));
    }
    let turns = env.mock.turn_requests();
    assert_eq!(turns.len(), 5);
    let history = turns[4].user_texts();
    for i in 1..=5 {
        assert!(
            history.iter().any(|t| t == &format!("message {i}")),
            "turn 5 must carry message {i}: {history:?}"
        );
    }
    assert_eq!(session.turns_completed(), 5);
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn stream_yields_init_assistant_and_result_in_order() {
    let env = TestEnv::new(Script::new().reply(Reply::text("ordered"))).await;
    let session = Session::start(env.options()).await.expect("start");
    let messages: Vec<Message> = session
        .stream("hi")
        .await
        .expect("stream")
        .map(|m| m.expect("message"))
        .collect()
        .await;
    let kinds: Vec<&str> = messages.iter().map(|m| m.type_name()).collect();
    assert_eq!(kinds.first(), Some(&"system"), "{kinds:?}");
    assert!(kinds.contains(&"assistant"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"result"), "{kinds:?}");
    assert_eq!(
        session.session_id().as_deref(),
        messages.last().and_then(|m| m.session_id())
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn partial_messages_give_text_deltas_in_order() {
    let env = TestEnv::new(Script::new().reply(Reply::text("one two three four five six"))).await;
    let session = Session::start(env.options().include_partial_messages(true))
        .await
        .expect("start");
    let deltas: Vec<String> = session
        .stream("count")
        .await
        .expect("stream")
        .text_deltas()
        .map(|d| d.expect("delta"))
        .collect()
        .await;
    assert!(deltas.len() > 1, "several deltas expected: {deltas:?}");
    assert_eq!(deltas.concat(), "one two three four five six");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn handshake_data_is_exposed() {
    let env = TestEnv::new(Script::new()).await;
    let session = Session::start(env.options()).await.expect("start");
    let init = session.initialize_response();
    assert!(!init.models.is_empty(), "models listed: {init:?}");
    assert_eq!(
        session.cli_version().map(|v| v.to_string()).as_deref(),
        Some(claude_code::PINNED_CLI_VERSION)
    );
    session.stop().await.expect("stop");
}
