//! The `claude-code-mock` binary: serves a script file (or the default script) on
//! `127.0.0.1`, prints the base URL on stdout and runs until Ctrl-C. Requests are logged
//! to stderr (`RUST_LOG` overrides the filter). All behaviour lives in the library.

use std::{
    io::{IsTerminal, Write},
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
};

use claude_code_mock::{MockError, MockServer, Script};

const USAGE: &str = "usage: claude-code-mock [--port PORT] [--script FILE]

Serves a scripted mock of the Anthropic Messages API on 127.0.0.1 and prints its URL.
Point the CLI at it with ANTHROPIC_BASE_URL=<url> ANTHROPIC_API_KEY=sk-test
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1. FILE is JSON:
{\"replies\": [{\"type\":\"message\",\"blocks\":[{\"type\":\"text\",\"text\":\"hi\"}]}, {\"type\":\"echo\"}],
 \"fallback\": {\"type\":\"error\",\"status\":529,\"error_type\":\"overloaded_error\",\"message\":\"busy\"}}";

/// What can stop the binary.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    #[error(transparent)]
    Mock(#[from] MockError),
    #[error("cannot listen for Ctrl-C: {0}")]
    Signal(#[source] std::io::Error),
}

struct Args {
    port: u16,
    script: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, CliError> {
    let mut parsed = Args {
        port: 0,
        script: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| CliError::Usage(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                let v = value("--port")?;
                parsed.port = v
                    .parse()
                    .map_err(|_| CliError::Usage(format!("--port: not a port number: {v}")))?;
            }
            "--script" => parsed.script = Some(PathBuf::from(value("--script")?)),
            other => return Err(CliError::Usage(format!("unknown argument: {other}"))),
        }
    }
    Ok(Some(parsed))
}

fn load_script(path: Option<PathBuf>) -> Result<Script, MockError> {
    let Some(path) = path else {
        return Ok(Script::new());
    };
    let text =
        std::fs::read_to_string(&path).map_err(|source| MockError::ReadScript { path, source })?;
    Script::from_json(&text)
}

async fn run() -> Result<(), CliError> {
    let Some(args) = parse_args(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let script = load_script(args.script)?;
    // Listen for Ctrl-C before announcing the URL, so an early SIGINT is not fatal.
    let interrupted = interrupt_listener().map_err(CliError::Signal)?;
    let server =
        MockServer::start_on(script, SocketAddr::from((Ipv4Addr::LOCALHOST, args.port))).await?;
    println!("{}", server.url());
    // Stdout may be a pipe read by a test harness; it must see the URL now. A failed
    // flush means nobody is reading, which does not stop the server.
    let _ = std::io::stdout().flush();
    interrupted.await;
    server.shutdown().await;
    Ok(())
}

/// Resolves on the first SIGINT (Ctrl-C); the handler is installed on return.
#[cfg(unix)]
fn interrupt_listener() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt())?;
    Ok(async move {
        sigint.recv().await;
    })
}

/// Resolves on the first Ctrl-C.
#[cfg(not(unix))]
fn interrupt_listener() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        // An error here means no Ctrl-C handler could be installed: stop serving.
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("claude_code_mock=debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claude-code-mock: {e}");
            ExitCode::from(2)
        }
    }
}
