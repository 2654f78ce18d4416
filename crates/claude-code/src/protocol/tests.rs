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

/// Parses, serializes and parses again: both parses agree, and the JSON is the line's.
fn stable(line: &str) -> Inbound {
    let parsed = round_trip(line);
    let again =
        Inbound::parse(&serde_json::to_string(&parsed).expect("serializes")).expect("parses again");
    assert_eq!(parsed, again, "{line}");
    parsed
}

// Found by the `protocol` fuzz target (fuzz/regressions/protocol/control-response-*):
// a control response missing `subtype`, `request_id`, `response` or `error` was written
// back with made-up values (`"subtype":null`, `"request_id":""`, …), and a second parse
// read a different error.
#[test]
fn malformed_control_responses_round_trip_exactly() {
    let crash = r#"{"type":"control_response","responsbtye":{"subtype":"success","request_id":"req=_3_x","response":{"mode":"acceptEdits"}}}"#;
    for line in [
        crash,
        r#"{"type":"control_response"}"#,
        r#"{"type":"control_response","response":{"request_id":"r","response":{}}}"#,
        r#"{"type":"control_response","response":{"subtype":"success"}}"#,
        r#"{"type":"control_response","response":{"subtype":"error","request_id":"r"}}"#,
        r#"{"type":"control_response","response":{"subtype":5,"request_id":"r"}}"#,
        r#"{"type":"control_response","response":{"subtype":null}}"#,
    ] {
        let Inbound::ControlResponse(r) = stable(line) else {
            panic!("not a control response: {line}");
        };
        assert!(r.request_id.is_empty() || r.request_id == "r", "{line}");
    }
    let Inbound::ControlResponse(r) = stable(crash) else {
        unreachable!()
    };
    let err = r.result.expect_err("no subtype is an error");
    assert!(err.message.contains("without a subtype"), "{}", err.message);
    // A well-formed answer built in code is still written whole.
    let built = ControlResponse::error("r", ControlError::new(""));
    assert_eq!(
        serde_json::to_value(&built).expect("serializes"),
        json!({"type":"control_response","response":{"subtype":"error","request_id":"r","error":""}})
    );
}

// Found by the `protocol` fuzz target (fuzz/regressions/protocol/float-not-exact):
// serde_json's default float parsing can be one ulp off, so a cost read from a line,
// written back and read again changed (0.00019999999999999998 became 0.0002).
#[test]
fn floats_parse_exactly_and_survive_a_round_trip() {
    let line = r#"{"type":"result","subtype":"success","total_cost_usd":0.0001999999999999999815,"session_id":"s"}"#;
    let Inbound::Message(Message::Result(r)) = stable(line) else {
        panic!("not a result");
    };
    // The correctly rounded double (Python's float("0.0001999999999999999815")).
    assert_eq!(r.total_cost_usd, Some(0.000_199_999_999_999_999_98));
    assert_ne!(r.total_cost_usd, Some(0.0002));
    let unknown = r#"{"cost":0.0001999999999999999815}"#;
    stable(unknown);
}
