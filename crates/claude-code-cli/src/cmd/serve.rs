//! `claude-code serve`: run the host (`claude_code_serve`) until SIGINT or SIGTERM, then
//! drain and stop every session. Without `ANTHROPIC_API_KEY` the sessions talk to the
//! built-in mock Messages API, and the first line says so.
//!
//! What it runs comes from `claude-code.toml` (the `[serve]`, `[supervisor]`,
//! `[admission]`, `[[sessions]]`, `[[pools]]`, `[templates.*]`, `[limits]` and
//! `[tenants.*]` sections, see `config`), with `--listen` and `--data-dir` on top. A bad
//! configuration stops it before it starts a CLI or binds the port, with the file, line
//! and key in the message.
//!
//! Logs go to stderr, as text or as JSON lines (`--log-format json`), filtered by
//! `RUST_LOG` (default `info`). Each HTTP request logs one `request` line inside an
//! `http.request` span carrying its request id, method, route template, tenant, session
//! name, status and latency; no header but `x-request-id` and no prompt is ever logged.

use std::{io::IsTerminal, net::SocketAddr, path::PathBuf};

use claude_code::SessionSpec;
use claude_code_serve::{Host, HostConfig, NamedSession, PoolConfig, TenantLimits};
use tracing_subscriber::EnvFilter;

use crate::{
    config::{Config, LimitSettings},
    error::CliError,
    Cli,
};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default: [serve] listen, else $CLAUDE_CODE_LISTEN, else
    /// 127.0.0.1:8787; loopback only until authentication exists).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory of the host's state (default: [serve] data_dir, else
    /// $CLAUDE_CODE_DATA_DIR, else $XDG_DATA_HOME/claude-code or
    /// ~/.local/share/claude-code).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Join a cluster of hosts over the NATS server with JetStream at this URL
    /// (nats://HOST:PORT, or tls://HOST:PORT to require TLS; no credentials in it: see
    /// [cluster] user, password_env, token_env, creds_file; default: [cluster] url, else
    /// run alone).
    // Checked in `run`, not by clap, whose error would repeat a URL with credentials.
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,
    /// This host's name in the cluster (default: [cluster] node_name, else
    /// <hostname>-<port>).
    #[arg(long, value_name = "NAME", value_parser = parse_node_name)]
    node_name: Option<String>,
    /// Log format on stderr: text, or json (one JSON object per line).
    #[arg(
        long,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "CLAUDE_CODE_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    log_format: LogFormat,
    #[command(flatten)]
    session: super::SessionFlags,
}

/// How `serve` writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line, with the current span's fields.
    Json,
}

/// Runs `serve`.
pub async fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let mut overrides = args.session.overrides();
    overrides.listen = args.listen;
    overrides.data_dir.clone_from(&args.data_dir);
    let mut config = cli.load_config(overrides)?;
    if let Some(url) = &args.cluster {
        let url = crate::config::check_nats_url(url).map_err(|message| {
            crate::config::ConfigError::Flag {
                flag: "cluster".into(),
                message,
            }
        })?;
        config.host.cluster.url = Some(url);
    }
    if let Some(name) = &args.node_name {
        config.host.cluster.node_name = Some(name.clone());
    }
    init_logs(args.log_format)?;
    let host = Host::start(host_config(&config)).await?;
    if host.is_offline() {
        say("offline: ANTHROPIC_API_KEY is not set; sessions talk to the built-in mock Messages API");
    }
    say(&format!("claude-code host listening on {}", host.url()));
    if let Some(node) = host.cluster_node() {
        say(&format!("cluster: joined as {node}"));
    }
    say(&format!("dashboard: {}/", host.url()));
    wait_for_stop().await?;
    say("stopping: draining turns and stopping sessions");
    host.shutdown().await?;
    Ok(())
}

/// The host's configuration from the resolved settings: each declared session, pool and
/// template gets the top-level session options with its own keys on top.
pub fn host_config(config: &Config) -> HostConfig {
    let h = &config.host;
    let mut host = HostConfig::new(h.listen)
        .options(config.to_options())
        .offline(!config.api_key_present)
        .idle_timeout(h.idle_timeout)
        .drain_timeout(h.drain_timeout)
        .limits(tenant_limits(&h.limits));
    host.data_dir.clone_from(&h.data_dir);
    host.max_body_bytes = h.max_body_bytes;
    host.spares = h.spares;
    host.interrupt_on_disconnect = h.interrupt_on_disconnect;
    host.credential_proxy = h.credential_proxy;
    host.session_budget_usd = h.session_budget_usd;
    host.session_requests_per_minute = h.session_requests_per_minute;
    host.supervisor.strategy = h.strategy;
    host.supervisor.max_restarts = h.max_restarts;
    host.supervisor.max_seconds = h.max_seconds;
    host.admission = h.admission.as_ref().map(|a| a.to_admission());
    host.audit_jsonl.clone_from(&h.audit_jsonl);
    host.sandbox = h.sandbox.clone();
    host.resources = h.resources;
    host.cluster = h.cluster.to_config();
    for s in &h.sessions {
        let mut spec = SessionSpec::new(&s.name)
            .options(config.session_options(&s.keys))
            .restart(s.restart);
        if let Some(t) = s.idle_timeout {
            spec = spec.idle_timeout(t);
        }
        if let Some(usd) = s.budget_usd {
            spec = spec.budget_usd(usd);
        }
        host = host.session(NamedSession::new(&s.tenant, spec));
    }
    for p in &h.pools {
        let mut pool = PoolConfig::new(&p.name, config.session_options(&p.keys), p.size);
        pool.warm_spares = p.warm_spares;
        pool.max_queue = p.max_queue;
        pool.queue_timeout = p.queue_timeout;
        host = host.pool(pool);
    }
    for (name, keys) in &h.templates {
        host = host.template(name, config.session_options(keys));
    }
    for (tenant, limits) in &h.tenants {
        host = host.tenant_limits(tenant, tenant_limits(limits));
    }
    host
}

fn parse_node_name(s: &str) -> Result<String, String> {
    if claude_code_serve::is_valid_name(s) {
        Ok(s.to_string())
    } else {
        Err("node names are 1-64 characters of A-Z, a-z, 0-9, _ or -".into())
    }
}

fn tenant_limits(l: &LimitSettings) -> TenantLimits {
    let mut limits = TenantLimits::default();
    limits.max_sessions = l.max_sessions;
    limits.max_concurrent_turns = l.max_concurrent_turns;
    limits.requests_per_minute = l.requests_per_minute;
    limits.max_spend_usd = l.max_spend_usd;
    limits
}

/// One line on stdout. A host keeps serving when whoever started it stops reading its
/// output (a closed pipe): the line is dropped, not the host.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_stop() -> Result<(), CliError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(CliError::io("cannot listen for SIGTERM"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(CliError::io("cannot listen for Ctrl-C")),
        _ = term.recv() => Ok(()),
    }
}

/// Installs the process's log subscriber: stderr, `RUST_LOG` or `info`.
fn init_logs(format: LogFormat) -> Result<(), CliError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) => EnvFilter::try_new(&directives).map_err(|e| CliError::Logs {
            detail: format!("RUST_LOG={directives:?} is not a valid filter: {e}"),
        })?,
        Err(_) => EnvFilter::new("info"),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| CliError::Logs {
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use claude_code::{Restart, Strategy};

    use super::*;
    use crate::config::ConfigLoader;

    #[test]
    fn the_file_maps_to_the_host_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("claude-code.toml");
        std::fs::write(
            &path,
            r#"model = "top-model"
allowed_tools = ["Read"]
[serve]
listen = "127.0.0.1:9999"
data_dir = "state"
max_body_bytes = 2048
spares = 0
idle_timeout_secs = 60
[supervisor]
strategy = "rest_for_one"
max_restarts = 7
max_seconds = 9
[admission]
max_live = 8
[[sessions]]
name = "assistant"
system_prompt = "named prompt"
allowed_tools = ["Grep"]
restart = "transient"
idle_timeout_secs = 30
budget_usd = 2.5
[[sessions]]
name = "assistant"
tenant = "acme"
[[pools]]
name = "workers"
size = 4
warm_spares = 1
max_queue = 8
queue_timeout_secs = 3
max_turns = 2
[templates.reviewer]
system_prompt = "You review Rust"
[limits]
max_sessions = 20
max_spend_usd = 50.0
[tenants.acme]
max_sessions = 5
"#,
        )
        .expect("write");
        let config = ConfigLoader::new()
            .file(&path)
            .env_vars([("ANTHROPIC_API_KEY", "sk-x")])
            .load()
            .expect("loads");
        let host = host_config(&config);
        assert_eq!(host.listen, "127.0.0.1:9999".parse().expect("addr"));
        assert_eq!(host.data_dir, Some(dir.path().join("state")));
        assert_eq!((host.max_body_bytes, host.spares), (2048, 0));
        assert_eq!(host.idle_timeout, Duration::from_secs(60));
        assert_eq!(host.offline, Some(false));
        assert_eq!(host.supervisor.strategy, Strategy::RestForOne);
        assert_eq!(
            (host.supervisor.max_restarts, host.supervisor.max_seconds),
            (7, 9)
        );
        assert_eq!(host.admission.as_ref().map(|a| a.stats().max_live), Some(8));

        assert_eq!(host.sessions.len(), 2);
        let named = &host.sessions[0];
        assert_eq!(
            (named.tenant.as_str(), named.spec.name()),
            ("default", "assistant")
        );
        assert_eq!(named.spec.restart_type(), Restart::Transient);
        assert_eq!(
            named.spec.idle_timeout_value(),
            Some(Duration::from_secs(30))
        );
        let args = argv(named.spec.session_options());
        assert!(
            args.contains(&"--system-prompt=named prompt".into()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--model=top-model".into()),
            "inherited: {args:?}"
        );
        assert!(args.contains(&"--allowedTools=Grep".into()), "{args:?}");
        assert!(
            !args.iter().any(|a| a.contains("Read")),
            "the entry's list replaces the top-level one: {args:?}"
        );
        assert_eq!(host.sessions[1].tenant, "acme");

        let pool = &host.pools[0];
        assert_eq!(
            (
                pool.name.as_str(),
                pool.size,
                pool.warm_spares,
                pool.max_queue
            ),
            ("workers", 4, 1, 8)
        );
        assert_eq!(pool.queue_timeout, Duration::from_secs(3));
        assert!(argv(&pool.options).contains(&"--max-turns=2".into()));

        let reviewer = argv(&host.templates["reviewer"]);
        assert!(reviewer.contains(&"--system-prompt=You review Rust".into()));

        assert_eq!(host.limits.max_sessions, Some(20));
        let acme = host.limits_for("acme");
        assert_eq!(acme.max_sessions, Some(5));
        assert_eq!(
            acme.max_spend_usd,
            Some(50.0),
            "[limits] under the override"
        );
    }

    #[test]
    fn without_a_file_the_host_has_the_defaults() {
        let config = ConfigLoader::new()
            .no_file()
            .env_vars([("HOME", "/home/u")])
            .load()
            .expect("loads");
        let host = host_config(&config);
        assert_eq!(host.listen, "127.0.0.1:8787".parse().expect("addr"));
        assert_eq!(
            host.data_dir,
            Some(PathBuf::from("/home/u/.local/share/claude-code"))
        );
        assert_eq!(host.offline, Some(true));
        assert!(host.sessions.is_empty() && host.pools.is_empty() && host.templates.is_empty());
        assert!(host.admission.is_none());
    }

    fn argv(o: &claude_code::Options) -> Vec<String> {
        o.to_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}
