//! Reading `claude --version` once per binary and comparing versions.

use std::{
    cmp::Ordering,
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
    time::Duration,
};

/// A `major.minor.patch` CLI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CliVersion {
    /// Major part.
    pub major: u32,
    /// Minor part.
    pub minor: u32,
    /// Patch part.
    pub patch: u32,
}

impl CliVersion {
    /// Parses the first `x.y.z` token of a `claude --version` line ("2.1.332 (Claude Code)").
    pub fn parse(text: &str) -> Option<CliVersion> {
        let token = text.split_whitespace().next()?;
        let mut parts = token.split('.').map(|p| p.parse::<u32>().ok());
        let v = CliVersion {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        Some(v)
    }

    /// Compares with another version.
    pub fn compare(&self, other: &CliVersion) -> Ordering {
        self.cmp(other)
    }
}

impl fmt::Display for CliVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

type Cache = Mutex<HashMap<(PathBuf, Option<std::time::SystemTime>), Option<CliVersion>>>;

/// Runs `<path> --version` (at most once per binary and modification time, with a 10 s
/// timeout) and parses it. `None` when it cannot be run or read.
pub async fn cli_version(path: &Path) -> Option<CliVersion> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let key = (path.to_path_buf(), mtime);
    if let Ok(map) = cache.lock() {
        if let Some(v) = map.get(&key) {
            return *v;
        }
    }
    let run = tokio::process::Command::new(path)
        .arg("--version")
        .env_remove("CLAUDECODE")
        .kill_on_drop(true)
        .output();
    let version = match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(out)) if out.status.success() => {
            CliVersion::parse(&String::from_utf8_lossy(&out.stdout))
        }
        _ => None,
    };
    if let Ok(mut map) = cache.lock() {
        map.insert(key, version);
    }
    version
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cli_version_line() {
        let v = CliVersion::parse("2.1.332 (Claude Code)\n").expect("parses");
        assert_eq!(v.to_string(), "2.1.332");
        assert!(v > CliVersion::parse("2.1.197").expect("parses"));
        assert!(v < CliVersion::parse("2.10.0").expect("parses"));
        assert_eq!(CliVersion::parse("garbage"), None);
        assert_eq!(CliVersion::parse(""), None);
    }
}
