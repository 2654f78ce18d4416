//! Session stores: keeping a session's transcript somewhere other than the CLI's local
//! files, so the session can be resumed on another machine or after its local files are
//! gone.
//!
//! With [`Options::session_store`](crate::Options::session_store) set, a
//! [`Session`](crate::Session):
//!
//! - before it spawns a CLI that resumes a session (`Options::resume`), restores that
//!   session's files from the store into the CLI's project directory (under the
//!   effective `CLAUDE_CONFIG_DIR` and cwd, see [`crate::history`]) when they are
//!   missing there; a local transcript always wins;
//! - after each turn's `result`, saves the transcript the CLI has written so far, on a
//!   spawned task (in order, never on the session's hot path);
//! - when the session ends, saves it once more (the CLI flushes its transcript on
//!   exit), before [`Session::stop`](crate::Session::stop) returns.
//!
//! A failed save is logged (`tracing` warning) and never fails the session; a failed
//! restore fails [`Session::start`](crate::Session::start), since the CLI could not
//! resume anyway. Without a store (the default, or [`LocalOnly`]) the CLI's local files
//! are all there is.
//!
//! What is saved is the transcript (`<id>.jsonl`, complete lines only) and the files
//! under its sidecar directory `<id>/` (subagent transcripts and their metadata), keyed
//! by session id: a restore puts them into the resuming session's project, whatever
//! project they came from. `Options::continue_conversation` is not served by a store
//! (it has no id to look up).

use std::{
    future::Future,
    path::{Component, Path, PathBuf},
    pin::Pin,
};

use crate::history::valid_id;

/// The future a [`SessionStore`] method returns (boxed, so the trait is object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Errors of a session store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A session id that cannot name a file (empty, or with characters other than ASCII
    /// letters, digits, `-` and `_`).
    #[error("invalid session id {0:?}: expected ASCII letters, digits, '-' or '_'")]
    InvalidId(String),
    /// A sidecar path that is absolute, empty, or leaves its directory (`..`).
    #[error("invalid sidecar path {0:?}: expected a relative path without '..'")]
    InvalidPath(String),
    /// A file or directory could not be read or written.
    #[error("session store cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An error of a store's own backend (a database, an object store).
    #[error("session store backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a backend's error.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError::Backend(error.into())
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// One session's files as the CLI stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionFiles {
    /// The transcript (`<id>.jsonl`): JSON lines, each ending in `\n`.
    pub transcript: Vec<u8>,
    /// Files under the session's sidecar directory `<id>/` (subagent transcripts and
    /// their metadata), by `/`-separated path relative to it, sorted by path.
    pub sidecars: Vec<(String, Vec<u8>)>,
}

impl SessionFiles {
    /// A transcript without sidecar files.
    pub fn new(transcript: impl Into<Vec<u8>>) -> SessionFiles {
        SessionFiles {
            transcript: transcript.into(),
            sidecars: Vec::new(),
        }
    }

    /// Adds a sidecar file (`path` relative to the session's `<id>/` directory).
    pub fn with_sidecar(mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.sidecars.push((path.into(), bytes.into()));
        self
    }
}

/// Where session transcripts are kept besides the CLI's local files: saved after each
/// turn and when a session ends, loaded before a resume when the local copy is
/// missing. Implementations must be cheap to call concurrently for different ids; the
/// SDK serialises saves of one session within a process.
///
/// ```
/// use claude_code::store::{SessionFiles, SessionStore, StoreError, StoreFuture};
/// use std::{collections::HashMap, sync::Mutex};
///
/// /// Transcripts in memory (a stand-in for a database).
/// #[derive(Default)]
/// struct Memory(Mutex<HashMap<String, SessionFiles>>);
///
/// impl SessionStore for Memory {
///     fn save<'a>(&'a self, id: &'a str, files: SessionFiles) -> StoreFuture<'a, ()> {
///         Box::pin(async move {
///             self.0.lock().map_err(|e| StoreError::backend(e.to_string()))?.insert(id.into(), files);
///             Ok(())
///         })
///     }
///     fn load<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<SessionFiles>> {
///         Box::pin(async move {
///             Ok(self.0.lock().map_err(|e| StoreError::backend(e.to_string()))?.get(id).cloned())
///         })
///     }
/// }
/// ```
pub trait SessionStore: Send + Sync {
    /// Saves the session's files, replacing what was saved under this id before.
    fn save<'a>(&'a self, session_id: &'a str, files: SessionFiles) -> StoreFuture<'a, ()>;

    /// The files saved under this id; `None` when there are none.
    fn load<'a>(&'a self, session_id: &'a str) -> StoreFuture<'a, Option<SessionFiles>>;
}

/// The default: the CLI's local files only. Saves nothing and restores nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalOnly;

impl SessionStore for LocalOnly {
    fn save<'a>(&'a self, _: &'a str, _: SessionFiles) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn load<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<SessionFiles>> {
        Box::pin(async { Ok(None) })
    }
}

/// A directory of transcripts keyed by session id: `<root>/<id>.jsonl` and the sidecar
/// files under `<root>/<id>/`. Each file is replaced atomically (written aside, then
/// renamed). For tests and simple deployments (a shared or synced volume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryStore {
    root: PathBuf,
}

impl DirectoryStore {
    /// A store in `root` (created on the first save).
    pub fn new(root: impl Into<PathBuf>) -> DirectoryStore {
        DirectoryStore { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl SessionStore for DirectoryStore {
    fn save<'a>(&'a self, session_id: &'a str, files: SessionFiles) -> StoreFuture<'a, ()> {
        let root = self.root.clone();
        let id = session_id.to_string();
        Box::pin(async move { blocking(move || write_files(&root, &id, &files)).await })
    }

    fn load<'a>(&'a self, session_id: &'a str) -> StoreFuture<'a, Option<SessionFiles>> {
        let root = self.root.clone();
        let id = session_id.to_string();
        Box::pin(async move { blocking(move || read_files(&root, &id)).await })
    }
}

/// Runs blocking file work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::backend(format!("file task failed: {e}")))?
}

pub(crate) fn check_id(id: &str) -> Result<(), StoreError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(StoreError::InvalidId(id.to_string()))
    }
}

/// A sidecar's path below its directory: relative, plain components only.
fn sidecar_path(rel: &str) -> Result<PathBuf, StoreError> {
    let path = Path::new(rel);
    let plain = !rel.is_empty()
        && !rel.contains(['\\', '\0'])
        && path.components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(path.to_path_buf())
    } else {
        Err(StoreError::InvalidPath(rel.to_string()))
    }
}

/// Writes `id`'s files into `dir` as `<id>.jsonl` and `<id>/…` (each file atomically).
pub(crate) fn write_files(dir: &Path, id: &str, files: &SessionFiles) -> Result<(), StoreError> {
    check_id(id)?;
    let sidecars = files
        .sidecars
        .iter()
        .map(|(rel, bytes)| Ok((sidecar_path(rel)?, bytes)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
    replace_file(&dir.join(format!("{id}.jsonl")), &files.transcript)?;
    let side_dir = dir.join(id);
    for (rel, bytes) in sidecars {
        replace_file(&side_dir.join(rel), bytes)?;
    }
    Ok(())
}

/// Writes `bytes` beside `path` and renames it over `path`.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(StoreError::io(parent))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = crate::history::uuid_v4().map_err(StoreError::io(parent))?;
    let tmp = parent.join(format!(".{name}.{suffix}.tmp"));
    std::fs::write(&tmp, bytes).map_err(StoreError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        StoreError::io(path)(e)
    })
}

/// Reads `id`'s files from `dir` (`None` without a transcript).
fn read_files(dir: &Path, id: &str) -> Result<Option<SessionFiles>, StoreError> {
    check_id(id)?;
    let path = dir.join(format!("{id}.jsonl"));
    let transcript = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(&path)(e)),
    };
    let mut sidecars = Vec::new();
    collect_sidecars(&dir.join(id), "", &mut sidecars)?;
    sidecars.sort();
    Ok(Some(SessionFiles {
        transcript,
        sidecars,
    }))
}

/// Regular files below `dir` (symlinks and temporary files skipped), by relative path.
fn collect_sidecars(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(dir)(e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let rel = format!("{prefix}{name}");
        if kind.is_dir() {
            collect_sidecars(&entry.path(), &format!("{rel}/"), out)?;
        } else if kind.is_file() && !(name.starts_with('.') && name.ends_with(".tmp")) {
            let path = entry.path();
            match std::fs::read(&path) {
                Ok(bytes) => out.push((rel, bytes)),
                // Removed while being read: it is simply not part of this copy.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path)(e)),
            }
        }
    }
    Ok(())
}

/// Reads the CLI's local files of session `id` in `project_dir`: the transcript up to
/// its last complete line (the CLI may be writing the next one) and the sidecar files.
/// `None` when there is no transcript.
pub(crate) fn read_local(project_dir: &Path, id: &str) -> Result<Option<SessionFiles>, StoreError> {
    let Some(mut files) = read_files(project_dir, id)? else {
        return Ok(None);
    };
    let complete = files
        .transcript
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    files.transcript.truncate(complete);
    Ok(Some(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_store_round_trips_transcripts_and_sidecars() {
        let dir = tempfile::tempdir().expect("dir");
        let store = DirectoryStore::new(dir.path().join("store"));
        assert_eq!(store.load("s1").await.expect("load"), None);
        let files = SessionFiles::new("{\"a\":1}\n")
            .with_sidecar("subagents/agent-x.jsonl", "{}\n")
            .with_sidecar("subagents/agent-x.meta.json", "{}");
        store.save("s1", files.clone()).await.expect("save");
        assert_eq!(store.load("s1").await.expect("load"), Some(files));
        let newer = SessionFiles::new("{\"a\":2}\n");
        store.save("s1", newer).await.expect("save again");
        let loaded = store.load("s1").await.expect("load").expect("saved");
        assert_eq!(loaded.transcript, b"{\"a\":2}\n");
        assert!(dir.path().join("store/s1.jsonl").is_file());
    }

    #[tokio::test]
    async fn bad_ids_and_sidecar_paths_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let store = DirectoryStore::new(dir.path());
        for id in ["../x", "a/b", ""] {
            assert!(matches!(
                store.save(id, SessionFiles::default()).await,
                Err(StoreError::InvalidId(_))
            ));
            assert!(matches!(
                store.load(id).await,
                Err(StoreError::InvalidId(_))
            ));
        }
        for rel in ["../escape", "/abs", "a/../../b", "", "a\\b", "./a"] {
            let files = SessionFiles::new("").with_sidecar(rel, "x");
            assert!(
                matches!(
                    store.save("s1", files).await,
                    Err(StoreError::InvalidPath(_))
                ),
                "{rel:?}"
            );
        }
        assert!(!dir.path().join("s1.jsonl").exists(), "nothing written");
        assert!(LocalOnly.load("s1").await.expect("load").is_none());
        LocalOnly
            .save("s1", SessionFiles::default())
            .await
            .expect("save");
    }

    #[test]
    fn local_reads_keep_only_complete_lines() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("s1.jsonl"), "{\"a\":1}\n{\"b\":").expect("write");
        let files = read_local(dir.path(), "s1").expect("read").expect("some");
        assert_eq!(files.transcript, b"{\"a\":1}\n");
        assert_eq!(read_local(dir.path(), "s2").expect("read"), None);
    }
}
