//! Approves, refuses and rewrites tool calls in Rust with a permission callback.
//!
//! `cargo run -p claude-code-host --example permissions`. Offline (no `ANTHROPIC_API_KEY`),
//! the mock API makes the real CLI try three tool calls: a destructive `rm` (denied), a
//! `Write` outside the scratch directory (allowed with its path rewritten into it) and a
//! `mkdir` twice (allowed the first time with a session rule, so the CLI does not ask
//! again). Guide: `docs/guides/permissions.md`.

#[path = "common/offline.rs"]
mod offline;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use claude_code::{Options, PermissionResult, Session, ToolPermissionRequest};
use claude_code_mock::{Reply, Script};
use serde_json::json;

/// The policy: no deletions, file writes only inside `workdir`, everything else allowed.
fn decide(req: &ToolPermissionRequest, workdir: &Path) -> PermissionResult {
    match req.tool_name.as_str() {
        "Bash" => {
            let command = req.input["command"].as_str().unwrap_or_default();
            if command.contains("rm ") {
                // The model sees this message as the tool's (error) result.
                return PermissionResult::deny("deleting files is not allowed in this session");
            }
            // Allow, and add a session rule for exactly this command, so the CLI does
            // not ask again. (`req.suggestions` holds the updates the CLI would offer a
            // human; they may persist rules to settings files or switch modes.)
            PermissionResult::allow().with_permission_update(json!({
                "type": "addRules",
                "rules": [{"toolName": "Bash", "ruleContent": command}],
                "behavior": "allow",
                "destination": "session",
            }))
        }
        "Write" | "Edit" => {
            let path = PathBuf::from(req.input["file_path"].as_str().unwrap_or_default());
            if path.starts_with(workdir) {
                return PermissionResult::allow();
            }
            // Rewrite the input: same file name, but inside the scratch directory.
            let name = path.file_name().unwrap_or_default();
            let mut input = req.input.clone();
            input["file_path"] = json!(workdir.join(name).to_string_lossy());
            PermissionResult::allow().updated_input(input)
        }
        _ => PermissionResult::allow(),
    }
}

/// One line per decision for the printout.
fn describe(decision: &PermissionResult) -> String {
    match decision {
        PermissionResult::Allow {
            updated_input: Some(input),
            ..
        } => format!("allow with input {input}"),
        PermissionResult::Allow {
            updated_permissions,
            ..
        } if !updated_permissions.is_empty() => "allow and remember for the session".into(),
        PermissionResult::Deny { message, .. } => format!("deny: {message}"),
        _ => "allow".into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    let outside = tempfile::tempdir()?;
    let outside_file = outside.path().join("notes.md");
    // Offline, the mock plays the model: these are its replies, in order.
    let script = Script::new()
        .reply(Reply::tool_use(
            "Bash",
            json!({"command": "rm -rf src", "description": "Delete the sources"}),
        ))
        .reply(Reply::tool_use(
            "Write",
            json!({"file_path": outside_file.to_string_lossy(), "content": "# Notes\n"}),
        ))
        .reply(Reply::tool_use(
            "Bash",
            json!({"command": "mkdir -p build", "description": "Make the build dir"}),
        ))
        .reply(Reply::tool_use(
            "Bash",
            json!({"command": "mkdir -p build", "description": "Make it again"}),
        ))
        .fallback(Reply::text(
            "I was not allowed to delete src/; notes.md is written and build/ exists.",
        ));
    let env = offline::Offline::start(script).await?;
    let workdir = env.workdir().to_path_buf();
    std::fs::create_dir(workdir.join("src"))?;
    std::fs::write(workdir.join("src/main.rs"), "fn main() {}\n")?;

    let policy_dir = Arc::new(workdir.clone());
    let options = env.options(
        Options::new()
            .cwd(&workdir)
            .system_prompt("You are a careful assistant with shell access.")
            .can_use_tool(move |req| {
                let workdir = policy_dir.clone();
                async move {
                    let decision = decide(&req, &workdir);
                    println!(
                        "callback: {} {} -> {}",
                        req.tool_name,
                        req.input,
                        describe(&decision)
                    );
                    decision
                }
            }),
    );
    let session = Session::start(options).await?;
    let summary = session
        .stream(format!(
            "Delete src/, then write {} with a heading, then run `mkdir -p build` twice.",
            outside_file.display()
        ))
        .await?
        .collect()
        .await?;
    for call in &summary.tool_calls {
        let status = if call.is_error {
            "refused/failed"
        } else {
            "ran"
        };
        println!("tool {} {status}: {:?}", call.tool_use.name, call.result);
    }
    println!("answer: {}", summary.text);
    println!(
        "src/ still there: {}; notes.md written in the workspace: {}; outside: {}",
        workdir.join("src/main.rs").exists(),
        workdir.join("notes.md").exists(),
        outside_file.exists()
    );
    session.stop().await?;
    Ok(())
}
