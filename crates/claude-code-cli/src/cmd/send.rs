//! `claude-code --server URL send NAME "prompt"`: one turn of a host's session, streamed
//! to the terminal as the host sends it (Server-Sent Events), shown like `query`: text on
//! stdout, tool uses on stderr, cost and duration at the end on stderr. With `--json`,
//! every message is printed as the host sent it, one JSON object per line. An error
//! status exits non-zero with the host's code and message.

use std::time::Duration;

use claude_code::Message;
use futures::{Stream, StreamExt};

use super::query::{footer, turn_error, Spinner, TextView};
use crate::{
    client::{Client, ClientError, SseEvent},
    error::CliError,
    util, Cli,
};

/// Arguments of `send`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session's name on the host.
    name: String,
    /// The prompt; `-` reads it from stdin.
    prompt: String,
    /// Print the messages as the host sent them, one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

/// Runs `send`.
pub async fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let client = client(cli, "send")?.timeout(args.timeout.map(Duration::from_secs));
    let prompt = super::prompt_arg(&args.prompt)?;
    let mut spinner = Spinner::start(!args.json && util::stdout_is_tty());
    let events = match client.send_message(&args.name, &prompt).await {
        Ok(events) => events,
        Err(e) => {
            spinner.stop();
            return Err(e.into());
        }
    };
    show_turn(events, args.json, spinner).await
}

/// The client of `--server`, or an error that says `command` needs one.
pub(super) fn client(cli: &Cli, command: &'static str) -> Result<Client, CliError> {
    let server = cli
        .server
        .as_deref()
        .ok_or(ClientError::NoServer { command })?;
    Ok(Client::new(server, cli.token.as_deref())?)
}

/// Shows a turn's events as they arrive; fails on an `error` event, a failed result or a
/// stream that ends without a result.
pub(super) async fn show_turn(
    events: impl Stream<Item = Result<SseEvent, ClientError>>,
    json: bool,
    mut spinner: Spinner,
) -> Result<(), CliError> {
    let mut view = TextView::default();
    let outcome = show(events, json, &mut view, &mut spinner).await;
    spinner.stop();
    view.end_line()?;
    let result = outcome?;
    eprintln!("{}", footer(&result));
    if result.is_success() {
        Ok(())
    } else {
        Err(turn_error(&result))
    }
}

async fn show(
    events: impl Stream<Item = Result<SseEvent, ClientError>>,
    json: bool,
    view: &mut TextView,
    spinner: &mut Spinner,
) -> Result<Box<claude_code::ResultMessage>, CliError> {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let event = event?;
        if event.event == "error" {
            return Err(stream_error(&event.data).into());
        }
        let message: Message =
            serde_json::from_str(&event.data).map_err(|e| ClientError::BadResponse {
                what: "a turn's event stream".to_string(),
                detail: format!("a `{}` event is not a message: {e}", event.event),
            })?;
        if json {
            util::out(&format!("{}\n", event.data.replace('\n', "")))?;
        } else {
            view.show(&message, spinner)?;
        }
        if let Message::Result(r) = message {
            return Ok(r);
        }
    }
    Err(ClientError::BadResponse {
        what: "a turn's event stream".to_string(),
        detail: "it ended before the turn's result".to_string(),
    }
    .into())
}

/// An `error` event's `{"code", "message"}`.
fn stream_error(data: &str) -> ClientError {
    let body: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
    let field = |k: &str| {
        body.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    ClientError::TurnError {
        code: field("code").unwrap_or_else(|| "unknown".to_string()),
        message: field("message").unwrap_or_else(|| data.to_string()),
    }
}
