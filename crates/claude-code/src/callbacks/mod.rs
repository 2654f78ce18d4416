//! Callbacks the CLI invokes over the control protocol: the permission callback
//! (`can_use_tool`), hooks (`hook_callback`) and in-process MCP servers
//! (`mcp_message`). This module holds what the user registered and answers one request;
//! the session runs each answer on its own task (so a slow callback never blocks the
//! session), bounds it with a timeout, turns a panic into an error reply, and cancels it
//! on `control_cancel_request`.

pub mod hooks;
pub mod mcp;
pub mod permissions;

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use serde_json::{json, Value};

use crate::protocol::{InboundRequest, InitializeRequest};
use hooks::{HookInput, HookRegistration};
use mcp::McpServer;
use permissions::{CanUseToolFn, ToolPermissionRequest};

/// Everything registered for one session. Cheap to clone (closures are shared).
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    pub(crate) can_use_tool: Option<CanUseToolFn>,
    pub(crate) hooks: Vec<HookRegistration>,
    pub(crate) mcp_servers: Vec<Arc<McpServer>>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("can_use_tool", &self.can_use_tool.is_some())
            .field("hooks", &self.hooks)
            .field(
                "mcp_servers",
                &self.mcp_servers.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Callbacks {
    /// The `initialize` request carrying the hook registrations.
    pub(crate) fn initialize_request(&self) -> InitializeRequest {
        match hooks::initialize_config(&self.hooks) {
            Some(config) => InitializeRequest::new().with_hooks(config),
            None => InitializeRequest::new(),
        }
    }

    /// Answers one CLI request: the success payload, or an error message for the CLI.
    /// Panics in user code become errors; `timeout` bounds the permission callback and
    /// each hook's own timeout bounds it.
    pub(crate) async fn answer(
        &self,
        request: InboundRequest,
        timeout: Duration,
    ) -> Result<Value, String> {
        match request {
            InboundRequest::CanUseTool(req) => {
                let Some(callback) = &self.can_use_tool else {
                    return Err("no permission callback is registered".into());
                };
                let original = req.input.clone();
                let decision =
                    guarded(callback(ToolPermissionRequest::from(*req)), timeout).await?;
                Ok(decision.to_wire(&original))
            }
            InboundRequest::HookCallback(req) => {
                let hook = req
                    .callback_id
                    .strip_prefix("hook_")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|i| self.hooks.get(i))
                    .ok_or_else(|| format!("unknown hook callback id {}", req.callback_id))?;
                let input = HookInput::from_wire(req.input, req.tool_use_id);
                let event = if input.event.is_empty() {
                    hook.event.as_str().to_string()
                } else {
                    input.event.clone()
                };
                let output = guarded((hook.callback)(input), hook.timeout).await?;
                Ok(output.to_wire(&event))
            }
            InboundRequest::McpMessage(req) => {
                let response = match self.mcp_servers.iter().find(|s| s.name == req.server_name) {
                    Some(server) => server.handle(&req.message).await,
                    None => json!({
                        "jsonrpc": "2.0",
                        "id": req.message.get("id").cloned().unwrap_or(Value::Null),
                        "error": {"code": -32601, "message": format!("unknown MCP server {}", req.server_name)},
                    }),
                };
                Ok(json!({ "mcp_response": response }))
            }
            InboundRequest::Unknown { subtype, .. } => {
                Err(format!("Unsupported control request subtype: {subtype}"))
            }
        }
    }
}

/// Runs user code with a timeout, turning a panic into an error.
async fn guarded<T>(
    fut: impl std::future::Future<Output = T>,
    timeout: Duration,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err("the callback panicked".into()),
        Err(_) => Err(format!("the callback timed out after {timeout:?}")),
    }
}
