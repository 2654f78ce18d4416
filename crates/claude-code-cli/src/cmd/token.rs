//! `claude-code token create|list|revoke`: bearer tokens for the host, kept hashed in the
//! state store of a data directory (the one `serve` uses). `create` prints the new token
//! alone on the last line of stdout; it is shown once and never stored.

use std::path::PathBuf;

use claude_code_serve::{store::Store, Scope};

use crate::{config::Overrides, error::CliError, Cli};

/// Arguments of `token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The host's data directory (default: [serve] data_dir, else $CLAUDE_CODE_DATA_DIR,
    /// else $XDG_DATA_HOME/claude-code, else ~/.local/share/claude-code).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create a token for a tenant (created if new) and print it once.
    Create {
        /// The tenant it acts for (1-64 characters of A-Z a-z 0-9 _ -).
        #[arg(long)]
        tenant: String,
        /// What it may do: read, write (also read) or admin (also write and the audit).
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
    },
    /// List tokens (ids, tenants, scopes; never secrets).
    List,
    /// Revoke a token by its id.
    Revoke {
        /// The token's id (the part after `cch_`, as `list` shows).
        id: String,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| format!("unknown scope {s:?}: use read, write or admin"))
}

/// Runs `token`.
pub fn run(cli: &Cli, args: &Args) -> Result<(), CliError> {
    // The same data directory as `serve`: flag, else [serve] data_dir, else the
    // environment and defaults.
    let mut overrides = Overrides::default();
    overrides.data_dir.clone_from(&args.data_dir);
    let dir = cli
        .load_config(overrides)?
        .host
        .data_dir
        .ok_or(CliError::NoDataDir)?;
    let store = Store::open(&dir)?;
    match &args.action {
        Action::Create { tenant, scope } => {
            let token = store.create_token(tenant, *scope)?;
            eprintln!(
                "created token {} for tenant `{}` with {} scope in {}; it is shown once:",
                token.id,
                token.tenant,
                token.scope,
                store.path()
            );
            println!("{}", token.secret);
        }
        Action::List => {
            for t in store.list_tokens()? {
                let state = if t.revoked { "revoked" } else { "active" };
                println!("{}\t{}\t{}\t{}", t.id, t.tenant, t.scope, state);
            }
        }
        Action::Revoke { id } => {
            if !store.revoke_token(id)? {
                return Err(CliError::NoSuchToken(id.clone()));
            }
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}
