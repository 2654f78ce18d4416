//! Hooks written in Rust: veto a tool before it runs, add context after it ran, add
//! context to every prompt, and see a slow hook time out without hanging the session.
//!
//! `cargo run -p claude-code-host --example hooks`. Offline (no `ANTHROPIC_API_KEY`), the mock
//! API makes the real CLI run `rm -rf src` (blocked by the `PreToolUse` hook) and
//! `echo hello` (allowed; a `PostToolUse` hook adds context the model then receives).
//! Guide: `docs/guides/hooks.md`.

#[path = "common/offline.rs"]
mod offline;

use std::time::Duration;

use claude_code::{HookEvent, HookOutput, Options, Session};
use claude_code_mock::{Reply, Script};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    // Offline, the mock plays the model: these are its replies, in order.
    let script = Script::new()
        .reply(Reply::tool_use(
            "Bash",
            json!({"command": "rm -rf src", "description": "Delete the sources"}),
        ))
        .reply(Reply::tool_use(
            "Bash",
            json!({"command": "echo hello", "description": "Say hello"}),
        ))
        .fallback(Reply::text("Deletion was blocked; echo printed hello."));
    let env = offline::Offline::start(script).await?;

    let options = env.options(
        Options::new()
            .cwd(env.workdir())
            .system_prompt("You are a careful assistant with shell access.")
            // Bash is allowed by rule; the PreToolUse hook still has the last word.
            .allowed_tools(["Bash"])
            .hook(HookEvent::UserPromptSubmit, None, |input| async move {
                println!("hook UserPromptSubmit: {}", input.raw["prompt"]);
                HookOutput::none().additional_context("The user's name is Ada.")
            })
            .hook(HookEvent::PreToolUse, Some("Bash"), |input| async move {
                let command = input
                    .tool_input
                    .as_ref()
                    .and_then(|i| i["command"].as_str())
                    .unwrap_or_default()
                    .to_string();
                println!("hook PreToolUse(Bash): {command}");
                if command.contains("rm ") {
                    HookOutput::deny("deletions are blocked by policy")
                } else {
                    HookOutput::none()
                }
            })
            .hook(HookEvent::PostToolUse, Some("Bash"), |input| async move {
                println!(
                    "hook PostToolUse(Bash): response {}",
                    input.raw["tool_response"]["stdout"]
                );
                HookOutput::none().additional_context("Audit: the command's output was logged.")
            })
            // A hook slower than its timeout: the SDK answers the CLI with an error after
            // 1 s and the turn goes on.
            .hook_with_timeout(
                HookEvent::PostToolUse,
                None,
                Duration::from_secs(1),
                |_| async move {
                    println!("hook PostToolUse(slow): sleeping past its 1 s timeout");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    HookOutput::none()
                },
            )
            .hook(HookEvent::Stop, None, |_| async move {
                println!("hook Stop: the agent is done");
                HookOutput::none()
            }),
    );
    let session = Session::start(options).await?;
    let summary = session
        .stream("Delete src/ and then echo hello.")
        .await?
        .collect()
        .await?;
    for call in &summary.tool_calls {
        let status = if call.is_error { "blocked" } else { "ran" };
        println!("tool {} {status}: {:?}", call.tool_use.name, call.result);
    }
    println!("answer: {}", summary.text);
    if env.is_offline() {
        // What the model received, as recorded by the mock.
        let sent = serde_json::to_string(&env.model_requests().last().map(|r| r.body.clone()))?;
        for marker in [
            "The user's name is Ada.",
            "Audit: the command's output was logged.",
        ] {
            println!("model saw {marker:?}: {}", sent.contains(marker));
        }
    }
    session.stop().await?;
    Ok(())
}
