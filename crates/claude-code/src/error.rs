//! The crate's one error type. Every variant says what happened and, where the user can
//! act on it, what to do. Errors are values: nothing in this crate panics on input that
//! comes from the CLI, the network or the user's configuration.

use std::{fmt, path::PathBuf, time::Duration};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a CLI process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitInfo {
    /// The process exited with this code.
    Code(i32),
    /// The process was killed by this signal.
    Signal(i32),
    /// The exit status could not be read (the process was already reaped elsewhere).
    Unknown,
}

impl ExitInfo {
    pub(crate) fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitInfo::Code(code),
            (None, Some(sig)) => ExitInfo::Signal(sig),
            (None, None) => ExitInfo::Unknown,
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitInfo::Code(c) => write!(f, "exit code {c}"),
            ExitInfo::Signal(s) => write!(f, "killed by signal {s}"),
            ExitInfo::Unknown => f.write_str("unknown exit status"),
        }
    }
}

/// Everything that can go wrong while driving a Claude Code session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable `claude` binary was found.
    #[error(
        "claude CLI not found (looked in: {searched}); install it with \
         `npm install @anthropic-ai/claude-code@{version}` (or the project's scripts/install-cli), \
         or point CLAUDE_CODE_CLI / Options::cli_path at the binary"
    )]
    CliNotFound {
        /// Where we looked, in order.
        searched: String,
        /// The CLI version this SDK is tested with.
        version: &'static str,
    },

    /// The CLI binary exists but could not be started.
    #[error("failed to start the claude CLI at {path}: {source}; check that it is executable")]
    Spawn {
        /// The binary we tried to run.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The CLI process ended while the session still needed it.
    #[error("claude CLI exited unexpectedly ({exit}){}", stderr_suffix(.stderr))]
    ProcessExited {
        /// How it ended.
        exit: ExitInfo,
        /// The last lines the CLI wrote to stderr (bounded).
        stderr: String,
    },

    /// A stdout line was longer than the configured cap; the line was discarded.
    #[error(
        "the claude CLI wrote a line longer than the {limit}-byte limit; it was skipped \
         (raise Options::max_line_bytes if such messages are expected)"
    )]
    LineTooLong {
        /// The configured cap in bytes.
        limit: usize,
    },

    /// The CLI answered a control request with an error.
    #[error("control request `{subtype}` failed: {message}")]
    ControlRequest {
        /// The request's subtype (`interrupt`, `set_model`, …).
        subtype: String,
        /// The CLI's error text.
        message: String,
    },

    /// A wait exceeded its configured timeout.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What we were waiting for.
        what: &'static str,
        /// The timeout that fired.
        after: Duration,
    },

    /// Too many turns are already waiting on this session.
    #[error(
        "the session's turn queue is full ({capacity} turns waiting); retry later, use a pool, \
         or raise Options::max_queued_turns"
    )]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },

    /// The session was stopped (or its actor is gone); start a new one.
    #[error("the session is closed{}", reason_suffix(.reason))]
    SessionClosed {
        /// Why it closed, when known.
        reason: Option<String>,
    },

    /// The turn ended with an error result (API error, max turns, budget, …).
    #[error("the turn failed ({subtype}){}: {message}", status_suffix(*.api_status))]
    TurnFailed {
        /// The result subtype (`success` with `is_error`, `error_max_turns`, …).
        subtype: String,
        /// The HTTP status of the API error, when the CLI reports one.
        api_status: Option<u16>,
        /// The error text from the result.
        message: String,
    },

    /// The turn's message stream ended before a `result` arrived.
    #[error("the turn ended without a result message")]
    NoResult,

    /// The result's structured output is missing or does not fit the requested type.
    #[error("structured output unavailable: {0}")]
    StructuredOutput(String),

    /// Options failed validation before anything was spawned.
    #[error("invalid options: {0}")]
    InvalidOptions(String),

    /// An I/O error talking to the CLI.
    #[error("i/o error talking to the claude CLI: {0}")]
    Io(#[from] std::io::Error),

    /// The session store could not restore the session being resumed.
    #[error("session store: {0}")]
    SessionStore(#[from] crate::store::StoreError),
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", stderr.trim_end())
    }
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(", HTTP {s}")).unwrap_or_default()
}

impl Error {
    pub(crate) fn closed(reason: impl Into<String>) -> Self {
        Error::SessionClosed {
            reason: Some(reason.into()),
        }
    }
}
