//! Session options and the ONE place where they become CLI arguments and environment.
//!
//! [`Options`] is a plain builder. [`Options::to_args`] and [`Options::to_env`] turn it
//! into the exact argv and environment the CLI is spawned with; nothing else in the
//! crate formats flags. Process handling lives in `transport`, finding the binary in
//! `cli`.

use std::{collections::BTreeMap, fmt, path::PathBuf, sync::Arc, time::Duration};

use crate::callbacks::{
    elicitation::{self, ElicitationRequest, ElicitationResponse},
    hooks::{self, HookEvent, HookInput, HookOutput, HookRegistration},
    mcp::{McpServer, McpTool},
    permissions::{self, PermissionResult, ToolPermissionRequest},
    Callbacks,
};
use crate::cli::CliPath;
use crate::sandbox::{ResourceLimits, Sandbox};
use crate::store::SessionStore;

mod args;
mod kinds;
mod profile;

use crate::error::{Error, Result};
pub use kinds::{
    AgentDefinition, Effort, McpServerConfig, ParseEnumError, SandboxSettings, SettingSource,
    Settings, Thinking, Tools,
};
pub use profile::{CliProfile, CliSwitch, UnknownProfile};

/// Default cap on one stdout line from the CLI (10 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 10 * 1024 * 1024;

/// The smallest accepted [`Options::max_line_bytes`] (64 KiB).
pub const MIN_MAX_LINE_BYTES: usize = 64 * 1024;

/// Value of `CLAUDE_CODE_ENTRYPOINT` identifying this SDK to the CLI.
pub const ENTRYPOINT: &str = "sdk-rust";

/// Callback receiving each stderr line of the CLI.
pub type StderrCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// The system prompt the CLI runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemPrompt {
    /// Exactly this text (the default is empty, as in the official SDKs).
    Text(String),
    /// Claude Code's own default system prompt.
    ClaudeCode,
}

/// How the CLI decides tool permissions when no callback answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PermissionMode {
    /// Ask for anything not allowed by a rule (refused without a callback).
    Default,
    /// Auto-accept file edits.
    AcceptEdits,
    /// Plan only; no changes.
    Plan,
    /// Allow everything (refused by the CLI when running as root).
    BypassPermissions,
    /// Refuse anything not allowed by a rule, without asking.
    DontAsk,
    /// Let the CLI's classifier decide.
    Auto,
}

kinds::spelled!(PermissionMode, "permission mode", {
    Default => "default",
    AcceptEdits => "acceptEdits",
    Plan => "plan",
    BypassPermissions => "bypassPermissions",
    DontAsk => "dontAsk",
    Auto => "auto",
});

/// What [`Options::minimal_env`] inherits from this process: the search path, the home
/// and temp directories, the locale (`LANG`, `LC_*`: tools print and parse UTF-8 by it)
/// and the terminal type. No credentials, no proxies, no cloud or CI variables.
pub const MINIMAL_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_*", "TERM", "TMPDIR"];

/// Everything a session is started with: CLI flags, environment, process settings and
/// the SDK's own limits and timeouts. Cheap to clone.
///
/// ```
/// use claude_code::Options;
/// let opts = Options::new().model("sonnet").system_prompt("You review Rust").max_turns(3);
/// assert!(opts.to_args().contains(&"--model=sonnet".into()));
/// ```
#[derive(Clone)]
#[must_use]
pub struct Options {
    pub(crate) model: Option<String>,
    pub(crate) system_prompt: SystemPrompt,
    pub(crate) append_system_prompt: Option<String>,
    pub(crate) max_turns: Option<u32>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) env: BTreeMap<String, Option<String>>,
    pub(crate) allowed_tools: Vec<String>,
    pub(crate) disallowed_tools: Vec<String>,
    pub(crate) permission_mode: Option<PermissionMode>,
    pub(crate) resume: Option<String>,
    pub(crate) include_partial_messages: bool,
    pub(crate) extra_args: Vec<(String, Option<String>)>,
    pub(crate) cli_path: CliPath,
    pub(crate) max_line_bytes: usize,
    pub(crate) stderr_callback: Option<StderrCallback>,
    pub(crate) stderr_tail_bytes: usize,
    pub(crate) initialize_timeout: Duration,
    pub(crate) control_timeout: Duration,
    pub(crate) close_grace: Duration,
    pub(crate) turn_timeout: Option<Duration>,
    pub(crate) max_queued_turns: usize,
    pub(crate) stream_buffer: usize,
    pub(crate) callbacks: Callbacks,
    pub(crate) callback_timeout: Duration,
    pub(crate) cli: CliFlags,
    pub(crate) session_store: Option<Arc<dyn SessionStore>>,
    pub(crate) audit: Option<crate::audit::AuditSink>,
    pub(crate) audit_redactor: Option<crate::audit::Redactor>,
    pub(crate) confinement: Option<Sandbox>,
    pub(crate) resource_limits: Option<ResourceLimits>,
}

/// Options that map one-to-one onto CLI flags or initialize fields (beyond the core ones
/// above). Defaults: everything unset, the CLI's own behaviour.
#[derive(Debug, Clone, Default)]
pub(crate) struct CliFlags {
    pub(crate) max_api_retries: Option<u32>,
    pub(crate) fallback_model: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) agents: BTreeMap<String, AgentDefinition>,
    pub(crate) thinking: Option<Thinking>,
    pub(crate) effort: Option<Effort>,
    pub(crate) betas: Vec<String>,
    pub(crate) max_budget_usd: Option<f64>,
    pub(crate) tools: Option<Tools>,
    pub(crate) add_dirs: Vec<PathBuf>,
    pub(crate) permission_prompt_tool: Option<String>,
    pub(crate) dangerously_skip_permissions: bool,
    pub(crate) mcp_servers: BTreeMap<String, McpServerConfig>,
    pub(crate) mcp_configs: Vec<String>,
    pub(crate) strict_mcp_config: bool,
    pub(crate) settings: Option<Settings>,
    pub(crate) sandbox: Option<SandboxSettings>,
    pub(crate) setting_sources: Option<Vec<SettingSource>>,
    pub(crate) plugins: Vec<PathBuf>,
    pub(crate) resume_session_at: Option<String>,
    pub(crate) continue_conversation: bool,
    pub(crate) fork_session: bool,
    pub(crate) session_id: Option<String>,
    pub(crate) no_session_persistence: bool,
    pub(crate) json_schema: Option<serde_json::Value>,
    pub(crate) replay_user_messages: bool,
    pub(crate) disable_slash_commands: bool,
    pub(crate) inherit_env: Option<Vec<String>>,
    pub(crate) debug: Option<Option<String>>,
    pub(crate) debug_file: Option<PathBuf>,
    pub(crate) enable_file_checkpointing: bool,
    pub(crate) profile: Option<CliProfile>,
    pub(crate) switches: BTreeMap<CliSwitch, bool>,
}

impl Default for Options {
    /// The defaults: empty system prompt, the CLI's own model and permission mode,
    /// CLI found automatically ([`CliPath::Auto`]), 10 MiB line cap, 8 KiB stderr tail,
    /// 60 s initialize and control timeouts, 5 s close grace, no turn timeout,
    /// 64 queued turns, 256 buffered messages per stream.
    fn default() -> Self {
        Options {
            model: None,
            system_prompt: SystemPrompt::Text(String::new()),
            append_system_prompt: None,
            max_turns: None,
            cwd: None,
            env: BTreeMap::new(),
            allowed_tools: Vec::new(),
            disallowed_tools: Vec::new(),
            permission_mode: None,
            resume: None,
            include_partial_messages: false,
            extra_args: Vec::new(),
            cli_path: CliPath::Auto,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            stderr_callback: None,
            stderr_tail_bytes: 8 * 1024,
            initialize_timeout: Duration::from_secs(60),
            control_timeout: Duration::from_secs(60),
            close_grace: Duration::from_secs(5),
            turn_timeout: None,
            max_queued_turns: 64,
            stream_buffer: 256,
            callbacks: Callbacks::default(),
            callback_timeout: Duration::from_secs(60),
            cli: CliFlags::default(),
            session_store: None,
            audit: None,
            audit_redactor: None,
            confinement: None,
            resource_limits: None,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Environment values may hold secrets: print names only.
        let env: Vec<&str> = self.env.keys().map(String::as_str).collect();
        f.debug_struct("Options")
            .field("model", &self.model)
            .field("system_prompt", &self.system_prompt)
            .field("append_system_prompt", &self.append_system_prompt)
            .field("max_turns", &self.max_turns)
            .field("cwd", &self.cwd)
            .field("env", &env)
            .field("allowed_tools", &self.allowed_tools)
            .field("disallowed_tools", &self.disallowed_tools)
            .field("permission_mode", &self.permission_mode)
            .field("resume", &self.resume)
            .field("extra_args", &self.extra_args)
            .field("cli_path", &self.cli_path)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("stderr_callback", &self.stderr_callback.is_some())
            .field("callbacks", &self.callbacks)
            .field("cli", &self.cli)
            .field("session_store", &self.session_store.is_some())
            .field("audit", &self.audit.is_some())
            .field("confinement", &self.confinement)
            .field("resource_limits", &self.resource_limits)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Options with every default (see [`Options::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Model alias or full name (`--model`).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Replace the system prompt with this text (`--system-prompt`).
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = SystemPrompt::Text(prompt.into());
        self
    }

    /// Use Claude Code's own default system prompt instead of an empty one.
    pub fn claude_code_system_prompt(mut self) -> Self {
        self.system_prompt = SystemPrompt::ClaudeCode;
        self
    }

    /// Text appended to the system prompt (`--append-system-prompt`).
    pub fn append_system_prompt(mut self, text: impl Into<String>) -> Self {
        self.append_system_prompt = Some(text.into());
        self
    }

    /// Most model round-trips per turn (`--max-turns`).
    pub fn max_turns(mut self, turns: u32) -> Self {
        self.max_turns = Some(turns);
        self
    }

    /// Working directory of the CLI process (default: this process's).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Set an environment variable for the CLI (inherits this process's environment).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), Some(value.into()));
        self
    }

    /// How often the CLI retries a failed API call that may succeed later (429, 5xx,
    /// 529, connection errors; the CLI reads `CLAUDE_CODE_MAX_RETRIES`, default 10). Each
    /// retry is a `system/api_retry` message on the turn's stream. Statuses that retrying
    /// cannot fix (400, 401, 403, 404) end the turn at once with [`Error::Api`] whatever
    /// this says.
    pub fn max_api_retries(mut self, retries: u32) -> Self {
        self.cli.max_api_retries = Some(retries);
        self
    }

    /// The value variable `name` will have in the CLI's environment: set or removed by
    /// [`Options::env`] / [`Options::env_remove`], else inherited from this process
    /// (unless an [`Options::inherit_env`] allow-list leaves it out).
    pub fn cli_env_var(&self, name: &str) -> Option<std::ffi::OsString> {
        match self.env.get(name) {
            Some(Some(value)) => return Some(value.into()),
            Some(None) => return None,
            None => {}
        }
        if let Some(keep) = self.inherited_env() {
            if !args::allowed(keep, name) {
                return None;
            }
        }
        std::env::var_os(name)
    }

    /// True when a [`SessionStore`](crate::store::SessionStore) is set.
    pub(crate) fn has_session_store(&self) -> bool {
        self.session_store.is_some()
    }

    /// The config directory the CLI will use, where it keeps its transcripts
    /// (`CLAUDE_CONFIG_DIR`, else `$HOME/.claude`; a relative one is taken from the CLI's
    /// working directory). Read them with [`History::new`](crate::history::History::new).
    pub fn cli_config_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = self.sandbox_config_dir() {
            return Some(dir);
        }
        let cwd = match &self.cwd {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().ok()?,
        };
        let dir = match self
            .cli_env_var("CLAUDE_CONFIG_DIR")
            .filter(|d| !d.is_empty())
        {
            Some(dir) => PathBuf::from(dir),
            None => {
                PathBuf::from(self.cli_env_var("HOME").filter(|h| !h.is_empty())?).join(".claude")
            }
        };
        Some(cwd.join(dir))
    }

    /// Run the CLI confined by the operating system: bubblewrap's read-only tree with one
    /// writable work dir, a private network (see [`sandbox`](crate::sandbox); Linux). Unless
    /// `CLAUDE_CONFIG_DIR` is set with [`Options::env`], the CLI's config dir (and its
    /// transcripts) becomes `<work dir>/.claude`. The CLI's own sandbox
    /// ([`Options::sandbox`]) is separate and can be on as well.
    pub fn confine(mut self, sandbox: Sandbox) -> Self {
        self.confinement = Some(sandbox);
        self
    }

    /// The confinement set with [`Options::confine`], if any.
    pub fn confinement(&self) -> Option<&Sandbox> {
        self.confinement.as_ref()
    }

    /// Per-CLI resource limits: rlimits, and memory and pids through a cgroup (see
    /// [`sandbox`](crate::sandbox); Linux). A session that hits one ends with
    /// [`Error::ResourceLimit`].
    pub fn resource_limits(mut self, limits: ResourceLimits) -> Self {
        self.resource_limits = Some(limits);
        self
    }

    /// The resource limits set with [`Options::resource_limits`], if any.
    pub fn limits(&self) -> Option<&ResourceLimits> {
        self.resource_limits.as_ref()
    }

    /// The config dir a sandbox gives the CLI: `<work dir>/.claude` unless
    /// `CLAUDE_CONFIG_DIR` is set with [`Options::env`].
    pub(crate) fn sandbox_config_dir(&self) -> Option<PathBuf> {
        let sandbox = self.confinement.as_ref()?;
        if matches!(self.env.get("CLAUDE_CONFIG_DIR"), Some(Some(_))) {
            return None;
        }
        Some(sandbox.work_dir.join(".claude"))
    }

    /// Remove an inherited environment variable from the CLI's environment.
    pub fn env_remove(mut self, key: impl Into<String>) -> Self {
        self.env.insert(key.into(), None);
        self
    }

    /// Tools allowed without asking (`--allowedTools`), e.g. `Bash(git *)`, `Write`.
    pub fn allowed_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_tools.extend(tools.into_iter().map(Into::into));
        self
    }

    /// Tools the model may not use (`--disallowedTools`).
    pub fn disallowed_tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.disallowed_tools
            .extend(tools.into_iter().map(Into::into));
        self
    }

    /// Permission mode (`--permission-mode`).
    pub fn permission_mode(mut self, mode: PermissionMode) -> Self {
        self.permission_mode = Some(mode);
        self
    }

    /// Resume the conversation with this session id (`--resume`).
    pub fn resume(mut self, session_id: impl Into<String>) -> Self {
        self.resume = Some(session_id.into());
        self
    }

    /// Stream partial messages (`stream_event` deltas) as the model generates them
    /// (`--include-partial-messages`).
    pub fn include_partial_messages(mut self, on: bool) -> Self {
        self.include_partial_messages = on;
        self
    }

    /// Pass an extra flag verbatim: `--name=value`, or `--name` when `value` is `None`.
    pub fn extra_arg(mut self, name: impl Into<String>, value: Option<String>) -> Self {
        self.extra_args.push((name.into(), value));
        self
    }

    /// Which `claude` binary to run (default [`CliPath::Auto`]).
    pub fn cli_path(mut self, path: impl Into<CliPath>) -> Self {
        self.cli_path = path.into();
        self
    }

    /// Finds the CLI binary these options would start (see [`CliPath::resolve`]), for
    /// readiness checks and diagnostics.
    pub fn resolve_cli(&self) -> crate::Result<crate::cli::ResolvedCli> {
        self.cli_path.resolve()
    }

    /// Cap on one stdout line in bytes (default 10 MiB, at least [`MIN_MAX_LINE_BYTES`]).
    /// Longer lines are skipped and
    /// reported as [`Error::LineTooLong`] (the adapters pass over them); memory stays
    /// bounded by this cap.
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// Called with each line the CLI writes to stderr.
    pub fn stderr<F>(mut self, callback: F) -> Self
    where
        F: Fn(&str) + Send + Sync + 'static,
    {
        self.stderr_callback = Some(Arc::new(callback));
        self
    }

    /// How much of the CLI's stderr tail is kept for error reports (default 8 KiB).
    pub fn stderr_tail_bytes(mut self, bytes: usize) -> Self {
        self.stderr_tail_bytes = bytes;
        self
    }

    /// Timeout for the initialize handshake (default 60 s).
    pub fn initialize_timeout(mut self, timeout: Duration) -> Self {
        self.initialize_timeout = timeout;
        self
    }

    /// Timeout for each control request such as interrupt (default 60 s).
    pub fn control_timeout(mut self, timeout: Duration) -> Self {
        self.control_timeout = timeout;
        self
    }

    /// How long the CLI gets to exit after stdin closes before it is killed (default 5 s).
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// Longest a turn may run: past it the turn is interrupted, its stream ends with
    /// [`Error::Timeout`] and [`crate::Session::health`] reports it stuck (default: none).
    pub fn turn_timeout(mut self, timeout: Duration) -> Self {
        self.turn_timeout = Some(timeout);
        self
    }

    /// How many turns may wait behind the running one (default 64); more is
    /// [`Error::QueueFull`].
    pub fn max_queued_turns(mut self, turns: usize) -> Self {
        self.max_queued_turns = turns;
        self
    }

    /// Messages buffered between the session and a slow stream consumer (default 256).
    pub fn stream_buffer(mut self, messages: usize) -> Self {
        self.stream_buffer = messages.max(1);
        self
    }

    /// Decides tool permissions the rules and mode leave open (`can_use_tool`). Without
    /// it the CLI's permission mode decides (refusing what needs approval).
    ///
    /// ```
    /// use claude_code::{Options, PermissionResult};
    /// let opts = Options::new().can_use_tool(|req| async move {
    ///     if req.tool_name == "Bash" { PermissionResult::deny("no shell here") } else { PermissionResult::allow() }
    /// });
    /// ```
    pub fn can_use_tool<F, Fut>(mut self, callback: F) -> Self
    where
        F: Fn(ToolPermissionRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = PermissionResult> + Send + 'static,
    {
        self.callbacks.can_use_tool = Some(permissions::boxed(callback));
        self
    }

    /// Registers a hook for `event`, for tools matching `matcher` (a tool-name pattern as
    /// in Claude Code's settings, e.g. `"Bash"` or `"Edit|Write"`; `None`: all), with a
    /// 60 s timeout. A hook never hangs the session: a `PreToolUse` or
    /// `PermissionRequest` hook that panics, times out or answers nonsense denies the
    /// tool (fail closed) and the model sees why; other hooks that fail answer the CLI
    /// with an error, which it logs before going on.
    ///
    /// ```
    /// use claude_code::{HookEvent, HookOutput, Options};
    /// let opts = Options::new().hook(HookEvent::PreToolUse, Some("Bash"), |input| async move {
    ///     let cmd = input.tool_input.as_ref().and_then(|i| i["command"].as_str()).unwrap_or("");
    ///     if cmd.contains("rm ") { HookOutput::deny("no deletions") } else { HookOutput::none() }
    /// });
    /// ```
    pub fn hook<F, Fut>(self, event: HookEvent, matcher: Option<&str>, callback: F) -> Self
    where
        F: Fn(HookInput) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = HookOutput> + Send + 'static,
    {
        self.hook_with_timeout(event, matcher, Duration::from_secs(60), callback)
    }

    /// Like [`Options::hook`] with an explicit timeout.
    pub fn hook_with_timeout<F, Fut>(
        mut self,
        event: HookEvent,
        matcher: Option<&str>,
        timeout: Duration,
        callback: F,
    ) -> Self
    where
        F: Fn(HookInput) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = HookOutput> + Send + 'static,
    {
        self.callbacks.hooks.push(HookRegistration {
            event,
            matcher: matcher.map(str::to_string),
            timeout,
            callback: hooks::boxed(callback),
        });
        self
    }

    /// Serves `tools` from an in-process MCP server named `name`; the model sees them as
    /// `mcp__<name>__<tool>` (allow them with [`Options::allowed_tools`] or answer them in
    /// [`Options::can_use_tool`]; otherwise the permission mode refuses them).
    pub fn mcp_server(self, name: impl Into<String>, tools: Vec<McpTool>) -> Self {
        self.mcp(McpServer::new(name).tools(tools))
    }

    /// Serves an in-process MCP server with tools, resources and prompts.
    pub fn mcp(mut self, server: McpServer) -> Self {
        self.callbacks.mcp_servers.push(std::sync::Arc::new(server));
        self
    }

    /// Answers MCP elicitations (an MCP server asking the user for input mid-call).
    /// Without it, elicitations are declined; a callback that panics, times out
    /// ([`Options::callback_timeout`]) or accepts with a non-object is taken as cancel.
    pub fn on_elicitation<F, Fut>(mut self, callback: F) -> Self
    where
        F: Fn(ElicitationRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ElicitationResponse> + Send + 'static,
    {
        self.callbacks.on_elicitation = Some(elicitation::boxed(callback));
        self
    }

    /// Records the session's audit trail: every tool use and result, permission and hook
    /// decision, control request and in-process MCP tool call, as an
    /// [`AuditEvent`](crate::audit::AuditEvent), redacted (see
    /// [`Options::audit_redactor`]). The sink is called on a task of its own with panics
    /// caught, behind a bounded queue that drops (and then reports) events when the sink
    /// falls behind: it never slows or breaks the session, but it must be fast and must
    /// not block; hand events to a channel for slow work. See [`crate::audit`].
    ///
    /// The values of secret-named variables set with [`Options::env`] and the process's
    /// `ANTHROPIC_API_KEY` / `ANTHROPIC_AUTH_TOKEN` are always redacted.
    ///
    /// ```
    /// use claude_code::Options;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let opts = Options::new().audit(move |event| {
    ///     let _ = tx.send(serde_json::to_string(event));
    /// });
    /// # drop(rx);
    /// ```
    pub fn audit<F>(mut self, sink: F) -> Self
    where
        F: Fn(&crate::audit::AuditEvent) + Send + Sync + 'static,
    {
        self.audit = Some(Arc::new(sink));
        self
    }

    /// How audit events are redacted (default [`Redactor::new`](crate::audit::Redactor::new):
    /// secret keys, `Bearer` credentials, `sk-ant-` keys, long strings). No effect
    /// without [`Options::audit`].
    pub fn audit_redactor(mut self, redactor: crate::audit::Redactor) -> Self {
        self.audit_redactor = Some(redactor);
        self
    }

    /// The audit sink and redactor, when auditing.
    pub(crate) fn audit_config(&self) -> Option<crate::audit::AuditConfig> {
        self.audit.as_ref().map(|sink| crate::audit::AuditConfig {
            sink: sink.clone(),
            redactor: self.audit_redactor.clone().unwrap_or_default(),
        })
    }

    /// The secrets the audit trail always redacts: values of secret-named variables in
    /// [`Options::env`], and the process's own Anthropic credentials.
    pub(crate) fn audit_secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self
            .env
            .iter()
            .filter(|(k, _)| crate::audit::is_secret_key(k))
            .filter_map(|(_, v)| v.clone())
            .collect();
        for var in ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"] {
            if let Ok(v) = std::env::var(var) {
                secrets.push(v);
            }
        }
        secrets
    }

    /// Timeout for the permission callback, each in-process MCP handler without its
    /// own ([`McpTool::timeout`]) and the elicitation callback (default 60 s). Past it
    /// the tool is denied, the MCP call is an error result, the elicitation cancelled.
    pub fn callback_timeout(mut self, timeout: Duration) -> Self {
        self.callback_timeout = timeout;
        self
    }

    /// Model to fall back to when the main one is overloaded (`--fallback-model`).
    pub fn fallback_model(mut self, model: impl Into<String>) -> Self {
        self.cli.fallback_model = Some(model.into());
        self
    }

    /// Run as this agent (`--agent`), one of [`Options::agents`] or a configured one.
    pub fn agent(mut self, name: impl Into<String>) -> Self {
        self.cli.agent = Some(name.into());
        self
    }

    /// Defines a subagent the model can delegate to (sent in `initialize`).
    pub fn agents<I, S>(mut self, agents: I) -> Self
    where
        I: IntoIterator<Item = (S, AgentDefinition)>,
        S: Into<String>,
    {
        self.cli
            .agents
            .extend(agents.into_iter().map(|(k, v)| (k.into(), v)));
        self
    }

    /// Extended thinking: adaptive, disabled, or a token budget.
    pub fn thinking(mut self, thinking: Thinking) -> Self {
        self.cli.thinking = Some(thinking);
        self
    }

    /// Thinking with a token budget (`--max-thinking-tokens`); same as
    /// `thinking(Thinking::Budget(tokens))`.
    pub fn max_thinking_tokens(self, tokens: u32) -> Self {
        self.thinking(Thinking::Budget(tokens))
    }

    /// Reasoning effort (`--effort`).
    pub fn effort(mut self, effort: Effort) -> Self {
        self.cli.effort = Some(effort);
        self
    }

    /// Beta headers for API requests (`--betas`, API-key users only).
    pub fn betas<I, S>(mut self, betas: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cli.betas.extend(betas.into_iter().map(Into::into));
        self
    }

    /// Stop once the session has spent this much (`--max-budget-usd`).
    pub fn max_budget_usd(mut self, usd: f64) -> Self {
        self.cli.max_budget_usd = Some(usd);
        self
    }

    /// The base tool set (`--tools`): default, none, or a list.
    pub fn tools(mut self, tools: Tools) -> Self {
        self.cli.tools = Some(tools);
        self
    }

    /// Extra directories the tools may access (`--add-dir`, repeatable).
    pub fn add_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cli.add_dirs.push(dir.into());
        self
    }

    /// An MCP tool that answers permission prompts (`--permission-prompt-tool`). Not
    /// together with [`Options::can_use_tool`].
    pub fn permission_prompt_tool(mut self, tool: impl Into<String>) -> Self {
        self.cli.permission_prompt_tool = Some(tool.into());
        self
    }

    /// Skip every permission check (`--dangerously-skip-permissions`; the CLI refuses it
    /// when running as root).
    pub fn dangerously_skip_permissions(mut self, on: bool) -> Self {
        self.cli.dangerously_skip_permissions = on;
        self
    }

    /// An external MCP server (stdio, HTTP or SSE), declared in `--mcp-config`.
    pub fn mcp_server_config(mut self, name: impl Into<String>, config: McpServerConfig) -> Self {
        self.cli.mcp_servers.insert(name.into(), config);
        self
    }

    /// An MCP configuration file or JSON string, passed as its own `--mcp-config`.
    pub fn mcp_config(mut self, path_or_json: impl Into<String>) -> Self {
        self.cli.mcp_configs.push(path_or_json.into());
        self
    }

    /// Use only the MCP servers given here, ignoring other configuration
    /// (`--strict-mcp-config`).
    pub fn strict_mcp_config(mut self, on: bool) -> Self {
        self.cli.strict_mcp_config = on;
        self
    }

    /// Settings file or inline settings (`--settings`).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.cli.settings = Some(settings);
        self
    }

    /// Sandbox settings, merged into the inline `--settings` JSON.
    pub fn sandbox(mut self, sandbox: SandboxSettings) -> Self {
        self.cli.sandbox = Some(sandbox);
        self
    }

    /// Which filesystem settings the CLI loads (`--setting-sources`); an empty list
    /// loads none.
    pub fn setting_sources<I>(mut self, sources: I) -> Self
    where
        I: IntoIterator<Item = SettingSource>,
    {
        self.cli.setting_sources = Some(sources.into_iter().collect());
        self
    }

    /// A local plugin directory (`--plugin-dir`, repeatable).
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cli.plugins.push(dir.into());
        self
    }

    /// With [`Options::resume`]: resume at this message uuid (`--resume-session-at`).
    pub fn resume_session_at(mut self, message_uuid: impl Into<String>) -> Self {
        self.cli.resume_session_at = Some(message_uuid.into());
        self
    }

    /// Continue the most recent conversation in the cwd (`--continue`).
    pub fn continue_conversation(mut self, on: bool) -> Self {
        self.cli.continue_conversation = on;
        self
    }

    /// With resume or continue: fork into a new session id (`--fork-session`).
    pub fn fork_session(mut self, on: bool) -> Self {
        self.cli.fork_session = on;
        self
    }

    /// Use this session id (a UUID) for a new conversation (`--session-id`).
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.cli.session_id = Some(id.into());
        self
    }

    /// Don't write the transcript to disk (`--no-session-persistence`); such a session
    /// cannot be resumed.
    pub fn no_session_persistence(mut self, on: bool) -> Self {
        self.cli.no_session_persistence = on;
        self
    }

    /// Keeps the session's transcript in `store` as well as in the CLI's local files:
    /// saved after each turn and when the session ends, and restored before a
    /// [`Options::resume`] when the local copy is missing (another machine, a fresh
    /// config dir). See [`crate::store`]; the default is the local files only.
    pub fn session_store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.session_store = Some(store);
        self
    }

    /// Structured output: the final answer must match this JSON schema
    /// (`--json-schema`); read it with [`crate::TurnSummary::structured`].
    pub fn json_schema(mut self, schema: serde_json::Value) -> Self {
        self.cli.json_schema = Some(schema);
        self
    }

    /// Structured output with the schema derived from `T` (see [`Options::json_schema`]),
    /// generated as JSON Schema draft-07: the CLI refuses the 2020-12 dialect.
    pub fn output_type<T: schemars::JsonSchema>(self) -> Self {
        self.json_schema(crate::schema::schema_for::<T>())
    }

    /// Echo user messages back on stdout (`--replay-user-messages`).
    pub fn replay_user_messages(mut self, on: bool) -> Self {
        self.cli.replay_user_messages = on;
        self
    }

    /// Disable slash commands (`--disable-slash-commands`).
    pub fn disable_slash_commands(mut self, on: bool) -> Self {
        self.cli.disable_slash_commands = on;
        self
    }

    /// Start the CLI from an empty environment plus only these inherited variables (then
    /// [`Options::env`] on top). A name ending in `*` is a prefix (`LC_*`). Default:
    /// inherit everything. See [`Options::minimal_env`] for the usual allow-list.
    pub fn inherit_env<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cli.inherit_env = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Start the CLI with only [`MINIMAL_ENV`] inherited from this process (`PATH`,
    /// `HOME`, `LANG`, `LC_*`, `TERM`, `TMPDIR`), then
    /// [`Options::env`] on top: this process's API keys, cloud credentials and
    /// tokens do not reach the CLI or the tools it runs. Give the CLI its credential
    /// explicitly ([`Options::env`]), or better a credential proxy's token (the `proxy`
    /// module, feature `proxy`). The default stays "inherit everything".
    ///
    /// ```
    /// use claude_code::Options;
    /// let o = Options::new().minimal_env().env("ANTHROPIC_API_KEY", "sk-…");
    /// assert!(o.cli_env_var("AWS_SECRET_ACCESS_KEY").is_none());
    /// ```
    pub fn minimal_env(self) -> Self {
        self.inherit_env(MINIMAL_ENV.iter().copied())
    }

    /// Debug logging (`--debug`, with an optional category filter like `"api,hooks"`).
    pub fn debug(mut self, filter: Option<&str>) -> Self {
        self.cli.debug = Some(filter.map(str::to_string));
        self
    }

    /// Write debug logs to this file (`--debug-file`).
    pub fn debug_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cli.debug_file = Some(path.into());
        self
    }

    /// Track file changes so [`crate::Session::rewind_files`] can undo them.
    pub fn enable_file_checkpointing(mut self, on: bool) -> Self {
        self.cli.enable_file_checkpointing = on;
        self
    }

    /// The CLI profile: which of the CLI's start-up and background switches are on
    /// (see [`CliProfile`]). Unset, a bare [`crate::Session`] runs with the CLI's
    /// defaults and the hosting layer (supervisor children, pools, spares) with
    /// [`CliProfile::Lean`]. [`Options::env`] and [`Options::env_remove`] win over it.
    ///
    /// ```
    /// use claude_code::{CliProfile, Options};
    /// let env = Options::new().cli_profile(CliProfile::Lean).to_env();
    /// assert!(env.contains(&("DISABLE_TELEMETRY".into(), Some("1".into()))));
    /// ```
    pub fn cli_profile(mut self, profile: CliProfile) -> Self {
        self.cli.profile = Some(profile);
        self
    }

    /// Turns one switch on or off on top of the profile: `true` sets its variable to `1`
    /// even when the profile does not, `false` keeps the profile from setting it (an
    /// inherited variable stays; remove that with [`Options::env_remove`]).
    pub fn cli_switch(mut self, switch: CliSwitch, on: bool) -> Self {
        self.cli.switches.insert(switch, on);
        self
    }

    /// The profile named with [`Options::cli_profile`], if any.
    pub fn cli_profile_value(&self) -> Option<CliProfile> {
        self.cli.profile
    }

    /// The switches the CLI will be started with: the profile's (the CLI defaults when
    /// none is named) adjusted by [`Options::cli_switch`], in [`CliSwitch::ALL`] order.
    pub fn cli_switches(&self) -> Vec<CliSwitch> {
        let profile = self.cli.profile.unwrap_or_default().switches();
        CliSwitch::ALL
            .into_iter()
            .filter(|s| {
                self.cli
                    .switches
                    .get(s)
                    .copied()
                    .unwrap_or_else(|| profile.contains(s))
            })
            .collect()
    }

    /// These options as the hosting layer starts them: [`CliProfile::Lean`] unless a
    /// profile is named.
    pub(crate) fn hosted(mut self) -> Self {
        self.cli.profile.get_or_insert(CliProfile::Lean);
        self
    }

    /// Checks combinations that the CLI would reject or misread.
    pub(crate) fn validate(&self) -> Result<()> {
        // A cwd in the sandbox's work dir is made when the CLI starts.
        let made_at_start = |cwd: &PathBuf| {
            self.confinement
                .as_ref()
                .is_some_and(|s| cwd.starts_with(&s.work_dir))
        };
        if let Some(cwd) = self.cwd.as_ref().filter(|c| !made_at_start(c)) {
            if !cwd.is_dir() {
                return Err(Error::InvalidOptions(format!(
                    "cwd {} is not a directory",
                    cwd.display()
                )));
            }
        }
        if self.max_line_bytes < MIN_MAX_LINE_BYTES {
            return Err(Error::InvalidOptions(format!(
                "max_line_bytes must be at least {MIN_MAX_LINE_BYTES} (got {}): the CLI's \
                 initialize response alone is tens of kilobytes",
                self.max_line_bytes
            )));
        }
        if self.max_turns == Some(0) {
            return Err(Error::InvalidOptions("max_turns must be at least 1".into()));
        }
        let cli = &self.cli;
        let conflict = |what: &str| Err(Error::InvalidOptions(what.to_string()));
        if self.callbacks.can_use_tool.is_some() && cli.permission_prompt_tool.is_some() {
            return conflict("can_use_tool and permission_prompt_tool are mutually exclusive: the callback is the prompt tool");
        }
        if cli.fork_session && self.resume.is_none() && !cli.continue_conversation {
            return conflict("fork_session needs resume or continue_conversation");
        }
        if cli.resume_session_at.is_some() && self.resume.is_none() {
            return conflict("resume_session_at needs resume");
        }
        if self.resume.is_some() && cli.continue_conversation {
            return conflict("resume and continue_conversation are mutually exclusive");
        }
        if cli.session_id.is_some()
            && (self.resume.is_some() || cli.continue_conversation)
            && !cli.fork_session
        {
            return conflict("session_id with resume or continue needs fork_session");
        }
        if self.session_store.is_some() && cli.no_session_persistence {
            return conflict(
                "session_store needs the transcript on disk: not with no_session_persistence",
            );
        }
        if self.model.is_some() && cli.fallback_model == self.model {
            return conflict("fallback_model must differ from model");
        }
        if matches!(cli.max_budget_usd, Some(b) if !(b > 0.0 && b.is_finite())) {
            return conflict("max_budget_usd must be a positive number");
        }
        if cli.sandbox.is_some() && matches!(cli.settings, Some(Settings::Path(_))) {
            return conflict(
                "sandbox settings are merged into inline settings: pass settings as Settings::Json",
            );
        }
        if let Some(Settings::Json(v)) = &cli.settings {
            if !v.is_object() {
                return conflict("inline settings must be a JSON object");
            }
        }
        let mut names = std::collections::HashSet::new();
        for name in cli.mcp_servers.keys() {
            names.insert(name);
        }
        for server in &self.callbacks.mcp_servers {
            server.validate().map_err(Error::InvalidOptions)?;
            if server.name.is_empty() || !names.insert(&server.name) {
                return Err(Error::InvalidOptions(format!(
                    "in-process MCP server names must be unique and non-empty (got {:?})",
                    server.name
                )));
            }
        }
        for (name, _) in &self.extra_args {
            if name.is_empty() || name.starts_with('-') {
                return Err(Error::InvalidOptions(format!(
                    "extra_arg name {name:?} must be a bare flag name without leading dashes"
                )));
            }
        }
        self.validate_bytes()
    }

    /// Rejects what the OS cannot pass to a process (NUL in argv, malformed environment
    /// entries) before anything is spawned, naming the option at fault.
    fn validate_bytes(&self) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let bad = |what: String| Err(Error::InvalidOptions(what));
        for (key, value) in &self.env {
            if key.is_empty() {
                return bad("env: an environment variable name is empty".into());
            }
            if let Some(c) = key.chars().find(|c| matches!(c, '=' | '\0' | '\n' | '\r')) {
                return bad(format!(
                    "env: the variable name {key:?} contains {c:?}, which no environment can hold"
                ));
            }
            if let Some(v) = value {
                if let Some(c) = v.chars().find(|c| matches!(c, '\0' | '\n' | '\r')) {
                    return bad(format!(
                        "env: the value of {key} contains {c:?}; pass multi-line or binary \
                         data through a file instead"
                    ));
                }
            }
        }
        for name in self.cli.inherit_env.iter().flatten() {
            let stem = name.strip_suffix('*').unwrap_or(name);
            if stem.is_empty() || stem.contains(['=', '\0', '\n', '\r', '*']) {
                return bad(format!(
                    "inherit_env: {name:?} is not a valid environment variable name"
                ));
            }
        }
        if let Some(cwd) = &self.cwd {
            if cwd.as_os_str().as_bytes().contains(&0) {
                return bad("cwd contains a NUL byte".into());
            }
        }
        if let CliPath::Explicit(p) = &self.cli_path {
            if p.as_os_str().as_bytes().contains(&0) {
                return bad("cli_path contains a NUL byte".into());
            }
        }
        // Every flag is one `--name=value` token: name the flag whose value holds a NUL.
        for arg in self.to_args() {
            if arg.as_bytes().contains(&0) {
                let text = arg.to_string_lossy();
                let flag = text.split('=').next().unwrap_or_default();
                return bad(format!(
                    "the value for {flag} contains a NUL byte, which cannot be passed to a process"
                ));
            }
        }
        Ok(())
    }
}
