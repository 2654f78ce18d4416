//! Failure paths of user callbacks against the real CLI: panics, hangs and garbage in
//! permission callbacks, hooks and in-process MCP tools fail closed and fast, and the
//! session goes on.

use std::time::Duration;

use claude_code::{HookEvent, HookOutput, McpTool, PermissionResult, Session};
use claude_code_tests::{ask, assert_tool_result, Reply, Script, TestEnv};
use serde_json::{json, Value};

/// Bounds a test step so that a regression fails instead of hanging CI.
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

fn touch(env: &TestEnv, name: &str) -> (std::path::PathBuf, Reply) {
    let target = env.cwd.path().join(name);
    let reply = Reply::tool_use(
        "Bash",
        json!({"command": format!("touch {}", target.display()), "description": "touch"}),
    );
    (target, reply)
}

#[tokio::test]
async fn a_panicking_mcp_tool_is_an_error_result_and_the_session_goes_on() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use("mcp__t__boom", json!({})));
    env.mock.push(Reply::text("after the panic"));
    env.mock.push(Reply::text("second turn"));
    let session = Session::start(
        env.options()
            .mcp_server(
                "t",
                vec![McpTool::new("boom", "panics", |_: Value| async move {
                    if true {
                        panic!("tool bug 31");
                    }
                    Ok::<_, String>("unreachable")
                })],
            )
            .allowed_tools(["mcp__t__boom"]),
    )
    .await
    .expect("start");
    let summary = within("the turn", async {
        session.stream("go").await.expect("stream").collect().await
    })
    .await
    .expect("turn");
    assert_eq!(summary.text, "after the panic");
    assert!(summary.tool_calls[0].is_error);
    assert_tool_result(&env.mock.turn_requests()[1], "tool bug 31");
    assert_eq!(
        within("turn 2", ask(&session, "again")).await,
        "second turn"
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_hanging_mcp_tool_times_out_with_an_error_result() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use("mcp__t__hang", json!({})));
    env.mock.push(Reply::tool_use("mcp__t__slow", json!({})));
    env.mock.push(Reply::text("done"));
    let hang = |_: Value| async move {
        std::future::pending::<()>().await;
        Ok::<_, String>("unreachable")
    };
    let session = Session::start(
        env.options()
            .callback_timeout(Duration::from_millis(800))
            .mcp_server(
                "t",
                vec![
                    McpTool::new("hang", "never answers", hang),
                    McpTool::new("slow", "never answers", hang).timeout(Duration::from_millis(300)),
                ],
            )
            .allowed_tools(["mcp__t__hang", "mcp__t__slow"]),
    )
    .await
    .expect("start");
    let text = within("the turn", ask(&session, "go")).await;
    assert_eq!(text, "done");
    let turns = env.mock.turn_requests();
    assert_tool_result(&turns[1], "did not answer within 800ms");
    assert_tool_result(&turns[2], "did not answer within 300ms");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn mcp_tools_whose_input_is_not_an_object_are_registered_and_called() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "mcp__raw__any",
        json!({"free": "form", "n": 3}),
    ));
    env.mock
        .push(Reply::tool_use("mcp__raw__double", json!({"value": 21})));
    env.mock.push(Reply::text("done"));
    let session = Session::start(
        env.options()
            .mcp_server(
                "raw",
                vec![
                    McpTool::new("any", "takes anything", |v: Value| async move {
                        Ok::<_, String>(format!("got {v}"))
                    }),
                    McpTool::new("double", "doubles", |v: i64| async move {
                        Ok::<_, String>(format!("doubled={}", v * 2))
                    }),
                ],
            )
            .allowed_tools(["mcp__raw__any", "mcp__raw__double"]),
    )
    .await
    .expect("start");
    let summary = within("the turn", async {
        session.stream("go").await.expect("stream").collect().await
    })
    .await
    .expect("turn");
    assert_eq!(summary.text, "done");
    let turns = env.mock.turn_requests();
    assert_tool_result(&turns[1], r#"got {\"free\":\"form\",\"n\":3}"#);
    assert_tool_result(&turns[2], "doubled=42");
    assert!(
        summary.tool_calls.iter().all(|c| !c.is_error),
        "{summary:?}"
    );
    let status = session.mcp_status().await.expect("mcp_status");
    let tools = &status["mcpServers"][0]["tools"];
    assert_eq!(tools.as_array().map(Vec::len), Some(2), "{status}");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_panicking_pre_tool_use_hook_blocks_the_tool() {
    let env = TestEnv::new(Script::new()).await;
    let (target, reply) = touch(&env, "hook-panic.txt");
    env.mock.push(reply);
    env.mock.push(Reply::text("survived"));
    let session = Session::start(env.options().allowed_tools(["Bash"]).hook(
        HookEvent::PreToolUse,
        None,
        |_| async { panic!("hook bug 7") },
    ))
    .await
    .expect("start");
    assert_eq!(within("the turn", ask(&session, "go")).await, "survived");
    assert!(
        !target.exists(),
        "the tool ran although its gate hook failed"
    );
    assert_tool_result(&env.mock.turn_requests()[1], "hook bug 7");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_hanging_or_garbage_pre_tool_use_hook_blocks_the_tool() {
    let env = TestEnv::new(Script::new()).await;
    let (hung, reply) = touch(&env, "hook-hang.txt");
    env.mock.push(reply);
    env.mock.push(Reply::text("one"));
    let (garbage, reply) = touch(&env, "hook-garbage.txt");
    env.mock.push(reply);
    env.mock.push(Reply::text("two"));
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let session = Session::start(env.options().allowed_tools(["Bash"]).hook_with_timeout(
        HookEvent::PreToolUse,
        None,
        Duration::from_millis(500),
        move |_| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    std::future::pending::<()>().await;
                }
                HookOutput::none().specific("permissionDecision", "sure, why not")
            }
        },
    ))
    .await
    .expect("start");
    assert_eq!(within("turn 1", ask(&session, "go")).await, "one");
    assert!(!hung.exists(), "the tool ran although its hook hung");
    assert_tool_result(&env.mock.turn_requests()[1], "did not answer within 500ms");
    assert_eq!(within("turn 2", ask(&session, "go")).await, "two");
    assert!(!garbage.exists(), "the tool ran on a nonsense hook answer");
    assert_tool_result(&env.mock.turn_requests()[3], "sure, why not");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_failing_permission_callback_denies_the_tool() {
    let env = TestEnv::new(Script::new()).await;
    let (panicked, reply) = touch(&env, "perm-panic.txt");
    env.mock.push(reply);
    env.mock.push(Reply::text("one"));
    let (hung, reply) = touch(&env, "perm-hang.txt");
    env.mock.push(reply);
    env.mock.push(Reply::text("two"));
    let (garbage, reply) = touch(&env, "perm-garbage.txt");
    env.mock.push(reply);
    env.mock.push(Reply::text("three"));
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let session = Session::start(
        env.options()
            .callback_timeout(Duration::from_millis(500))
            .can_use_tool(move |_| {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    match n {
                        0 => panic!("permission bug 5"),
                        1 => std::future::pending::<PermissionResult>().await,
                        _ => {
                            PermissionResult::allow().updated_input(json!(["not", "an", "object"]))
                        }
                    }
                }
            }),
    )
    .await
    .expect("start");
    for (i, (expected, file)) in [("one", &panicked), ("two", &hung), ("three", &garbage)]
        .into_iter()
        .enumerate()
    {
        assert_eq!(within("a turn", ask(&session, "go")).await, expected);
        assert!(!file.exists(), "turn {i}: the tool ran");
    }
    let turns = env.mock.turn_requests();
    assert_tool_result(&turns[1], "permission bug 5");
    assert_tool_result(&turns[3], "did not answer within 500ms");
    assert_tool_result(&turns[5], "must be a JSON object");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn final_text_and_collect_pass_over_a_skipped_over_long_line() {
    let env = TestEnv::new(Script::new()).await;
    // The assistant line carrying a 100 KB Write input exceeds the cap (and so may the
    // tool's result line); the final text and the result fit.
    let write = |name: &str| {
        Reply::tool_use(
            "Write",
            json!({
                "file_path": env.cwd.path().join(name).to_string_lossy(),
                "content": "x".repeat(100_000),
            }),
        )
    };
    env.mock.push(write("one.txt"));
    env.mock.push(Reply::text("collected"));
    env.mock.push(write("two.txt"));
    env.mock.push(Reply::text("final"));
    let session = Session::start(
        env.options()
            .allowed_tools(["Write"])
            .max_line_bytes(claude_code::options::MIN_MAX_LINE_BYTES),
    )
    .await
    .expect("start");
    let summary = within("collect", async {
        session.stream("one").await.expect("stream").collect().await
    })
    .await
    .expect("collect passes over the skipped line");
    assert_eq!(summary.text, "collected");
    assert!(summary.skipped_lines >= 1, "no line was skipped");
    assert!(env.cwd.path().join("one.txt").exists());
    let text = within("final_text", async {
        session
            .stream("two")
            .await
            .expect("stream")
            .final_text()
            .await
    })
    .await
    .expect("final_text passes over the skipped line");
    assert_eq!(text, "final");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_line_cap_below_the_minimum_is_refused_before_spawn() {
    let env = TestEnv::new(Script::new()).await;
    let err = Session::start(env.options().max_line_bytes(8 * 1024))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, claude_code::Error::InvalidOptions(m) if m.contains("max_line_bytes")),
        "{err}"
    );
}

#[tokio::test]
async fn a_stopped_cli_is_unhealthy_and_a_probe_says_unresponsive() {
    use claude_code::{Health, UnhealthyReason};
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let session = Session::start(env.options()).await.expect("start");
    let pid = session.pid().expect("pid").to_string();
    let kill = |sig: &str| {
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill")
            .success());
    };
    assert_eq!(
        session.probe(Duration::from_secs(10)).await,
        Health::Healthy
    );
    kill("-STOP");
    claude_code_tests::eventually(Duration::from_secs(10), "the CLI to stop", || async {
        match session.health().await {
            Health::Unhealthy(UnhealthyReason::Suspended) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        session.probe(Duration::from_millis(300)).await,
        Health::Unhealthy(UnhealthyReason::Suspended)
    );
    kill("-CONT");
    claude_code_tests::eventually(Duration::from_secs(10), "the CLI to run again", || async {
        match session.probe(Duration::from_secs(5)).await {
            Health::Healthy => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(ask(&session, "still there?").await, "ok");
    session.stop().await.expect("stop");
}

async fn elicitation_turn(options: claude_code::Options, env: &TestEnv) -> String {
    env.mock
        .push(Reply::tool_use("mcp__elicit__ask_name", json!({})));
    env.mock.push(Reply::text("done"));
    let session = Session::start(
        options
            .mcp_server_config(
                "elicit",
                claude_code::McpServerConfig::Stdio {
                    command: env!("CARGO_BIN_EXE_fake-mcp-elicit").into(),
                    args: Vec::new(),
                    env: Default::default(),
                },
            )
            .allowed_tools(["mcp__elicit__ask_name"]),
    )
    .await
    .expect("start");
    assert_eq!(within("the turn", ask(&session, "ask me")).await, "done");
    session.stop().await.expect("stop");
    let turns = env.mock.turn_requests();
    serde_json::to_string(&turns[1].tool_results()).expect("json")
}

#[tokio::test]
async fn an_mcp_elicitation_is_answered_by_the_callback() {
    use claude_code::{ElicitationRequest, ElicitationResponse};
    let env = TestEnv::new(Script::new()).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let options = env
        .options()
        .on_elicitation(move |req: ElicitationRequest| {
            log.lock().expect("lock").push(req.clone());
            async move { ElicitationResponse::Accept(json!({"name": "Ada"})) }
        });
    let results = elicitation_turn(options, &env).await;
    assert!(results.contains(r#"\"action\":\"accept\""#), "{results}");
    assert!(results.contains("Ada"), "{results}");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].server_name, "elicit");
    assert_eq!(seen[0].message, "What is your name?");
    assert!(seen[0].requested_schema.is_some());
}

#[tokio::test]
async fn an_mcp_elicitation_is_declined_without_a_callback_and_cancelled_when_it_panics() {
    let env = TestEnv::new(Script::new()).await;
    let results = elicitation_turn(env.options(), &env).await;
    assert!(results.contains(r#"\"action\":\"decline\""#), "{results}");
    let env = TestEnv::new(Script::new()).await;
    let options = env
        .options()
        .on_elicitation(|_| async { panic!("elicitation bug") });
    let results = elicitation_turn(options, &env).await;
    assert!(results.contains(r#"\"action\":\"cancel\""#), "{results}");
}

fn docs_server() -> claude_code::McpServer {
    use claude_code::{McpPrompt, McpResource, McpServer};
    McpServer::new("docs")
        .tool(
            McpTool::new("lookup", "looks things up", |q: String| async move {
                Ok::<_, String>(format!("looked up {q}"))
            })
            .read_only(),
        )
        .resource(McpResource::text(
            "docs://readme",
            "readme",
            "RESOURCE-TEXT-93",
        ))
        .prompt(
            McpPrompt::new(
                "greet",
                |args: std::collections::BTreeMap<String, String>| async move {
                    Ok::<_, String>(format!(
                        "PROMPT-TEXT greet {}",
                        args.get("who").cloned().unwrap_or_default()
                    ))
                },
            )
            .description("greets someone")
            .argument("who", true),
        )
}

#[tokio::test]
async fn the_model_reads_an_in_process_mcp_resource() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "ReadMcpResourceTool",
        json!({"server": "docs", "uri": "docs://readme"}),
    ));
    env.mock.push(Reply::text("read it"));
    let session = Session::start(
        env.options()
            .mcp(docs_server())
            .allowed_tools(["ReadMcpResourceTool", "ListMcpResourcesTool"]),
    )
    .await
    .expect("start");
    assert_eq!(within("the turn", ask(&session, "read")).await, "read it");
    assert_tool_result(&env.mock.turn_requests()[1], "RESOURCE-TEXT-93");
    let status = session.mcp_status().await.expect("status");
    let tool = &status["mcpServers"][0]["tools"][0];
    assert_eq!(tool["name"], "lookup", "{status}");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn hook_inputs_from_the_real_cli_are_typed() {
    use claude_code::HookEventInput;
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": "echo typed-42", "description": "echo"}),
    ));
    env.mock.push(Reply::text("ok"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (pre, post) = (seen.clone(), seen.clone());
    let session = Session::start(
        env.options()
            .allowed_tools(["Bash"])
            .hook(HookEvent::PreToolUse, None, move |input| {
                pre.lock().expect("lock").push(input.typed());
                async { HookOutput::none() }
            })
            .hook(HookEvent::PostToolUse, None, move |input| {
                post.lock().expect("lock").push(input.typed());
                async { HookOutput::none() }
            }),
    )
    .await
    .expect("start");
    within("the turn", ask(&session, "go")).await;
    let seen: Vec<HookEventInput> = seen
        .lock()
        .expect("lock")
        .drain(..)
        .map(|r| r.expect("typed"))
        .collect();
    assert!(
        matches!(&seen[0], HookEventInput::PreToolUse { tool_name, tool_input, tool_use_id: Some(_) }
            if tool_name == "Bash" && tool_input["command"] == "echo typed-42"),
        "{seen:?}"
    );
    assert!(
        matches!(&seen[1], HookEventInput::PostToolUse { tool_response, .. }
            if tool_response.to_string().contains("typed-42")),
        "{seen:?}"
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_tool_the_cli_did_not_register_fails_the_first_turn_with_a_typed_error() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    // An object schema the CLI's validator rejects: it drops the tool silently.
    let rejected = McpTool::from_json(
        "rejected",
        "has a broken schema",
        json!({"type": "object", "properties": {"x": {"type": "no-such-type"}}}),
        |_| async { claude_code::ToolResult::text("unreachable") },
    );
    let fine = McpTool::new("fine", "works", |v: Value| async move {
        Ok::<_, String>(v.to_string())
    });
    let session = Session::start(env.options().mcp_server("srv", vec![rejected, fine]))
        .await
        .expect("start");
    let err = within("the first turn", async {
        session
            .stream("hi")
            .await
            .expect("stream")
            .final_text()
            .await
    })
    .await
    .expect_err("the missing tool is reported");
    match &err {
        claude_code::Error::McpNotRegistered { server, problem } => {
            assert_eq!(server, "srv");
            assert!(
                problem.contains("rejected") && !problem.contains("fine"),
                "{problem}"
            );
        }
        other => panic!("expected McpNotRegistered, got {other:?}"),
    }
    // Reported once; the session goes on.
    assert_eq!(within("turn 2", ask(&session, "again")).await, "ok");
    session.stop().await.expect("stop");
}
