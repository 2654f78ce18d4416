//! `claude-code sessions`: the conversations the CLI stored for a project
//! (`$CLAUDE_CONFIG_DIR/projects/<encoded project dir>/<id>.jsonl`, default config dir
//! `~/.claude`), listed with id, modification time, size and first prompt;
//! `sessions show ID` prints one conversation compactly (or its JSON lines with `--json`).
//! Reading the store is `claude_code::history`'s job.
//!
//! With `--server URL`: the host's sessions (name, status, turns, cost), and
//! `sessions show NAME` prints a host session's transcript.

use std::path::{Path, PathBuf};

use claude_code::history::{History, HistoryError};
use serde_json::Value;

use crate::{error::CliError, util, Cli};

/// Arguments of `sessions`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = false)]
pub struct Args {
    /// Project directory whose sessions to list (default: the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Print one stored session.
    Show {
        /// The session id (the transcript's file name without `.jsonl`); with --server,
        /// the host session's name.
        id: String,
        /// Print the conversation's entries as JSON lines, as the CLI stored them.
        #[arg(long)]
        json: bool,
    },
}

fn project(project: &Option<PathBuf>) -> Result<(History, PathBuf), CliError> {
    let cwd = match project {
        Some(p) => p.clone(),
        None => {
            std::env::current_dir().map_err(CliError::io("cannot read the current directory"))?
        }
    };
    let history = History::from_env().map_err(|e| CliError::Verify(e.to_string()))?;
    Ok((history, cwd))
}

/// Runs `sessions`.
pub async fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    if cli.server.is_some() {
        return remote(cli, args).await;
    }
    let (history, cwd) = project(&args.project)?;
    match &args.command {
        None => list(&history, &cwd),
        Some(Sub::Show { id, json }) => show(&history, &cwd, id, *json),
    }
}

/// `sessions --server URL`: the host's sessions, or one's transcript.
async fn remote(cli: &Cli, args: &Args) -> Result<(), CliError> {
    if args.project.is_some() {
        return Err(CliError::Usage(
            "--project reads this machine's stored conversations; it does not go with \
             --server"
                .to_string(),
        ));
    }
    let client = super::send::client(cli, "sessions")?;
    match &args.command {
        None => {
            let sessions = client.sessions().await?;
            if sessions.is_empty() {
                eprintln!("no sessions on {}", client.base());
                return Ok(());
            }
            util::out(&format!(
                "{:<24}  {:<11}  {:>6}  {:>10}\n",
                "NAME", "STATUS", "TURNS", "COST"
            ))?;
            for s in sessions {
                util::out(&format!(
                    "{:<24}  {:<11}  {:>6}  {:>10}\n",
                    s.name,
                    s.status,
                    s.turns,
                    format!("${:.4}", s.cost_usd)
                ))?;
            }
        }
        Some(Sub::Show { id, json }) => {
            let transcript = client.transcript(id).await?;
            if *json {
                util::out(&format!("{transcript}\n"))?;
                return Ok(());
            }
            let messages = transcript.get("messages").and_then(Value::as_array);
            for m in messages.into_iter().flatten() {
                let text = m.get("text").and_then(Value::as_str).unwrap_or_default();
                match m.get("role").and_then(Value::as_str) {
                    Some("user") => util::out(&format!("> {}\n\n", text.trim()))?,
                    _ => util::out(&format!("{}\n\n", text.trim()))?,
                }
            }
        }
    }
    Ok(())
}

fn list(history: &History, cwd: &Path) -> Result<(), CliError> {
    let dir = history.project_dir(cwd);
    let sessions = history
        .list(cwd)
        .map_err(|e| CliError::Verify(e.to_string()))?;
    if sessions.is_empty() {
        eprintln!("no stored sessions in {}", dir.display());
        return Ok(());
    }
    println!(
        "{:<36}  {:<16}  {:>8}  FIRST PROMPT",
        "ID", "MODIFIED (UTC)", "SIZE"
    );
    for s in sessions {
        let when = s.modified.map(util::utc_time).unwrap_or_default();
        println!(
            "{:<36}  {when:<16}  {:>8}  {}",
            s.id,
            util::human_size(s.size),
            util::truncate(s.first_prompt.as_deref().unwrap_or_default(), 60)
        );
    }
    Ok(())
}

fn show(history: &History, cwd: &Path, id: &str, json: bool) -> Result<(), CliError> {
    let transcript = history.read(cwd, id).map_err(|e| match e {
        HistoryError::NotFound { id, dir } => CliError::SessionNotFound { id, searched: dir },
        other => CliError::Verify(other.to_string()),
    })?;
    for entry in &transcript.entries {
        if json {
            util::out(&format!("{}\n", entry.raw))?;
            continue;
        }
        if let Some(text) = entry.prompt() {
            util::out(&format!("> {}\n\n", text.trim()))?;
            continue;
        }
        let blocks = entry
            .message()
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array);
        for block in blocks.into_iter().flatten() {
            match block.get("type").and_then(Value::as_str) {
                Some("text") if entry.kind == "assistant" => {
                    let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                    util::out(&format!("{}\n\n", text.trim()))?;
                }
                Some("tool_use") => {
                    let name = block.get("name").and_then(Value::as_str).unwrap_or("?");
                    let input = block.get("input").cloned().unwrap_or(Value::Null);
                    util::out(&format!("⏺ {}\n", util::tool_summary(name, &input)))?;
                }
                Some("tool_result") => {
                    let text = match block.get("content") {
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    util::out(&format!("  ⎿ {}\n\n", util::truncate(&text, 100)))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}
