//! Conversations the CLI stored on disk: listing a project's sessions and reading a
//! transcript. The CLI writes each session to
//! `$CLAUDE_CONFIG_DIR/projects/<project key>/<session id>.jsonl` (config dir default
//! `~/.claude`; the project key is the absolute cwd with every character other than an
//! ASCII letter or digit replaced by `-`). Lines are linked by `uuid` / `parentUuid`; a
//! rewind or fork leaves dead branches behind, so a transcript is read by following the
//! parent links back from the newest entry. Resuming is `Options::resume`; this module
//! only reads.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde_json::Value;

/// Errors reading stored sessions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// Neither `CLAUDE_CONFIG_DIR` nor `HOME` is set.
    #[error("cannot find the CLI's config dir: set CLAUDE_CONFIG_DIR (or HOME)")]
    NoConfigDir,
    /// The session id is not a stored session of this project.
    #[error("no stored session {id} in {dir}; list them with History::list")]
    NotFound {
        /// The id asked for.
        id: String,
        /// The project directory searched.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// One stored session of a project.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredSession {
    /// The session id (what `Options::resume` takes).
    pub id: String,
    /// The transcript file.
    pub path: PathBuf,
    /// When it was last written.
    pub modified: Option<SystemTime>,
    /// Its size in bytes.
    pub size: u64,
    /// The first prompt, if any.
    pub first_prompt: Option<String>,
}

/// One line of a transcript that takes part in the conversation (has a `uuid`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TranscriptEntry {
    /// The entry's uuid.
    pub uuid: String,
    /// The entry before it in the conversation.
    pub parent_uuid: Option<String>,
    /// `user`, `assistant`, `attachment`, `system`, …
    pub kind: String,
    /// ISO timestamp, as written.
    pub timestamp: Option<String>,
    /// The whole line.
    pub raw: Value,
}

impl TranscriptEntry {
    /// The Messages API message of a `user` or `assistant` entry.
    pub fn message(&self) -> Option<&Value> {
        self.raw.get("message")
    }

    /// The prompt text of a real user prompt (not tool results, meta lines or
    /// `<system-reminder>` blocks).
    pub fn prompt(&self) -> Option<String> {
        if self.kind != "user" || self.raw.get("isMeta").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        let text = match self.raw.pointer("/message/content")? {
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

    /// The text blocks of an assistant entry, joined.
    pub fn assistant_text(&self) -> Option<String> {
        if self.kind != "assistant" {
            return None;
        }
        let blocks = self.raw.pointer("/message/content")?.as_array()?;
        let text: Vec<&str> = blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        (!text.is_empty()).then(|| text.join("\n"))
    }
}

/// A session's conversation: the chain of entries from the first to the newest,
/// following parent links (dead branches left by rewinds and forks are not in it).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Transcript {
    /// The session id.
    pub id: String,
    /// The conversation, oldest first.
    pub entries: Vec<TranscriptEntry>,
}

impl Transcript {
    /// The user prompts, in order.
    pub fn prompts(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(TranscriptEntry::prompt)
            .collect()
    }

    /// The user and assistant entries, in order.
    pub fn messages(&self) -> impl Iterator<Item = &TranscriptEntry> {
        self.entries
            .iter()
            .filter(|e| e.kind == "user" || e.kind == "assistant")
    }
}

/// Access to the sessions stored under one CLI config dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    config_dir: PathBuf,
}

impl History {
    /// The config dir the CLI uses: `CLAUDE_CONFIG_DIR`, else `~/.claude`.
    pub fn from_env() -> Result<History, HistoryError> {
        let dir = match std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(std::env::var_os("HOME").ok_or(HistoryError::NoConfigDir)?)
                .join(".claude"),
        };
        Ok(History::new(dir))
    }

    /// Sessions stored under this config dir.
    pub fn new(config_dir: impl Into<PathBuf>) -> History {
        History {
            config_dir: config_dir.into(),
        }
    }

    /// The directory holding the transcripts of the project at `cwd`.
    pub fn project_dir(&self, cwd: &Path) -> PathBuf {
        let cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_path_buf());
        self.config_dir.join("projects").join(project_key(&cwd))
    }

    /// The project's stored sessions, newest first (none when it has no directory).
    pub fn list(&self, cwd: &Path) -> Result<Vec<StoredSession>, HistoryError> {
        let dir = self.project_dir(cwd);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(HistoryError::Io { path: dir, source }),
        };
        let mut sessions: Vec<StoredSession> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("jsonl"))
            .filter_map(|path| {
                let meta = std::fs::metadata(&path).ok()?;
                Some(StoredSession {
                    id: path.file_stem()?.to_string_lossy().into_owned(),
                    modified: meta.modified().ok(),
                    size: meta.len(),
                    first_prompt: first_prompt(&path),
                    path,
                })
            })
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.modified));
        Ok(sessions)
    }

    /// Reads one session's conversation.
    pub fn read(&self, cwd: &Path, id: &str) -> Result<Transcript, HistoryError> {
        let dir = self.project_dir(cwd);
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let path = dir.join(format!("{id}.jsonl"));
        if !valid || !path.is_file() {
            return Err(HistoryError::NotFound {
                id: id.to_string(),
                dir,
            });
        }
        let io = |source| HistoryError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let mut entries = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io)?;
            if let Some(entry) = parse_entry(&line) {
                entries.push(entry);
            }
        }
        Ok(Transcript {
            id: id.to_string(),
            entries: main_chain(entries),
        })
    }
}

/// How the CLI names a project's transcript directory.
pub fn project_key(dir: &Path) -> String {
    dir.to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn parse_entry(line: &str) -> Option<TranscriptEntry> {
    let raw: Value = serde_json::from_str(line).ok()?;
    let uuid = raw.get("uuid")?.as_str()?.to_string();
    if raw.get("isSidechain").and_then(Value::as_bool) == Some(true) {
        return None; // a subagent's own thread
    }
    let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
    Some(TranscriptEntry {
        parent_uuid: text("parentUuid"),
        kind: text("type").unwrap_or_default(),
        timestamp: text("timestamp"),
        uuid,
        raw,
    })
}

/// The chain ending at the newest entry, oldest first.
fn main_chain(entries: Vec<TranscriptEntry>) -> Vec<TranscriptEntry> {
    let Some(leaf) = entries.last().map(|e| e.uuid.clone()) else {
        return Vec::new();
    };
    let mut by_uuid: HashMap<String, TranscriptEntry> =
        entries.into_iter().map(|e| (e.uuid.clone(), e)).collect();
    let mut chain = Vec::new();
    let mut next = Some(leaf);
    while let Some(uuid) = next {
        let Some(entry) = by_uuid.remove(&uuid) else {
            break; // a missing parent (or a cycle): stop here
        };
        next = entry.parent_uuid.clone();
        chain.push(entry);
    }
    chain.reverse();
    chain
}

fn first_prompt(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| parse_entry(&l))
        .find_map(|e| e.prompt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(uuid: &str, parent: Option<&str>, kind: &str, text: &str) -> String {
        let content = if kind == "assistant" {
            serde_json::json!([{"type": "text", "text": text}])
        } else {
            serde_json::json!(text)
        };
        serde_json::json!({
            "uuid": uuid, "parentUuid": parent, "type": kind,
            "message": {"role": kind, "content": content}
        })
        .to_string()
    }

    #[test]
    fn project_keys_match_the_cli() {
        assert_eq!(project_key(Path::new("/work/main")), "-work-main");
        assert_eq!(project_key(Path::new("/tmp/.tmpA_b1")), "-tmp--tmpA-b1");
    }

    #[test]
    fn the_transcript_follows_parent_links_and_skips_dead_branches() {
        let config = tempfile::tempdir().expect("dir");
        let cwd = tempfile::tempdir().expect("cwd");
        let history = History::new(config.path());
        let dir = history.project_dir(cwd.path());
        std::fs::create_dir_all(&dir).expect("mkdir");
        let lines = [
            r#"{"type":"queue-operation","operation":"enqueue"}"#.to_string(),
            line("a", None, "user", "first"),
            line("b", Some("a"), "assistant", "one"),
            line("c", Some("b"), "user", "abandoned"),
            line("d", Some("b"), "user", "second"),
            "not json".to_string(),
            line("e", Some("d"), "assistant", "two"),
        ];
        std::fs::write(dir.join("s1.jsonl"), lines.join("\n")).expect("write");
        let t = history.read(cwd.path(), "s1").expect("read");
        assert_eq!(t.prompts(), ["first", "second"]);
        let uuids: Vec<&str> = t.entries.iter().map(|e| e.uuid.as_str()).collect();
        assert_eq!(uuids, ["a", "b", "d", "e"]);
        assert_eq!(t.entries[3].assistant_text().as_deref(), Some("two"));
        let listed = history.list(cwd.path()).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].first_prompt.as_deref(), Some("first"));
        assert!(matches!(
            history.read(cwd.path(), "../x"),
            Err(HistoryError::NotFound { .. })
        ));
    }
}
