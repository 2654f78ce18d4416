//! Entry points for the cargo-fuzz targets in the repository's `fuzz/` directory
//! (feature `fuzzing`). **Not part of the API**: hidden from the documentation, no
//! semver promise, never needed by an application.
//!
//! Each entry point runs the SDK's own code path for untrusted input, without a CLI
//! process:
//! - [`route_line`]: what a session does with one stdout line of the CLI (the same
//!   function the session's actor calls);
//! - [`Dispatcher::control_request`]: a `control_request` line routed and answered by the
//!   callbacks registered on [`Options`], giving the `control_response` line the session
//!   would write to the CLI's stdin;
//! - [`Dispatcher::mcp_message`]: one JSON-RPC message answered by an in-process
//!   [`McpServer`].

use std::time::Duration;

use serde_json::Value;

use crate::callbacks::Callbacks;
use crate::options::Options;
use crate::protocol::Inbound;
use crate::session::{answer_line, route, Routed};
use crate::McpServer;

/// What a session does with one stdout line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Line {
    /// Skipped (blank, not UTF-8, not a JSON object with a `type`, or unparseable).
    Skipped,
    /// An ordinary message, handed to the turn's consumer unparsed (parsed there).
    Raw,
    /// A line the session acts on itself, parsed.
    Parsed(Inbound),
}

/// Routes one stdout line (without its newline) as the session's actor does.
pub fn route_line(line: &[u8]) -> Line {
    match route(line) {
        Routed::Skip => Line::Skipped,
        Routed::Raw(_) => Line::Raw,
        Routed::Parsed(inbound) => Line::Parsed(inbound),
    }
}

/// Answers CLI requests with the callbacks of an [`Options`], on a current-thread
/// runtime of its own.
#[derive(Debug)]
pub struct Dispatcher {
    callbacks: Callbacks,
    timeout: Duration,
    runtime: tokio::runtime::Runtime,
}

impl Dispatcher {
    /// A dispatcher for the callbacks registered on `options` (permission callback,
    /// hooks, in-process MCP servers, elicitation) and its callback timeout.
    pub fn new(options: &Options) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        Ok(Dispatcher {
            callbacks: options.callbacks.clone(),
            timeout: options.callback_timeout,
            runtime,
        })
    }

    /// Routes one stdout line; when it is a `control_request`, answers it and returns the
    /// `control_response` line (with its newline) the session would write to stdin.
    /// `None` for every other line.
    pub fn control_request(&self, line: &[u8]) -> Option<String> {
        let Routed::Parsed(Inbound::ControlRequest(request)) = route(line) else {
            return None;
        };
        let answer = self.runtime.block_on(self.callbacks.answer(
            request.request,
            self.timeout,
            &crate::audit::AuditScope::default(),
        ));
        Some(answer_line(&request.request_id, answer))
    }

    /// Answers one JSON-RPC message as the in-process MCP `server` does when the CLI
    /// forwards it in an `mcp_message` request; the JSON-RPC response.
    pub fn mcp_message(&self, server: &McpServer, message: &Value) -> Value {
        self.runtime.block_on(server.handle(message, self.timeout))
    }
}
