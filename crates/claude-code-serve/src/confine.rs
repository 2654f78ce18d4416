//! Confinement of the host's CLIs: `[sandbox]` (bubblewrap, private network with the
//! Messages API forwarded in) and `[resources]` (rlimits, cgroup memory and pids), turned
//! into each session's `Options`. Every session gets a work dir of its own,
//! `<work root>/<tenant>/<name>` (its config dir and transcripts inside); the work root
//! and the data dir are hidden from every CLI but for its own dir.

use std::{net::SocketAddr, path::PathBuf};

use claude_code::{
    sandbox::{Fallback, Network, ResourceLimits, Sandbox},
    Options,
};

use crate::config::{HostConfig, SandboxMode, SandboxNetwork};
use crate::error::ServeError;

/// Where a CLI belongs, for its work dir.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place<'a> {
    /// A named or dynamic session of a tenant.
    Session { tenant: &'a str, name: &'a str },
    /// Every member of a configured pool (they share one work dir).
    Pool(&'a str),
    /// Warm spares for `POST /v1/query`: a fresh dir per CLI, removed when it ends.
    Query,
}

/// What the host applies to every session's options.
#[derive(Debug)]
pub(crate) struct Confiner {
    /// The sandbox every session's starts from (its work dir is the work root), or none.
    sandbox: Option<Sandbox>,
    network: SandboxNetwork,
    limits: Option<ResourceLimits>,
    root: PathBuf,
    /// Owns a temporary work root (no data dir).
    _temp: Option<tempfile::TempDir>,
}

impl Confiner {
    /// Resolves `[sandbox]` and `[resources]` against this machine: `auto` checks once
    /// and either confines (failing closed afterwards) or logs one warning and does not;
    /// `required` refuses to start when the check fails. `upstream` is the address the
    /// CLIs are pointed at; `proxied`: they are pointed at the host's credential proxy
    /// instead (always a loopback address).
    pub(crate) async fn resolve(
        config: &HostConfig,
        upstream: Option<&str>,
        proxied: bool,
    ) -> Result<Confiner, ServeError> {
        let sc = &config.sandbox;
        let (root, temp) = match (&sc.work_root, &config.data_dir) {
            (Some(root), _) => (root.clone(), None),
            (None, Some(data)) => (data.join("work"), None),
            (None, None) => {
                let temp = tempfile::Builder::new()
                    .prefix("claude-code-work-")
                    .tempdir()
                    .map_err(|e| ServeError::Sandbox(format!("cannot make a work root: {e}")))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let mut sandbox = None;
        if sc.mode != SandboxMode::Off {
            let mut sb = Sandbox::new(&root).hide(&root).fallback(Fallback::Error);
            if let Some(data) = &config.data_dir {
                sb = sb.hide(data);
            }
            for p in &sc.hide {
                sb = sb.hide(p);
            }
            for p in &sc.read_write {
                sb = sb.read_write(p);
            }
            for p in &sc.read_only {
                sb = sb.read_only(p);
            }
            if let Some(bwrap) = &sc.bwrap {
                sb = sb.bwrap(bwrap);
            }
            let mut network = sc.network;
            if network == SandboxNetwork::ProxyOnly
                && !proxied
                && upstream.and_then(loopback_addr).is_none()
            {
                let what = format!(
                    "network confinement forwards only a loopback Messages API address, and the \
                     CLIs are pointed at {}",
                    upstream.unwrap_or("the public API (no ANTHROPIC_BASE_URL)")
                );
                match sc.mode {
                    SandboxMode::Required => {
                        return Err(ServeError::Sandbox(format!(
                            "{what}; point ANTHROPIC_BASE_URL at a loopback proxy or set \
                             [sandbox] network = \"host\""
                        )))
                    }
                    _ => {
                        tracing::warn!("{what}: the CLIs keep the host's network");
                        network = SandboxNetwork::Host;
                    }
                }
            }
            let probe = sb.clone().network(match network {
                SandboxNetwork::Host => Network::Host,
                _ => Network::None,
            });
            match (probe.check().await, sc.mode) {
                (Ok(()), _) => {
                    sandbox = Some(sb);
                    if let Err(e) = std::fs::create_dir_all(&root) {
                        return Err(ServeError::Sandbox(format!(
                            "cannot create the work root {}: {e}",
                            root.display()
                        )));
                    }
                }
                (Err(e), SandboxMode::Required) => return Err(ServeError::Sandbox(e.to_string())),
                (Err(e), _) => tracing::warn!(error = %e,
                    "[sandbox] mode = \"auto\": this machine cannot confine the CLIs; they run unconfined"),
            }
            return Ok(Confiner {
                sandbox,
                network,
                limits: resources(config)?,
                root,
                _temp: temp,
            });
        }
        Ok(Confiner {
            sandbox,
            network: sc.network,
            limits: resources(config)?,
            root,
            _temp: temp,
        })
    }

    /// True when CLIs run confined.
    pub(crate) fn is_on(&self) -> bool {
        self.sandbox.is_some()
    }

    /// A session's work dir.
    fn work_dir(&self, place: Place<'_>) -> PathBuf {
        match place {
            Place::Session { tenant, name } => self.root.join(tenant).join(name),
            // Names cannot start with '.', so these never meet a tenant's.
            Place::Pool(name) => self.root.join(".pools").join(name),
            Place::Query => self.root.join(".query"),
        }
    }

    /// The config dir (and transcripts) of a confined session, if confined.
    pub(crate) fn config_dir(&self, tenant: &str, name: &str) -> Option<PathBuf> {
        self.sandbox.as_ref()?;
        Some(
            self.work_dir(Place::Session { tenant, name })
                .join(".claude"),
        )
    }

    /// `options` confined and limited as configured, for a CLI at `place`.
    pub(crate) fn apply(&self, options: Options, place: Place<'_>) -> Options {
        let mut options = match self.limits {
            Some(limits) => options.resource_limits(limits),
            None => options,
        };
        let Some(template) = &self.sandbox else {
            return options;
        };
        let dir = self.work_dir(place);
        let sb = template
            .clone()
            .relocate(&dir)
            .fresh_per_process(matches!(place, Place::Query));
        let network = match self.network {
            SandboxNetwork::Host => Network::Host,
            _ => match options
                .cli_env_var("ANTHROPIC_BASE_URL")
                .and_then(|u| loopback_addr(&u.to_string_lossy()))
            {
                Some(to) => Network::forward(to),
                None => {
                    // Fail closed: a session pointed elsewhere gets no network at all.
                    tracing::error!(
                        "a session's ANTHROPIC_BASE_URL is not a loopback address; it runs without network"
                    );
                    Network::None
                }
            },
        };
        // The per-session config dir, not a shared one from the host's environment.
        options = options.env_remove("CLAUDE_CONFIG_DIR");
        options.confine(sb.network(network))
    }

    /// Removes a deleted session's work dir (best effort, logged).
    pub(crate) fn remove(&self, tenant: &str, name: &str) {
        if self.sandbox.is_none() {
            return;
        }
        let dir = self.work_dir(Place::Session { tenant, name });
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted session's work dir");
            }
        }
    }
}

/// `[resources]`: checked once; a machine without cgroups downgrades (logged) unless
/// the limits' fallback is `Error`.
fn resources(config: &HostConfig) -> Result<Option<ResourceLimits>, ServeError> {
    let Some(limits) = config.resources else {
        return Ok(None);
    };
    match limits.check() {
        Ok(()) => Ok(Some(limits)),
        Err(e) if limits.fallback == Fallback::Error => Err(ServeError::Sandbox(e.to_string())),
        Err(e) => {
            tracing::warn!(error = %e, "[resources]: memory and pids limits are off on this machine");
            let mut kept = limits;
            kept.memory_bytes = None;
            kept.pids = None;
            Ok(Some(kept))
        }
    }
}

/// The socket address of an `http://127.0.0.1:PORT/...` (or `[::1]`, or `localhost`) URL.
pub(crate) fn loopback_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let authority = authority.replace("localhost:", "127.0.0.1:");
    let addr: SocketAddr = authority.parse().ok()?;
    addr.ip().is_loopback().then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_forwarded() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:8080/v1"),
            Some("127.0.0.1:8080".parse().expect("addr"))
        );
        assert_eq!(
            loopback_addr("http://localhost:9"),
            Some("127.0.0.1:9".parse().expect("addr"))
        );
        assert!(loopback_addr("http://[::1]:9").is_some());
        assert_eq!(loopback_addr("https://api.anthropic.com"), None);
        assert_eq!(loopback_addr("http://10.0.0.1:80"), None);
        assert_eq!(
            loopback_addr("http://127.0.0.1"),
            None,
            "no port: not forwardable"
        );
    }
}
