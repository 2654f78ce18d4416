//! Warm spares, hibernation and admission control: isolated requests served by
//! pre-started CLIs (no start on the request path), a named session that hibernates
//! when idle and resumes its conversation on the next prompt, and a host-wide cap on
//! live CLIs shared by three named sessions.
//!
//! `cargo run -p claude-code-host --example spares_and_hibernation`. With `ANTHROPIC_API_KEY`
//! set it talks to the real API; without it, it starts the project's mock Messages API
//! on 127.0.0.1 (which echoes each prompt) and says so, so it works offline. Either way
//! it runs the real `claude` CLI. Guide: `docs/guides/hosting.md`.

#[path = "common/offline.rs"]
mod offline;

use std::time::{Duration, Instant};

use claude_code::{Admission, ChildStatus, Options, SessionSpec, Spares, Supervisor};
use claude_code_mock::{Reply, Script};

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    let env = offline::Offline::start(Script::new().fallback(Reply::echo())).await?;
    let options = || env.options(Options::new().cwd(env.workdir()));

    // Warm spares: two CLIs started (and warmed up) ahead of time; each serves one
    // request in a fresh conversation and is then stopped; a refill starts behind it.
    let spares = Spares::builder(options()).count(2).start().await?;
    for tenant in ["tenant-a", "tenant-b", "tenant-c"] {
        let started = Instant::now();
        let text = spares
            .acquire()
            .await?
            .stream(format!("Answer for {tenant} only"))
            .await?
            .final_text()
            .await?;
        println!("spare> {text}  ({:?})", started.elapsed());
        // Refills run in the background (a CLI start takes a few hundred ms of CPU).
        // Requests that come faster than that wait for a start (`cold_acquires`); here
        // the next one comes once both spares are ready again.
        spares.wait_ready(2).await?;
    }
    let stats = spares.stats().await?;
    println!(
        "spares: {} ready, {} started, {} handed out, {} had to wait for a start",
        stats.ready, stats.spawned, stats.acquired, stats.cold_acquires
    );
    spares.stop().await;

    // Hibernation: idle for 1 s, the CLI is stopped; name, options and conversation id
    // stay, and the next prompt resumes the conversation with `--resume`.
    let sup = Supervisor::builder()
        .name("notes")
        .child(
            SessionSpec::new("notes")
                .options(options())
                .idle_timeout(Duration::from_secs(1)),
        )
        .start()
        .await?;
    let notes = sup.session("notes");
    let text = notes
        .stream("Remember the word pineapple")
        .await?
        .final_text()
        .await?;
    println!("\nnotes> {text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sup.list_sessions().await?[0].status != ChildStatus::Hibernated {
        if Instant::now() > deadline {
            return Err("the session did not hibernate".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let child = &sup.list_sessions().await?[0];
    println!(
        "hibernated: pid {:?}, conversation {}",
        child.pid,
        child.session_id.clone().unwrap_or_default()
    );
    let text = notes
        .stream("Which word did I ask you to remember?")
        .await?
        .final_text()
        .await?;
    println!("notes (woken)> {text}");
    if let Some(last) = env.model_requests().last() {
        let resumed = last.body.to_string().contains("pineapple");
        println!("  the woken session sent its earlier history to the model: {resumed}");
    }
    println!(
        "  wakes: {}, restarts: {}",
        sup.list_sessions().await?[0].wakes,
        sup.list_sessions().await?[0].restarts
    );
    sup.stop().await?;

    // Admission control: at most two live CLIs for three named sessions. A prompt to a
    // hibernated session hibernates the least recently used idle one to make room.
    let admission = Admission::new().max_live(2).max_spawns(1);
    let sup = Supervisor::builder()
        .name("users")
        .admission(admission.clone())
        .children(["alice", "bob", "carol"].map(|name| {
            SessionSpec::new(name)
                .options(options())
                .idle_timeout(Duration::from_secs(600))
                .start_hibernated()
        }))
        .start()
        .await?;
    println!();
    for name in ["alice", "bob", "carol", "alice"] {
        let text = sup
            .session(name)
            .stream(format!("Hello from {name}"))
            .await?
            .final_text()
            .await?;
        let counts = sup.count_sessions().await?;
        println!(
            "{name}> {text}  ({} live, {} hibernated, {} live CLI slots in use)",
            counts.active,
            counts.hibernated,
            admission.stats().live
        );
    }
    println!("wakes: {}", sup.count_sessions().await?.wakes);
    sup.stop().await?;
    Ok(())
}
