//! Corner cases the real CLI can't be made to produce, driven by the fake CLI.

use std::time::Duration;

use claude_code::{Error, ExitInfo, Health, Message, Options, Session, UnhealthyReason};
use claude_code_tests::{ask, leftovers, processes_in_group, wait_until_gone, Script, TestEnv};
use futures::StreamExt;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-claude");

async fn fake_env() -> TestEnv {
    TestEnv::new(Script::new()).await
}

fn fake(env: &TestEnv) -> Options {
    env.options_for(FAKE.as_ref())
}

#[tokio::test]
async fn crash_mid_line_reports_exit_code_and_stderr_tail() {
    let env = fake_env().await;
    let session = Session::start(fake(&env).env("FAKE_CLAUDE_CRASH", "mid_line"))
        .await
        .expect("start");
    let err = session
        .stream("hi")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect_err("crash");
    match err {
        Error::ProcessExited { exit, stderr } => {
            assert_eq!(exit, ExitInfo::Code(3));
            assert!(stderr.contains("fatal: simulated crash"), "{stderr}");
        }
        other => panic!("expected ProcessExited, got {other}"),
    }
    assert_eq!(env.leftovers(), vec![]);
}

#[tokio::test]
async fn crash_at_start_fails_start_with_the_stderr_tail() {
    let env = fake_env().await;
    let err = Session::start(fake(&env).env("FAKE_CLAUDE_CRASH", "on_start"))
        .await
        .expect_err("start fails");
    match err {
        Error::ProcessExited { exit, stderr } => {
            assert_eq!(exit, ExitInfo::Code(2));
            assert!(stderr.contains("boom at start"), "{stderr}");
        }
        other => panic!("expected ProcessExited, got {other}"),
    }
}

#[tokio::test]
async fn initialize_timeout_fires_and_kills_the_cli() {
    let env = fake_env().await;
    let err = Session::start(
        fake(&env)
            .env("FAKE_CLAUDE_HANG", "init")
            .initialize_timeout(Duration::from_millis(300)),
    )
    .await
    .expect_err("times out");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(env.leftovers(), vec![]);
}

#[tokio::test]
async fn turn_timeout_interrupts_a_hung_turn_and_reports_it() {
    let env = fake_env().await;
    let session = Session::start(
        fake(&env)
            .env("FAKE_CLAUDE_HANG", "turn")
            .turn_timeout(Duration::from_millis(300)),
    )
    .await
    .expect("start");
    let err = session
        .stream("hang")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect_err("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn stream_timeout_fires_on_the_consumer_side() {
    let env = fake_env().await;
    let session = Session::start(fake(&env).env("FAKE_CLAUDE_HANG", "turn"))
        .await
        .expect("start");
    let err = session
        .stream("hang")
        .await
        .expect("stream")
        .timeout(Duration::from_millis(200))
        .final_text()
        .await
        .expect_err("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    // Dropping the timed-out stream interrupted the turn: the session takes new work.
    let session2 = session.clone();
    assert_eq!(session2.health().await, Health::Healthy);
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_megabyte_of_stderr_does_not_block_the_cli() {
    let env = fake_env().await;
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    let session = Session::start(
        fake(&env)
            .env("FAKE_CLAUDE_STDERR_BYTES", "1000000")
            .stderr(move |_| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }),
    )
    .await
    .expect("start despite a flood of stderr");
    let text = ask(&session, "hi").await;
    assert_eq!(text, "echo: hi");
    assert!(seen.load(std::sync::atomic::Ordering::Relaxed) > 100);
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn invalid_utf8_and_non_json_lines_are_skipped() {
    let env = fake_env().await;
    let session = Session::start(fake(&env).env("FAKE_CLAUDE_INVALID_UTF8", "1"))
        .await
        .expect("start");
    let text = ask(&session, "hi").await;
    assert_eq!(text, "echo: hi");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn stop_kills_grandchildren_in_the_process_group() {
    let env = fake_env().await;
    let session = Session::start(fake(&env).env("FAKE_CLAUDE_SPAWN_CHILD", "1"))
        .await
        .expect("start");
    let pgid = session.pid().expect("pid");
    assert!(
        processes_in_group(pgid).len() >= 2,
        "the fake and its `sleep` child share the group"
    );
    session.stop().await.expect("stop");
    // The grandchild is not our child: SIGKILL reaches it, init reaps it.
    let left = wait_until_gone(Duration::from_secs(5), || {
        leftovers(processes_in_group(pgid))
    });
    assert_eq!(left, vec![]);
    assert_eq!(env.leftovers(), vec![]);
}

#[tokio::test]
async fn a_cli_that_ignores_stdin_eof_is_killed_after_the_grace_period() {
    let env = fake_env().await;
    let session = Session::start(
        fake(&env)
            .env("FAKE_CLAUDE_HANG", "ignore_eof")
            .close_grace(Duration::from_millis(200)),
    )
    .await
    .expect("start");
    session.stop().await.expect("stop");
    assert_eq!(env.leftovers(), vec![]);
    assert_eq!(
        session.health().await,
        Health::Unhealthy(UnhealthyReason::Stopped)
    );
}

#[tokio::test]
async fn sdk_identifies_itself_and_sends_prompts_on_stdin_not_argv() {
    let env = fake_env().await;
    let argv = env.cwd.path().join("argv.txt");
    let environ = env.cwd.path().join("env.txt");
    let session = Session::start(
        fake(&env)
            .env("FAKE_CLAUDE_ARGV_FILE", argv.to_string_lossy())
            .env("FAKE_CLAUDE_ENV_FILE", environ.to_string_lossy())
            .env("CLAUDECODE", "1"),
    )
    .await
    .expect("start");
    ask(&session, "secret prompt").await;
    session.stop().await.expect("stop");
    let argv = std::fs::read_to_string(argv).expect("argv recorded");
    assert!(
        argv.lines().any(|a| a == "--input-format=stream-json"),
        "{argv}"
    );
    assert!(!argv.contains("secret prompt"));
    let environ = std::fs::read_to_string(environ).expect("env recorded");
    assert!(environ
        .lines()
        .any(|l| l == "CLAUDE_CODE_ENTRYPOINT=sdk-rust"));
}

#[tokio::test]
async fn messages_are_typed_and_session_id_comes_from_the_cli() {
    let env = fake_env().await;
    let session = Session::start(fake(&env).resume("resumed-id-1"))
        .await
        .expect("start");
    assert_eq!(session.session_id().as_deref(), Some("resumed-id-1"));
    let msgs: Vec<Message> = session
        .stream("x")
        .await
        .expect("stream")
        .map(|m| m.expect("ok"))
        .collect()
        .await;
    assert!(matches!(msgs.last(), Some(Message::Result(_))));
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn unknown_cli_requests_get_an_error_reply() {
    let env = fake_env().await;
    let session =
        Session::start(fake(&env).env("FAKE_CLAUDE_REQUEST", r#"{"subtype":"no_such_request"}"#))
            .await
            .expect("start");
    let text = ask(&session, "hi").await;
    assert!(text.contains(r#""subtype":"error""#), "{text}");
    assert!(
        text.contains("Unsupported control request subtype: no_such_request"),
        "{text}"
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn can_use_tool_request_is_answered_by_the_callback() {
    let env = fake_env().await;
    let request = r#"{"subtype":"can_use_tool","tool_name":"Bash","input":{"command":"ls"},"tool_use_id":"t1"}"#;
    let session = Session::start(fake(&env).env("FAKE_CLAUDE_REQUEST", request).can_use_tool(
        |req| async move { claude_code::PermissionResult::deny(format!("no {}", req.tool_name)) },
    ))
    .await
    .expect("start");
    let text = ask(&session, "hi").await;
    assert!(
        text.contains(r#""behavior":"deny""#) && text.contains("no Bash"),
        "{text}"
    );
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_control_cancel_request_aborts_the_running_callback() {
    let env = fake_env().await;
    let request = r#"{"subtype":"can_use_tool","tool_name":"Bash","input":{},"tool_use_id":"t1"}"#;
    let (started_tx, started_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (dropped_tx, mut dropped_rx) = tokio::sync::mpsc::channel::<()>(1);
    /// Signals when the callback's future is dropped (aborted).
    struct OnDrop(tokio::sync::mpsc::Sender<()>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let _ = self.0.try_send(());
        }
    }
    let session = Session::start(
        fake(&env)
            .env("FAKE_CLAUDE_REQUEST", request)
            .env("FAKE_CLAUDE_CANCEL", "1")
            .can_use_tool(move |_| {
                let (started, guard) = (started_tx.clone(), OnDrop(dropped_tx.clone()));
                async move {
                    let _guard = guard;
                    let _ = started.send(()).await;
                    std::future::pending::<()>().await;
                    claude_code::PermissionResult::allow()
                }
            }),
    )
    .await
    .expect("start");
    let turn = session.stream("hi").await.expect("stream");
    // Once the callback runs, any SDK control request makes the fake send the cancel.
    let mut started_rx = started_rx;
    started_rx.recv().await.expect("callback started");
    session
        .set_model(Some("other".to_string()))
        .await
        .expect("set_model");
    tokio::time::timeout(Duration::from_secs(5), dropped_rx.recv())
        .await
        .expect("the cancelled callback was aborted")
        .expect("signal");
    assert_eq!(turn.final_text().await.expect("turn"), "echo: hi");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn inherit_env_allow_list_starts_from_an_empty_environment() {
    let env = fake_env().await;
    let environ = env.cwd.path().join("env.txt");
    let session = Session::start(
        fake(&env)
            .inherit_env(["PATH"])
            .env("FAKE_CLAUDE_ENV_FILE", environ.to_string_lossy()),
    )
    .await
    .expect("start");
    session.stop().await.expect("stop");
    let vars = std::fs::read_to_string(environ).expect("env recorded");
    let names: Vec<&str> = vars.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(names.contains(&"PATH"), "{names:?}");
    assert!(names.contains(&"CLAUDE_CODE_ENTRYPOINT"));
    assert!(
        names.contains(&"ANTHROPIC_BASE_URL"),
        "explicit env still set"
    );
    assert!(!names.contains(&"HOME"), "not inherited: {names:?}");
    assert!(
        !names.contains(&"CARGO_MANIFEST_DIR"),
        "not inherited: {names:?}"
    );
}

async fn slow_hook_reply(event: claude_code::HookEvent, name: &str) -> String {
    let env = fake_env().await;
    let request = format!(
        r#"{{"subtype":"hook_callback","callback_id":"hook_0","input":{{"hook_event_name":"{name}","tool_name":"Bash"}}}}"#
    );
    let session = Session::start(
        fake(&env)
            .env("FAKE_CLAUDE_REQUEST", request)
            .hook_with_timeout(event, None, Duration::from_millis(200), |_| async {
                std::future::pending::<()>().await;
                claude_code::HookOutput::none()
            }),
    )
    .await
    .expect("start");
    let text = ask(&session, "hi").await;
    session.stop().await.expect("stop");
    text
}

#[tokio::test]
async fn a_slow_pre_tool_use_hook_times_out_into_a_deny() {
    let text = slow_hook_reply(claude_code::HookEvent::PreToolUse, "PreToolUse").await;
    assert!(
        text.contains(r#""subtype":"success""#)
            && text.contains(r#""permissionDecision":"deny""#)
            && text.contains("did not answer within 200ms"),
        "{text}"
    );
}

#[tokio::test]
async fn a_slow_observer_hook_times_out_into_an_error_reply() {
    let text = slow_hook_reply(claude_code::HookEvent::PostToolUse, "PostToolUse").await;
    assert!(
        text.contains(r#""subtype":"error""#) && text.contains("did not answer within 200ms"),
        "{text}"
    );
}
