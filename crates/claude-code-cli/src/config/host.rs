//! The host's sections of `claude-code.toml`, read by `claude-code serve`: `[serve]`,
//! `[supervisor]`, `[admission]`, `[sandbox]`, `[resources]`, `[[sessions]]`, `[[pools]]`,
//! `[templates.NAME]`, `[limits]`, `[tenants.NAME]`, `[audit]` and `[cluster]`. Parsed as strictly as the top level (unknown keys and
//! bad values are errors naming the file, line and `section.key`), then checked: names
//! are valid and unique, amounts are positive.
//!
//! `[serve] listen` and `data_dir` also take the environment (`CLAUDE_CODE_LISTEN`,
//! `CLAUDE_CODE_DATA_DIR`) and flags (`--listen`, `--data-dir`) on top.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    num::{NonZeroU32, NonZeroU64, NonZeroUsize},
    path::{Path, PathBuf},
    time::Duration,
};

use claude_code::{
    options::{CliProfile, Options, PermissionMode},
    sandbox::{Fallback, ResourceLimits},
    Admission, Restart, Strategy,
};
use claude_code_serve::{
    cluster::{ClusterConfig, NatsAuth, NatsTls, Placement, SecretSource},
    default_resources, SandboxConfig, SandboxMode, SandboxNetwork,
};
use serde::Deserialize;
use toml::Spanned;

use super::{invalid, Config, ConfigError, ConfigLoader, FileMode, FileProfile, Origin};

/// Where `serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// Environment variable overriding `[serve] listen`.
pub const LISTEN_ENV: &str = "CLAUDE_CODE_LISTEN";

/// Environment variable overriding `[serve] data_dir`.
pub const DATA_DIR_ENV: &str = "CLAUDE_CODE_DATA_DIR";

/// The host's single-valued keys as `section.key`, in display order (see
/// [`Config::value`]).
pub const HOST_KEYS: [&str; 30] = [
    "serve.listen",
    "serve.data_dir",
    "serve.max_body_bytes",
    "serve.spares",
    "serve.idle_timeout_secs",
    "serve.drain_timeout_secs",
    "serve.on_disconnect",
    "serve.credential_proxy",
    "serve.session_budget_usd",
    "serve.session_requests_per_minute",
    "supervisor.strategy",
    "supervisor.max_restarts",
    "supervisor.max_seconds",
    "audit.jsonl",
    "cluster.url",
    "cluster.node_name",
    "cluster.heartbeat_secs",
    "cluster.lease_secs",
    "cluster.pool_ack_secs",
    "cluster.placement",
    "cluster.creds_file",
    "cluster.user",
    "cluster.password_env",
    "cluster.password_file",
    "cluster.token_env",
    "cluster.token_file",
    "cluster.tls",
    "cluster.tls_ca",
    "cluster.tls_cert",
    "cluster.tls_key",
];

/// The host's settings: everything `claude-code serve` needs besides the session options.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostSettings {
    /// Where to listen (default [`DEFAULT_LISTEN`]).
    pub listen: SocketAddr,
    /// Where the state store lives (default `$XDG_DATA_HOME/claude-code`, else
    /// `~/.local/share/claude-code`; `None` only when neither variable is set).
    pub data_dir: Option<PathBuf>,
    /// Largest request body in bytes (default 1 MiB).
    pub max_body_bytes: usize,
    /// Warm sessions kept for `POST /v1/query` (default 1).
    pub spares: usize,
    /// Dynamic sessions hibernate after idling this long (default 600 s).
    pub idle_timeout: Duration,
    /// How long a drain waits for running turns (default 30 s).
    pub drain_timeout: Duration,
    /// Interrupt a session's turn when its client goes away (default: let it finish).
    pub interrupt_on_disconnect: bool,
    /// Start every CLI through the host's credential proxy (default `true`).
    pub credential_proxy: bool,
    /// Each session's budget in USD at the credential proxy, unless it sets its own.
    pub session_budget_usd: Option<f64>,
    /// Most API requests per minute per session, at the credential proxy.
    pub session_requests_per_minute: Option<u32>,
    /// The supervisor's restart strategy (default one_for_one).
    pub strategy: Strategy,
    /// Most restarts within `max_seconds` (default 3).
    pub max_restarts: u32,
    /// The window for `max_restarts`, in seconds (default 5).
    pub max_seconds: u64,
    /// Admission control for new CLIs, when `[admission]` is present.
    pub admission: Option<AdmissionSettings>,
    /// `[sandbox]`: confinement of every CLI (default mode `auto`).
    pub sandbox: SandboxConfig,
    /// `[resources]`: limits of every CLI (default [`default_resources`]; `None` with
    /// `enabled = false`).
    pub resources: Option<ResourceLimits>,
    /// `[[sessions]]`, in file order.
    pub sessions: Vec<SessionEntry>,
    /// `[[pools]]`, in file order.
    pub pools: Vec<PoolEntry>,
    /// `[templates.NAME]`.
    pub templates: BTreeMap<String, SessionKeys>,
    /// `[limits]`: every tenant's limits unless overridden.
    pub limits: LimitSettings,
    /// `[tenants.NAME]`, each already merged over `[limits]`.
    pub tenants: BTreeMap<String, LimitSettings>,
    /// `[audit] jsonl`: also append the audit trail to this file as JSON lines
    /// (relative to the configuration file).
    pub audit_jsonl: Option<PathBuf>,
    /// `[cluster]`: the NATS server to join (`url`, or `serve --cluster`), this host's
    /// node name (`node_name`, or `--node-name`), the heartbeat and lease durations.
    pub cluster: ClusterSettings,
}

/// `[cluster]` (see `claude_code_serve::cluster`). Without a `url` the host runs alone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterSettings {
    /// `url`: the NATS server, `nats://HOST:PORT`.
    pub url: Option<String>,
    /// `node_name`: this host's name in the cluster (default `<hostname>-<port>`).
    pub node_name: Option<String>,
    /// `heartbeat_secs` (default 2; the same on every host).
    pub heartbeat: Duration,
    /// `lease_secs`: how long a session lease lasts unless renewed (default 15).
    pub lease: Duration,
    /// `pool_ack_secs`: how long a cluster pool job may run on a host without a sign of
    /// life before another host gets it (default 15; the same on every host).
    pub pool_ack_wait: Duration,
    /// `placement`: where `POST /v1/sessions` makes new dynamic sessions: `"capacity"`
    /// (default: the member with the most free capacity) or `"local"` (this host).
    pub placement: Placement,
    /// How the host authenticates to the NATS server: `creds_file`, or `user` with
    /// `password_env` / `password_file`, or `token_env` / `token_file` (at most one;
    /// secrets are read when the host connects, never written in the file).
    pub auth: NatsAuth,
    /// TLS: `tls = true`, `tls_ca`, `tls_cert` with `tls_key` (paths relative to the
    /// configuration file).
    pub tls: NatsTls,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        let d = ClusterConfig::new("");
        ClusterSettings {
            url: None,
            node_name: None,
            heartbeat: d.heartbeat,
            lease: d.lease,
            pool_ack_wait: d.pool_ack_wait,
            placement: d.placement,
            auth: d.auth,
            tls: d.tls,
        }
    }
}

impl ClusterSettings {
    /// The host's cluster configuration, when a `url` is set.
    pub fn to_config(&self) -> Option<ClusterConfig> {
        let url = self.url.as_ref()?;
        let mut c = ClusterConfig::new(url.clone())
            .heartbeat(self.heartbeat)
            .lease(self.lease)
            .pool_ack_wait(self.pool_ack_wait)
            .placement(self.placement)
            .auth(self.auth.clone())
            .tls(self.tls.clone());
        c.node_name.clone_from(&self.node_name);
        Some(c)
    }
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data_dir: None,
            max_body_bytes: 1024 * 1024,
            spares: 1,
            idle_timeout: Duration::from_secs(600),
            drain_timeout: Duration::from_secs(30),
            interrupt_on_disconnect: false,
            credential_proxy: true,
            session_budget_usd: None,
            session_requests_per_minute: None,
            strategy: Strategy::OneForOne,
            max_restarts: 3,
            max_seconds: 5,
            admission: None,
            // Confine where the machine can: on Linux with bubblewrap and root that is
            // every CLI; elsewhere one warning at start and the host still serves.
            sandbox: SandboxConfig::new(SandboxMode::Auto),
            resources: Some(default_resources()),
            sessions: Vec::new(),
            pools: Vec::new(),
            templates: BTreeMap::new(),
            limits: LimitSettings::default(),
            tenants: BTreeMap::new(),
            audit_jsonl: None,
            cluster: ClusterSettings::default(),
        }
    }
}

/// `[admission]`: limits on CLI processes (see [`Admission`]); unset keys keep its
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdmissionSettings {
    /// Most CLIs alive at once.
    pub max_live: Option<usize>,
    /// Most CLIs starting at once.
    pub max_spawns: Option<usize>,
    /// Refuse new CLIs while `MemAvailable` is below this many MiB.
    pub mem_floor_mib: Option<u64>,
    /// How long a new CLI waits for a live slot, in seconds.
    pub wait_timeout_secs: Option<u64>,
}

impl AdmissionSettings {
    /// The SDK's admission control with these limits.
    pub fn to_admission(&self) -> Admission {
        let mut a = Admission::new();
        if let Some(n) = self.max_live {
            a = a.max_live(n);
        }
        if let Some(n) = self.max_spawns {
            a = a.max_spawns(n);
        }
        if let Some(mib) = self.mem_floor_mib {
            a = a.mem_floor_mib(mib);
        }
        if let Some(secs) = self.wait_timeout_secs {
            a = a.wait_timeout(Duration::from_secs(secs));
        }
        a
    }
}

/// Session option keys a `[[sessions]]`, `[[pools]]` or `[templates.NAME]` entry sets
/// over the top-level ones (a list replaces the top-level list).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SessionKeys {
    /// `model`.
    pub model: Option<String>,
    /// `system_prompt`.
    pub system_prompt: Option<String>,
    /// `append_system_prompt`.
    pub append_system_prompt: Option<String>,
    /// `max_turns`.
    pub max_turns: Option<u32>,
    /// `permission_mode`.
    pub permission_mode: Option<PermissionMode>,
    /// `allowed_tools`.
    pub allowed_tools: Option<Vec<String>>,
    /// `disallowed_tools`.
    pub disallowed_tools: Option<Vec<String>>,
    /// `cwd` (relative to the file).
    pub cwd: Option<PathBuf>,
    /// `cli_profile`.
    pub cli_profile: Option<CliProfile>,
    /// `allow_tools`: the host's tool policy allows only these (see
    /// [`ToolPolicy`](claude_code_serve::ToolPolicy)).
    pub allow_tools: Option<Vec<String>>,
    /// `deny_tools`: the host's tool policy denies these.
    pub deny_tools: Option<Vec<String>>,
}

/// A `[[sessions]]` entry: a named session started with the host.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionEntry {
    /// Its name, unique per tenant.
    pub name: String,
    /// The tenant that owns it (default `default`, the anonymous tenant).
    pub tenant: String,
    /// When the supervisor restarts it (default permanent).
    pub restart: Restart,
    /// Hibernate after idling this long (default never).
    pub idle_timeout: Option<Duration>,
    /// Most USD it may spend (default unlimited).
    pub budget_usd: Option<f64>,
    /// Its options over the top-level ones.
    pub keys: SessionKeys,
}

/// A `[[pools]]` entry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolEntry {
    /// Its name in `/v1/pools/{name}/messages`.
    pub name: String,
    /// Members (default 2).
    pub size: usize,
    /// Warm spares (default 0).
    pub warm_spares: usize,
    /// Most waiting requests (default 64).
    pub max_queue: usize,
    /// Longest wait for a member (default 30 s).
    pub queue_timeout: Duration,
    /// Its members' options over the top-level ones.
    pub keys: SessionKeys,
}

/// `[limits]` or one `[tenants.NAME]` (merged over `[limits]`). Unset is unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LimitSettings {
    /// Most sessions at once.
    pub max_sessions: Option<usize>,
    /// Most turns running at once.
    pub max_concurrent_turns: Option<usize>,
    /// Most API requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Most USD spent in total.
    pub max_spend_usd: Option<f64>,
}

impl LimitSettings {
    /// These limits with `over`'s set values on top.
    fn overlaid(&self, over: &LimitSettings) -> LimitSettings {
        LimitSettings {
            max_sessions: over.max_sessions.or(self.max_sessions),
            max_concurrent_turns: over.max_concurrent_turns.or(self.max_concurrent_turns),
            requests_per_minute: over.requests_per_minute.or(self.requests_per_minute),
            max_spend_usd: over.max_spend_usd.or(self.max_spend_usd),
        }
    }
}

/// The file's host sections, as parsed (fields of the top-level `FileConfig`).
#[derive(Debug, Default)]
pub(super) struct FileHost {
    pub(super) serve: Option<FileServe>,
    pub(super) supervisor: Option<FileSupervisor>,
    pub(super) admission: Option<FileAdmission>,
    pub(super) sandbox: Option<FileSandbox>,
    pub(super) resources: Option<FileResources>,
    pub(super) sessions: Option<Vec<FileSession>>,
    pub(super) pools: Option<Vec<FilePool>>,
    pub(super) templates: Option<BTreeMap<Spanned<String>, FileTemplate>>,
    pub(super) limits: Option<FileLimits>,
    pub(super) tenants: Option<BTreeMap<Spanned<String>, FileLimits>>,
    pub(super) audit: Option<FileAudit>,
    pub(super) cluster: Option<FileCluster>,
}

/// `[cluster]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCluster {
    url: Option<Spanned<String>>,
    node_name: Option<Spanned<String>>,
    heartbeat_secs: Option<NonZeroU64>,
    lease_secs: Option<NonZeroU64>,
    pool_ack_secs: Option<NonZeroU64>,
    placement: Option<Spanned<String>>,
    creds_file: Option<Spanned<PathBuf>>,
    user: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<PathBuf>>,
    tls: Option<bool>,
    tls_ca: Option<Spanned<PathBuf>>,
    tls_cert: Option<Spanned<PathBuf>>,
    tls_key: Option<Spanned<PathBuf>>,
    /// Refused with advice: a secret is not written in the file (its value is never read).
    password: Option<Spanned<serde::de::IgnoredAny>>,
    /// Refused with advice, as `password`.
    token: Option<Spanned<serde::de::IgnoredAny>>,
}

/// `[audit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAudit {
    jsonl: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServe {
    listen: Option<Spanned<String>>,
    data_dir: Option<PathBuf>,
    max_body_bytes: Option<NonZeroUsize>,
    spares: Option<usize>,
    idle_timeout_secs: Option<NonZeroU64>,
    drain_timeout_secs: Option<u64>,
    on_disconnect: Option<FileOnDisconnect>,
    credential_proxy: Option<bool>,
    session_budget_usd: Option<PositiveUsd>,
    session_requests_per_minute: Option<std::num::NonZeroU32>,
}

/// A positive, finite amount of USD.
#[derive(Debug, Clone, Copy)]
struct PositiveUsd(f64);

impl<'de> Deserialize<'de> for PositiveUsd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let usd = f64::deserialize(d)?;
        if usd.is_finite() && usd > 0.0 {
            Ok(PositiveUsd(usd))
        } else {
            Err(serde::de::Error::custom("must be a positive number of USD"))
        }
    }
}

/// What happens to a session's turn when its HTTP client goes away.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileOnDisconnect {
    Finish,
    Interrupt,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSupervisor {
    strategy: Option<FileStrategy>,
    max_restarts: Option<u32>,
    max_seconds: Option<NonZeroU64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileStrategy {
    OneForOne,
    OneForAll,
    RestForOne,
}

impl From<FileStrategy> for Strategy {
    fn from(s: FileStrategy) -> Self {
        match s {
            FileStrategy::OneForOne => Strategy::OneForOne,
            FileStrategy::OneForAll => Strategy::OneForAll,
            FileStrategy::RestForOne => Strategy::RestForOne,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdmission {
    max_live: Option<NonZeroUsize>,
    max_spawns: Option<NonZeroUsize>,
    mem_floor_mib: Option<u64>,
    wait_timeout_secs: Option<NonZeroU64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSandbox {
    mode: Option<FileSandboxMode>,
    network: Option<FileSandboxNetwork>,
    work_root: Option<PathBuf>,
    hide: Option<Vec<PathBuf>>,
    read_write: Option<Vec<PathBuf>>,
    read_only: Option<Vec<PathBuf>>,
    bwrap: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileSandboxMode {
    Off,
    Auto,
    Required,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FileSandboxNetwork {
    ProxyOnly,
    Host,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileResources {
    enabled: Option<bool>,
    required: Option<bool>,
    memory_bytes: Option<NonZeroU64>,
    pids: Option<NonZeroU64>,
    open_files: Option<NonZeroU64>,
    cpu_seconds: Option<NonZeroU64>,
    processes: Option<NonZeroU64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    max_sessions: Option<usize>,
    max_concurrent_turns: Option<usize>,
    requests_per_minute: Option<u32>,
    max_spend_usd: Option<Spanned<f64>>,
}

/// A NATS server URL for `[cluster] url` and `serve --cluster`: `nats://HOST:PORT`, or
/// `tls://HOST:PORT` to require TLS; credentials in it are refused (see
/// [`claude_code_serve::cluster::check_url`]), and the message never repeats them.
pub fn check_nats_url(url: &str) -> Result<String, String> {
    claude_code_serve::cluster::check_url(url).map_err(|e| e.to_string())?;
    Ok(url.to_string())
}

/// An environment variable's name: `A-Z a-z 0-9 _`, not starting with a digit.
fn check_env_name(name: &Spanned<String>, path: &Path, text: &str) -> Result<String, ConfigError> {
    let n = name.get_ref();
    let valid = !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(n.clone())
    } else {
        Err(invalid(
            path,
            text,
            name.span().start,
            format!("expected the name of an environment variable (A-Z, a-z, 0-9, _), got {n:?}"),
        ))
    }
}

impl FileCluster {
    /// `[cluster]`'s credentials and TLS, checked: a secret is never in the file, at most
    /// one way to authenticate, a user goes with a password, a client certificate with its
    /// key. Paths are made relative to `base`.
    fn auth_and_tls(
        &self,
        base: &Path,
        path: &Path,
        text: &str,
    ) -> Result<(NatsAuth, NatsTls), ConfigError> {
        let at = |offset: usize, m: &str| invalid(path, text, offset, m.to_string());
        for (secret, env_key) in [(&self.password, "password_env"), (&self.token, "token_env")] {
            if let Some(v) = secret {
                let file_key = env_key.replace("_env", "_file");
                return Err(at(
                    v.span().start,
                    &format!("a secret is not written in claude-code.toml: name the environment variable that holds it ({env_key} = \"NATS_...\") or a file ({file_key} = \"/run/secrets/...\")"),
                ));
            }
        }
        let source = |env: &Option<Spanned<String>>,
                      file: &Option<Spanned<PathBuf>>,
                      what: &str|
         -> Result<Option<SecretSource>, ConfigError> {
            match (env, file) {
                (Some(_), Some(f)) => Err(at(
                    f.span().start,
                    &format!("give the {what} by {what}_env or {what}_file, not both"),
                )),
                (Some(e), None) => Ok(Some(SecretSource::env(check_env_name(e, path, text)?))),
                (None, Some(f)) => Ok(Some(SecretSource::file(base.join(f.get_ref())))),
                (None, None) => Ok(None),
            }
        };
        let password = source(&self.password_env, &self.password_file, "password")?;
        let token = source(&self.token_env, &self.token_file, "token")?;
        let spans = [
            self.creds_file
                .as_ref()
                .map(|c| ("creds_file", c.span().start)),
            self.user.as_ref().map(|u| ("user", u.span().start)),
            self.token_env
                .as_ref()
                .map(|t| ("token_env", t.span().start))
                .or(self
                    .token_file
                    .as_ref()
                    .map(|t| ("token_file", t.span().start))),
        ];
        let methods: Vec<(&str, usize)> = spans.into_iter().flatten().collect();
        if let [(first, _), (second, offset), ..] = methods[..] {
            return Err(at(
                offset,
                &format!("authenticate one way: {first} and {second} are both set (creds_file, or user with password_env/password_file, or token_env/token_file)"),
            ));
        }
        let auth = match (&self.creds_file, &self.user, password, token) {
            (Some(c), ..) => NatsAuth::Creds(base.join(c.get_ref())),
            (None, Some(u), Some(password), _) => NatsAuth::UserPassword {
                user: u.get_ref().clone(),
                password,
            },
            (None, Some(u), None, _) => {
                return Err(at(
                    u.span().start,
                    "a user needs its password: set password_env (the variable that holds it) or password_file",
                ))
            }
            (None, None, Some(_), _) => {
                let offset = self
                    .password_env
                    .as_ref()
                    .map(|p| p.span().start)
                    .or(self.password_file.as_ref().map(|p| p.span().start))
                    .unwrap_or(0);
                return Err(at(offset, "a password needs its user: set user"));
            }
            (None, None, None, Some(token)) => NatsAuth::Token(token),
            (None, None, None, None) => NatsAuth::None,
        };
        let mut tls = NatsTls::default();
        tls.required = self.tls.unwrap_or(false);
        tls.ca = self.tls_ca.as_ref().map(|p| base.join(p.get_ref()));
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => {
                tls = tls.client_cert(base.join(c.get_ref()), base.join(k.get_ref()));
            }
            (Some(c), None) => {
                return Err(at(
                    c.span().start,
                    "a client certificate needs its key: set tls_key",
                ))
            }
            (None, Some(k)) => {
                return Err(at(
                    k.span().start,
                    "a client key needs its certificate: set tls_cert",
                ))
            }
            (None, None) => {}
        }
        Ok((auth, tls))
    }
}

/// A file struct with its own fields plus the session option keys (serde's `flatten`
/// does not combine with `deny_unknown_fields`, so the keys are spelled into each).
macro_rules! with_session_keys {
    (struct $name:ident { $($field:ident : $ty:ty,)* }) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            $($field: $ty,)*
            model: Option<String>,
            system_prompt: Option<String>,
            append_system_prompt: Option<String>,
            max_turns: Option<NonZeroU32>,
            permission_mode: Option<FileMode>,
            allowed_tools: Option<Vec<String>>,
            disallowed_tools: Option<Vec<String>>,
            cwd: Option<PathBuf>,
            cli_profile: Option<FileProfile>,
            allow_tools: Option<Vec<String>>,
            deny_tools: Option<Vec<String>>,
        }

        impl $name {
            /// The session keys, relative paths made relative to `base`.
            fn keys(&self, base: &Path) -> SessionKeys {
                SessionKeys {
                    model: self.model.clone(),
                    system_prompt: self.system_prompt.clone(),
                    append_system_prompt: self.append_system_prompt.clone(),
                    max_turns: self.max_turns.map(NonZeroU32::get),
                    permission_mode: self.permission_mode.map(|m| m.0),
                    allowed_tools: self.allowed_tools.clone(),
                    disallowed_tools: self.disallowed_tools.clone(),
                    cwd: self.cwd.as_ref().map(|d| base.join(d)),
                    cli_profile: self.cli_profile.map(CliProfile::from),
                    allow_tools: self.allow_tools.clone(),
                    deny_tools: self.deny_tools.clone(),
                }
            }
        }
    };
}

with_session_keys!(
    struct FileSession {
        name: Spanned<String>,
        tenant: Option<Spanned<String>>,
        restart: Option<Restart>,
        idle_timeout_secs: Option<NonZeroU64>,
        budget_usd: Option<Spanned<f64>>,
    }
);

with_session_keys!(
    struct FilePool {
        name: Spanned<String>,
        size: Option<NonZeroUsize>,
        warm_spares: Option<usize>,
        max_queue: Option<usize>,
        queue_timeout_secs: Option<NonZeroU64>,
    }
);

with_session_keys!(
    struct FileTemplate {}
);

/// Checks a name the host will use (session, tenant, pool, template).
fn check_name(
    what: &str,
    name: &Spanned<String>,
    path: &Path,
    text: &str,
) -> Result<String, ConfigError> {
    if claude_code_serve::is_valid_name(name.get_ref()) {
        Ok(name.get_ref().clone())
    } else {
        Err(invalid(
            path,
            text,
            name.span().start,
            format!(
                "{what} names are 1-64 characters of A-Z, a-z, 0-9, _ or -; got {:?}",
                name.get_ref()
            ),
        ))
    }
}

fn limits(file: &FileLimits, path: &Path, text: &str) -> Result<LimitSettings, ConfigError> {
    let spend = match &file.max_spend_usd {
        Some(usd) if !(usd.get_ref().is_finite() && *usd.get_ref() >= 0.0) => {
            return Err(invalid(
                path,
                text,
                usd.span().start,
                "expected a number of USD, 0 or more".into(),
            ))
        }
        other => other.as_ref().map(|usd| *usd.get_ref()),
    };
    Ok(LimitSettings {
        max_sessions: file.max_sessions,
        max_concurrent_turns: file.max_concurrent_turns,
        requests_per_minute: file.requests_per_minute,
        max_spend_usd: spend,
    })
}

impl Config {
    /// Applies the file's host sections (`base`: the file's directory).
    pub(super) fn apply_host_file(
        &mut self,
        file: FileHost,
        path: &Path,
        text: &str,
        base: &Path,
    ) -> Result<(), ConfigError> {
        let origin = Origin::File(path.to_path_buf());
        if let Some(serve) = file.serve {
            if let Some(listen) = serve.listen {
                self.host.listen = listen.get_ref().parse().map_err(|e| {
                    invalid(
                        path,
                        text,
                        listen.span().start,
                        format!("expected an address like {DEFAULT_LISTEN}: {e}"),
                    )
                })?;
                self.set_origin("serve.listen", origin.clone());
            }
            if let Some(dir) = serve.data_dir {
                self.host.data_dir = Some(base.join(dir));
                self.set_origin("serve.data_dir", origin.clone());
            }
            if let Some(n) = serve.max_body_bytes {
                self.host.max_body_bytes = n.get();
                self.set_origin("serve.max_body_bytes", origin.clone());
            }
            if let Some(n) = serve.spares {
                self.host.spares = n;
                self.set_origin("serve.spares", origin.clone());
            }
            if let Some(secs) = serve.idle_timeout_secs {
                self.host.idle_timeout = Duration::from_secs(secs.get());
                self.set_origin("serve.idle_timeout_secs", origin.clone());
            }
            if let Some(secs) = serve.drain_timeout_secs {
                self.host.drain_timeout = Duration::from_secs(secs);
                self.set_origin("serve.drain_timeout_secs", origin.clone());
            }
            if let Some(policy) = serve.on_disconnect {
                self.host.interrupt_on_disconnect = matches!(policy, FileOnDisconnect::Interrupt);
                self.set_origin("serve.on_disconnect", origin.clone());
            }
            if let Some(on) = serve.credential_proxy {
                self.host.credential_proxy = on;
                self.set_origin("serve.credential_proxy", origin.clone());
            }
            if let Some(usd) = serve.session_budget_usd {
                self.host.session_budget_usd = Some(usd.0);
                self.set_origin("serve.session_budget_usd", origin.clone());
            }
            if let Some(n) = serve.session_requests_per_minute {
                self.host.session_requests_per_minute = Some(n.get());
                self.set_origin("serve.session_requests_per_minute", origin.clone());
            }
        }
        if let Some(sup) = file.supervisor {
            if let Some(s) = sup.strategy {
                self.host.strategy = s.into();
                self.set_origin("supervisor.strategy", origin.clone());
            }
            if let Some(n) = sup.max_restarts {
                self.host.max_restarts = n;
                self.set_origin("supervisor.max_restarts", origin.clone());
            }
            if let Some(n) = sup.max_seconds {
                self.host.max_seconds = n.get();
                self.set_origin("supervisor.max_seconds", origin.clone());
            }
        }
        if let Some(a) = file.admission {
            self.host.admission = Some(AdmissionSettings {
                max_live: a.max_live.map(NonZeroUsize::get),
                max_spawns: a.max_spawns.map(NonZeroUsize::get),
                mem_floor_mib: a.mem_floor_mib,
                wait_timeout_secs: a.wait_timeout_secs.map(NonZeroU64::get),
            });
        }
        if let Some(s) = file.sandbox {
            let sb = &mut self.host.sandbox;
            if let Some(mode) = s.mode {
                sb.mode = match mode {
                    FileSandboxMode::Off => SandboxMode::Off,
                    FileSandboxMode::Auto => SandboxMode::Auto,
                    FileSandboxMode::Required => SandboxMode::Required,
                };
            }
            if let Some(n) = s.network {
                sb.network = match n {
                    FileSandboxNetwork::ProxyOnly => SandboxNetwork::ProxyOnly,
                    FileSandboxNetwork::Host => SandboxNetwork::Host,
                };
            }
            let abs = |paths: Option<Vec<PathBuf>>| {
                paths
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| base.join(p))
                    .collect::<Vec<_>>()
            };
            if let Some(root) = s.work_root {
                sb.work_root = Some(base.join(root));
            }
            sb.hide = abs(s.hide);
            sb.read_write = abs(s.read_write);
            sb.read_only = abs(s.read_only);
            sb.bwrap = s.bwrap;
        }
        if let Some(r) = file.resources {
            let mut limits = default_resources();
            if let Some(n) = r.memory_bytes {
                limits.memory_bytes = Some(n.get());
            }
            if let Some(n) = r.pids {
                limits.pids = Some(n.get());
            }
            if let Some(n) = r.open_files {
                limits.open_files = Some(n.get());
            }
            if let Some(n) = r.cpu_seconds {
                limits.cpu_seconds = Some(n.get());
            }
            if let Some(n) = r.processes {
                limits.processes = Some(n.get());
            }
            if r.required == Some(true) {
                limits.fallback = Fallback::Error;
            }
            self.host.resources = (r.enabled != Some(false)).then_some(limits);
        }
        let mut seen = BTreeSet::new();
        for s in file.sessions.unwrap_or_default() {
            let name = check_name("session", &s.name, path, text)?;
            let tenant = match &s.tenant {
                Some(t) => check_name("tenant", t, path, text)?,
                None => claude_code_serve::DEFAULT_TENANT.to_string(),
            };
            if !seen.insert((tenant.clone(), name.clone())) {
                return Err(invalid(
                    path,
                    text,
                    s.name.span().start,
                    format!("tenant {tenant:?} already has a session named {name:?}"),
                ));
            }
            let budget_usd = match &s.budget_usd {
                Some(usd) if !(usd.get_ref().is_finite() && *usd.get_ref() > 0.0) => {
                    return Err(invalid(
                        path,
                        text,
                        usd.span().start,
                        "expected a positive number of USD".into(),
                    ))
                }
                other => other.as_ref().map(|usd| *usd.get_ref()),
            };
            self.host.sessions.push(SessionEntry {
                name,
                tenant,
                restart: s.restart.unwrap_or_default(),
                idle_timeout: s.idle_timeout_secs.map(|n| Duration::from_secs(n.get())),
                budget_usd,
                keys: s.keys(base),
            });
        }
        let mut seen = BTreeSet::new();
        for p in file.pools.unwrap_or_default() {
            let name = check_name("pool", &p.name, path, text)?;
            if !seen.insert(name.clone()) {
                return Err(invalid(
                    path,
                    text,
                    p.name.span().start,
                    format!("another pool is already named {name:?}"),
                ));
            }
            self.host.pools.push(PoolEntry {
                name,
                size: p.size.map_or(2, NonZeroUsize::get),
                warm_spares: p.warm_spares.unwrap_or(0),
                max_queue: p.max_queue.unwrap_or(64),
                queue_timeout: Duration::from_secs(
                    p.queue_timeout_secs.map_or(30, NonZeroU64::get),
                ),
                keys: p.keys(base),
            });
        }
        for (name, t) in file.templates.unwrap_or_default() {
            let name = check_name("template", &name, path, text)?;
            self.host.templates.insert(name, t.keys(base));
        }
        if let Some(l) = &file.limits {
            self.host.limits = limits(l, path, text)?;
        }
        if let Some(jsonl) = file.audit.and_then(|a| a.jsonl) {
            self.host.audit_jsonl = Some(base.join(jsonl));
            self.set_origin("audit.jsonl", origin.clone());
        }
        if let Some(c) = file.cluster {
            let (auth, tls) = c.auth_and_tls(base, path, text)?;
            if let Some(url) = &c.url {
                self.host.cluster.url = Some(
                    check_nats_url(url.get_ref())
                        .map_err(|m| invalid(path, text, url.span().start, m))?,
                );
                self.set_origin("cluster.url", origin.clone());
            }
            if let Some(name) = c.node_name {
                self.host.cluster.node_name = Some(check_name("node", &name, path, text)?);
                self.set_origin("cluster.node_name", origin.clone());
            }
            if let Some(secs) = c.heartbeat_secs {
                self.host.cluster.heartbeat = Duration::from_secs(secs.get());
                self.set_origin("cluster.heartbeat_secs", origin.clone());
            }
            if let Some(secs) = c.lease_secs {
                self.host.cluster.lease = Duration::from_secs(secs.get());
                self.set_origin("cluster.lease_secs", origin.clone());
            }
            if let Some(secs) = c.pool_ack_secs {
                self.host.cluster.pool_ack_wait = Duration::from_secs(secs.get());
                self.set_origin("cluster.pool_ack_secs", origin.clone());
            }
            if let Some(p) = c.placement {
                self.host.cluster.placement = p
                    .get_ref()
                    .parse()
                    .map_err(|m| invalid(path, text, p.span().start, m))?;
                self.set_origin("cluster.placement", origin.clone());
            }
            for (key, set) in [
                ("cluster.creds_file", c.creds_file.is_some()),
                ("cluster.user", c.user.is_some()),
                ("cluster.password_env", c.password_env.is_some()),
                ("cluster.password_file", c.password_file.is_some()),
                ("cluster.token_env", c.token_env.is_some()),
                ("cluster.token_file", c.token_file.is_some()),
                ("cluster.tls", c.tls.is_some()),
                ("cluster.tls_ca", c.tls_ca.is_some()),
                ("cluster.tls_cert", c.tls_cert.is_some()),
                ("cluster.tls_key", c.tls_key.is_some()),
            ] {
                if set {
                    self.set_origin(key, origin.clone());
                }
            }
            self.host.cluster.auth = auth;
            self.host.cluster.tls = tls;
        }
        for (name, l) in file.tenants.unwrap_or_default() {
            let name = check_name("tenant", &name, path, text)?;
            let over = limits(&l, path, text)?;
            self.host
                .tenants
                .insert(name, self.host.limits.overlaid(&over));
        }
        Ok(())
    }

    /// Applies `CLAUDE_CODE_LISTEN` and `CLAUDE_CODE_DATA_DIR`.
    pub(super) fn apply_host_env(&mut self, loader: &ConfigLoader) -> Result<(), ConfigError> {
        if let Some(v) = loader.var(LISTEN_ENV) {
            self.host.listen = v.parse().map_err(|e| ConfigError::Env {
                var: LISTEN_ENV.into(),
                message: format!("expected an address like {DEFAULT_LISTEN}, got {v:?}: {e}"),
            })?;
            self.set_origin("serve.listen", Origin::Env(LISTEN_ENV.into()));
        }
        if let Some(v) = loader.var(DATA_DIR_ENV) {
            self.host.data_dir = Some(v.into());
            self.set_origin("serve.data_dir", Origin::Env(DATA_DIR_ENV.into()));
        }
        Ok(())
    }

    /// When no layer set `data_dir`: `$XDG_DATA_HOME/claude-code` (an absolute
    /// `XDG_DATA_HOME` only, as the XDG spec says), else `$HOME/.local/share/claude-code`.
    pub(super) fn default_data_dir(&mut self, loader: &ConfigLoader) {
        if self.host.data_dir.is_some() {
            return;
        }
        let xdg = loader
            .var("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let home = || {
            loader
                .var("HOME")
                .map(|h| Path::new(&h).join(".local/share"))
        };
        self.host.data_dir = xdg.or_else(home).map(|d| d.join("claude-code"));
    }

    /// The resolved value of a [`HOST_KEYS`] key as display text.
    pub(super) fn host_value(&self, key: &str) -> Option<String> {
        let h = &self.host;
        match key {
            "serve.listen" => Some(h.listen.to_string()),
            "serve.data_dir" => h.data_dir.as_ref().map(|p| p.display().to_string()),
            "serve.max_body_bytes" => Some(h.max_body_bytes.to_string()),
            "serve.spares" => Some(h.spares.to_string()),
            "serve.idle_timeout_secs" => Some(h.idle_timeout.as_secs().to_string()),
            "serve.drain_timeout_secs" => Some(h.drain_timeout.as_secs().to_string()),
            "serve.on_disconnect" => Some(
                if h.interrupt_on_disconnect {
                    "interrupt"
                } else {
                    "finish"
                }
                .to_string(),
            ),
            "serve.credential_proxy" => Some(h.credential_proxy.to_string()),
            "serve.session_budget_usd" => h.session_budget_usd.map(|u| u.to_string()),
            "serve.session_requests_per_minute" => {
                h.session_requests_per_minute.map(|n| n.to_string())
            }
            "supervisor.strategy" => Some(
                match h.strategy {
                    Strategy::OneForAll => "one_for_all",
                    Strategy::RestForOne => "rest_for_one",
                    _ => "one_for_one",
                }
                .to_string(),
            ),
            "supervisor.max_restarts" => Some(h.max_restarts.to_string()),
            "supervisor.max_seconds" => Some(h.max_seconds.to_string()),
            "audit.jsonl" => h.audit_jsonl.as_ref().map(|p| p.display().to_string()),
            "cluster.url" => h.cluster.url.clone(),
            "cluster.node_name" => h.cluster.node_name.clone(),
            "cluster.heartbeat_secs" => Some(h.cluster.heartbeat.as_secs().to_string()),
            "cluster.lease_secs" => Some(h.cluster.lease.as_secs().to_string()),
            "cluster.pool_ack_secs" => Some(h.cluster.pool_ack_wait.as_secs().to_string()),
            "cluster.placement" => Some(
                match h.cluster.placement {
                    Placement::Local => "local",
                    _ => "capacity",
                }
                .to_string(),
            ),
            "cluster.creds_file" => match &h.cluster.auth {
                NatsAuth::Creds(p) => Some(p.display().to_string()),
                _ => None,
            },
            "cluster.user" => match &h.cluster.auth {
                NatsAuth::UserPassword { user, .. } => Some(user.clone()),
                _ => None,
            },
            "cluster.password_env"
            | "cluster.password_file"
            | "cluster.token_env"
            | "cluster.token_file" => {
                let source = match &h.cluster.auth {
                    NatsAuth::UserPassword { password, .. } if key.contains("password") => password,
                    NatsAuth::Token(token) if key.contains("token") => token,
                    _ => return None,
                };
                // The variable's name or the file's path, never the secret.
                match source {
                    SecretSource::Env(var) if key.ends_with("_env") => Some(var.clone()),
                    SecretSource::File(p) if key.ends_with("_file") => {
                        Some(p.display().to_string())
                    }
                    _ => None,
                }
            }
            "cluster.tls" => Some(h.cluster.tls.required.to_string()),
            "cluster.tls_ca" => h.cluster.tls.ca.as_ref().map(|p| p.display().to_string()),
            "cluster.tls_cert" => h.cluster.tls.cert.as_ref().map(|p| p.display().to_string()),
            "cluster.tls_key" => h.cluster.tls.key.as_ref().map(|p| p.display().to_string()),
            _ => None,
        }
    }

    /// Session options: the top-level settings with `keys` on top (lists replace).
    pub fn session_options(&self, keys: &SessionKeys) -> Options {
        let mut c = self.clone();
        if let Some(v) = &keys.model {
            c.model = Some(v.clone());
        }
        if let Some(v) = &keys.system_prompt {
            c.system_prompt = Some(v.clone());
        }
        if let Some(v) = &keys.append_system_prompt {
            c.append_system_prompt = Some(v.clone());
        }
        if let Some(n) = keys.max_turns {
            c.max_turns = Some(n);
        }
        if let Some(m) = keys.permission_mode {
            c.permission_mode = Some(m);
        }
        if let Some(v) = &keys.allowed_tools {
            c.allowed_tools = v.clone();
        }
        if let Some(v) = &keys.disallowed_tools {
            c.disallowed_tools = v.clone();
        }
        if let Some(d) = &keys.cwd {
            c.cwd = Some(d.clone());
        }
        if let Some(p) = keys.cli_profile {
            c.cli_profile = p;
        }
        let policy = claude_code_serve::ToolPolicy::new()
            .allow(keys.allow_tools.iter().flatten().cloned())
            .deny(keys.deny_tools.iter().flatten().cloned());
        policy.apply(c.to_options())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, CONFIG_FILE_NAME};

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

    /// Asserts that `text` fails at `line` naming `key`, with `needle` in the message.
    #[track_caller]
    fn fails_at(text: &str, line: usize, key: &str, needle: &str) {
        let (_d, path) = write(text);
        let err = load(&path, &[]).expect_err(text);
        match &err {
            ConfigError::Invalid {
                line: l, key: k, ..
            } => {
                assert_eq!((*l, k.as_deref()), (line, Some(key)), "{text:?}: {err}");
            }
            other => panic!("{text:?}: expected an Invalid error, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("{}:{line}:", path.display())),
            "{msg}"
        );
        assert!(msg.contains(&format!("key `{key}`")), "{msg}");
        assert!(msg.contains(needle), "{text:?}: {msg}");
    }

    const FULL: &str = r#"model = "top"
[serve]
listen = "127.0.0.1:9000"
data_dir = "data"
max_body_bytes = 4096
spares = 2
idle_timeout_secs = 120
credential_proxy = false
session_budget_usd = 2.5
session_requests_per_minute = 90

[supervisor]
strategy = "one_for_all"
max_restarts = 10
max_seconds = 60

[admission]
max_live = 16
max_spawns = 2
mem_floor_mib = 512
wait_timeout_secs = 10

[[sessions]]
name = "assistant"
tenant = "acme"
restart = "temporary"
idle_timeout_secs = 30
budget_usd = 1.5
system_prompt = "Be helpful"
append_system_prompt = "Be brief"
max_turns = 4
permission_mode = "plan"
allowed_tools = ["Read"]
disallowed_tools = ["Bash"]
cwd = "work"
cli_profile = "minimal"
deny_tools = ["WebFetch"]

[[sessions]]
name = "assistant"

[[pools]]
name = "workers"
size = 4
warm_spares = 1
max_queue = 0
queue_timeout_secs = 5
model = "pool-model"

[[pools]]
name = "defaults"

[templates.reviewer]
system_prompt = "You review Rust"
allow_tools = ["Read", "mcp__docs__*"]

[limits]
max_sessions = 20
max_concurrent_turns = 4
requests_per_minute = 600
max_spend_usd = 50.0

[tenants.acme]
max_sessions = 5
max_spend_usd = 0

[audit]
jsonl = "audit/events.jsonl"
"#;

    #[test]
    fn every_host_section_is_read() {
        let (d, path) = write(FULL);
        let c = load(&path, &[]).expect("loads");
        let h = &c.host;
        assert_eq!(h.audit_jsonl, Some(d.path().join("audit/events.jsonl")));
        assert_eq!(
            h.templates["reviewer"].allow_tools,
            Some(vec!["Read".to_string(), "mcp__docs__*".to_string()])
        );
        assert_eq!(h.listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(
            h.data_dir,
            Some(d.path().join("data")),
            "relative to the file"
        );
        assert_eq!((h.max_body_bytes, h.spares), (4096, 2));
        assert_eq!(h.idle_timeout, Duration::from_secs(120));
        assert!(!h.credential_proxy);
        assert_eq!(h.session_budget_usd, Some(2.5));
        assert_eq!(h.session_requests_per_minute, Some(90));
        assert!(HostSettings::default().credential_proxy, "on by default");
        assert_eq!(h.strategy, Strategy::OneForAll);
        assert_eq!((h.max_restarts, h.max_seconds), (10, 60));
        assert_eq!(
            h.admission,
            Some(AdmissionSettings {
                max_live: Some(16),
                max_spawns: Some(2),
                mem_floor_mib: Some(512),
                wait_timeout_secs: Some(10),
            })
        );
        let stats = h
            .admission
            .as_ref()
            .expect("admission")
            .to_admission()
            .stats();
        assert_eq!((stats.max_live, stats.max_spawns), (16, 2));

        assert_eq!(
            h.sessions[0],
            SessionEntry {
                name: "assistant".into(),
                tenant: "acme".into(),
                restart: Restart::Temporary,
                idle_timeout: Some(Duration::from_secs(30)),
                budget_usd: Some(1.5),
                keys: SessionKeys {
                    model: None,
                    system_prompt: Some("Be helpful".into()),
                    append_system_prompt: Some("Be brief".into()),
                    max_turns: Some(4),
                    permission_mode: Some(PermissionMode::Plan),
                    allowed_tools: Some(vec!["Read".into()]),
                    disallowed_tools: Some(vec!["Bash".into()]),
                    cwd: Some(d.path().join("work")),
                    cli_profile: Some(CliProfile::Minimal),
                    allow_tools: None,
                    deny_tools: Some(vec!["WebFetch".into()]),
                },
            }
        );
        let second = &h.sessions[1];
        assert_eq!(
            (second.tenant.as_str(), second.restart),
            ("default", Restart::Permanent),
            "the same name for another tenant, with the defaults"
        );

        assert_eq!(h.pools.len(), 2);
        let workers = &h.pools[0];
        assert_eq!(
            (workers.size, workers.warm_spares, workers.max_queue),
            (4, 1, 0)
        );
        assert_eq!(workers.queue_timeout, Duration::from_secs(5));
        assert_eq!(workers.keys.model.as_deref(), Some("pool-model"));
        let defaults = &h.pools[1];
        assert_eq!(
            (defaults.size, defaults.warm_spares, defaults.max_queue),
            (2, 0, 64)
        );
        assert_eq!(defaults.queue_timeout, Duration::from_secs(30));

        assert_eq!(
            h.templates["reviewer"].system_prompt.as_deref(),
            Some("You review Rust")
        );
        assert_eq!(
            h.limits,
            LimitSettings {
                max_sessions: Some(20),
                max_concurrent_turns: Some(4),
                requests_per_minute: Some(600),
                max_spend_usd: Some(50.0),
            }
        );
        assert_eq!(
            h.tenants["acme"],
            LimitSettings {
                max_sessions: Some(5),
                max_concurrent_turns: Some(4),
                requests_per_minute: Some(600),
                max_spend_usd: Some(0.0),
            },
            "a tenant's keys override [limits], the rest is inherited"
        );

        assert_eq!(c.value("serve.listen").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(
            c.value("supervisor.strategy").as_deref(),
            Some("one_for_all")
        );
        assert_eq!(c.origin("serve.spares"), Origin::File(path.clone()));
        assert_eq!(c.origin("supervisor.max_seconds"), Origin::File(path));

        // The entry's keys over the top-level ones: model inherited, prompt its own.
        let args: Vec<String> = c
            .session_options(&h.sessions[0].keys)
            .to_args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"--model=top".to_string()), "{args:?}");
        assert!(
            args.contains(&"--system-prompt=Be helpful".to_string()),
            "{args:?}"
        );
    }

    #[test]
    fn unknown_keys_in_every_section_name_file_line_and_key() {
        for (text, line, key) in [
            (
                "[serve]\nlisten = \"127.0.0.1:1\"\nport = 1\n",
                3,
                "serve.port",
            ),
            (
                "[supervisor]\nstrategy = \"one_for_one\"\nmax_restart = 3\n",
                3,
                "supervisor.max_restart",
            ),
            (
                "[admission]\nmin_available_mb = 1024\n",
                2,
                "admission.min_available_mb",
            ),
            (
                "[[sessions]]\nname = \"a\"\nsystem_promt = \"x\"\n",
                3,
                "sessions.system_promt",
            ),
            ("[[pools]]\nname = \"p\"\nsizes = 2\n", 3, "pools.sizes"),
            (
                "[templates.reviewer]\nsystem_prompt = \"x\"\nmodle = \"y\"\n",
                3,
                "templates.reviewer.modle",
            ),
            ("[limits]\nmax_session = 1\n", 2, "limits.max_session"),
            ("[audit]\njsonl = \"a\"\nfile = \"b\"\n", 3, "audit.file"),
            (
                "[tenants.acme]\nmax_spend = 1\n",
                2,
                "tenants.acme.max_spend",
            ),
            ("model = \"m\"\n\n[servce]\nlisten = \"x\"\n", 3, "servce"),
        ] {
            fails_at(text, line, key, "unknown field");
        }
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        for (text, line, key, needle) in [
            (
                "[supervisor]\nmax_restarts = 3\nstrategy = \"one_for_none\"\n",
                3,
                "supervisor.strategy",
                "one_for_one",
            ),
            (
                "[supervisor]\nmax_seconds = 0\n",
                2,
                "supervisor.max_seconds",
                "",
            ),
            (
                "[serve]\nlisten = \"localhost\"\n",
                2,
                "serve.listen",
                "127.0.0.1:8787",
            ),
            ("[serve]\nspares = -1\n", 2, "serve.spares", ""),
            (
                "[serve]\nsession_budget_usd = -2.0\n",
                2,
                "serve.session_budget_usd",
                "positive number of USD",
            ),
            (
                "[serve]\ncredential_proxy = \"yes\"\n",
                2,
                "serve.credential_proxy",
                "",
            ),
            ("[admission]\nmax_live = 0\n", 2, "admission.max_live", ""),
            (
                "[[sessions]]\nname = \"a\"\nrestart = \"always\"\n",
                3,
                "sessions.restart",
                "permanent",
            ),
            (
                "[[sessions]]\nname = \"has space\"\n",
                2,
                "sessions.name",
                "1-64 characters",
            ),
            (
                "[[sessions]]\nname = \"a\"\ntenant = \"a/b\"\n",
                3,
                "sessions.tenant",
                "tenant names",
            ),
            (
                "[[sessions]]\nname = \"a\"\n\n[[sessions]]\nname = \"a\"\n",
                5,
                "sessions.name",
                "already has a session named \"a\"",
            ),
            (
                "[[sessions]]\nname = \"a\"\nbudget_usd = -1.0\n",
                3,
                "sessions.budget_usd",
                "positive",
            ),
            (
                "[[sessions]]\nname = \"a\"\npermission_mode = \"yolo\"\n",
                3,
                "sessions.permission_mode",
                "",
            ),
            ("[[pools]]\nname = \"p\"\nsize = 0\n", 3, "pools.size", ""),
            (
                "[[pools]]\nname = \"p\"\n[[pools]]\nname = \"p\"\n",
                4,
                "pools.name",
                "already named \"p\"",
            ),
            (
                "[templates.t]\nmax_turns = 0\n",
                2,
                "templates.t.max_turns",
                "",
            ),
            (
                "[templates.\"bad name\"]\nmodel = \"m\"\n",
                1,
                "templates.\"bad name\"",
                "template names",
            ),
            (
                "[tenants.\"a/b\"]\nmax_sessions = 1\n",
                1,
                "tenants.\"a/b\"",
                "tenant names",
            ),
            (
                "[limits]\nmax_spend_usd = -5.0\n",
                2,
                "limits.max_spend_usd",
                "0 or more",
            ),
        ] {
            fails_at(text, line, key, needle);
        }
    }

    #[test]
    fn a_missing_name_names_the_entry() {
        let (_d, path) = write("[serve]\nspares = 1\n\n[[pools]]\nsize = 2\n");
        let err = load(&path, &[]).expect_err("no name");
        let msg = err.to_string();
        assert!(msg.contains("name"), "{msg}");
        assert!(
            matches!(&err, ConfigError::Invalid { key: Some(k), .. } if k.starts_with("pools")),
            "{err:?}"
        );
    }

    #[test]
    fn listen_and_data_dir_layer_file_env_flags() {
        let (_d, path) = write("[serve]\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/srv/file\"\n");
        let c = load(&path, &[]).expect("loads");
        assert_eq!(c.host.listen.port(), 9000);
        let c = load(
            &path,
            &[(LISTEN_ENV, "127.0.0.1:9001"), (DATA_DIR_ENV, "/srv/env")],
        )
        .expect("loads");
        assert_eq!(c.host.listen.port(), 9001);
        assert_eq!(c.origin("serve.listen"), Origin::Env(LISTEN_ENV.into()));
        assert_eq!(c.host.data_dir.as_deref(), Some(Path::new("/srv/env")));
        let flags = Overrides {
            listen: Some("127.0.0.1:9002".parse().expect("addr")),
            data_dir: Some("/srv/flag".into()),
            ..Overrides::default()
        };
        let c = ConfigLoader::new()
            .file(&path)
            .env_vars([(LISTEN_ENV, "127.0.0.1:9001")])
            .overrides(flags)
            .load()
            .expect("loads");
        assert_eq!(c.host.listen.port(), 9002);
        assert_eq!(c.origin("serve.listen"), Origin::Flag);
        assert_eq!(c.host.data_dir.as_deref(), Some(Path::new("/srv/flag")));
        assert_eq!(c.origin("serve.data_dir"), Origin::Flag);

        let err = load(&path, &[(LISTEN_ENV, "nowhere")]).expect_err("bad env");
        assert!(err.to_string().contains(LISTEN_ENV), "{err}");
    }

    #[test]
    fn data_dir_defaults_to_the_xdg_data_home() {
        let none = |env: &[(&str, &str)]| {
            ConfigLoader::new()
                .no_file()
                .env_vars(env.iter().copied())
                .load()
                .expect("loads")
                .host
                .data_dir
        };
        assert_eq!(
            none(&[("XDG_DATA_HOME", "/x/data"), ("HOME", "/home/u")]),
            Some(PathBuf::from("/x/data/claude-code"))
        );
        assert_eq!(
            none(&[("XDG_DATA_HOME", "relative"), ("HOME", "/home/u")]),
            Some(PathBuf::from("/home/u/.local/share/claude-code")),
            "a relative XDG_DATA_HOME is ignored"
        );
        assert_eq!(none(&[]), None);
        let c = ConfigLoader::new()
            .no_file()
            .env_vars([("HOME", "/home/u")])
            .load()
            .expect("loads");
        assert_eq!(c.origin("serve.data_dir"), Origin::Default);
        assert_eq!(c.host.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn the_cluster_section_is_read_strictly() {
        let (_d, path) = write("");
        let c = load(&path, &[]).expect("empty config");
        assert_eq!(c.host.cluster.to_config(), None, "no url: standalone");
        assert_eq!(c.value("cluster.heartbeat_secs").as_deref(), Some("2"));
        assert_eq!(c.value("cluster.placement").as_deref(), Some("capacity"));

        let (_d, path) = write(
            "[cluster]\nurl = \"nats://10.0.0.5:4222\"\nnode_name = \"web-1\"\nheartbeat_secs = 3\nlease_secs = 20\npool_ack_secs = 7\nplacement = \"local\"\n",
        );
        let c = load(&path, &[]).expect("config");
        let cluster = c.host.cluster.to_config().expect("clustered");
        assert_eq!(cluster.url, "nats://10.0.0.5:4222");
        assert_eq!(cluster.node_name.as_deref(), Some("web-1"));
        assert_eq!(cluster.heartbeat, Duration::from_secs(3));
        assert_eq!(cluster.lease, Duration::from_secs(20));
        assert_eq!(cluster.pool_ack_wait, Duration::from_secs(7));
        assert_eq!(cluster.placement, Placement::Local);
        assert_eq!(c.origin("cluster.url"), Origin::File(path));

        fails_at("[cluster]\nurls = \"x\"\n", 2, "cluster.urls", "unknown");
        fails_at(
            "[cluster]\nurl = \"http://x:1\"\n",
            2,
            "cluster.url",
            "nats://127.0.0.1:4222",
        );
        fails_at(
            "[cluster]\nnode_name = \"a.b\"\n",
            2,
            "cluster.node_name",
            "node names",
        );
        fails_at(
            "[cluster]\nplacement = \"nearest\"\n",
            2,
            "cluster.placement",
            "\"capacity\" or \"local\"",
        );
        fails_at(
            "[cluster]\nheartbeat_secs = 0\n",
            2,
            "cluster.heartbeat_secs",
            "",
        );
        fails_at(
            "[cluster]\npool_ack_secs = 0\n",
            2,
            "cluster.pool_ack_secs",
            "",
        );
    }

    #[test]
    fn the_cluster_credentials_and_tls_come_from_names_and_files_only() {
        let (d, path) = write(
            "[cluster]\nurl = \"tls://nats.internal:4222\"\nuser = \"web\"\npassword_env = \"NATS_PASSWORD\"\ntls_ca = \"ca.pem\"\ntls_cert = \"/etc/c.pem\"\ntls_key = \"k.pem\"\n",
        );
        let c = load(&path, &[]).expect("config");
        let cluster = c.host.cluster.to_config().expect("clustered");
        assert_eq!(
            cluster.auth,
            NatsAuth::UserPassword {
                user: "web".into(),
                password: SecretSource::env("NATS_PASSWORD"),
            }
        );
        assert!(!cluster.tls.required, "tls = true was not written");
        assert_eq!(
            cluster.tls.ca,
            Some(d.path().join("ca.pem")),
            "relative to the file"
        );
        assert_eq!(cluster.tls.cert, Some(PathBuf::from("/etc/c.pem")));
        assert_eq!(cluster.tls.key, Some(d.path().join("k.pem")));
        assert_eq!(
            c.value("cluster.password_env").as_deref(),
            Some("NATS_PASSWORD")
        );
        assert_eq!(c.value("cluster.password_file"), None);
        assert_eq!(c.value("cluster.token_env"), None);
        assert_eq!(c.value("cluster.user").as_deref(), Some("web"));
        assert_eq!(c.value("cluster.tls").as_deref(), Some("false"));
        assert_eq!(c.origin("cluster.user"), Origin::File(path.clone()));

        let (d, path) =
            write("[cluster]\nurl = \"nats://h:1\"\ntoken_file = \"secrets/tok\"\ntls = true\n");
        let c = load(&path, &[]).expect("config");
        let cluster = c.host.cluster.to_config().expect("clustered");
        assert_eq!(
            cluster.auth,
            NatsAuth::Token(SecretSource::file(d.path().join("secrets/tok")))
        );
        assert!(cluster.tls.required);
        let (d, path) = write("[cluster]\nurl = \"nats://h:1\"\ncreds_file = \"x.creds\"\n");
        let c = load(&path, &[]).expect("config");
        assert_eq!(
            c.host.cluster.auth,
            NatsAuth::Creds(d.path().join("x.creds"))
        );

        // A secret in the file is refused, and the message does not repeat it.
        for key in ["password", "token"] {
            let text = format!("[cluster]\n{key} = \"hunter2\"\n");
            fails_at(
                &text,
                2,
                &format!("cluster.{key}"),
                "not written in claude-code.toml",
            );
            let (_d, path) = write(&text);
            let err = load(&path, &[])
                .expect_err("secret in the file")
                .to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
        fails_at(
            "[cluster]\nurl = \"nats://web:hunter2@h:1\"\n",
            2,
            "cluster.url",
            "credentials in the URL",
        );
        let (_d, path) = write("[cluster]\nurl = \"nats://web:hunter2@h:1\"\n");
        let err = load(&path, &[])
            .expect_err("credentials in the URL")
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        fails_at(
            "[cluster]\nuser = \"web\"\n",
            2,
            "cluster.user",
            "needs its password",
        );
        fails_at(
            "[cluster]\npassword_env = \"P\"\n",
            2,
            "cluster.password_env",
            "needs its user",
        );
        fails_at(
            "[cluster]\nuser = \"w\"\npassword_env = \"P\"\npassword_file = \"p\"\n",
            4,
            "cluster.password_file",
            "not both",
        );
        fails_at(
            "[cluster]\ncreds_file = \"a.creds\"\ntoken_env = \"T\"\n",
            3,
            "cluster.token_env",
            "authenticate one way",
        );
        fails_at(
            "[cluster]\ntoken_env = \"NOT-A-NAME\"\n",
            2,
            "cluster.token_env",
            "environment variable",
        );
        fails_at(
            "[cluster]\ntls_cert = \"c.pem\"\n",
            2,
            "cluster.tls_cert",
            "set tls_key",
        );
        fails_at("[cluster]\ntls = \"yes\"\n", 2, "cluster.tls", "");
    }

    #[test]
    fn sandbox_and_resources_default_on_and_are_read_strictly() {
        let (_d, path) = write("");
        let c = load(&path, &[]).expect("empty config");
        assert_eq!(c.host.sandbox.mode, SandboxMode::Auto);
        assert_eq!(c.host.resources, Some(default_resources()));

        let (d, path) = write(
            "[sandbox]\nmode = \"required\"\nnetwork = \"host\"\nwork_root = \"w\"\nhide = [\"secret\"]\n\
             [resources]\npids = 64\nmemory_bytes = 1000000000\nrequired = true\n",
        );
        let c = load(&path, &[]).expect("config");
        assert_eq!(c.host.sandbox.mode, SandboxMode::Required);
        assert_eq!(c.host.sandbox.network, SandboxNetwork::Host);
        assert_eq!(c.host.sandbox.work_root, Some(d.path().join("w")));
        assert_eq!(c.host.sandbox.hide, vec![d.path().join("secret")]);
        let r = c.host.resources.expect("limits");
        assert_eq!((r.pids, r.memory_bytes), (Some(64), Some(1_000_000_000)));
        assert_eq!(
            r.open_files,
            default_resources().open_files,
            "unset keys keep the defaults"
        );
        assert_eq!(r.fallback, Fallback::Error);

        let (_d, path) = write("[resources]\nenabled = false\n");
        assert_eq!(load(&path, &[]).expect("config").host.resources, None);

        fails_at(
            "[sandbox]\nmodes = \"off\"\n",
            2,
            "sandbox.modes",
            "unknown",
        );
        fails_at("[resources]\npid = 3\n", 2, "resources.pid", "unknown");
    }
}
