//! In-process MCP servers: tools, resources and prompts defined in Rust, served to the
//! CLI over `mcp_message` control requests. This is a small typed JSON-RPC layer over
//! the methods the CLI uses (`initialize`, `notifications/*`, `tools/*`, `resources/*`,
//! `prompts/*`); tool input schemas are derived from Rust types with `schemars` and
//! normalised to the object schema the CLI requires.
//!
//! Every handler runs guarded: a panic or a handler that outlives its timeout becomes an
//! error result the model sees, and the session goes on.

use std::{
    collections::BTreeMap, fmt::Display, future::Future, panic::AssertUnwindSafe, sync::Arc,
    time::Duration,
};

use futures::{future::BoxFuture, FutureExt};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

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

/// Hints about a tool's behaviour (MCP `annotations`); clients use them to decide how
/// much care a call needs. All default to "unknown".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolAnnotations {
    /// A human-readable title.
    pub title: Option<String>,
    /// The tool does not change its environment.
    pub read_only: Option<bool>,
    /// The tool may destroy data (meaningful when not read-only).
    pub destructive: Option<bool>,
    /// Calling it again with the same arguments has no further effect.
    pub idempotent: Option<bool>,
    /// The tool talks to an open world of external entities (the web, …).
    pub open_world: Option<bool>,
}

impl ToolAnnotations {
    fn to_wire(&self) -> Option<Value> {
        let mut v = Map::new();
        let mut put = |k: &str, val: Option<Value>| {
            if let Some(val) = val {
                v.insert(k.into(), val);
            }
        };
        put("title", self.title.clone().map(Value::String));
        put("readOnlyHint", self.read_only.map(Value::Bool));
        put("destructiveHint", self.destructive.map(Value::Bool));
        put("idempotentHint", self.idempotent.map(Value::Bool));
        put("openWorldHint", self.open_world.map(Value::Bool));
        (!v.is_empty()).then_some(Value::Object(v))
    }
}

type ToolFn = Arc<dyn Fn(Value) -> BoxFuture<'static, ToolResult> + Send + Sync>;

/// A tool served by an in-process MCP server.
#[derive(Clone)]
pub struct McpTool {
    name: String,
    description: String,
    schema: Value,
    /// The arguments arrive wrapped under this key (a non-object input type).
    wrapped: Option<&'static str>,
    annotations: ToolAnnotations,
    timeout: Option<Duration>,
    handler: ToolFn,
}

impl std::fmt::Debug for McpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTool")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("annotations", &self.annotations)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The key a non-object argument is wrapped under in the tool's input schema.
const WRAP_KEY: &str = "value";

impl McpTool {
    /// A tool whose arguments deserialize into `A`; its input schema is derived from `A`.
    /// Arguments that don't match, and handler errors, reach the model as error results.
    ///
    /// The CLI only registers tools whose input schema is a JSON object. An `A` whose
    /// schema is not an object (`serde_json::Value`, a number, an enum, a list) is
    /// normalised: `Value` accepts any object; other types are taken as a single
    /// required property `value`, unwrapped before `A` is deserialized.
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
        let schema = crate::schema::schema_for::<A>();
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

    /// A tool with a hand-written JSON schema and raw JSON arguments. A schema that is
    /// not an object schema is normalised as in [`McpTool::new`].
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
        let (schema, wrapped) = normalize_input_schema(schema);
        McpTool {
            name: name.into(),
            description: description.into(),
            schema,
            wrapped,
            annotations: ToolAnnotations::default(),
            timeout: None,
            handler: Arc::new(move |args| Box::pin(handler(args))),
        }
    }

    /// Bounds each call of this tool (default:
    /// [`Options::callback_timeout`](crate::Options::callback_timeout)). Past it the
    /// model gets an error result.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the tool's behaviour hints.
    #[must_use]
    pub fn annotations(mut self, annotations: ToolAnnotations) -> Self {
        self.annotations = annotations;
        self
    }

    /// Marks the tool read-only (`readOnlyHint: true`).
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.annotations.read_only = Some(true);
        self
    }

    /// Marks the tool destructive (`destructiveHint: true`).
    #[must_use]
    pub fn destructive(mut self) -> Self {
        self.annotations.destructive = Some(true);
        self
    }

    /// The tool's name (the model sees `mcp__<server>__<name>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The input schema sent to the CLI (always an object schema).
    pub fn input_schema(&self) -> &Value {
        &self.schema
    }

    async fn call(&self, mut args: Value, default_timeout: Duration) -> ToolResult {
        if let Some(key) = self.wrapped {
            args = match args {
                Value::Object(mut m) => m.remove(key).unwrap_or(Value::Null),
                other => other,
            };
        }
        let timeout = self.timeout.unwrap_or(default_timeout);
        match guarded((self.handler)(args), timeout).await {
            Ok(result) => match invalid_content(&result.content) {
                None => result,
                Some(why) => ToolResult::error(format!(
                    "the tool `{}` returned content the MCP protocol does not allow: {why}",
                    self.name
                )),
            },
            Err(failure) => ToolResult::error(format!("the tool `{}` {failure}", self.name)),
        }
    }
}

/// Why `content` is not a list of MCP content blocks, if it is not: each must be an
/// object whose `type` is one MCP defines, with that type's required field.
fn invalid_content(content: &[Value]) -> Option<String> {
    for (i, block) in content.iter().enumerate() {
        let ty = block.get("type").and_then(Value::as_str);
        let needs = match ty {
            Some("text") => "text",
            Some("image" | "audio") => "data",
            Some("resource") => "resource",
            Some("resource_link") => "uri",
            Some(other) => return Some(format!("block {i} has unknown type {other:?}")),
            None => return Some(format!("block {i} is not an object with a \"type\"")),
        };
        if block.get(needs).is_none() {
            return Some(format!(
                "block {i} ({}) has no {needs:?}",
                ty.unwrap_or_default()
            ));
        }
    }
    None
}

/// Makes `schema` an object schema the CLI registers; returns it and the key the
/// arguments are wrapped under, if they are.
fn normalize_input_schema(schema: Value) -> (Value, Option<&'static str>) {
    let mut object = match schema {
        Value::Object(m) => m,
        // `true` (any value) and `false`: take any object.
        _ => return (json!({"type": "object"}), None),
    };
    let ty = object.get("type").cloned();
    let is_object_type = match &ty {
        Some(Value::String(t)) => t == "object",
        // e.g. an optional struct: ["object", "null"]
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => false,
    };
    let combinator = ["oneOf", "anyOf", "allOf", "$ref", "enum", "const", "not"]
        .iter()
        .any(|k| object.contains_key(*k));
    if is_object_type || (ty.is_none() && object.contains_key("properties")) {
        object.insert("type".into(), json!("object"));
        return (Value::Object(object), None);
    }
    if ty.is_none() && !combinator {
        // `{}` or a schema of annotations only: any value, so any object.
        object.insert("type".into(), json!("object"));
        return (Value::Object(object), None);
    }
    // Anything else is wrapped as one required property; definitions stay at the root
    // so that `#/definitions/…` references still resolve.
    let mut root = Map::new();
    for key in ["$schema", "definitions", "$defs"] {
        if let Some(v) = object.remove(key) {
            root.insert(key.into(), v);
        }
    }
    root.insert("type".into(), json!("object"));
    root.insert(
        "properties".into(),
        json!({ WRAP_KEY: Value::Object(object) }),
    );
    root.insert("required".into(), json!([WRAP_KEY]));
    (Value::Object(root), Some(WRAP_KEY))
}

type ResourceFn = Arc<dyn Fn(String) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// A resource served by an in-process MCP server: text the model can read through the
/// CLI's MCP resource tools.
#[derive(Clone)]
pub struct McpResource {
    uri: String,
    name: String,
    description: Option<String>,
    mime_type: String,
    reader: ResourceFn,
}

impl std::fmt::Debug for McpResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpResource")
            .field("uri", &self.uri)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl McpResource {
    /// A text resource at `uri`; `read` produces its content on each read (an `Err`
    /// reaches the model as an error).
    pub fn new<F, Fut, E>(uri: impl Into<String>, name: impl Into<String>, read: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Display,
    {
        let read = Arc::new(read);
        McpResource {
            uri: uri.into(),
            name: name.into(),
            description: None,
            mime_type: "text/plain".into(),
            reader: Arc::new(move |uri| {
                let read = read.clone();
                Box::pin(async move { read(uri).await.map_err(|e| e.to_string()) })
            }),
        }
    }

    /// A resource with fixed text.
    pub fn text(uri: impl Into<String>, name: impl Into<String>, text: impl Into<String>) -> Self {
        let text: Arc<str> = text.into().into();
        Self::new(uri, name, move |_| {
            let text = text.clone();
            async move { Ok::<_, String>(text.to_string()) }
        })
    }

    /// A description for clients.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// The MIME type (default `text/plain`).
    #[must_use]
    pub fn mime_type(mut self, mime: impl Into<String>) -> Self {
        self.mime_type = mime.into();
        self
    }
}

/// One argument of an [`McpPrompt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptArgument {
    /// The argument's name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Whether the prompt needs it.
    pub required: bool,
}

type PromptFn = Arc<
    dyn Fn(BTreeMap<String, String>) -> BoxFuture<'static, Result<String, String>> + Send + Sync,
>;

/// A prompt template served by an in-process MCP server (`prompts/list`, `prompts/get`).
/// Note: the pinned CLI (2.1.332) does not list the prompts of in-process servers as
/// slash commands; they are served to any MCP client that asks.
#[derive(Clone)]
pub struct McpPrompt {
    name: String,
    description: Option<String>,
    arguments: Vec<PromptArgument>,
    render: PromptFn,
}

impl std::fmt::Debug for McpPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpPrompt")
            .field("name", &self.name)
            .field("arguments", &self.arguments)
            .finish_non_exhaustive()
    }
}

impl McpPrompt {
    /// A prompt whose text `render` builds from the given arguments (by name).
    pub fn new<F, Fut, E>(name: impl Into<String>, render: F) -> Self
    where
        F: Fn(BTreeMap<String, String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Display,
    {
        let render = Arc::new(render);
        McpPrompt {
            name: name.into(),
            description: None,
            arguments: Vec::new(),
            render: Arc::new(move |args| {
                let render = render.clone();
                Box::pin(async move { render(args).await.map_err(|e| e.to_string()) })
            }),
        }
    }

    /// A description for clients.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Declares an argument.
    #[must_use]
    pub fn argument(mut self, name: impl Into<String>, required: bool) -> Self {
        self.arguments.push(PromptArgument {
            name: name.into(),
            description: None,
            required,
        });
        self
    }
}

/// An in-process MCP server: a name and its tools, resources and prompts. Register it
/// with [`Options::mcp`](crate::Options::mcp) (or
/// [`Options::mcp_server`](crate::Options::mcp_server) for tools only).
///
/// ```
/// use claude_code::{McpServer, McpTool, McpResource};
/// let server = McpServer::new("docs")
///     .tool(McpTool::new("echo", "echoes", |v: String| async move { Ok::<_, String>(v) }).read_only())
///     .resource(McpResource::text("docs://readme", "readme", "Read me first."));
/// ```
#[derive(Clone, Debug)]
pub struct McpServer {
    pub(crate) name: String,
    tools: BTreeMap<String, McpTool>,
    resources: BTreeMap<String, McpResource>,
    prompts: BTreeMap<String, McpPrompt>,
    version: String,
}

impl McpServer {
    /// An empty server called `name` (the model sees its tools as `mcp__<name>__<tool>`).
    pub fn new(name: impl Into<String>) -> Self {
        McpServer {
            name: name.into(),
            tools: BTreeMap::new(),
            resources: BTreeMap::new(),
            prompts: BTreeMap::new(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// Adds a tool (a later tool with the same name replaces it).
    #[must_use]
    pub fn tool(mut self, tool: McpTool) -> Self {
        self.tools.insert(tool.name.clone(), tool);
        self
    }

    /// Adds tools.
    #[must_use]
    pub fn tools(self, tools: impl IntoIterator<Item = McpTool>) -> Self {
        tools.into_iter().fold(self, Self::tool)
    }

    /// Adds a resource (keyed by its URI).
    #[must_use]
    pub fn resource(mut self, resource: McpResource) -> Self {
        self.resources.insert(resource.uri.clone(), resource);
        self
    }

    /// Adds a prompt.
    #[must_use]
    pub fn prompt(mut self, prompt: McpPrompt) -> Self {
        self.prompts.insert(prompt.name.clone(), prompt);
        self
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names of its tools.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// Checks names the CLI and the API accept; the error says which is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !ok(&self.name) {
            return Err(format!(
                "in-process MCP server name {:?} must be 1-64 characters of A-Z, a-z, 0-9, _ or -",
                self.name
            ));
        }
        for name in self.tools.keys().chain(self.prompts.keys()) {
            if !ok(name) {
                return Err(format!(
                    "MCP tool or prompt name {name:?} on server {:?} must be 1-64 characters of A-Z, a-z, 0-9, _ or -",
                    self.name
                ));
            }
        }
        Ok(())
    }

    fn capabilities(&self) -> Value {
        let mut caps = Map::new();
        caps.insert("tools".into(), json!({}));
        if !self.resources.is_empty() {
            caps.insert("resources".into(), json!({}));
        }
        if !self.prompts.is_empty() {
            caps.insert("prompts".into(), json!({}));
        }
        Value::Object(caps)
    }

    /// Answers one JSON-RPC message; notifications get an empty result (the CLI waits
    /// for a reply to every control request). `timeout` bounds each handler that has
    /// none of its own.
    pub(crate) async fn handle(&self, message: &Value, timeout: Duration) -> Value {
        let id = message.get("id").cloned();
        let method = message.get("method").and_then(Value::as_str).unwrap_or("");
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        let str_param = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or("");
        let result = match method {
            "initialize" => Ok(json!({
                "protocolVersion": params.get("protocolVersion").cloned()
                    .unwrap_or_else(|| json!("2025-06-18")),
                "capabilities": self.capabilities(),
                "serverInfo": {"name": self.name, "version": self.version},
            })),
            "ping" => Ok(json!({})),
            m if m.starts_with("notifications/") => Ok(json!({})),
            "tools/list" => Ok(json!({"tools": self.tools.values().map(|t| {
                let mut v = json!({
                    "name": t.name,
                    "description": t.description,
                    "inputSchema": t.schema,
                });
                if let Some(a) = t.annotations.to_wire() {
                    v["annotations"] = a;
                }
                v
            }).collect::<Vec<_>>()})),
            "tools/call" => {
                let name = str_param("name");
                let args = params
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                match self.tools.get(name) {
                    Some(tool) => {
                        let r = tool.call(args, timeout).await;
                        Ok(json!({"content": r.content, "isError": r.is_error}))
                    }
                    None => Err((-32602, format!("unknown tool: {name}"))),
                }
            }
            "resources/list" => Ok(json!({"resources": self.resources.values().map(|r| {
                let mut v = json!({"uri": r.uri, "name": r.name, "mimeType": r.mime_type});
                if let Some(d) = &r.description {
                    v["description"] = json!(d);
                }
                v
            }).collect::<Vec<_>>()})),
            "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
            "resources/read" => {
                let uri = str_param("uri");
                match self.resources.get(uri) {
                    Some(r) => match guarded((r.reader)(uri.to_string()), timeout).await {
                        Ok(Ok(text)) => Ok(json!({"contents": [
                            {"uri": uri, "mimeType": r.mime_type, "text": text}
                        ]})),
                        Ok(Err(e)) => Err((-32603, format!("reading {uri} failed: {e}"))),
                        Err(failure) => {
                            Err((-32603, format!("reading {uri}: the reader {failure}")))
                        }
                    },
                    None => Err((-32002, format!("resource not found: {uri}"))),
                }
            }
            "prompts/list" => Ok(json!({"prompts": self.prompts.values().map(|p| {
                let mut v = json!({
                    "name": p.name,
                    "arguments": p.arguments.iter().map(|a| {
                        let mut arg = json!({"name": a.name, "required": a.required});
                        if let Some(d) = &a.description {
                            arg["description"] = json!(d);
                        }
                        arg
                    }).collect::<Vec<_>>(),
                });
                if let Some(d) = &p.description {
                    v["description"] = json!(d);
                }
                v
            }).collect::<Vec<_>>()})),
            "prompts/get" => {
                let name = str_param("name");
                match self.prompts.get(name) {
                    Some(p) => {
                        let args: BTreeMap<String, String> = params
                            .get("arguments")
                            .and_then(Value::as_object)
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| {
                                        let v = v
                                            .as_str()
                                            .map(str::to_string)
                                            .unwrap_or_else(|| v.to_string());
                                        (k.clone(), v)
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        let missing: Vec<&str> = p
                            .arguments
                            .iter()
                            .filter(|a| a.required && !args.contains_key(&a.name))
                            .map(|a| a.name.as_str())
                            .collect();
                        if missing.is_empty() {
                            match guarded((p.render)(args), timeout).await {
                                Ok(Ok(text)) => Ok(json!({
                                    "description": p.description,
                                    "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
                                })),
                                Ok(Err(e)) => Err((-32603, format!("prompt {name} failed: {e}"))),
                                Err(failure) => {
                                    Err((-32603, format!("prompt {name}: the handler {failure}")))
                                }
                            }
                        } else {
                            Err((
                                -32602,
                                format!("prompt {name} needs arguments: {}", missing.join(", ")),
                            ))
                        }
                    }
                    None => Err((-32602, format!("unknown prompt: {name}"))),
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

/// Runs user code with a timeout, turning a panic into an error that completes the
/// sentence "the handler …".
pub(crate) async fn guarded<T>(
    fut: impl Future<Output = T>,
    timeout: Duration,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".into());
            Err(format!("panicked: {what}"))
        }
        Err(_) => Err(format!("did not answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[derive(serde::Deserialize, JsonSchema)]
    struct Add {
        a: i64,
        b: i64,
    }

    fn server() -> McpServer {
        McpServer::new("calc").tool(McpTool::new("add", "adds", |x: Add| async move {
            if x.a < 0 {
                return Err("negative".to_string());
            }
            Ok((x.a + x.b).to_string())
        }))
    }

    fn call(name: &str, args: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": name, "arguments": args}})
    }

    #[tokio::test]
    async fn lists_tools_with_derived_schema() {
        let r = server()
            .handle(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                T,
            )
            .await;
        assert_eq!(r["id"], 1);
        let tool = &r["result"]["tools"][0];
        assert_eq!(tool["name"], "add");
        assert_eq!(tool["inputSchema"]["type"], "object");
        assert_eq!(tool["inputSchema"]["properties"]["a"]["type"], "integer");
        assert!(tool.get("annotations").is_none());
    }

    #[tokio::test]
    async fn calls_the_tool_and_reports_errors_as_is_error() {
        let s = server();
        let ok = s.handle(&call("add", json!({"a": 2, "b": 3})), T).await;
        assert_eq!(ok["result"]["content"][0]["text"], "5");
        assert_eq!(ok["result"]["isError"], false);
        let err = s.handle(&call("add", json!({"a": -1, "b": 3})), T).await;
        assert_eq!(err["result"]["isError"], true);
        let bad = s.handle(&call("add", json!({"a": "x"})), T).await;
        assert_eq!(bad["result"]["isError"], true);
    }

    #[tokio::test]
    async fn a_panicking_tool_is_an_error_result() {
        let s = McpServer::new("s").tool(McpTool::new("boom", "panics", |_: Add| async move {
            if true {
                panic!("tool bug 17");
            }
            Ok::<_, String>(String::new())
        }));
        let r = s.handle(&call("boom", json!({"a": 1, "b": 2})), T).await;
        assert_eq!(r["result"]["isError"], true);
        let text = r["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(
            text.contains("panicked") && text.contains("tool bug 17"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn garbage_content_becomes_an_error_result() {
        let s = McpServer::new("s").tool(McpTool::from_json(
            "junk",
            "returns junk",
            json!({"type": "object"}),
            |_| async {
                ToolResult {
                    content: vec![json!({"foo": 1}), json!("bare string")],
                    is_error: false,
                }
            },
        ));
        let r = s.handle(&call("junk", json!({})), T).await;
        assert_eq!(r["result"]["isError"], true, "{r}");
        let text = r["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(
            text.contains("does not allow") && text.contains("block 0"),
            "{text}"
        );
        assert!(invalid_content(&[json!({"type": "text", "text": "ok"})]).is_none());
        assert!(invalid_content(&[json!({"type": "image"})]).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_tool_times_out_with_its_own_or_the_default_timeout() {
        let hang = |name: &str| {
            McpTool::new(name, "hangs", |_: Add| async move {
                std::future::pending::<()>().await;
                Ok::<_, String>(String::new())
            })
        };
        let s = McpServer::new("s")
            .tool(hang("slow"))
            .tool(hang("quick").timeout(Duration::from_millis(50)));
        let r = s
            .handle(
                &call("slow", json!({"a": 1, "b": 2})),
                Duration::from_secs(3),
            )
            .await;
        assert_eq!(r["result"]["isError"], true);
        assert!(r["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("did not answer within 3s")));
        let r = s.handle(&call("quick", json!({"a": 1, "b": 2})), T).await;
        assert!(r["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("50ms")));
    }

    #[tokio::test]
    async fn non_object_input_types_get_an_object_schema_and_still_work() {
        let s = McpServer::new("s")
            .tool(McpTool::new("any", "any", |v: Value| async move {
                Ok::<_, String>(v.to_string())
            }))
            .tool(McpTool::new("num", "num", |v: i64| async move {
                Ok::<_, String>((v * 2).to_string())
            }))
            .tool(McpTool::new("list", "list", |v: Vec<String>| async move {
                Ok::<_, String>(v.join("+"))
            }));
        let listed = s
            .handle(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                T,
            )
            .await;
        for tool in listed["result"]["tools"].as_array().into_iter().flatten() {
            assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        }
        let any = s.handle(&call("any", json!({"x": 1})), T).await;
        assert_eq!(any["result"]["content"][0]["text"], r#"{"x":1}"#);
        let num = s.handle(&call("num", json!({"value": 21})), T).await;
        assert_eq!(num["result"]["content"][0]["text"], "42");
        let list = s
            .handle(&call("list", json!({"value": ["a", "b"]})), T)
            .await;
        assert_eq!(list["result"]["content"][0]["text"], "a+b");
    }

    #[test]
    fn schema_normalisation_keeps_object_schemas_and_definitions() {
        let (s, w) = normalize_input_schema(json!({"type": "object", "properties": {}}));
        assert_eq!((s, w), (json!({"type": "object", "properties": {}}), None));
        let (s, w) = normalize_input_schema(json!({"type": ["object", "null"], "properties": {}}));
        assert_eq!(s["type"], "object");
        assert!(w.is_none());
        let (s, w) = normalize_input_schema(json!({
            "$schema": "x", "oneOf": [{"$ref": "#/definitions/A"}], "definitions": {"A": {}}
        }));
        assert_eq!(w, Some("value"));
        assert_eq!(s["definitions"], json!({"A": {}}));
        assert_eq!(
            s["properties"]["value"]["oneOf"][0]["$ref"],
            "#/definitions/A"
        );
        assert_eq!(
            normalize_input_schema(json!(true)).0,
            json!({"type": "object"})
        );
    }

    #[tokio::test]
    async fn annotations_resources_and_prompts_are_served() {
        let s = McpServer::new("s")
            .tool(
                McpTool::new(
                    "read",
                    "reads",
                    |_: Value| async move { Ok::<_, String>("r") },
                )
                .read_only(),
            )
            .resource(McpResource::text("mem://a", "a", "alpha").description("first"))
            .prompt(
                McpPrompt::new("greet", |args: BTreeMap<String, String>| async move {
                    Ok::<_, String>(format!(
                        "Hello {}",
                        args.get("who").cloned().unwrap_or_default()
                    ))
                })
                .argument("who", true),
            );
        let init = s
            .handle(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize"}),
                T,
            )
            .await;
        assert_eq!(
            init["result"]["capabilities"],
            json!({"tools": {}, "resources": {}, "prompts": {}})
        );
        let tools = s
            .handle(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
                T,
            )
            .await;
        assert_eq!(
            tools["result"]["tools"][0]["annotations"],
            json!({"readOnlyHint": true})
        );
        let read = s
            .handle(
                &json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read",
                "params": {"uri": "mem://a"}}),
                T,
            )
            .await;
        assert_eq!(read["result"]["contents"][0]["text"], "alpha");
        let missing = s
            .handle(
                &json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read",
                "params": {"uri": "mem://zz"}}),
                T,
            )
            .await;
        assert_eq!(missing["error"]["code"], -32002);
        let got = s
            .handle(
                &json!({"jsonrpc": "2.0", "id": 4, "method": "prompts/get",
                "params": {"name": "greet", "arguments": {"who": "Ada"}}}),
                T,
            )
            .await;
        assert_eq!(got["result"]["messages"][0]["content"]["text"], "Hello Ada");
        let incomplete = s
            .handle(
                &json!({"jsonrpc": "2.0", "id": 5, "method": "prompts/get",
                "params": {"name": "greet"}}),
                T,
            )
            .await;
        assert_eq!(incomplete["error"]["code"], -32602);
    }

    #[tokio::test]
    async fn notifications_get_an_empty_result_and_unknown_methods_an_error() {
        let s = server();
        let n = s
            .handle(
                &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                T,
            )
            .await;
        assert_eq!(n, json!({"jsonrpc": "2.0", "result": {}}));
        let e = s
            .handle(
                &json!({"jsonrpc": "2.0", "id": 3, "method": "sampling/createMessage"}),
                T,
            )
            .await;
        assert_eq!(e["error"]["code"], -32601);
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(McpServer::new("ok-name_1").validate().is_ok());
        assert!(McpServer::new("bad name").validate().is_err());
        assert!(McpServer::new("").validate().is_err());
        let bad_tool = McpServer::new("s").tool(McpTool::new("a.b", "x", |_: Value| async {
            Ok::<_, String>("")
        }));
        assert!(bad_tool.validate().is_err());
    }
}
