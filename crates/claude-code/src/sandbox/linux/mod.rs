//! Linux confinement: the bubblewrap command line, the private network namespace and
//! its forwarder, the cgroup and its watcher. [`prepare`] turns options into what the
//! transport spawns (program, argv prefix, child setup) and a [`Guard`] that lives as
//! long as the CLI.

use std::{
    collections::HashMap,
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use nix::sys::resource::Resource;
use tokio::task::JoinHandle;

use super::{Fallback, LimitKind, Network, ResourceLimits, Sandbox, WorkDirPolicy, INSTALL_BWRAP};
use crate::error::{Error, ExitInfo, Result};

mod cgroup;
mod sys;

pub(crate) use cgroup::{live_cgroups, Cgroup};
pub(crate) use sys::ChildSetup;

/// How often the watcher reads the cgroup's event counters.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// SIGXCPU, and the exit code a shell or bubblewrap reports for it.
const SIGXCPU: i32 = 24;

/// What the transport spawns instead of the bare CLI.
pub(crate) struct Prepared {
    /// The program to run: bubblewrap, or the CLI itself.
    pub(crate) program: PathBuf,
    /// Arguments before the CLI's own (bubblewrap's, ending in `-- <cli>`).
    pub(crate) prefix: Vec<OsString>,
    /// The working directory (the work dir unless the options name one).
    pub(crate) cwd: Option<PathBuf>,
    /// Environment set on top of the options' (the CLI's config dir).
    pub(crate) env: Vec<(String, OsString)>,
    /// What the child does between fork and exec.
    pub(crate) child: ChildSetup,
    /// Lives as long as the CLI.
    pub(crate) guard: Guard,
}

/// The confinement state of one running CLI: the forwarder, the cgroup and its watcher.
/// Dropping it ends the forwarder, kills what is left in the cgroup, removes the cgroup
/// and (by policy) the work dir.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    cgroup: Option<Arc<Cgroup>>,
    hit: Arc<OnceLock<LimitKind>>,
    tasks: Vec<JoinHandle<()>>,
    cpu_limited: bool,
    files_limited: bool,
    remove_dir: Option<PathBuf>,
}

impl Guard {
    /// Reads the cgroup's counters now, not waiting for the watcher's next round: the
    /// limit hit, if any. On a hit the CLI's cgroup is ended, as the watcher would.
    pub(crate) fn check_now(&self) -> Option<LimitKind> {
        if let Some(kind) = self.hit.get() {
            return Some(*kind);
        }
        let cgroup = self.cgroup.as_ref()?;
        let kind = cgroup.hit()?;
        if self.hit.set(kind).is_ok() {
            tracing::warn!(
                limit = kind.as_str(),
                "the claude CLI hit a resource limit; ending it"
            );
            let cg = cgroup.clone();
            tokio::task::spawn_blocking(move || cg.kill_all(Duration::from_secs(5)));
        }
        Some(kind)
    }

    /// The limit the CLI hit, if its end was one: the watcher's finding, or an exit by
    /// SIGXCPU under a CPU limit, or "too many open files" on stderr under a file limit.
    pub(crate) fn limit_hit(&self, exit: &ExitInfo, stderr: &str) -> Option<LimitKind> {
        if let Some(kind) = self.hit.get() {
            return Some(*kind);
        }
        if let Some(kind) = self.cgroup.as_ref().and_then(|c| c.hit()) {
            return Some(kind);
        }
        let xcpu = matches!(exit, ExitInfo::Signal(SIGXCPU) | ExitInfo::Code(152));
        if self.cpu_limited && xcpu {
            return Some(LimitKind::CpuTime);
        }
        if self.files_limited
            && (stderr.contains("EMFILE") || stderr.contains("too many open files"))
        {
            return Some(LimitKind::OpenFiles);
        }
        None
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let cgroup = self.cgroup.take();
        let dir = self.remove_dir.take();
        if cgroup.is_none() && dir.is_none() {
            return;
        }
        // Waiting for the kernel to tear processes down must not block a runtime thread.
        let cleanup = move || {
            if let Some(cg) = cgroup {
                cg.remove();
            }
            if let Some(dir) = dir {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove a sandbox work dir");
                }
            }
        };
        if std::thread::Builder::new()
            .name("claude-code-sandbox-cleanup".into())
            .spawn(cleanup)
            .is_err()
        {
            tracing::warn!(
                "could not start the sandbox cleanup thread; a cgroup may be left behind"
            );
        }
    }
}

/// Applies `fallback` to a missing piece: an error, or a warning and `None`.
fn unavailable<T>(fallback: Fallback, missing: String, fix: &str) -> Result<Option<T>> {
    match fallback {
        Fallback::Error => Err(Error::SandboxUnavailable {
            missing,
            fix: fix.to_string(),
        }),
        Fallback::Downgrade => {
            tracing::warn!(%missing, fix, "confinement downgraded: running the claude CLI without it");
            Ok(None)
        }
    }
}

/// Builds the confinement for one spawn of `cli`, or `None` when the request asks for none.
pub(crate) async fn prepare(cli: &Path, req: super::SpawnRequest<'_>) -> Result<Option<Prepared>> {
    let sandbox = req.sandbox;
    let limits = req.limits;
    if sandbox.is_none() && limits.is_none() {
        return Ok(None);
    }
    let mut guard = Guard::default();
    let mut child = ChildSetup::default();
    let mut program = cli.to_path_buf();
    let mut prefix = Vec::new();
    let mut cwd = req.cwd;
    let mut env = Vec::new();

    if let Some(limits) = limits {
        child.rlimits = rlimits(limits);
        guard.cpu_limited = limits.cpu_seconds.is_some();
        guard.files_limited = limits.open_files.is_some();
        if limits.needs_cgroup() {
            match Cgroup::create(limits).and_then(|cg| cg.procs_files().map(|f| (cg, f))) {
                Ok((cg, files)) => {
                    child.cgroup_procs = files;
                    let cg = Arc::new(cg);
                    guard
                        .tasks
                        .push(tokio::spawn(watch(cg.clone(), guard.hit.clone())));
                    guard.cgroup = Some(cg);
                }
                Err(e) => {
                    unavailable::<()>(
                        limits.fallback,
                        format!("no cgroup for the memory and pids limits ({e})"),
                        CGROUP_FIX,
                    )?;
                }
            }
        }
    }

    if let Some(sb) = sandbox {
        let sb = &match sb.per_process {
            true => Sandbox {
                work_dir: sb.work_dir.join(unique_name()),
                ..sb.clone()
            },
            false => sb.clone(),
        };
        std::fs::create_dir_all(&sb.work_dir).map_err(|e| Error::SandboxUnavailable {
            missing: format!("cannot create the work dir {}: {e}", sb.work_dir.display()),
            fix: "choose a work dir the host can create".into(),
        })?;
        let config_dir = match req.sandbox_config_dir {
            Some(_) => {
                let dir = sb.work_dir.join(".claude");
                env.push((
                    "CLAUDE_CONFIG_DIR".to_string(),
                    dir.clone().into_os_string(),
                ));
                Some(dir)
            }
            None => req.cli_config_dir,
        };
        if let Some(dir) = &config_dir {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Some((uid, gid)) = sb.run_as {
            for dir in std::iter::once(&sb.work_dir).chain(config_dir.iter()) {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| {
                    Error::SandboxUnavailable {
                        missing: format!("cannot give {} to uid {uid}: {e}", dir.display()),
                        fix: "run the host as root to use run_as".into(),
                    }
                })?;
            }
            child.run_as = Some((uid, gid));
        }
        if cwd.is_none() {
            cwd = Some(sb.work_dir.clone());
        }
        if sb.work_dir_policy == WorkDirPolicy::RemoveOnClose {
            guard.remove_dir = Some(sb.work_dir.clone());
        }
        if sb.filesystem {
            match bwrap_usable(&sb.bwrap).await {
                Ok(path) => {
                    prefix = bwrap_args(sb, cli, cwd.as_deref(), config_dir.as_deref());
                    program = path;
                }
                Err(missing) => {
                    unavailable::<()>(sb.fallback, missing, INSTALL_BWRAP)?;
                }
            }
        }
        match sb.network {
            Network::Host => {}
            Network::None => match sys::private_netns(None) {
                Ok((ns, _)) => child.netns = Some(ns),
                Err(e) => {
                    unavailable::<()>(sb.fallback, netns_missing(&e), NETNS_FIX)?;
                }
            },
            Network::Forward { port, to } => match sys::private_netns(Some(port)) {
                Ok((ns, Some(listener))) => {
                    child.netns = Some(ns);
                    guard.tasks.push(forwarder(listener, to)?);
                }
                Ok((_, None)) => unreachable_listener()?,
                Err(e) => {
                    unavailable::<()>(sb.fallback, netns_missing(&e), NETNS_FIX)?;
                }
            },
        }
    }
    Ok(Some(Prepared {
        program,
        prefix,
        cwd,
        env,
        child,
        guard,
    }))
}

/// See [`Sandbox::check`].
pub(crate) async fn check_sandbox(sb: &Sandbox) -> Result<()> {
    if sb.filesystem {
        bwrap_usable(&sb.bwrap)
            .await
            .map_err(|missing| Error::SandboxUnavailable {
                missing,
                fix: INSTALL_BWRAP.into(),
            })?;
    }
    if sb.network != Network::Host {
        sys::private_netns(None).map_err(|e| Error::SandboxUnavailable {
            missing: netns_missing(&e),
            fix: NETNS_FIX.into(),
        })?;
    }
    Ok(())
}

/// See [`ResourceLimits::check`].
pub(crate) fn check_limits(limits: &ResourceLimits) -> Result<()> {
    if limits.needs_cgroup() {
        let cg = Cgroup::create(limits).map_err(|e| Error::SandboxUnavailable {
            missing: format!("no cgroup for the memory and pids limits ({e})"),
            fix: CGROUP_FIX.into(),
        })?;
        cg.remove();
    }
    Ok(())
}

const CGROUP_FIX: &str = "run the host as root or in a delegated cgroup v2 tree with the memory \
     and pids controllers enabled (systemd: Delegate=yes), or leave memory_bytes and pids unset";

/// A name no other CLI of this process uses.
fn unique_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "cli-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

const NETNS_FIX: &str =
    "network confinement needs CAP_SYS_ADMIN (run the host as root or grant the capability), \
     or use Network::Host";

fn netns_missing(e: &std::io::Error) -> String {
    format!("cannot create a private network namespace ({e})")
}

fn unreachable_listener() -> Result<()> {
    Err(Error::Io(std::io::Error::other(
        "the sandbox's network namespace has no listener",
    )))
}

/// The rlimits for `limits`, core dumps always off.
fn rlimits(limits: &ResourceLimits) -> Vec<(Resource, u64, u64)> {
    let mut out = vec![(Resource::RLIMIT_CORE, 0, 0)];
    if let Some(n) = limits.open_files {
        out.push((Resource::RLIMIT_NOFILE, n, n));
    }
    if let Some(n) = limits.processes {
        out.push((Resource::RLIMIT_NPROC, n, n));
    }
    if let Some(s) = limits.cpu_seconds {
        // SIGXCPU at the soft limit (the CLI ends, and is reported); SIGKILL a little
        // later for a process that ignores it.
        out.push((Resource::RLIMIT_CPU, s, s.saturating_add(5)));
    }
    out
}

/// Polls the cgroup's event counters; on a hit records it and kills the whole tree, so
/// the CLI's end is reported as that limit.
async fn watch(cgroup: Arc<Cgroup>, hit: Arc<OnceLock<LimitKind>>) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cg = cgroup.clone();
        let found = tokio::task::spawn_blocking(move || cg.hit())
            .await
            .ok()
            .flatten();
        if let Some(kind) = found {
            let _ = hit.set(kind);
            tracing::warn!(
                limit = kind.as_str(),
                "the claude CLI hit a resource limit; ending it"
            );
            let cg = cgroup.clone();
            let _ = tokio::task::spawn_blocking(move || cg.kill_all(Duration::from_secs(5))).await;
            return;
        }
    }
}

/// Accepts inside the sandbox's namespace and joins each connection to `to`.
fn forwarder(listener: std::net::TcpListener, to: SocketAddr) -> Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio::spawn(async move {
        // Dropping the set (the task aborted) ends every connection with it.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut inside, _)) = accepted else { continue };
                    conns.spawn(async move {
                        match tokio::net::TcpStream::connect(to).await {
                            Ok(mut outside) => {
                                let _ = inside.set_nodelay(true);
                                let _ = outside.set_nodelay(true);
                                let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                            }
                            Err(e) => tracing::debug!(%to, error = %e, "sandbox forward: connect failed"),
                        }
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }))
}

/// Resolves `program` (a path, or a name looked up in `PATH`) and checks once per
/// process that it can make a sandbox here; the error says what is missing.
async fn bwrap_usable(program: &Path) -> std::result::Result<PathBuf, String> {
    static CHECKED: OnceLock<Mutex<HashMap<PathBuf, std::result::Result<PathBuf, String>>>> =
        OnceLock::new();
    let cache = CHECKED.get_or_init(Default::default);
    if let Some(known) = cache.lock().ok().and_then(|c| c.get(program).cloned()) {
        return known;
    }
    let result = check_bwrap(program).await;
    if let Ok(mut c) = cache.lock() {
        c.insert(program.to_path_buf(), result.clone());
    }
    result
}

async fn check_bwrap(program: &Path) -> std::result::Result<PathBuf, String> {
    let path = if program.components().count() > 1 {
        program.to_path_buf()
    } else {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("bubblewrap (`{}`) is not in PATH", program.display()))?
    };
    if !path.is_file() {
        return Err(format!("bubblewrap not found at {}", path.display()));
    }
    let out = tokio::process::Command::new(&path)
        .args(["--ro-bind", "/", "/", "--unshare-pid", "--", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .map_err(|e| format!("cannot run bubblewrap at {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "bubblewrap at {} cannot make a sandbox here ({}): {}; it needs root, a setuid \
             bwrap, or unprivileged user namespaces",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(path)
}

/// bubblewrap's arguments, ending in `-- <cli>`: the host's tree read-only, fresh /dev,
/// /proc (own pid namespace) and /tmp, hidden paths, then the writable work and config
/// dirs and the extra binds (later mounts win, so a work dir under a hidden root stays
/// visible).
fn bwrap_args(
    sb: &Sandbox,
    cli: &Path,
    cwd: Option<&Path>,
    config: Option<&Path>,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&std::ffi::OsStr]| a.extend(items.iter().map(|s| s.to_os_string()));
    push(&[
        "--die-with-parent".as_ref(),
        "--unshare-pid".as_ref(),
        "--unshare-ipc".as_ref(),
        "--unshare-uts".as_ref(),
        "--ro-bind".as_ref(),
        "/".as_ref(),
        "/".as_ref(),
        "--dev".as_ref(),
        "/dev".as_ref(),
        "--proc".as_ref(),
        "/proc".as_ref(),
        "--tmpfs".as_ref(),
        "/tmp".as_ref(),
    ]);
    for dir in &sb.hide {
        if dir.is_dir() {
            push(&["--tmpfs".as_ref(), dir.as_os_str()]);
        }
    }
    // The CLI's own directory stays visible, read-only, even under the private /tmp or a
    // hidden path (a CLI installed in a checkout under /tmp, say); so does a working
    // directory of the options' own choosing.
    let mut cli_dirs: Vec<PathBuf> = cli.parent().map(Path::to_path_buf).into_iter().collect();
    if let Some(real) = std::fs::canonicalize(cli)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        if !cli_dirs.contains(&real) {
            cli_dirs.push(real);
        }
    }
    let cli_dirs = cli_dirs.iter().map(PathBuf::as_path).filter(|d| d.is_dir());
    let own_cwd = cwd.filter(|c| !c.starts_with(&sb.work_dir));
    for dir in cli_dirs
        .chain(sb.read_only.iter().map(PathBuf::as_path))
        .chain(own_cwd)
    {
        push(&["--ro-bind".as_ref(), dir.as_os_str(), dir.as_os_str()]);
    }
    let work = sb.work_dir.as_os_str();
    push(&["--bind".as_ref(), work, work]);
    if let Some(config) = config.filter(|c| !c.starts_with(&sb.work_dir)) {
        push(&["--bind".as_ref(), config.as_os_str(), config.as_os_str()]);
    }
    for dir in &sb.read_write {
        push(&["--bind".as_ref(), dir.as_os_str(), dir.as_os_str()]);
    }
    if let Some(cwd) = cwd {
        push(&["--chdir".as_ref(), cwd.as_os_str()]);
    }
    push(&["--".as_ref(), cli.as_os_str()]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_dir_under_a_hidden_root_is_bound_after_the_root_is_hidden() {
        let root = tempfile::tempdir().expect("tempdir");
        let work = root.path().join("a");
        let sb = Sandbox::new(&work).hide(root.path());
        let args: Vec<String> = bwrap_args(&sb, Path::new("/bin/claude"), Some(&work), None)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let at = |flag: &str, path: &Path| {
            args.windows(2)
                .position(|w| w[0] == flag && w[1] == path.to_string_lossy())
                .expect("present")
        };
        assert!(at("--tmpfs", root.path()) < at("--bind", &work));
        // The CLI's directory is bound back after /tmp and the hidden paths.
        assert!(at("--tmpfs", Path::new("/tmp")) < at("--ro-bind", Path::new("/bin")));
        assert_eq!(args[args.len() - 2..], ["--", "/bin/claude"]);
        assert!(args.contains(&"--die-with-parent".to_string()));
    }

    #[test]
    fn rlimits_always_turn_core_dumps_off_and_give_cpu_a_grace_before_sigkill() {
        let r = rlimits(&ResourceLimits::new().cpu_seconds(10).open_files(64));
        assert!(r.contains(&(Resource::RLIMIT_CORE, 0, 0)));
        assert!(r.contains(&(Resource::RLIMIT_CPU, 10, 15)));
        assert!(r.contains(&(Resource::RLIMIT_NOFILE, 64, 64)));
    }
}
