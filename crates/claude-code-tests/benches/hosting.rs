//! Hosting figures on one host, printed with their ratios:
//! 1. SDK memory: this process's RSS growth per session with 1,000 hibernated named
//!    sessions, and with 64 live sessions of the fake CLI (each after one turn);
//!    target < 64 KiB per session.
//! 2. Per-request latency: a warm spare (acquire + turn) against a cold `query()`,
//!    median over `REQUESTS` (default 20) requests with the real CLI and a mock that
//!    replies at once; target warm <= 1/10 of cold.
//! 3. 1,000 concurrent turns through a pool of 8 fake-CLI sessions: all complete,
//!    queue-wait percentiles, turns per second, and a leak check.
//!
//! `cargo bench -p claude-code-tests --bench hosting` (env `SECTIONS`: any of
//! `memory,latency,throughput`, default all; `REQUESTS`; `TURNS`, default 1000).

use std::path::Path;
use std::time::{Duration, Instant};

use claude_code::{Pool, SessionSpec, Spares, Supervisor};
use claude_code_tests::{rss_kib, wait_until_gone, Reply, Script, TestEnv};

const FAKE: &str = env!("CARGO_BIN_EXE_fake-claude");

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn self_rss_kib() -> u64 {
    rss_kib(std::process::id()).unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn wait_no_leftovers(env: &TestEnv) -> usize {
    tokio::task::block_in_place(|| wait_until_gone(Duration::from_secs(30), || env.leftovers()))
        .len()
}

async fn memory(env: &TestEnv) {
    let fake: &Path = FAKE.as_ref();
    // 1,000 hibernated named sessions: records only, no CLI.
    let before = self_rss_kib();
    let sup = Supervisor::builder()
        .name("hibernated")
        .children((0..1000).map(|i| {
            SessionSpec::new(format!("user-{i:04}"))
                .options(env.options_for(fake))
                .idle_timeout(Duration::from_secs(600))
                .start_hibernated()
        }))
        .start()
        .await
        .expect("supervisor");
    let counts = sup.count_sessions().await.expect("count");
    assert_eq!(counts.hibernated, 1000);
    let after = self_rss_kib();
    let per = (after.saturating_sub(before)) as f64 / 1000.0;
    println!(
        "memory: 1000 hibernated named sessions: SDK RSS {before} KiB -> {after} KiB, \
         {per:.1} KiB per session (target < 64 KiB: {})",
        if per < 64.0 { "met" } else { "MISSED" }
    );
    sup.stop().await.expect("stop");

    // 64 live fake-CLI sessions, one turn each.
    let before = self_rss_kib();
    let sup = Supervisor::builder()
        .name("live")
        .children(
            (0..64).map(|i| SessionSpec::new(format!("live-{i}")).options(env.options_for(fake))),
        )
        .start()
        .await
        .expect("supervisor");
    for i in 0..64 {
        let text = sup
            .session(format!("live-{i}"))
            .stream("hello")
            .await
            .expect("stream")
            .final_text()
            .await
            .expect("turn");
        assert!(text.contains("hello"));
    }
    let after = self_rss_kib();
    let per = (after.saturating_sub(before)) as f64 / 64.0;
    let cli: u64 = sup
        .list_sessions()
        .await
        .expect("list")
        .iter()
        .filter_map(|c| c.pid.and_then(rss_kib))
        .sum();
    println!(
        "memory: 64 live fake-CLI sessions: SDK RSS {before} KiB -> {after} KiB, {per:.1} KiB \
         per session (target < 64 KiB: {}); the 64 fake CLIs themselves: {cli} KiB",
        if per < 64.0 { "met" } else { "MISSED" }
    );
    sup.stop().await.expect("stop");
    println!(
        "memory: leftover processes: {}",
        wait_no_leftovers(env).await
    );
}

async fn latency(requests: usize) {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let opts = env.options();
    // Warm up the page cache and the mock once.
    claude_code::query("warm up", opts.clone())
        .await
        .expect("warm-up");

    let mut cold = Vec::new();
    for i in 0..requests {
        let started = Instant::now();
        let summary = claude_code::query(format!("cold {i}"), opts.clone())
            .await
            .expect("cold query");
        cold.push(started.elapsed());
        assert_eq!(summary.text, format!("echo: cold {i}"));
    }

    // The replacement starts after the request, not during it (2 cores here).
    let spares = Spares::builder(opts.clone())
        .count(2)
        .refill_delay(Duration::from_millis(800))
        .start()
        .await
        .expect("spares");
    let mut warm = Vec::new();
    for i in 0..requests {
        // Requests arrive no faster than the spares refill: every one finds a spare,
        // and no start is running when it begins.
        spares.wait_ready(2).await.expect("ready");
        let started = Instant::now();
        let text = spares
            .acquire()
            .await
            .expect("acquire")
            .stream(format!("warm {i}"))
            .await
            .expect("stream")
            .final_text()
            .await
            .expect("turn");
        warm.push(started.elapsed());
        assert_eq!(text, format!("echo: warm {i}"));
    }
    let stats = spares.stats().await.expect("stats");
    spares.stop().await;
    cold.sort();
    warm.sort();
    let (c, w) = (percentile(&cold, 0.5), percentile(&warm, 0.5));
    println!(
        "latency: cold query() median {:.1} ms (p90 {:.1} ms) over {requests} requests",
        ms(c),
        ms(percentile(&cold, 0.9))
    );
    println!(
        "latency: warm spare median {:.1} ms (p90 {:.1} ms) over {requests} requests; \
         cold acquires {}",
        ms(w),
        ms(percentile(&warm, 0.9)),
        stats.cold_acquires
    );
    let ratio = w.as_secs_f64() / c.as_secs_f64();
    println!(
        "latency: warm / cold = {ratio:.3} (1/{:.1}; target <= 1/10: {})",
        1.0 / ratio,
        if ratio <= 0.1 { "met" } else { "MISSED" }
    );
    println!(
        "latency: leftover processes: {}",
        wait_no_leftovers(&env).await
    );
}

async fn throughput(env: &TestEnv, turns: usize) {
    let fake: &Path = FAKE.as_ref();
    let pool = Pool::builder(SessionSpec::new("bench").options(env.options_for(fake)))
        .size(8)
        .max_queue(turns)
        .queue_timeout(Duration::from_secs(300))
        .start()
        .await
        .expect("pool");
    let started = Instant::now();
    let tasks: Vec<_> = (0..turns)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let asked = Instant::now();
                let stream = pool.stream(format!("turn {i}")).await?;
                let waited = asked.elapsed();
                let text = stream.final_text().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((waited, text))
            })
        })
        .collect();
    let mut waits = Vec::new();
    let mut failed = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok((waited, text))) if text == format!("echo: turn {i}") => waits.push(waited),
            _ => failed += 1,
        }
    }
    let total = started.elapsed();
    let stats = pool.stats().await.expect("stats");
    pool.stop().await.expect("stop");
    waits.sort();
    println!(
        "throughput: {} of {turns} turns complete ({failed} failed) through a pool of 8 fake-CLI \
         sessions in {:.0} ms = {:.0} turns/s",
        waits.len(),
        ms(total),
        waits.len() as f64 / total.as_secs_f64()
    );
    println!(
        "throughput: queue wait (call to turn accepted) p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         pool max_queue_wait {:.1} ms; served {}, rejected {}",
        ms(percentile(&waits, 0.5)),
        ms(percentile(&waits, 0.99)),
        ms(percentile(&waits, 1.0)),
        ms(stats.max_queue_wait),
        stats.served,
        stats.rejected
    );
    println!(
        "throughput: leftover processes: {}",
        wait_no_leftovers(env).await
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("hosting: bench");
        return;
    }
    // `cargo bench` passes `--bench`; under `cargo test` this is a quick smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let default_sections = if full {
        "memory,latency,throughput"
    } else {
        "throughput"
    };
    let sections = std::env::var("SECTIONS").unwrap_or_else(|_| default_sections.into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        // Memory first, before the other sections grow the heap.
        if sections.contains("memory") {
            memory(&env).await;
        }
        if sections.contains("latency") {
            latency(env_usize("REQUESTS", 20).max(20)).await;
        }
        if sections.contains("throughput") {
            throughput(&env, env_usize("TURNS", if full { 1000 } else { 100 })).await;
        }
    });
}
