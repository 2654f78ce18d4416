//! `claude-code path`: the binary the SDK would run with the current configuration, the
//! rule that found it (explicit, bundled or global) and the setting behind that rule.

use crate::config::{CliSetting, Origin};
use claude_code::cli::{bundled_dir, CliSource};

use crate::{error::CliError, Cli};

/// Runs `path`.
pub fn run(cli: &Cli) -> Result<(), CliError> {
    let config = cli.load_config(Default::default())?;
    let resolved = config.resolve_cli()?;
    let source = match resolved.source {
        CliSource::Explicit => "explicit",
        CliSource::Bundled => "bundled",
        CliSource::Global => "global",
        _ => "other",
    };
    let origin = config.origin("cli_path");
    let why = match (&config.cli_path, &origin) {
        (CliSetting::Path(_), Origin::Env(var)) => format!("{var} is set"),
        (CliSetting::Path(_), Origin::Flag) => "--cli names it".to_string(),
        (CliSetting::Path(_), Origin::File(f)) => format!("cli_path in {}", f.display()),
        _ => match resolved.source {
            CliSource::Bundled => {
                let dir = config.cli_dir.clone().or_else(bundled_dir);
                let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
                format!("installed in the bundled directory {dir}")
            }
            CliSource::Global => "found on PATH or in a global install location".to_string(),
            _ => String::new(),
        },
    };
    println!("{}", resolved.path.display());
    println!("source: {source}");
    println!("why: {why}");
    println!("setting: cli_path = {} ({origin})", config.cli_path);
    Ok(())
}
