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
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_claude-code"));
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
