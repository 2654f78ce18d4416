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
    /// The SDK ended it because it hit one of its resource limits
    /// ([`ResourceLimits`](crate::sandbox::ResourceLimits)).
    ResourceLimit(LimitKind),
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
            ExitInfo::ResourceLimit(kind) => write!(f, "ended at its {kind} limit"),
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

    /// The CLI path given (`Options::cli_path` or `CLAUDE_CODE_CLI`) exists but cannot
    /// be run; `problem` says why.
    #[error("the claude CLI at {path} {problem}")]
    CliUnusable {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
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

    /// The CLI (or something it started) hit a resource limit
    /// ([`ResourceLimits`](crate::sandbox::ResourceLimits)); the SDK ended everything it ran.
    /// A supervisor restarts such a session like any abnormal end.
    #[error(
        "the claude CLI hit its {kind} limit; the session was ended with everything it ran \
         ({})",
        kind.advice()
    )]
    ResourceLimit {
        /// Which limit.
        kind: LimitKind,
    },

    /// Confinement ([`Sandbox`](crate::sandbox::Sandbox) or
    /// [`ResourceLimits`](crate::sandbox::ResourceLimits)) was asked for but cannot be set up
    /// here, and its policy is [`Fallback::Error`](crate::sandbox::Fallback::Error).
    #[error("confinement unavailable: {missing}; {fix}")]
    SandboxUnavailable {
        /// What is missing or failed.
        missing: String,
        /// What to do about it.
        fix: String,
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
    #[error("{}: {message}", turn_failed_text(.subtype, *.api_status))]
    TurnFailed {
        /// The result subtype (`success` with `is_error`, `error_max_turns`, …).
        subtype: String,
        /// The HTTP status of the API error, when the CLI reports one.
        api_status: Option<u16>,
        /// The error text from the result.
        message: String,
    },

    /// The API refused the turn's request with a status that retrying cannot fix (400,
    /// 401, 403, 404). The SDK ends the turn at the CLI's first report of it instead of
    /// waiting through the CLI's retries.
    #[error("{}", api_error_text(*.status, .error))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error as the CLI reported it (e.g. `authentication_failed`).
        error: String,
    },

    /// A credential proxy refused the turn's API request because the session has spent
    /// its budget there (HTTP 402 with [`BUDGET_EXCEEDED_CODE`]; see the `proxy` module,
    /// feature `proxy`). Retrying cannot help: the CLI does not retry it, and neither
    /// should the caller until the budget is raised.
    #[error(
        "the session's spending budget at the credential proxy is used up ({message}); \
         raise the session's budget or start a new session"
    )]
    BudgetExceeded {
        /// The proxy's explanation, as the CLI reported it.
        message: String,
    },

    /// An in-process MCP server or some of its tools are not available to the model
    /// (checked at the first turn: the CLI connects in-process servers then).
    #[error("in-process MCP server `{server}`: {problem}")]
    McpNotRegistered {
        /// The server.
        server: String,
        /// What is wrong.
        problem: String,
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

/// The marker a credential proxy puts in its HTTP 402 refusal of a session over budget
/// (the error's `type`, and the start of its message, which is all the CLI passes on).
pub const BUDGET_EXCEEDED_CODE: &str = "session_budget_exceeded";

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", stderr.trim_end())
    }
}

fn api_error_text(status: u16, error: &str) -> String {
    let what = match status {
        401 => "authentication failed (401): check ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN, \
                and ANTHROPIC_BASE_URL if you set it"
            .to_string(),
        403 => "permission denied (403): the credentials are valid but not allowed to do this; \
                check the key's organisation, workspace and model access"
            .to_string(),
        404 => "not found (404): check the model name (Options::model) and ANTHROPIC_BASE_URL"
            .to_string(),
        400 => "the API rejected the request (400): check the model, the options and the prompt"
            .to_string(),
        s => format!("the API refused the request ({s})"),
    };
    if error.is_empty() {
        what
    } else {
        format!("{what}; the CLI reported: {error}")
    }
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

fn turn_failed_text(subtype: &str, status: Option<u16>) -> String {
    // The CLI reports an API error as subtype `success` with `is_error`.
    match (subtype, status) {
        (_, Some(s)) => format!("the turn failed with an API error (HTTP {s})"),
        ("success", None) => "the turn failed with an error".to_string(),
        (other, None) => format!("the turn failed ({other})"),
    }
}

impl Error {
    /// The HTTP status of an API failure (a non-retryable [`Error::Api`] or a turn that
    /// ended with an API error), if this is one.
    pub fn api_status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::TurnFailed { api_status, .. } => *api_status,
            Error::BudgetExceeded { .. } => Some(402),
            _ => None,
        }
    }

    /// True when the failure is about credentials (401 or 403).
    pub fn is_auth(&self) -> bool {
        matches!(self.api_status(), Some(401 | 403))
    }

    /// The resource limit the session hit, if this is [`Error::ResourceLimit`].
    pub fn resource_limit(&self) -> Option<LimitKind> {
        match self {
            Error::ResourceLimit { kind } => Some(*kind),
            _ => None,
        }
    }

    /// True when a credential proxy refused the turn because the session's budget is
    /// spent ([`Error::BudgetExceeded`]).
    pub fn is_budget_exceeded(&self) -> bool {
        matches!(self, Error::BudgetExceeded { .. })
    }

    /// The typed error of a turn that ended with an error result: [`Error::BudgetExceeded`]
    /// for a credential proxy's budget refusal, else [`Error::TurnFailed`]. `None` when the
    /// result is not an error.
    pub fn from_result(result: &crate::ResultMessage) -> Option<Error> {
        if !result.is_error {
            return None;
        }
        let message = if result.errors.is_empty() {
            result.result.clone().unwrap_or_default()
        } else {
            result.errors.join("; ")
        };
        if result.api_error_status == Some(402) && message.contains(BUDGET_EXCEEDED_CODE) {
            return Some(Error::BudgetExceeded { message });
        }
        Some(Error::TurnFailed {
            subtype: result.subtype.clone(),
            api_status: result.api_error_status,
            message,
        })
    }

    /// True when a wait timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// True when the session can take no more work (stopped, or its CLI is gone).
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            Error::SessionClosed { .. } | Error::ProcessExited { .. } | Error::ResourceLimit { .. }
        )
    }

    pub(crate) fn closed(reason: impl Into<String>) -> Self {
        Error::SessionClosed {
            reason: Some(reason.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_result_reads_as_one() {
        let e = Error::TurnFailed {
            subtype: "success".into(),
            api_status: Some(403),
            message: "API Error: 403 no access".into(),
        };
        assert_eq!(
            e.to_string(),
            "the turn failed with an API error (HTTP 403): API Error: 403 no access"
        );
        let e = Error::TurnFailed {
            subtype: "error_max_turns".into(),
            api_status: None,
            message: "max turns".into(),
        };
        assert_eq!(
            e.to_string(),
            "the turn failed (error_max_turns): max turns"
        );
        assert!(Error::Api {
            status: 401,
            error: String::new()
        }
        .is_auth());
        assert!(Error::Api {
            status: 401,
            error: "authentication_failed".into()
        }
        .to_string()
        .starts_with("authentication failed (401): check ANTHROPIC_API_KEY"));
    }
}

/// Which resource limit a session hit ([`Error::ResourceLimit`](crate::Error::ResourceLimit)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// The memory limit (the kernel's OOM killer fired in the CLI's cgroup).
    Memory,
    /// The process limit (a fork failed in the CLI's cgroup).
    Processes,
    /// The CLI's CPU time limit.
    CpuTime,
    /// The open files limit.
    OpenFiles,
}

impl LimitKind {
    /// The `snake_case` name (`memory`, `processes`, `cpu_time`, `open_files`).
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Memory => "memory",
            LimitKind::Processes => "processes",
            LimitKind::CpuTime => "cpu_time",
            LimitKind::OpenFiles => "open_files",
        }
    }

    /// How to raise it.
    pub(crate) fn advice(self) -> &'static str {
        match self {
            LimitKind::Memory => {
                "raise ResourceLimits::memory_bytes (serve: [resources] memory_bytes)"
            }
            LimitKind::Processes => "raise ResourceLimits::pids (serve: [resources] pids)",
            LimitKind::CpuTime => {
                "raise ResourceLimits::cpu_seconds (serve: [resources] cpu_seconds)"
            }
            LimitKind::OpenFiles => {
                "raise ResourceLimits::open_files (serve: [resources] open_files)"
            }
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Memory => "memory",
            LimitKind::Processes => "process",
            LimitKind::CpuTime => "CPU time",
            LimitKind::OpenFiles => "open files",
        })
    }
}
