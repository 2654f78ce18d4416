//! The ONE place where [`Options`] become CLI arguments, environment and the
//! `initialize` request. Each flag is written as a single `--name=value` token, so a value
//! starting with `-` is never read as a flag; prompts never go on argv.

use std::ffi::OsString;

use serde_json::{json, Map, Value};

use super::{Options, Settings, SystemPrompt, Thinking, Tools};
use crate::protocol::InitializeRequest;

impl Options {
    /// The CLI arguments for these options, after the binary name.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = Args::default();
        let cli = &self.cli;
        args.value("output-format", "stream-json");
        args.value("input-format", "stream-json");
        if let SystemPrompt::Text(text) = &self.system_prompt {
            args.value("system-prompt", text);
        }
        args.opt("append-system-prompt", self.append_system_prompt.as_deref());
        args.opt("model", self.model.as_deref());
        args.opt("fallback-model", cli.fallback_model.as_deref());
        args.opt("agent", cli.agent.as_deref());
        args.opt(
            "max-turns",
            self.max_turns.map(|t| t.to_string()).as_deref(),
        );
        match cli.thinking {
            Some(Thinking::Adaptive) => args.value("thinking", "adaptive"),
            Some(Thinking::Disabled) => args.value("thinking", "disabled"),
            Some(Thinking::Budget(n)) => args.value("max-thinking-tokens", &n.to_string()),
            None => {}
        }
        args.opt("effort", cli.effort.map(|e| e.as_str()));
        args.list("betas", &cli.betas);
        args.opt(
            "max-budget-usd",
            cli.max_budget_usd.map(|b| b.to_string()).as_deref(),
        );
        match &cli.tools {
            Some(Tools::Default) => args.value("tools", "default"),
            Some(Tools::None) => args.value("tools", ""),
            Some(Tools::List(list)) => args.value("tools", &list.join(",")),
            None => {}
        }
        args.list("allowedTools", &self.allowed_tools);
        args.list("disallowedTools", &self.disallowed_tools);
        for dir in &cli.add_dirs {
            args.value("add-dir", &dir.to_string_lossy());
        }
        args.opt("permission-mode", self.permission_mode.map(|m| m.as_str()));
        if self.callbacks.can_use_tool.is_some() {
            args.value("permission-prompt-tool", "stdio");
        }
        args.opt(
            "permission-prompt-tool",
            cli.permission_prompt_tool.as_deref(),
        );
        args.switch(
            "dangerously-skip-permissions",
            cli.dangerously_skip_permissions,
        );
        if let Some(config) = self.mcp_config_json() {
            args.value("mcp-config", &config);
        }
        for config in &cli.mcp_configs {
            args.value("mcp-config", config);
        }
        args.switch("strict-mcp-config", cli.strict_mcp_config);
        match (&cli.settings, self.settings_json()) {
            (Some(Settings::Path(path)), _) => args.value("settings", &path.to_string_lossy()),
            (_, Some(json)) => args.value("settings", &json),
            _ => {}
        }
        if let Some(sources) = &cli.setting_sources {
            let names: Vec<&str> = sources.iter().map(|s| s.as_str()).collect();
            args.value("setting-sources", &names.join(","));
        }
        for dir in &cli.plugins {
            args.value("plugin-dir", &dir.to_string_lossy());
        }
        args.opt("resume", self.resume.as_deref());
        args.opt("resume-session-at", cli.resume_session_at.as_deref());
        args.switch("continue", cli.continue_conversation);
        args.switch("fork-session", cli.fork_session);
        args.opt("session-id", cli.session_id.as_deref());
        args.switch("no-session-persistence", cli.no_session_persistence);
        if let Some(schema) = &cli.json_schema {
            args.value("json-schema", &schema.to_string());
        }
        args.switch("include-partial-messages", self.include_partial_messages);
        args.switch("replay-user-messages", cli.replay_user_messages);
        args.switch("disable-slash-commands", cli.disable_slash_commands);
        match &cli.debug {
            Some(Some(filter)) => args.value("debug", filter),
            Some(None) => args.switch("debug", true),
            None => {}
        }
        if let Some(path) = &cli.debug_file {
            args.value("debug-file", &path.to_string_lossy());
        }
        for (name, value) in &self.extra_args {
            match value {
                Some(v) => args.value(name, v),
                None => args.switch(name, true),
            }
        }
        args.switch("verbose", true);
        args.0
    }

    /// Environment changes for the CLI process: `(name, Some(value))` sets, `(name, None)`
    /// removes. Applied in order over the inherited environment (or over only the
    /// allow-listed variables, see [`Options::inherit_env`]): the SDK's own entries,
    /// then the [`CliProfile`](super::CliProfile)'s switches, then [`Options::env`],
    /// so the user's variables win.
    pub fn to_env(&self) -> Vec<(String, Option<String>)> {
        let set = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
        let mut env = vec![
            // A nested CLI must not believe it runs inside Claude Code.
            ("CLAUDECODE".to_string(), None),
            set("CLAUDE_CODE_ENTRYPOINT", super::ENTRYPOINT),
        ];
        // The profile's switches come before the user's own variables, which win.
        env.extend(
            self.cli_switches()
                .into_iter()
                .map(|s| set(s.env_var(), "1")),
        );
        if self.cli.enable_file_checkpointing {
            env.push(set("CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING", "true"));
        }
        if let Some(n) = self.cli.max_api_retries {
            env.push(set("CLAUDE_CODE_MAX_RETRIES", &n.to_string()));
        }
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.push(set("CLAUDE_AGENT_SDK_VERSION", env!("CARGO_PKG_VERSION")));
        env
    }

    /// The variables to inherit when the environment is allow-listed; `None` inherits all.
    /// A name ending in `*` is a prefix.
    pub fn inherited_env(&self) -> Option<&[String]> {
        self.cli.inherit_env.as_deref()
    }

    /// The variables of `from` (this process's environment) the allow-list keeps; `None`
    /// when the environment is not allow-listed (everything is inherited).
    pub fn allow_listed_env<I>(&self, from: I) -> Option<Vec<(OsString, OsString)>>
    where
        I: IntoIterator<Item = (OsString, OsString)>,
    {
        let keep = self.inherited_env()?;
        Some(
            from.into_iter()
                .filter(|(k, _)| k.to_str().is_some_and(|k| allowed(keep, k)))
                .collect(),
        )
    }

    /// The `initialize` request: hook registrations and agent definitions.
    pub fn initialize_request(&self) -> InitializeRequest {
        let mut request = self.callbacks.initialize_request();
        if !self.cli.agents.is_empty() {
            if let Ok(agents) = serde_json::to_value(&self.cli.agents) {
                request = request.with_agents(agents);
            }
        }
        request
    }

    /// One `--mcp-config` JSON for the external servers and the in-process ones.
    fn mcp_config_json(&self) -> Option<String> {
        let mut servers = Map::new();
        for (name, config) in &self.cli.mcp_servers {
            if let Ok(v) = serde_json::to_value(config) {
                servers.insert(name.clone(), v);
            }
        }
        for server in &self.callbacks.mcp_servers {
            servers.insert(
                server.name.clone(),
                json!({"type": "sdk", "name": server.name}),
            );
        }
        (!servers.is_empty()).then(|| json!({ "mcpServers": servers }).to_string())
    }

    /// Inline settings with the sandbox merged in; `None` when there are none.
    fn settings_json(&self) -> Option<String> {
        let mut settings = match &self.cli.settings {
            Some(Settings::Json(Value::Object(map))) => map.clone(),
            _ => Map::new(),
        };
        if let Some(sandbox) = &self.cli.sandbox {
            settings.insert("sandbox".into(), serde_json::to_value(sandbox).ok()?);
        }
        let inline = matches!(self.cli.settings, Some(Settings::Json(_)));
        (inline || !settings.is_empty()).then(|| Value::Object(settings).to_string())
    }
}

/// An argv under construction: every flag one token.
#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn value(&mut self, name: &str, value: &str) {
        self.0.push(format!("--{name}={value}").into());
    }

    fn opt(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.value(name, v);
        }
    }

    fn list(&mut self, name: &str, values: &[String]) {
        if !values.is_empty() {
            self.value(name, &values.join(","));
        }
    }

    fn switch(&mut self, name: &str, on: bool) {
        if on {
            self.0.push(format!("--{name}").into());
        }
    }
}

/// Whether the allow-list `keep` lets variable `name` through (`NAME`, or a `PREFIX*`).
pub(crate) fn allowed(keep: &[String], name: &str) -> bool {
    keep.iter().any(|k| match k.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => k == name,
    })
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::callbacks::hooks::{HookEvent, HookOutput};
    use crate::callbacks::permissions::PermissionResult;
    use serde_json::json;

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

    /// The variables a profile adds to the environment (set to `1`), in order.
    fn switch_vars(opts: &Options) -> Vec<String> {
        let names: Vec<&str> = CliSwitch::ALL.iter().map(|s| s.env_var()).collect();
        opts.to_env()
            .into_iter()
            .filter(|(k, v)| names.contains(&k.as_str()) && v.as_deref() == Some("1"))
            .map(|(k, _)| k)
            .collect()
    }

    const LEAN_VARS: [&str; 7] = [
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "DISABLE_AUTOUPDATER",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
        "CLAUDE_CODE_DISABLE_FEATURE_FLAGS",
        "DISABLE_GROWTHBOOK",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL",
    ];

    const MINIMAL_EXTRA_VARS: [&str; 6] = [
        "CLAUDE_CODE_DISABLE_VITALS_EMITTER",
        "CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS",
        "CLAUDE_CODE_DISABLE_CLAUDE_MDS",
        "CLAUDE_CODE_DISABLE_AUTO_MEMORY",
        "CLAUDE_CODE_DISABLE_BUNDLED_SKILLS",
        "CLAUDE_CODE_DISABLE_BACKGROUND_TASKS",
    ];

    #[test]
    fn each_profile_sets_exactly_its_variables_and_no_flags() {
        assert!(switch_vars(&Options::new()).is_empty());
        assert!(switch_vars(&Options::new().cli_profile(CliProfile::Default)).is_empty());
        let lean = Options::new().cli_profile(CliProfile::Lean);
        assert_eq!(switch_vars(&lean), LEAN_VARS);
        let minimal = Options::new().cli_profile(CliProfile::Minimal);
        let want: Vec<&str> = LEAN_VARS
            .iter()
            .chain(&MINIMAL_EXTRA_VARS)
            .copied()
            .collect();
        assert_eq!(switch_vars(&minimal), want);
        for o in [lean, minimal] {
            assert!(extra(&o).is_empty(), "a profile is environment only");
        }
    }

    #[test]
    fn single_switches_adjust_the_profile() {
        let o = Options::new().cli_switch(CliSwitch::ClaudeMds, true);
        assert_eq!(switch_vars(&o), ["CLAUDE_CODE_DISABLE_CLAUDE_MDS"]);
        let o = Options::new()
            .cli_profile(CliProfile::Lean)
            .cli_switch(CliSwitch::Telemetry, false)
            .cli_switch(CliSwitch::BackgroundTasks, true);
        let vars = switch_vars(&o);
        assert!(!vars.contains(&"DISABLE_TELEMETRY".to_string()), "{vars:?}");
        assert!(vars.contains(&"CLAUDE_CODE_DISABLE_BACKGROUND_TASKS".to_string()));
        assert_eq!(vars.len(), LEAN_VARS.len());
        assert_eq!(o.cli_switches().len(), LEAN_VARS.len());
    }

    #[test]
    fn user_env_wins_over_the_profile() {
        let o = Options::new()
            .cli_profile(CliProfile::Lean)
            .env("DISABLE_TELEMETRY", "0")
            .env_remove("DISABLE_AUTOUPDATER");
        // Applied in order: the user's entries come after the profile's.
        let env = o.to_env();
        let last = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(last("DISABLE_TELEMETRY"), Some(Some("0".into())));
        assert_eq!(last("DISABLE_AUTOUPDATER"), Some(None));
        assert_eq!(last("DISABLE_GROWTHBOOK"), Some(Some("1".into())));
    }

    #[test]
    fn hosting_uses_lean_unless_a_profile_is_named() {
        assert_eq!(Options::new().cli_profile_value(), None);
        assert_eq!(
            Options::new().hosted().cli_profile_value(),
            Some(CliProfile::Lean)
        );
        let named = Options::new().cli_profile(CliProfile::Default).hosted();
        assert_eq!(named.cli_profile_value(), Some(CliProfile::Default));
        assert!(named.cli_switches().is_empty());
    }

    #[test]
    fn enums_are_spelled_in_one_place_and_parse_back() {
        use crate::options::{Effort, SettingSource};
        for m in PermissionMode::ALL {
            assert_eq!(m.to_string().parse::<PermissionMode>(), Ok(*m));
        }
        for e in Effort::ALL {
            assert_eq!(e.as_str().parse::<Effort>(), Ok(*e));
        }
        for s in SettingSource::ALL {
            assert_eq!(s.as_str().parse::<SettingSource>(), Ok(*s));
        }
        let err = "acceptedits"
            .parse::<PermissionMode>()
            .expect_err("wrong case");
        assert_eq!(
            err.to_string(),
            "\"acceptedits\" is not a valid permission mode; expected one of: default, \
             acceptEdits, plan, bypassPermissions, dontAsk, auto"
        );
    }

    #[test]
    fn max_api_retries_sets_the_cli_variable() {
        let env = Options::new().max_api_retries(2).to_env();
        assert!(env.contains(&("CLAUDE_CODE_MAX_RETRIES".into(), Some("2".into()))));
        assert!(!Options::new()
            .to_env()
            .iter()
            .any(|(k, _)| k == "CLAUDE_CODE_MAX_RETRIES"));
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

    #[test]
    fn fallback_model_and_agent_flags() {
        let o = Options::new().fallback_model("haiku").agent("reviewer");
        assert_eq!(extra(&o), ["--fallback-model=haiku", "--agent=reviewer"]);
    }

    #[test]
    fn thinking_flags() {
        assert_eq!(
            extra(&Options::new().thinking(Thinking::Adaptive)),
            ["--thinking=adaptive"]
        );
        assert_eq!(
            extra(&Options::new().thinking(Thinking::Disabled)),
            ["--thinking=disabled"]
        );
        assert_eq!(
            extra(&Options::new().max_thinking_tokens(2048)),
            ["--max-thinking-tokens=2048"]
        );
    }

    #[test]
    fn effort_betas_budget_flags() {
        let o = Options::new()
            .effort(Effort::High)
            .betas(["a-1", "b-2"])
            .max_budget_usd(0.5);
        assert_eq!(
            extra(&o),
            ["--effort=high", "--betas=a-1,b-2", "--max-budget-usd=0.5"]
        );
    }

    #[test]
    fn tools_flag_default_none_and_list() {
        assert_eq!(
            extra(&Options::new().tools(Tools::Default)),
            ["--tools=default"]
        );
        assert_eq!(extra(&Options::new().tools(Tools::None)), ["--tools="]);
        assert_eq!(
            extra(&Options::new().tools(Tools::List(vec!["Read".into(), "Grep".into()]))),
            ["--tools=Read,Grep"]
        );
    }

    #[test]
    fn add_dir_and_plugin_dir_repeat() {
        let o = Options::new().add_dir("/a").add_dir("/b").plugin_dir("/p");
        assert_eq!(
            extra(&o),
            ["--add-dir=/a", "--add-dir=/b", "--plugin-dir=/p"]
        );
    }

    #[test]
    fn permission_prompt_tool_and_skip_permissions_flags() {
        assert_eq!(
            extra(&Options::new().permission_prompt_tool("mcp__p__ask")),
            ["--permission-prompt-tool=mcp__p__ask"]
        );
        assert_eq!(
            extra(&Options::new().dangerously_skip_permissions(true)),
            ["--dangerously-skip-permissions"]
        );
    }

    #[test]
    fn external_and_in_process_mcp_servers_share_one_config() {
        let o = Options::new()
            .mcp_server_config("fs", McpServerConfig::stdio("mcp-fs", ["--root", "/srv"]))
            .mcp_server_config("web", McpServerConfig::http("http://127.0.0.1:1/mcp"))
            .mcp_server("calc", vec![])
            .mcp_config("/etc/mcp.json")
            .strict_mcp_config(true);
        let a = extra(&o);
        assert_eq!(a.len(), 3, "{a:?}");
        let config: serde_json::Value =
            serde_json::from_str(a[0].strip_prefix("--mcp-config=").expect("flag")).expect("json");
        assert_eq!(
            config,
            json!({"mcpServers": {
                "fs": {"type": "stdio", "command": "mcp-fs", "args": ["--root", "/srv"]},
                "web": {"type": "http", "url": "http://127.0.0.1:1/mcp"},
                "calc": {"type": "sdk", "name": "calc"}
            }})
        );
        assert_eq!(a[1], "--mcp-config=/etc/mcp.json");
        assert_eq!(a[2], "--strict-mcp-config");
    }

    #[test]
    fn settings_path_json_and_sandbox_merge() {
        assert_eq!(
            extra(&Options::new().settings(Settings::Path("/s.json".into()))),
            ["--settings=/s.json"]
        );
        let o = Options::new()
            .settings(Settings::Json(json!({"model": "x"})))
            .sandbox(SandboxSettings::enabled());
        let a = extra(&o);
        let v: serde_json::Value =
            serde_json::from_str(a[0].strip_prefix("--settings=").expect("flag")).expect("json");
        assert_eq!(v, json!({"model": "x", "sandbox": {"enabled": true}}));
        assert_eq!(
            extra(&Options::new().sandbox(SandboxSettings::enabled())),
            [r#"--settings={"sandbox":{"enabled":true}}"#]
        );
    }

    #[test]
    fn setting_sources_flag_including_empty() {
        assert_eq!(
            extra(&Options::new().setting_sources([SettingSource::User, SettingSource::Project])),
            ["--setting-sources=user,project"]
        );
        assert_eq!(
            extra(&Options::new().setting_sources([])),
            ["--setting-sources="]
        );
    }

    #[test]
    fn session_flags() {
        let o = Options::new()
            .resume("abc")
            .resume_session_at("u-1")
            .fork_session(true)
            .session_id("0000-1");
        assert_eq!(
            extra(&o),
            [
                "--resume=abc",
                "--resume-session-at=u-1",
                "--fork-session",
                "--session-id=0000-1"
            ]
        );
        assert_eq!(
            extra(&Options::new().continue_conversation(true)),
            ["--continue"]
        );
        assert_eq!(
            extra(&Options::new().no_session_persistence(true)),
            ["--no-session-persistence"]
        );
    }

    #[test]
    fn json_schema_flag_and_derived_schema() {
        let o = Options::new().json_schema(json!({"type": "object"}));
        assert_eq!(extra(&o), [r#"--json-schema={"type":"object"}"#]);
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Answer {
            value: i64,
        }
        let a = extra(&Options::new().output_type::<Answer>());
        let schema: serde_json::Value =
            serde_json::from_str(a[0].strip_prefix("--json-schema=").expect("flag")).expect("json");
        assert_eq!(schema["properties"]["value"]["type"], "integer");
    }

    #[test]
    fn replay_slash_and_debug_flags() {
        let o = Options::new()
            .replay_user_messages(true)
            .disable_slash_commands(true)
            .debug(Some("api,hooks"))
            .debug_file("/tmp/d.log");
        assert_eq!(
            extra(&o),
            [
                "--replay-user-messages",
                "--disable-slash-commands",
                "--debug=api,hooks",
                "--debug-file=/tmp/d.log"
            ]
        );
        assert_eq!(extra(&Options::new().debug(None)), ["--debug"]);
    }

    #[test]
    fn file_checkpointing_is_an_env_var() {
        let o = Options::new().enable_file_checkpointing(true);
        assert!(extra(&o).is_empty());
        assert!(o.to_env().contains(&(
            "CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING".into(),
            Some("true".into())
        )));
    }

    #[test]
    fn agents_go_in_initialize_not_argv() {
        let o = Options::new().agents([(
            "reviewer",
            AgentDefinition::new("reviews", "You review").model("haiku"),
        )]);
        assert!(extra(&o).is_empty());
        let init = serde_json::to_value(o.initialize_request()).expect("json");
        assert_eq!(
            init["agents"],
            json!({"reviewer": {"description": "reviews", "prompt": "You review", "model": "haiku"}})
        );
    }

    #[test]
    fn minimal_env_keeps_only_the_allow_list() {
        let host: Vec<(std::ffi::OsString, std::ffi::OsString)> = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/a"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("LC_CTYPE", "C.UTF-8"),
            ("TERM", "xterm"),
            ("TMPDIR", "/tmp/a"),
            ("ANTHROPIC_API_KEY", "sk-ant-real"),
            ("ANTHROPIC_AUTH_TOKEN", "tok"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
            ("GITHUB_TOKEN", "gh"),
            ("PATHOLOGICAL", "x"),
            ("XLC_ALL", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let o = Options::new().minimal_env();
        let kept = o.allow_listed_env(host.clone()).expect("allow-listed");
        let names: Vec<&str> = kept.iter().filter_map(|(k, _)| k.to_str()).collect();
        assert_eq!(
            names,
            ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TMPDIR"]
        );
        // The SDK default inherits everything.
        assert!(Options::new().allow_listed_env(host).is_none());
        // Set variables go on top; the SDK's own entries stay.
        let env = o.env("ANTHROPIC_API_KEY", "sk-proxy-token").to_env();
        assert!(env.contains(&("ANTHROPIC_API_KEY".into(), Some("sk-proxy-token".into()))));
        assert!(Options::new().minimal_env().validate().is_ok());
        assert!(Options::new().inherit_env(["*"]).validate().is_err());
    }

    #[test]
    fn inherit_env_allow_list_is_reported_for_spawn() {
        let o = Options::new().inherit_env(["PATH"]);
        assert_eq!(o.inherited_env(), Some(&["PATH".to_string()][..]));
        assert_eq!(Options::new().inherited_env(), None);
    }

    #[test]
    fn bytes_the_os_cannot_pass_are_invalid_options_naming_the_option() {
        for (opts, needle) in [
            (Options::new().env("", "x"), "name is empty"),
            (Options::new().env("A=B", "x"), "\"A=B\""),
            (Options::new().env("A\nB", "x"), "variable name"),
            (Options::new().env("A\0B", "x"), "variable name"),
            (Options::new().env("KEY", "a\nb"), "value of KEY"),
            (Options::new().env("KEY", "a\0b"), "value of KEY"),
            (Options::new().env("KEY", "a\rb"), "value of KEY"),
            (Options::new().inherit_env(["PA=TH"]), "inherit_env"),
            (Options::new().model("op\0us"), "--model"),
            (Options::new().system_prompt("be\0nice"), "--system-prompt"),
            (
                Options::new().append_system_prompt("x\0"),
                "--append-system-prompt",
            ),
            (Options::new().fallback_model("f\0"), "--fallback-model"),
            (Options::new().allowed_tools(["Ba\0sh"]), "--allowedTools"),
            (Options::new().cwd("/tmp/a\0b"), "cwd"),
            (Options::new().cli_path("/bin/cl\0aude"), "cli_path"),
        ] {
            match opts.validate() {
                Err(Error::InvalidOptions(m)) => assert!(m.contains(needle), "{needle}: {m}"),
                other => panic!("{needle}: expected InvalidOptions, got {other:?}"),
            }
        }
        // Ordinary values pass.
        Options::new()
            .env("KEY", "value with spaces = and ünïcode")
            .model("sonnet")
            .validate()
            .expect("valid");
    }

    #[test]
    fn bad_combinations_are_errors_before_spawn() {
        let cb = || Options::new().can_use_tool(|_| async { PermissionResult::allow() });
        for (opts, needle) in [
            (cb().permission_prompt_tool("x"), "mutually exclusive"),
            (Options::new().fork_session(true), "fork_session"),
            (Options::new().resume_session_at("u"), "resume_session_at"),
            (
                Options::new().resume("a").continue_conversation(true),
                "mutually exclusive",
            ),
            (
                Options::new().model("a").fallback_model("a"),
                "fallback_model",
            ),
            (Options::new().max_budget_usd(-1.0), "max_budget_usd"),
            (
                Options::new()
                    .settings(Settings::Path("/x".into()))
                    .sandbox(SandboxSettings::enabled()),
                "sandbox",
            ),
            (
                Options::new()
                    .mcp_server_config("a", McpServerConfig::http("http://x"))
                    .mcp_server("a", vec![]),
                "unique",
            ),
        ] {
            let err = opts.validate().expect_err(needle).to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn hook_registration_reaches_initialize() {
        let o = Options::new().hook(HookEvent::Stop, None, |_| async { HookOutput::none() });
        let init = serde_json::to_value(o.initialize_request()).expect("json");
        assert_eq!(
            init["hooks"]["Stop"][0]["hookCallbackIds"],
            json!(["hook_0"])
        );
    }
}
