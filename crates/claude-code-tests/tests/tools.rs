//! Tool-use turns that the real CLI executes.

use claude_code::Session;
use claude_code_tests::{assert_tool_result, Reply, Script, TestEnv};
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn write_tool_use_creates_the_file_and_the_stream_pairs_call_and_result() {
    let env = TestEnv::new(Script::new()).await;
    let target = env.cwd.path().join("hello.txt");
    env.mock.push(Reply::tool_use(
        "Write",
        json!({"file_path": target.to_string_lossy(), "content": "written by the real CLI\n"}),
    ));
    env.mock.push(Reply::text("done writing"));
    let session = Session::start(env.options().allowed_tools(["Write"]))
        .await
        .expect("start");
    let summary = session
        .stream("write the file")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");

    assert_eq!(
        std::fs::read_to_string(&target).expect("file written by the CLI"),
        "written by the real CLI\n"
    );
    assert_eq!(summary.text, "done writing");
    assert_eq!(summary.tool_calls.len(), 1, "{:#?}", summary.tool_calls);
    let call = &summary.tool_calls[0];
    assert_eq!(call.tool_use.name, "Write");
    assert!(call.result.is_some(), "tool result paired with its call");
    assert!(!call.is_error, "{call:?}");
    assert_eq!(summary.num_turns(), Some(2));
    // The tool result went back to the model.
    let turns = env.mock.turn_requests();
    assert_eq!(turns.len(), 2);
    assert!(!turns[1].tool_results().is_empty());
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn bash_echo_output_reaches_the_model_and_tool_uses_adapter_sees_the_call() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": "echo tool-output-42", "description": "echo"}),
    ));
    env.mock.push(Reply::text("echoed"));
    let session = Session::start(env.options().allowed_tools(["Bash(echo *)"]))
        .await
        .expect("start");
    let uses: Vec<_> = session
        .stream("run echo")
        .await
        .expect("stream")
        .tool_uses()
        .map(|u| u.expect("tool use"))
        .collect()
        .await;
    assert_eq!(uses.len(), 1);
    assert_eq!(uses[0].name, "Bash");
    assert_eq!(uses[0].input["command"], "echo tool-output-42");

    let turns = env.mock.turn_requests();
    assert_tool_result(turns.last().expect("second call"), "tool-output-42");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn file_changing_bash_without_approval_is_refused_not_silently_allowed() {
    let env = TestEnv::new(Script::new()).await;
    let target = env.cwd.path().join("should-not-exist");
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": format!("touch {}", target.display()), "description": "touch"}),
    ));
    env.mock.push(Reply::text("ok"));
    let session = Session::start(env.options()).await.expect("start");
    let summary = session
        .stream("touch it")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    assert!(
        !target.exists(),
        "no permission callback and no rule: refused"
    );
    assert!(summary.tool_calls[0].is_error);
    session.stop().await.expect("stop");
}
