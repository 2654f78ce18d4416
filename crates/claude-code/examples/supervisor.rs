//! Hosting named sessions under a supervisor: three named sessions, a dynamic one started
//! and terminated, a restart that keeps the conversation, a short health-check loop, and
//! a summary of sessions, turns and cost.
//!
//! `cargo run -p claude-code-host --example supervisor` (or `./scripts/demo`). With
//! `ANTHROPIC_API_KEY` set it talks to the real API; without it, it starts the project's
//! mock Messages API on 127.0.0.1 (which echoes each prompt) and says so, so it works
//! offline. Either way it runs the real `claude` CLI (see the README).

#[path = "common/offline.rs"]
mod offline;

use std::time::Duration;

use claude_code::{Health, Options, SessionSpec, Supervisor};
use claude_code_mock::{Reply, Script};

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    // Offline, the mock answers every turn with `echo: <prompt>`.
    let env = offline::Offline::start(Script::new().fallback(Reply::echo())).await?;
    let spec = |name: &str, prompt: &str| {
        SessionSpec::new(name)
            .options(env.options(Options::new().cwd(env.workdir())))
            .system_prompt(prompt)
    };

    let sup = Supervisor::builder()
        .name("claude")
        .max_restarts(5)
        .max_seconds(10)
        // Health checks also ask each CLI for a control round-trip within 5 s.
        .health_probe(Duration::from_secs(5))
        .child(spec("assistant", "General-purpose helper"))
        .child(spec("code_reviewer", "You review code"))
        .child(spec("docs_writer", "You write documentation"))
        .start()
        .await?;
    println!("supervisor `{}` started:", sup.name());
    for child in sup.list_sessions().await? {
        println!(
            "  {:<14} pid {:<8} {:?}",
            child.name,
            child.pid.unwrap_or_default(),
            child.status
        );
    }

    // A dynamic session: started, used, terminated.
    let temp = sup
        .start_session(spec("temp_agent", "You answer briefly").max_turns(5))
        .await?;
    let text = temp
        .stream("Summarise the release notes")
        .await?
        .final_text()
        .await?;
    println!("\ntemp_agent> {text}");
    println!(
        "sessions with temp_agent: {}",
        sup.count_sessions().await?.active
    );
    sup.terminate_session("temp_agent").await?;
    println!(
        "sessions after terminating it: {}",
        sup.count_sessions().await?.active
    );

    // A handle by name keeps working across restarts of the CLI behind it, and a
    // restart resumes the conversation (`--resume <session id>`), as after a crash.
    let assistant = sup.session("assistant");
    let text = assistant
        .stream("Remember the word pineapple")
        .await?
        .final_text()
        .await?;
    println!("\nassistant> {text}");
    let (id, pid) = (assistant.session_id().await?, assistant.pid().await?);
    sup.restart_session("assistant").await?;
    let text = assistant
        .stream("Which word did I ask you to remember?")
        .await?
        .final_text()
        .await?;
    println!("assistant (restarted)> {text}");
    println!(
        "  pid {} -> {}, conversation {} -> {}",
        pid.unwrap_or_default(),
        assistant.pid().await?.unwrap_or_default(),
        id.unwrap_or_default(),
        assistant.session_id().await?.unwrap_or_default()
    );

    // A short health-check loop: a prompt, then every child's health.
    let rounds = [
        ("code_reviewer", "Is `let x = vec![1][0];` idiomatic?"),
        ("docs_writer", "Document `fn add(a: i32, b: i32) -> i32`"),
        ("assistant", "Thanks, that is all"),
    ];
    for (round, (name, prompt)) in rounds.into_iter().enumerate() {
        let text = sup.session(name).stream(prompt).await?.final_text().await?;
        println!("\n[health round {}] {name}> {text}", round + 1);
        for child in sup.health().await? {
            let health = match child.health {
                Health::Healthy => "healthy".to_string(),
                Health::Unhealthy(reason) => format!("UNHEALTHY: {reason}"),
                other => format!("{other:?}"),
            };
            println!("  {:<14} {:?}, {health}", child.name, child.status);
        }
    }

    // Summary: sessions, turns, restarts and cost (terminated sessions included).
    let report = sup.cost_report().await?;
    println!("\nsummary:");
    for child in sup.list_sessions().await? {
        println!(
            "  {:<14} {} turns, {} restarts, ${:.4}",
            child.name, child.turns, child.restarts, child.cost_usd
        );
    }
    let counts = sup.count_sessions().await?;
    println!(
        "  {} sessions running; {} turns in total, ${:.4} spent (temp_agent included)",
        counts.active, report.total.turns, report.total.cost_usd
    );
    sup.stop().await?;
    Ok(())
}
