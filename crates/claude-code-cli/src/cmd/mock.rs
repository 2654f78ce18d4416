//! `claude-code mock`: serve `claude_code_mock`'s Messages API on 127.0.0.1 until Ctrl-C,
//! for offline development. Without `--script`, every turn echoes the prompt.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use claude_code_mock::{MockError, MockServer, Reply, Script};

use crate::error::CliError;

/// Arguments of `mock`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port to listen on (default: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// JSON script: {"replies": [...], "fallback": {...}} (see claude-code-mock's docs).
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
}

/// Runs `mock`.
pub async fn run(args: &Args) -> Result<(), CliError> {
    let script = match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| MockError::ReadScript {
                path: path.clone(),
                source,
            })?;
            Script::from_json(&text)?
        }
        None => Script::new().fallback(Reply::echo()),
    };
    let server =
        MockServer::start_on(script, SocketAddr::from((Ipv4Addr::LOCALHOST, args.port))).await?;
    println!("{}", server.url());
    eprintln!("mock Messages API listening; use it with:");
    for (k, v) in server.cli_env() {
        eprintln!("  export {k}={v}");
    }
    eprintln!("press Ctrl-C to stop");
    tokio::signal::ctrl_c()
        .await
        .map_err(CliError::io("cannot listen for Ctrl-C"))?;
    server.shutdown().await;
    Ok(())
}
