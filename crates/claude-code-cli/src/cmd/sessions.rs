//! `claude-code sessions`: the conversations the CLI stored for a project
//! (`$CLAUDE_CONFIG_DIR/projects/<encoded project dir>/<id>.jsonl`, default config dir
//! `~/.claude`), listed with id, modification time, size and first prompt;
//! `sessions show ID` prints one transcript compactly (or raw with `--json`).

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::{error::CliError, util};

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
        /// The session id (the transcript's file name without `.jsonl`).
        id: String,
        /// Print the transcript's JSON lines unchanged.
        #[arg(long)]
        json: bool,
    },
}

/// How the CLI names a project's transcript directory: every character other than an
/// ASCII letter or digit becomes `-`.
pub fn encode_project(dir: &Path) -> String {
    dir.to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn project_dir(project: &Option<PathBuf>) -> Result<PathBuf, CliError> {
    let dir = match project {
        Some(p) => p.clone(),
        None => {
            std::env::current_dir().map_err(CliError::io("cannot read the current directory"))?
        }
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    let config = util::claude_config_dir()
        .ok_or_else(|| CliError::Verify("neither CLAUDE_CONFIG_DIR nor HOME is set".into()))?;
    Ok(config.join("projects").join(encode_project(&dir)))
}

/// Runs `sessions`.
pub fn run(args: &Args) -> Result<(), CliError> {
    let dir = project_dir(&args.project)?;
    match &args.command {
        None => list(&dir),
        Some(Sub::Show { id, json }) => show(&dir, id, *json),
    }
}

fn list(dir: &Path) -> Result<(), CliError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("no stored sessions in {}", dir.display());
            return Ok(());
        }
        Err(e) => return Err(CliError::io(format!("cannot read {}", dir.display()))(e)),
    };
    let mut rows = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let modified = meta.modified().ok();
        rows.push((
            modified,
            id,
            meta.len(),
            first_prompt(&path).unwrap_or_default(),
        ));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    println!(
        "{:<36}  {:<16}  {:>8}  FIRST PROMPT",
        "ID", "MODIFIED (UTC)", "SIZE"
    );
    for (modified, id, size, prompt) in rows {
        let when = modified.map(util::utc_time).unwrap_or_default();
        println!(
            "{id:<36}  {when:<16}  {:>8}  {}",
            util::human_size(size),
            util::truncate(&prompt, 60)
        );
    }
    Ok(())
}

/// The text of a transcript line's user message, if it is a real prompt.
fn user_text(v: &Value) -> Option<String> {
    if v.get("type")?.as_str()? != "user" || v.get("isMeta").and_then(Value::as_bool) == Some(true)
    {
        return None;
    }
    let content = v.pointer("/message/content")?;
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .filter(|t| !t.starts_with("<system-reminder>"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

fn first_prompt(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .find_map(|v| user_text(&v))
}

fn show(dir: &Path, id: &str, json: bool) -> Result<(), CliError> {
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let path = dir.join(format!("{id}.jsonl"));
    if !valid || !path.is_file() {
        return Err(CliError::SessionNotFound {
            id: id.into(),
            searched: dir.to_path_buf(),
        });
    }
    let file =
        File::open(&path).map_err(CliError::io(format!("cannot open {}", path.display())))?;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(CliError::io(format!("cannot read {}", path.display())))?;
        if json {
            util::out(&format!("{line}\n"))?;
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(text) = user_text(&v) {
            util::out(&format!("> {}\n\n", text.trim()))?;
            continue;
        }
        let blocks = v.pointer("/message/content").and_then(Value::as_array);
        for block in blocks.into_iter().flatten() {
            match block.get("type").and_then(Value::as_str) {
                Some("text") if v.get("type").and_then(Value::as_str) == Some("assistant") => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_dirs_are_encoded_like_the_cli() {
        assert_eq!(encode_project(Path::new("/work/main")), "-work-main");
        assert_eq!(encode_project(Path::new("/tmp/.tmpA_b1")), "-tmp--tmpA-b1");
    }
}
