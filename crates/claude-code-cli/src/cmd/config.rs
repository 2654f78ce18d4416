//! `claude-code config`: the resolved configuration, one `key = value` line per key with
//! where the value came from, then the CLI arguments and the environment switches of its
//! CLI profile a session would get. The API key's
//! value is never printed, only whether its variable is set.

use crate::config::KEYS;

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
    for key in KEYS {
        let value = config
            .value(key)
            .map(|v| format!("{v:?}"))
            .unwrap_or_else(|| "(unset)".into());
        println!("{key} = {value}  # {}", config.origin(key));
    }
    let present = if config.api_key_present {
        "set"
    } else {
        "not set"
    };
    println!("# api key: {} is {present}", config.api_key_env);
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
