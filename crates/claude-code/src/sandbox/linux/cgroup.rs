//! One cgroup per CLI for its memory and pids limits: cgroup v2 when this process sits
//! in a delegated tree whose `cgroup.subtree_control` already enables `memory` and
//! `pids` (for example a systemd unit with `Delegate=yes` that moved the host into a
//! leaf), else cgroup v1's `memory` and `pids` hierarchies. The new cgroups are children
//! of this process's own cgroup in each hierarchy, so the host's own limits still bound
//! them.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::sandbox::{LimitKind, ResourceLimits};

/// A cgroup made for one CLI.
#[derive(Debug)]
pub(crate) struct Cgroup {
    kind: Version,
}

#[derive(Debug)]
enum Version {
    /// One directory with both controllers.
    V2(PathBuf),
    /// The memory and pids directories (either may be absent when not limited).
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
}

/// A unique name for this process's next cgroup.
fn next_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "claude-code-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `(mount point, options)` of every cgroup mount, from /proc/self/mountinfo.
fn cgroup_mounts() -> io::Result<Vec<(String, PathBuf, String)>> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut right = right.split_whitespace();
        let fstype = right.next().unwrap_or_default();
        let _source = right.next();
        let super_opts = right.next().unwrap_or_default();
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(mount) = left.split_whitespace().nth(4) else {
            continue;
        };
        out.push((
            fstype.to_string(),
            PathBuf::from(mount),
            super_opts.to_string(),
        ));
    }
    Ok(out)
}

/// This process's cgroup path in the hierarchy whose /proc/self/cgroup controller list
/// matches `controller` (`""` for v2).
fn own_path(controller: &str) -> io::Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        if matches {
            return Ok(PathBuf::from(path.trim_start_matches('/')));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("this process is in no `{controller}` cgroup"),
    ))
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

/// The first number after `key` in a flat-keyed cgroup file (`key value` per line).
fn counter(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

impl Cgroup {
    /// Makes the cgroup and sets its limits; an error says which file could not be made
    /// or written.
    pub(crate) fn create(limits: &ResourceLimits) -> io::Result<Cgroup> {
        let mounts = cgroup_mounts()?;
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| sweep_stale(&mounts));
        if let Some(dir) = v2_parent(&mounts, limits) {
            let dir = dir.join(next_name());
            fs::create_dir(&dir)
                .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", dir.display())))?;
            let cg = Cgroup {
                kind: Version::V2(dir.clone()),
            };
            if let Some(bytes) = limits.memory_bytes {
                write(&dir.join("memory.max"), &bytes.to_string())?;
                // Swap would let the tree grow past its limit unseen.
                let _ = write(&dir.join("memory.swap.max"), "0");
            }
            if let Some(n) = limits.pids {
                write(&dir.join("pids.max"), &n.to_string())?;
            }
            return Ok(cg);
        }
        let v1 = |controller: &str| -> io::Result<PathBuf> {
            let mount = mounts
                .iter()
                .find(|(fs, _, opts)| fs == "cgroup" && opts.split(',').any(|o| o == controller))
                .map(|(_, m, _)| m.clone())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "neither a delegated cgroup v2 tree with the memory and pids \
                             controllers nor a cgroup v1 `{controller}` hierarchy is mounted"
                        ),
                    )
                })?;
            let dir = mount.join(own_path(controller)?).join(next_name());
            fs::create_dir(&dir)
                .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", dir.display())))?;
            Ok(dir)
        };
        let mut cg = Cgroup {
            kind: Version::V1 {
                memory: None,
                pids: None,
            },
        };
        if let Some(bytes) = limits.memory_bytes {
            let dir = v1("memory")?;
            if let Version::V1 { memory, .. } = &mut cg.kind {
                *memory = Some(dir.clone());
            }
            write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
            // Memory plus swap, where swap accounting is on.
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &bytes.to_string())?;
            }
        }
        if let Some(n) = limits.pids {
            let dir = v1("pids")?;
            if let Version::V1 { pids, .. } = &mut cg.kind {
                *pids = Some(dir.clone());
            }
            write(&dir.join("pids.max"), &n.to_string())?;
        }
        Ok(cg)
    }

    fn dirs(&self) -> Vec<&Path> {
        match &self.kind {
            Version::V2(dir) => vec![dir],
            Version::V1 { memory, pids } => memory
                .iter()
                .chain(pids.iter())
                .map(PathBuf::as_path)
                .collect(),
        }
    }

    fn pids_dir(&self) -> Option<&Path> {
        match &self.kind {
            Version::V2(dir) => Some(dir),
            Version::V1 { pids, .. } => pids.as_deref(),
        }
    }

    /// `cgroup.procs` of each directory, opened for the child to write itself into.
    pub(crate) fn procs_files(&self) -> io::Result<Vec<fs::File>> {
        self.dirs()
            .into_iter()
            .map(|d| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("cgroup.procs"))
            })
            .collect()
    }

    /// The limit hit so far, if any: an OOM kill, or a fork refused at `pids.max`.
    pub(crate) fn hit(&self) -> Option<LimitKind> {
        let (oom, pids) = match &self.kind {
            Version::V2(dir) => (
                counter(&dir.join("memory.events"), "oom_kill"),
                counter(&dir.join("pids.events"), "max"),
            ),
            Version::V1 { memory, pids } => (
                memory
                    .as_ref()
                    .map_or(0, |d| counter(&d.join("memory.oom_control"), "oom_kill")),
                pids.as_ref()
                    .map_or(0, |d| counter(&d.join("pids.events"), "max")),
            ),
        };
        if oom > 0 {
            Some(LimitKind::Memory)
        } else if pids > 0 {
            Some(LimitKind::Processes)
        } else {
            None
        }
    }

    /// Process ids in the cgroup.
    fn procs(&self) -> Vec<i32> {
        let mut all: Vec<i32> = self
            .dirs()
            .into_iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Kills every process in it: first no new process may start (`pids.max` 0, so a
    /// fork bomb cannot refill it), then SIGKILL to each, repeated until it is empty or
    /// `patience` has passed. Returns whether it is empty.
    pub(crate) fn kill_all(&self, patience: Duration) -> bool {
        if let Some(dir) = self.pids_dir() {
            let _ = write(&dir.join("pids.max"), "0");
        }
        if let Version::V2(dir) = &self.kind {
            let _ = write(&dir.join("cgroup.kill"), "1");
        }
        let deadline = std::time::Instant::now() + patience;
        loop {
            let procs = self.procs();
            if procs.is_empty() {
                return true;
            }
            for pid in procs {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills what is left and removes the directories (retrying while the kernel
    /// finishes tearing the processes down).
    pub(crate) fn remove(&self) {
        self.kill_all(Duration::from_secs(5));
        for dir in self.dirs() {
            for _ in 0..200 {
                match fs::remove_dir(dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => break,
                }
            }
            if dir.exists() {
                tracing::warn!(cgroup = %dir.display(), "could not remove a CLI's cgroup");
            }
        }
    }
}

/// Removes empty cgroups left by earlier processes of this program that died before
/// cleaning up (`kill -9`, or an exit while a cleanup thread ran). Only cgroups named
/// `claude-code-<pid>-<n>` whose pid is gone; a non-empty one cannot be removed and stays.
fn sweep_stale(mounts: &[(String, PathBuf, String)]) {
    for dir in our_parents(mounts) {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("claude-code-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

/// This process's own cgroup in each hierarchy the limits use.
fn our_parents(mounts: &[(String, PathBuf, String)]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (fstype, mount, opts) in mounts {
        let controller = if fstype == "cgroup2" {
            ""
        } else if let Some(c) = ["memory", "pids"]
            .into_iter()
            .find(|c| opts.split(',').any(|o| o == *c))
        {
            c
        } else {
            continue;
        };
        if let Ok(own) = own_path(controller) {
            out.push(mount.join(own));
        }
    }
    out
}

/// The cgroups this process made that still exist (any hierarchy).
pub(crate) fn live_cgroups() -> Vec<PathBuf> {
    let prefix = format!("claude-code-{}-", std::process::id());
    let Ok(mounts) = cgroup_mounts() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dir in our_parents(&mounts) {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        out.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path()),
        );
    }
    out
}

/// This process's v2 cgroup when it can hold children with the controllers `limits`
/// needs enabled.
fn v2_parent(mounts: &[(String, PathBuf, String)], limits: &ResourceLimits) -> Option<PathBuf> {
    let (_, mount, _) = mounts.iter().find(|(fs, _, _)| fs == "cgroup2")?;
    let dir = mount.join(own_path("").ok()?);
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).ok()?;
    let has = |c: &str| enabled.split_whitespace().any(|e| e == c);
    let ok =
        (limits.memory_bytes.is_none() || has("memory")) && (limits.pids.is_none() || has("pids"));
    ok.then_some(dir)
}
