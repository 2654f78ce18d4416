//! `claude-code serve`: run the host (`claude_code_serve`) until SIGINT or SIGTERM, then
//! drain and stop every session. Without `ANTHROPIC_API_KEY` the sessions talk to the
//! built-in mock Messages API, and the first line says so.

use std::{net::SocketAddr, path::PathBuf};

use claude_code_serve::{Host, HostConfig};

use crate::{error::CliError, Cli};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (loopback only until authentication exists).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    listen: SocketAddr,
    /// Where the state store lives (default: $CLAUDE_CODE_DATA_DIR, else
    /// $XDG_DATA_HOME/claude-code, else ~/.local/share/claude-code).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    session: super::SessionFlags,
}

/// Runs `serve`.
pub async fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let config = cli.load_config(args.session.overrides())?;
    let offline = !config.api_key_present;
    let host = Host::start(
        HostConfig::new(args.listen)
            .options(config.to_options())
            .offline(offline)
            .data_dir(data_dir(args.data_dir.clone())?),
    )
    .await?;
    if host.is_offline() {
        println!("offline: ANTHROPIC_API_KEY is not set; sessions talk to the built-in mock Messages API");
    }
    println!("claude-code host listening on {}", host.url());
    wait_for_stop().await?;
    eprintln!("stopping: draining turns and stopping sessions");
    host.shutdown().await?;
    Ok(())
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_stop() -> Result<(), CliError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(CliError::io("cannot listen for SIGTERM"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(CliError::io("cannot listen for Ctrl-C")),
        _ = term.recv() => Ok(()),
    }
}

/// The host's data directory: the flag, else `$CLAUDE_CODE_DATA_DIR`, else
/// `$XDG_DATA_HOME/claude-code`, else `~/.local/share/claude-code`.
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf, CliError> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    flag.or_else(|| env("CLAUDE_CODE_DATA_DIR"))
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("claude-code")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/claude-code")))
        .ok_or(CliError::NoDataDir)
}
