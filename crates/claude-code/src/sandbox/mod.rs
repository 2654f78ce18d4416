//! Confinement of the CLI process by the operating system: filesystem and network
//! ([`Sandbox`]) and resource limits ([`ResourceLimits`]). Linux only; elsewhere asking
//! for either is [`Error::SandboxUnavailable`](crate::Error::SandboxUnavailable) (or a
//! logged downgrade with [`Fallback::Downgrade`]).
//!
//! This is separate from the CLI's *own* sandbox ([`Options::sandbox`](crate::Options::sandbox),
//! typed as [`SandboxSettings`](crate::SandboxSettings)), which confines the Bash commands the
//! CLI runs; both can be on at once. Here the whole CLI, every tool and MCP server it starts
//! included, runs confined:
//!
//! - **Filesystem** (bubblewrap): the host's tree read-only, a private `/tmp`, a fresh
//!   `/proc` and `/dev`, one writable work dir (the CLI's working directory, its config
//!   dir and transcripts included unless `CLAUDE_CONFIG_DIR` is set with
//!   [`Options::env`](crate::Options::env)), hidden paths (an empty tmpfs over them) and extra
//!   binds.
//! - **Network** ([`Network`]): a private network namespace made by this process; with
//!   [`Network::Forward`] its one open port, `127.0.0.1:<port>`, is forwarded to one
//!   address outside (the credential proxy, or the API). Nothing else answers.
//! - **Resources** ([`ResourceLimits`]): rlimits set between fork and exec, memory and
//!   process count through a cgroup of the CLI's own (v2 when delegated, else v1). A hit
//!   ends the session with [`Error::ResourceLimit`](crate::Error::ResourceLimit).
//!
//! ```no_run
//! # async fn demo() -> claude_code::Result<()> {
//! use claude_code::{sandbox::{Network, ResourceLimits, Sandbox}, Options, Session};
//! let api = "127.0.0.1:8080".parse().expect("address");
//! let opts = Options::new()
//!     .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:8080")
//!     .confine(Sandbox::new("/srv/agents/work/alice").network(Network::forward(api)))
//!     .resource_limits(ResourceLimits::new().memory_bytes(2 << 30).pids(256));
//! let session = Session::start(opts).await?;
//! # Ok(()) }
//! ```

pub use crate::error::LimitKind;
use std::{net::SocketAddr, path::PathBuf};

#[cfg(target_os = "linux")]
pub(crate) mod linux;

/// What one spawn asks of the sandbox, taken from the session's options by the transport
/// (so that this module does not depend on `options`).
#[derive(Debug, Default)]
pub(crate) struct SpawnRequest<'a> {
    /// Filesystem and network confinement, if any.
    pub(crate) sandbox: Option<&'a Sandbox>,
    /// Resource limits, if any.
    pub(crate) limits: Option<&'a ResourceLimits>,
    /// The CLI's working directory.
    pub(crate) cwd: Option<PathBuf>,
    /// The sandbox's own config dir, unless the options name one.
    pub(crate) sandbox_config_dir: Option<PathBuf>,
    /// The config dir the CLI will use otherwise.
    pub(crate) cli_config_dir: Option<PathBuf>,
}

/// The bubblewrap program looked up in `PATH` unless [`Sandbox::bwrap`] names one.
pub const DEFAULT_BWRAP: &str = "bwrap";

/// How to install bubblewrap, for error messages.
pub const INSTALL_BWRAP: &str =
    "install bubblewrap (Debian/Ubuntu: `apt-get install -y bubblewrap`; Fedora: `dnf install bubblewrap`) \
     or run the project's scripts/install-sandbox";

/// What to do when confinement cannot be set up on this machine (bubblewrap missing or
/// unusable, no permission for a network namespace or a cgroup, not Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fallback {
    /// Refuse to start the CLI: [`Error::SandboxUnavailable`](crate::Error::SandboxUnavailable)
    /// names what is missing and how to get it (the default: security checks fail closed).
    #[default]
    Error,
    /// Log a warning (`tracing::warn!`) and run without the missing part.
    Downgrade,
}

/// What a work dir becomes when the CLI ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WorkDirPolicy {
    /// Keep it (the default): a restart or a wake with `--resume` finds the transcript.
    #[default]
    Keep,
    /// Remove it (and everything in it, the transcript too) when the CLI is stopped.
    RemoveOnClose,
}

/// The CLI's network inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Network {
    /// No network at all: only a loopback interface with nothing listening (the
    /// default; the CLI cannot reach the API either, so most sessions want
    /// [`Network::Forward`]).
    #[default]
    None,
    /// A private namespace whose only open port, `127.0.0.1:port`, is forwarded to `to`
    /// (the credential proxy or the Messages API) by this process. Point
    /// `ANTHROPIC_BASE_URL` at `http://127.0.0.1:<port>`.
    Forward {
        /// The port inside the sandbox.
        port: u16,
        /// Where each connection goes, outside.
        to: SocketAddr,
    },
    /// The host's network, unconfined.
    Host,
}

impl Network {
    /// [`Network::Forward`] on the same port as `to`, so that an `ANTHROPIC_BASE_URL`
    /// that names `127.0.0.1:<to's port>` works unchanged inside the sandbox.
    pub fn forward(to: SocketAddr) -> Self {
        Network::Forward {
            port: to.port(),
            to,
        }
    }
}

/// Filesystem and network confinement of the CLI (see the [module docs](self)). Build
/// one, then pass it to [`Options::confine`](crate::Options::confine).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Sandbox {
    pub(crate) work_dir: PathBuf,
    pub(crate) work_dir_policy: WorkDirPolicy,
    pub(crate) filesystem: bool,
    pub(crate) network: Network,
    pub(crate) hide: Vec<PathBuf>,
    pub(crate) read_write: Vec<PathBuf>,
    pub(crate) read_only: Vec<PathBuf>,
    pub(crate) bwrap: PathBuf,
    pub(crate) fallback: Fallback,
    pub(crate) run_as: Option<(u32, u32)>,
    pub(crate) per_process: bool,
}

impl Sandbox {
    /// Filesystem confinement with `work_dir` as the one writable directory (created
    /// when the CLI starts, kept when it ends), no network, [`Fallback::Error`].
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        Sandbox {
            work_dir: work_dir.into(),
            work_dir_policy: WorkDirPolicy::Keep,
            filesystem: true,
            network: Network::None,
            hide: Vec::new(),
            read_write: Vec::new(),
            read_only: Vec::new(),
            bwrap: PathBuf::from(DEFAULT_BWRAP),
            fallback: Fallback::Error,
            run_as: None,
            per_process: false,
        }
    }

    /// Like [`Sandbox::new`], but every CLI started with these options gets a fresh work
    /// dir of its own under `root`, removed when it ends (for throwaway sessions such as
    /// warm spares; nothing survives a restart, so `--resume` finds no transcript).
    pub fn per_process(root: impl Into<PathBuf>) -> Self {
        Sandbox::new(root).fresh_per_process(true)
    }

    /// The same sandbox with another work dir (a host's template made per session).
    pub fn relocate(mut self, work_dir: impl Into<PathBuf>) -> Self {
        self.work_dir = work_dir.into();
        self
    }

    /// With `true`, [`work_dir`](Self::work_dir) is a root under which each CLI gets a
    /// fresh dir, removed when it ends (see [`Sandbox::per_process`]).
    pub fn fresh_per_process(mut self, on: bool) -> Self {
        self.per_process = on;
        if on {
            self.work_dir_policy = WorkDirPolicy::RemoveOnClose;
        }
        self
    }

    /// The writable work dir (with [`Sandbox::per_process`], the root of the work dirs).
    pub fn work_dir(&self) -> &std::path::Path {
        &self.work_dir
    }

    /// Keep or remove the work dir when the CLI ends (default [`WorkDirPolicy::Keep`]).
    pub fn work_dir_policy(mut self, policy: WorkDirPolicy) -> Self {
        self.work_dir_policy = policy;
        self
    }

    /// Whether to confine the filesystem with bubblewrap (default `true`). With `false`
    /// only the network and the resource limits apply; the work dir is still created and
    /// is the CLI's working directory.
    pub fn filesystem(mut self, on: bool) -> Self {
        self.filesystem = on;
        self
    }

    /// The CLI's network (default [`Network::None`]).
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Hide a directory: the CLI sees an empty one in its place (for example the root
    /// that holds every session's work dir, so that one session cannot read another's;
    /// the session's own work dir stays visible inside it).
    pub fn hide(mut self, path: impl Into<PathBuf>) -> Self {
        self.hide.push(path.into());
        self
    }

    /// Make one more path writable (it must exist).
    pub fn read_write(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_write.push(path.into());
        self
    }

    /// Make a path readable again under a hidden one (it must exist).
    pub fn read_only(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_only.push(path.into());
        self
    }

    /// The bubblewrap program (default `bwrap`, looked up in `PATH`).
    pub fn bwrap(mut self, program: impl Into<PathBuf>) -> Self {
        self.bwrap = program.into();
        self
    }

    /// What to do when confinement cannot be set up (default [`Fallback::Error`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Checks, without starting a CLI, that this machine can set up this confinement:
    /// bubblewrap (when [`filesystem`](Self::filesystem) is on) and a private network
    /// namespace (unless [`Network::Host`]). Ignores the fallback policy: the error says
    /// what is missing and how to get it. Hosts use it once at start.
    pub async fn check(&self) -> crate::Result<()> {
        #[cfg(target_os = "linux")]
        {
            linux::check_sandbox(self).await
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(unsupported())
        }
    }

    /// Run the CLI as this user and group (the host must be root; bubblewrap then runs
    /// unprivileged and needs unprivileged user namespaces). The work dir is given to
    /// that user.
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.run_as = Some((uid, gid));
        self
    }
}

/// Per-CLI resource limits (see the [module docs](self)). `None` leaves a limit as the
/// host has it. Rlimits count per process (the CLI, and each tool process on its own);
/// memory and pids count the CLI with everything it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
#[non_exhaustive]
pub struct ResourceLimits {
    /// Open files per process (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Processes of the user (`RLIMIT_NPROC`; ignored for root: use [`pids`](Self::pids)).
    pub processes: Option<u64>,
    /// CPU seconds per process (`RLIMIT_CPU`; the CLI gets SIGXCPU past it).
    pub cpu_seconds: Option<u64>,
    /// Memory of the CLI and everything it starts, in bytes (cgroup).
    pub memory_bytes: Option<u64>,
    /// Processes and threads of the CLI and everything it starts (cgroup).
    pub pids: Option<u64>,
    /// What to do when the cgroup cannot be made (default [`Fallback::Error`]).
    pub fallback: Fallback,
}

impl ResourceLimits {
    /// No limits yet; core dumps are always off (`RLIMIT_CORE` 0) once limits are set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Open files per process.
    pub fn open_files(mut self, n: u64) -> Self {
        self.open_files = Some(n);
        self
    }

    /// Processes of the CLI's user (`RLIMIT_NPROC`).
    pub fn processes(mut self, n: u64) -> Self {
        self.processes = Some(n);
        self
    }

    /// CPU seconds per process.
    pub fn cpu_seconds(mut self, seconds: u64) -> Self {
        self.cpu_seconds = Some(seconds);
        self
    }

    /// Memory of the whole CLI tree, in bytes.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    /// Processes and threads of the whole CLI tree.
    pub fn pids(mut self, n: u64) -> Self {
        self.pids = Some(n);
        self
    }

    /// What to do when the cgroup cannot be made.
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Checks, without starting a CLI, that this machine can enforce these limits (makes
    /// and removes a cgroup when memory or pids are limited). Ignores the fallback policy.
    pub fn check(&self) -> crate::Result<()> {
        #[cfg(target_os = "linux")]
        {
            linux::check_limits(self)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(unsupported())
        }
    }

    /// True when a memory or pids limit needs a cgroup.
    pub(crate) fn needs_cgroup(&self) -> bool {
        self.memory_bytes.is_some() || self.pids.is_some()
    }
}

/// The cgroups this process made for its CLIs that still exist (each is removed once
/// its CLI has ended and everything in it is gone). Empty off Linux. For health checks
/// and tests.
pub fn live_cgroups() -> Vec<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        linux::live_cgroups()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

#[cfg(not(target_os = "linux"))]
fn unsupported() -> crate::Error {
    crate::Error::SandboxUnavailable {
        missing: "confinement and resource limits are only built for Linux".into(),
        fix: "run on Linux, or leave them off".into(),
    }
}
