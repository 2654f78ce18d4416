//! Session options and the ONE place where they become CLI arguments and environment.
//!
//! [`Options`] is a plain builder. [`Options::to_args`] and [`Options::to_env`] turn it
//! into the exact argv and environment the CLI is spawned with; nothing else in the
//! crate formats flags. Process handling lives in `transport`, finding the binary in
//! `cli`.

use std::{collections::BTreeMap, ffi::OsString, fmt, path::PathBuf, sync::Arc, time::Duration};

use crate::callbacks::{
    hooks::{self, HookEvent, HookInput, HookOutput, HookRegistration},
    mcp::{McpServer, McpTool},
    permissions::{self, PermissionResult, ToolPermissionRequest},
    Callbacks,
};
use crate::cli::CliPath;
use crate::error::{Error, Result};

/// Default cap on one stdout line from the CLI (10 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 10 * 1024 * 1024;

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

impl PermissionMode {
    /// The spelling the CLI expects on the wire and in `--permission-mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionMode::Default => "default",
            PermissionMode::AcceptEdits => "acceptEdits",
            PermissionMode::Plan => "plan",
            PermissionMode::BypassPermissions => "bypassPermissions",
            PermissionMode::DontAsk => "dontAsk",
            PermissionMode::Auto => "auto",
        }
    }
}

impl fmt::Display for PermissionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

    /// Cap on one stdout line in bytes (default 10 MiB). Longer lines are skipped and
    /// reported as [`Error::LineTooLong`]; memory stays bounded by this cap.
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes.max(1024);
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

    /// Registers a hook for `event`, for tools matching `matcher` (`None`: all), with a
    /// 60 s timeout. A slow or panicking hook becomes an error reply, never a hang.
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
    /// `mcp__<name>__<tool>` (allow them with [`Options::allowed_tools`]).
    pub fn mcp_server(mut self, name: impl Into<String>, tools: Vec<McpTool>) -> Self {
        self.callbacks
            .mcp_servers
            .push(std::sync::Arc::new(McpServer::new(name.into(), tools)));
        self
    }

    /// Timeout for the permission callback (default 60 s); past it the CLI gets an
    /// error reply, which it treats as a denial.
    pub fn callback_timeout(mut self, timeout: Duration) -> Self {
        self.callback_timeout = timeout;
        self
    }

    /// Checks combinations that the CLI would reject or misread.
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(cwd) = &self.cwd {
            if !cwd.is_dir() {
                return Err(Error::InvalidOptions(format!(
                    "cwd {} is not a directory",
                    cwd.display()
                )));
            }
        }
        if self.max_turns == Some(0) {
            return Err(Error::InvalidOptions("max_turns must be at least 1".into()));
        }
        let mut names = std::collections::HashSet::new();
        for server in &self.callbacks.mcp_servers {
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
        Ok(())
    }

    /// The CLI arguments for these options, after the binary name. Prompts never go on
    /// argv: they are written to stdin.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        fn push(args: &mut Vec<OsString>, name: &str, value: &str) {
            args.push(format!("--{name}={value}").into());
        }
        macro_rules! flag {
            ($name:expr, $value:expr) => {
                push(&mut args, $name, $value)
            };
        }
        flag!("output-format", "stream-json");
        flag!("input-format", "stream-json");
        match &self.system_prompt {
            SystemPrompt::Text(text) => flag!("system-prompt", text),
            SystemPrompt::ClaudeCode => {}
        }
        if let Some(text) = &self.append_system_prompt {
            flag!("append-system-prompt", text);
        }
        if let Some(model) = &self.model {
            flag!("model", model);
        }
        if let Some(turns) = self.max_turns {
            flag!("max-turns", &turns.to_string());
        }
        if !self.allowed_tools.is_empty() {
            flag!("allowedTools", &self.allowed_tools.join(","));
        }
        if !self.disallowed_tools.is_empty() {
            flag!("disallowedTools", &self.disallowed_tools.join(","));
        }
        if let Some(mode) = self.permission_mode {
            flag!("permission-mode", mode.as_str());
        }
        if let Some(id) = &self.resume {
            flag!("resume", id);
        }
        if self.include_partial_messages {
            args.push("--include-partial-messages".into());
        }
        if self.callbacks.can_use_tool.is_some() {
            flag!("permission-prompt-tool", "stdio");
        }
        if let Some(config) = self.callbacks.mcp_config() {
            flag!("mcp-config", &config);
        }
        for (name, value) in &self.extra_args {
            match value {
                Some(v) => flag!(name, v),
                None => args.push(format!("--{name}").into()),
            }
        }
        args.push("--verbose".into());
        args
    }

    /// Environment changes for the CLI process: `(name, Some(value))` sets, `(name, None)`
    /// removes. Applied over this process's inherited environment, in order.
    pub fn to_env(&self) -> Vec<(String, Option<String>)> {
        let mut env = vec![
            // A nested CLI must not believe it runs inside Claude Code.
            ("CLAUDECODE".to_string(), None),
            (
                "CLAUDE_CODE_ENTRYPOINT".to_string(),
                Some(ENTRYPOINT.to_string()),
            ),
        ];
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.push((
            "CLAUDE_AGENT_SDK_VERSION".to_string(),
            Some(env!("CARGO_PKG_VERSION").to_string()),
        ));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(opts: &Options) -> Vec<String> {
        opts.to_args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Arguments beyond the fixed stream-json ones and the default empty system prompt.
    fn extra(opts: &Options) -> Vec<String> {
        args(opts)
            .into_iter()
            .filter(|a| {
                !matches!(
                    a.as_str(),
                    "--output-format=stream-json"
                        | "--input-format=stream-json"
                        | "--verbose"
                        | "--system-prompt="
                )
            })
            .collect()
    }

    #[test]
    fn defaults_are_stream_json_with_empty_system_prompt() {
        assert_eq!(
            args(&Options::new()),
            [
                "--output-format=stream-json",
                "--input-format=stream-json",
                "--system-prompt=",
                "--verbose"
            ]
        );
    }

    #[test]
    fn model_flag() {
        assert_eq!(extra(&Options::new().model("opus")), ["--model=opus"]);
    }

    #[test]
    fn system_prompt_flag_keeps_leading_dash_in_one_token() {
        assert!(args(&Options::new().system_prompt("-x be terse"))
            .contains(&"--system-prompt=-x be terse".to_string()));
    }

    #[test]
    fn claude_code_preset_sends_no_system_prompt_flag() {
        let a = args(&Options::new().claude_code_system_prompt());
        assert!(!a.iter().any(|x| x.starts_with("--system-prompt")));
    }

    #[test]
    fn append_system_prompt_flag() {
        assert_eq!(
            extra(&Options::new().append_system_prompt("Be brief")),
            ["--append-system-prompt=Be brief"]
        );
    }

    #[test]
    fn max_turns_flag() {
        assert_eq!(extra(&Options::new().max_turns(5)), ["--max-turns=5"]);
    }

    #[test]
    fn allowed_and_disallowed_tools_flags() {
        let o = Options::new()
            .allowed_tools(["Read", "Bash(git *)"])
            .disallowed_tools(["WebFetch"]);
        assert_eq!(
            extra(&o),
            [
                "--allowedTools=Read,Bash(git *)",
                "--disallowedTools=WebFetch"
            ]
        );
    }

    #[test]
    fn permission_mode_flag_uses_cli_spelling() {
        for (mode, s) in [
            (PermissionMode::Default, "default"),
            (PermissionMode::AcceptEdits, "acceptEdits"),
            (PermissionMode::Plan, "plan"),
            (PermissionMode::BypassPermissions, "bypassPermissions"),
            (PermissionMode::DontAsk, "dontAsk"),
            (PermissionMode::Auto, "auto"),
        ] {
            assert_eq!(
                extra(&Options::new().permission_mode(mode)),
                [format!("--permission-mode={s}")]
            );
        }
    }

    #[test]
    fn resume_flag_is_one_token() {
        assert_eq!(
            extra(&Options::new().resume("abc-123")),
            ["--resume=abc-123"]
        );
    }

    #[test]
    fn include_partial_messages_flag() {
        assert_eq!(
            extra(&Options::new().include_partial_messages(true)),
            ["--include-partial-messages"]
        );
        assert!(extra(&Options::new().include_partial_messages(false)).is_empty());
    }

    #[test]
    fn can_use_tool_routes_permission_prompts_to_stdio() {
        let o = Options::new().can_use_tool(|_| async { PermissionResult::allow() });
        assert_eq!(extra(&o), ["--permission-prompt-tool=stdio"]);
    }

    #[test]
    fn in_process_mcp_servers_are_declared_as_sdk_servers() {
        let o = Options::new().mcp_server("calc", vec![]);
        assert_eq!(
            extra(&o),
            [r#"--mcp-config={"mcpServers":{"calc":{"name":"calc","type":"sdk"}}}"#]
        );
        let dup = Options::new()
            .mcp_server("a", vec![])
            .mcp_server("a", vec![]);
        assert!(matches!(dup.validate(), Err(Error::InvalidOptions(_))));
    }

    #[test]
    fn hooks_are_not_flags() {
        let o = Options::new().hook(HookEvent::PreToolUse, Some("Bash"), |_| async {
            HookOutput::none()
        });
        assert!(extra(&o).is_empty());
    }

    #[test]
    fn extra_args_with_and_without_value() {
        let o = Options::new()
            .extra_arg("debug", None)
            .extra_arg("betas", Some("-b1".into()));
        assert_eq!(extra(&o), ["--debug", "--betas=-b1"]);
    }

    #[test]
    fn cwd_is_not_a_flag_and_must_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Options::new().cwd(dir.path());
        assert!(extra(&o).is_empty());
        assert!(o.validate().is_ok());
        let missing = Options::new().cwd(dir.path().join("missing"));
        assert!(matches!(missing.validate(), Err(Error::InvalidOptions(_))));
    }

    #[test]
    fn env_sets_and_unsets_after_sdk_defaults() {
        let o = Options::new().env("FOO", "1").env_remove("BAR");
        let env = o.to_env();
        assert_eq!(env[0], ("CLAUDECODE".into(), None));
        assert_eq!(
            env[1],
            ("CLAUDE_CODE_ENTRYPOINT".into(), Some(ENTRYPOINT.into()))
        );
        assert!(env.contains(&("FOO".into(), Some("1".into()))));
        assert!(env.contains(&("BAR".into(), None)));
        // The user may override the entrypoint tag: their entry comes later.
        let o = Options::new().env("CLAUDE_CODE_ENTRYPOINT", "mine");
        let pos = |v: &str| {
            o.to_env()
                .iter()
                .position(|(k, x)| k == "CLAUDE_CODE_ENTRYPOINT" && x.as_deref() == Some(v))
        };
        assert!(pos("mine") > pos(ENTRYPOINT));
    }

    #[test]
    fn debug_output_hides_env_values() {
        let o = Options::new().env("ANTHROPIC_API_KEY", "sk-secret");
        let s = format!("{o:?}");
        assert!(s.contains("ANTHROPIC_API_KEY"));
        assert!(!s.contains("sk-secret"));
    }

    #[test]
    fn zero_max_turns_is_rejected() {
        assert!(Options::new().max_turns(0).validate().is_err());
    }
}
