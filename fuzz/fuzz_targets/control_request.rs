//! The control-protocol dispatcher: a stdout line routed as the session routes it and,
//! when it is a `control_request`, answered by registered callbacks (a permission
//! callback, a hook, an in-process MCP server, an elicitation callback) and by none.
//!
//! Properties, beyond "never panics":
//! - every control request gets exactly one answer: one line, ending in its newline,
//!   that parses as a `control_response` for the same request id;
//! - without a permission callback a `can_use_tool` request is denied (fails closed);
//! - other lines get no answer.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use claude_code::__fuzz::{route_line, Dispatcher, Line};
use claude_code::protocol::{Inbound, InboundRequest};
use claude_code::{
    ElicitationResponse, HookEvent, HookOutput, McpTool, Options, PermissionResult, ToolResult,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fn with_callbacks() -> Options {
    Options::new()
        .callback_timeout(Duration::from_secs(5))
        .can_use_tool(|req| async move {
            // Decide on the input so both branches run; never panic (libFuzzer aborts on
            // any panic, even a caught one).
            if req.input.get("command").and_then(Value::as_str) == Some("rm") {
                PermissionResult::deny("no")
            } else {
                PermissionResult::allow().updated_input(json!({"checked": true}))
            }
        })
        .hook(HookEvent::PreToolUse, Some("Bash"), |input| async move {
            if input.event.is_empty() {
                HookOutput::deny("no event")
            } else {
                HookOutput::none()
            }
        })
        .hook(HookEvent::PostToolUse, None, |_| async {
            HookOutput::none()
        })
        .mcp_server(
            "calc",
            vec![McpTool::from_json(
                "echo",
                "echoes its arguments",
                json!({"type": "object"}),
                |args| async move { ToolResult::text(args.to_string()) },
            )],
        )
        .on_elicitation(|req| async move {
            if req.message.is_empty() {
                ElicitationResponse::Decline
            } else {
                ElicitationResponse::Accept(json!({"answer": req.message}))
            }
        })
}

fn dispatchers() -> &'static [Dispatcher; 2] {
    static D: OnceLock<[Dispatcher; 2]> = OnceLock::new();
    D.get_or_init(|| {
        [
            Dispatcher::new(&Options::new()).expect("runtime"),
            Dispatcher::new(&with_callbacks()).expect("runtime"),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let request = match route_line(data) {
        Line::Parsed(Inbound::ControlRequest(r)) => Some(r),
        _ => None,
    };
    for (i, dispatcher) in dispatchers().iter().enumerate() {
        let answer = dispatcher.control_request(data);
        let Some(request) = &request else {
            assert!(
                answer.is_none(),
                "answered a line that is no control request"
            );
            continue;
        };
        let line = answer.expect("every control request is answered");
        assert!(line.ends_with('\n'), "the answer ends its line");
        assert!(
            !line[..line.len() - 1].contains('\n'),
            "the answer is one line: {line}"
        );
        let Ok(Inbound::ControlResponse(response)) = Inbound::parse(&line) else {
            panic!("the answer is no control_response: {line}");
        };
        assert_eq!(response.request_id, request.request_id, "{line}");
        if let (0, InboundRequest::CanUseTool(_)) = (i, &request.request) {
            let payload = response.payload().cloned().unwrap_or_default();
            assert_eq!(payload["behavior"], "deny", "fails closed: {line}");
        }
    }
});
