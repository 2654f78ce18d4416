//! The host's credential proxy and environment hygiene: every CLI the host starts gets
//! only the allow-listed variables of the host's environment, and (with the proxy on,
//! the default) a per-session token for a loopback proxy that holds the real key.
//!
//! One [`CredentialProxy`] serves each distinct upstream and credential the sessions'
//! options resolve to: normally one per host (the configured `ANTHROPIC_BASE_URL`, or
//! the offline mock, and the host's `ANTHROPIC_API_KEY` / `ANTHROPIC_AUTH_TOKEN`). A
//! session's grant lives as long as the session: the supervisor's restarts reuse its
//! options, so its token; deleting the session revokes it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use claude_code::{
    proxy::{Credential, CredentialProxy, ProxyConfig, ProxyError, ProxySession, SessionGrant},
    Options,
};

/// A session's options, made ready by [`Proxies::prepare`].
pub(crate) struct Prepared {
    /// The options to start the session with.
    pub(crate) options: Options,
    /// Whether the session holds a grant (so its budget is enforced at the proxy).
    pub(crate) granted: bool,
}

/// The host's proxies, grants and allow-list.
#[derive(Debug)]
pub(crate) struct Proxies {
    enabled: bool,
    inherit_env: Option<Vec<String>>,
    requests_per_minute: Option<u32>,
    default_budget_usd: Option<f64>,
    /// One proxy per (upstream, credential).
    proxies: tokio::sync::Mutex<Vec<(String, Credential, Arc<CredentialProxy>)>>,
    /// Session key (or `pool:<name>`, `query`) → its grant.
    grants: Mutex<HashMap<String, ProxySession>>,
}

impl Proxies {
    pub(crate) fn new(config: &crate::HostConfig) -> Self {
        Proxies {
            enabled: config.credential_proxy,
            inherit_env: config.inherit_env.clone(),
            requests_per_minute: config.session_requests_per_minute,
            default_budget_usd: config.session_budget_usd,
            proxies: Default::default(),
            grants: Default::default(),
        }
    }

    fn grants(&self) -> MutexGuard<'_, HashMap<String, ProxySession>> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when sessions started from `options` talk to the API through the credential
    /// proxy (it is on, and they hold a key or token for it to keep).
    pub(crate) fn proxies(&self, options: &Options) -> bool {
        self.enabled
            && ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]
                .iter()
                .any(|n| options.cli_env_var(n).is_some_and(|v| !v.is_empty()))
    }

    /// `options` for the session `key`: the allow-listed environment and, with the proxy
    /// on and a credential to hold, a grant (budget `budget_usd`, else the host's
    /// default) in place of the key. A grant already held for `key` is replaced.
    pub(crate) async fn prepare(
        &self,
        key: &str,
        options: Options,
        budget_usd: Option<f64>,
    ) -> Result<Prepared, ProxyError> {
        // Resolved before the allow-list can drop them.
        let resolved: HashMap<&str, String> = [
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
        ]
        .into_iter()
        .filter_map(|n| {
            let v = options.cli_env_var(n)?.into_string().ok()?;
            (!v.is_empty()).then_some((n, v))
        })
        .collect();
        let var = |name: &str| resolved.get(name).cloned();
        let credential = var("ANTHROPIC_API_KEY")
            .map(Credential::api_key)
            .or_else(|| var("ANTHROPIC_AUTH_TOKEN").map(Credential::auth_token));
        let mut options = match (&self.inherit_env, options.inherited_env()) {
            // The session's own allow-list, if it has one, wins.
            (Some(list), None) => {
                // What the proxy does not take over, the child still needs.
                let mut o = options.inherit_env(list.iter().cloned());
                for (n, v) in &resolved {
                    o = o.env(*n, v);
                }
                o
            }
            _ => options,
        };
        let ungranted = |options| Prepared {
            options,
            granted: false,
        };
        if !self.enabled {
            return Ok(ungranted(options));
        }
        let Some(credential) = credential else {
            tracing::warn!(session = %key, "no ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN for this session: it runs without the credential proxy (the CLI's own login, if any)");
            return Ok(ungranted(options));
        };
        let upstream = var("ANTHROPIC_BASE_URL")
            .unwrap_or_else(|| claude_code::proxy::DEFAULT_UPSTREAM.to_string());
        let proxy = self.proxy(&upstream, credential).await?;
        let mut grant = SessionGrant::new(key);
        grant.max_spend_usd = budget_usd.or(self.default_budget_usd);
        grant.requests_per_minute = self.requests_per_minute;
        let grant = proxy.grant(grant)?;
        options = grant.apply(options);
        self.grants().insert(key.to_string(), grant);
        Ok(Prepared {
            options,
            granted: true,
        })
    }

    async fn proxy(
        &self,
        upstream: &str,
        credential: Credential,
    ) -> Result<Arc<CredentialProxy>, ProxyError> {
        let mut proxies = self.proxies.lock().await;
        if let Some((_, _, p)) = proxies
            .iter()
            .find(|(u, c, _)| u == upstream && *c == credential)
        {
            return Ok(Arc::clone(p));
        }
        let proxy = Arc::new(
            CredentialProxy::start(ProxyConfig::new(credential.clone()).upstream(upstream)).await?,
        );
        tracing::info!(url = %proxy.url(), %upstream, "credential proxy started: sessions get a token, never the key");
        proxies.push((upstream.to_string(), credential, Arc::clone(&proxy)));
        Ok(proxy)
    }

    /// Adds a turn's cost to the session's spend at the proxy.
    pub(crate) fn record_spend(&self, key: &str, usd: f64) {
        if let Some(g) = self.grants().get(key) {
            g.record_spend(usd);
        }
    }

    /// USD the session's grant has counted so far, when it holds one.
    pub(crate) fn spent(&self, key: &str) -> Option<f64> {
        self.grants().get(key).map(|g| g.spent_usd())
    }

    /// Revokes the session's token.
    pub(crate) fn revoke(&self, key: &str) {
        self.grants().remove(key);
    }

    /// Whether the session `key` holds a live grant.
    #[cfg(test)]
    pub(crate) fn has_grant(&self, key: &str) -> bool {
        self.grants().get(key).is_some_and(|g| !g.is_revoked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostConfig;

    fn env_of(o: &Options, name: &str) -> Option<Option<String>> {
        o.to_env()
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    #[tokio::test]
    async fn a_session_gets_a_token_and_the_allow_list() {
        let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"));
        let proxies = Proxies::new(&config);
        let o = Options::new()
            .env("ANTHROPIC_API_KEY", "sk-ant-real")
            .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
            .env("ANTHROPIC_AUTH_TOKEN", "also-secret");
        let p = proxies.prepare("t/a", o, Some(1.0)).await.expect("prepare");
        assert!(p.granted && proxies.has_grant("t/a"));
        let key = env_of(&p.options, "ANTHROPIC_API_KEY")
            .flatten()
            .expect("key");
        assert!(key.starts_with("sk-ant-proxy-"), "{key}");
        assert_eq!(env_of(&p.options, "ANTHROPIC_AUTH_TOKEN"), Some(None));
        assert_ne!(
            env_of(&p.options, "ANTHROPIC_BASE_URL"),
            Some(Some("http://127.0.0.1:9".into()))
        );
        assert!(p.options.inherited_env().is_some(), "allow-listed");
        // One proxy for one upstream and credential; revoking drops the grant.
        let o = Options::new()
            .env("ANTHROPIC_API_KEY", "sk-ant-real")
            .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9");
        proxies.prepare("t/b", o, None).await.expect("prepare");
        assert_eq!(proxies.proxies.lock().await.len(), 1);
        proxies.revoke("t/a");
        assert!(!proxies.has_grant("t/a") && proxies.has_grant("t/b"));
    }

    #[tokio::test]
    async fn without_the_proxy_the_key_is_passed_explicitly() {
        let config = HostConfig::new("127.0.0.1:0".parse().expect("addr")).credential_proxy(false);
        let proxies = Proxies::new(&config);
        let o = Options::new().env("ANTHROPIC_API_KEY", "sk-ant-real");
        let p = proxies.prepare("t/a", o, None).await.expect("prepare");
        assert!(!p.granted && !proxies.has_grant("t/a"));
        assert_eq!(
            env_of(&p.options, "ANTHROPIC_API_KEY"),
            Some(Some("sk-ant-real".into()))
        );
        assert!(p.options.inherited_env().is_some(), "still allow-listed");
        // No credential at all: no grant, no proxy (the CLI's own login).
        let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"));
        let proxies = Proxies::new(&config);
        let o = Options::new()
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_AUTH_TOKEN");
        assert!(
            !proxies
                .prepare("t/c", o, None)
                .await
                .expect("prepare")
                .granted
        );
    }
}
