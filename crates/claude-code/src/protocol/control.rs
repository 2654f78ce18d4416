//! The control protocol: requests the CLI sends us ([`ControlRequest`] with an
//! [`InboundRequest`]), its answers to ours ([`ControlResponse`]), the requests we send
//! ([`OutboundRequest`], [`InitializeRequest`]), the typed `initialize` reply
//! ([`InitializeResponse`]), and the NDJSON line builders for our side. Routing requests
//! to callbacks and matching responses to waiters is the session's job.

use serde::de::MapAccess;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::wire::{self, finish, whole_object, wire_struct, Prefix, Slot, Tagged, WireValue};

wire_struct! {
    /// `can_use_tool`: the CLI asks whether a tool may run (needs
    /// `--permission-prompt-tool stdio`). Answer with `{"behavior":"allow","updatedInput":…}`
    /// or `{"behavior":"deny","message":…}`.
    pub struct CanUseToolRequest : "subtype" = "can_use_tool", always = true {
        /// The tool.
        def "tool_name" tool_name: String,
        /// The tool input.
        def "input" input: Value,
        /// The tool use id.
        opt "tool_use_id" tool_use_id: Option<String>,
        /// Suggested permission updates (`PermissionUpdate` objects).
        opt "permission_suggestions" permission_suggestions: Option<Vec<Value>>,
        /// The path that triggered the check, for file tools.
        opt "blocked_path" blocked_path: Option<String>,
        /// Why the CLI asks (e.g. a hook's reason).
        opt "decision_reason" decision_reason: Option<String>,
        /// `rule`, `mode`, `hook`, `classifier`, `workingDir`, `safetyCheck`, …
        opt "decision_reason_type" decision_reason_type: Option<String>,
        /// The hook event behind a `hook` reason (CLI ≥ 2.1.332).
        opt "decision_reason_hook_event" decision_reason_hook_event: Option<String>,
        /// Where that hook was configured (CLI ≥ 2.1.332).
        opt "decision_reason_hook_source" decision_reason_hook_source: Option<String>,
        /// A title for a permission prompt.
        opt "title" title: Option<String>,
        /// The tool's display name.
        opt "display_name" display_name: Option<String>,
        /// What the call does.
        opt "description" description: Option<String>,
        /// The subagent making the call.
        opt "agent_id" agent_id: Option<String>,
    }
}

wire_struct! {
    /// `hook_callback`: run the SDK hook registered as `callback_id`; answer with the hook
    /// output (`{}` means no opinion).
    pub struct HookCallbackRequest : "subtype" = "hook_callback", always = true {
        /// The id the SDK chose in `initialize.hooks`.
        def "callback_id" callback_id: String,
        /// The hook input (`hook_event_name`, `session_id`, `tool_name`, …).
        def "input" input: Value,
        /// The tool use id, for tool events.
        opt "tool_use_id" tool_use_id: Option<String>,
    }
}

impl HookCallbackRequest {
    /// The hook event (`PreToolUse`, `PostToolUse`, …) from the input.
    pub fn hook_event_name(&self) -> Option<&str> {
        self.input.get("hook_event_name")?.as_str()
    }
}

wire_struct! {
    /// `mcp_message`: a JSON-RPC message for an in-process (SDK) MCP server; answer with
    /// `{"mcp_response": <JSON-RPC response>}` (notifications too).
    pub struct McpMessageRequest : "subtype" = "mcp_message", always = true {
        /// The server name.
        def "server_name" server_name: String,
        /// The JSON-RPC message.
        def "message" message: Value,
    }
}

/// The `request` of a CLI → SDK control request, by subtype.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InboundRequest {
    /// `can_use_tool` (boxed: much larger than the others).
    CanUseTool(Box<CanUseToolRequest>),
    /// `hook_callback`.
    HookCallback(HookCallbackRequest),
    /// `mcp_message`.
    McpMessage(McpMessageRequest),
    /// Any other subtype (answer with an error).
    Unknown {
        /// The subtype (empty when missing).
        subtype: String,
        /// The whole request object.
        raw: Value,
    },
}

impl Default for InboundRequest {
    fn default() -> Self {
        InboundRequest::Unknown {
            subtype: String::new(),
            raw: Value::Null,
        }
    }
}

impl InboundRequest {
    /// The wire subtype.
    pub fn subtype(&self) -> &str {
        match self {
            InboundRequest::CanUseTool(_) => "can_use_tool",
            InboundRequest::HookCallback(_) => "hook_callback",
            InboundRequest::McpMessage(_) => "mcp_message",
            InboundRequest::Unknown { subtype, .. } => subtype,
        }
    }
}

impl Tagged for InboundRequest {
    const TAG_KEY: &'static str = "subtype";

    fn dispatch<'de, A: MapAccess<'de>>(
        tag: &str,
        prefix: Prefix,
        map: A,
    ) -> Result<Self, A::Error> {
        Ok(match tag {
            "can_use_tool" => InboundRequest::CanUseTool(Box::new(finish(prefix, map)?)),
            "hook_callback" => InboundRequest::HookCallback(finish(prefix, map)?),
            "mcp_message" => InboundRequest::McpMessage(finish(prefix, map)?),
            _ => InboundRequest::Unknown {
                subtype: tag.to_owned(),
                raw: Value::Object(whole_object(Self::TAG_KEY, tag, prefix, map)?),
            },
        })
    }

    fn untagged(object: Map<String, Value>) -> Self {
        InboundRequest::Unknown {
            subtype: String::new(),
            raw: Value::Object(object),
        }
    }
}

impl WireValue for InboundRequest {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Slot<Self>, A::Error> {
        Ok(Slot::Val(wire::visit_tagged(map)?))
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
}

impl<'de> Deserialize<'de> for InboundRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(wire::TaggedVisitor::<Self>::new("a control request object"))
    }
}

impl Serialize for InboundRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            InboundRequest::CanUseTool(r) => r.serialize(s),
            InboundRequest::HookCallback(r) => r.serialize(s),
            InboundRequest::McpMessage(r) => r.serialize(s),
            InboundRequest::Unknown { raw, .. } => raw.serialize(s),
        }
    }
}

wire_struct! {
    /// A `control_request` line from the CLI: a request the SDK must answer (always; the
    /// CLI waits for the reply).
    pub struct ControlRequest : "type" = "control_request", always = true {
        /// The id to answer with (CLI ids are UUIDs).
        def "request_id" request_id: String,
        /// The request.
        def "request" request: InboundRequest,
    }
}

/// An error answer to a control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ControlError {
    /// The error message (wire `error`).
    #[serde(rename = "error", default)]
    pub message: String,
    /// A machine-readable code, e.g. `unsupported_request` (wire `error_code`; CLI ≥ 2.1.332).
    #[serde(
        rename = "error_code",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub code: Option<String>,
}

impl ControlError {
    /// An error with a message and no code.
    pub fn new(message: impl Into<String>) -> Self {
        ControlError {
            message: message.into(),
            code: None,
        }
    }

    /// Sets the code.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} ({code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ControlError {}

/// A `control_response` line: the answer to a control request.
///
/// Wire: `{"type":"control_response","response":{"subtype":"success","request_id":…,
/// "response":{…}}}` or `{…"subtype":"error","request_id":…,"error":"…","error_code":…}`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ControlResponse {
    /// The id of the request this answers.
    pub request_id: String,
    /// The success payload (absent for some requests on older CLIs), or the error.
    /// A response whose subtype is neither `success` nor `error` reads as an error; its
    /// raw subtype stays in `extra["subtype"]`.
    pub result: Result<Option<Value>, ControlError>,
    /// Unknown keys of the inner `response` object (e.g. `pending_permission_requests`).
    pub extra: Map<String, Value>,
    /// Unknown keys of the outer envelope, beside `type` and `response`.
    pub envelope_extra: Map<String, Value>,
    /// Keys a malformed line lacked, so that serializing it gives back the same JSON.
    absent: Absent,
}

/// Keys of a [`ControlResponse`] line that were missing (the defaults stand in for them
/// in the fields, and are not written back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Absent {
    response: bool,
    request_id: bool,
    subtype: bool,
    error: bool,
}

impl ControlResponse {
    /// A success answer.
    pub fn success(request_id: impl Into<String>, payload: Option<Value>) -> Self {
        ControlResponse {
            request_id: request_id.into(),
            result: Ok(payload),
            extra: Map::new(),
            envelope_extra: Map::new(),
            absent: Absent::default(),
        }
    }

    /// An error answer.
    pub fn error(request_id: impl Into<String>, error: ControlError) -> Self {
        ControlResponse {
            request_id: request_id.into(),
            result: Err(error),
            extra: Map::new(),
            envelope_extra: Map::new(),
            absent: Absent::default(),
        }
    }

    /// Whether the request succeeded.
    pub fn is_success(&self) -> bool {
        self.result.is_ok()
    }

    /// The success payload, if any.
    pub fn payload(&self) -> Option<&Value> {
        self.result.as_ref().ok()?.as_ref()
    }

    /// This response as one NDJSON line (with the trailing newline).
    pub fn to_line(&self) -> String {
        wire::to_line(self)
    }

    /// Builds the response from the whole envelope object. Never fails.
    pub(crate) fn from_object(mut outer: Map<String, Value>) -> Self {
        outer.remove("type");
        let mut absent = Absent::default();
        let mut inner = match outer.remove("response") {
            Some(Value::Object(inner)) => inner,
            Some(other) => {
                outer.insert("response".to_owned(), other);
                Map::new()
            }
            None => {
                absent.response = true;
                Map::new()
            }
        };
        let request_id = match inner.remove("request_id") {
            Some(Value::String(id)) => id,
            Some(other) => {
                inner.insert("request_id".to_owned(), other);
                String::new()
            }
            None => {
                absent.request_id = true;
                String::new()
            }
        };
        let subtype = inner.remove("subtype");
        let result = match subtype.as_ref().map(|v| (v, v.as_str())) {
            Some((_, Some("success"))) => Ok(inner.remove("response")),
            Some((_, Some("error"))) => {
                let message = match inner.remove("error") {
                    Some(Value::String(m)) => m,
                    Some(other) => {
                        inner.insert("error".to_owned(), other);
                        String::new()
                    }
                    None => {
                        absent.error = true;
                        String::new()
                    }
                };
                let code = match inner.remove("error_code") {
                    Some(Value::String(c)) => Some(c),
                    Some(other) => {
                        inner.insert("error_code".to_owned(), other);
                        None
                    }
                    None => None,
                };
                Err(ControlError { message, code })
            }
            None => {
                absent.subtype = true;
                Err(no_subtype())
            }
            Some((other, _)) => {
                let shown = other.to_string();
                inner.insert("subtype".to_owned(), other.clone());
                Err(ControlError::new(format!(
                    "control response with unknown subtype {shown}"
                )))
            }
        };
        ControlResponse {
            request_id,
            result,
            extra: inner,
            envelope_extra: outer,
            absent,
        }
    }
}

/// The error of a control response whose `subtype` is missing.
fn no_subtype() -> ControlError {
    ControlError::new("control response without a subtype")
}

/// The inner `response` object of a [`ControlResponse`].
struct ResponseBody<'a>(&'a ControlResponse);

impl Serialize for ResponseBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        let mut written: Vec<&str> = Vec::with_capacity(4);
        // A line without a subtype read as an error of unknown subtype: written back
        // without one (unless the result was changed since).
        let absent_subtype = r.absent.subtype && r.result == Err(no_subtype());
        if !r.extra.contains_key("subtype") && !absent_subtype {
            match &r.result {
                Ok(payload) => {
                    m.serialize_entry("subtype", "success")?;
                    written.push("subtype");
                    if let Some(p) = payload {
                        m.serialize_entry("response", p)?;
                        written.push("response");
                    }
                }
                Err(e) => {
                    m.serialize_entry("subtype", "error")?;
                    written.push("subtype");
                    let absent_error = r.absent.error && e.message.is_empty();
                    if !r.extra.contains_key("error") && !absent_error {
                        m.serialize_entry("error", &e.message)?;
                        written.push("error");
                    }
                    if let Some(code) = &e.code {
                        m.serialize_entry("error_code", code)?;
                        written.push("error_code");
                    }
                }
            }
        }
        let absent_id = r.absent.request_id && r.request_id.is_empty();
        if !r.extra.contains_key("request_id") && !absent_id {
            m.serialize_entry("request_id", &r.request_id)?;
        }
        for (k, v) in &r.extra {
            if !written.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl Serialize for ControlResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", "control_response")?;
        // A line without `response` parses to an empty error answer; nothing to write.
        let absent_body = self.absent.response
            && self.request_id.is_empty()
            && self.extra.is_empty()
            && self.result == Err(no_subtype());
        if !self.envelope_extra.contains_key("response") && !absent_body {
            m.serialize_entry("response", &ResponseBody(self))?;
        }
        for (k, v) in &self.envelope_extra {
            if k != "type" {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for ControlResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ControlResponse::from_object(Map::deserialize(d)?))
    }
}

wire_struct! {
    /// The `initialize` request: the first thing an SDK sends. Carries what only the
    /// control protocol can deliver: hook callback ids, agents, SDK MCP server names.
    pub struct InitializeRequest : "subtype" = "initialize", always = true {
        /// `{EventName: [{matcher, hookCallbackIds, timeout?}]}`.
        opt "hooks" hooks: Option<Value>,
        /// `{name: {description, prompt, tools?, model?, …}}`.
        opt "agents" agents: Option<Value>,
        /// Names of in-process MCP servers (wire `sdkMcpServers`).
        def "sdkMcpServers" sdk_mcp_servers: Vec<String>,
        /// Skills allowlist.
        opt "skills" skills: Option<Vec<String>>,
        /// Leave dynamic sections out of the system prompt (wire `excludeDynamicSections`).
        opt "excludeDynamicSections" exclude_dynamic_sections: Option<bool>,
        /// Forward subagent text (wire `forwardSubagentText`).
        opt "forwardSubagentText" forward_subagent_text: Option<bool>,
        /// A JSON schema for structured output (wire `jsonSchema`).
        opt "jsonSchema" json_schema: Option<Value>,
    }
}

impl InitializeRequest {
    /// An empty `initialize` request (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the hooks configuration.
    #[must_use]
    pub fn with_hooks(mut self, hooks: Value) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// Sets the agent definitions.
    #[must_use]
    pub fn with_agents(mut self, agents: Value) -> Self {
        self.agents = Some(agents);
        self
    }

    /// Sets the in-process MCP server names.
    #[must_use]
    pub fn with_sdk_mcp_servers(
        mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.sdk_mcp_servers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Adds any other field (TS-only fields such as `systemPrompt`, `title`, …).
    #[must_use]
    pub fn with_field(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }
}

/// A control request the SDK sends to the CLI, by subtype.
///
/// Serialized as the inner `request` object: `{"subtype": …, fields}`, with the CLI's
/// spelling per field (`serverName` is camelCase, `user_message_id` snake_case).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OutboundRequest {
    /// `initialize`.
    Initialize(InitializeRequest),
    /// `interrupt`: stop the running turn.
    Interrupt,
    /// `set_permission_mode` (`default`, `acceptEdits`, `plan`, `bypassPermissions`, …).
    SetPermissionMode {
        /// The mode.
        mode: String,
    },
    /// `set_model` (`None`: the CLI's default model).
    SetModel {
        /// The model.
        model: Option<String>,
    },
    /// `set_max_thinking_tokens`.
    SetMaxThinkingTokens {
        /// The budget (`None` sends `null`).
        max_thinking_tokens: Option<u64>,
        /// How thinking is shown, when set.
        thinking_display: Option<String>,
    },
    /// `mcp_status`: `{mcpServers: [{name, status, …}]}`.
    McpStatus,
    /// `mcp_reconnect`.
    McpReconnect {
        /// The server (wire `serverName`).
        server_name: String,
    },
    /// `mcp_toggle`.
    McpToggle {
        /// The server (wire `serverName`).
        server_name: String,
        /// Enable or disable.
        enabled: bool,
    },
    /// `mcp_set_servers`: replace the dynamic MCP servers.
    McpSetServers {
        /// `{name: config}`.
        servers: Value,
    },
    /// `rewind_files` (needs file checkpointing).
    RewindFiles {
        /// The user message to rewind to.
        user_message_id: String,
        /// Only report what would change.
        dry_run: Option<bool>,
    },
    /// `stop_task`: stop a background task.
    StopTask {
        /// The task id.
        task_id: String,
    },
    /// `get_context_usage`.
    GetContextUsage,
    /// Any other subtype, with its fields as given.
    Other {
        /// The subtype.
        subtype: String,
        /// The other fields of the request object.
        fields: Map<String, Value>,
    },
}

impl OutboundRequest {
    /// The wire subtype.
    pub fn subtype(&self) -> &str {
        match self {
            OutboundRequest::Initialize(_) => "initialize",
            OutboundRequest::Interrupt => "interrupt",
            OutboundRequest::SetPermissionMode { .. } => "set_permission_mode",
            OutboundRequest::SetModel { .. } => "set_model",
            OutboundRequest::SetMaxThinkingTokens { .. } => "set_max_thinking_tokens",
            OutboundRequest::McpStatus => "mcp_status",
            OutboundRequest::McpReconnect { .. } => "mcp_reconnect",
            OutboundRequest::McpToggle { .. } => "mcp_toggle",
            OutboundRequest::McpSetServers { .. } => "mcp_set_servers",
            OutboundRequest::RewindFiles { .. } => "rewind_files",
            OutboundRequest::StopTask { .. } => "stop_task",
            OutboundRequest::GetContextUsage => "get_context_usage",
            OutboundRequest::Other { subtype, .. } => subtype,
        }
    }

    /// Any request by subtype and fields.
    pub fn other(subtype: impl Into<String>, fields: Map<String, Value>) -> Self {
        OutboundRequest::Other {
            subtype: subtype.into(),
            fields,
        }
    }

    /// Reads a request object; anything that does not fit a typed variant exactly
    /// becomes [`OutboundRequest::Other`], so re-serializing gives back the same JSON.
    fn from_object(mut obj: Map<String, Value>) -> Self {
        let subtype = match obj.remove("subtype") {
            Some(Value::String(s)) => s,
            Some(other) => {
                obj.insert("subtype".to_owned(), other);
                String::new()
            }
            None => String::new(),
        };
        let only = |allowed: &[&str]| obj.keys().all(|k| allowed.contains(&k.as_str()));
        let str_of = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        let typed = match subtype.as_str() {
            "initialize" => {
                let mut full = obj.clone();
                full.insert("subtype".to_owned(), Value::String(subtype.clone()));
                InitializeRequest::deserialize(Value::Object(full))
                    .ok()
                    .map(OutboundRequest::Initialize)
            }
            "interrupt" if obj.is_empty() => Some(OutboundRequest::Interrupt),
            "mcp_status" if obj.is_empty() => Some(OutboundRequest::McpStatus),
            "get_context_usage" if obj.is_empty() => Some(OutboundRequest::GetContextUsage),
            "set_permission_mode" if only(&["mode"]) => {
                str_of("mode").map(|mode| OutboundRequest::SetPermissionMode { mode })
            }
            "set_model" if only(&["model"]) => match obj.get("model") {
                Some(Value::Null) => Some(OutboundRequest::SetModel { model: None }),
                Some(Value::String(m)) => Some(OutboundRequest::SetModel {
                    model: Some(m.clone()),
                }),
                _ => None,
            },
            "set_max_thinking_tokens" if only(&["max_thinking_tokens", "thinking_display"]) => {
                let tokens = match obj.get("max_thinking_tokens") {
                    Some(Value::Null) => Some(None),
                    Some(v) => v.as_u64().map(Some),
                    None => None,
                };
                let display = match obj.get("thinking_display") {
                    None => Some(None),
                    Some(Value::String(d)) => Some(Some(d.clone())),
                    Some(_) => None,
                };
                match (tokens, display) {
                    (Some(max_thinking_tokens), Some(thinking_display)) => {
                        Some(OutboundRequest::SetMaxThinkingTokens {
                            max_thinking_tokens,
                            thinking_display,
                        })
                    }
                    _ => None,
                }
            }
            "mcp_reconnect" if only(&["serverName"]) => str_of("serverName")
                .map(|server_name| OutboundRequest::McpReconnect { server_name }),
            "mcp_toggle" if only(&["serverName", "enabled"]) => {
                match (
                    str_of("serverName"),
                    obj.get("enabled").and_then(Value::as_bool),
                ) {
                    (Some(server_name), Some(enabled)) => Some(OutboundRequest::McpToggle {
                        server_name,
                        enabled,
                    }),
                    _ => None,
                }
            }
            "mcp_set_servers" if only(&["servers"]) => {
                obj.get("servers")
                    .map(|servers| OutboundRequest::McpSetServers {
                        servers: servers.clone(),
                    })
            }
            "rewind_files" if only(&["user_message_id", "dry_run"]) => {
                let dry_run = match obj.get("dry_run") {
                    None => Some(None),
                    Some(Value::Bool(b)) => Some(Some(*b)),
                    Some(_) => None,
                };
                match (str_of("user_message_id"), dry_run) {
                    (Some(user_message_id), Some(dry_run)) => Some(OutboundRequest::RewindFiles {
                        user_message_id,
                        dry_run,
                    }),
                    _ => None,
                }
            }
            "stop_task" if only(&["task_id"]) => {
                str_of("task_id").map(|task_id| OutboundRequest::StopTask { task_id })
            }
            _ => None,
        };
        typed.unwrap_or(OutboundRequest::Other {
            subtype,
            fields: obj,
        })
    }
}

impl Serialize for OutboundRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let OutboundRequest::Initialize(req) = self {
            return req.serialize(s);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("subtype", self.subtype())?;
        match self {
            OutboundRequest::Initialize(_)
            | OutboundRequest::Interrupt
            | OutboundRequest::McpStatus
            | OutboundRequest::GetContextUsage => {}
            OutboundRequest::SetPermissionMode { mode } => m.serialize_entry("mode", mode)?,
            OutboundRequest::SetModel { model } => m.serialize_entry("model", model)?,
            OutboundRequest::SetMaxThinkingTokens {
                max_thinking_tokens,
                thinking_display,
            } => {
                m.serialize_entry("max_thinking_tokens", max_thinking_tokens)?;
                if let Some(d) = thinking_display {
                    m.serialize_entry("thinking_display", d)?;
                }
            }
            OutboundRequest::McpReconnect { server_name } => {
                m.serialize_entry("serverName", server_name)?;
            }
            OutboundRequest::McpToggle {
                server_name,
                enabled,
            } => {
                m.serialize_entry("serverName", server_name)?;
                m.serialize_entry("enabled", enabled)?;
            }
            OutboundRequest::McpSetServers { servers } => m.serialize_entry("servers", servers)?,
            OutboundRequest::RewindFiles {
                user_message_id,
                dry_run,
            } => {
                m.serialize_entry("user_message_id", user_message_id)?;
                if let Some(d) = dry_run {
                    m.serialize_entry("dry_run", d)?;
                }
            }
            OutboundRequest::StopTask { task_id } => m.serialize_entry("task_id", task_id)?,
            OutboundRequest::Other { fields, .. } => {
                for (k, v) in fields {
                    if k != "subtype" {
                        m.serialize_entry(k, v)?;
                    }
                }
            }
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for OutboundRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(OutboundRequest::from_object(Map::deserialize(d)?))
    }
}

#[derive(Serialize)]
struct RequestEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    request_id: &'a str,
    request: &'a OutboundRequest,
}

/// A `control_request` line for the CLI's stdin (with the trailing newline).
pub fn control_request_line(request_id: &str, req: &OutboundRequest) -> String {
    wire::to_line(&RequestEnvelope {
        kind: "control_request",
        request_id,
        request: req,
    })
}

/// A success `control_response` line answering a CLI request (with the trailing newline).
pub fn control_success_line(request_id: &str, payload: Value) -> String {
    ControlResponse::success(request_id, Some(payload)).to_line()
}

/// An error `control_response` line answering a CLI request (with the trailing newline).
pub fn control_error_line(request_id: &str, message: &str) -> String {
    ControlResponse::error(request_id, ControlError::new(message)).to_line()
}

/// A `keep_alive` line (either side may send one at any time; receivers ignore it).
pub const KEEP_ALIVE_LINE: &str = "{\"type\":\"keep_alive\"}\n";

wire_struct! {
    /// A slash command listed in the `initialize` reply.
    pub struct SlashCommand {
        /// The name, without the slash.
        def "name" name: String,
        /// What it does.
        def "description" description: String,
        /// A hint for its argument (wire `argumentHint`).
        opt "argumentHint" argument_hint: Option<String>,
        /// Whether it is built in (CLI ≥ 2.1.332).
        opt "builtin" builtin: Option<bool>,
    }
}

wire_struct! {
    /// An agent listed in the `initialize` reply.
    pub struct AgentInfo {
        /// The agent name.
        def "name" name: String,
        /// What it is for.
        def "description" description: String,
        /// Its model, if fixed.
        opt "model" model: Option<String>,
    }
}

wire_struct! {
    /// A model listed in the `initialize` reply.
    pub struct ModelInfo {
        /// The value to pass to `set_model` / `--model` (`default`, `sonnet`, …).
        def "value" value: String,
        /// A display name (wire `displayName`).
        opt "displayName" display_name: Option<String>,
        /// A description.
        opt "description" description: Option<String>,
        /// The model id it resolves to (wire `resolvedModel`).
        opt "resolvedModel" resolved_model: Option<String>,
        /// Whether it accepts an effort level (wire `supportsEffort`).
        opt "supportsEffort" supports_effort: Option<bool>,
        /// Accepted effort levels (wire `supportedEffortLevels`).
        opt "supportedEffortLevels" supported_effort_levels: Option<Vec<String>>,
    }
}

wire_struct! {
    /// The account in the `initialize` reply.
    pub struct AccountInfo {
        /// Where the OAuth token came from (wire `tokenSource`).
        opt "tokenSource" token_source: Option<String>,
        /// Where the API key came from (wire `apiKeySource`).
        opt "apiKeySource" api_key_source: Option<String>,
        /// `firstParty`, `bedrock`, `vertex`, … (wire `apiProvider`).
        opt "apiProvider" api_provider: Option<String>,
    }
}

wire_struct! {
    /// The success payload of `initialize`.
    pub struct InitializeResponse {
        /// Slash commands.
        def "commands" commands: Vec<SlashCommand>,
        /// Agents.
        def "agents" agents: Vec<AgentInfo>,
        /// Models.
        def "models" models: Vec<ModelInfo>,
        /// The account.
        opt "account" account: Option<AccountInfo>,
        /// The current output style.
        opt "output_style" output_style: Option<String>,
        /// Available output styles.
        def "available_output_styles" available_output_styles: Vec<String>,
        /// The CLI's process id.
        opt "pid" pid: Option<u32>,
        /// The CLI version (CLI ≥ 2.1.332).
        opt "claude_code_version" claude_code_version: Option<String>,
        /// The permission mode (CLI ≥ 2.1.332).
        opt "current_permission_mode" current_permission_mode: Option<String>,
        /// Whether the hooks from the request were applied.
        opt "hooks_applied" hooks_applied: Option<bool>,
        /// Capability flags (CLI ≥ 2.1.332).
        def "capabilities" capabilities: Vec<String>,
    }
}

impl InitializeResponse {
    /// Reads the reply from a success payload.
    pub fn from_payload(payload: &Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(payload)
    }
}
