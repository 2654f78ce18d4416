//! Gives the model tools written in Rust, served in-process over the control protocol.
//!
//! `cargo run -p claude-code-host --example mcp_tools`. Offline (no `ANTHROPIC_API_KEY`), the
//! mock API makes the real CLI call `mcp__calc__add` with `{"a": 2, "b": 3}` and then
//! `mcp__calc__divide` by zero, whose error reaches the model as an `isError` result.
//! Guide: `docs/guides/mcp-tools.md`.

#[path = "common/offline.rs"]
mod offline;

use claude_code::{McpTool, Options, Session};
use claude_code_mock::{Reply, Script};
use serde_json::json;

/// Arguments of `add`; the tool's JSON schema is derived from this type, doc comments
/// included, so the model sees the field descriptions.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// First addend.
    a: i64,
    /// Second addend.
    b: i64,
}

/// Arguments of `divide`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct DivideArgs {
    /// Dividend.
    a: f64,
    /// Divisor (not zero).
    b: f64,
}

/// The first line of a tool result's text (a string or text content blocks). The CLI
/// appends advice to error results of deferred MCP tools; the first line is ours.
fn first_line(result: Option<&serde_json::Value>) -> String {
    let text = match result {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    text.lines().next().unwrap_or_default().to_string()
}

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    // Offline, the mock plays the model: these are its replies, in order.
    let script = Script::new()
        .reply(Reply::tool_use("mcp__calc__add", json!({"a": 2, "b": 3})))
        .reply(Reply::tool_use(
            "mcp__calc__divide",
            json!({"a": 1, "b": 0}),
        ))
        .fallback(Reply::text("2 + 3 = 5, and 1 / 0 is undefined."));
    let env = offline::Offline::start(script).await?;

    let add = McpTool::new("add", "Adds two integers", |args: AddArgs| async move {
        println!("tool add({}, {})", args.a, args.b);
        Ok::<_, String>((args.a + args.b).to_string())
    });
    let divide = McpTool::new("divide", "Divides a by b", |args: DivideArgs| async move {
        println!("tool divide({}, {})", args.a, args.b);
        if args.b == 0.0 {
            // An `Err` reaches the model as an error result (`isError: true`).
            return Err("division by zero".to_string());
        }
        Ok((args.a / args.b).to_string())
    });
    let options = env.options(
        Options::new()
            .system_prompt("Use the calc tools for arithmetic.")
            // The model sees the tools as `mcp__calc__add` and `mcp__calc__divide`.
            .mcp_server("calc", vec![add, divide])
            // Allow them without a permission prompt.
            .allowed_tools(["mcp__calc__add", "mcp__calc__divide"]),
    );
    let session = Session::start(options).await?;

    let summary = session
        .stream("What is 2 + 3? And 1 / 0?")
        .await?
        .collect()
        .await?;
    for call in &summary.tool_calls {
        println!(
            "call {} {} -> {:?} (error: {})",
            call.tool_use.name,
            call.tool_use.input,
            first_line(call.result.as_ref()),
            call.is_error
        );
    }
    println!("answer: {}", summary.text);
    println!("mcp status: {}", session.mcp_status().await?);
    session.stop().await?;
    Ok(())
}
