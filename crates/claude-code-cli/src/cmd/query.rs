//! `claude-code query`: one prompt, streamed to the terminal as it is generated (partial
//! messages), tool uses shown compactly on stderr, cost and duration at the end on stderr.
//! With `--json`, every stream-json message is printed unchanged, one per line.
//! With `--server URL` the prompt runs on that host (`POST /v1/query`) instead, shown
//! the same way (see `send`).

use std::time::Duration;

use claude_code::{
    protocol::{ContentBlock, ResultMessage, SystemKind},
    Message, Session,
};
use futures::StreamExt;

use crate::{error::CliError, util, Cli};

/// Arguments of `query`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The prompt; `-` reads it from stdin.
    prompt: String,
    #[command(flatten)]
    session: super::SessionFlags,
    /// Print the CLI's stream-json messages unchanged, one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

/// Runs `query`.
pub async fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    if cli.server.is_some() {
        return remote(cli, args).await;
    }
    let config = cli.load_config(args.session.overrides())?;
    let prompt = super::prompt_arg(&args.prompt)?;
    let options = config.to_options().include_partial_messages(true);
    let mut spinner = Spinner::start(!args.json && util::stdout_is_tty());
    let session = match Session::start(options).await {
        Ok(s) => s,
        Err(e) => {
            spinner.stop();
            return Err(e.into());
        }
    };
    let outcome = turn(&session, prompt, args, &mut spinner).await;
    spinner.stop();
    // Stop the CLI gracefully (and reap it) before reporting, whatever happened.
    let stopped = session.stop().await;
    let result = outcome?;
    stopped?;
    eprintln!("{}", footer(&result));
    if result.is_success() {
        Ok(())
    } else {
        Err(turn_error(&result))
    }
}

/// `query --server URL`: the prompt on an isolated session of the host.
async fn remote(cli: &Cli, args: &Args) -> Result<(), CliError> {
    if let Some(flag) = args.session.first_given() {
        return Err(CliError::Usage(format!(
            "{flag} configures a local session; with --server the host's configuration \
             decides (drop {flag}, or drop --server to run the query here)"
        )));
    }
    let client = super::send::client(cli, "query")?.timeout(args.timeout.map(Duration::from_secs));
    let prompt = super::prompt_arg(&args.prompt)?;
    let mut spinner = Spinner::start(!args.json && util::stdout_is_tty());
    let events = match client.query(&prompt).await {
        Ok(events) => events,
        Err(e) => {
            spinner.stop();
            return Err(e.into());
        }
    };
    super::send::show_turn(events, args.json, spinner).await
}

/// Streams one turn to stdout; its result message.
async fn turn(
    session: &Session,
    prompt: String,
    args: &Args,
    spinner: &mut Spinner,
) -> Result<Box<ResultMessage>, CliError> {
    let mut stream = session.stream(prompt).await?;
    if let Some(secs) = args.timeout {
        stream = stream.timeout(Duration::from_secs(secs));
    }
    let mut view = TextView::default();
    while let Some(item) = stream.next().await {
        let message = match item {
            Ok(m) => m,
            Err(e) => {
                spinner.stop();
                view.end_line()?;
                return Err(e.into());
            }
        };
        if args.json {
            let line = serde_json::to_string(&message)
                .map_err(|e| CliError::Verify(format!("cannot serialize a message: {e}")))?;
            util::out(&format!("{line}\n"))?;
        } else {
            view.show(&message, spinner)?;
        }
        if let Message::Result(r) = message {
            view.end_line()?;
            return Ok(r);
        }
    }
    view.end_line()?;
    Err(claude_code::Error::NoResult.into())
}

/// Human output: text deltas as they come, tool uses on stderr.
#[derive(Default)]
pub(super) struct TextView {
    /// The API message whose text is being streamed as deltas.
    streaming_id: Option<String>,
    /// Whether any delta of that message was printed.
    streamed: bool,
    /// Whether stdout is at the start of a line.
    mid_line: bool,
}

impl TextView {
    fn text(&mut self, text: &str, spinner: &mut Spinner) -> Result<(), CliError> {
        if text.is_empty() {
            return Ok(());
        }
        spinner.stop();
        util::out(text)?;
        self.mid_line = !text.ends_with('\n');
        Ok(())
    }

    pub(super) fn end_line(&mut self) -> Result<(), CliError> {
        if self.mid_line {
            util::out("\n")?;
            self.mid_line = false;
        }
        Ok(())
    }

    pub(super) fn show(
        &mut self,
        message: &Message,
        spinner: &mut Spinner,
    ) -> Result<(), CliError> {
        match message {
            Message::StreamEvent(e) => {
                if e.event_type() == Some("message_start") {
                    self.streaming_id = e
                        .event
                        .pointer("/message/id")
                        .and_then(|v| v.as_str())
                        .map(String::from);
                    self.streamed = false;
                }
                if let Some(t) = e.text_delta() {
                    self.streamed = true;
                    self.text(t, spinner)?;
                }
            }
            Message::System(m) => {
                if let SystemKind::ApiRetry {
                    attempt,
                    max_retries,
                    retry_delay_ms,
                    error_status,
                    ..
                } = m.kind()
                {
                    spinner.stop();
                    self.end_line()?;
                    eprintln!(
                        "{}",
                        retry_line(attempt, max_retries, retry_delay_ms, error_status)
                    );
                }
            }
            // An API error the CLI turned into a message: reported by the result.
            Message::Assistant(a) if a.error.is_some() => {}
            Message::Assistant(a) => {
                let already =
                    self.streamed && a.message.id.is_some() && a.message.id == self.streaming_id;
                for block in &a.message.content {
                    match block {
                        ContentBlock::Text(t) if !already => self.text(&t.text, spinner)?,
                        ContentBlock::ToolUse(u) => {
                            spinner.stop();
                            self.end_line()?;
                            eprintln!("⏺ {}", util::tool_summary(&u.name, &u.input));
                        }
                        _ => {}
                    }
                }
            }
            Message::User(u) => {
                for block in u.message.blocks() {
                    if let ContentBlock::ToolResult(r) = block {
                        if r.is_error == Some(true) {
                            let text = r.text().unwrap_or_default();
                            eprintln!("  ⎿ error: {}", util::truncate(&text, 100));
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `API error 529; retry 2/10 in 1.2 s` (a progress line on stderr).
fn retry_line(
    attempt: Option<u64>,
    max: Option<u64>,
    delay_ms: Option<u64>,
    status: Option<u64>,
) -> String {
    let status = status.map_or_else(
        || "a connection error".to_string(),
        |s| format!("API error {s}"),
    );
    let of = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| n.to_string());
    let delay = delay_ms.map_or_else(String::new, |ms| format!(" in {:.1} s", ms as f64 / 1000.0));
    format!("… {status}; retry {}/{}{delay}", of(attempt), of(max))
}

/// `done in 0.6 s · $0.0012 · 1 turn · session …` (the cost covers the CLI process).
pub(super) fn footer(r: &ResultMessage) -> String {
    let mut parts = Vec::new();
    if let Some(ms) = r.duration_ms {
        parts.push(format!("{:.1} s", ms as f64 / 1000.0));
    }
    if let Some(cost) = r.total_cost_usd {
        parts.push(format!("${cost:.4}"));
    }
    if let Some(n) = r.num_turns {
        parts.push(format!("{n} turn{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(id) = &r.session_id {
        parts.push(format!("session {id}"));
    }
    let status = if r.is_success() { "done" } else { "failed" };
    format!("[{status}: {}]", parts.join(" · "))
}

pub(super) fn turn_error(r: &ResultMessage) -> CliError {
    let mut message = r
        .result
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_default();
    if !r.errors.is_empty() {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&r.errors.join("; "));
    }
    if message.is_empty() {
        message = format!("the turn ended with `{}`", r.subtype);
    }
    CliError::Turn {
        status: r.api_error_status,
        message,
    }
}

/// A stderr spinner shown while waiting for the first token (only on a terminal).
pub(super) struct Spinner {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    pub(super) fn start(enabled: bool) -> Spinner {
        let task = enabled.then(|| {
            tokio::spawn(async {
                const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                for frame in FRAMES.iter().cycle() {
                    tick.tick().await;
                    eprint!("\r{frame} waiting for Claude…");
                }
            })
        });
        Spinner { task }
    }

    /// Stops the spinner and clears its line. The runtime is single-threaded, so the
    /// task is not mid-write when this runs.
    pub(super) fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            eprint!("\r\x1b[2K");
        }
    }
}
