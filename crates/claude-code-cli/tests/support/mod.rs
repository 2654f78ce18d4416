//! Shared helpers for the `claude-code` binary's tests: run the binary with a clean,
//! per-test environment (mock API, temp cwd and CLAUDE_CONFIG_DIR from
//! `claude_code_tests::TestEnv`), and read its output.

#![allow(dead_code, unused_imports)]

use std::{path::Path, process::Output};

pub use claude_code_tests::{real_cli, Reply, Script, TestEnv};

/// Variables of the developer's shell that would leak into a test run.
const SCRUB: [&str; 21] = [
    "CLAUDE_CODE_SERVER",
    "CLAUDE_CODE_TOKEN",
    "CLAUDE_CODE_LOG_FORMAT",
    "CLAUDE_CODE_CLI",
    "CLAUDE_CODE_CLI_DIR",
    "CLAUDE_CODE_CLI_VERSION",
    "CLAUDE_CODE_CONFIG",
    "CLAUDE_CODE_API_KEY_ENV",
    "CLAUDE_MODEL",
    "CLAUDE_CODE_SYSTEM_PROMPT",
    "CLAUDE_CODE_APPEND_SYSTEM_PROMPT",
    "CLAUDE_CODE_MAX_TURNS",
    "CLAUDE_CODE_PERMISSION_MODE",
    "CLAUDE_CODE_ALLOWED_TOOLS",
    "CLAUDE_CODE_DISALLOWED_TOOLS",
    "CLAUDE_CODE_CWD",
    "CLAUDE_CODE_LISTEN",
    "CLAUDE_CODE_DATA_DIR",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
];

/// `claude-code` with the scrubbed environment, run in `cwd`; its default data dir
/// (`$XDG_DATA_HOME/claude-code`) is under `cwd`, never the developer's.
pub fn bare(cwd: &Path) -> tokio::process::Command {
    scrubbed(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_claude-code")),
        cwd,
    )
}

/// The `claude-code` binary's path.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_claude-code")
}

/// `cmd` (which runs `claude-code`, perhaps through a wrapper such as `ip netns exec`)
/// with the scrubbed environment, run in `cwd`.
pub fn scrubbed(mut cmd: tokio::process::Command, cwd: &Path) -> tokio::process::Command {
    for var in SCRUB {
        cmd.env_remove(var);
    }
    cmd.current_dir(cwd)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("XDG_DATA_HOME", cwd.join("xdg-data"))
        .env_remove("CLAUDECODE")
        .kill_on_drop(true);
    cmd
}

/// `claude-code` pointed at this test's mock, config dir and the real CLI.
pub fn command(env: &TestEnv) -> tokio::process::Command {
    let mut cmd = bare(env.cwd.path());
    cmd.env("ANTHROPIC_BASE_URL", env.mock.url())
        .env("ANTHROPIC_API_KEY", "sk-test-key")
        .env("CLAUDE_CONFIG_DIR", env.config.path())
        .env("CLAUDE_CODE_CLI", real_cli())
        .env("CLAUDE_RS_TEST_MARKER", &env.marker);
    cmd
}

/// Runs the command to completion.
pub async fn run(cmd: &mut tokio::process::Command, args: &[&str]) -> Output {
    cmd.args(args).output().await.expect("run claude-code")
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Reads `serve`'s stdout until it says where it listens: the lines before, and the URL.
/// Fails if the process ends first or says nothing for 60 s.
pub async fn serve_url(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> (Vec<String>, String) {
    let mut before = Vec::new();
    loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("serve printed in time")
            .expect("read serve's stdout")
            .unwrap_or_else(|| panic!("serve ended before it listened; it said {before:?}"));
        if let Some(url) = line.strip_prefix("claude-code host listening on ") {
            return (before, url.to_string());
        }
        before.push(line);
    }
}

/// Sends SIGTERM and waits (at most 60 s) for the process to end.
pub async fn sigterm_and_wait(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    tokio::time::timeout(std::time::Duration::from_secs(60), child.wait())
        .await
        .expect("serve stopped in time")
        .expect("wait")
}

/// `POST url` with a JSON body; the reply's JSON, whatever its status.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    client
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: not JSON: {e}"))
}

/// `GET url`; the reply's JSON, whatever its status.
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// `POST {base}/v1/sessions {"name": name}` on that host itself (`"placement": "local"`,
/// which a host outside a cluster ignores); the status code.
pub async fn create_session(client: &reqwest::Client, base: &str, name: &str) -> u16 {
    client
        .post(format!("{base}/v1/sessions"))
        .json(&serde_json::json!({ "name": name, "placement": "local" }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
        .status()
        .as_u16()
}
