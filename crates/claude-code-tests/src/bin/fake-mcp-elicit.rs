//! `fake-mcp-elicit`: a stdio MCP server with one tool, `ask_name`, that asks the user
//! for a name through MCP elicitation (`elicitation/create`) before it answers. The tool
//! result is `elicited: <the client's JSON answer>`. For the SDK's elicitation tests.

use std::io::{BufRead, Write};

use serde_json::{json, Value};

fn main() {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut pending_call: Option<Value> = None;
    while let Some(Ok(line)) = lines.next() {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let id = msg.get("id").cloned();
        match msg.get("method").and_then(Value::as_str) {
            Some("initialize") => reply(
                id,
                json!({
                    "protocolVersion": msg["params"]["protocolVersion"].clone(),
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "elicit", "version": "1.0.0"},
                }),
            ),
            Some("tools/list") => reply(
                id,
                json!({"tools": [{
                    "name": "ask_name",
                    "description": "asks the user for a name",
                    "inputSchema": {"type": "object"},
                }]}),
            ),
            Some("tools/call") => {
                pending_call = id;
                send(json!({
                    "jsonrpc": "2.0", "id": "elicit-1", "method": "elicitation/create",
                    "params": {
                        "message": "What is your name?",
                        "requestedSchema": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}},
                            "required": ["name"],
                        },
                    },
                }));
            }
            Some("ping") => reply(id, json!({})),
            Some(_) if id.is_some() => send(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"}}),
            ),
            Some(_) => {}
            // A response: the client's answer to our elicitation.
            None if id == Some(json!("elicit-1")) => {
                let answer = msg.get("result").or_else(|| msg.get("error")).cloned();
                let text = format!("elicited: {}", answer.unwrap_or(Value::Null));
                reply(
                    pending_call.take(),
                    json!({"content": [{"type": "text", "text": text}], "isError": false}),
                );
            }
            None => {}
        }
    }
}

fn reply(id: Option<Value>, result: Value) {
    send(json!({"jsonrpc": "2.0", "id": id, "result": result}));
}

fn send(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}
