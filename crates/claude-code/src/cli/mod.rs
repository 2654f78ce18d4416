//! Finding the `claude` binary and checking its version.
//!
//! Resolution order for [`CliPath::Auto`]: the `CLAUDE_CODE_CLI` environment variable,
//! then the bundled directory, then the global install (`PATH` and the usual install
//! locations). Spawning the binary is `transport`'s job.

mod version;

use std::path::{Path, PathBuf};

pub use version::{cli_version, CliVersion};

use crate::error::{Error, Result};

/// The CLI version this SDK is built and tested against.
pub const PINNED_CLI_VERSION: &str = "2.1.332";

/// Older CLIs than this get a warning at session start.
pub const MIN_CLI_VERSION: &str = "2.1.332";

/// Environment variable naming an explicit CLI binary.
pub const CLI_ENV: &str = "CLAUDE_CODE_CLI";

/// Environment variable overriding the bundled directory.
pub const BUNDLED_DIR_ENV: &str = "CLAUDE_CODE_CLI_DIR";

/// Where the SDK gets the `claude` binary from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CliPath {
    /// `CLAUDE_CODE_CLI` if set, else [`CliPath::Bundled`] if present, else [`CliPath::Global`].
    #[default]
    Auto,
    /// The bundled directory: `CLAUDE_CODE_CLI_DIR`, else `bin/` next to the running
    /// executable (what `claude-code install` fills).
    Bundled,
    /// `claude` on `PATH`, then the usual global install locations.
    Global,
    /// Exactly this binary.
    Explicit(PathBuf),
}

impl From<PathBuf> for CliPath {
    fn from(p: PathBuf) -> Self {
        CliPath::Explicit(p)
    }
}

impl From<&Path> for CliPath {
    fn from(p: &Path) -> Self {
        CliPath::Explicit(p.to_path_buf())
    }
}

impl From<&str> for CliPath {
    fn from(p: &str) -> Self {
        CliPath::Explicit(p.into())
    }
}

/// Which rule found the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CliSource {
    /// From [`CliPath::Explicit`] or `CLAUDE_CODE_CLI`.
    Explicit,
    /// From the bundled directory.
    Bundled,
    /// From `PATH` or a global install location.
    Global,
}

/// A resolved CLI binary and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCli {
    /// The binary.
    pub path: PathBuf,
    /// The rule that found it.
    pub source: CliSource,
}

impl CliPath {
    /// Finds the binary, or says where it looked and how to install it.
    pub fn resolve(&self) -> Result<ResolvedCli> {
        let mut searched = Vec::new();
        let found = match self {
            CliPath::Explicit(p) => explicit(p, &mut searched)?,
            CliPath::Bundled => bundled(&mut searched),
            CliPath::Global => global(&mut searched),
            CliPath::Auto => match std::env::var_os(CLI_ENV) {
                Some(p) if !p.is_empty() => explicit(Path::new(&p), &mut searched)?,
                _ => bundled(&mut searched).or_else(|| global(&mut searched)),
            },
        };
        found.ok_or_else(|| Error::CliNotFound {
            searched: searched.join(", "),
            version: PINNED_CLI_VERSION,
        })
    }
}

fn check(path: &Path, source: CliSource, searched: &mut Vec<String>) -> Option<ResolvedCli> {
    searched.push(path.display().to_string());
    is_executable(path).then(|| ResolvedCli {
        path: path.to_path_buf(),
        source,
    })
}

/// A path the user named: missing is "not found", but a path that exists and cannot be
/// run says what is wrong with it.
fn explicit(path: &Path, searched: &mut Vec<String>) -> Result<Option<ResolvedCli>> {
    if let Some(found) = check(path, CliSource::Explicit, searched) {
        return Ok(Some(found));
    }
    let problem = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => format!("cannot be read ({e})"),
        Ok(m) if m.is_dir() => "is a directory, not the claude binary".to_string(),
        Ok(m) if !m.is_file() => "is not a regular file".to_string(),
        Ok(m) => {
            use std::os::unix::fs::PermissionsExt;
            format!(
                "is not executable (mode {:o}); run `chmod +x {}` or reinstall it",
                m.permissions().mode() & 0o7777,
                path.display()
            )
        }
    };
    Err(Error::CliUnusable {
        path: path.to_path_buf(),
        problem,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The bundled directory: `CLAUDE_CODE_CLI_DIR`, else `<dir of current exe>/bin`.
pub fn bundled_dir() -> Option<PathBuf> {
    match std::env::var_os(BUNDLED_DIR_ENV) {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("bin"))),
    }
}

/// Where a CLI installed into `dir` lives: `dir/claude`, or the npm layout under it.
pub fn binary_in(dir: &Path) -> [PathBuf; 2] {
    [
        dir.join("claude"),
        dir.join("node_modules/@anthropic-ai/claude-code/bin/claude.exe"),
    ]
}

fn bundled(searched: &mut Vec<String>) -> Option<ResolvedCli> {
    let dir = bundled_dir()?;
    binary_in(&dir)
        .iter()
        .find_map(|p| check(p, CliSource::Bundled, searched))
}

fn global(searched: &mut Vec<String>) -> Option<ResolvedCli> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if is_executable(&dir.join("claude")) {
                return Some(ResolvedCli {
                    path: dir.join("claude"),
                    source: CliSource::Global,
                });
            }
        }
        searched.push("PATH".into());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(h) = &home {
        for rel in [
            ".npm-global/bin/claude",
            ".local/bin/claude",
            "node_modules/.bin/claude",
            ".yarn/bin/claude",
            ".claude/local/claude",
        ] {
            candidates.push(h.join(rel));
        }
    }
    candidates.push("/usr/local/bin/claude".into());
    candidates
        .iter()
        .find_map(|p| check(p, CliSource::Global, searched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_binary_is_a_typed_error_with_install_hint() {
        let err = CliPath::Explicit("/nonexistent/claude".into())
            .resolve()
            .expect_err("must fail");
        let msg = err.to_string();
        assert!(matches!(err, Error::CliNotFound { .. }));
        assert!(msg.contains("/nonexistent/claude"), "{msg}");
        assert!(
            msg.contains("npm install @anthropic-ai/claude-code@"),
            "{msg}"
        );
    }

    #[test]
    fn an_explicit_path_that_cannot_run_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("claude");
        std::fs::write(&file, "#!/bin/sh\n").expect("write");
        let err = CliPath::Explicit(file.clone())
            .resolve()
            .expect_err("not executable");
        assert!(matches!(err, Error::CliUnusable { .. }), "{err:?}");
        assert!(
            err.to_string().contains("is not executable (mode 644)"),
            "{err}"
        );
        assert!(err.to_string().contains("chmod +x"), "{err}");
        let err = CliPath::Explicit(dir.path().to_path_buf())
            .resolve()
            .expect_err("a directory");
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn explicit_existing_executable_resolves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("claude");
        std::fs::write(&bin, "#!/bin/sh\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let r = CliPath::Explicit(bin.clone()).resolve().expect("resolves");
        assert_eq!(
            r,
            ResolvedCli {
                path: bin,
                source: CliSource::Explicit
            }
        );
    }

    #[test]
    fn non_executable_file_is_not_a_cli() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("claude");
        std::fs::write(&bin, "x").expect("write");
        assert!(CliPath::Explicit(bin).resolve().is_err());
    }
}
