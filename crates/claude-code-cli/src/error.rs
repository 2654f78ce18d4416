//! The binary's one error type. Each message says what happened and what to do; `main`
//! prints it after `claude-code: error:` and exits with status 1.

use std::path::PathBuf;

/// Everything a subcommand can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),

    /// The SDK failed (CLI not found, process died, timeout, ...).
    #[error(transparent)]
    Sdk(#[from] claude_code::Error),

    /// The turn ended with an error result.
    #[error("the query failed{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Turn {
        /// HTTP status of the API error, when known.
        status: Option<u16>,
        /// The CLI's error text.
        message: String,
    },

    /// A file system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// npm is not on PATH.
    #[error("npm not found on PATH; install Node.js and npm (any recent version), then rerun `claude-code install`")]
    NpmMissing,

    /// An npm command failed.
    #[error("`{command}` failed: {detail}{hint}")]
    Npm {
        /// The command line.
        command: String,
        /// Its stderr tail or exit status.
        detail: String,
        /// What to do about it.
        hint: String,
    },

    /// The installed binary does not run or reports another version.
    #[error("verification failed: {0}")]
    Verify(String),

    /// A package's integrity differs from the registry's.
    #[error("integrity mismatch for {package}: registry says {expected}, installed {actual}; do not use this install (rerun with --force)")]
    Integrity {
        /// The package.
        package: String,
        /// The registry's `dist.integrity`.
        expected: String,
        /// The lockfile's integrity.
        actual: String,
    },

    /// Something is installed but is not the requested version.
    #[error("{dir} holds a CLI that {found}; rerun with --force to replace it")]
    ExistingInstall {
        /// The install directory.
        dir: PathBuf,
        /// What we found there.
        found: String,
    },

    /// The directory has content that `install` did not put there.
    #[error("{0} exists and was not created by `claude-code install`; choose another --dir or remove it yourself")]
    NotOurs(PathBuf),

    /// No transcript with this id.
    #[error("no stored session {id} under {searched}; list them with `claude-code sessions`")]
    SessionNotFound {
        /// The id asked for.
        id: String,
        /// Where we looked.
        searched: PathBuf,
    },

    /// The mock server failed.
    #[error(transparent)]
    Mock(#[from] claude_code_mock::MockError),
    /// The host failed to start or stop.
    #[error(transparent)]
    Serve(#[from] claude_code_serve::ServeError),
    /// The host's state store failed.
    #[error(transparent)]
    Store(#[from] claude_code_serve::store::StoreError),
    /// `token revoke` of an unknown or already revoked token.
    #[error("no active token with id {0}; see `claude-code token list`")]
    NoSuchToken(String),
    /// No data directory could be chosen.
    #[error(
        "no data directory: pass --data-dir, or set CLAUDE_CODE_DATA_DIR, XDG_DATA_HOME or HOME"
    )]
    NoDataDir,

    /// Flags that do not go together.
    #[error("{0}")]
    Usage(String),

    /// Talking to a running host failed.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),

    /// The log subscriber could not be set up.
    #[error("cannot set up logging: {detail}")]
    Logs {
        /// What went wrong (an invalid RUST_LOG, most likely).
        detail: String,
    },

    /// `doctor` found problems.
    #[error("{0} check(s) failed; see the fixes above")]
    DoctorFailed(usize),
}

impl CliError {
    /// Whether this is a write to a closed pipe.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// An [`CliError::Io`] with context.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}
