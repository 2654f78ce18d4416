//! Conversations on disk: resume a finished session in a new CLI process, fork it into a
//! new session id, and read the stored transcripts with `claude_code::history`.
//!
//! `cargo run -p claude-code-host --example sessions_on_disk`. Offline (no
//! `ANTHROPIC_API_KEY`), the mock API echoes each prompt and the example shows that the
//! resumed process sent the earlier conversation along. Guide:
//! `docs/guides/sessions-on-disk.md`.

#[path = "common/offline.rs"]
mod offline;

use claude_code::{history::History, Options, Session};
use claude_code_mock::{Reply, Script};

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    // Offline, the mock answers every turn with "echo: <the prompt>".
    let env = offline::Offline::start(Script::new().fallback(Reply::echo())).await?;
    // Transcripts are stored per working directory, so all three sessions share one.
    let base = || {
        env.options(
            Options::new()
                .cwd(env.workdir())
                .system_prompt("You are a concise assistant."),
        )
    };

    // 1. A conversation of two turns, then the CLI exits; its transcript stays on disk.
    let first = Session::start(base()).await?;
    first.stream("My name is Ada.").await?.final_text().await?;
    first.stream("I like Rust.").await?.final_text().await?;
    let id = first.session_id().ok_or("no session id")?;
    first.stop().await?;
    println!("stored session {id}");

    // 2. Resume it in a new process: same id, and the model gets the old turns.
    let resumed = Session::start(base().resume(&id)).await?;
    let text = resumed
        .stream("What is my name?")
        .await?
        .final_text()
        .await?;
    println!("resumed {:?}: {text}", resumed.session_id());
    resumed.stop().await?;
    if let Some(request) = env.model_requests().last() {
        println!("the resumed request carried: {:?}", request.user_texts());
    }

    // 3. Fork it: the history is copied into a new session id; the original is untouched.
    let forked = Session::start(base().resume(&id).fork_session(true)).await?;
    let summary = forked.stream("Now I like Go.").await?.collect().await?;
    println!("forked into {:?}", summary.session_id());
    forked.stop().await?;

    // 4. Read what the CLI stored (CLAUDE_CONFIG_DIR, else ~/.claude).
    let history = match env.config_dir() {
        Some(dir) => History::new(dir),
        None => History::from_env()?,
    };
    for stored in history.list(env.workdir())? {
        let transcript = history.read(env.workdir(), &stored.id)?;
        println!("{}: prompts {:?}", stored.id, transcript.prompts());
    }
    Ok(())
}
