//! Pins the forward-compatibility rules of the wire types: any key order, unknown types,
//! subtypes, blocks and fields kept verbatim, odd values never fatal, invalid JSON an
//! error and never a panic.

use claude_code::protocol::{
    ContentBlock, ControlError, ControlResponse, Inbound, InboundRequest, InitializeRequest,
    Message, OutboundRequest, ResultMessage, SystemKind, UserContent, UserInput,
};
use serde_json::{json, Value};

/// Parses, checks the exact round trip, and returns the parsed line.
fn parse(line: &str) -> Inbound {
    let parsed = Inbound::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    let want: Value = serde_json::from_str(line).expect("test line is JSON");
    assert_eq!(
        serde_json::to_value(&parsed).expect("serializes"),
        want,
        "round trip of {line}"
    );
    let generic: Inbound = serde_json::from_value(want).expect("generic path parses");
    assert_eq!(generic, parsed, "generic path of {line}");
    parsed
}

fn message(line: &str) -> Message {
    match parse(line) {
        Inbound::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn type_key_last_parses_at_every_level() {
    let line = r#"{"message":{"content":[{"text":"hi","type":"text"},{"input":{"a":1},"name":"Bash","id":"t1","type":"tool_use"}],"role":"assistant","type":"message"},"session_id":"s","parent_tool_use_id":null,"type":"assistant"}"#;
    let Message::Assistant(a) = message(line) else {
        panic!("expected assistant");
    };
    assert_eq!(a.session_id.as_deref(), Some("s"));
    assert_eq!(a.message.content[0].as_text(), Some("hi"));
    let call = a.message.content[1].as_tool_use().expect("tool use");
    assert_eq!(
        (call.id.as_str(), call.input.clone()),
        ("t1", json!({"a": 1}))
    );

    let line = r#"{"subtype":"can_use_tool","tool_name":"Write"}"#;
    let req: InboundRequest = serde_json::from_str(line).expect("parses");
    assert!(matches!(req, InboundRequest::CanUseTool(r) if r.tool_name == "Write"));
    let line = r#"{"request_id":"r1","request":{"tool_name":"Write","input":{},"subtype":"can_use_tool"},"type":"control_request"}"#;
    let Inbound::ControlRequest(r) = parse(line) else {
        panic!("expected a control request");
    };
    assert_eq!(r.request_id, "r1");
    assert!(matches!(r.request, InboundRequest::CanUseTool(_)));
    let line = r#"{"response":{"request_id":"r2","subtype":"success"},"type":"control_response"}"#;
    assert!(
        matches!(parse(line), Inbound::ControlResponse(r) if r.request_id == "r2" && r.result == Ok(None))
    );
}

#[test]
fn result_fields_read_the_same_whatever_the_key_order() {
    let first = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"errors":["too many"],"num_turns":3,"total_cost_usd":0.5,"session_id":"s"}"#;
    let last = r#"{"subtype":"error_max_turns","is_error":true,"errors":["too many"],"num_turns":3,"total_cost_usd":0.5,"session_id":"s","type":"result"}"#;
    let (Message::Result(a), Message::Result(b)) = (message(first), message(last)) else {
        panic!("expected results");
    };
    assert_eq!(a, b);
    assert!(!a.is_success());
    assert_eq!(a.errors, ["too many"]);
    assert_eq!(a.num_turns, Some(3));
}

#[test]
fn unknown_message_type_is_kept_whole() {
    let line = r#"{"type":"transcript_mirror","filePath":"/x","entries":[1,2],"session_id":"s"}"#;
    let m = message(line);
    assert!(matches!(&m, Message::Unknown(v) if v["entries"] == json!([1, 2])));
    assert_eq!(m.type_name(), "transcript_mirror");
    assert_eq!(m.session_id(), Some("s"));
    // Tag not first, and no tag at all.
    let m = message(r#"{"a":1,"type":"brand_new"}"#);
    assert_eq!(m.type_name(), "brand_new");
    let m = message(r#"{"a":1}"#);
    assert!(matches!(&m, Message::Unknown(v) if *v == json!({"a": 1})));
    // A non-string type.
    let m = message(r#"{"type":7,"b":true}"#);
    assert!(matches!(&m, Message::Unknown(v) if v["type"] == 7));
}

#[test]
fn unknown_system_subtype_keeps_its_fields() {
    let line = r#"{"type":"system","subtype":"memory_recall","hits":[{"k":"v"}],"uuid":"u","session_id":"s"}"#;
    let Message::System(s) = message(line) else {
        panic!("expected system");
    };
    assert_eq!(s.subtype, "memory_recall");
    assert_eq!(s.kind(), SystemKind::Unknown);
    assert_eq!(s.extra["hits"], json!([{"k": "v"}]));
}

#[test]
fn known_system_subtypes_have_typed_views() {
    let cases = [
        (
            r#"{"type":"system","subtype":"task_notification","task_id":"t","status":"completed","output_file":"/o","summary":"done"}"#,
            "TaskNotification",
        ),
        (
            r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":500,"error_status":529,"error":"overloaded"}"#,
            "ApiRetry",
        ),
        (
            r#"{"type":"system","subtype":"compact_boundary","compact_metadata":{"trigger":"auto","pre_tokens":1000}}"#,
            "CompactBoundary",
        ),
        (
            r#"{"type":"system","subtype":"hook_response","hook_id":"h","hook_name":"n","hook_event":"Stop","exit_code":0,"outcome":"success"}"#,
            "HookResponse",
        ),
        (
            r#"{"type":"system","subtype":"task_updated","task_id":"t","patch":{"status":"failed"}}"#,
            "TaskUpdated",
        ),
        (
            r#"{"type":"system","subtype":"session_state_changed","state":"idle"}"#,
            "SessionStateChanged",
        ),
    ];
    for (line, want) in cases {
        let Message::System(s) = message(line) else {
            panic!("expected system");
        };
        let kind = s.kind();
        assert!(format!("{kind:?}").starts_with(want), "{line}: {kind:?}");
        match kind {
            SystemKind::ApiRetry {
                attempt,
                error_status,
                error,
                ..
            } => {
                assert_eq!((attempt, error_status), (Some(2), Some(529)));
                assert_eq!(error, Some(json!("overloaded")));
            }
            SystemKind::CompactBoundary {
                trigger,
                pre_tokens,
                post_tokens,
                ..
            } => {
                assert_eq!(
                    (trigger.as_deref(), pre_tokens, post_tokens),
                    (Some("auto"), Some(1000), None)
                );
            }
            SystemKind::TaskUpdated { status, .. } => assert_eq!(status.as_deref(), Some("failed")),
            _ => {}
        }
    }
}

#[test]
fn unknown_content_block_is_kept_whole() {
    let line = r#"{"type":"assistant","message":{"content":[{"type":"advisor_tool_result","tool_use_id":"x","content":{"n":1}},{"id":"s1","type":"server_tool_use","name":"web_search","input":{"q":"rust"}},{"type":"web_search_tool_result","tool_use_id":"s1","content":[]},{"type":"redacted_thinking","data":"xx"},{"type":"thinking","thinking":"hmm","signature":"sig"},"not-an-object"]}}"#;
    let Message::Assistant(a) = message(line) else {
        panic!("expected assistant");
    };
    let blocks = &a.message.content;
    assert!(matches!(&blocks[0], ContentBlock::Unknown(v) if v["content"]["n"] == 1));
    assert_eq!(blocks[0].type_name(), "advisor_tool_result");
    assert!(matches!(&blocks[1], ContentBlock::ServerToolUse(b) if b.name == "web_search"));
    assert!(matches!(&blocks[2], ContentBlock::WebSearchToolResult(b) if b.tool_use_id == "s1"));
    assert!(matches!(&blocks[3], ContentBlock::RedactedThinking(b) if b.data == "xx"));
    assert!(
        matches!(&blocks[4], ContentBlock::Thinking(b) if b.thinking == "hmm" && b.signature == "sig")
    );
    assert!(matches!(&blocks[5], ContentBlock::Unknown(Value::String(s)) if s == "not-an-object"));
}

#[test]
fn unknown_control_request_subtype_is_kept_whole() {
    let line = r#"{"type":"control_request","request_id":"r","request":{"subtype":"elicitation","mcp_server_name":"m","message":"?"}}"#;
    let Inbound::ControlRequest(r) = parse(line) else {
        panic!("expected a control request");
    };
    let InboundRequest::Unknown { subtype, raw } = &r.request else {
        panic!("expected unknown");
    };
    assert_eq!(subtype, "elicitation");
    assert_eq!(raw["mcp_server_name"], "m");
    assert_eq!(r.request.subtype(), "elicitation");
}

#[test]
fn unknown_fields_are_kept_at_every_level() {
    let line = r#"{"type":"assistant","new_top":1,"message":{"id":"m","new_msg":[1],"content":[{"type":"text","text":"t","new_block":{"x":null}},{"type":"tool_use","id":"a","name":"b","input":{},"caller":"direct"}],"usage":{"input_tokens":1,"output_tokens":2,"new_usage":"u"}},"uuid":"u"}"#;
    let Message::Assistant(a) = message(line) else {
        panic!("expected assistant");
    };
    assert_eq!(a.extra["new_top"], 1);
    assert_eq!(a.message.extra["new_msg"], json!([1]));
    let ContentBlock::Text(t) = &a.message.content[0] else {
        panic!("expected text");
    };
    assert_eq!(t.extra["new_block"], json!({"x": null}));
    let ContentBlock::ToolUse(u) = &a.message.content[1] else {
        panic!("expected tool use");
    };
    assert_eq!(u.extra["caller"], "direct");
    assert_eq!(
        a.message
            .usage
            .as_ref()
            .map(|u| u.extra["new_usage"].clone()),
        Some(json!("u"))
    );

    message(
        r#"{"type":"result","subtype":"success","is_error":false,"modelUsage":{"m":{"inputTokens":1,"newThing":true}},"new_result_field":{"deep":[1,2]}}"#,
    );
    message(
        r#"{"type":"user","message":{"role":"user","content":"x","new_body":2},"isReplay":true,"isSynthetic":false,"new_user":3}"#,
    );
    message(
        r#"{"type":"stream_event","event":{"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{}}},"new_ev":1}"#,
    );
    message(
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1,"utilization":0.9},"uuid":"u","session_id":"s"}"#,
    );
    message(
        r#"{"type":"tool_progress","tool_use_id":"t","tool_name":"Bash","elapsed_time_seconds":2.5,"task_id":null,"extra_thing":1}"#,
    );
}

#[test]
fn unexpected_value_types_are_kept_not_fatal() {
    let line = r#"{"type":"result","subtype":42,"is_error":"yes","num_turns":-1,"duration_ms":1.5,"total_cost_usd":"free","errors":"none","usage":[1],"modelUsage":7,"api_error_status":70000,"session_id":{"id":1}}"#;
    let Message::Result(r) = message(line) else {
        panic!("expected result");
    };
    assert_eq!(r.subtype, "");
    assert!(!r.is_error);
    assert_eq!(
        (r.num_turns, r.duration_ms, r.total_cost_usd),
        (None, None, None)
    );
    assert_eq!((r.api_error_status, r.session_id.as_deref()), (None, None));
    assert!(r.errors.is_empty() && r.usage.is_none() && r.model_usage.is_empty());
    for key in [
        "subtype",
        "is_error",
        "num_turns",
        "duration_ms",
        "total_cost_usd",
        "errors",
    ] {
        assert!(r.extra.contains_key(key), "{key} kept");
    }
    // A known field that is `null` where a value is expected.
    let Message::Assistant(a) = message(r#"{"type":"assistant","message":null}"#) else {
        panic!("expected assistant");
    };
    assert!(a.message.content.is_empty());
    // A tool input that is not an object stays what it was.
    message(
        r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"x","name":"y","input":null}]}}"#,
    );
    // A `type` that says something else than the struct's tag.
    let a: claude_code::protocol::AssistantMessage =
        serde_json::from_str(r#"{"type":"user","uuid":"u"}"#).expect("parses");
    assert_eq!(a.extra["type"], "user");
}

#[test]
fn null_and_absent_stay_distinct() {
    let with_null = message(
        r#"{"type":"assistant","parent_tool_use_id":null,"message":{"stop_reason":null,"content":[]}}"#,
    );
    let absent = message(r#"{"type":"assistant","message":{"content":[]}}"#);
    let (Message::Assistant(a), Message::Assistant(b)) = (&with_null, &absent) else {
        panic!("expected assistants");
    };
    assert_eq!(a.parent_tool_use_id, None);
    assert_eq!(b.parent_tool_use_id, None);
    assert_ne!(with_null, absent, "equality follows the wire JSON");
    // Setting a value after parsing writes the value, clearing it writes nothing.
    let mut edited = a.clone();
    edited.uuid = Some("new".into());
    edited.parent_tool_use_id = Some("p".into());
    let v = serde_json::to_value(&edited).expect("serializes");
    assert_eq!(
        (v["uuid"].clone(), v["parent_tool_use_id"].clone()),
        (json!("new"), json!("p"))
    );
}

#[test]
fn whole_number_floats_are_written_like_javascript() {
    message(
        r#"{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0,"modelUsage":{"m":{"costUSD":0}}}"#,
    );
    message(r#"{"type":"result","subtype":"success","is_error":false,"total_cost_usd":1e-7}"#);
    message(
        r#"{"type":"tool_progress","tool_use_id":"t","tool_name":"Bash","elapsed_time_seconds":3}"#,
    );
}

#[test]
fn escaped_keys_and_tags_parse() {
    let line = r#"{"typ\u0065":"assist\u0061nt","message":{"content":[{"type":"text","t\u0065xt":"\u00e9\n"}]},"s\u0065ssion_id":"s"}"#;
    let Inbound::Message(Message::Assistant(a)) = Inbound::parse(line).expect("parses") else {
        panic!("expected assistant");
    };
    assert_eq!(a.session_id.as_deref(), Some("s"));
    assert_eq!(a.message.content[0].as_text(), Some("é\n"));
}

#[test]
fn control_envelopes_parse() {
    assert_eq!(parse(r#"{"type":"keep_alive"}"#), Inbound::KeepAlive);
    assert_eq!(
        Inbound::parse(r#"{"type":"control_cancel_request","request_id":"r9"}"#).expect("parses"),
        Inbound::ControlCancelRequest {
            request_id: "r9".into()
        }
    );
    let line =
        r#"{"type":"control_response","response":{"subtype":"later","request_id":"r","x":1}}"#;
    let Inbound::ControlResponse(r) = parse(line) else {
        panic!("expected a control response");
    };
    assert!(r.result.is_err());
    let line = r#"{"type":"control_response","response":{"subtype":"success","request_id":"r","response":null,"pending_user_dialog_requests":[]},"outer":true}"#;
    let Inbound::ControlResponse(r) = parse(line) else {
        panic!("expected a control response");
    };
    assert_eq!(r.result, Ok(Some(Value::Null)));
    assert_eq!(r.envelope_extra["outer"], true);
    let built = ControlResponse::error(
        "r",
        ControlError::new("nope").with_code("unsupported_request"),
    );
    assert_eq!(
        serde_json::to_value(&built).expect("serializes"),
        json!({"type":"control_response","response":{"subtype":"error","request_id":"r","error":"nope","error_code":"unsupported_request"}})
    );
    assert_eq!(
        built.to_line(),
        format!("{}\n", serde_json::to_string(&built).expect("json"))
    );
}

#[test]
fn invalid_input_is_an_error_not_a_panic() {
    for line in [
        "",
        "   ",
        "not json",
        "[SandboxDebug] hello",
        "{",
        r#"{"type":"assistant","message":{"content":[{"type":"text","text":"unterminated}]}}"#,
        r#"{"type":"assistant"} trailing"#,
        "[1,2,3]",
        "\"string\"",
        "42",
        "null",
        r#"{"type":"result","usage":{"input_tokens":1,}}"#,
        r#"{"type":"assistant","message":{"content":[{"type":"text","text":"x"}]"#,
    ] {
        assert!(Inbound::parse(line).is_err(), "{line:?} should fail");
    }
    // Nested type errors inside arrays of typed structs are errors too (never panics).
    assert!(Inbound::parse(r#"{"type":"result","errors":[1]}"#).is_err());
}

#[test]
fn every_prefix_of_a_line_fails_cleanly() {
    let line = r#"{"duration_api_ms":1,"usage":{"input_tokens":1},"type":"result","subtype":"success","modelUsage":{"m":{"costUSD":0.5}}}"#;
    for end in 0..line.len() {
        assert!(Inbound::parse(&line[..end]).is_err());
    }
    assert!(Inbound::parse(line).is_ok());
}

#[test]
fn outbound_requests_use_the_cli_spelling() {
    let cases = [
        (OutboundRequest::Interrupt, json!({"subtype": "interrupt"})),
        (
            OutboundRequest::SetModel { model: None },
            json!({"subtype": "set_model", "model": null}),
        ),
        (
            OutboundRequest::SetMaxThinkingTokens {
                max_thinking_tokens: Some(1024),
                thinking_display: None,
            },
            json!({"subtype": "set_max_thinking_tokens", "max_thinking_tokens": 1024}),
        ),
        (
            OutboundRequest::McpReconnect {
                server_name: "s".into(),
            },
            json!({"subtype": "mcp_reconnect", "serverName": "s"}),
        ),
        (
            OutboundRequest::McpToggle {
                server_name: "s".into(),
                enabled: false,
            },
            json!({"subtype": "mcp_toggle", "serverName": "s", "enabled": false}),
        ),
        (
            OutboundRequest::McpSetServers {
                servers: json!({"a": {"type": "stdio"}}),
            },
            json!({"subtype": "mcp_set_servers", "servers": {"a": {"type": "stdio"}}}),
        ),
        (
            OutboundRequest::RewindFiles {
                user_message_id: "u".into(),
                dry_run: Some(true),
            },
            json!({"subtype": "rewind_files", "user_message_id": "u", "dry_run": true}),
        ),
        (
            OutboundRequest::StopTask {
                task_id: "t".into(),
            },
            json!({"subtype": "stop_task", "task_id": "t"}),
        ),
        (
            OutboundRequest::Initialize(
                InitializeRequest::new()
                    .with_hooks(
                        json!({"PreToolUse": [{"matcher": "Bash", "hookCallbackIds": ["hook_0"]}]}),
                    )
                    .with_sdk_mcp_servers(["tools"]),
            ),
            json!({"subtype": "initialize", "hooks": {"PreToolUse": [{"matcher": "Bash", "hookCallbackIds": ["hook_0"]}]}, "sdkMcpServers": ["tools"]}),
        ),
    ];
    for (req, want) in cases {
        assert_eq!(serde_json::to_value(&req).expect("serializes"), want);
        let back: OutboundRequest = serde_json::from_value(want).expect("parses");
        assert_eq!(back, req);
    }
    // Extra fields make a request `Other`, so nothing is dropped.
    let odd = json!({"subtype": "interrupt", "cancel_queued": true});
    let parsed: OutboundRequest = serde_json::from_value(odd.clone()).expect("parses");
    assert!(matches!(&parsed, OutboundRequest::Other { subtype, .. } if subtype == "interrupt"));
    assert_eq!(serde_json::to_value(&parsed).expect("serializes"), odd);
}

#[test]
fn user_input_lines() {
    let line = UserInput::text("hi").to_line();
    assert_eq!(
        line,
        "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"hi\"},\"parent_tool_use_id\":null,\"session_id\":\"default\"}\n"
    );
    let input = UserInput::blocks([
        ContentBlock::text("look"),
        ContentBlock::image(json!({"type": "base64", "media_type": "image/png", "data": "AA=="})),
    ])
    .with_uuid("u1")
    .with_field("priority", json!("now"));
    let v: Value = serde_json::from_str(&input.to_line()).expect("json");
    assert_eq!(
        v["message"]["content"][1]["source"]["media_type"],
        "image/png"
    );
    assert_eq!(
        (v["uuid"].clone(), v["priority"].clone()),
        (json!("u1"), json!("now"))
    );
    let back: UserInput = serde_json::from_value(v.clone()).expect("parses");
    assert_eq!(back, input);
    // The CLI-side view of the same line.
    let Message::User(u) = message(input.to_line().trim_end()) else {
        panic!("expected user");
    };
    assert_eq!(u.message.blocks().len(), 2);
    assert_eq!(UserInput::from("x").content, UserContent::Text("x".into()));
}

#[test]
fn result_message_defaults_are_empty() {
    let r = ResultMessage::default();
    assert!(!r.is_success());
    assert_eq!(
        serde_json::to_value(&r).expect("serializes"),
        json!({"type": "result"})
    );
}
