//! Offline mode shared by the examples (each includes this file with
//! `#[path = "common/offline.rs"] mod offline;`).
//!
//! With `ANTHROPIC_API_KEY` set, an example talks to the real API. Without it,
//! [`Offline::start`] starts the project's mock Messages API on 127.0.0.1 with the
//! example's [`Script`], so the real `claude` CLI runs the capability end to end without
//! a network or an account, and a throwaway `CLAUDE_CONFIG_DIR` keeps `~/.claude`
//! untouched. Either way it offers a scratch directory for examples that change files.

// Each example uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::Path;

use claude_code::Options;
use claude_code_mock::{MockServer, RecordedRequest, Reply, Script};

/// Boxed error for the examples' `main`.
pub type BoxError = Box<dyn std::error::Error>;

/// The example's environment: a scratch working directory, and when offline the mock
/// API and a temporary config directory. Keep it alive while the session runs.
pub struct Offline {
    mock: Option<MockServer>,
    config: Option<tempfile::TempDir>,
    workdir: tempfile::TempDir,
}

impl Offline {
    /// Starts the mock with `script` when `ANTHROPIC_API_KEY` is unset (and says so on
    /// stderr); with a key, `script` is ignored and the real API answers.
    pub async fn start(script: Script) -> Result<Offline, BoxError> {
        let workdir = tempfile::tempdir()?;
        if std::env::var_os("ANTHROPIC_API_KEY").is_some() {
            return Ok(Offline {
                mock: None,
                config: None,
                workdir,
            });
        }
        let mock = MockServer::start(script).await?;
        eprintln!(
            "ANTHROPIC_API_KEY is not set: using the offline mock Messages API at {}",
            mock.url()
        );
        Ok(Offline {
            mock: Some(mock),
            config: Some(tempfile::tempdir()?),
            workdir,
        })
    }

    /// `options` pointed at the mock when offline; unchanged otherwise.
    pub fn options(&self, options: Options) -> Options {
        match (&self.mock, &self.config) {
            (Some(mock), Some(config)) => options
                .env("ANTHROPIC_BASE_URL", mock.url())
                .env("ANTHROPIC_API_KEY", "sk-offline-mock")
                .env("CLAUDE_CONFIG_DIR", config.path().to_string_lossy())
                // The CLI's scratch files go into the same throwaway (private) dir.
                .env("CLAUDE_CODE_TMPDIR", config.path().to_string_lossy())
                .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            _ => options,
        }
    }

    /// A scratch directory for examples that let the CLI change files (deleted on drop).
    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    /// The `CLAUDE_CONFIG_DIR` the CLI writes transcripts to: the temporary one when
    /// offline, else `None` (the CLI's default, `~/.claude`).
    pub fn config_dir(&self) -> Option<&Path> {
        self.config.as_ref().map(|c| c.path())
    }

    /// The mock's base URL when offline.
    pub fn mock_url(&self) -> Option<String> {
        self.mock.as_ref().map(MockServer::url)
    }

    /// True when the mock answers instead of the real API.
    pub fn is_offline(&self) -> bool {
        self.mock.is_some()
    }

    /// Appends replies to the mock's script (for replies that name paths under
    /// [`Offline::workdir`]); ignored when online.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        if let Some(mock) = &self.mock {
            replies.into_iter().for_each(|r| mock.push(r));
        }
    }

    /// The model requests the CLI has sent to the mock so far (agent-loop turns only);
    /// empty when online.
    pub fn model_requests(&self) -> Vec<RecordedRequest> {
        self.mock
            .as_ref()
            .map(MockServer::turn_requests)
            .unwrap_or_default()
    }
}
