//! Stored sessions beyond one machine: a session saved to a `DirectoryStore` as it
//! runs, managed on disk with `claude_code::history` (listed across projects, renamed,
//! tagged, forked), then resumed from the store with a fresh, empty config dir, as on
//! another machine.
//!
//! `cargo run -p claude-code-host --example session_store`. Offline (no
//! `ANTHROPIC_API_KEY`), the mock API echoes each prompt and the example shows that the
//! resumed process sent the earlier conversation along. Guide:
//! `docs/guides/sessions-on-disk.md`.

#[path = "common/offline.rs"]
mod offline;

use std::sync::Arc;

use claude_code::{
    history::{History, SessionQuery},
    store::DirectoryStore,
    Options, Session, SessionStore,
};
use claude_code_mock::{Reply, Script};

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    // Offline, the mock answers every turn with "echo: <the prompt>".
    let env = offline::Offline::start(Script::new().fallback(Reply::echo())).await?;
    let store_dir = tempfile::tempdir()?;
    let store: Arc<dyn SessionStore> = Arc::new(DirectoryStore::new(store_dir.path()));
    let base = || {
        env.options(
            Options::new()
                .cwd(env.workdir())
                .system_prompt("You are a concise assistant."),
        )
    };

    // 1. A session with a store: its transcript is saved after each turn and on stop.
    let first = Session::start(base().session_store(store.clone())).await?;
    first.stream("My name is Ada.").await?.final_text().await?;
    let id = first.session_id().ok_or("no session id")?;
    first.stop().await?;
    println!(
        "session {id} saved to {}",
        store_dir.path().join(format!("{id}.jsonl")).display()
    );

    // 2. Manage it on disk, without a CLI (CLAUDE_CONFIG_DIR, else ~/.claude).
    let history = match env.config_dir() {
        Some(dir) => History::new(dir),
        None => History::from_env()?,
    };
    history.rename(&id, "Introductions")?;
    history.tag(&id, Some("example"))?;
    let page = history.list_all(&SessionQuery::new().tag("example").limit(10))?;
    for s in &page.sessions {
        println!(
            "listed {}: title {:?}, first prompt {:?}",
            s.id, s.title, s.first_prompt
        );
    }
    let copy = history.fork(&id)?;
    println!(
        "forked into {copy}: {:?}",
        history.transcript(&copy)?.prompts()
    );
    history.delete(&copy)?;

    // 3. Somewhere else: a fresh config dir without the transcript. The store restores
    //    it before the CLI starts, and the conversation goes on.
    let fresh = tempfile::tempdir()?;
    let elsewhere = base()
        .env("CLAUDE_CONFIG_DIR", fresh.path().to_string_lossy())
        .resume(&id)
        .session_store(store.clone());
    let resumed = Session::start(elsewhere).await?;
    let text = resumed
        .stream("What is my name?")
        .await?
        .final_text()
        .await?;
    println!("resumed {id} from the store: {text}");
    resumed.stop().await?;
    if let Some(request) = env.model_requests().last() {
        println!("the resumed request carried: {:?}", request.user_texts());
    }
    let restored = History::new(fresh.path()).read(env.workdir(), &id)?;
    println!("now in the fresh config dir: {:?}", restored.prompts());
    Ok(())
}
