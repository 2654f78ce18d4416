//! `claude-code install` and `uninstall`: put a pinned `@anthropic-ai/claude-code` into
//! the bundled directory through the machine's own npm client (and its configured
//! registry), verified and atomically.
//!
//! Install runs `npm install` into a fresh temp directory next to the target, checks
//! that `claude --version` reports the wanted version and that each installed package's
//! lockfile integrity equals the registry's `dist.integrity` (`npm view`), then renames
//! the temp directory into place. An interrupted install leaves at most a
//! `.claude-code-install-*` sibling, never a half binary in the target. The target
//! directory is owned by this command: it is replaced as a whole.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use crate::config::Overrides;
use claude_code::cli::{binary_in, bundled_dir, CliVersion};
use serde_json::Value;

use crate::{error::CliError, util, Cli};

/// The npm package holding the CLI.
const PACKAGE: &str = "@anthropic-ai/claude-code";

/// The `name` of the package.json this command writes, marking directories it owns.
const BUNDLE_NAME: &str = "claude-code-bundle";

/// Arguments of `install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// CLI version to install (default: cli_version from the config, else the pinned one).
    #[arg(long, value_name = "V")]
    version: Option<String>,
    /// Directory to install into (default: cli_dir, else $CLAUDE_CODE_CLI_DIR, else
    /// `bin/` next to this executable).
    #[arg(long, value_name = "D")]
    dir: Option<PathBuf>,
    /// Reinstall even if the directory already holds a CLI (needed to replace a broken
    /// or different version).
    #[arg(long)]
    force: bool,
}

/// Arguments of `uninstall`.
#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// Directory to remove (default: as for `install`).
    #[arg(long, value_name = "D")]
    dir: Option<PathBuf>,
}

fn target_dir(
    cli: &Cli,
    dir: &Option<PathBuf>,
    version: Option<&str>,
) -> Result<(PathBuf, String), CliError> {
    let mut overrides = Overrides::default();
    overrides.cli_dir.clone_from(dir);
    overrides.cli_version = version.map(String::from);
    let config = cli.load_config(overrides)?;
    let dir = config.cli_dir.or_else(bundled_dir).ok_or_else(|| {
        CliError::Verify("cannot work out the bundled directory; pass --dir".into())
    })?;
    Ok((dir, config.cli_version))
}

/// The installed binary inside `dir` (the npm layout).
fn installed_binary(dir: &Path) -> PathBuf {
    let [_, npm] = binary_in(dir);
    npm
}

/// Runs `<bin> --version` with a timeout; the version it reports, or why it failed.
async fn run_version(bin: &Path) -> Result<String, String> {
    let run = tokio::process::Command::new(bin)
        .arg("--version")
        .env_remove("CLAUDECODE")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Err(_) => Err("does not answer `--version` within 30 s".into()),
        Ok(Err(e)) => Err(format!("does not run ({e})")),
        Ok(Ok(out)) if !out.status.success() => Err(format!(
            "fails `--version` ({}): {}",
            out.status,
            util::truncate(String::from_utf8_lossy(&out.stderr).trim(), 200)
        )),
        Ok(Ok(out)) => {
            let text = String::from_utf8_lossy(&out.stdout);
            CliVersion::parse(&text)
                .map(|v| v.to_string())
                .ok_or_else(|| format!("prints no version ({})", util::truncate(text.trim(), 80)))
        }
    }
}

/// Runs `install`.
pub async fn install(cli: &Cli, args: &InstallArgs) -> Result<(), CliError> {
    let (dir, version) = target_dir(cli, &args.dir, args.version.as_deref())?;
    let bin = installed_binary(&dir);
    if bin.exists() {
        match run_version(&bin).await {
            Ok(v) if v == version && !args.force => {
                println!(
                    "claude CLI {version} already installed at {}",
                    bin.display()
                );
                return Ok(());
            }
            _ if args.force => {}
            Ok(v) => {
                return Err(CliError::ExistingInstall {
                    dir,
                    found: format!("reports version {v}, not {version}"),
                })
            }
            Err(why) => return Err(CliError::ExistingInstall { dir, found: why }),
        }
    }
    if dir.exists() && !owned(&dir) {
        return Err(CliError::NotOurs(dir));
    }
    let npm = util::find_in_path("npm").ok_or(CliError::NpmMissing)?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&parent)
        .map_err(CliError::io(format!("cannot create {}", parent.display())))?;
    let staging = tempfile::Builder::new()
        .prefix(".claude-code-install-")
        .tempdir_in(&parent)
        .map_err(CliError::io(format!(
            "cannot create a temp dir in {}",
            parent.display()
        )))?;
    std::fs::write(
        staging.path().join("package.json"),
        format!("{{\"name\":\"{BUNDLE_NAME}\",\"private\":true}}\n"),
    )
    .map_err(CliError::io("cannot write package.json"))?;

    eprintln!(
        "installing {PACKAGE}@{version} with npm into {} …",
        dir.display()
    );
    let spec = format!("{PACKAGE}@{version}");
    npm_run(
        &npm,
        &[
            "install",
            "--prefix",
            &staging.path().to_string_lossy(),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--save-exact",
            &spec,
        ],
    )
    .await?;

    let staged_bin = installed_binary(staging.path());
    let got = run_version(&staged_bin)
        .await
        .map_err(|why| CliError::Verify(format!("the installed {} {why}", staged_bin.display())))?;
    if got != version {
        return Err(CliError::Verify(format!(
            "the installed CLI reports {got}, expected {version}"
        )));
    }
    verify_integrity(&npm, staging.path(), &version).await?;

    // Swap into place: the old tree (if any) moves aside first, so `dir` only ever holds
    // a complete install.
    let staged = staging.keep();
    if dir.exists() {
        let old = tempfile::Builder::new()
            .prefix(".claude-code-old-")
            .tempdir_in(&parent)
            .map_err(CliError::io("cannot create a temp dir"))?
            .keep();
        let aside = old.join("cli");
        std::fs::rename(&dir, &aside)
            .map_err(CliError::io(format!("cannot move {} aside", dir.display())))?;
        std::fs::rename(&staged, &dir).map_err(CliError::io(format!(
            "cannot move the new install to {}",
            dir.display()
        )))?;
        std::fs::remove_dir_all(&old).map_err(CliError::io(format!(
            "cannot remove the old install {}",
            old.display()
        )))?;
    } else {
        std::fs::rename(&staged, &dir).map_err(CliError::io(format!(
            "cannot move the new install to {}",
            dir.display()
        )))?;
    }
    println!(
        "claude CLI {version} installed at {}",
        installed_binary(&dir).display()
    );
    Ok(())
}

/// Runs npm; its stdout on success, a readable error otherwise.
async fn npm_run(npm: &Path, args: &[&str]) -> Result<String, CliError> {
    let command = format!("npm {}", args.join(" "));
    let out = tokio::process::Command::new(npm)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(CliError::io(format!("cannot run {}", npm.display())))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
    let detail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    let offline = [
        "ENOTFOUND",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "ENOTCACHED",
        "EAI_AGAIN",
        "ECONNRESET",
    ];
    let hint = if offline.iter().any(|code| stderr.contains(code)) {
        "\nthe npm registry cannot be reached: check the network or npm's registry/proxy settings \
         (`npm config get registry`)"
    } else if stderr.contains("E404") || stderr.contains("ETARGET") {
        "\nno such version in the registry: check --version"
    } else {
        ""
    };
    Err(CliError::Npm {
        command,
        detail: if detail.is_empty() {
            out.status.to_string()
        } else {
            detail
        },
        hint: hint.into(),
    })
}

/// Compares each installed `@anthropic-ai/claude-code*` package's lockfile integrity
/// with the registry's `dist.integrity`.
async fn verify_integrity(npm: &Path, staging: &Path, version: &str) -> Result<(), CliError> {
    let lock_path = staging.join("package-lock.json");
    let lock: Value = std::fs::read_to_string(&lock_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| {
            CliError::Verify(format!("npm wrote no readable {}", lock_path.display()))
        })?;
    let packages = lock
        .get("packages")
        .and_then(Value::as_object)
        .ok_or_else(|| CliError::Verify("package-lock.json has no `packages`".into()))?;
    let mut checked = 0;
    for (key, entry) in packages {
        let Some(name) = key.strip_prefix("node_modules/") else {
            continue;
        };
        if !name.starts_with(PACKAGE) || !staging.join(key).is_dir() {
            continue;
        }
        let actual = entry.get("integrity").and_then(Value::as_str).unwrap_or("");
        let spec = format!("{name}@{version}");
        match npm_run(npm, &["view", &spec, "dist.integrity"]).await {
            Ok(expected) => {
                let expected = expected.trim();
                if expected != actual {
                    return Err(CliError::Integrity {
                        package: spec,
                        expected: expected.into(),
                        actual: actual.into(),
                    });
                }
                checked += 1;
            }
            Err(e) => eprintln!(
                "warning: cannot read the registry's integrity for {spec} ({e}); \
                 npm checked the tarball against its metadata while installing"
            ),
        }
    }
    if checked > 0 {
        eprintln!("verified {checked} package integrity hash(es) against the registry");
    }
    Ok(())
}

/// Whether `dir` is empty or was made by `install`.
fn owned(dir: &Path) -> bool {
    let marker = std::fs::read_to_string(dir.join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v.get("name").and_then(Value::as_str) == Some(BUNDLE_NAME));
    marker || std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// Runs `uninstall`.
pub fn uninstall(cli: &Cli, args: &UninstallArgs) -> Result<(), CliError> {
    let (dir, _) = target_dir(cli, &args.dir, None)?;
    if !dir.exists() {
        println!("nothing installed at {}", dir.display());
        return Ok(());
    }
    if !owned(&dir) {
        return Err(CliError::NotOurs(dir));
    }
    std::fs::remove_dir_all(&dir)
        .map_err(CliError::io(format!("cannot remove {}", dir.display())))?;
    println!("removed {}", dir.display());
    Ok(())
}
