//! The option surface and runtime controls against the real CLI: every flag is accepted
//! and reaches the model request where it should; structured output, content-block
//! prompts, model switching and MCP status work end to end.

use claude_code::{
    protocol::UserInput, AgentDefinition, ContentBlock, Effort, McpTool, SandboxSettings, Session,
    SettingSource, Settings, Tools,
};
use claude_code_tests::{ask, Reply, Script, TestEnv};
use serde_json::json;

#[tokio::test]
async fn a_session_with_most_options_set_starts_and_the_model_sees_them() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("configured"))).await;
    let extra_dir = tempfile::tempdir().expect("dir");
    let debug_log = env.cwd.path().join("debug.log");
    let session_id = "3f2c8a9e-1b7d-4c6a-9e5f-0a1b2c3d4e5f";
    let opts = env
        .options()
        .model("claude-main-model")
        .fallback_model("claude-fallback-model")
        .append_system_prompt("APPENDED-MARKER")
        .effort(Effort::Low)
        .max_budget_usd(5.0)
        .max_turns(3)
        .tools(Tools::List(vec!["Read".into(), "Grep".into()]))
        .add_dir(extra_dir.path())
        .setting_sources([SettingSource::Project])
        .settings(Settings::Json(json!({"cleanupPeriodDays": 3})))
        .sandbox(SandboxSettings::default())
        .session_id(session_id)
        .replay_user_messages(true)
        .disable_slash_commands(true)
        .debug_file(&debug_log)
        .agents([(
            "helper",
            AgentDefinition::new("helps", "You help").model("haiku"),
        )]);
    let session = Session::start(opts)
        .await
        .expect("the CLI accepts every flag");
    let summary = session
        .stream("hi")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    assert_eq!(summary.text, "configured");
    assert_eq!(session.session_id().as_deref(), Some(session_id));

    let turn = &env.mock.turn_requests()[0];
    assert_eq!(turn.model(), Some("claude-main-model"));
    assert!(turn.system_text().contains("APPENDED-MARKER"));
    let tools: Vec<&str> = turn.body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tools.contains(&"Read") && tools.contains(&"Grep"),
        "{tools:?}"
    );
    assert!(
        !tools.contains(&"Bash"),
        "only the listed base tools: {tools:?}"
    );
    assert!(debug_log.exists(), "--debug-file was honoured");
    session.stop().await.expect("stop");
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema, PartialEq)]
struct Verdict {
    approved: bool,
    reason: String,
}

#[tokio::test]
async fn structured_output_is_typed() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "StructuredOutput",
        json!({"approved": true, "reason": "looks good"}),
    ));
    env.mock.push(Reply::text("done"));
    let session = Session::start(env.options().output_type::<Verdict>())
        .await
        .expect("start");
    let summary = session
        .stream("review")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    let verdict: Verdict = summary.structured().expect("structured output");
    assert_eq!(
        verdict,
        Verdict {
            approved: true,
            reason: "looks good".into()
        }
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn set_model_switches_the_model_of_later_requests() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let session = Session::start(env.options().model("claude-first"))
        .await
        .expect("start");
    ask(&session, "one").await;
    session
        .set_model(Some("claude-second".to_string()))
        .await
        .expect("set_model");
    ask(&session, "two").await;
    let models: Vec<String> = env
        .mock
        .turn_requests()
        .iter()
        .filter_map(|r| r.model().map(str::to_string))
        .collect();
    assert_eq!(models.first().map(String::as_str), Some("claude-first"));
    assert_eq!(models.last().map(String::as_str), Some("claude-second"));
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn mcp_status_lists_the_in_process_server() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let tool = McpTool::from_json("ping", "pings", json!({"type": "object"}), |_| async {
        claude_code::ToolResult::text("pong")
    });
    let session = Session::start(env.options().mcp_server("probe", vec![tool]))
        .await
        .expect("start");
    // The CLI connects MCP servers once the conversation starts.
    ask(&session, "hi").await;
    let status = session.mcp_status().await.expect("mcp_status");
    let servers = status["mcpServers"].as_array().expect("servers");
    let probe = servers
        .iter()
        .find(|s| s["name"] == "probe")
        .expect("probe listed");
    assert_eq!(probe["status"], "connected", "{status}");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn content_block_prompts_reach_the_model() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("seen"))).await;
    let session = Session::start(env.options()).await.expect("start");
    // A 1x1 transparent PNG.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
    let input = UserInput::blocks(vec![
        ContentBlock::text("describe this image"),
        ContentBlock::image(json!({"type": "base64", "media_type": "image/png", "data": png})),
    ]);
    let text = ask(&session, input).await;
    assert_eq!(text, "seen");
    let turn = &env.mock.turn_requests()[0];
    let sent = serde_json::to_string(turn.messages()).expect("json");
    assert!(sent.contains(png), "the image went to the model");
    assert!(sent.contains("describe this image"));
    session.stop().await.expect("stop");
}
