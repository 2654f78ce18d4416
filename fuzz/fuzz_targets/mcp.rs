//! The MCP JSON-RPC layer of in-process MCP servers: arbitrary JSON-RPC messages to a
//! server with tools, a resource and a prompt, and to an empty one.
//!
//! Properties, beyond "never panics":
//! - the response is a JSON-RPC 2.0 object with exactly one of `result` and `error`;
//! - it carries the request's `id` exactly when the request had one;
//! - an error has an integer `code` and a string `message`;
//! - a tool call's result is a list of content blocks and an `isError` flag.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use claude_code::__fuzz::Dispatcher;
use claude_code::{McpPrompt, McpResource, McpServer, McpTool, Options, ToolResult};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Add {
    a: i64,
    b: i64,
}

struct Fixture {
    dispatcher: Dispatcher,
    servers: [McpServer; 2],
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let full = McpServer::new("calc")
            .tool(McpTool::new(
                "add",
                "adds two numbers",
                |x: Add| async move {
                    x.a.checked_add(x.b)
                        .map(|n| n.to_string())
                        .ok_or_else(|| "overflow".to_string())
                },
            ))
            // A non-object input type: its arguments are wrapped under `value`.
            .tool(McpTool::new(
                "shout",
                "upper-cases",
                |s: String| async move { Ok::<_, String>(s.to_uppercase()) },
            ))
            .tool(McpTool::from_json(
                "raw",
                "returns its arguments as content, valid or not",
                json!({"type": "object"}),
                |args| async move {
                    let mut result = ToolResult::text("");
                    result.content = args
                        .get("content")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    result
                },
            ))
            .resource(McpResource::text(
                "docs://readme",
                "readme",
                "Read me first.",
            ))
            .prompt(
                McpPrompt::new("greet", |args| async move {
                    Ok::<_, String>(format!(
                        "hello {}",
                        args.get("name").cloned().unwrap_or_default()
                    ))
                })
                .argument("name", true),
            );
        Fixture {
            dispatcher: Dispatcher::new(&Options::new().callback_timeout(Duration::from_secs(5)))
                .expect("runtime"),
            servers: [full, McpServer::new("empty")],
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(message) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let f = fixture();
    for server in &f.servers {
        let response = f.dispatcher.mcp_message(server, &message);
        let object = response.as_object().expect("the response is an object");
        assert_eq!(object.get("jsonrpc"), Some(&json!("2.0")), "{response}");
        let result = object.get("result");
        let error = object.get("error");
        assert!(
            result.is_some() != error.is_some(),
            "one of result and error: {response}"
        );
        assert_eq!(
            object.get("id"),
            message.get("id"),
            "the request's id: {response}"
        );
        if let Some(error) = error {
            assert!(error["code"].is_i64(), "{response}");
            assert!(error["message"].is_string(), "{response}");
        }
        if message.get("method") == Some(&json!("tools/call")) {
            if let Some(result) = result {
                assert!(result["content"].is_array(), "{response}");
                assert!(result["isError"].is_boolean(), "{response}");
            }
        }
    }
});
