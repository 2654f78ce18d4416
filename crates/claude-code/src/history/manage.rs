//! Changing stored sessions without a CLI: rename and tag (metadata lines appended the
//! way the CLI writes them itself), delete, and fork into a new session id.

use std::{
    collections::{HashMap, HashSet},
    fs::OpenOptions,
    io::{Read, Seek, SeekFrom, Write},
    path::Path,
};

use serde::Serialize;
use serde_json::Value;

use super::{chain_to, check_id, entry_from, scan_lines, sidecar_dir, History, HistoryError};

/// Entry types that make up a conversation (and so are copied into a fork).
const CONVERSATION_TYPES: [&str; 5] = ["user", "assistant", "attachment", "system", "progress"];

/// Fields tied to the original session's team or agent that a fork must not inherit.
const NOT_INHERITED: [&str; 4] = ["teamName", "agentName", "slug", "sourceToolAssistantUUID"];

/// A metadata line, serialised with `type` first as the CLI writes it
/// (`{"type":"custom-title","customTitle":…,"sessionId":…}`, `{"type":"tag",…}`).
#[derive(Serialize)]
struct MetaLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(rename = "customTitle", skip_serializing_if = "Option::is_none")]
    custom_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(rename = "sessionId")]
    session_id: &'a str,
}

impl History {
    /// Sets a session's title by appending a `custom-title` line, as the CLI's
    /// `/rename` does; the latest one wins (see [`super::StoredSession::title`]).
    /// Surrounding whitespace is trimmed; an empty title is refused.
    pub fn rename(&self, id: &str, title: &str) -> Result<(), HistoryError> {
        let title = title.trim();
        if title.is_empty() {
            return Err(HistoryError::InvalidInput {
                what: "title",
                reason: "it is empty",
            });
        }
        self.append_meta(
            id,
            &MetaLine {
                kind: "custom-title",
                custom_title: Some(title),
                tag: None,
                session_id: id,
            },
        )
    }

    /// Tags a session by appending a `tag` line (the latest one wins); `None` clears
    /// the tag. Control and invisible formatting characters are removed and
    /// surrounding whitespace trimmed; a tag left empty is refused.
    pub fn tag(&self, id: &str, tag: Option<&str>) -> Result<(), HistoryError> {
        let cleaned = tag.map(clean_tag);
        if cleaned.as_deref() == Some("") {
            return Err(HistoryError::InvalidInput {
                what: "tag",
                reason: "it is empty (pass None to clear the tag)",
            });
        }
        self.append_meta(
            id,
            &MetaLine {
                kind: "tag",
                custom_title: None,
                tag: Some(cleaned.as_deref().unwrap_or("")),
                session_id: id,
            },
        )
    }

    /// Deletes a stored session: its transcript, its directory of subagent transcripts,
    /// and the CLI's per-session `file-history/<id>` and `session-env/<id>`
    /// directories. Do not delete a session a CLI process is still running.
    pub fn delete(&self, id: &str) -> Result<(), HistoryError> {
        let path = self.locate(id)?;
        std::fs::remove_file(&path).map_err(HistoryError::io(&path))?;
        for dir in [
            sidecar_dir(&path),
            self.config_dir.join("file-history").join(id),
            self.config_dir.join("session-env").join(id),
        ] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(HistoryError::io(&dir)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Copies a stored session into a new session (in the same project) and returns
    /// the new id; resume it with `Options::resume`. Every entry gets a new uuid (the
    /// parent links are kept) and the new session id, and records where it came from
    /// in `forkedFrom`; subagent transcripts, title, tag and file-undo history are not
    /// copied.
    pub fn fork(&self, id: &str) -> Result<String, HistoryError> {
        self.fork_inner(id, None)
    }

    /// Like [`History::fork`], but only the conversation up to and including the
    /// message `message_uuid` (a [`super::TranscriptEntry::uuid`]).
    pub fn fork_at(&self, id: &str, message_uuid: &str) -> Result<String, HistoryError> {
        self.fork_inner(id, Some(message_uuid))
    }

    fn append_meta(&self, id: &str, line: &MetaLine<'_>) -> Result<(), HistoryError> {
        let path = self.locate(id)?;
        let io = |e| HistoryError::io(&path)(e);
        let mut text = serde_json::to_string(line).map_err(|e| io(std::io::Error::other(e)))?;
        text.push('\n');
        // Append only to an existing file (no create), after a newline if the last
        // line is unterminated.
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        if file.metadata().map_err(io)?.len() > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1)).map_err(io)?;
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                text.insert(0, '\n');
            }
        }
        file.write_all(text.as_bytes()).map_err(io)
    }

    fn fork_inner(&self, id: &str, up_to: Option<&str>) -> Result<String, HistoryError> {
        if let Some(uuid) = up_to {
            check_id(uuid)?;
        }
        let path = self.locate(id)?;
        let mut entries: Vec<Value> = Vec::new();
        let mut replacements: Vec<Value> = Vec::new();
        scan_lines(&path, |line| {
            let Ok(raw) = serde_json::from_str::<Value>(line) else {
                return true;
            };
            let kind = raw.get("type").and_then(Value::as_str).unwrap_or_default();
            if kind == "content-replacement"
                && raw.get("sessionId").and_then(Value::as_str) == Some(id)
            {
                if let Some(list) = raw.get("replacements").and_then(Value::as_array) {
                    replacements.extend(list.iter().cloned());
                }
            } else if CONVERSATION_TYPES.contains(&kind)
                && raw.get("uuid").is_some_and(Value::is_string)
                && raw.get("isSidechain").and_then(Value::as_bool) != Some(true)
            {
                entries.push(raw);
            }
            true
        })?;
        if let Some(leaf) = up_to {
            let parsed: Vec<_> = entries
                .into_iter()
                .filter_map(|raw| entry_from(raw, false))
                .collect();
            let chain = chain_to(parsed, leaf);
            if chain.is_empty() {
                return Err(HistoryError::MessageNotFound {
                    id: id.to_string(),
                    uuid: leaf.to_string(),
                });
            }
            entries = chain.into_iter().map(|e| e.raw).collect();
        }
        if entries.is_empty() {
            return Err(HistoryError::Empty { id: id.to_string() });
        }

        let dir = path.parent().unwrap_or(Path::new("."));
        let new_id = uuid_v4().map_err(HistoryError::io(dir))?;
        let mut new_uuids: HashMap<String, String> = HashMap::new();
        for entry in &entries {
            if let Some(old) = entry.get("uuid").and_then(Value::as_str) {
                new_uuids.insert(old.to_string(), uuid_v4().map_err(HistoryError::io(dir))?);
            }
        }
        let kept: HashSet<&str> = new_uuids.keys().map(String::as_str).collect();
        let remap = |v: Option<&Value>| -> Value {
            v.and_then(Value::as_str)
                .filter(|u| kept.contains(u))
                .and_then(|u| new_uuids.get(u))
                .map_or(Value::Null, |u| Value::String(u.clone()))
        };
        let mut out = String::new();
        for mut entry in entries {
            let old = entry
                .get("uuid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let parent = remap(entry.get("parentUuid"));
            let logical = entry.get("logicalParentUuid").map(|l| remap(Some(l)));
            let Some(obj) = entry.as_object_mut() else {
                continue;
            };
            obj.insert("uuid".into(), remap(Some(&Value::String(old.clone()))));
            obj.insert("parentUuid".into(), parent);
            if let Some(logical) = logical {
                obj.insert("logicalParentUuid".into(), logical);
            }
            obj.insert("sessionId".into(), Value::String(new_id.clone()));
            obj.insert(
                "forkedFrom".into(),
                serde_json::json!({"sessionId": id, "messageUuid": old}),
            );
            for key in NOT_INHERITED {
                obj.remove(key);
            }
            out.push_str(&entry.to_string());
            out.push('\n');
        }
        if !replacements.is_empty() {
            let line = serde_json::json!({
                "type": "content-replacement",
                "sessionId": new_id,
                "replacements": replacements,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        let target = dir.join(format!("{new_id}.jsonl"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(HistoryError::io(&target))?;
        file.write_all(out.as_bytes())
            .map_err(HistoryError::io(&target))?;
        Ok(new_id)
    }
}

/// A tag as the CLI accepts it: without control or invisible formatting characters
/// (zero-width, bidirectional controls, byte-order marks, private use), trimmed.
fn clean_tag(tag: &str) -> String {
    let invisible = |c: char| {
        c.is_control()
            || matches!(c,
                '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{E000}'..='\u{F8FF}')
    };
    tag.chars()
        .filter(|c| !invisible(*c))
        .collect::<String>()
        .trim()
        .to_string()
}

/// A random (version 4) UUID, the form the CLI uses for session and message ids.
pub(crate) fn uuid_v4() -> Result<String, std::io::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}
