//! A session's link to its [`SessionStore`](crate::store::SessionStore): where the CLI
//! will keep the transcript (from the options), restore before the CLI starts, saves
//! after each turn and at exit.

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::history::History;
use crate::options::Options;
use crate::store::{blocking, check_id, read_local, write_files, SessionStore, StoreError};

/// How long the save at the end of a session may take before it is given up (and
/// logged): it runs before `Session::stop` returns.
const FINAL_SAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The config dir the CLI will use: its `CLAUDE_CONFIG_DIR`, else `$HOME/.claude`
/// (a relative one is taken from the CLI's cwd).
fn cli_config_dir(opts: &Options, cwd: &Path) -> Option<PathBuf> {
    let dir = match opts
        .cli_env_var("CLAUDE_CONFIG_DIR")
        .filter(|d| !d.is_empty())
    {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(opts.cli_env_var("HOME").filter(|h| !h.is_empty())?).join(".claude"),
    };
    Some(cwd.join(dir))
}

/// A session's link to its store: restores before the CLI starts, saves after turns.
pub(crate) struct StoreHook {
    store: Arc<dyn SessionStore>,
    history: History,
    cwd: PathBuf,
    /// Held by the save in progress, so saves of this session run one at a time and in
    /// order (tokio's mutex is fair): a later save never loses to an earlier one.
    saving: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for StoreHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHook")
            .field("config_dir", &self.history.config_dir())
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

impl StoreHook {
    /// The hook for these options (`None` without a store), after restoring the session
    /// being resumed from the store when the CLI's local copy is missing.
    pub(crate) async fn prepare(opts: &Options) -> crate::Result<Option<StoreHook>> {
        let Some(store) = opts.session_store.clone() else {
            return Ok(None);
        };
        let cwd = match &opts.cwd {
            Some(dir) => dir.clone(),
            None => std::env::current_dir()?,
        };
        let config = cli_config_dir(opts, &cwd).ok_or_else(|| {
            crate::Error::InvalidOptions(
                "session_store needs the CLI's config dir: set CLAUDE_CONFIG_DIR or HOME".into(),
            )
        })?;
        let hook = StoreHook {
            store,
            history: History::new(config),
            cwd,
            saving: Arc::default(),
        };
        if let Some(id) = &opts.resume {
            hook.restore(id).await?;
        }
        Ok(Some(hook))
    }

    async fn restore(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let dir = self.history.project_dir(&self.cwd);
        if dir.join(format!("{id}.jsonl")).is_file() {
            return Ok(()); // the local copy wins
        }
        match self.store.load(id).await? {
            Some(files) => {
                let owned = id.to_string();
                blocking(move || write_files(&dir, &owned, &files)).await?;
                tracing::debug!(session_id = id, "session restored from its store");
            }
            None => tracing::debug!(session_id = id, "session not in its store either"),
        }
        Ok(())
    }

    /// After a turn's result: saves the session on a spawned task.
    pub(crate) fn turn_finished(&self, session_id: Option<String>) {
        if let Some(id) = session_id {
            tokio::spawn(self.save(id));
        }
    }

    /// When the session has ended (the CLI has exited): saves it, waiting for the
    /// saves before it, for at most `FINAL_SAVE_TIMEOUT`.
    pub(crate) async fn session_ended(&self, session_id: Option<String>) {
        let Some(id) = session_id else { return };
        if tokio::time::timeout(FINAL_SAVE_TIMEOUT, self.save(id.clone()))
            .await
            .is_err()
        {
            tracing::warn!(session_id = id, timeout = ?FINAL_SAVE_TIMEOUT,
                "saving the session to its store timed out");
        }
    }

    /// Saves the local files of session `id` to the store; failures are logged.
    fn save(&self, id: String) -> impl Future<Output = ()> + Send + 'static {
        let store = self.store.clone();
        let saving = self.saving.clone();
        let history = self.history.clone();
        let cwd = self.cwd.clone();
        async move {
            let _turn = saving.lock().await;
            let result = async {
                let dir = history.project_dir(&cwd);
                let local_id = id.clone();
                let Some(files) = blocking(move || read_local(&dir, &local_id)).await? else {
                    tracing::debug!(session_id = id, "no local transcript to save");
                    return Ok(());
                };
                store.save(&id, files).await
            }
            .await;
            match result {
                Ok(()) => tracing::debug!(session_id = id, "session saved to its store"),
                Err(error) => tracing::warn!(session_id = id, %error,
                    "saving the session to its store failed; the session goes on"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_dir_is_the_one_the_cli_will_see() {
        let cwd = Path::new("/work/project");
        let set = Options::new().env("CLAUDE_CONFIG_DIR", "/cfg");
        assert_eq!(cli_config_dir(&set, cwd), Some(PathBuf::from("/cfg")));
        let relative = Options::new().env("CLAUDE_CONFIG_DIR", "cfg");
        assert_eq!(
            cli_config_dir(&relative, cwd),
            Some(PathBuf::from("/work/project/cfg"))
        );
        let home = Options::new()
            .env_remove("CLAUDE_CONFIG_DIR")
            .env("HOME", "/home/u");
        assert_eq!(
            cli_config_dir(&home, cwd),
            Some(PathBuf::from("/home/u/.claude"))
        );
        let nothing = Options::new().inherit_env(["PATH"]);
        assert_eq!(cli_config_dir(&nothing, cwd), None);
    }
}
