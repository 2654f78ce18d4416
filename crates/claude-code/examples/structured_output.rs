//! Structured output: the final answer as a Rust value whose JSON schema is derived from
//! its type.
//!
//! `cargo run -p claude-code-host --example structured_output`. Offline (no
//! `ANTHROPIC_API_KEY`), the mock API answers through the CLI's `StructuredOutput` tool,
//! as a real model does when `--json-schema` is set. Guide:
//! `docs/guides/structured-output.md`.

#[path = "common/offline.rs"]
mod offline;

use claude_code::{Options, Session};
use claude_code_mock::{Reply, Script};
use serde_json::json;

/// A code review verdict. Field doc comments become schema descriptions.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct Review {
    /// Whether the change can be merged as is.
    approved: bool,
    /// Problems found, most important first.
    issues: Vec<String>,
    /// Risk from 1 (trivial) to 5 (dangerous).
    risk: u8,
}

#[tokio::main]
async fn main() -> Result<(), offline::BoxError> {
    // Offline, the mock plays the model: each turn it calls the StructuredOutput tool
    // with the answer, then ends the turn.
    let script = Script::new()
        .reply(Reply::tool_use(
            "StructuredOutput",
            json!({"approved": false, "issues": ["unwrap on user input", "no test"], "risk": 3}),
        ))
        .reply(Reply::text("Review submitted."))
        .reply(Reply::tool_use(
            "StructuredOutput",
            json!({"approved": true, "issues": [], "risk": 1}),
        ))
        .reply(Reply::text("Review submitted."));
    let env = offline::Offline::start(script).await?;

    // `output_type::<T>()` derives a draft-07 schema from `T` and passes it as
    // `--json-schema`; `json_schema(value)` takes a hand-written one.
    let options = env.options(
        Options::new()
            .system_prompt("You review Rust diffs.")
            .output_type::<Review>(),
    );
    let session = Session::start(options).await?;
    let summary = session
        .stream("Review: `let n: u32 = input.parse().unwrap();`")
        .await?
        .collect()
        .await?;
    println!("raw structured_output: {:?}", summary.structured_output());
    let review: Review = summary.structured()?;
    println!(
        "approved: {}, risk {}, issues: {:?}",
        review.approved, review.risk, review.issues
    );

    // The stream adapter does the same in one step. A turn whose result carries no
    // structured output is `Error::StructuredOutput`, never a panic.
    let fixed: Review = session
        .stream("Review the fixed version: `let n: u32 = input.parse()?;`")
        .await?
        .structured()
        .await?;
    println!(
        "after the fix: approved: {}, risk {}, issues: {:?}",
        fixed.approved, fixed.risk, fixed.issues
    );
    session.stop().await?;
    Ok(())
}
