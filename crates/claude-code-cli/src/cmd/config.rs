//! `claude-code config`: the resolved configuration, one `key = value` line per key with
//! where the value came from (the host's keys as `section.key`), a line for each declared
//! session, pool, template and limit, then the CLI arguments and the environment switches
//! of its CLI profile a session would get. The API key's value is never printed, only
//! whether its variable is set; so for the cluster's NATS password or token.

use claude_code::Restart;

use crate::config::{Config, LimitSettings, HOST_KEYS, KEYS};

use crate::{error::CliError, Cli};

/// Arguments of `config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    session: super::SessionFlags,
}

/// Runs `config`.
pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    let config = cli.load_config(args.session.overrides())?;
    match &config.file {
        Some(f) => println!("# file: {}", f.display()),
        None => println!("# file: none"),
    }
    for key in KEYS.into_iter().chain(HOST_KEYS) {
        let value = config
            .value(key)
            .map(|v| format!("{v:?}"))
            .unwrap_or_else(|| "(unset)".into());
        println!("{key} = {value}  # {}", config.origin(key));
    }
    for line in declared(&config) {
        println!("# {line}");
    }
    let present = if config.api_key_present {
        "set"
    } else {
        "not set"
    };
    println!("# api key: {} is {present}", config.api_key_env);
    if let Some((what, var)) = cluster_secret_var(&config) {
        let set = std::env::var_os(var).is_some_and(|v| !v.is_empty());
        let present = if set { "set" } else { "not set" };
        println!("# cluster {what}: {var} is {present}");
    }
    let options = config.to_options();
    let switches: Vec<String> = options
        .cli_switches()
        .iter()
        .map(|s| format!("{}=1", s.env_var()))
        .collect();
    let switches = if switches.is_empty() {
        "none (the CLI's defaults)".to_string()
    } else {
        switches.join(" ")
    };
    println!("# cli env ({} profile): {switches}", config.cli_profile);
    let argv: Vec<String> = options
        .to_args()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    println!("# cli args: {}", argv.join(" "));
    Ok(())
}

/// The environment variable `[cluster]` takes its password or token from, if any.
fn cluster_secret_var(config: &Config) -> Option<(&'static str, &str)> {
    use claude_code_serve::cluster::{NatsAuth, SecretSource};
    match &config.host.cluster.auth {
        NatsAuth::UserPassword {
            password: SecretSource::Env(var),
            ..
        } => Some(("password", var)),
        NatsAuth::Token(SecretSource::Env(var)) => Some(("token", var)),
        _ => None,
    }
}

/// One line per declared admission limit, session, pool, template and tenant limit.
fn declared(config: &Config) -> Vec<String> {
    let h = &config.host;
    let mut lines = Vec::new();
    if let Some(a) = &h.admission {
        let parts = [
            a.max_live.map(|n| format!("max_live={n}")),
            a.max_spawns.map(|n| format!("max_spawns={n}")),
            a.mem_floor_mib.map(|n| format!("mem_floor_mib={n}")),
            a.wait_timeout_secs
                .map(|n| format!("wait_timeout_secs={n}")),
        ];
        lines.push(format!("admission: {}", joined(parts)));
    }
    for s in &h.sessions {
        let restart = match s.restart {
            Restart::Transient => "transient",
            Restart::Temporary => "temporary",
            _ => "permanent",
        };
        lines.push(format!(
            "session {}/{} (restart {restart})",
            s.tenant, s.name
        ));
    }
    for p in &h.pools {
        lines.push(format!(
            "pool {} (size {}, warm_spares {}, max_queue {}, queue_timeout_secs {})",
            p.name,
            p.size,
            p.warm_spares,
            p.max_queue,
            p.queue_timeout.as_secs()
        ));
    }
    for name in h.templates.keys() {
        lines.push(format!("template {name}"));
    }
    if h.limits != LimitSettings::default() {
        lines.push(format!("limits: {}", limits(&h.limits)));
    }
    for (tenant, l) in &h.tenants {
        lines.push(format!("tenant {tenant} limits: {}", limits(l)));
    }
    lines
}

fn limits(l: &LimitSettings) -> String {
    joined([
        l.max_sessions.map(|n| format!("max_sessions={n}")),
        l.max_concurrent_turns
            .map(|n| format!("max_concurrent_turns={n}")),
        l.requests_per_minute
            .map(|n| format!("requests_per_minute={n}")),
        l.max_spend_usd.map(|n| format!("max_spend_usd={n}")),
    ])
}

fn joined<const N: usize>(parts: [Option<String>; N]) -> String {
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    if parts.is_empty() {
        "unlimited".to_string()
    } else {
        parts.join(" ")
    }
}
