//! `claude-code doctor`: a table of checks (config file, CLI found / runs / version, API
//! key present, CLI config dir writable, with `[cluster]` a connection to its NATS server
//! with the configured credentials and TLS, and with `--online` a one-turn round trip), each
//! failure followed by its fix. Exits non-zero when any check fails; a CLI version other
//! than the configured one is a warning.

use std::{path::Path, time::Duration, time::Instant};

use crate::config::{Config, ConfigLoader};
use claude_code::cli::{cli_version, CliSource};

use crate::{error::CliError, util, Cli};

/// Arguments of `doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also run a one-turn query against the API.
    #[arg(long)]
    online: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

struct Row {
    status: Status,
    name: &'static str,
    detail: String,
    fix: Option<String>,
}

impl Row {
    fn ok(name: &'static str, detail: impl Into<String>) -> Row {
        Row {
            status: Status::Ok,
            name,
            detail: detail.into(),
            fix: None,
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Row {
        Row {
            status: Status::Fail,
            name,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn print(&self) {
        let mark = match self.status {
            Status::Ok => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
        };
        println!("{mark} {:<16} {}", self.name, self.detail);
        if let Some(fix) = &self.fix {
            println!("  {:<16} fix: {fix}", "");
        }
    }
}

/// Runs `doctor`.
pub async fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let mut rows = Vec::new();
    let (config, row) = match cli.load_config(Default::default()) {
        Ok(c) => {
            let detail = match &c.file {
                Some(f) => format!("{} is valid", f.display()),
                None => "no file; built-in defaults and environment".to_string(),
            };
            (c, Row::ok("config file", detail))
        }
        Err(e) => {
            let row = Row::fail(
                "config file",
                e.to_string(),
                "correct the key named above (run `claude-code config` to see the resolved values)",
            );
            let fallback = ConfigLoader::new().no_file().load().unwrap_or_default();
            (fallback, row)
        }
    };
    rows.push(row);
    check_cli(&config, &mut rows).await;
    rows.push(if config.api_key_present {
        Row::ok("API key", format!("{} is set", config.api_key_env))
    } else {
        Row::fail(
            "API key",
            format!("{} is not set", config.api_key_env),
            format!(
                "export {}=<your key> (or set api_key_env in claude-code.toml)",
                config.api_key_env
            ),
        )
    });
    rows.push(check_config_dir());
    if let Some(cluster) = config.host.cluster.to_config() {
        rows.push(check_cluster(&cluster).await);
    }
    if args.online {
        rows.push(check_online(&config).await);
    }
    for row in &rows {
        row.print();
    }
    let failed = rows.iter().filter(|r| r.status == Status::Fail).count();
    if failed > 0 {
        return Err(CliError::DoctorFailed(failed));
    }
    Ok(())
}

async fn check_cli(config: &Config, rows: &mut Vec<Row>) {
    let resolved = match config.resolve_cli() {
        Ok(r) => r,
        Err(e) => {
            rows.push(Row::fail(
                "CLI found",
                e.to_string(),
                "run `claude-code install` (or set cli_path / CLAUDE_CODE_CLI)",
            ));
            return;
        }
    };
    let source = match resolved.source {
        CliSource::Explicit => "explicit",
        CliSource::Bundled => "bundled",
        CliSource::Global => "global",
        _ => "other",
    };
    rows.push(Row::ok(
        "CLI found",
        format!("{} ({source})", resolved.path.display()),
    ));
    let Some(version) = cli_version(&resolved.path).await else {
        rows.push(Row::fail(
            "CLI runs",
            format!("`{} --version` fails", resolved.path.display()),
            "reinstall it: `claude-code install --force`",
        ));
        return;
    };
    rows.push(Row::ok(
        "CLI runs",
        format!("`claude --version` reports {version}"),
    ));
    rows.push(if version.to_string() == config.cli_version {
        Row::ok("CLI version", format!("{version} (the pinned version)"))
    } else {
        Row {
            status: Status::Warn,
            name: "CLI version",
            detail: format!(
                "{version}, but this build is tested with {}",
                config.cli_version
            ),
            fix: Some(format!(
                "claude-code install --force --version {}",
                config.cli_version
            )),
        }
    });
}

fn check_config_dir() -> Row {
    const NAME: &str = "CLI config dir";
    let Some(dir) = util::claude_config_dir() else {
        return Row::fail(
            NAME,
            "neither CLAUDE_CONFIG_DIR nor HOME is set",
            "set CLAUDE_CONFIG_DIR",
        );
    };
    match writable(&dir) {
        Ok(()) => Row::ok(NAME, format!("{} is writable", dir.display())),
        Err(e) => Row::fail(
            NAME,
            format!("{} is not writable: {e}", dir.display()),
            "make it writable, or point CLAUDE_CONFIG_DIR at a writable directory",
        ),
    }
}

fn writable(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    tempfile::NamedTempFile::new_in(dir).map(drop)
}

async fn check_cluster(cluster: &claude_code_serve::cluster::ClusterConfig) -> Row {
    const NAME: &str = "cluster NATS";
    match claude_code_serve::cluster::probe(cluster).await {
        Ok(p) => Row::ok(
            NAME,
            format!(
                "connected to {} (nats-server {}, {}, {})",
                cluster.url,
                p.version,
                if p.tls { "TLS" } else { "no TLS" },
                cluster.auth.describe()
            ),
        ),
        Err(e) => Row::fail(
            NAME,
            e.to_string(),
            "see \"Securing the cluster's NATS connection\" in docs/guides/cluster.md",
        ),
    }
}

async fn check_online(config: &Config) -> Row {
    const NAME: &str = "API round trip";
    let options = config.to_options().max_turns(1);
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        claude_code::query("Reply with the single word: ok", options),
    )
    .await;
    match outcome {
        Ok(Ok(summary)) => Row::ok(
            NAME,
            format!(
                "one turn in {:.1} s, reply {:?}",
                started.elapsed().as_secs_f64(),
                util::truncate(summary.text.trim(), 40)
            ),
        ),
        Ok(Err(e)) => Row::fail(
            NAME,
            e.to_string(),
            "check the API key, the network, and ANTHROPIC_BASE_URL if set",
        ),
        Err(_) => Row::fail(
            NAME,
            "no answer within 120 s",
            "check the network and ANTHROPIC_BASE_URL if set",
        ),
    }
}
