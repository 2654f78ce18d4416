//! The command's config loader: `ConfigLoader::file(path).load()` on arbitrary bytes as
//! `claude-code.toml`, then everything a subcommand derives from the result.
//!
//! `claude-code-host-cli` is a binary crate, so its config module cannot be imported:
//! this target compiles that module from its own source files
//! (`crates/claude-code-cli/src/config.rs` and `config/host.rs`, unchanged) into the
//! fuzz binary. It is the loader the command runs, not a copy.
//!
//! Properties, beyond "never panics":
//! - an error names a line and column inside the file (1-based);
//! - a loaded config gives every key's value and origin, its session options, and the
//!   options and admission of every session, pool and template;
//! - loading is deterministic (the same bytes load to the same values).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../crates/claude-code-cli/src"]
mod cli {
    pub mod config;
}

use cli::config::{Config, ConfigError, ConfigLoader, HOST_KEYS, KEYS};

fn path() -> &'static PathBuf {
    static P: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &P.get_or_init(|| {
        // In memory where there is a tmpfs: truncating a file on disk each run is slow.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("tempdir");
        let path = dir.path().join("claude-code.toml");
        (dir, path)
    })
    .1
}

fn load(data: &[u8]) -> Result<Config, ConfigError> {
    std::fs::write(path(), data).expect("write the config file");
    ConfigLoader::new().file(path()).load()
}

fn values(config: &Config) -> Vec<(String, Option<String>, String)> {
    KEYS.iter()
        .chain(HOST_KEYS.iter())
        .map(|k| (k.to_string(), config.value(k), config.origin(k).to_string()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    match load(data) {
        Err(ConfigError::Invalid { line, column, .. }) => {
            let text = String::from_utf8_lossy(data);
            let lines = text.split('\n').count();
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
            assert!(column >= 1, "column {column}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(config) => {
            let _ = format!("{:?}", config.to_options());
            let _ = config.cli();
            let seen = values(&config);
            let host = &config.host;
            if let Some(a) = &host.admission {
                let _ = a.to_admission();
            }
            for s in &host.sessions {
                let _ = format!("{:?}", config.session_options(&s.keys));
            }
            for p in &host.pools {
                let _ = format!("{:?}", config.session_options(&p.keys));
            }
            for keys in host.templates.values() {
                let _ = format!("{:?}", config.session_options(keys));
            }
            let again = load(data).expect("loads the second time");
            assert_eq!(seen, values(&again), "loading is deterministic");
        }
    }
});
