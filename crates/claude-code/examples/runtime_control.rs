//! Steering a live session: permission mode, model, file checkpoints and rewind, context
//! usage, and interrupting a running turn.
//!
//! `cargo run -p claude-code-host --example runtime_control`. Offline (no `ANTHROPIC_API_KEY`),
//! the mock API makes the real CLI write a file twice: refused in the default permission
//! mode, written after `set_permission_mode(AcceptEdits)`, then undone with
//! `rewind_files`. The mock records which model each request named, and a slow reply
//! gives `interrupt` something to stop. Guide: `docs/guides/runtime-control.md`.

#[path = "common/offline.rs"]
mod offline;

use std::time::{Duration, Instant};

use claude_code::{protocol::UserInput, Options, PermissionMode, Session};
use claude_code_mock::{Reply, Script};
use futures::StreamExt;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    let env = offline::Offline::start(Script::new()).await?;
    let target = env.workdir().join("draft.md");
    let write = Reply::tool_use(
        "Write",
        json!({"file_path": target.to_string_lossy(), "content": "# Draft\n"}),
    );
    // Offline, the mock plays the model: these are its replies, in order.
    env.push([
        write.clone(),
        Reply::text("I need permission to write."),
        write,
        Reply::text("Written."),
        Reply::text("Hello from the other model."),
        Reply::text("This reply comes too late.").delay(Duration::from_secs(20)),
    ]);

    let options = env.options(
        Options::new()
            .cwd(env.workdir())
            .system_prompt("You are a concise assistant.")
            .model("claude-sonnet-4-5")
            // Needed for rewind_files: the CLI snapshots files before each change.
            .enable_file_checkpointing(true),
    );
    let session = Session::start(options).await?;
    let prompt = format!("Write {} with a heading.", target.display());

    // 1. Default mode, no permission callback: the write needs approval and is refused.
    let summary = session.stream(prompt.as_str()).await?.collect().await?;
    println!(
        "default mode: write refused: {}, file exists: {}",
        summary.tool_calls.iter().any(|c| c.is_error),
        target.exists()
    );

    // 2. Accept edits from now on; tag the prompt with a uuid to rewind to later.
    session
        .set_permission_mode(PermissionMode::AcceptEdits)
        .await?;
    let checkpoint = "6b3f7c1e-9a4d-4e2b-8f10-2c5d7e9a1b34";
    let input = UserInput::text(prompt.as_str()).with_uuid(checkpoint);
    session.stream(input).await?.final_text().await?;
    println!("acceptEdits: file exists: {}", target.exists());

    // 3. Undo the files changed since that message: first a dry run, then for real.
    let preview = session.rewind_files(checkpoint, true).await?;
    println!("rewind dry run: {preview}");
    session.rewind_files(checkpoint, false).await?;
    println!("after rewind: file exists: {}", target.exists());

    // 4. Switch the model for later turns.
    session.set_model(Some("claude-haiku-4-5".into())).await?;
    let text = session.stream("Say hello.").await?.final_text().await?;
    println!("after set_model: {text}");
    let models: Vec<String> = env
        .model_requests()
        .iter()
        .filter_map(|r| r.model().map(str::to_string))
        .collect();
    if env.is_offline() {
        println!("models the mock saw, in order: {models:?}");
    }

    // 5. What fills the context window.
    let usage = session.context_usage().await?;
    println!(
        "context: {} of {} tokens",
        usage["totalTokens"], usage["maxTokens"]
    );

    // 6. Interrupt a slow turn once it has started.
    let started = Instant::now();
    let mut turn = session.stream("Write a long essay.").await?;
    let first = turn.next().await.transpose()?;
    println!(
        "turn running (first message: {})",
        first.map(|m| m.type_name().to_string()).unwrap_or_default()
    );
    session.interrupt().await?;
    match turn.until_result().await {
        Ok(result) => println!("interrupted: result {}", result.subtype),
        Err(e) => println!("interrupted: {e}"),
    }
    println!("interrupt took {:?}", started.elapsed());

    session.stop().await?;
    Ok(())
}
