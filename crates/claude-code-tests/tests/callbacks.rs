//! Permission callbacks, hooks and in-process MCP tools, served to the real CLI over the
//! control protocol.

use std::sync::{Arc, Mutex};

use claude_code::{HookEvent, HookOutput, McpTool, PermissionResult, Session};
use claude_code_tests::{ask, assert_tool_result, Reply, Script, TestEnv};
use serde_json::json;

#[tokio::test]
async fn can_use_tool_deny_blocks_the_tool_and_the_model_sees_why() {
    let env = TestEnv::new(Script::new()).await;
    let target = env.cwd.path().join("denied.txt");
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": format!("touch {}", target.display()), "description": "touch"}),
    ));
    env.mock.push(Reply::text("ok"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let session = Session::start(env.options().can_use_tool(move |req| {
        let log = log.clone();
        async move {
            log.lock()
                .expect("lock")
                .push((req.tool_name.clone(), req.input.clone()));
            PermissionResult::deny("not in this test")
        }
    }))
    .await
    .expect("start");
    let summary = session
        .stream("touch it")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    assert!(!target.exists());
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "Bash");
    assert!(summary.tool_calls[0].is_error);
    assert_tool_result(&env.mock.turn_requests()[1], "not in this test");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn can_use_tool_allow_with_updated_input_runs_the_rewritten_command() {
    let env = TestEnv::new(Script::new()).await;
    let asked = env.cwd.path().join("asked.txt");
    let rewritten = env.cwd.path().join("rewritten.txt");
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": format!("touch {}", asked.display()), "description": "touch"}),
    ));
    env.mock.push(Reply::text("ok"));
    let cmd = format!("touch {}", rewritten.display());
    let session = Session::start(env.options().can_use_tool(move |req| {
        let cmd = cmd.clone();
        async move {
            let mut input = req.input;
            input["command"] = json!(cmd);
            PermissionResult::allow().updated_input(input)
        }
    }))
    .await
    .expect("start");
    ask(&session, "touch").await;
    assert!(rewritten.exists(), "the rewritten command ran");
    assert!(!asked.exists(), "the original command did not");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn pre_tool_use_hook_denies_bash_and_sees_the_tool_input() {
    let env = TestEnv::new(Script::new()).await;
    let target = env.cwd.path().join("hooked.txt");
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": format!("touch {}", target.display()), "description": "touch"}),
    ));
    env.mock.push(Reply::text("ok"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let session = Session::start(env.options().allowed_tools(["Bash"]).hook(
        HookEvent::PreToolUse,
        Some("Bash"),
        move |input| {
            let log = log.clone();
            async move {
                log.lock().expect("lock").push(input.clone());
                HookOutput::deny("hooks say no")
            }
        },
    ))
    .await
    .expect("start");
    ask(&session, "touch").await;
    assert!(!target.exists(), "the hook's deny wins over the allow rule");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].event, "PreToolUse");
    assert_eq!(seen[0].tool_name.as_deref(), Some("Bash"));
    assert_tool_result(&env.mock.turn_requests()[1], "hooks say no");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_panicking_hook_becomes_an_error_reply_not_a_hung_session() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": "echo hi", "description": "echo"}),
    ));
    env.mock.push(Reply::text("survived"));
    let session = Session::start(env.options().allowed_tools(["Bash"]).hook(
        HookEvent::PreToolUse,
        None,
        |_| async { panic!("hook bug") },
    ))
    .await
    .expect("start");
    let text = ask(&session, "go").await;
    assert_eq!(text, "survived");
    session.stop().await.expect("stop");
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[tokio::test]
async fn in_process_mcp_tool_is_called_by_the_real_cli() {
    let env = TestEnv::new(Script::new()).await;
    env.mock
        .push(Reply::tool_use("mcp__calc__add", json!({"a": 20, "b": 22})));
    env.mock.push(Reply::text("the sum is in"));
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let session = Session::start(
        env.options()
            .mcp_server(
                "calc",
                vec![McpTool::new(
                    "add",
                    "adds two numbers",
                    move |args: AddArgs| {
                        let counter = counter.clone();
                        async move {
                            *counter.lock().expect("lock") += 1;
                            Ok::<_, String>(format!("sum={}", args.a + args.b))
                        }
                    },
                )],
            )
            .allowed_tools(["mcp__calc__add"]),
    )
    .await
    .expect("start");
    let summary = session
        .stream("add")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    assert_eq!(*calls.lock().expect("lock"), 1);
    let turns = env.mock.turn_requests();
    assert_tool_result(&turns[1], "sum=42");
    assert!(!summary.tool_calls[0].is_error);
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn user_prompt_submit_hook_adds_context_the_model_sees() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let log = prompts.clone();
    let session = Session::start(env.options().hook(
        HookEvent::UserPromptSubmit,
        None,
        move |input| {
            let log = log.clone();
            async move {
                log.lock()
                    .expect("lock")
                    .push(input.raw["prompt"].as_str().unwrap_or_default().to_string());
                HookOutput::none().additional_context("CONTEXT-FROM-HOOK-42")
            }
        },
    ))
    .await
    .expect("start");
    ask(&session, "what is the context").await;
    assert_eq!(*prompts.lock().expect("lock"), ["what is the context"]);
    let sent = serde_json::to_string(env.mock.turn_requests()[0].messages()).expect("json");
    assert!(
        sent.contains("CONTEXT-FROM-HOOK-42"),
        "the hook's context reached the model"
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn post_tool_use_hook_sees_the_tool_response() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": "echo from-bash-77", "description": "echo"}),
    ));
    env.mock.push(Reply::text("ok"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let session = Session::start(env.options().allowed_tools(["Bash"]).hook(
        HookEvent::PostToolUse,
        None,
        move |input| {
            let log = log.clone();
            async move {
                log.lock().expect("lock").push(input);
                HookOutput::none()
            }
        },
    ))
    .await
    .expect("start");
    ask(&session, "go").await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].event, "PostToolUse");
    assert!(
        seen[0].raw["tool_response"]
            .to_string()
            .contains("from-bash-77"),
        "{:?}",
        seen[0].raw
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn post_tool_use_hook_context_reaches_the_model() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": "echo hi", "description": "echo"}),
    ));
    env.mock.push(Reply::text("ok"));
    let session = Session::start(env.options().allowed_tools(["Bash"]).hook(
        HookEvent::PostToolUse,
        Some("Bash"),
        |_| async { HookOutput::none().additional_context("POST-TOOL-CONTEXT-7") },
    ))
    .await
    .expect("start");
    ask(&session, "go").await;
    let sent = serde_json::to_string(env.mock.turn_requests()[1].messages()).expect("json");
    assert!(
        sent.contains("POST-TOOL-CONTEXT-7"),
        "the hook's context reached the model"
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn set_permission_mode_accept_edits_lets_a_write_through() {
    let env = TestEnv::new(Script::new()).await;
    let refused = env.cwd.path().join("refused.txt");
    let accepted = env.cwd.path().join("accepted.txt");
    for path in [&refused, &accepted] {
        env.mock.push(Reply::tool_use(
            "Write",
            json!({"file_path": path.to_string_lossy(), "content": "x\n"}),
        ));
        env.mock.push(Reply::text("ok"));
    }
    let session = Session::start(env.options()).await.expect("start");
    ask(&session, "write one").await;
    assert!(
        !refused.exists(),
        "default mode refuses an unapproved write"
    );
    session
        .set_permission_mode(claude_code::PermissionMode::AcceptEdits)
        .await
        .expect("set_permission_mode");
    ask(&session, "write two").await;
    assert!(accepted.exists(), "acceptEdits lets the write through");
    session.stop().await.expect("stop");
}
