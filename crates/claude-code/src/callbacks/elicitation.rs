//! MCP elicitation: an MCP server asks the user for input in the middle of a tool call;
//! the CLI forwards it as an `elicitation` control request, answered by
//! [`Options::on_elicitation`](crate::Options::on_elicitation).

use std::{future::Future, sync::Arc};

use futures::future::BoxFuture;
use serde_json::{json, Value};

/// What an MCP server asks the user for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ElicitationRequest {
    /// The MCP server asking.
    pub server_name: String,
    /// What it says to the user.
    pub message: String,
    /// `form` (fill in `requested_schema`) or `url` (visit `url`).
    pub mode: Option<String>,
    /// The JSON schema of the answer, for a form.
    pub requested_schema: Option<Value>,
    /// The page to visit, for `url` mode.
    pub url: Option<String>,
    /// The whole request as the CLI sent it.
    pub raw: Value,
}

impl ElicitationRequest {
    pub(crate) fn from_wire(raw: Value) -> Self {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
        ElicitationRequest {
            server_name: s("mcp_server_name").unwrap_or_default(),
            message: s("message").unwrap_or_default(),
            mode: s("mode"),
            requested_schema: raw.get("requested_schema").cloned(),
            url: s("url"),
            raw,
        }
    }
}

/// The user's answer to an elicitation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ElicitationResponse {
    /// Accepted, with the content the schema asked for (an object).
    Accept(Value),
    /// Explicitly declined.
    Decline,
    /// Dismissed without a choice.
    Cancel,
}

impl ElicitationResponse {
    pub(crate) fn to_wire(&self) -> Value {
        match self {
            ElicitationResponse::Accept(content) => json!({"action": "accept", "content": content}),
            ElicitationResponse::Decline => json!({"action": "decline"}),
            ElicitationResponse::Cancel => json!({"action": "cancel"}),
        }
    }
}

/// The stored elicitation callback.
pub(crate) type ElicitationFn =
    Arc<dyn Fn(ElicitationRequest) -> BoxFuture<'static, ElicitationResponse> + Send + Sync>;

/// Boxes a user closure into an [`ElicitationFn`].
pub(crate) fn boxed<F, Fut>(f: F) -> ElicitationFn
where
    F: Fn(ElicitationRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ElicitationResponse> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}
