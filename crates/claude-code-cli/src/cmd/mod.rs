//! One module per subcommand. Each exposes its clap arguments (if any) and a `run`
//! function; the session flags shared by `query` and `config` live here, shared
//! formatting in `crate::util`.

use std::io::Read;

use crate::{config::Overrides, error::CliError};

pub mod config;
pub mod doctor;
pub mod install;
pub mod mock;
pub mod path;
pub mod query;
pub mod send;
pub mod serve;
pub mod sessions;
pub mod token;
pub mod version;

/// Session flags: the top configuration layer for `query` (and `config`, to preview it).
#[derive(Debug, Clone, clap::Args)]
pub struct SessionFlags {
    /// Model alias or name (overrides model / CLAUDE_MODEL).
    #[arg(long)]
    model: Option<String>,
    /// Replace the system prompt.
    #[arg(long, value_name = "TEXT")]
    system_prompt: Option<String>,
    /// Most model round-trips per prompt.
    #[arg(long, value_name = "N")]
    max_turns: Option<u32>,
    /// Permission mode: default, acceptEdits, plan, bypassPermissions, dontAsk, auto.
    #[arg(long, value_name = "MODE")]
    permission_mode: Option<String>,
    /// Tools allowed without asking, comma separated (e.g. "Read,Bash(git *)").
    #[arg(long, value_name = "RULES", value_delimiter = ',')]
    allowed_tools: Vec<String>,
    /// CLI profile: default (the CLI's own behaviour), lean (no side traffic or background
    /// work; the default here) or minimal (also no CLAUDE.md, git instructions, memory,
    /// bundled skills, background tasks). Overrides cli_profile / CLAUDE_CODE_CLI_PROFILE.
    #[arg(long, value_name = "PROFILE")]
    cli_profile: Option<String>,
}

impl SessionFlags {
    /// The first flag given, as `--name` (they configure a local session only).
    pub fn first_given(&self) -> Option<&'static str> {
        [
            ("--model", self.model.is_some()),
            ("--system-prompt", self.system_prompt.is_some()),
            ("--max-turns", self.max_turns.is_some()),
            ("--permission-mode", self.permission_mode.is_some()),
            ("--allowed-tools", !self.allowed_tools.is_empty()),
            ("--cli-profile", self.cli_profile.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }

    /// These flags as a configuration layer.
    pub fn overrides(&self) -> Overrides {
        let mut o = Overrides::default();
        o.model.clone_from(&self.model);
        o.system_prompt.clone_from(&self.system_prompt);
        o.max_turns = self.max_turns;
        o.permission_mode.clone_from(&self.permission_mode);
        o.allowed_tools.clone_from(&self.allowed_tools);
        o.cli_profile.clone_from(&self.cli_profile);
        o
    }
}

/// A prompt argument: the text itself, or `-` to read it from stdin.
pub fn prompt_arg(arg: &str) -> Result<String, CliError> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(CliError::io("cannot read the prompt from stdin"))?;
    Ok(text)
}
