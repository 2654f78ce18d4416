//! The `claude-code` command: install, locate, check and try the Claude Code CLI through
//! the `claude_code` SDK. This file only parses arguments and dispatches; each subcommand
//! lives in its own module under `cmd/`, errors in `error.rs`, small shared helpers in
//! `util.rs`.

mod client;
mod cmd;
mod config;
mod error;
mod util;

use std::{path::PathBuf, process::ExitCode};

use crate::config::{Config, ConfigLoader, Overrides};
use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Install, check and try the Claude Code CLI.
///
/// Configuration is layered: built-in defaults < claude-code.toml (--config, else
/// $CLAUDE_CODE_CONFIG, else ./claude-code.toml) < environment (ANTHROPIC_API_KEY,
/// CLAUDE_MODEL, CLAUDE_CODE_CLI, CLAUDE_CODE_CLI_DIR, CLAUDE_CODE_MAX_TURNS,
/// CLAUDE_CODE_CLI_PROFILE, ...) < flags.
/// Run `claude-code config` to see the resolved values and where each came from.
///
/// With --server URL, `sessions`, `send` and `query` talk to a running host
/// (`claude-code serve`) instead of running the CLI here.
#[derive(Debug, Parser)]
#[command(name = "claude-code", version)]
struct Cli {
    /// Config file to read (default: $CLAUDE_CODE_CONFIG, else ./claude-code.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Which claude binary to use: auto, bundled, global, or a path (overrides cli_path).
    #[arg(long, global = true, value_name = "WHICH")]
    cli: Option<String>,

    /// A running host (`claude-code serve`) for `sessions`, `send` and `query`, e.g.
    /// http://127.0.0.1:8787 (plain http only for now).
    #[arg(long, global = true, env = "CLAUDE_CODE_SERVER", value_name = "URL")]
    server: Option<String>,

    /// Bearer token for --server (from `claude-code token create`).
    #[arg(
        long,
        global = true,
        env = "CLAUDE_CODE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one prompt and stream the answer to the terminal (with --server: on the host,
    /// in an isolated session from its warm spares).
    Query(cmd::query::Args),
    /// Send a prompt to a session of a running host and stream the reply (needs --server).
    Send(cmd::send::Args),
    /// Print the claude binary the SDK would use, and why.
    Path,
    /// Print this tool's version and the claude CLI's.
    Version,
    /// Install the pinned (or a given) claude CLI into the bundled directory via npm.
    Install(cmd::install::InstallArgs),
    /// Remove a CLI installed by `install`.
    Uninstall(cmd::install::UninstallArgs),
    /// Check the CLI, API key, config dir and config file; print fixes for failures.
    Doctor(cmd::doctor::Args),
    /// List stored conversations of a project, or print one (with --server: the host's
    /// sessions, or one's transcript).
    Sessions(cmd::sessions::Args),
    /// Serve the mock Messages API for offline development.
    Mock(cmd::mock::Args),
    /// Host supervised sessions over HTTP and Server-Sent Events (offline without a key).
    Serve(cmd::serve::Args),
    /// Create, list and revoke the host's bearer tokens.
    Token(cmd::token::Args),
    /// Print the resolved configuration, where each value came from, and the CLI arguments.
    Config(cmd::config::Args),
}

impl Cli {
    /// Loads the configuration with these flags and the command's own overrides on top.
    fn load_config(&self, mut overrides: Overrides) -> Result<Config, CliError> {
        if overrides.cli_path.is_none() {
            overrides.cli_path.clone_from(&self.cli);
        }
        let mut loader = ConfigLoader::new().overrides(overrides);
        if let Some(file) = &self.config {
            loader = loader.file(file);
        }
        Ok(loader.load()?)
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Query(args) => cmd::query::run(&cli, args).await,
        Command::Send(args) => cmd::send::run(&cli, args).await,
        Command::Path => cmd::path::run(&cli),
        Command::Version => cmd::version::run(&cli).await,
        Command::Install(args) => cmd::install::install(&cli, args).await,
        Command::Uninstall(args) => cmd::install::uninstall(&cli, args),
        Command::Doctor(args) => cmd::doctor::run(&cli, args).await,
        Command::Sessions(args) => cmd::sessions::run(&cli, args).await,
        Command::Mock(args) => cmd::mock::run(args).await,
        Command::Serve(args) => cmd::serve::run(&cli, args).await,
        Command::Config(args) => cmd::config::run(&cli, args),
        Command::Token(args) => cmd::token::run(&cli, args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("claude-code: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`claude-code query --json ... | head`): stop quietly.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claude-code: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn argument_definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
