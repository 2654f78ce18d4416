//! Parsing speed of the session's hot path: `Inbound::parse` against the serde floor
//! (`serde_json::from_str::<Value>`) on a 1 KiB assistant text line, a 2.1.332 `result`
//! line (whose `type` is the 19th key), a `stream_event` text delta and a tool-use turn;
//! plus `peek_type`, the cheap type probe.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use claude_code::protocol::{peek_type, Inbound};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::Value;

const PARTIAL: &str =
    include_str!("../tests/fixtures/cli-2.1.332-partial-messages-control-requests.stdout.jsonl");
const TOOL: &str = include_str!("../tests/fixtures/cli-2.1.332-tool-hook-ask-allow.stdout.jsonl");

/// The captured assistant text line with its text padded so the line is 1 KiB.
fn assistant_1k() -> String {
    let line = PARTIAL
        .lines()
        .find(|l| l.starts_with(r#"{"type":"assistant""#))
        .unwrap_or_default();
    let pad = 1024usize.saturating_sub(line.len());
    let text = format!(
        "Hello from mock{}",
        " lorem ipsum dolor sit amet".repeat(pad / 27 + 1)
    );
    line.replacen("Hello from mock", &text[..15 + pad], 1)
}

fn find(text: &str, needle: &str) -> String {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_default()
        .to_owned()
}

fn bench(c: &mut Criterion) {
    assert_eq!(assistant_1k().len(), 1024);
    let cases = [
        ("assistant_text_1k", assistant_1k()),
        ("result_2.1.332", find(PARTIAL, r#""type":"result""#)),
        ("stream_event_delta", find(PARTIAL, "text_delta")),
        ("assistant_tool_use", find(TOOL, r#""type":"tool_use""#)),
        ("user_tool_result", find(TOOL, r#""type":"tool_result""#)),
    ];
    let mut group = c.benchmark_group("parse");
    for (name, line) in &cases {
        assert!(Inbound::parse(line).is_ok(), "{name} parses");
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_with_input(BenchmarkId::new("Inbound::parse", name), line, |b, l| {
            b.iter(|| Inbound::parse(black_box(l)))
        });
        group.bench_with_input(BenchmarkId::new("serde_json::Value", name), line, |b, l| {
            b.iter(|| serde_json::from_str::<Value>(black_box(l)))
        });
        group.bench_with_input(BenchmarkId::new("peek_type", name), line, |b, l| {
            b.iter(|| peek_type(black_box(l)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
