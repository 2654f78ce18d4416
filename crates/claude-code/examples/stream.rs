//! Starts a Claude Code session and streams a reply as it is generated.
//!
//! `cargo run -p claude-code-host --example stream -- "your prompt"`. With `ANTHROPIC_API_KEY`
//! set it talks to the real API; without it, it starts the project's mock Messages API on
//! 127.0.0.1 and says so, so it works offline. Guide: `docs/guides/sessions-and-streams.md`.

#[path = "common/offline.rs"]
mod offline;

use std::io::Write;

use claude_code::{Options, Session};
use claude_code_mock::{Reply, Script};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    let prompt = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let prompt = if prompt.is_empty() {
        "Write a haiku about Rust's borrow checker.".to_string()
    } else {
        prompt
    };

    // Offline, the mock answers every turn with this haiku.
    let reply =
        Reply::text("Borrowed, not taken:\nlifetimes hum in quiet scope,\nfree of data races.");
    let env = offline::Offline::start(Script::new().fallback(reply)).await?;
    let options = env.options(
        Options::new()
            .system_prompt("You are a concise assistant.")
            .include_partial_messages(true),
    );

    let session = Session::start(options).await?;
    eprintln!(
        "session started (claude CLI {}, pid {})",
        session
            .cli_version()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "unknown version".into()),
        session.pid().unwrap_or_default()
    );
    println!("> {prompt}");
    let mut deltas = Box::pin(session.stream(prompt.as_str()).await?.text_deltas());
    let mut stdout = std::io::stdout();
    while let Some(delta) = deltas.next().await {
        write!(stdout, "{}", delta?)?;
        stdout.flush()?;
    }
    println!();
    eprintln!("session id: {}", session.session_id().unwrap_or_default());
    session.stop().await?;
    Ok(())
}
