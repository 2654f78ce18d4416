//! Corner cases the real CLI can't be made to produce, driven by the fake CLI.

use std::time::Duration;

use claude_code::{Error, ExitInfo, Health, Message, Options, Session, UnhealthyReason};
use claude_code_tests::{leftovers, processes_in_group, wait_until_gone, Script, TestEnv};
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
    let text = session
        .stream("hi")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
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
    let text = session
        .stream("hi")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
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
    session
        .stream("secret prompt")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
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
