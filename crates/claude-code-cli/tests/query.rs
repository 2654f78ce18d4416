//! `claude-code query` against the mock Messages API with the real CLI: streamed text and
//! exit 0, a readable failure on a 401, and `--json` lines that are the CLI's messages.

mod support;

use claude_code::Message;
use support::*;

#[tokio::test]
async fn query_prints_the_text_and_exits_zero() {
    let env = TestEnv::new(Script::new().reply(Reply::text("Hello from the mock"))).await;
    let out = run(&mut command(&env), &["query", "say hello"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "Hello from the mock\n");
    assert!(stderr(&out).contains("[done:"), "stderr: {}", stderr(&out));
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn query_passes_model_and_system_prompt_flags() {
    let env = TestEnv::new(Script::new().reply(Reply::text("ok"))).await;
    let out = run(
        &mut command(&env),
        &[
            "query",
            "hi",
            "--model",
            "claude-test-model",
            "--system-prompt",
            "Be terse",
        ],
    )
    .await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let turns = env.mock.turn_requests();
    let turn = turns.first().expect("one turn request");
    assert_eq!(turn.model(), Some("claude-test-model"));
    assert!(
        turn.system_text().contains("Be terse"),
        "{}",
        turn.system_text()
    );
}

#[tokio::test]
async fn query_shows_tool_uses_compactly() {
    let env = TestEnv::new(
        Script::new()
            .reply(Reply::tool_use(
                "Bash",
                serde_json::json!({"command": "echo hi"}),
            ))
            .reply(Reply::text("ran it")),
    )
    .await;
    let out = run(&mut command(&env), &["query", "run echo"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("⏺ Bash(echo hi)"),
        "stderr: {}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("ran it"), "stdout: {}", stdout(&out));
}

#[tokio::test]
async fn query_exits_non_zero_with_a_readable_message_on_401() {
    let env = TestEnv::new(Script::new().fallback(Reply::unauthorized())).await;
    let out = run(&mut command(&env), &["query", "hello"]).await;
    assert!(!out.status.success(), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("claude-code: error: the query failed"),
        "stderr: {err}"
    );
    assert!(err.contains("401"), "stderr: {err}");
    assert_eq!(stdout(&out), "", "the error is reported once, on stderr");
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn query_json_prints_one_cli_message_per_line() {
    let env = TestEnv::new(Script::new().reply(Reply::text("json please"))).await;
    let out = run(&mut command(&env), &["query", "hi", "--json"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let messages: Vec<Message> = text
        .lines()
        .map(|l| Message::parse(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let types: Vec<&str> = messages.iter().map(Message::type_name).collect();
    assert_eq!(types.first(), Some(&"system"), "{types:?}");
    assert_eq!(types.last(), Some(&"result"), "{types:?}");
    assert!(types.contains(&"stream_event"), "{types:?}");
    assert!(types.contains(&"assistant"), "{types:?}");
    // Each line is the message serialized back: parse and print again gives the same JSON.
    for (line, message) in text.lines().zip(&messages) {
        let again: serde_json::Value = serde_json::to_value(message).expect("serialize");
        let original: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(again, original);
    }
}

#[tokio::test]
async fn query_with_a_bad_key_fails_fast_despite_the_clis_retries() {
    let env = TestEnv::new(Script::new().fallback(Reply::unauthorized())).await;
    let mut cmd = command(&env);
    // The CLI's default: ten retries with growing back-off.
    cmd.env_remove("CLAUDE_CODE_MAX_RETRIES");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        run(&mut cmd, &["query", "hello"]),
    )
    .await
    .expect("query ended (the CLI's retries take minutes)");
    assert!(!out.status.success(), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("authentication failed (401): check ANTHROPIC_API_KEY"),
        "stderr: {err}"
    );
    assert!(env.mock.turn_requests().len() <= 2);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[tokio::test]
async fn query_shows_each_api_retry_as_a_progress_line() {
    let env = TestEnv::new(
        Script::new()
            .reply(Reply::overloaded())
            .reply(Reply::text("after a retry")),
    )
    .await;
    let mut cmd = command(&env);
    cmd.env("CLAUDE_CODE_MAX_RETRIES", "2");
    let out = run(&mut cmd, &["query", "hello"]).await;
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("API error 529; retry 1/2"),
        "stderr: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "after a retry\n");
}
