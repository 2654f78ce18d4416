//! Failure paths, failing closed and fast: a `PreToolUse` hook that panics blocks its
//! tool, an in-process MCP tool that hangs becomes an error result after its timeout,
//! and (offline) a rejected API key ends the turn at once with a typed error instead of
//! minutes of retries. The session survives all three.
//!
//! `cargo run -p claude-code-host --example failure_paths`. Offline (no
//! `ANTHROPIC_API_KEY`), the mock API makes the real CLI try both tools, then answers
//! the last prompt with 401. Guides: `docs/guides/hooks.md`, `docs/guides/mcp-tools.md`,
//! `docs/guides/sessions-and-streams.md` ("API failures").

#[path = "common/offline.rs"]
mod offline;

use std::time::Duration;

use claude_code::{Error, HookEvent, McpTool, Options, Session};
use claude_code_mock::{Reply, Script};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    let env = offline::Offline::start(Script::new()).await?;
    let marker = env.workdir().join("should-not-exist");
    env.push([
        Reply::tool_use(
            "Bash",
            json!({"command": format!("touch {}", marker.display()), "description": "touch"}),
        ),
        Reply::tool_use("mcp__slow__wait", json!({})),
        Reply::text("Both tools failed; I carried on."),
        Reply::unauthorized(),
    ]);

    let hanging = McpTool::new("wait", "never answers", |_: serde_json::Value| async move {
        std::future::pending::<()>().await;
        Ok::<_, String>("unreachable")
    })
    .timeout(Duration::from_millis(500));
    let options = env.options(
        Options::new()
            .cwd(env.workdir())
            .allowed_tools(["Bash", "mcp__slow__wait"])
            .mcp_server("slow", vec![hanging])
            .hook(HookEvent::PreToolUse, Some("Bash"), |_| async move {
                panic!("a bug in the policy hook")
            }),
    );
    let session = Session::start(options).await?;

    let summary = session
        .stream("Touch a file, then wait.")
        .await?
        .collect()
        .await?;
    for call in &summary.tool_calls {
        let result = call
            .result
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default();
        println!(
            "tool {} (error: {}): {}",
            call.tool_use.name, call.is_error, result
        );
    }
    println!("the file was created: {}", marker.exists());
    println!("answer: {}", summary.text);

    if env.is_offline() {
        // The mock now rejects the key: the turn ends at the CLI's first retry report.
        let started = std::time::Instant::now();
        match session.stream("One more?").await?.final_text().await {
            Err(e @ Error::Api { .. }) => println!(
                "failed fast ({:?}), auth: {}: {e}",
                started.elapsed(),
                e.is_auth()
            ),
            other => println!("unexpected: {other:?}"),
        }
        println!("session still open: {}", !session.is_closed());
    }
    session.stop().await?;
    Ok(())
}
