//! `claude-code version`: this tool's version, the pinned CLI version, and the version
//! the resolved `claude` binary reports.

use claude_code::{cli::cli_version, PINNED_CLI_VERSION};

use crate::{error::CliError, Cli};

/// Runs `version`.
pub async fn run(cli: &Cli) -> Result<(), CliError> {
    let config = cli.load_config(Default::default())?;
    println!("claude-code {}", env!("CARGO_PKG_VERSION"));
    println!("pinned claude CLI {PINNED_CLI_VERSION}");
    match config.resolve_cli() {
        Ok(r) => match cli_version(&r.path).await {
            Some(v) => {
                let note = if v.to_string() == config.cli_version {
                    String::new()
                } else {
                    format!(
                        " (expected {}; run `claude-code install --force`)",
                        config.cli_version
                    )
                };
                println!("claude CLI {v} at {}{note}", r.path.display());
            }
            None => println!(
                "claude CLI at {} does not report a version (run `claude-code doctor`)",
                r.path.display()
            ),
        },
        Err(e) => println!("{e}"),
    }
    Ok(())
}
