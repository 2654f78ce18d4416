//! `CliProfile::Lean` against the real CLI: a representative set of features (a tool call,
//! a hook, the permission callback, an in-process MCP tool, resume, structured output)
//! works with it on; the hosting layer starts its CLIs with it unless told otherwise,
//! a bare session does not, and the user's own variables win over the profile's.

use std::sync::{Arc, Mutex};

use claude_code::{
    CliProfile, CliSwitch, HookEvent, HookOutput, McpTool, Options, PermissionResult, Session,
    SessionSpec, Spares, Supervisor,
};
use claude_code_tests::{ask, assert_tool_result, Reply, Script, TestEnv};
use serde_json::json;

fn lean(env: &TestEnv) -> Options {
    env.options().cli_profile(CliProfile::Lean)
}

/// The environment of a running process, as `KEY=VALUE` strings.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("read environ")
        .split(|&b| b == 0)
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .collect()
}

fn has(env: &[String], kv: &str) -> bool {
    env.iter().any(|e| e == kv)
}

/// Every Lean switch is `=1` in this process's environment.
fn assert_lean(pid: u32) {
    let env = environ(pid);
    for s in CliProfile::Lean.switches() {
        assert!(has(&env, &format!("{}=1", s.env_var())), "{s} missing");
    }
}

#[tokio::test]
async fn a_tool_call_works_with_lean_and_the_cli_gets_its_variables() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": "echo lean-output-7", "description": "echo"}),
    ));
    env.mock.push(Reply::text("echoed"));
    let session = Session::start(lean(&env).allowed_tools(["Bash(echo *)"]))
        .await
        .expect("start");
    assert_lean(session.pid().expect("running"));
    assert_eq!(ask(&session, "run echo").await, "echoed");
    assert_tool_result(&env.mock.turn_requests()[1], "lean-output-7");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_hook_and_the_permission_callback_work_with_lean() {
    let env = TestEnv::new(Script::new()).await;
    let hooked = env.cwd.path().join("hooked.txt");
    let asked = env.cwd.path().join("asked.txt");
    for target in [&hooked, &asked] {
        env.mock.push(Reply::tool_use(
            "Bash",
            json!({"command": format!("touch {}", target.display()), "description": "touch"}),
        ));
        env.mock.push(Reply::text("ok"));
    }
    let hook_seen = Arc::new(Mutex::new(0));
    let asked_seen = Arc::new(Mutex::new(Vec::new()));
    let (h, a) = (hook_seen.clone(), asked_seen.clone());
    let hooked_cmd = format!("touch {}", hooked.display());
    let session = Session::start(
        lean(&env)
            .hook(HookEvent::PreToolUse, Some("Bash"), move |input| {
                let h = h.clone();
                let hooked_cmd = hooked_cmd.clone();
                async move {
                    *h.lock().expect("lock") += 1;
                    if input
                        .tool_input
                        .as_ref()
                        .and_then(|i| i["command"].as_str())
                        == Some(hooked_cmd.as_str())
                    {
                        HookOutput::deny("hooks say no")
                    } else {
                        HookOutput::none()
                    }
                }
            })
            .can_use_tool(move |req| {
                let a = a.clone();
                async move {
                    a.lock().expect("lock").push(req.tool_name.clone());
                    PermissionResult::deny("callback says no")
                }
            }),
    )
    .await
    .expect("start");
    ask(&session, "touch one").await;
    ask(&session, "touch two").await;
    assert!(!hooked.exists() && !asked.exists());
    assert_eq!(
        *hook_seen.lock().expect("lock"),
        2,
        "the hook saw both calls"
    );
    assert_eq!(
        *asked_seen.lock().expect("lock"),
        ["Bash"],
        "the callback the second"
    );
    let turns = env.mock.turn_requests();
    assert_tool_result(&turns[1], "hooks say no");
    assert_tool_result(&turns[3], "callback says no");
    session.stop().await.expect("stop");
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[tokio::test]
async fn an_in_process_mcp_tool_works_with_lean() {
    let env = TestEnv::new(Script::new()).await;
    env.mock
        .push(Reply::tool_use("mcp__calc__add", json!({"a": 40, "b": 2})));
    env.mock.push(Reply::text("added"));
    let tool = McpTool::new("add", "adds two numbers", |args: AddArgs| async move {
        Ok::<_, String>(format!("sum={}", args.a + args.b))
    });
    let session = Session::start(
        lean(&env)
            .mcp_server("calc", vec![tool])
            .allowed_tools(["mcp__calc__add"]),
    )
    .await
    .expect("start");
    assert_eq!(ask(&session, "add").await, "added");
    assert_tool_result(&env.mock.turn_requests()[1], "sum=42");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn resume_works_with_lean() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let first = Session::start(lean(&env)).await.expect("start");
    ask(&first, "remember the word quince").await;
    let id = first.session_id().expect("session id");
    first.stop().await.expect("stop");
    let resumed = Session::start(lean(&env).resume(&id))
        .await
        .expect("resume");
    assert_eq!(ask(&resumed, "which word?").await, "echo: which word?");
    let texts = env
        .mock
        .turn_requests()
        .last()
        .expect("a request")
        .user_texts();
    assert!(
        texts.iter().any(|t| t.contains("quince")),
        "the resumed conversation reached the model: {texts:?}"
    );
    resumed.stop().await.expect("stop");
}

#[derive(Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
struct Verdict {
    approved: bool,
}

#[tokio::test]
async fn structured_output_works_with_lean() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "StructuredOutput",
        json!({"approved": true}),
    ));
    env.mock.push(Reply::text("done"));
    let session = Session::start(lean(&env).output_type::<Verdict>())
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
    assert_eq!(verdict, Verdict { approved: true });
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn minimal_still_runs_a_tool_call() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": "echo minimal-output-3", "description": "echo"}),
    ));
    env.mock.push(Reply::text("echoed"));
    let session = Session::start(
        env.options()
            .cli_profile(CliProfile::Minimal)
            .allowed_tools(["Bash(echo *)"]),
    )
    .await
    .expect("start");
    let vars = environ(session.pid().expect("running"));
    assert!(has(&vars, "CLAUDE_CODE_DISABLE_CLAUDE_MDS=1"));
    ask(&session, "run echo").await;
    assert_tool_result(&env.mock.turn_requests()[1], "minimal-output-3");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn hosting_starts_lean_a_bare_session_does_not_and_user_env_wins() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let telemetry = format!("{}=1", CliSwitch::Telemetry.env_var());

    // A bare session keeps the CLI's defaults.
    let bare = Session::start(env.options()).await.expect("bare");
    assert!(!has(&environ(bare.pid().expect("running")), &telemetry));
    bare.stop().await.expect("stop");

    let sup = Supervisor::builder()
        .name("lean-default")
        .child(SessionSpec::new("hosted").options(env.options()))
        .child(
            SessionSpec::new("opted-out")
                .options(env.options())
                .cli_profile(CliProfile::Default),
        )
        .child(
            SessionSpec::new("overridden")
                .options(env.options().env("DISABLE_TELEMETRY", "0"))
                .cli_profile(CliProfile::Lean),
        )
        .start()
        .await
        .expect("supervisor");
    let pid = |name: &'static str| {
        let sup = sup.clone();
        async move {
            sup.session(name)
                .pid()
                .await
                .expect("pid")
                .expect("running")
        }
    };
    assert_lean(pid("hosted").await);
    assert!(!has(&environ(pid("opted-out").await), &telemetry));
    let overridden = environ(pid("overridden").await);
    assert!(
        has(&overridden, "DISABLE_TELEMETRY=0"),
        "the user's value wins"
    );
    assert!(has(&overridden, "DISABLE_GROWTHBOOK=1"));
    assert_eq!(
        ask(&sup.session("hosted"), "hello").await,
        "echo: hello",
        "a hosted lean session answers"
    );
    sup.stop().await.expect("stop");

    let spares = Spares::builder(env.options())
        .count(1)
        .start()
        .await
        .expect("spares");
    let spare = spares.acquire().await.expect("spare");
    assert_lean(spare.pid().expect("running"));
    drop(spare);
    spares.stop().await;
    env.assert_no_leftovers().await;
}
