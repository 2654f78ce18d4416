//! The one reader of Linux's `/proc`: process state, memory and open files, and the
//! host's available memory. Used by the session (a stopped CLI), telemetry (RSS
//! gauges), admission (memory floor) and the test harness. Every function returns
//! `None` (or an empty answer) when the file cannot be read: the process is gone, or
//! this is not Linux.

use std::path::Path;

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcStat {
    /// The process id.
    pub pid: u32,
    /// Its parent's id.
    pub ppid: u32,
    /// Its process group.
    pub pgid: u32,
    /// State letter (`R`, `S`, `T` stopped, `Z` zombie, …).
    pub state: char,
    /// Command name.
    pub comm: String,
}

impl ProcStat {
    /// True when the process is stopped (SIGSTOP: `T`, or traced: `t`).
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }
}

/// Reads `/proc/<pid>/stat`.
pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(
        pid,
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
    )
}

fn parse_stat(pid: u32, stat: &str) -> Option<ProcStat> {
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgid = rest.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        ppid,
        pgid,
        state,
        comm,
    })
}

/// True when process `pid` exists and is stopped.
pub fn is_stopped(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.is_stopped())
}

/// Resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident set size in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// `MemAvailable` from `/proc/meminfo`, in KiB.
pub fn mem_available_kib() -> Option<u64> {
    kib_field(
        &std::fs::read_to_string("/proc/meminfo").ok()?,
        "MemAvailable:",
    )
}

/// Open file descriptors of process `pid` (`/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Every process id in `/proc`.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir(Path::new("/proc"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes in process group `pgid`, zombies included.
pub fn group(pgid: u32) -> Vec<ProcStat> {
    pids()
        .into_iter()
        .filter_map(stat)
        .filter(|p| p.pgid == pgid)
        .collect()
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    kib_field(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        let s = parse_stat(7, "7 (a (b) c) T 1 7 7 0 -1").expect("parse");
        assert_eq!(
            (s.comm.as_str(), s.state, s.ppid, s.pgid),
            ("a (b) c", 'T', 1, 7)
        );
        assert!(s.is_stopped());
        assert!(parse_stat(7, "garbage").is_none());
    }

    #[test]
    fn this_process_is_readable() {
        let me = std::process::id();
        // RSS first: other tests' threads allocate meanwhile, and the high-water mark read
        // afterwards is at least any earlier RSS (read the other way round, it raced).
        let rss = rss_kib(me);
        assert!(rss.is_some_and(|k| k > 0));
        assert!(peak_rss_kib(me) >= rss);
        assert!(fd_count(me).is_some_and(|n| n > 0));
        assert_eq!(stat(me).map(|s| s.pid), Some(me));
        assert!(!is_stopped(me));
        assert!(mem_available_kib().is_some());
        assert!(kib_field("MemAvailable:   4242 kB\n", "MemAvailable:") == Some(4242));
    }
}
