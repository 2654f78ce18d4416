//! Typed, read-only views of `system` message subtypes ([`SystemKind`], [`InitInfo`]),
//! built on demand from a [`SystemMessage`]'s `extra` fields. The views never fail: a
//! missing or oddly typed field reads as `None` or empty. The wire struct itself lives in
//! `message.rs`.

use serde_json::{Map, Value};

use super::message::SystemMessage;

/// A typed view of a `system` message, by subtype (see [`SystemMessage::kind`]).
///
/// The raw subtype and every field stay available on the [`SystemMessage`] itself.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SystemKind {
    /// `init`: sent at the start of every turn.
    Init(InitInfo),
    /// `status`: e.g. `requesting`, `compacting`, or `null` with a new permission mode.
    #[non_exhaustive]
    Status {
        /// `requesting`, `compacting`, or `None`.
        status: Option<String>,
        /// The new permission mode, after `set_permission_mode` (wire `permissionMode`).
        permission_mode: Option<String>,
    },
    /// `compact_boundary`: the conversation was compacted.
    #[non_exhaustive]
    CompactBoundary {
        /// `manual` or `auto`.
        trigger: Option<String>,
        /// Tokens before compaction.
        pre_tokens: Option<u64>,
        /// Tokens after compaction.
        post_tokens: Option<u64>,
    },
    /// `api_retry`: an API call failed and will be retried.
    #[non_exhaustive]
    ApiRetry {
        /// The attempt number.
        attempt: Option<u64>,
        /// The retry limit.
        max_retries: Option<u64>,
        /// Delay before the retry.
        retry_delay_ms: Option<u64>,
        /// The HTTP status of the failure.
        error_status: Option<u64>,
        /// The error (a string or an object).
        error: Option<Value>,
    },
    /// `hook_started`.
    #[non_exhaustive]
    HookStarted {
        /// The hook run's id.
        hook_id: Option<String>,
        /// The hook's name.
        hook_name: Option<String>,
        /// The hook event (`PreToolUse`, …).
        hook_event: Option<String>,
    },
    /// `hook_progress`.
    #[non_exhaustive]
    HookProgress {
        /// The hook run's id.
        hook_id: Option<String>,
        /// The hook's name.
        hook_name: Option<String>,
        /// The hook event.
        hook_event: Option<String>,
        /// Output so far.
        stdout: Option<String>,
        /// Error output so far.
        stderr: Option<String>,
        /// Combined output so far.
        output: Option<String>,
    },
    /// `hook_response`: a hook finished.
    #[non_exhaustive]
    HookResponse {
        /// The hook run's id.
        hook_id: Option<String>,
        /// The hook's name.
        hook_name: Option<String>,
        /// The hook event.
        hook_event: Option<String>,
        /// Output.
        stdout: Option<String>,
        /// Error output.
        stderr: Option<String>,
        /// Combined output.
        output: Option<String>,
        /// The exit code of a command hook.
        exit_code: Option<i64>,
        /// `success`, `error` or `cancelled`.
        outcome: Option<String>,
    },
    /// `task_started`: a background task (subagent, workflow, shell) started.
    #[non_exhaustive]
    TaskStarted {
        /// The task id.
        task_id: Option<String>,
        /// The tool use that started it.
        tool_use_id: Option<String>,
        /// What it does.
        description: Option<String>,
        /// `local_agent`, `local_workflow`, …
        task_type: Option<String>,
        /// Whether it runs in the background.
        is_backgrounded: Option<bool>,
    },
    /// `task_progress`.
    #[non_exhaustive]
    TaskProgress {
        /// The task id.
        task_id: Option<String>,
        /// What it does.
        description: Option<String>,
        /// `{total_tokens, tool_uses, duration_ms}`.
        usage: Option<Value>,
    },
    /// `task_updated`.
    #[non_exhaustive]
    TaskUpdated {
        /// The task id.
        task_id: Option<String>,
        /// The new status from the patch (`running`, `completed`, `failed`, …).
        status: Option<String>,
        /// The whole patch.
        patch: Option<Value>,
    },
    /// `task_notification`: a task ended.
    #[non_exhaustive]
    TaskNotification {
        /// The task id.
        task_id: Option<String>,
        /// `completed`, `failed` or `stopped`.
        status: Option<String>,
        /// Where its output was written.
        output_file: Option<String>,
        /// A summary.
        summary: Option<String>,
    },
    /// `session_state_changed`.
    #[non_exhaustive]
    SessionStateChanged {
        /// `idle`, `running` or `requires_action`.
        state: Option<String>,
    },
    /// `permission_denied`.
    #[non_exhaustive]
    PermissionDenied {
        /// The tool.
        tool_name: Option<String>,
        /// The tool use id.
        tool_use_id: Option<String>,
        /// Why.
        message: Option<String>,
    },
    /// Any other subtype: read [`SystemMessage::subtype`] and [`SystemMessage::extra`].
    Unknown,
}

/// An MCP server's state in `system/init`.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct McpServerInfo {
    /// The server name.
    pub name: String,
    /// `connected`, `failed`, `needs-auth`, `pending`, `disabled`.
    pub status: String,
    /// Where it was configured (`sdk`, …; CLI ≥ 2.1.332).
    pub source: Option<String>,
}

/// A typed view of `system/init` (sent at the start of every turn).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct InitInfo {
    /// The working directory.
    pub cwd: Option<String>,
    /// Available tools (SDK MCP tools as `mcp__<server>__<tool>`).
    pub tools: Vec<String>,
    /// MCP servers and their status.
    pub mcp_servers: Vec<McpServerInfo>,
    /// The model.
    pub model: Option<String>,
    /// The permission mode (wire `permissionMode`).
    pub permission_mode: Option<String>,
    /// Slash commands.
    pub slash_commands: Vec<String>,
    /// The CLI version.
    pub claude_code_version: Option<String>,
    /// Where the API key came from (wire `apiKeySource`).
    pub api_key_source: Option<String>,
    /// The output style.
    pub output_style: Option<String>,
    /// Agent names.
    pub agents: Vec<String>,
    /// Skill names.
    pub skills: Vec<String>,
    /// Plugins (`{name, path, source}`).
    pub plugins: Vec<Value>,
    /// Capability flags (CLI ≥ 2.1.332).
    pub capabilities: Vec<String>,
    /// Fast mode state (`off`, …).
    pub fast_mode_state: Option<String>,
}

fn string(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key)?.as_str().map(str::to_owned)
}

fn number(m: &Map<String, Value>, key: &str) -> Option<u64> {
    m.get(key)?.as_u64()
}

fn strings(m: &Map<String, Value>, key: &str) -> Vec<String> {
    match m.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn value(m: &Map<String, Value>, key: &str) -> Option<Value> {
    m.get(key).filter(|v| !v.is_null()).cloned()
}

impl InitInfo {
    /// Reads the view from a `system/init` message's fields.
    pub fn from_fields(m: &Map<String, Value>) -> Self {
        let mcp_servers = match m.get("mcp_servers") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_object)
                .map(|s| McpServerInfo {
                    name: string(s, "name").unwrap_or_default(),
                    status: string(s, "status").unwrap_or_default(),
                    source: string(s, "source"),
                })
                .collect(),
            _ => Vec::new(),
        };
        let plugins = match m.get("plugins") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        InitInfo {
            cwd: string(m, "cwd"),
            tools: strings(m, "tools"),
            mcp_servers,
            model: string(m, "model"),
            permission_mode: string(m, "permissionMode"),
            slash_commands: strings(m, "slash_commands"),
            claude_code_version: string(m, "claude_code_version"),
            api_key_source: string(m, "apiKeySource"),
            output_style: string(m, "output_style"),
            agents: strings(m, "agents"),
            skills: strings(m, "skills"),
            plugins,
            capabilities: strings(m, "capabilities"),
            fast_mode_state: string(m, "fast_mode_state"),
        }
    }
}

impl SystemMessage {
    /// A typed view of this message by subtype. Never fails; unknown subtypes give
    /// [`SystemKind::Unknown`].
    pub fn kind(&self) -> SystemKind {
        let m = &self.extra;
        match self.subtype.as_str() {
            "init" => SystemKind::Init(InitInfo::from_fields(m)),
            "status" => SystemKind::Status {
                status: string(m, "status"),
                permission_mode: string(m, "permissionMode"),
            },
            "compact_boundary" => {
                let meta = m.get("compact_metadata").and_then(Value::as_object);
                let field = |k: &str| meta.and_then(|c| c.get(k));
                SystemKind::CompactBoundary {
                    trigger: field("trigger").and_then(Value::as_str).map(str::to_owned),
                    pre_tokens: field("pre_tokens").and_then(Value::as_u64),
                    post_tokens: field("post_tokens").and_then(Value::as_u64),
                }
            }
            "api_retry" => SystemKind::ApiRetry {
                attempt: number(m, "attempt"),
                max_retries: number(m, "max_retries"),
                retry_delay_ms: number(m, "retry_delay_ms"),
                error_status: number(m, "error_status"),
                error: value(m, "error"),
            },
            "hook_started" => SystemKind::HookStarted {
                hook_id: string(m, "hook_id"),
                hook_name: string(m, "hook_name"),
                hook_event: string(m, "hook_event"),
            },
            "hook_progress" => SystemKind::HookProgress {
                hook_id: string(m, "hook_id"),
                hook_name: string(m, "hook_name"),
                hook_event: string(m, "hook_event"),
                stdout: string(m, "stdout"),
                stderr: string(m, "stderr"),
                output: string(m, "output"),
            },
            "hook_response" => SystemKind::HookResponse {
                hook_id: string(m, "hook_id"),
                hook_name: string(m, "hook_name"),
                hook_event: string(m, "hook_event"),
                stdout: string(m, "stdout"),
                stderr: string(m, "stderr"),
                output: string(m, "output"),
                exit_code: m.get("exit_code").and_then(Value::as_i64),
                outcome: string(m, "outcome"),
            },
            "task_started" => SystemKind::TaskStarted {
                task_id: string(m, "task_id"),
                tool_use_id: string(m, "tool_use_id"),
                description: string(m, "description"),
                task_type: string(m, "task_type"),
                is_backgrounded: m.get("is_backgrounded").and_then(Value::as_bool),
            },
            "task_progress" => SystemKind::TaskProgress {
                task_id: string(m, "task_id"),
                description: string(m, "description"),
                usage: value(m, "usage"),
            },
            "task_updated" => {
                let patch = value(m, "patch");
                let status = patch
                    .as_ref()
                    .and_then(|p| p.get("status"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                SystemKind::TaskUpdated {
                    task_id: string(m, "task_id"),
                    status,
                    patch,
                }
            }
            "task_notification" => SystemKind::TaskNotification {
                task_id: string(m, "task_id"),
                status: string(m, "status"),
                output_file: string(m, "output_file"),
                summary: string(m, "summary"),
            },
            "session_state_changed" => SystemKind::SessionStateChanged {
                state: string(m, "state"),
            },
            "permission_denied" => SystemKind::PermissionDenied {
                tool_name: string(m, "tool_name"),
                tool_use_id: string(m, "tool_use_id"),
                message: string(m, "message"),
            },
            _ => SystemKind::Unknown,
        }
    }

    /// The `init` view, when this is `system/init`.
    pub fn init(&self) -> Option<InitInfo> {
        (self.subtype == "init").then(|| InitInfo::from_fields(&self.extra))
    }
}
