//! The command's configuration (it lives here, not in the SDK: only the command reads
//! it): a `claude-code.toml` file layered with the environment and command-line flags,
//! turned into session [`Options`].
//!
//! Layers, lowest first: built-in defaults < the file < the environment < flags
//! ([`Overrides`]). The file is the one named by [`ConfigLoader::file`], else by
//! `CLAUDE_CODE_CONFIG`, else `./claude-code.toml` when it exists. Unknown keys and bad
//! values are errors that name the file, line and key. Every resolved value remembers
//! where it came from ([`Config::origin`]), so tools can explain themselves. Spawning the
//! CLI is left to the session; this module only decides what to spawn it with.
//!
//! `ConfigLoader::new().overrides(flags).load()?.to_options()` is what every subcommand
//! starts from.
//!
//! A file with every key:
//!
//! ```toml
//! api_key_env = "ANTHROPIC_API_KEY"   # the variable holding the API key
//! model = "sonnet"
//! cli_path = "bundled"                # "auto" | "bundled" | "global" | a path
//! cli_version = "2.1.332"             # what `claude-code install` installs
//! cli_dir = "bin"                     # bundled directory (relative to this file)
//! system_prompt = "You review Rust"
//! append_system_prompt = "Be brief"
//! max_turns = 5
//! permission_mode = "acceptEdits"     # default | acceptEdits | plan | bypassPermissions | dontAsk | auto
//! allowed_tools = ["Read", "Bash(git *)"]
//! disallowed_tools = ["WebFetch"]
//! cwd = "/srv/project"
//! cli_profile = "lean"                # default | lean | minimal (see CliProfile)
//!
//! # `claude-code serve` (see the host module): the host, its supervisor and what it starts
//! [serve]
//! listen = "127.0.0.1:8787"           # also CLAUDE_CODE_LISTEN, --listen
//! data_dir = "/var/lib/claude-code"   # also CLAUDE_CODE_DATA_DIR, --data-dir; default
//!                                     # $XDG_DATA_HOME/claude-code or ~/.local/share/claude-code
//! max_body_bytes = 1048576            # larger request bodies are 413
//! spares = 1                          # warm sessions for POST /v1/query
//! idle_timeout_secs = 600             # dynamic sessions hibernate after idling this long
//! drain_timeout_secs = 30             # SIGTERM: how long running turns may finish
//! on_disconnect = "finish"            # finish | interrupt: a turn whose client went away
//!
//! [supervisor]
//! strategy = "one_for_one"            # one_for_one | one_for_all | rest_for_one
//! max_restarts = 3                    # restarts within max_seconds before it gives up
//! max_seconds = 5
//!
//! [admission]                         # limits on CLI processes (all optional)
//! max_live = 64                       # CLIs alive at once
//! max_spawns = 2                      # CLIs starting at once
//! mem_floor_mib = 1024                # refuse new CLIs below this MemAvailable
//! wait_timeout_secs = 60              # wait for a live slot
//!
//! [sandbox]                           # confinement of every CLI (Linux; bubblewrap)
//! mode = "auto"                       # off | auto (confine when possible) | required
//! network = "proxy-only"              # proxy-only (only the Messages API) | host
//! work_root = "/srv/claude/work"      # default: <data_dir>/work; one dir per session
//! hide = ["/etc/claude-code"]         # more paths the CLIs must not read
//! read_write = []                     # more writable paths
//! read_only = []                      # paths readable again under a hidden one
//! bwrap = "/usr/bin/bwrap"            # default: bwrap in PATH
//!
//! [resources]                         # per-CLI limits, on by default
//! memory_bytes = 4294967296           # the CLI and all it starts (cgroup)
//! pids = 1024                         # processes and threads (cgroup)
//! open_files = 4096                   # per process (RLIMIT_NOFILE)
//! cpu_seconds = 3600                  # per process (RLIMIT_CPU; default none)
//! processes = 512                     # RLIMIT_NPROC (default none; root ignores it)
//! required = false                    # true: refuse to start without a cgroup
//! enabled = true                      # false: no limits at all
//!
//! [[sessions]]                        # named sessions started with the host
//! name = "assistant"                  # unique per tenant
//! tenant = "default"                  # default: the anonymous tenant
//! restart = "permanent"               # permanent | transient | temporary
//! idle_timeout_secs = 900             # hibernate when idle (default: never)
//! budget_usd = 5.0                    # refuse turns past this spend
//! system_prompt = "You answer questions about our API"
//! # ...and any of model, append_system_prompt, max_turns, permission_mode, allowed_tools,
//! # disallowed_tools, cwd, cli_profile, over the top-level values (lists replace them)
//!
//! [[pools]]                           # served at POST /v1/pools/{name}/messages
//! name = "workers"
//! size = 4                            # members (default 2)
//! warm_spares = 1                     # default 0
//! max_queue = 64                      # waiting requests; more are 429
//! queue_timeout_secs = 30             # longer waits are 429
//! max_turns = 3                       # the same session keys as [[sessions]]
//!
//! [templates.reviewer]                # POST /v1/sessions {"template": "reviewer"}
//! system_prompt = "You review Rust"   # the same session keys as [[sessions]]
//!
//! [limits]                            # every tenant's limits (default unlimited)
//! max_sessions = 20
//! max_concurrent_turns = 4
//! requests_per_minute = 600
//! max_spend_usd = 50.0
//!
//! [tenants.acme]                      # one tenant's overrides of [limits]
//! max_sessions = 5
//! ```
//!
//! `cli_profile` defaults to `lean` here, as in the hosting layer: an application
//! configured through this module starts its CLIs without side traffic and background
//! work (a bare [`Options`] keeps the CLI's defaults). Set it to `default` to turn that
//! off, or `minimal` for the behaviour-changing switches too.

mod host;

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    num::NonZeroU32,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use claude_code::cli::{
    binary_in, CliPath, CliSource, CliVersion, ResolvedCli, PINNED_CLI_VERSION,
};
use claude_code::options::{CliProfile, Options, PermissionMode};

pub use host::{check_nats_url, HostSettings, LimitSettings, HOST_KEYS};

/// The file name looked for in the current directory.
pub const CONFIG_FILE_NAME: &str = "claude-code.toml";

/// Environment variable choosing the [`CliProfile`] (`default`, `lean`, `minimal`).
pub const CLI_PROFILE_ENV: &str = "CLAUDE_CODE_CLI_PROFILE";

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "CLAUDE_CODE_CONFIG";

/// The default name of the variable holding the API key.
pub const DEFAULT_API_KEY_ENV: &str = "ANTHROPIC_API_KEY";

/// What can go wrong loading the configuration. Each message names the file and line,
/// or the environment variable, and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A key in the file is unknown or has a bad value.
    #[error("{}:{line}:{column}: {}{message}", path.display(), key_prefix(.key))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key, when one could be identified.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// A flag has a bad value.
    #[error("--{flag}: {message}")]
    Flag {
        /// The flag, without dashes.
        flag: String,
        /// What is wrong.
        message: String,
    },
}

fn key_prefix(key: &Option<String>) -> String {
    key.as_deref()
        .map(|k| format!("key `{k}`: "))
        .unwrap_or_default()
}

/// Where a resolved value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The config file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag (or an explicit override in code).
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(v) => write!(f, "env {v}"),
            Origin::Flag => f.write_str("flag"),
        }
    }
}

/// The `cli_path` setting: which `claude` binary to use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CliSetting {
    /// `CLAUDE_CODE_CLI`, then the bundled directory, then the global install.
    #[default]
    Auto,
    /// Only the bundled directory (`cli_dir`, or the SDK's default bundled directory).
    Bundled,
    /// Only `PATH` and the usual global install locations.
    Global,
    /// Exactly this binary.
    Path(PathBuf),
}

impl CliSetting {
    /// Parses `auto`, `bundled`, `global`, or anything else as a path.
    pub fn parse(s: &str) -> CliSetting {
        match s {
            "auto" => CliSetting::Auto,
            "bundled" => CliSetting::Bundled,
            "global" => CliSetting::Global,
            path => CliSetting::Path(PathBuf::from(path)),
        }
    }
}

impl fmt::Display for CliSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliSetting::Auto => f.write_str("auto"),
            CliSetting::Bundled => f.write_str("bundled"),
            CliSetting::Global => f.write_str("global"),
            CliSetting::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Flag-level overrides: the top layer. Unset fields leave lower layers alone.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Overrides {
    /// `--model`.
    pub model: Option<String>,
    /// `--system-prompt`.
    pub system_prompt: Option<String>,
    /// `--cli`: `auto`, `bundled`, `global` or a path.
    pub cli_path: Option<String>,
    /// `--cli-dir`.
    pub cli_dir: Option<PathBuf>,
    /// `--cli-version`.
    pub cli_version: Option<String>,
    /// `--max-turns`.
    pub max_turns: Option<u32>,
    /// `--permission-mode`.
    pub permission_mode: Option<String>,
    /// `--allowed-tools` (replaces lower layers when non-empty).
    pub allowed_tools: Vec<String>,
    /// `--cwd`.
    pub cwd: Option<PathBuf>,
    /// `--cli-profile`: `default`, `lean` or `minimal`.
    pub cli_profile: Option<String>,
    /// `serve --listen`.
    pub listen: Option<SocketAddr>,
    /// `serve --data-dir`.
    pub data_dir: Option<PathBuf>,
}

/// The resolved configuration. Build it with [`Config::load`] or [`ConfigLoader`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Name of the environment variable holding the API key (default `ANTHROPIC_API_KEY`).
    pub api_key_env: String,
    /// Whether that variable is set and non-empty (its value is never stored).
    pub api_key_present: bool,
    /// Model alias or name.
    pub model: Option<String>,
    /// Which binary to run.
    pub cli_path: CliSetting,
    /// The CLI version to install and expect (default [`PINNED_CLI_VERSION`]).
    pub cli_version: String,
    /// The bundled directory, when configured.
    pub cli_dir: Option<PathBuf>,
    /// Replacement system prompt.
    pub system_prompt: Option<String>,
    /// Text appended to the system prompt.
    pub append_system_prompt: Option<String>,
    /// Most model round-trips per turn.
    pub max_turns: Option<u32>,
    /// Permission mode.
    pub permission_mode: Option<PermissionMode>,
    /// Tools allowed without asking.
    pub allowed_tools: Vec<String>,
    /// Tools the model may not use.
    pub disallowed_tools: Vec<String>,
    /// Working directory of the CLI.
    pub cwd: Option<PathBuf>,
    /// Which of the CLI's start-up and background switches are on (default
    /// [`CliProfile::Lean`]).
    pub cli_profile: CliProfile,
    /// What `claude-code serve` runs: the `[serve]`, `[supervisor]`, `[admission]`,
    /// `[[sessions]]`, `[[pools]]`, `[templates.*]`, `[limits]` and `[tenants.*]` sections.
    pub host: HostSettings,
    origins: BTreeMap<&'static str, Origin>,
}

impl Default for Config {
    /// Built-in defaults: key in `ANTHROPIC_API_KEY`, CLI found automatically, the pinned
    /// CLI version, the [`CliProfile::Lean`] profile, everything else unset (the CLI's
    /// own defaults).
    fn default() -> Self {
        Config {
            file: None,
            api_key_env: DEFAULT_API_KEY_ENV.to_string(),
            api_key_present: false,
            model: None,
            cli_path: CliSetting::Auto,
            cli_version: PINNED_CLI_VERSION.to_string(),
            cli_dir: None,
            system_prompt: None,
            append_system_prompt: None,
            max_turns: None,
            permission_mode: None,
            allowed_tools: Vec::new(),
            disallowed_tools: Vec::new(),
            cwd: None,
            cli_profile: CliProfile::Lean,
            host: HostSettings::default(),
            origins: BTreeMap::new(),
        }
    }
}

/// The keys of the file, in display order.
pub const KEYS: [&str; 13] = [
    "api_key_env",
    "model",
    "cli_path",
    "cli_version",
    "cli_dir",
    "system_prompt",
    "append_system_prompt",
    "max_turns",
    "permission_mode",
    "allowed_tools",
    "disallowed_tools",
    "cwd",
    "cli_profile",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    api_key_env: Option<String>,
    model: Option<String>,
    cli_path: Option<String>,
    cli_version: Option<toml::Spanned<String>>,
    cli_dir: Option<PathBuf>,
    system_prompt: Option<String>,
    append_system_prompt: Option<String>,
    max_turns: Option<NonZeroU32>,
    permission_mode: Option<FileMode>,
    allowed_tools: Option<Vec<String>>,
    disallowed_tools: Option<Vec<String>>,
    cwd: Option<PathBuf>,
    cli_profile: Option<FileProfile>,
    serve: Option<host::FileServe>,
    supervisor: Option<host::FileSupervisor>,
    admission: Option<host::FileAdmission>,
    sandbox: Option<host::FileSandbox>,
    resources: Option<host::FileResources>,
    sessions: Option<Vec<host::FileSession>>,
    pools: Option<Vec<host::FilePool>>,
    templates: Option<BTreeMap<toml::Spanned<String>, host::FileTemplate>>,
    limits: Option<host::FileLimits>,
    tenants: Option<BTreeMap<toml::Spanned<String>, host::FileLimits>>,
    audit: Option<host::FileAudit>,
    cluster: Option<host::FileCluster>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileProfile {
    Default,
    Lean,
    Minimal,
}

impl From<FileProfile> for CliProfile {
    fn from(p: FileProfile) -> Self {
        match p {
            FileProfile::Default => CliProfile::Default,
            FileProfile::Lean => CliProfile::Lean,
            FileProfile::Minimal => CliProfile::Minimal,
        }
    }
}

/// A permission mode in the file, parsed with the SDK's one spelling of the modes (the
/// error keeps the file's line and key).
#[derive(Debug, Clone, Copy)]
struct FileMode(PermissionMode);

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(FileMode).map_err(serde::de::Error::custom)
    }
}

fn valid_version(v: &str) -> bool {
    CliVersion::parse(v).is_some_and(|p| p.to_string() == v)
}

/// Builds a [`Config`] from chosen layers. [`ConfigLoader::new`] uses the process
/// environment; tests can inject their own with [`ConfigLoader::env_vars`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigLoader {
    file: Option<PathBuf>,
    no_file: bool,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<PathBuf>,
    overrides: Overrides,
}

impl Default for ConfigLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigLoader {
    /// Defaults, the file from `CLAUDE_CODE_CONFIG` or `./claude-code.toml`, the process
    /// environment, no overrides.
    pub fn new() -> Self {
        ConfigLoader {
            file: None,
            no_file: false,
            env: None,
            cwd: None,
            overrides: Overrides::default(),
        }
    }

    /// Read this file (it must exist), whatever `CLAUDE_CODE_CONFIG` says.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Read no file at all.
    pub fn no_file(mut self) -> Self {
        self.no_file = true;
        self
    }

    /// Use these variables instead of the process environment (tests).
    #[cfg(test)]
    pub fn env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Flag-level overrides (the top layer).
    pub fn overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = overrides;
        self
    }

    fn var(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
        .filter(|v| !v.is_empty())
    }

    /// Resolves every layer.
    pub fn load(self) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(path) = self.config_path() {
            config.apply_file(&path)?;
        }
        config.apply_env(&self)?;
        config.apply_host_env(&self)?;
        config.apply_overrides(&self.overrides)?;
        config.default_data_dir(&self);
        config.api_key_present = self.var(&config.api_key_env).is_some();
        Ok(config)
    }

    fn config_path(&self) -> Option<PathBuf> {
        if self.no_file {
            return None;
        }
        if let Some(p) = &self.file {
            return Some(p.clone());
        }
        if let Some(p) = self.var(CONFIG_ENV) {
            return Some(PathBuf::from(p));
        }
        let dir = match &self.cwd {
            Some(d) => d.clone(),
            None => std::env::current_dir().ok()?,
        };
        let candidate = dir.join(CONFIG_FILE_NAME);
        candidate.is_file().then_some(candidate)
    }
}

impl Config {
    /// Where the value of `key` (one of [`KEYS`] or [`HOST_KEYS`]) came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    fn set_origin(&mut self, key: &'static str, origin: Origin) {
        self.origins.insert(key, origin);
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| {
            invalid(
                path,
                &text,
                e.span().map_or(0, |s| s.start),
                e.message().to_string(),
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let origin = Origin::File(path.to_path_buf());
        self.file = Some(path.to_path_buf());
        macro_rules! take {
            ($key:ident, $value:expr) => {
                if let Some(v) = $value {
                    self.$key = v;
                    self.set_origin(stringify!($key), origin.clone());
                }
            };
        }
        if let Some(v) = &file.cli_version {
            if !valid_version(v.get_ref()) {
                return Err(invalid(
                    path,
                    &text,
                    v.span().start,
                    format!("expected a version like {PINNED_CLI_VERSION}"),
                ));
            }
        }
        take!(api_key_env, file.api_key_env);
        take!(model, file.model.map(Some));
        take!(
            cli_path,
            file.cli_path
                .as_deref()
                .map(|s| match CliSetting::parse(s) {
                    CliSetting::Path(p) if p.is_relative() => CliSetting::Path(base.join(p)),
                    other => other,
                })
        );
        take!(cli_version, file.cli_version.map(|v| v.into_inner()));
        take!(cli_dir, file.cli_dir.map(|d| Some(base.join(d))));
        take!(system_prompt, file.system_prompt.map(Some));
        take!(append_system_prompt, file.append_system_prompt.map(Some));
        take!(max_turns, file.max_turns.map(|n| Some(n.get())));
        take!(permission_mode, file.permission_mode.map(|m| Some(m.0)));
        take!(allowed_tools, file.allowed_tools);
        take!(disallowed_tools, file.disallowed_tools);
        take!(cwd, file.cwd.map(|d| Some(base.join(d))));
        take!(cli_profile, file.cli_profile.map(CliProfile::from));
        let sections = host::FileHost {
            serve: file.serve,
            supervisor: file.supervisor,
            admission: file.admission,
            sandbox: file.sandbox,
            resources: file.resources,
            sessions: file.sessions,
            pools: file.pools,
            templates: file.templates,
            limits: file.limits,
            tenants: file.tenants,
            audit: file.audit,
            cluster: file.cluster,
        };
        self.apply_host_file(sections, path, &text, base)
    }

    fn apply_env(&mut self, loader: &ConfigLoader) -> Result<(), ConfigError> {
        let env = |var: &'static str| loader.var(var).map(|v| (v, Origin::Env(var.into())));
        if let Some((v, o)) = env("CLAUDE_CODE_API_KEY_ENV") {
            self.api_key_env = v;
            self.set_origin("api_key_env", o);
        }
        if let Some((v, o)) = env("CLAUDE_MODEL") {
            self.model = Some(v);
            self.set_origin("model", o);
        }
        if let Some((v, o)) = env(claude_code::cli::CLI_ENV) {
            self.cli_path = CliSetting::Path(v.into());
            self.set_origin("cli_path", o);
        }
        if let Some((v, o)) = env("CLAUDE_CODE_CLI_VERSION") {
            if !valid_version(&v) {
                return Err(ConfigError::Env {
                    var: "CLAUDE_CODE_CLI_VERSION".into(),
                    message: format!("expected a version like {PINNED_CLI_VERSION}, got {v:?}"),
                });
            }
            self.cli_version = v;
            self.set_origin("cli_version", o);
        }
        if let Some((v, o)) = env(claude_code::cli::BUNDLED_DIR_ENV) {
            self.cli_dir = Some(v.into());
            self.set_origin("cli_dir", o);
        }
        if let Some((v, o)) = env("CLAUDE_CODE_SYSTEM_PROMPT") {
            self.system_prompt = Some(v);
            self.set_origin("system_prompt", o);
        }
        if let Some((v, o)) = env("CLAUDE_CODE_APPEND_SYSTEM_PROMPT") {
            self.append_system_prompt = Some(v);
            self.set_origin("append_system_prompt", o);
        }
        if let Some((v, o)) = env("CLAUDE_CODE_MAX_TURNS") {
            let n = v.parse::<NonZeroU32>().map_err(|_| ConfigError::Env {
                var: "CLAUDE_CODE_MAX_TURNS".into(),
                message: format!("expected a whole number of at least 1, got {v:?}"),
            })?;
            self.max_turns = Some(n.get());
            self.set_origin("max_turns", o);
        }
        if let Some((v, o)) = env("CLAUDE_CODE_PERMISSION_MODE") {
            let mode = v.parse::<PermissionMode>().map_err(|e| ConfigError::Env {
                var: "CLAUDE_CODE_PERMISSION_MODE".into(),
                message: e.to_string(),
            })?;
            self.permission_mode = Some(mode);
            self.set_origin("permission_mode", o);
        }
        if let Some((v, o)) = env("CLAUDE_CODE_ALLOWED_TOOLS") {
            self.allowed_tools = split_list(&v);
            self.set_origin("allowed_tools", o);
        }
        if let Some((v, o)) = env("CLAUDE_CODE_DISALLOWED_TOOLS") {
            self.disallowed_tools = split_list(&v);
            self.set_origin("disallowed_tools", o);
        }
        if let Some((v, o)) = env("CLAUDE_CODE_CWD") {
            self.cwd = Some(v.into());
            self.set_origin("cwd", o);
        }
        if let Some((v, o)) = env(CLI_PROFILE_ENV) {
            self.cli_profile = v
                .parse()
                .map_err(|e: claude_code::options::UnknownProfile| ConfigError::Env {
                    var: CLI_PROFILE_ENV.into(),
                    message: e.to_string(),
                })?;
            self.set_origin("cli_profile", o);
        }
        Ok(())
    }

    fn apply_overrides(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        if let Some(v) = &o.model {
            self.model = Some(v.clone());
            self.set_origin("model", Origin::Flag);
        }
        if let Some(v) = &o.system_prompt {
            self.system_prompt = Some(v.clone());
            self.set_origin("system_prompt", Origin::Flag);
        }
        if let Some(v) = &o.cli_path {
            self.cli_path = CliSetting::parse(v);
            self.set_origin("cli_path", Origin::Flag);
        }
        if let Some(v) = &o.cli_dir {
            self.cli_dir = Some(v.clone());
            self.set_origin("cli_dir", Origin::Flag);
        }
        if let Some(v) = &o.cli_version {
            if !valid_version(v) {
                return Err(ConfigError::Flag {
                    flag: "cli-version".into(),
                    message: format!("expected a version like {PINNED_CLI_VERSION}, got {v:?}"),
                });
            }
            self.cli_version = v.clone();
            self.set_origin("cli_version", Origin::Flag);
        }
        if let Some(n) = o.max_turns {
            if n == 0 {
                return Err(ConfigError::Flag {
                    flag: "max-turns".into(),
                    message: "must be at least 1".into(),
                });
            }
            self.max_turns = Some(n);
            self.set_origin("max_turns", Origin::Flag);
        }
        if let Some(v) = &o.permission_mode {
            self.permission_mode =
                Some(v.parse::<PermissionMode>().map_err(|e| ConfigError::Flag {
                    flag: "permission-mode".into(),
                    message: e.to_string(),
                })?);
            self.set_origin("permission_mode", Origin::Flag);
        }
        if !o.allowed_tools.is_empty() {
            self.allowed_tools = o.allowed_tools.clone();
            self.set_origin("allowed_tools", Origin::Flag);
        }
        if let Some(v) = &o.cwd {
            self.cwd = Some(v.clone());
            self.set_origin("cwd", Origin::Flag);
        }
        if let Some(v) = &o.cli_profile {
            self.cli_profile =
                v.parse().map_err(
                    |e: claude_code::options::UnknownProfile| ConfigError::Flag {
                        flag: "cli-profile".into(),
                        message: e.to_string(),
                    },
                )?;
            self.set_origin("cli_profile", Origin::Flag);
        }
        if let Some(v) = o.listen {
            self.host.listen = v;
            self.set_origin("serve.listen", Origin::Flag);
        }
        if let Some(v) = &o.data_dir {
            self.host.data_dir = Some(v.clone());
            self.set_origin("serve.data_dir", Origin::Flag);
        }
        Ok(())
    }

    /// The resolved value of `key` (one of [`KEYS`] or [`HOST_KEYS`]) as display text;
    /// `None` when unset.
    /// The API key itself is never shown, only the name of its variable.
    pub fn value(&self, key: &str) -> Option<String> {
        let list = |v: &[String]| (!v.is_empty()).then(|| v.join(","));
        match key {
            "api_key_env" => Some(self.api_key_env.clone()),
            "model" => self.model.clone(),
            "cli_path" => Some(self.cli_path.to_string()),
            "cli_version" => Some(self.cli_version.clone()),
            "cli_dir" => self.cli_dir.as_ref().map(|p| p.display().to_string()),
            "system_prompt" => self.system_prompt.clone(),
            "append_system_prompt" => self.append_system_prompt.clone(),
            "max_turns" => self.max_turns.map(|n| n.to_string()),
            "permission_mode" => self.permission_mode.map(|m| m.as_str().to_string()),
            "allowed_tools" => list(&self.allowed_tools),
            "disallowed_tools" => list(&self.disallowed_tools),
            "cwd" => self.cwd.as_ref().map(|p| p.display().to_string()),
            "cli_profile" => Some(self.cli_profile.to_string()),
            key => self.host_value(key),
        }
    }

    /// The [`CliPath`] these settings select. With `cli_dir` set, `bundled` (and `auto`,
    /// when a binary is there) become the explicit binary inside that directory.
    pub fn cli(&self) -> CliPath {
        match (&self.cli_path, &self.cli_dir) {
            (CliSetting::Path(p), _) => CliPath::Explicit(p.clone()),
            (CliSetting::Global, _) => CliPath::Global,
            (CliSetting::Bundled, None) => CliPath::Bundled,
            (CliSetting::Auto, None) => CliPath::Auto,
            (CliSetting::Bundled, Some(dir)) => {
                let [plain, npm] = binary_in(dir);
                CliPath::Explicit(if plain.is_file() { plain } else { npm })
            }
            (CliSetting::Auto, Some(dir)) => match binary_in(dir).into_iter().find(|p| p.is_file())
            {
                Some(p) => CliPath::Explicit(p),
                None => CliPath::Global,
            },
        }
    }

    /// Finds the binary these settings select, labelled with the rule that found it.
    pub fn resolve_cli(&self) -> claude_code::Result<ResolvedCli> {
        let mut resolved = self.cli().resolve()?;
        if let (CliSetting::Auto | CliSetting::Bundled, Some(dir)) = (&self.cli_path, &self.cli_dir)
        {
            if resolved.path.starts_with(dir) {
                resolved.source = CliSource::Bundled;
            }
        }
        Ok(resolved)
    }

    /// Session options with these defaults (the profile always named, so a hosted
    /// session runs with it too). When `api_key_env` names a variable other
    /// than `ANTHROPIC_API_KEY`, its value is passed to the CLI as `ANTHROPIC_API_KEY`.
    pub fn to_options(&self) -> Options {
        let mut o = Options::new()
            .cli_path(self.cli())
            .cli_profile(self.cli_profile);
        if let Some(m) = &self.model {
            o = o.model(m);
        }
        if let Some(p) = &self.system_prompt {
            o = o.system_prompt(p);
        }
        if let Some(p) = &self.append_system_prompt {
            o = o.append_system_prompt(p);
        }
        if let Some(n) = self.max_turns {
            o = o.max_turns(n);
        }
        if let Some(m) = self.permission_mode {
            o = o.permission_mode(m);
        }
        o = o
            .allowed_tools(self.allowed_tools.iter().cloned())
            .disallowed_tools(self.disallowed_tools.iter().cloned());
        if let Some(d) = &self.cwd {
            o = o.cwd(d);
        }
        if self.api_key_env != DEFAULT_API_KEY_ENV {
            if let Ok(key) = std::env::var(&self.api_key_env) {
                o = o.env(DEFAULT_API_KEY_ENV, key);
            }
        }
        o
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// An [`ConfigError::Invalid`] at byte `offset` of `text`, naming the key on that line
/// (or the nearest `key =` line above it, for values spanning lines), prefixed with its
/// section (`supervisor.strategy`, `sessions.name`); an error on a section's header
/// names the section.
fn invalid(path: &Path, text: &str, offset: usize, message: String) -> ConfigError {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let upto = &text[..text[offset..].find('\n').map_or(text.len(), |i| offset + i)];
    let mut key = None;
    let mut section = None;
    for l in upto.lines().rev() {
        let t = l.trim_start();
        if t.starts_with('[') {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or_default();
            section = Some(name.trim().to_string());
            break;
        }
        if key.is_none() {
            key = l.split_once('=').and_then(|(k, _)| {
                let k = k.trim().trim_matches('"');
                (!k.is_empty() && !k.starts_with('#')).then(|| k.to_string())
            });
        }
    }
    let key = match (section, key) {
        (Some(section), Some(key)) => Some(format!("{section}.{key}")),
        (Some(section), None) => Some(section),
        (None, Some(key)) => Some(key),
        (None, None) => {
            let word: String = text[offset..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            (!word.is_empty()).then_some(word)
        }
    };
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        key,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(CONFIG_FILE_NAME);
        std::fs::write(&path, text).expect("write config");
        (dir, path)
    }

    fn load(path: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        ConfigLoader::new()
            .file(path)
            .env_vars(env.iter().copied())
            .load()
    }

    #[test]
    fn pinned_version_matches_repo_file() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../CLAUDE_CLI_VERSION");
        let text = std::fs::read_to_string(&file).expect("read CLAUDE_CLI_VERSION");
        assert_eq!(text.trim(), PINNED_CLI_VERSION);
    }

    #[test]
    fn defaults_without_file_or_env() {
        let c = ConfigLoader::new()
            .no_file()
            .env_vars(Vec::<(String, String)>::new())
            .load()
            .expect("loads");
        assert_eq!(c.cli_version, PINNED_CLI_VERSION);
        assert_eq!(c.cli_path, CliSetting::Auto);
        assert_eq!(c.api_key_env, DEFAULT_API_KEY_ENV);
        assert!(!c.api_key_present);
        assert_eq!(c.origin("model"), Origin::Default);
    }

    #[test]
    fn file_then_env_then_flags() {
        let (_d, path) = write(
            "model = \"file-model\"\nsystem_prompt = \"from file\"\nmax_turns = 3\n\
             permission_mode = \"plan\"\nallowed_tools = [\"Read\"]\n",
        );
        let c = ConfigLoader::new()
            .file(&path)
            .env_vars([
                ("CLAUDE_MODEL", "env-model"),
                ("CLAUDE_CODE_MAX_TURNS", "4"),
                ("ANTHROPIC_API_KEY", "sk-secret"),
            ])
            .overrides(Overrides {
                model: Some("flag-model".into()),
                ..Overrides::default()
            })
            .load()
            .expect("loads");
        assert_eq!(c.model.as_deref(), Some("flag-model"));
        assert_eq!(c.origin("model"), Origin::Flag);
        assert_eq!(c.max_turns, Some(4));
        assert_eq!(
            c.origin("max_turns"),
            Origin::Env("CLAUDE_CODE_MAX_TURNS".into())
        );
        assert_eq!(c.system_prompt.as_deref(), Some("from file"));
        assert_eq!(c.origin("system_prompt"), Origin::File(path.clone()));
        assert_eq!(c.permission_mode, Some(PermissionMode::Plan));
        assert!(c.api_key_present);
        assert!(!format!("{c:?}").contains("sk-secret"));
        let args: Vec<String> = c
            .to_options()
            .to_args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"--model=flag-model".to_string()), "{args:?}");
        assert!(args.contains(&"--max-turns=4".to_string()), "{args:?}");
        assert!(
            args.contains(&"--permission-mode=plan".to_string()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--allowedTools=Read".to_string()),
            "{args:?}"
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let (_d, path) = write("model = \"x\"\n\nmodle = \"typo\"\n");
        let err = load(&path, &[]).expect_err("unknown key");
        let msg = err.to_string();
        assert!(
            matches!(&err, ConfigError::Invalid { line: 3, key: Some(k), .. } if k == "modle"),
            "{err:?}"
        );
        assert!(msg.contains(&format!("{}:3:", path.display())), "{msg}");
        assert!(msg.contains("modle"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        for (text, key, line) in [
            ("model = \"a\"\nmax_turns = \"five\"\n", "max_turns", 2),
            ("max_turns = 0\n", "max_turns", 1),
            ("\n\npermission_mode = \"yolo\"\n", "permission_mode", 3),
            ("cli_version = \"latest\"\n", "cli_version", 1),
            (
                "allowed_tools = [\n  \"Read\",\n  3,\n]\n",
                "allowed_tools",
                3,
            ),
        ] {
            let (_d, path) = write(text);
            let err = load(&path, &[]).expect_err(text);
            assert!(
                matches!(&err, ConfigError::Invalid { line: l, key: Some(k), .. } if k == key && *l == line),
                "{text:?}: {err:?}"
            );
        }
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let err = ConfigLoader::new()
            .no_file()
            .env_vars([("CLAUDE_CODE_PERMISSION_MODE", "yolo")])
            .load()
            .expect_err("bad mode");
        assert!(
            err.to_string().contains("CLAUDE_CODE_PERMISSION_MODE"),
            "{err}"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let (d, path) = write("cli_dir = \"bin\"\ncli_path = \"bundled\"\n");
        let c = load(&path, &[]).expect("loads");
        assert_eq!(c.cli_dir.as_deref(), Some(d.path().join("bin").as_path()));
        assert_eq!(
            c.cli(),
            CliPath::Explicit(
                d.path()
                    .join("bin/node_modules/@anthropic-ai/claude-code/bin/claude.exe")
            )
        );
    }

    #[test]
    fn cli_profile_is_lean_by_default_and_layered() {
        let none = Vec::<(String, String)>::new();
        let c = ConfigLoader::new()
            .no_file()
            .env_vars(none)
            .load()
            .expect("loads");
        assert_eq!(c.cli_profile, CliProfile::Lean);
        assert_eq!(c.value("cli_profile").as_deref(), Some("lean"));
        assert_eq!(c.to_options().cli_profile_value(), Some(CliProfile::Lean));
        let (_d, path) = write("cli_profile = \"minimal\"\n");
        let c = load(&path, &[]).expect("loads");
        assert_eq!(c.cli_profile, CliProfile::Minimal);
        assert_eq!(c.origin("cli_profile"), Origin::File(path.clone()));
        let c = load(&path, &[(CLI_PROFILE_ENV, "default")]).expect("loads");
        assert_eq!(c.cli_profile, CliProfile::Default);
        assert!(c
            .to_options()
            .to_env()
            .iter()
            .all(|(k, _)| k != "DISABLE_TELEMETRY"));
        let c = ConfigLoader::new()
            .file(&path)
            .env_vars([(CLI_PROFILE_ENV, "default")])
            .overrides(Overrides {
                cli_profile: Some("lean".into()),
                ..Overrides::default()
            })
            .load()
            .expect("loads");
        assert_eq!(c.cli_profile, CliProfile::Lean);
        assert_eq!(c.origin("cli_profile"), Origin::Flag);
        let err = load(&path, &[(CLI_PROFILE_ENV, "fast")]).expect_err("bad profile");
        assert!(err.to_string().contains(CLI_PROFILE_ENV), "{err}");
        let (_d, path) = write("cli_profile = \"fast\"\n");
        assert!(
            matches!(load(&path, &[]), Err(ConfigError::Invalid { key: Some(k), .. }) if k == "cli_profile")
        );
    }

    #[test]
    fn config_env_var_names_the_file() {
        let (_d, path) = write("model = \"m\"\n");
        let c = ConfigLoader::new()
            .env_vars([(CONFIG_ENV, path.to_string_lossy().into_owned())])
            .load()
            .expect("loads");
        assert_eq!(c.model.as_deref(), Some("m"));
        assert_eq!(c.file.as_deref(), Some(path.as_path()));
    }
}
