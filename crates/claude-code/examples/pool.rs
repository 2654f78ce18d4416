//! A pool of warm sessions: fresh conversations per request (the default) against a
//! shared context, selection, the wait queue and its back-pressure, stats, and a drain.
//!
//! `cargo run -p claude-code-host --example pool`. With `ANTHROPIC_API_KEY` set it talks to
//! the real API; without it, it starts the project's mock Messages API on 127.0.0.1
//! (which echoes each prompt) and says so, so it works offline. Either way it runs the
//! real `claude` CLI. Guide: `docs/guides/hosting.md`.

#[path = "common/offline.rs"]
mod offline;

use std::time::Duration;

use claude_code::{Options, Pool, PoolContext, PoolError, Selection, SessionSpec};
use claude_code_mock::{Reply, Script};

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    // Offline, the mock holds its first answer for two seconds (to show back-pressure
    // below), then echoes every prompt.
    let script = Script::new()
        .reply(Reply::echo().delay(Duration::from_secs(2)))
        .fallback(Reply::echo());
    let env = offline::Offline::start(script).await?;
    let spec = |name: &str| {
        SessionSpec::new(name)
            .options(env.options(Options::new().cwd(env.workdir())))
            .system_prompt("You answer in one short sentence.")
    };

    // Back-pressure: one member, no wait queue. While it is busy, a request is refused
    // at once with a typed error (a web handler would answer 503).
    let tiny = Pool::builder(spec("tiny"))
        .size(1)
        .max_queue(0)
        .start()
        .await?;
    let busy = tiny.stream("Take your time").await?;
    match tiny.stream("And me?").await {
        Err(PoolError::QueueFull { capacity }) => {
            println!("back-pressure: refused at once (queue capacity {capacity})")
        }
        other => println!("unexpected: {:?}", other.map(|_| "accepted")),
    }
    println!("tiny> {}", busy.final_text().await?);
    tiny.stop().await?;

    // Fresh conversations (the default) against a shared context: the same two
    // requests on a one-member pool, then what the model was sent for the second one.
    for context in [PoolContext::FreshPerRequest, PoolContext::Shared] {
        let pool = Pool::builder(spec("worker"))
            .size(1)
            .context(context)
            .start()
            .await?;
        let before = env.model_requests().len();
        pool.stream("My name is Ada").await?.final_text().await?;
        let text = pool.stream("What is my name?").await?.final_text().await?;
        println!("\n{context:?}: worker> {text}");
        if let Some(second) = env.model_requests().get(before + 1) {
            let saw_first = second.body.to_string().contains("My name is Ada");
            println!("  the model's second request contains the first request: {saw_first}");
        }
        pool.stop().await?;
    }

    // A pool of two with least-busy selection: six concurrent requests, at most two CLIs.
    let pool = Pool::builder(spec("worker"))
        .size(2)
        .selection(Selection::LeastBusy)
        .max_queue(16)
        .queue_timeout(Duration::from_secs(30))
        .start()
        .await?;
    let asks = (1..=6).map(|i| {
        let pool = pool.clone();
        async move {
            let text = pool
                .stream(format!("Request {i}"))
                .await?
                .final_text()
                .await?;
            Ok::<_, PoolError>(text)
        }
    });
    println!();
    for text in futures::future::join_all(asks).await {
        println!("pool> {}", text?);
    }
    let stats = pool.stats().await?;
    println!(
        "stats: {} served, {} members, {} conversations cleared, longest queue wait {:?}",
        stats.served,
        stats.members.len(),
        stats.cleared,
        stats.max_queue_wait
    );
    for m in &stats.members {
        println!(
            "  {:<9} served {}, pid {}, RSS {} KiB",
            m.name,
            m.served,
            m.pid.unwrap_or_default(),
            m.rss_kib.unwrap_or_default()
        );
    }

    // Shutdown: refuse new work, let running turns finish (up to 10 s), stop every CLI.
    pool.drain(Duration::from_secs(10)).await?;
    println!("drained");
    Ok(())
}
