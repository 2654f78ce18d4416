//! Hosting named sessions under a supervisor: restarts within an intensity limit,
//! conversations resumed after a crash, dynamic sessions, cost per session.
//!
//! `cargo run -p claude-code --example supervisor` (needs `ANTHROPIC_API_KEY` and the
//! `claude` CLI; see the README).

use claude_code::{SessionSpec, Supervisor};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sup = Supervisor::builder()
        .name("claude")
        .max_restarts(5)
        .max_seconds(10)
        .child(SessionSpec::new("assistant").system_prompt("General-purpose helper"))
        .child(SessionSpec::new("code_reviewer").system_prompt("You review code"))
        .start()
        .await?;
    sup.start_session(SessionSpec::new("temp_agent").max_turns(5))
        .await?;

    // A handle by name keeps working across restarts of the CLI behind it.
    let reviewer = sup.session("code_reviewer");
    let text = reviewer
        .stream("Is `let x = vec![1][0];` idiomatic?")
        .await?
        .final_text()
        .await?;
    println!("{text}");

    for child in sup.list_sessions().await? {
        println!("{child:?}");
    }
    sup.terminate_session("temp_agent").await?;
    sup.stop().await?;
    Ok(())
}
