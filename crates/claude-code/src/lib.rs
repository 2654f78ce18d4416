//! Typed async SDK for [Claude Code](https://docs.anthropic.com/en/docs/claude-code): drive
//! the `claude` CLI as a long-lived agent session over its stream-json protocol.
//!
//! A [`Session`] owns one CLI subprocess (in its own process group, reaped on stop or
//! drop). Each prompt opens a [`MessageStream`] of that turn's typed [`Message`]s, with
//! adapters for the common reductions:
//!
//! ```no_run
//! # async fn demo() -> claude_code::Result<()> {
//! use claude_code::{Options, Session};
//!
//! let session = Session::start(Options::new().system_prompt("You review Rust")).await?;
//! let text = session.stream("Review src/lib.rs").await?.final_text().await?;
//! let summary = session.stream("And the tests?").await?.collect().await?;
//! println!("{text}\n{} tool calls, ${:?}", summary.tool_calls.len(), summary.cost_usd());
//! session.stop().await?;
//!
//! // One-off: start, stream, stop.
//! let summary = claude_code::query("What is 2 + 2?", Options::new()).await?;
//! # Ok(()) }
//! ```
//!
//! # Module map
//!
//! Two layers; the hosting layer builds on the SDK, never the other way round
//! (`ARCHITECTURE.md` in the repository draws them, with each actor and its channels).
//!
//! The SDK, one session and one CLI process:
//! - [`options`]: [`Options`], and the one place options become the CLI's argv and
//!   environment; validation before spawn;
//! - [`cli`]: finding the `claude` binary and its version;
//! - `transport`: the process (own process group, parent-death signal, capped stdout
//!   lines, stderr tail, shutdown);
//! - [`protocol`]: wire types for every message and control envelope;
//! - [`callbacks`]: the permission callback, hooks, in-process MCP servers and
//!   elicitation, guarded and fail-closed;
//! - [`audit`]: the session's audit trail ([`Options::audit`]) and its redaction;
//! - `session`: [`Session`], its actor, and turn streams ([`MessageStream`]) with their
//!   adapters;
//! - [`telemetry`], [`procfs`]: tracing, metrics, and the one `/proc` reader;
//! - [`history`], [`store`]: the CLI's stored sessions, and [`SessionStore`].
//!
//! The hosting layer, [`hosting`] (its modules are re-exported here too):
//! [`supervisor`], [`pool`], [`spares`], [`admission`], [`cost`].
//!
//! Guides, one per capability, each with an example that runs offline against the mock
//! API: `docs/guides/` in the repository (callbacks: [`Options::can_use_tool`],
//! [`Options::hook`], [`Options::mcp_server`]; structured output:
//! [`Options::output_type`]; runtime control: [`Session`]'s methods; sessions on disk:
//! [`Options::resume`] and [`history`]; elsewhere: [`Options::session_store`] and
//! [`store`]).

// The SDK: one session, one CLI process.
pub mod audit;
pub mod callbacks;
pub mod cli;
mod error;
pub mod history;
pub mod options;
pub mod procfs;
pub mod protocol;
#[cfg(feature = "proxy")]
pub mod proxy;
pub mod sandbox;
mod schema;
mod session;
pub mod store;
pub mod telemetry;
mod transport;
mod util;

// Entry points for the fuzz targets in `fuzz/` only; not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzz.rs"]
pub mod __fuzz;

// The hosting layer, built on the SDK (never the other way round).
pub mod hosting;
pub use hosting::{admission, cost, pool, spares, supervisor};

pub use admission::{Admission, AdmissionError, AdmissionStats, AdmittedError, LivePermit};
pub use callbacks::{
    elicitation::{ElicitationRequest, ElicitationResponse},
    hooks::{HookEvent, HookEventInput, HookInput, HookOutput},
    mcp::{McpPrompt, McpResource, McpServer, McpTool, ToolAnnotations, ToolResult},
    permissions::{PermissionResult, ToolPermissionRequest},
};
pub use cli::{CliPath, PINNED_CLI_VERSION};
pub use cost::{CostReport, CostTotals, CostTracker, ModelCost, TokenUsage, TurnCost};
pub use error::{Error, ExitInfo, Result, BUDGET_EXCEEDED_CODE};
pub use options::{
    AgentDefinition, CliProfile, CliSwitch, Effort, McpServerConfig, Options, PermissionMode,
    SandboxSettings, SettingSource, Settings, SystemPrompt, Thinking, Tools,
};
pub use pool::{MemberStats, Pool, PoolBuilder, PoolContext, PoolError, PoolStats, Selection};
pub use protocol::{ContentBlock, Message, ResultMessage, UserInput};
pub use session::stream::{ContentDelta, MessageStream, ToolCall, ToolUse, TurnSummary};
pub use session::{Health, Session, UnhealthyReason};
pub use spares::{Spare, SpareStats, Spares, SparesBuilder};
pub use store::{DirectoryStore, SessionStore};
pub use supervisor::{
    Backoff, ChildHealth, ChildInfo, ChildStatus, Restart, SessionCounts, SessionSpec, Strategy,
    SupervisedSession, Supervisor, SupervisorBuilder, SupervisorError,
};

/// One-off query: starts a session, runs one turn, stops the session (reaping the CLI)
/// and returns the turn's [`TurnSummary`].
pub async fn query(prompt: impl Into<UserInput>, options: Options) -> Result<TurnSummary> {
    let session = Session::start(options).await?;
    let outcome = match session.stream(prompt).await {
        Ok(stream) => stream.collect().await,
        Err(e) => Err(e),
    };
    session.stop().await?;
    outcome
}

/// One-off streaming query: the returned stream owns its session, which stops once the
/// stream ends or is dropped.
pub async fn query_stream(prompt: impl Into<UserInput>, options: Options) -> Result<MessageStream> {
    let session = Session::start(options).await?;
    let stream = session.stream(prompt).await?;
    Ok(stream.owning(session))
}

/// The guides' Rust snippets, compiled as doc tests so that they stay true to the API.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../../../docs/guides/mcp-tools.md")]
    struct McpTools;
    #[doc = include_str!("../../../docs/guides/hooks.md")]
    struct Hooks;
    #[doc = include_str!("../../../docs/guides/permissions.md")]
    struct Permissions;
    #[doc = include_str!("../../../docs/guides/sessions-and-streams.md")]
    struct SessionsAndStreams;
    #[doc = include_str!("../../../docs/guides/hosting.md")]
    struct Hosting;
    #[doc = include_str!("../../../docs/guides/options.md")]
    struct Options;
    #[doc = include_str!("../../../docs/guides/structured-output.md")]
    struct StructuredOutput;
    #[doc = include_str!("../../../docs/guides/runtime-control.md")]
    struct RuntimeControl;
    #[doc = include_str!("../../../docs/guides/sessions-on-disk.md")]
    struct SessionsOnDisk;
}
