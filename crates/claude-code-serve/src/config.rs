//! How to run the host: [`HostConfig`] and the parts it is made of. `claude-code serve`
//! builds it from `claude-code.toml`, the environment and flags; embedders build it in
//! code.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use claude_code::{sandbox::ResourceLimits, Admission, Options, SessionSpec, Strategy};

/// How to run the host.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostConfig {
    /// Where to listen. Without tokens in the state store, loopback only.
    pub listen: SocketAddr,
    /// The options every session starts from.
    pub options: Options,
    /// Largest request body in bytes (default 1 MiB; larger is 413).
    pub max_body_bytes: usize,
    /// Warm sessions kept ready for `POST /v1/query` (default 1).
    pub spares: usize,
    /// Without `ANTHROPIC_API_KEY` (or with this set), start the project's mock Messages
    /// API in-process and point every session at it.
    pub offline: Option<bool>,
    /// Where the state store (`claude-code.db`) lives; `None` keeps state in memory only
    /// (tests, throwaway hosts).
    pub data_dir: Option<PathBuf>,
    /// The restart policy of the supervisor that holds every session.
    pub supervisor: SupervisorSettings,
    /// Named sessions started with the host (the config's `[[sessions]]`), in order,
    /// under the one supervisor with the others.
    pub sessions: Vec<NamedSession>,
    /// Pools started with the host, served at `POST /v1/pools/{name}/messages`.
    pub pools: Vec<PoolConfig>,
    /// Session templates that `POST /v1/sessions` may name with `"template"`: the
    /// options such a session starts from instead of [`options`](Self::options).
    pub templates: BTreeMap<String, Options>,
    /// Memory admission control for new CLIs, if any.
    pub admission: Option<Admission>,
    /// Dynamic sessions hibernate after idling this long (default 10 minutes).
    pub idle_timeout: Duration,
    /// Limits of every tenant without an entry in [`tenants`](Self::tenants).
    pub limits: TenantLimits,
    /// Per-tenant limits.
    pub tenants: BTreeMap<String, TenantLimits>,
    /// How long a drain waits for running turns before stopping their CLIs (default
    /// 30 s).
    pub drain_timeout: Duration,
    /// When a session turn's HTTP client goes away: `false` (default) lets the turn run
    /// to its end, `true` interrupts it. Either way the session stays and the turn's cost
    /// is recorded.
    pub interrupt_on_disconnect: bool,
    /// Also append the audit trail (HTTP calls and session events, redacted) to this
    /// file as JSON lines (created mode 0600 if missing; flushed after every batch and
    /// at shutdown). The state store keeps it either way.
    pub audit_jsonl: Option<PathBuf>,
    /// Filesystem and network confinement of every CLI (`[sandbox]`; default off here,
    /// `auto` in `claude-code serve`).
    pub sandbox: SandboxConfig,
    /// Resource limits of every CLI (`[resources]`; default none here, generous limits
    /// in `claude-code serve`).
    pub resources: Option<ResourceLimits>,
    /// Start every CLI through the host's credential proxy (default `true`): the child
    /// gets `ANTHROPIC_BASE_URL` pointing at a loopback proxy and a per-session token as
    /// its `ANTHROPIC_API_KEY`; the real key (or `ANTHROPIC_AUTH_TOKEN`) stays in the
    /// host. Needs a credential in the sessions' environment (else a session runs
    /// without it, on the CLI's own login).
    pub credential_proxy: bool,
    /// The host variables every CLI inherits (default [`claude_code::options::MINIMAL_ENV`]:
    /// `PATH`, `HOME`, `LANG`, `LC_*`, `TERM`, `TMPDIR`); a session's own `env` entries
    /// come on top. `None` inherits the host's whole environment (not recommended: its
    /// secrets reach every tool the model runs).
    pub inherit_env: Option<Vec<String>>,
    /// Each session's budget at the credential proxy unless it sets its own
    /// (`budget_usd` of `POST /v1/sessions`, or its [`SessionSpec::budget_usd`]).
    pub session_budget_usd: Option<f64>,
    /// Most API requests per minute per session, enforced at the credential proxy.
    pub session_requests_per_minute: Option<u32>,
    /// Join a cluster of hosts over NATS JetStream (`[cluster]`, `serve --cluster`; see
    /// [`cluster`](crate::cluster)). `None`: a standalone host.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// When to confine the CLIs with bubblewrap and a private network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SandboxMode {
    /// No confinement.
    #[default]
    Off,
    /// Confine when this machine can (checked once at start); otherwise one warning and
    /// run unconfined. After a successful check, a later failure is an error.
    Auto,
    /// Confine, or refuse to start.
    Required,
}

/// The CLIs' network under confinement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SandboxNetwork {
    /// Only the Messages API address the host gives its CLIs (the mock, or a loopback
    /// `ANTHROPIC_BASE_URL` such as the credential proxy), forwarded into a private
    /// network namespace.
    #[default]
    ProxyOnly,
    /// The host's network.
    Host,
}

/// `[sandbox]`: how every CLI is confined (see `claude_code::sandbox`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// Off, auto or required.
    pub mode: SandboxMode,
    /// Network policy.
    pub network: SandboxNetwork,
    /// Where session work dirs go (`<tenant>/<name>` below it; default
    /// `<data dir>/work`, or a temporary directory without a data dir). Hidden from
    /// every CLI but its own dir.
    pub work_root: Option<PathBuf>,
    /// More paths hidden from the CLIs (the data dir always is).
    pub hide: Vec<PathBuf>,
    /// More writable paths.
    pub read_write: Vec<PathBuf>,
    /// Paths readable again under a hidden one.
    pub read_only: Vec<PathBuf>,
    /// The bubblewrap program (default `bwrap` in `PATH`).
    pub bwrap: Option<PathBuf>,
}

impl SandboxConfig {
    /// Confinement in `mode` with the defaults.
    pub fn new(mode: SandboxMode) -> Self {
        SandboxConfig {
            mode,
            ..Self::default()
        }
    }
}

/// The resource limits `claude-code serve` applies by default: generous for an agent
/// (4 GiB of memory and 1024 processes and threads per CLI tree, 4096 open files per
/// process, no CPU limit since a CLI lives for many turns), logged and skipped where the
/// machine has no cgroup for them.
pub fn default_resources() -> ResourceLimits {
    ResourceLimits::new()
        .memory_bytes(4 << 30)
        .pids(1024)
        .open_files(4096)
        .fallback(claude_code::sandbox::Fallback::Downgrade)
}

/// The restart policy of the host's supervisor (OTP's `strategy`, `max_restarts`,
/// `max_seconds`).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SupervisorSettings {
    /// Which children restart when one ends (default one_for_one).
    pub strategy: Strategy,
    /// Most restarts within `max_seconds` before the supervisor gives up (default 3).
    pub max_restarts: u32,
    /// The window for `max_restarts` (default 5).
    pub max_seconds: u64,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            strategy: Strategy::OneForOne,
            max_restarts: 3,
            max_seconds: 5,
        }
    }
}

/// A named session declared in the configuration, owned by a tenant.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NamedSession {
    /// The tenant that sees and uses it (`default` for anonymous hosts).
    pub tenant: String,
    /// Its name (unique per tenant), options and restart policy. The options are its
    /// own: start them from the host's [`options`](HostConfig::options) to share those.
    pub spec: SessionSpec,
}

impl NamedSession {
    /// A session for `tenant`.
    pub fn new(tenant: impl Into<String>, spec: SessionSpec) -> Self {
        NamedSession {
            tenant: tenant.into(),
            spec,
        }
    }
}

/// A pool declared in the configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Its name in `/v1/pools/{name}/messages`.
    pub name: String,
    /// What each member runs (its own options, not the host's).
    pub options: Options,
    /// Members (default 2).
    pub size: usize,
    /// Warm spares for isolated requests (default 0).
    pub warm_spares: usize,
    /// Most requests waiting for a member; more are 429 (default 64).
    pub max_queue: usize,
    /// Longest wait for a member; longer is 429 (default 30 s).
    pub queue_timeout: Duration,
}

impl PoolConfig {
    /// A pool of `size` members with the defaults.
    pub fn new(name: impl Into<String>, options: Options, size: usize) -> Self {
        PoolConfig {
            name: name.into(),
            options,
            size,
            warm_spares: 0,
            max_queue: 64,
            queue_timeout: Duration::from_secs(30),
        }
    }
}

/// What one tenant may use. `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TenantLimits {
    /// Most sessions (live or hibernated) at once.
    pub max_sessions: Option<usize>,
    /// Most turns running at once.
    pub max_concurrent_turns: Option<usize>,
    /// Most API requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Most USD spent in total (from the cost ledger).
    pub max_spend_usd: Option<f64>,
}

impl TenantLimits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most sessions (live or hibernated) at once.
    #[must_use]
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = Some(n);
        self
    }

    /// Most turns running at once.
    #[must_use]
    pub fn max_concurrent_turns(mut self, n: usize) -> Self {
        self.max_concurrent_turns = Some(n);
        self
    }

    /// Most API requests per minute.
    #[must_use]
    pub fn requests_per_minute(mut self, n: u32) -> Self {
        self.requests_per_minute = Some(n);
        self
    }

    /// Most USD spent in total.
    #[must_use]
    pub fn max_spend_usd(mut self, usd: f64) -> Self {
        self.max_spend_usd = Some(usd);
        self
    }
}

impl HostConfig {
    /// Defaults: the given address, default options, 1 MiB bodies, one warm spare, offline
    /// when no `ANTHROPIC_API_KEY` is set, state in memory, no declared sessions or pools,
    /// no limits, the credential proxy on, children inheriting only
    /// [`MINIMAL_ENV`](claude_code::options::MINIMAL_ENV).
    pub fn new(listen: SocketAddr) -> Self {
        HostConfig {
            listen,
            options: Options::new(),
            max_body_bytes: 1024 * 1024,
            spares: 1,
            offline: None,
            data_dir: None,
            supervisor: SupervisorSettings::default(),
            sessions: Vec::new(),
            pools: Vec::new(),
            templates: BTreeMap::new(),
            admission: None,
            idle_timeout: Duration::from_secs(600),
            limits: TenantLimits::default(),
            tenants: BTreeMap::new(),
            drain_timeout: Duration::from_secs(30),
            interrupt_on_disconnect: false,
            audit_jsonl: None,
            sandbox: SandboxConfig::default(),
            resources: None,
            credential_proxy: true,
            inherit_env: Some(
                claude_code::options::MINIMAL_ENV
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            session_budget_usd: None,
            session_requests_per_minute: None,
            cluster: None,
        }
    }

    /// Join a cluster.
    #[must_use]
    pub fn cluster(mut self, cluster: crate::cluster::ClusterConfig) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Confine every CLI.
    #[must_use]
    pub fn sandbox(mut self, sandbox: SandboxConfig) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Resource limits of every CLI.
    #[must_use]
    pub fn resources(mut self, limits: ResourceLimits) -> Self {
        self.resources = Some(limits);
        self
    }

    /// Turn the credential proxy on (the default) or off.
    #[must_use]
    pub fn credential_proxy(mut self, on: bool) -> Self {
        self.credential_proxy = on;
        self
    }

    /// The host variables every CLI inherits (`None`: all of them).
    #[must_use]
    pub fn inherit_env(mut self, names: Option<Vec<String>>) -> Self {
        self.inherit_env = names;
        self
    }

    /// The options every session starts from.
    #[must_use]
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Force offline (`true`: the in-process mock) or online (`false`).
    #[must_use]
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = Some(offline);
        self
    }

    /// Keep durable state in `dir` (created if missing).
    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Limits of every tenant without its own entry.
    #[must_use]
    pub fn limits(mut self, limits: TenantLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Limits of one tenant.
    #[must_use]
    pub fn tenant_limits(mut self, tenant: impl Into<String>, limits: TenantLimits) -> Self {
        self.tenants.insert(tenant.into(), limits);
        self
    }

    /// Adds a named session.
    #[must_use]
    pub fn session(mut self, session: NamedSession) -> Self {
        self.sessions.push(session);
        self
    }

    /// Adds a pool.
    #[must_use]
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.pools.push(pool);
        self
    }

    /// Adds a template for `POST /v1/sessions`.
    #[must_use]
    pub fn template(mut self, name: impl Into<String>, options: Options) -> Self {
        self.templates.insert(name.into(), options);
        self
    }

    /// Dynamic sessions hibernate after idling this long.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a drain waits for running turns.
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Also write the audit trail to `path` as JSON lines.
    #[must_use]
    pub fn audit_jsonl(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_jsonl = Some(path.into());
        self
    }

    /// The limits that apply to `tenant`.
    pub fn limits_for(&self, tenant: &str) -> &TenantLimits {
        self.tenants.get(tenant).unwrap_or(&self.limits)
    }
}
