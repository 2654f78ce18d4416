//! In-process MCP servers: tools defined in Rust, served to the CLI over `mcp_message`
//! control requests. This is a small typed JSON-RPC layer over the four methods the CLI
//! uses (`initialize`, `notifications/*`, `tools/list`, `tools/call`); tool input schemas
//! are derived from Rust types with `schemars`.

use std::{collections::BTreeMap, fmt::Display, future::Future, sync::Arc};

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// What a tool returns to the model.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolResult {
    /// MCP content blocks (`{"type":"text","text":…}`, images, …).
    pub content: Vec<Value>,
    /// Whether this is an error result (the model sees `isError: true`).
    pub is_error: bool,
}

impl ToolResult {
    /// A text result.
    pub fn text(text: impl Into<String>) -> Self {
        ToolResult {
            content: vec![json!({"type": "text", "text": text.into()})],
            is_error: false,
        }
    }

    /// An error result with this message.
    pub fn error(message: impl Into<String>) -> Self {
        ToolResult {
            is_error: true,
            ..Self::text(message)
        }
    }
}

impl From<String> for ToolResult {
    fn from(s: String) -> Self {
        ToolResult::text(s)
    }
}

impl From<&str> for ToolResult {
    fn from(s: &str) -> Self {
        ToolResult::text(s)
    }
}

impl From<Value> for ToolResult {
    fn from(v: Value) -> Self {
        ToolResult::text(v.to_string())
    }
}

type ToolFn = Arc<dyn Fn(Value) -> BoxFuture<'static, ToolResult> + Send + Sync>;

/// A tool served by an in-process MCP server.
#[derive(Clone)]
pub struct McpTool {
    name: String,
    description: String,
    schema: Value,
    handler: ToolFn,
}

impl std::fmt::Debug for McpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTool")
            .field("name", &self.name)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl McpTool {
    /// A tool whose arguments deserialize into `A`; its input schema is derived from `A`.
    /// Arguments that don't match, and handler errors, reach the model as error results.
    ///
    /// ```
    /// use claude_code::McpTool;
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Add { a: i64, b: i64 }
    /// let tool = McpTool::new("add", "adds two numbers", |args: Add| async move {
    ///     Ok::<_, String>((args.a + args.b).to_string())
    /// });
    /// ```
    pub fn new<A, F, Fut, R, E>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Self
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: Into<ToolResult>,
        E: Display,
    {
        let schema = crate::options::schema_for::<A>();
        let handler = Arc::new(handler);
        Self::from_json(name, description, schema, move |args| {
            let handler = handler.clone();
            async move {
                match serde_json::from_value::<A>(args) {
                    Ok(args) => match handler(args).await {
                        Ok(r) => r.into(),
                        Err(e) => ToolResult::error(e.to_string()),
                    },
                    Err(e) => ToolResult::error(format!("invalid arguments: {e}")),
                }
            }
        })
    }

    /// A tool with a hand-written JSON schema and raw JSON arguments.
    pub fn from_json<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        schema: Value,
        handler: F,
    ) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolResult> + Send + 'static,
    {
        McpTool {
            name: name.into(),
            description: description.into(),
            schema,
            handler: Arc::new(move |args| Box::pin(handler(args))),
        }
    }

    /// The tool's name (the model sees `mcp__<server>__<name>`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// An in-process MCP server: a name and its tools.
#[derive(Clone, Debug)]
pub(crate) struct McpServer {
    pub(crate) name: String,
    pub(crate) tools: BTreeMap<String, McpTool>,
}

impl McpServer {
    pub(crate) fn new(name: String, tools: Vec<McpTool>) -> Self {
        McpServer {
            name,
            tools: tools.into_iter().map(|t| (t.name.clone(), t)).collect(),
        }
    }

    /// Answers one JSON-RPC message; notifications get an empty result (the CLI waits
    /// for a reply to every control request).
    pub(crate) async fn handle(&self, message: &Value) -> Value {
        let id = message.get("id").cloned();
        let method = message.get("method").and_then(Value::as_str).unwrap_or("");
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        let result = match method {
            "initialize" => Ok(json!({
                "protocolVersion": params.get("protocolVersion").cloned()
                    .unwrap_or_else(|| json!("2025-06-18")),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": self.name, "version": env!("CARGO_PKG_VERSION")},
            })),
            "ping" => Ok(json!({})),
            m if m.starts_with("notifications/") => Ok(json!({})),
            "tools/list" => Ok(json!({"tools": self.tools.values().map(|t| json!({
                "name": t.name,
                "description": t.description,
                "inputSchema": t.schema,
            })).collect::<Vec<_>>()})),
            "tools/call" => {
                let name = params.get("name").and_then(Value::as_str).unwrap_or("");
                let args = params
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                match self.tools.get(name) {
                    Some(tool) => {
                        let r = (tool.handler)(args).await;
                        Ok(json!({"content": r.content, "isError": r.is_error}))
                    }
                    None => Err((-32602, format!("unknown tool: {name}"))),
                }
            }
            other => Err((-32601, format!("method not found: {other}"))),
        };
        let mut response = match result {
            Ok(result) => json!({"jsonrpc": "2.0", "result": result}),
            Err((code, message)) => {
                json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}})
            }
        };
        if let Some(id) = id {
            response["id"] = id;
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, JsonSchema)]
    struct Add {
        a: i64,
        b: i64,
    }

    fn server() -> McpServer {
        McpServer::new(
            "calc".into(),
            vec![McpTool::new("add", "adds", |x: Add| async move {
                if x.a < 0 {
                    return Err("negative".to_string());
                }
                Ok((x.a + x.b).to_string())
            })],
        )
    }

    #[tokio::test]
    async fn lists_tools_with_derived_schema() {
        let r = server()
            .handle(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .await;
        assert_eq!(r["id"], 1);
        let tool = &r["result"]["tools"][0];
        assert_eq!(tool["name"], "add");
        assert_eq!(tool["inputSchema"]["properties"]["a"]["type"], "integer");
    }

    #[tokio::test]
    async fn calls_the_tool_and_reports_errors_as_is_error() {
        let s = server();
        let call = |args: Value| {
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "add", "arguments": args}})
        };
        let ok = s.handle(&call(json!({"a": 2, "b": 3}))).await;
        assert_eq!(ok["result"]["content"][0]["text"], "5");
        assert_eq!(ok["result"]["isError"], false);
        let err = s.handle(&call(json!({"a": -1, "b": 3}))).await;
        assert_eq!(err["result"]["isError"], true);
        let bad = s.handle(&call(json!({"a": "x"}))).await;
        assert_eq!(bad["result"]["isError"], true);
    }

    #[tokio::test]
    async fn notifications_get_an_empty_result_and_unknown_methods_an_error() {
        let s = server();
        let n = s
            .handle(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(n, json!({"jsonrpc": "2.0", "result": {}}));
        let e = s
            .handle(&json!({"jsonrpc": "2.0", "id": 3, "method": "resources/list"}))
            .await;
        assert_eq!(e["error"]["code"], -32601);
    }
}
