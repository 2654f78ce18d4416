//! Conversations the CLI stored on disk: listing sessions (one project's, or every
//! project's with filters and pages), reading a transcript and its subagents'
//! transcripts, and managing stored sessions (rename, tag, delete, fork) without
//! starting a CLI. The CLI writes each session to
//! `$CLAUDE_CONFIG_DIR/projects/<project key>/<session id>.jsonl` (config dir default
//! `~/.claude`; the project key is the absolute cwd with every character other than an
//! ASCII letter or digit replaced by `-`), and a subagent's transcript to
//! `<project key>/<session id>/subagents/agent-<agent id>.jsonl`. Lines are linked by
//! `uuid` / `parentUuid`; a rewind or fork leaves dead branches behind, so a transcript
//! is read by following the parent links back from the newest entry. Resuming is
//! `Options::resume`; keeping transcripts elsewhere is [`crate::store`].

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde_json::Value;

mod manage;

pub(crate) use manage::uuid_v4;

/// The CLI truncates longer project keys and appends a hash of the path.
const MAX_KEY_LEN: usize = 200;

/// Errors reading or changing stored sessions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// Neither `CLAUDE_CONFIG_DIR` nor `HOME` is set.
    #[error("cannot find the CLI's config dir: set CLAUDE_CONFIG_DIR (or HOME)")]
    NoConfigDir,
    /// The session id is not a stored session of this project (or of any project).
    #[error("no stored session {id} in {dir}; list them with History::list")]
    NotFound {
        /// The id asked for.
        id: String,
        /// The project directory (or the projects directory) searched.
        dir: PathBuf,
    },
    /// A session or agent id that cannot name a stored file (empty, or with characters
    /// other than ASCII letters, digits, `-` and `_`, such as `../x`).
    #[error("invalid id {id:?}: expected ASCII letters, digits, '-' or '_'")]
    InvalidId {
        /// The id given.
        id: String,
    },
    /// The session has no subagent transcript with this agent id.
    #[error("session {session} has no subagent {agent}")]
    SubagentNotFound {
        /// The session id.
        session: String,
        /// The agent id asked for.
        agent: String,
    },
    /// A fork point that is not a message of the session.
    #[error("session {id} has no message {uuid}")]
    MessageNotFound {
        /// The session id.
        id: String,
        /// The message uuid asked for.
        uuid: String,
    },
    /// The session has no conversation entries (nothing to fork).
    #[error("session {id} has no messages")]
    Empty {
        /// The session id.
        id: String,
    },
    /// An argument the CLI would not accept (an empty title or tag).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which argument.
        what: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl HistoryError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HistoryError + '_ {
        move |source| HistoryError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// One stored session.
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
    /// The working directory the session ran in, as the CLI recorded it.
    pub cwd: Option<PathBuf>,
    /// The title: the latest custom title ([`History::rename`], the CLI's `/rename`),
    /// else the latest title the CLI generated.
    pub title: Option<String>,
    /// The latest tag ([`History::tag`]); `None` when never set or cleared.
    pub tag: Option<String>,
}

/// Which stored sessions [`History::list_all`] returns, and which page of them.
///
/// ```
/// use claude_code::history::SessionQuery;
/// let q = SessionQuery::new().project("/srv/app").tag("nightly").limit(20);
/// let next = q.clone().offset(20);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct SessionQuery {
    project: Option<PathBuf>,
    modified_since: Option<SystemTime>,
    prompt_contains: Option<String>,
    tag: Option<String>,
    offset: usize,
    limit: Option<usize>,
}

impl SessionQuery {
    /// Every session of every project, newest first, in one page.
    pub fn new() -> SessionQuery {
        SessionQuery::default()
    }

    /// Only sessions of the project at this working directory.
    pub fn project(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.project = Some(cwd.into());
        self
    }

    /// Only sessions written at or after this time.
    pub fn modified_since(mut self, since: SystemTime) -> Self {
        self.modified_since = Some(since);
        self
    }

    /// Only sessions whose first prompt contains this text (ignoring ASCII case).
    pub fn prompt_contains(mut self, text: impl Into<String>) -> Self {
        self.prompt_contains = Some(text.into().to_ascii_lowercase());
        self
    }

    /// Only sessions whose current tag is exactly this.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Skip this many matching sessions (the previous page's [`SessionPage::next_offset`]).
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// At most this many sessions per page.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    fn needs_content(&self) -> bool {
        self.prompt_contains.is_some() || self.tag.is_some()
    }

    fn matches(&self, s: &StoredSession) -> bool {
        let prompt_ok = self.prompt_contains.as_ref().is_none_or(|needle| {
            s.first_prompt
                .as_ref()
                .is_some_and(|p| p.to_ascii_lowercase().contains(needle))
        });
        let tag_ok = self.tag.as_ref().is_none_or(|t| s.tag.as_ref() == Some(t));
        prompt_ok && tag_ok
    }
}

/// One page of [`History::list_all`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SessionPage {
    /// The sessions on this page, newest first.
    pub sessions: Vec<StoredSession>,
    /// The offset of the next page, when more sessions match.
    pub next_offset: Option<usize>,
}

/// A subagent's transcript stored next to its session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredSubagent {
    /// The agent id (what [`History::read_subagent`] takes).
    pub agent_id: String,
    /// The transcript file.
    pub path: PathBuf,
    /// The agent type (`general-purpose`, a custom agent's name), from its metadata.
    pub agent_type: Option<String>,
    /// The task description the model gave it, from its metadata.
    pub description: Option<String>,
    /// The id of the `Agent` tool call in the session that started it.
    pub tool_use_id: Option<String>,
    /// The CLI's whole metadata file (`agent-<id>.meta.json`), when present.
    pub meta: Option<Value>,
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
    /// The session id (the agent id for a subagent's transcript).
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

    /// The config dir.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The directory holding every project's transcripts (`<config dir>/projects`).
    pub fn projects_dir(&self) -> PathBuf {
        self.config_dir.join("projects")
    }

    /// The directory holding the transcripts of the project at `cwd`. For a path whose
    /// key is longer than the CLI's limit, an existing directory with the same
    /// truncated key is preferred (the CLI's hash suffix depends on its runtime).
    pub fn project_dir(&self, cwd: &Path) -> PathBuf {
        let cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_path_buf());
        let key = project_key(&cwd);
        let exact = self.projects_dir().join(&key);
        if key.len() <= MAX_KEY_LEN || exact.is_dir() {
            return exact;
        }
        let prefix = format!("{}-", &key[..MAX_KEY_LEN]);
        std::fs::read_dir(self.projects_dir())
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .unwrap_or(exact)
    }

    /// The project's stored sessions, newest first (none when it has no directory).
    pub fn list(&self, cwd: &Path) -> Result<Vec<StoredSession>, HistoryError> {
        let dir = self.project_dir(cwd);
        let mut sessions: Vec<StoredSession> = transcript_files(&dir)?
            .into_iter()
            .filter_map(|(path, meta)| stored_session(path, &meta))
            .collect();
        sessions.sort_by(newest_first);
        Ok(sessions)
    }

    /// Stored sessions of every project (or of the query's project) that match the
    /// query, newest first, one page at a time. Offsets count matching sessions, so a
    /// session written between two calls shifts later pages by one.
    pub fn list_all(&self, query: &SessionQuery) -> Result<SessionPage, HistoryError> {
        let dirs = match &query.project {
            Some(cwd) => vec![self.project_dir(cwd)],
            None => project_dirs(&self.projects_dir())?,
        };
        let mut files = Vec::new();
        for dir in dirs {
            files.extend(transcript_files(&dir)?.into_iter().filter(|(_, meta)| {
                query
                    .modified_since
                    .is_none_or(|since| meta.modified().is_ok_and(|m| m >= since))
            }));
        }
        let mut files: Vec<(String, PathBuf, std::fs::Metadata)> = files
            .into_iter()
            .filter_map(|(path, meta)| Some((file_id(&path)?, path, meta)))
            .collect();
        files.sort_by(|a, b| {
            let modified = |m: &std::fs::Metadata| m.modified().ok();
            modified(&b.2)
                .cmp(&modified(&a.2))
                .then_with(|| a.0.cmp(&b.0))
        });
        let limit = query.limit.unwrap_or(usize::MAX);
        let mut page = SessionPage::default();
        let mut matched = 0usize;
        for (_, path, meta) in files {
            let in_page = matched >= query.offset;
            if !in_page && !query.needs_content() {
                matched += 1;
                continue;
            }
            let Some(session) = stored_session(path, &meta) else {
                continue;
            };
            if !query.matches(&session) {
                continue;
            }
            if in_page && page.sessions.len() == limit {
                page.next_offset = Some(matched);
                break;
            }
            matched += 1;
            if in_page {
                page.sessions.push(session);
            }
        }
        Ok(page)
    }

    /// Finds a stored session by id in any project.
    pub fn session(&self, id: &str) -> Result<StoredSession, HistoryError> {
        let path = self.locate(id)?;
        let meta = std::fs::metadata(&path).map_err(HistoryError::io(&path))?;
        stored_session(path.clone(), &meta).ok_or_else(|| HistoryError::NotFound {
            id: id.to_string(),
            dir: path,
        })
    }

    /// Reads one session's conversation from the project at `cwd`.
    pub fn read(&self, cwd: &Path, id: &str) -> Result<Transcript, HistoryError> {
        check_id(id)?;
        let dir = self.project_dir(cwd);
        let path = dir.join(format!("{id}.jsonl"));
        if !path.is_file() {
            return Err(HistoryError::NotFound {
                id: id.to_string(),
                dir,
            });
        }
        read_transcript(&path, id, false)
    }

    /// Reads one session's conversation, whichever project it belongs to.
    pub fn transcript(&self, id: &str) -> Result<Transcript, HistoryError> {
        let path = self.locate(id)?;
        read_transcript(&path, id, false)
    }

    /// The subagent transcripts of a session (`<session id>/subagents/agent-*.jsonl`,
    /// nested directories included), ordered by path; none when it started no subagent.
    pub fn subagents(&self, id: &str) -> Result<Vec<StoredSubagent>, HistoryError> {
        let path = self.locate(id)?;
        let dir = sidecar_dir(&path).join("subagents");
        let mut found = Vec::new();
        collect_agents(&dir, &mut found)?;
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// Reads a subagent's conversation (its entries are the session's side chain).
    pub fn read_subagent(&self, id: &str, agent_id: &str) -> Result<Transcript, HistoryError> {
        check_id(agent_id)?;
        let agent = self
            .subagents(id)?
            .into_iter()
            .find(|a| a.agent_id == agent_id)
            .ok_or_else(|| HistoryError::SubagentNotFound {
                session: id.to_string(),
                agent: agent_id.to_string(),
            })?;
        read_transcript(&agent.path, agent_id, true)
    }

    /// The transcript file of a session, searched in every project.
    fn locate(&self, id: &str) -> Result<PathBuf, HistoryError> {
        check_id(id)?;
        let projects = self.projects_dir();
        let not_found = || HistoryError::NotFound {
            id: id.to_string(),
            dir: projects.clone(),
        };
        project_dirs(&projects)?
            .into_iter()
            .map(|dir| dir.join(format!("{id}.jsonl")))
            .find(|p| p.is_file())
            .ok_or_else(not_found)
    }
}

/// How the CLI names a project's transcript directory: every character other than an
/// ASCII letter or digit becomes `-`; a key longer than 200 characters is cut there and
/// gets `-` and a hash of the path appended (the hash the CLI computes under Node; its
/// native build may use another, which [`History::project_dir`] tolerates).
pub fn project_key(dir: &Path) -> String {
    let path = dir.to_string_lossy();
    let key: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    format!("{}-{}", &key[..MAX_KEY_LEN], js_hash_base36(&path))
}

/// The CLI's 32-bit string hash (over UTF-16 units), as an absolute value in base 36.
fn js_hash_base36(s: &str) -> String {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h
            .wrapping_shl(5)
            .wrapping_sub(h)
            .wrapping_add(i32::from(unit));
    }
    let mut n = h.unsigned_abs();
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// Session and agent ids name files: letters, digits, `-` and `_` only.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_id(id: &str) -> Result<(), HistoryError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(HistoryError::InvalidId { id: id.to_string() })
    }
}

/// `<project>/<id>.jsonl` → `<project>/<id>` (subagent transcripts and other sidecars).
fn sidecar_dir(transcript: &Path) -> PathBuf {
    transcript.with_extension("")
}

fn file_id(path: &Path) -> Option<String> {
    Some(path.file_stem()?.to_string_lossy().into_owned())
}

fn newest_first(a: &StoredSession, b: &StoredSession) -> std::cmp::Ordering {
    b.modified.cmp(&a.modified).then_with(|| a.id.cmp(&b.id))
}

/// The project directories under `projects` (none when it does not exist).
fn project_dirs(projects: &Path) -> Result<Vec<PathBuf>, HistoryError> {
    match std::fs::read_dir(projects) {
        Ok(entries) => Ok(entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(HistoryError::Io {
            path: projects.to_path_buf(),
            source,
        }),
    }
}

/// The `*.jsonl` files directly in `dir` with their metadata (none when it does not
/// exist; files that vanish while listing are skipped).
fn transcript_files(dir: &Path) -> Result<Vec<(PathBuf, std::fs::Metadata)>, HistoryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(HistoryError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    Ok(entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("jsonl"))
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok()?;
            meta.is_file().then_some((p, meta))
        })
        .collect())
}

fn collect_agents(dir: &Path, found: &mut Vec<StoredSubagent>) -> Result<(), HistoryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(HistoryError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_agents(&path, found)?;
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(agent_id) = name
            .strip_prefix("agent-")
            .and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        if !kind.is_file() || check_id(agent_id).is_err() {
            continue;
        }
        let meta: Option<Value> = std::fs::read(path.with_extension("meta.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .filter(Value::is_object);
        let text = |k: &str| {
            meta.as_ref()
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        found.push(StoredSubagent {
            agent_id: agent_id.to_string(),
            agent_type: text("agentType"),
            description: text("description"),
            tool_use_id: text("toolUseId"),
            path,
            meta,
        });
    }
    Ok(())
}

/// Calls `f` with each line of `path` (invalid UTF-8 replaced, line ending removed)
/// until it returns `false`.
fn scan_lines(path: &Path, mut f: impl FnMut(&str) -> bool) -> Result<(), HistoryError> {
    let file = File::open(path).map_err(HistoryError::io(path))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(HistoryError::io(path))?
            == 0
        {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        if !f(line.trim_end_matches(['\n', '\r'])) {
            return Ok(());
        }
    }
}

fn read_transcript(path: &Path, id: &str, side_chain: bool) -> Result<Transcript, HistoryError> {
    let mut entries = Vec::new();
    scan_lines(path, |line| {
        if let Some(entry) = parse_entry(line, side_chain) {
            entries.push(entry);
        }
        true
    })?;
    Ok(Transcript {
        id: id.to_string(),
        entries: main_chain(entries),
    })
}

/// What listing shows of a session, read in one pass over its file.
fn stored_session(path: PathBuf, meta: &std::fs::Metadata) -> Option<StoredSession> {
    let id = file_id(&path)?;
    let mut first_prompt = None;
    let mut cwd = None;
    let (mut custom_title, mut ai_title, mut tag) = (None, None, None);
    let scanned = scan_lines(&path, |line| {
        if first_prompt.is_none() || cwd.is_none() {
            if let Ok(raw) = serde_json::from_str::<Value>(line) {
                if cwd.is_none() {
                    cwd = raw.get("cwd").and_then(Value::as_str).map(PathBuf::from);
                }
                if first_prompt.is_none() {
                    first_prompt = entry_from(raw, false).and_then(|e| e.prompt());
                }
            }
        }
        // Metadata lines are small and rare; only they are parsed past the head.
        if line.contains("\"customTitle\"")
            || line.contains("\"aiTitle\"")
            || line.contains("\"type\":\"tag\"")
        {
            if let Ok(raw) = serde_json::from_str::<Value>(line) {
                let field = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
                match raw.get("type").and_then(Value::as_str) {
                    Some("custom-title") => {
                        custom_title = field("customTitle").or(custom_title.take())
                    }
                    Some("ai-title") => ai_title = field("aiTitle").or(ai_title.take()),
                    // The latest tag wins; an empty one clears it.
                    Some("tag") => tag = field("tag").filter(|t| !t.is_empty()),
                    _ => {}
                }
            }
        }
        true
    });
    if scanned.is_err() {
        return None; // vanished or unreadable while listing
    }
    Some(StoredSession {
        id,
        modified: meta.modified().ok(),
        size: meta.len(),
        first_prompt,
        cwd,
        title: custom_title.or(ai_title),
        tag,
        path,
    })
}

fn parse_entry(line: &str, side_chain: bool) -> Option<TranscriptEntry> {
    entry_from(serde_json::from_str(line).ok()?, side_chain)
}

/// A conversation entry of the main thread (`side_chain: false`) or of a subagent's
/// transcript (`true`, where every entry is on the side chain).
fn entry_from(raw: Value, side_chain: bool) -> Option<TranscriptEntry> {
    let uuid = raw.get("uuid")?.as_str()?.to_string();
    let is_side = raw.get("isSidechain").and_then(Value::as_bool) == Some(true);
    if is_side && !side_chain {
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
    chain_to(entries, &leaf)
}

/// The chain ending at `leaf`, oldest first (empty when `leaf` is not an entry).
fn chain_to(entries: Vec<TranscriptEntry>, leaf: &str) -> Vec<TranscriptEntry> {
    let mut by_uuid: HashMap<String, TranscriptEntry> =
        entries.into_iter().map(|e| (e.uuid.clone(), e)).collect();
    let mut chain = Vec::new();
    let mut next = Some(leaf.to_string());
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
            Err(HistoryError::InvalidId { .. })
        ));
    }

    /// A config dir with sessions written as the CLI lays them out.
    struct Fixture {
        config: tempfile::TempDir,
        history: History,
    }

    impl Fixture {
        fn new() -> Fixture {
            let config = tempfile::tempdir().expect("dir");
            let history = History::new(config.path());
            Fixture { config, history }
        }

        /// Writes session `id` of project `cwd` with one prompt and reply, modified at
        /// `age_secs` seconds after the epoch.
        fn session(&self, cwd: &str, id: &str, prompt: &str, mtime_secs: u64) -> PathBuf {
            let dir = self
                .config
                .path()
                .join("projects")
                .join(project_key(Path::new(cwd)));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let mut user: Value =
                serde_json::from_str(&line("u1", None, "user", prompt)).expect("json");
            user["cwd"] = Value::String(cwd.into());
            user["sessionId"] = Value::String(id.into());
            let lines = [
                user.to_string(),
                line("a1", Some("u1"), "assistant", &format!("re: {prompt}")),
            ];
            let path = dir.join(format!("{id}.jsonl"));
            std::fs::write(&path, lines.join("\n") + "\n").expect("write");
            let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(mtime_secs);
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(when))
                .expect("mtime");
            path
        }

        fn ids(&self, query: &SessionQuery) -> (Vec<String>, Option<usize>) {
            let page = self.history.list_all(query).expect("list");
            (
                page.sessions.into_iter().map(|s| s.id).collect(),
                page.next_offset,
            )
        }
    }

    #[test]
    fn long_project_keys_are_cut_and_hashed_like_the_cli() {
        let long = format!("/{}", "a".repeat(250));
        let key = project_key(Path::new(&long));
        assert_eq!(key.len(), MAX_KEY_LEN + 1 + js_hash_base36(&long).len());
        assert!(key.starts_with(&format!("-{}", "a".repeat(199))));
        // The JS reference: "abc" hashes to 96354, "" to 0.
        assert_eq!(js_hash_base36("abc"), "22ci");
        assert_eq!(js_hash_base36(""), "0");
    }

    #[test]
    fn list_all_spans_projects_newest_first_with_pages_and_filters() {
        let f = Fixture::new();
        f.session("/srv/one", "s-old", "Fix the parser", 1_000);
        f.session("/srv/one", "s-mid", "write docs", 2_000);
        f.session("/srv/two", "s-new", "fix the tests", 3_000);
        f.history.tag("s-mid", Some("docs")).expect("tag");
        f.history.tag("s-new", Some("docs")).expect("tag");
        f.history.tag("s-new", None).expect("clear");
        // Tagging wrote to the files: put the mtimes back.
        for (id, secs) in [("s-mid", 2_000), ("s-new", 3_000)] {
            let path = f.history.session(id).expect("find").path;
            let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(when))
                .expect("mtime");
        }

        let all = SessionQuery::new();
        assert_eq!(f.ids(&all).0, ["s-new", "s-mid", "s-old"]);
        assert_eq!(
            f.ids(&all.clone().limit(2)),
            (vec!["s-new".into(), "s-mid".into()], Some(2))
        );
        assert_eq!(
            f.ids(&all.clone().limit(2).offset(2)),
            (vec!["s-old".into()], None)
        );
        assert_eq!(f.ids(&all.clone().offset(5)).0, Vec::<String>::new());
        assert_eq!(
            f.ids(&all.clone().project("/srv/one")).0,
            ["s-mid", "s-old"]
        );
        assert_eq!(
            f.ids(&all.clone().project("/nowhere")).0,
            Vec::<String>::new()
        );
        let since = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000);
        assert_eq!(
            f.ids(&all.clone().modified_since(since)).0,
            ["s-new", "s-mid"]
        );
        assert_eq!(
            f.ids(&all.clone().prompt_contains("FIX")).0,
            ["s-new", "s-old"]
        );
        assert_eq!(
            f.ids(&all.clone().prompt_contains("fix").limit(1).offset(1)),
            (vec!["s-old".into()], None)
        );
        assert_eq!(
            f.ids(&all.clone().tag("docs")).0,
            ["s-mid"],
            "a cleared tag does not match"
        );

        let mid = f.history.session("s-mid").expect("session");
        assert_eq!(mid.tag.as_deref(), Some("docs"));
        assert_eq!(mid.cwd.as_deref(), Some(Path::new("/srv/one")));
        assert_eq!(mid.first_prompt.as_deref(), Some("write docs"));
        assert_eq!(f.history.session("s-new").expect("session").tag, None);
        assert!(f.history.list_all(&SessionQuery::new()).is_ok());
        assert_eq!(
            History::new(f.config.path().join("absent"))
                .list_all(&all)
                .expect("empty"),
            SessionPage::default()
        );
    }

    #[test]
    fn rename_and_tag_append_the_lines_the_cli_writes() {
        let f = Fixture::new();
        let path = f.session("/srv/app", "s1", "hello", 1_000);
        f.history.rename("s1", "  First title ").expect("rename");
        f.history.rename("s1", "Second title").expect("rename");
        f.history.tag("s1", Some("\u{200B}nightly\n")).expect("tag");
        let text = std::fs::read_to_string(&path).expect("read");
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        assert_eq!(
            tail,
            [
                r#"{"type":"tag","tag":"nightly","sessionId":"s1"}"#,
                r#"{"type":"custom-title","customTitle":"Second title","sessionId":"s1"}"#,
                r#"{"type":"custom-title","customTitle":"First title","sessionId":"s1"}"#,
            ]
        );
        let s = f.history.session("s1").expect("session");
        assert_eq!(s.title.as_deref(), Some("Second title"));
        assert_eq!(s.tag.as_deref(), Some("nightly"));
        // The conversation itself is unchanged.
        assert_eq!(
            f.history.transcript("s1").expect("read").prompts(),
            ["hello"]
        );

        assert!(matches!(
            f.history.rename("s1", "  "),
            Err(HistoryError::InvalidInput { what: "title", .. })
        ));
        assert!(matches!(
            f.history.tag("s1", Some("\u{200B}")),
            Err(HistoryError::InvalidInput { what: "tag", .. })
        ));
        assert!(matches!(
            f.history.rename("nope", "t"),
            Err(HistoryError::NotFound { .. })
        ));
    }

    #[test]
    fn a_transcript_without_a_final_newline_gets_one_before_the_title() {
        let f = Fixture::new();
        let path = f.session("/srv/app", "s1", "hello", 1_000);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.trim_end()).expect("write");
        f.history.rename("s1", "t").expect("rename");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.ends_with(
                "\n{\"type\":\"custom-title\",\"customTitle\":\"t\",\"sessionId\":\"s1\"}\n"
            ),
            "{text}"
        );
        assert_eq!(
            f.history.transcript("s1").expect("read").prompts(),
            ["hello"]
        );
    }

    #[test]
    fn bad_ids_are_refused_everywhere() {
        let f = Fixture::new();
        f.session("/srv/app", "s1", "hello", 1_000);
        for bad in ["../x", "a/b", "", ".", "s1/..", "x\0"] {
            let invalid =
                |r: Result<(), HistoryError>| matches!(r, Err(HistoryError::InvalidId { .. }));
            assert!(invalid(f.history.session(bad).map(drop)), "{bad:?}");
            assert!(invalid(f.history.transcript(bad).map(drop)), "{bad:?}");
            assert!(invalid(f.history.rename(bad, "t")), "{bad:?}");
            assert!(invalid(f.history.tag(bad, Some("t"))), "{bad:?}");
            assert!(invalid(f.history.delete(bad)), "{bad:?}");
            assert!(invalid(f.history.fork(bad).map(drop)), "{bad:?}");
            assert!(invalid(f.history.subagents(bad).map(drop)), "{bad:?}");
            assert!(
                invalid(f.history.read_subagent("s1", bad).map(drop)),
                "{bad:?}"
            );
            assert!(invalid(f.history.fork_at("s1", bad).map(drop)), "{bad:?}");
        }
        assert!(f.history.session("s1").is_ok(), "nothing was touched");
    }

    #[test]
    fn delete_removes_the_transcript_and_its_directories() {
        let f = Fixture::new();
        let path = f.session("/srv/app", "s1", "hello", 1_000);
        let keep = f.session("/srv/app", "s2", "other", 1_000);
        let sub = path.with_extension("").join("subagents");
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(sub.join("agent-a1.jsonl"), "{}\n").expect("write");
        let undo = f.config.path().join("file-history").join("s1");
        std::fs::create_dir_all(&undo).expect("mkdir");
        f.history.delete("s1").expect("delete");
        assert!(!path.exists() && !sub.exists() && !undo.exists());
        assert!(keep.exists());
        assert!(matches!(
            f.history.delete("s1"),
            Err(HistoryError::NotFound { .. })
        ));
    }

    #[test]
    fn fork_copies_the_conversation_under_new_ids() {
        let f = Fixture::new();
        let cwd = tempfile::tempdir().expect("cwd");
        let dir = f.history.project_dir(cwd.path());
        std::fs::create_dir_all(&dir).expect("mkdir");
        let side = r#"{"uuid":"x","parentUuid":"b","type":"user","isSidechain":true,"message":{"role":"user","content":"side"}}"#;
        let lines = [
            line("a", None, "user", "first"),
            line("b", Some("a"), "assistant", "one"),
            side.to_string(),
            r#"{"type":"custom-title","customTitle":"orig","sessionId":"s1"}"#.to_string(),
            line("c", Some("b"), "user", "second"),
            line("d", Some("c"), "assistant", "two"),
        ];
        std::fs::write(dir.join("s1.jsonl"), lines.join("\n")).expect("write");

        let new_id = f.history.fork("s1").expect("fork");
        assert_ne!(new_id, "s1");
        assert_eq!(new_id.len(), 36, "a uuid: {new_id}");
        let copy = f.history.read(cwd.path(), &new_id).expect("read fork");
        assert_eq!(copy.prompts(), ["first", "second"]);
        assert_eq!(copy.entries.len(), 4, "side chain and metadata left out");
        for (entry, old) in copy.entries.iter().zip(["a", "b", "c", "d"]) {
            assert_ne!(entry.uuid, old);
            assert_eq!(entry.raw["sessionId"], new_id.as_str());
            assert_eq!(entry.raw["forkedFrom"]["messageUuid"], old);
            assert_eq!(entry.raw["forkedFrom"]["sessionId"], "s1");
        }
        assert_eq!(f.history.session(&new_id).expect("listed").title, None);
        assert_eq!(
            f.history
                .read(cwd.path(), "s1")
                .expect("original")
                .prompts(),
            ["first", "second"]
        );

        let part = f.history.fork_at("s1", "b").expect("fork at");
        let copy = f.history.read(cwd.path(), &part).expect("read");
        assert_eq!(copy.prompts(), ["first"]);
        assert_eq!(copy.entries.len(), 2);
        assert!(matches!(
            f.history.fork_at("s1", "zz"),
            Err(HistoryError::MessageNotFound { .. })
        ));
        std::fs::write(dir.join("empty.jsonl"), "").expect("write");
        assert!(matches!(
            f.history.fork("empty"),
            Err(HistoryError::Empty { .. })
        ));
    }

    #[test]
    fn subagent_transcripts_are_listed_and_read_from_the_cli_layout() {
        // The layout CLI 2.1.332 writes when the model calls the Agent tool (see the
        // end-to-end test `subagent_transcripts_are_read_from_a_real_session`).
        let f = Fixture::new();
        let path = f.session("/srv/app", "s1", "delegate", 1_000);
        let sub = path.with_extension("").join("subagents");
        std::fs::create_dir_all(sub.join("workflows/run1")).expect("mkdir");
        let side = |uuid: &str, parent: Option<&str>, kind: &str, text: &str| {
            let mut v: Value = serde_json::from_str(&line(uuid, parent, kind, text)).expect("json");
            v["isSidechain"] = Value::Bool(true);
            v.to_string()
        };
        let agent = [
            side("p", None, "user", "sub task"),
            side("q", Some("p"), "assistant", "done"),
        ];
        std::fs::write(sub.join("agent-a1.jsonl"), agent.join("\n")).expect("write");
        std::fs::write(
            sub.join("agent-a1.meta.json"),
            r#"{"agentType":"general-purpose","description":"look","toolUseId":"toolu_1"}"#,
        )
        .expect("write");
        std::fs::write(
            sub.join("workflows/run1/agent-a2.jsonl"),
            side("r", None, "user", "nested"),
        )
        .expect("write");
        std::fs::write(sub.join("notes.txt"), "ignored").expect("write");

        let agents = f.history.subagents("s1").expect("list");
        let ids: Vec<&str> = agents.iter().map(|a| a.agent_id.as_str()).collect();
        assert_eq!(ids, ["a1", "a2"]);
        assert_eq!(agents[0].agent_type.as_deref(), Some("general-purpose"));
        assert_eq!(agents[0].description.as_deref(), Some("look"));
        assert_eq!(agents[0].tool_use_id.as_deref(), Some("toolu_1"));
        assert_eq!(agents[1].meta, None);
        let t = f.history.read_subagent("s1", "a1").expect("read");
        assert_eq!(t.prompts(), ["sub task"]);
        assert_eq!(t.entries[1].assistant_text().as_deref(), Some("done"));
        assert_eq!(
            f.history
                .read_subagent("s1", "a2")
                .expect("nested")
                .prompts(),
            ["nested"]
        );
        assert!(matches!(
            f.history.read_subagent("s1", "a3"),
            Err(HistoryError::SubagentNotFound { .. })
        ));
        // The side chain stays out of the session's own transcript.
        assert_eq!(
            f.history.transcript("s1").expect("read").prompts(),
            ["delegate"]
        );
        f.session("/srv/app", "s2", "alone", 1_000);
        assert!(f.history.subagents("s2").expect("none").is_empty());
    }
}
