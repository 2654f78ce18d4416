//! A session that approves tools through a permission callback, vetoes risky shell
//! commands in a hook, and gives the model an in-process tool written in Rust.
//!
//! `cargo run -p claude-code --example callbacks` (needs `ANTHROPIC_API_KEY` and the
//! `claude` CLI; see the README).

use claude_code::{HookEvent, HookOutput, McpTool, Options, PermissionResult, Session};

/// Arguments of the `add` tool; its JSON schema is derived from this type.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// First addend.
    a: i64,
    /// Second addend.
    b: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let add = McpTool::new("add", "Adds two integers", |args: AddArgs| async move {
        Ok::<_, String>((args.a + args.b).to_string())
    });
    let options = Options::new()
        .system_prompt("Use the add tool for arithmetic.")
        .mcp_server("calc", vec![add])
        .allowed_tools(["mcp__calc__add"])
        .can_use_tool(|req| async move {
            // Read-only tools are fine; anything else is refused with a reason.
            match req.tool_name.as_str() {
                "Read" | "Grep" | "Glob" => PermissionResult::allow(),
                other => PermissionResult::deny(format!("{other} is not allowed here")),
            }
        })
        .hook(HookEvent::PreToolUse, Some("Bash"), |input| async move {
            let command = input
                .tool_input
                .as_ref()
                .and_then(|i| i["command"].as_str())
                .unwrap_or_default();
            if command.contains("rm ") {
                HookOutput::deny("no deletions")
            } else {
                HookOutput::none()
            }
        });
    let session = Session::start(options).await?;
    let summary = session.stream("What is 20 + 22?").await?.collect().await?;
    println!("{}", summary.text);
    for call in &summary.tool_calls {
        println!("tool {} -> {:?}", call.tool_use.name, call.result);
    }
    session.stop().await?;
    Ok(())
}
