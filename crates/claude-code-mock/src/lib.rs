//! Scripted mock of the Anthropic Messages API for running the real `claude` CLI in
//! tests: start a [`MockServer`] with a [`Script`] of [`Reply`]s, point the CLI at it with
//! `ANTHROPIC_BASE_URL` (see [`MockServer::cli_env`]), then assert on the
//! [`RecordedRequest`]s. This crate owns the HTTP side only; spawning the CLI is left to
//! the tests and to `claude-code`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), claude_code_mock::MockError> {
//! use claude_code_mock::{MockServer, Reply, Script};
//! let mock = MockServer::start(
//!     Script::new()
//!         .reply(Reply::tool_use("Bash", serde_json::json!({"command": "echo hi"})))
//!         .reply(Reply::text("done")),
//! )
//! .await?;
//! // run `claude` with mock.cli_env() ...
//! let turns = mock.turn_requests();
//! # Ok(()) }
//! ```
//!
//! # What CLI 2.1.332 sends (observed against a recording server)
//!
//! - Main agent-loop turns: `POST /v1/messages?beta=true`, always `"stream": true`,
//!   `max_tokens` 128000, `tools` (12 built-ins by default; `[]` with `--tools ""`),
//!   `thinking: {"type":"adaptive"}`, `context_management`, `output_config.effort`,
//!   `metadata`. `system` is blocks (first: an `x-anthropic-billing-header` line). The
//!   first user message carries `<system-reminder>` text blocks before the prompt and is
//!   followed by a `role: "system"` message (environment). Subagents (`Agent` tool) make
//!   the same kind of call, concurrently with the main loop. Default model
//!   `claude-opus-5-5`; replies echo whatever model was requested.
//! - `HEAD /api/hello` at start-up (connectivity check), unless
//!   `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`. That variable also stops the DNS
//!   lookups for telemetry hosts, so tests should always set it.
//! - `POST /v1/messages/count_tokens?beta=true` bursts (≈15 calls, `messages:"foo"`, one
//!   tool each) for the `get_context_usage` control request.
//! - Compaction (`/compact`, auto-compact): a main-shaped call (same tools and thinking)
//!   whose last user message starts `CRITICAL: Respond with TEXT ONLY`; it expects
//!   `<analysis>`/`<summary>` blocks.
//! - Prompt hooks (`"type":"prompt"`): tool-free call, no `thinking`,
//!   `output_config.format` json_schema `{ok, reason}`. Session titles use the same shape.
//! - Present in the binary but not seen in SDK-mode runs: `max_tokens: 1` probes
//!   (`quota`, `.`, `test` user messages: quota, model and API-key checks), tool-free
//!   helpers (tool-use summaries, web-fetch summaries), `[SUGGESTION MODE:` forks.
//!
//! # Turn or side request: the rule
//!
//! A request is a [`RequestKind::Turn`], and consumes one script reply, when it is
//! `POST /v1/messages`, has a `messages` array, `max_tokens` > 1, no
//! `output_config.format`, has non-empty `tools` *or* a `thinking` field, and its last user
//! message is not a compaction or suggestion prompt. Everything else is side traffic and
//! never touches the script: probes get `"."` (`stop_reason: max_tokens`), structured
//! helpers get JSON built from their schema (`{"ok":true,"reason":"mock"}` for hooks),
//! compaction gets a summary, other helpers get `"mock"`, `count_tokens` gets
//! `{"input_tokens": body_bytes/4}`, `/api/hello` gets 200, unknown endpoints get an
//! API-style 404. Every request is recorded.
//!
//! # Retries: script one error reply per attempt
//!
//! The CLI retries 401 (with an API key), 429, 500 and 529: 10 retries by default, so 11
//! attempts, backing off ≈0.5 s·2ⁿ with jitter up to ≈32 s (≈3 minutes in all), each
//! announced by a `system`/`api_retry` line on stdout. `CLAUDE_CODE_MAX_RETRIES=N` makes
//! it N+1 attempts (`0`: one). A 429 `retry-after` is honoured (3 s → ≈3.3 s). 403 is not
//! retried. A 400 is re-sent with beta features stripped (6 attempts seen, whatever
//! `CLAUDE_CODE_MAX_RETRIES` says). Every attempt is a turn and pops one reply, so a test
//! that wants the CLI to give up scripts at least N+1 errors (or uses an error fallback).
//! A broken stream ([`Reply::malformed_sse`]) is retried once as a non-streaming request
//! (`"stream": false`, answered with one JSON message) whatever the retry setting: script
//! two malformed replies to fail the turn, one to test recovery.
//!
//! # Tools as root
//!
//! `--permission-mode bypassPermissions` and `--dangerously-skip-permissions` exit 1 as
//! root; `--allowedTools Bash` works (read-only commands such as `echo` run even without
//! it).
//!
//! # Ids and defaults
//!
//! Messages are `msg_mock_N` and tool uses `toolu_mock_N`, numbered per server from 1 in
//! serving order. Usage defaults to 10 input / 5 output tokens. Streamed text, thinking
//! and tool input arrive in several deltas (up to 32 characters each).

mod classify;
mod error;
mod message;
mod record;
mod reply;
mod script;
mod server;
mod side;
mod sse;

pub use classify::RequestKind;
pub use error::MockError;
pub use record::RecordedRequest;
pub use reply::{Block, Reply};
pub use script::Script;
pub use server::MockServer;
