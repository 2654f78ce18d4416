//! Messages per second a [`Session`] consumes from a CLI that floods assistant messages,
//! beside a plain `BufRead` + `serde_json::from_str::<Value>` loop reading the same
//! bytes from the same fake CLI through a pipe. Prints both and their ratio.
//!
//! `cargo bench -p claude-code-host-tests --bench session_throughput`
//! (env `FLOOD` = messages per turn, default 20000; `TURNS`, default 10).

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use claude_code::{Message, Options, Session};
use futures::StreamExt;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-claude");

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The baseline: the fake CLI's stdout read with `BufRead::read_line` and parsed into
/// `serde_json::Value`, one turn at a time.
fn plain_loop(flood: usize, turns: usize) -> (Duration, usize) {
    let mut child = Command::new(FAKE)
        .env("FAKE_CLAUDE_FLOOD", flood.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn fake CLI");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let init = r#"{"type":"control_request","request_id":"r1","request":{"subtype":"initialize"}}"#;
    writeln!(stdin, "{init}").expect("write");
    let mut line = String::new();
    out.read_line(&mut line).expect("init reply");
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..turns {
        let started = Instant::now();
        writeln!(
            stdin,
            r#"{{"type":"user","message":{{"role":"user","content":"go"}},"parent_tool_use_id":null,"session_id":"default"}}"#
        )
        .expect("write");
        count = 0;
        loop {
            line.clear();
            if out.read_line(&mut line).expect("read") == 0 {
                panic!("fake CLI closed stdout");
            }
            let v: serde_json::Value = serde_json::from_str(&line).expect("json");
            count += 1;
            if v["type"] == "result" {
                break;
            }
        }
        times.push(started.elapsed());
    }
    drop(stdin);
    let _ = child.wait();
    (median(times), count)
}

async fn sdk(flood: usize, turns: usize) -> (Duration, usize) {
    let session = Session::start(
        Options::new()
            .cli_path(FAKE)
            .env("FAKE_CLAUDE_FLOOD", flood.to_string()),
    )
    .await
    .expect("start");
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..turns {
        let started = Instant::now();
        let mut stream = session.stream("go").await.expect("stream");
        count = 0;
        let mut text_bytes = 0;
        while let Some(item) = stream.next().await {
            let message = item.expect("message");
            if let Message::Assistant(a) = &message {
                text_bytes += a.message.content.len();
            }
            count += 1;
        }
        assert!(text_bytes > 0);
        times.push(started.elapsed());
    }
    session.stop().await.expect("stop");
    (median(times), count)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("session_throughput: bench");
        return;
    }
    // `cargo bench` passes `--bench`; under `cargo test` this is a quick smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let flood = env_usize("FLOOD", if full { 20_000 } else { 500 });
    let turns = env_usize("TURNS", if full { 10 } else { 2 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Warm up both paths once (page cache, allocator).
    plain_loop(flood, 1);
    rt.block_on(sdk(flood, 1));

    let (plain_t, plain_n) = plain_loop(flood, turns);
    let (sdk_t, sdk_n) = rt.block_on(sdk(flood, turns));
    let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64();
    let plain_rate = rate(plain_n, plain_t);
    let sdk_rate = rate(sdk_n, sdk_t);
    println!("flood: {flood} x 1 KiB assistant messages per turn, median of {turns} turns");
    println!("plain BufRead + from_str::<Value>: {plain_rate:>10.0} msgs/s ({plain_t:?} per turn)");
    println!("claude_code::Session stream:       {sdk_rate:>10.0} msgs/s ({sdk_t:?} per turn)");
    println!("ratio (sdk / plain): {:.2}x", sdk_rate / plain_rate);
}
