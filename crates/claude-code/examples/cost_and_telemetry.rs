//! Cost tracking, budgets and telemetry: per-turn and per-session cost under a
//! supervisor, a session budget that refuses further turns, a pool whose isolated turns
//! count in its cost report, the SDK's `tracing` spans on stderr, and its metrics (as
//! Prometheus text with `--features prometheus`).
//!
//! `cargo run -p claude-code-host --example cost_and_telemetry [--features prometheus]`
//! (`RUST_LOG=claude_code=debug` for more spans). With `ANTHROPIC_API_KEY` set it talks
//! to the real API; without it, it starts the project's mock Messages API on 127.0.0.1
//! (which echoes each prompt and reports 100 input and 20 output tokens per turn) and
//! says so, so it works offline. Either way it runs the real `claude` CLI. Guide:
//! `docs/guides/hosting.md`.

#[path = "common/offline.rs"]
mod offline;

use claude_code::{telemetry, Options, Pool, SessionSpec, Supervisor, SupervisorError};
use claude_code_mock::{Reply, Script};

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    // Spans and events on stderr: one line per closed `claude_code.turn` span, with its
    // tokens, cost, duration and outcome.
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "claude_code=info".to_string()),
        )
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // Metrics: with the `prometheus` feature, a Prometheus recorder for this process.
    #[cfg(feature = "prometheus")]
    let prometheus = telemetry::install_prometheus()?;

    let env = offline::Offline::start(Script::new().fallback(Reply::echo().usage(100, 20))).await?;
    let options = || env.options(Options::new().cwd(env.workdir()));

    // A supervisor with a session budget: a turn is refused once the session has spent
    // its budget (checked before each turn, so the turn that crosses it completes).
    let sup = Supervisor::builder()
        .name("billing")
        .budget_usd(5.0)
        .child(
            SessionSpec::new("metered")
                .options(options())
                .budget_usd(0.000_001),
        )
        .child(SessionSpec::new("free").options(options()))
        .start()
        .await?;
    let metered = sup.session("metered");
    let summary = metered.stream("First question").await?.collect().await?;
    println!(
        "metered> {}  (${:.6}, {} in / {} out tokens)",
        summary.text,
        summary.cost_usd().unwrap_or_default(),
        summary.usage().map_or(0, |u| u.input_tokens),
        summary.usage().map_or(0, |u| u.output_tokens),
    );
    match metered.stream("Second question").await {
        Err(SupervisorError::BudgetExceeded {
            scope, spent_usd, ..
        }) => println!("refused: the budget of {scope} is spent (${spent_usd:.6})"),
        Err(e) => return Err(e.into()),
        Ok(_) => println!("unexpected: the second turn was accepted"),
    }
    for prompt in ["One", "Two"] {
        let text = sup
            .session("free")
            .stream(prompt)
            .await?
            .final_text()
            .await?;
        println!("free> {text}");
    }
    let report = sup.cost_report().await?;
    for (name, totals) in &report.sessions {
        println!(
            "  {name:<8} {} turns, ${:.6}, {} output tokens",
            totals.turns, totals.cost_usd, totals.usage.output_tokens
        );
    }
    println!(
        "  total    {} turns, ${:.6}",
        report.total.turns, report.total.cost_usd
    );
    sup.stop().await?;

    // A pool: its members and its isolated turns in one report (serialisable).
    let pool = Pool::builder(SessionSpec::new("worker").options(options()))
        .size(1)
        .warm_spares(1)
        .start()
        .await?;
    pool.stream("On a member").await?.final_text().await?;
    pool.isolated("On a warm spare").await?.final_text().await?;
    let report = pool.cost_report().await?;
    println!("\npool cost report (members and isolated turns):");
    for (name, totals) in &report.sessions {
        println!(
            "  {name:<16} {} turns, ${:.6}",
            totals.turns, totals.cost_usd
        );
    }
    println!("  as JSON: {}", serde_json::to_string(&report.total)?);

    // CLI memory, sampled from /proc (also a gauge, see `telemetry::metric`).
    let rss = telemetry::sample_cli_rss();
    println!(
        "live CLIs: {} ({} MiB)",
        rss.processes,
        rss.total_bytes >> 20
    );
    pool.stop().await?;

    #[cfg(feature = "prometheus")]
    {
        println!("\nPrometheus exposition (claude_code_turns, _tokens, _cost):");
        for line in prometheus.render().lines().filter(|l| {
            !l.starts_with('#')
                && [
                    "claude_code_turns_total",
                    "claude_code_tokens_total",
                    "claude_code_cost_usd",
                ]
                .iter()
                .any(|m| l.starts_with(m))
        }) {
            println!("  {line}");
        }
    }
    #[cfg(not(feature = "prometheus"))]
    println!("(run with `--features prometheus` to print the metrics as Prometheus text)");
    Ok(())
}
