//! Unit tests of the wire machinery (lenient decoding, null/absent tracking, number
//! encoding, tag dispatch) and a round trip of every captured CLI line. Behaviour-level
//! tests live in `tests/protocol_*.rs`.

use serde_json::{json, Value};

use super::wire::{encode_f64, WireMask};
use super::*;

const CAPTURES: &[&str] = &[
    include_str!("../../tests/fixtures/cli-2.1.197-partial-messages-control-requests.stdout.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.197-sdkmcp-hook-ask-deny.stdout.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.197-tool-hook-ask-allow.stdout.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.332-partial-messages-control-requests.stdout.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.332-sdkmcp-hook-ask-deny.stdout.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.332-tool-hook-ask-allow.stdout.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.197-partial-messages-control-requests.stdin.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.197-sdkmcp-hook-ask-deny.stdin.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.197-tool-hook-ask-allow.stdin.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.332-partial-messages-control-requests.stdin.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.332-sdkmcp-hook-ask-deny.stdin.jsonl"),
    include_str!("../../tests/fixtures/cli-2.1.332-tool-hook-ask-allow.stdin.jsonl"),
];

fn round_trip(line: &str) -> Inbound {
    let parsed = Inbound::parse(line).expect("parses");
    let want: Value = serde_json::from_str(line).expect("json");
    assert_eq!(
        serde_json::to_value(&parsed).expect("serializes"),
        want,
        "{line}"
    );
    parsed
}

#[test]
fn every_capture_line_round_trips_without_unknowns() {
    let mut n = 0;
    for line in CAPTURES.iter().flat_map(|c| c.lines()) {
        let parsed = round_trip(line);
        if let Inbound::Message(m) = &parsed {
            assert!(!matches!(m, Message::Unknown(_)), "{line}");
        }
        n += 1;
    }
    assert_eq!(n, 146);
}

#[test]
fn wire_mask_bits() {
    let mut m = WireMask::default();
    m.set(0);
    m.set(63);
    assert!(m.has(0) && m.has(63) && !m.has(1));
    m.clear(0);
    assert!(!m.has(0));
}

#[test]
fn floats_encode_like_json_stringify() {
    let enc = |v: f64| {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        encode_f64(v, &mut ser).expect("encodes");
        String::from_utf8(out).expect("utf8")
    };
    assert_eq!(enc(0.0), "0");
    assert_eq!(enc(-0.0), "0");
    assert_eq!(enc(3.0), "3");
    assert_eq!(enc(-7.0), "-7");
    assert_eq!(enc(0.5), "0.5");
    assert_eq!(enc(1e300), "1e+300");
    assert_eq!(enc(9_007_199_254_740_993.0 * 4.0), "3.602879701896397e+16");
}

#[test]
fn lenient_scalars_keep_mismatches_in_extra() {
    let line = r#"{"type":"tool_progress","tool_use_id":5,"tool_name":"Bash","elapsed_time_seconds":"slow"}"#;
    let Inbound::Message(Message::ToolProgress(p)) = round_trip(line) else {
        panic!("expected tool_progress");
    };
    assert_eq!(p.tool_use_id, "");
    assert_eq!(p.tool_name, "Bash");
    assert_eq!(p.elapsed_time_seconds, None);
    assert_eq!(p.extra["tool_use_id"], 5);
    assert_eq!(p.extra["elapsed_time_seconds"], "slow");
}

#[test]
fn out_of_range_integers_are_kept() {
    let line = r#"{"type":"result","num_turns":4294967296,"api_error_status":-1,"result_index":18446744073709551615}"#;
    let Inbound::Message(Message::Result(r)) = round_trip(line) else {
        panic!("expected result");
    };
    assert_eq!(r.num_turns, None);
    assert_eq!(r.api_error_status, None);
    assert_eq!(r.result_index, Some(u64::MAX));
}

#[test]
fn optional_tag_is_written_back_only_when_present() {
    let with: ApiMessage =
        serde_json::from_value(json!({"type": "message", "content": []})).expect("parses");
    let without: ApiMessage = serde_json::from_value(json!({"content": []})).expect("parses");
    assert_eq!(serde_json::to_value(&with).expect("ser")["type"], "message");
    assert_eq!(
        serde_json::to_value(&without).expect("ser"),
        json!({"content": []})
    );
}

#[test]
fn prefix_entries_before_the_tag_are_decoded() {
    let line = r#"{"is_error":true,"usage":{"input_tokens":3,"output_tokens":4},"permission_denials":[{"tool_name":"Bash","tool_use_id":"t"}],"modelUsage":{"m":{"costUSD":0.25}},"weird":[1],"type":"result","subtype":"error_during_execution"}"#;
    let Inbound::Message(Message::Result(r)) = round_trip(line) else {
        panic!("expected result");
    };
    assert!(r.is_error);
    assert_eq!(r.usage.as_ref().map(|u| u.output_tokens), Some(4));
    assert_eq!(r.permission_denials[0].tool_name, "Bash");
    assert_eq!(r.model_usage["m"].cost_usd, 0.25);
    assert_eq!(r.extra["weird"], json!([1]));
    assert_eq!(r.subtype, "error_during_execution");
}

#[test]
fn debug_output_hides_the_mask() {
    let block = TextBlock::new("x");
    let dbg = format!("{block:?}");
    assert!(
        dbg.contains("text: \"x\"") && !dbg.contains("WireMask"),
        "{dbg}"
    );
}

#[test]
fn content_block_from_value() {
    assert_eq!(
        ContentBlock::from_value(json!({"type": "text", "text": "a"})),
        ContentBlock::text("a")
    );
    let odd = json!({"type": "mystery", "x": 1});
    assert_eq!(
        ContentBlock::from_value(odd.clone()),
        ContentBlock::Unknown(odd)
    );
    let bad = json!({"type": "text", "text": "a", "citations": [1]});
    assert!(matches!(
        ContentBlock::from_value(bad),
        ContentBlock::Text(_)
    ));
}

#[test]
fn peek_type_finds_the_type_anywhere() {
    assert_eq!(
        peek_type(r#"{"type":"assistant","message":{"#).as_deref(),
        Some("assistant")
    );
    assert_eq!(
        peek_type(r#"{"a":[1,{"type":"x"}],"type":"result"}"#).as_deref(),
        Some("result")
    );
    assert_eq!(
        peek_type(r#"{"typ\u0065":"user"}"#).as_deref(),
        Some("user")
    );
    for line in [
        "",
        "[SandboxDebug] x",
        r#"{"a":1}"#,
        r#"{"type":5}"#,
        "[1]",
        r#"{"a":"#,
    ] {
        assert_eq!(peek_type(line), None, "{line}");
    }
    for line in CAPTURES.iter().flat_map(|c| c.lines()) {
        let want: Value = serde_json::from_str(line).expect("json");
        assert_eq!(peek_type(line).as_deref(), want["type"].as_str());
    }
}
