//! The real `claude` CLI against the mock: a scripted text reply, a scripted Bash tool
//! call whose result goes back to the mock, and the retry count for API errors. Fails
//! (never skips) when the pinned CLI is not installed.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use claude_code_mock::{MockServer, Reply, Script};
use serde_json::{json, Value};
use tokio::{io::AsyncWriteExt, process::Command};

/// Longest a single CLI run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The pinned CLI: `CLAUDE_CODE_CLI`, else the project-local install.
fn cli_path() -> PathBuf {
    let path = match std::env::var_os("CLAUDE_CODE_CLI").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../.claude-cli/node_modules/@anthropic-ai/claude-code/bin/claude.exe"),
    };
    assert!(
        path.is_file(),
        "the real claude CLI is not installed at {}: run scripts/install-cli (or set CLAUDE_CODE_CLI)",
        path.display()
    );
    path
}

/// What one CLI run printed.
struct Run {
    code: Option<i32>,
    lines: Vec<Value>,
    stderr: String,
}

impl Run {
    fn result(&self) -> &Value {
        self.lines
            .iter()
            .find(|m| m["type"] == "result")
            .unwrap_or_else(|| panic!("no result line; stderr: {}", self.stderr))
    }
}

/// Runs the CLI in stream-json mode with one user message, in its own temp cwd and
/// config dir, until it exits (stdin is closed after the message).
async fn run_cli(mock: &MockServer, prompt: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let cwd = tempfile::tempdir().expect("temp cwd");
    let config = tempfile::tempdir().expect("temp config dir");
    let mut cmd = Command::new(cli_path());
    cmd.args([
        "--output-format",
        "stream-json",
        "--verbose",
        "--input-format",
        "stream-json",
    ])
    .args(args)
    .current_dir(cwd.path())
    .envs(mock.cli_env())
    .env("CLAUDE_CONFIG_DIR", config.path())
    .envs(env.iter().copied())
    .env_remove("ANTHROPIC_AUTH_TOKEN")
    .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
    .env_remove("ANTHROPIC_MODEL")
    .env_remove("CLAUDECODE")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn the claude CLI");
    let line = json!({
        "type": "user",
        "message": {"role": "user", "content": prompt},
        "parent_tool_use_id": null,
        "session_id": "default"
    });
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .await
        .expect("write prompt");
    drop(stdin);
    let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .expect("the CLI finishes in time")
        .expect("collect CLI output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    Run {
        code: out.status.code(),
        lines: stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not json ({e}): {l}"))
            })
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn real_cli_prints_the_scripted_text_reply() {
    let mock = MockServer::start(Script::new().reply(Reply::text("Hello from the mock")))
        .await
        .expect("start");
    let run = run_cli(
        &mock,
        "say hello",
        &["--system-prompt", "You are under test."],
        &[],
    )
    .await;
    let result = run.result();
    assert_eq!(result["subtype"], "success", "{result}");
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], "Hello from the mock");
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);

    let turns = mock.turn_requests();
    assert_eq!(turns.len(), 1, "one turn: {:?}", mock.requests());
    assert!(turns[0].is_streaming());
    assert!(turns[0].system_text().contains("You are under test."));
    assert_eq!(turns[0].last_user_text().as_deref(), Some("say hello"));
    let model = turns[0].model().expect("model").to_string();
    let assistant = run
        .lines
        .iter()
        .find(|m| m["type"] == "assistant")
        .expect("assistant line");
    assert_eq!(assistant["message"]["model"], model.as_str());
    assert_eq!(assistant["message"]["id"], "msg_mock_1");
}

#[tokio::test]
async fn real_cli_runs_the_scripted_bash_call_and_returns_its_output() {
    let mock = MockServer::start(
        Script::new()
            .reply(Reply::tool_use(
                "Bash",
                json!({"command": "echo hi", "description": "greet"}),
            ))
            .reply(Reply::text("the command printed hi")),
    )
    .await
    .expect("start");
    let run = run_cli(&mock, "run echo", &["--allowedTools", "Bash"], &[]).await;
    let result = run.result();
    assert_eq!(result["result"], "the command printed hi", "{result}");
    assert_eq!(result["num_turns"], 2);

    let turns = mock.turn_requests();
    assert_eq!(
        turns.len(),
        2,
        "tool call, then the answer: {:?}",
        mock.requests()
    );
    assert!(turns[0].tool_results().is_empty());
    let results = turns[1].tool_results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["tool_use_id"], "toolu_mock_1");
    assert_eq!(results[0]["is_error"], false);
    assert_eq!(results[0]["content"], "hi");
    assert!(run.lines.iter().any(
        |m| m["type"] == "user" && m["message"]["content"][0]["tool_use_id"] == "toolu_mock_1"
    ));
}

#[tokio::test]
async fn real_cli_makes_max_retries_plus_one_attempts_on_overload() {
    let mock = MockServer::start(
        Script::new()
            .replies([Reply::overloaded(), Reply::overloaded()])
            .fallback(Reply::text("not reached")),
    )
    .await
    .expect("start");
    let run = run_cli(&mock, "hi", &[], &[("CLAUDE_CODE_MAX_RETRIES", "1")]).await;
    let result = run.result();
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(result["api_error_status"], 529, "{result}");
    assert_eq!(mock.turn_requests().len(), 2);
    assert_eq!(mock.remaining(), 0);
    let retries = run
        .lines
        .iter()
        .filter(|m| m["type"] == "system" && m["subtype"] == "api_retry")
        .count();
    assert_eq!(retries, 1);
}
