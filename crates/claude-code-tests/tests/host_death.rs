//! A host that dies (SIGKILL, SIGTERM, a panic), idle or in the middle of a turn, takes
//! its CLI with it: nothing this test started is left running.

use std::{process::Stdio, time::Duration};

use claude_code_tests::{eventually, real_cli, Reply, Script, TestEnv};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const PROBE: &str = env!("CARGO_BIN_EXE_host-probe");

/// A running `host-probe` and the CLI it started.
struct Host {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    cli: u32,
}

async fn start_host(env: &TestEnv, turn: bool, panic: bool) -> Host {
    let mut cmd = tokio::process::Command::new(PROBE);
    cmd.current_dir(env.cwd.path())
        .env("CLAUDE_CODE_CLI", real_cli())
        .env("ANTHROPIC_BASE_URL", env.mock.url())
        .env("ANTHROPIC_API_KEY", "sk-test-key")
        .env("CLAUDE_CONFIG_DIR", env.config.path())
        .env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("CLAUDE_RS_TEST_MARKER", &env.marker)
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if turn {
        cmd.env("HOST_PROBE_TURN", "1");
    }
    if panic {
        cmd.env("HOST_PROBE_PANIC", "1");
    }
    let mut child = cmd.spawn().expect("spawn host-probe");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = next_line(&mut lines).await;
    let cli = first
        .strip_prefix("cli ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected host-probe line {first:?}"));
    if turn {
        assert_eq!(next_line(&mut lines).await, "turn");
    }
    Host { child, lines, cli }
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("host-probe answered in time")
        .expect("read")
        .unwrap_or_default()
}

/// Waits until the CLI is in the middle of the turn: the mock holds its request.
async fn wait_mid_turn(env: &TestEnv, requests: usize) {
    eventually(Duration::from_secs(30), "the CLI's API request", || async {
        let n = env.mock.turn_requests().len();
        if n >= requests {
            Ok(())
        } else {
            Err(format!("{n} requests"))
        }
    })
    .await;
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose (its parent, init, reaps it).
    claude_code::procfs::stat(pid).is_some_and(|s| s.state != 'Z')
}

async fn assert_all_gone(env: &TestEnv, cli: u32) {
    eventually(
        Duration::from_secs(15),
        "the orphaned CLI to die",
        || async {
            if alive(cli) {
                Err(format!("CLI {cli} still alive"))
            } else {
                Ok(())
            }
        },
    )
    .await;
    env.assert_no_leftovers().await;
}

/// A turn held in the API call (the mock answers after a minute).
fn slow_api() -> Script {
    Script::new().reply(Reply::text("late").delay(Duration::from_secs(60)))
}

#[tokio::test]
async fn sigkill_mid_turn_waiting_on_the_api_takes_the_cli_down() {
    let env = TestEnv::new(slow_api()).await;
    let mut host = start_host(&env, true, false).await;
    wait_mid_turn(&env, 1).await;
    signal(host.child.id().expect("pid"), "-KILL");
    let _ = host.child.wait().await;
    assert_all_gone(&env, host.cli).await;
}

#[tokio::test]
async fn sigkill_mid_turn_running_a_tool_takes_the_cli_and_the_tool_down() {
    let env = TestEnv::new(Script::new()).await;
    let marker = env.cwd.path().join("started");
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": format!("touch {} && sleep 300", marker.display()), "description": "wait"}),
    ));
    let mut host = start_host(&env, true, false).await;
    eventually(Duration::from_secs(30), "the tool to start", || async {
        if marker.exists() {
            Ok(())
        } else {
            Err("not yet")
        }
    })
    .await;
    signal(host.child.id().expect("pid"), "-KILL");
    let _ = host.child.wait().await;
    assert_all_gone(&env, host.cli).await;
    drop(host.lines);
}

#[tokio::test]
async fn sigkill_while_idle_takes_the_cli_down() {
    let env = TestEnv::new(Script::new()).await;
    let mut host = start_host(&env, false, false).await;
    signal(host.child.id().expect("pid"), "-KILL");
    let _ = host.child.wait().await;
    assert_all_gone(&env, host.cli).await;
}

#[tokio::test]
async fn sigterm_mid_turn_takes_the_cli_down() {
    let env = TestEnv::new(slow_api()).await;
    let mut host = start_host(&env, true, false).await;
    wait_mid_turn(&env, 1).await;
    signal(host.child.id().expect("pid"), "-TERM");
    let _ = host.child.wait().await;
    assert_all_gone(&env, host.cli).await;
}

#[tokio::test]
async fn a_host_that_panics_mid_turn_takes_the_cli_down() {
    let env = TestEnv::new(slow_api()).await;
    let mut host = start_host(&env, true, true).await;
    let status = host.child.wait().await.expect("wait");
    assert!(!status.success(), "the probe panicked");
    assert_all_gone(&env, host.cli).await;
}
