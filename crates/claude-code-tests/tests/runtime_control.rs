//! Runtime control against the real CLI: a message sent while a turn runs, content
//! deltas, and rewinding file changes.

use std::time::Duration;

use claude_code::{protocol::UserInput, ContentDelta, Message, Session};
use claude_code_tests::{Reply, Script, TestEnv};
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn send_now_while_a_turn_runs_is_queued_by_the_cli_and_answered_after_it() {
    let env = TestEnv::new(Script::new()).await;
    env.mock
        .push(Reply::echo().delay(Duration::from_millis(800)));
    env.mock.push(Reply::echo());
    let session = Session::start(env.options()).await.expect("start");
    let mut first = session.stream("first").await.expect("stream");
    // The first turn is running once the CLI announced it.
    let init = first.next().await.expect("init").expect("ok");
    assert_eq!(init.type_name(), "system");
    let second = session.send_now("second").await.expect("written now");
    let first_text = first.final_text().await.expect("first turn");
    let second_text = second.final_text().await.expect("second turn");
    assert_eq!(first_text, "echo: first");
    assert_eq!(second_text, "echo: second");
    let turns = env.mock.turn_requests();
    assert_eq!(turns.len(), 2);
    assert!(turns[1].user_texts().contains(&"first".to_string()));
    assert_eq!(session.turns_completed(), 2);
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn content_deltas_yield_thinking_then_text_in_order() {
    let env = TestEnv::new(
        Script::new().reply(Reply::text("final answer here").thinking("let me think about it")),
    )
    .await;
    let session = Session::start(env.options().include_partial_messages(true))
        .await
        .expect("start");
    let deltas: Vec<ContentDelta> = session
        .stream("think")
        .await
        .expect("stream")
        .content_deltas()
        .map(|d| d.expect("delta"))
        .collect()
        .await;
    let thinking: String = deltas
        .iter()
        .filter_map(|d| match d {
            ContentDelta::Thinking { thinking, .. } => Some(thinking.as_str()),
            _ => None,
        })
        .collect();
    let text: String = deltas
        .iter()
        .filter_map(|d| match d {
            ContentDelta::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(thinking, "let me think about it");
    assert_eq!(text, "final answer here");
    let first_text = deltas
        .iter()
        .position(|d| matches!(d, ContentDelta::Text { .. }));
    let last_thinking = deltas
        .iter()
        .rposition(|d| matches!(d, ContentDelta::Thinking { .. }));
    assert!(
        last_thinking < first_text,
        "thinking streams before the text: {deltas:?}"
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn rewind_files_undoes_a_write_after_a_dry_run_reports_it() {
    let env = TestEnv::new(Script::new()).await;
    let target = env.cwd.path().join("rewind-me.txt");
    env.mock.push(Reply::tool_use(
        "Write",
        json!({"file_path": target.to_string_lossy(), "content": "temporary\n"}),
    ));
    env.mock.push(Reply::text("written"));
    let session = Session::start(
        env.options()
            .allowed_tools(["Write"])
            .enable_file_checkpointing(true)
            .replay_user_messages(true),
    )
    .await
    .expect("start");
    let uuid = "7a1f3f6e-0c44-4b59-a2d8-2e5f0c9b1d11";
    let messages: Vec<Message> = session
        .stream(UserInput::text("write it").with_uuid(uuid))
        .await
        .expect("stream")
        .map(|m| m.expect("message"))
        .collect()
        .await;
    assert!(target.exists(), "written: {messages:?}");
    let dry = session.rewind_files(uuid, true).await.expect("dry run");
    assert!(target.exists(), "a dry run changes nothing: {dry}");
    let done = session.rewind_files(uuid, false).await.expect("rewind");
    assert!(!target.exists(), "rewound: {done}");
    session.stop().await.expect("stop");
}
