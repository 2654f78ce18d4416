//! A credential proxy for the Messages API (feature `proxy`): the real API key stays in
//! this process, and each CLI gets a per-session token that is worth nothing elsewhere.
//!
//! [`CredentialProxy::start`] binds a loopback HTTP/1.1 server that holds the real
//! [`Credential`] (`ANTHROPIC_API_KEY`, sent upstream as `x-api-key`, or
//! `ANTHROPIC_AUTH_TOKEN`, sent as `Authorization: Bearer`). [`CredentialProxy::grant`]
//! makes a [`ProxySession`]: a random token, and [`ProxySession::apply`] points a
//! session's [`Options`] at the proxy with that token in place of the key. For every
//! request the proxy:
//!
//! 1. maps the token (`x-api-key` or `Authorization: Bearer`) to its session; an unknown
//!    or revoked token is a 401 in the API's error shape;
//! 2. refuses a session over its budget with a 402 `session_budget_exceeded` (the CLI
//!    does not retry it; the SDK surfaces it as [`Error::BudgetExceeded`]) and a session
//!    over its request rate with a 429 and `retry-after`;
//! 3. forwards the request with the real credential in place of the token (no header
//!    that carries the token is forwarded), and streams the request and response bodies
//!    through frame by frame: nothing is buffered, so Server-Sent Events arrive as the
//!    upstream sends them;
//! 4. reads the token usage out of the response as it passes (SSE `message_start` and
//!    `message_delta` events, or a JSON body's `usage`) into [`ProxySession::usage`].
//!
//! Spend in USD is the caller's to report ([`ProxySession::record_spend`], e.g. from the
//! turns' results or a [`CostTracker`](crate::CostTracker)): the proxy sees tokens, not
//! prices. A [`ProxySession`] revokes its token when dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use claude_code::proxy::{Credential, CredentialProxy, ProxyConfig, SessionGrant};
//! use claude_code::{Options, Session};
//!
//! let credential = Credential::from_env().ok_or("set ANTHROPIC_API_KEY")?;
//! let proxy = CredentialProxy::start(ProxyConfig::new(credential)).await?;
//! let grant = proxy.grant(SessionGrant::new("reviewer").max_spend_usd(1.0))?;
//! // The child inherits only PATH, HOME, … and gets the proxy's URL and the token.
//! let session = Session::start(grant.apply(Options::new().minimal_env())).await?;
//! let summary = session.stream("Review src/lib.rs").await?.collect().await?;
//! grant.record_spend(summary.cost_usd().unwrap_or(0.0));
//! println!("{:?}", grant.usage());
//! # Ok(()) }
//! ```
//!
//! [`Error::BudgetExceeded`]: crate::Error::BudgetExceeded

mod server;
mod usage;

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;

use crate::{cost::TokenUsage, Options};

pub use usage::ProxyUsage;

/// A secret string: its `Debug` output is redacted and it has no `Display`, so it cannot
/// end up in logs or error messages by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself: for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The real credential the proxy sends upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// An API key (`ANTHROPIC_API_KEY`), sent as `x-api-key`.
    ApiKey(Secret),
    /// A bearer token (`ANTHROPIC_AUTH_TOKEN`), sent as `Authorization: Bearer`.
    AuthToken(Secret),
}

impl Credential {
    /// An API key, sent as `x-api-key`.
    pub fn api_key(key: impl Into<String>) -> Self {
        Credential::ApiKey(Secret::new(key))
    }

    /// A bearer token, sent as `Authorization: Bearer`.
    pub fn auth_token(token: impl Into<String>) -> Self {
        Credential::AuthToken(Secret::new(token))
    }

    /// This process's `ANTHROPIC_API_KEY`, else its `ANTHROPIC_AUTH_TOKEN` (empty values
    /// count as unset); `None` when neither is set.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        var("ANTHROPIC_API_KEY")
            .map(Credential::api_key)
            .or_else(|| var("ANTHROPIC_AUTH_TOKEN").map(Credential::auth_token))
    }

    fn secret(&self) -> &Secret {
        match self {
            Credential::ApiKey(s) | Credential::AuthToken(s) => s,
        }
    }
}

/// How to run a [`CredentialProxy`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Where to listen: a loopback address only (default `127.0.0.1:0`, a free port).
    pub listen: SocketAddr,
    /// The upstream API's base URL, `http` or `https` (default
    /// `https://api.anthropic.com`); a path is kept as a prefix.
    pub upstream: String,
    /// The real credential.
    pub credential: Credential,
    /// Longest wait for a TCP connection to the upstream (default 10 s).
    pub connect_timeout: Duration,
}

/// The Messages API the proxy forwards to unless told otherwise.
pub const DEFAULT_UPSTREAM: &str = "https://api.anthropic.com";

impl ProxyConfig {
    /// A proxy for `credential` on `127.0.0.1:0` in front of [`DEFAULT_UPSTREAM`].
    pub fn new(credential: Credential) -> Self {
        ProxyConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            upstream: DEFAULT_UPSTREAM.to_string(),
            credential,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Listen on `addr` (must be a loopback address).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Forward to `base_url` (e.g. a gateway, or a mock in tests).
    #[must_use]
    pub fn upstream(mut self, base_url: impl Into<String>) -> Self {
        self.upstream = base_url.into();
        self
    }

    /// Longest wait for a TCP connection to the upstream.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// Why a [`CredentialProxy`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The listen address is not a loopback address: the proxy hands out the real
    /// credential's power to whoever holds a token, so it never listens beyond the host.
    #[error(
        "the credential proxy listens on loopback addresses only (127.0.0.1, ::1), not {addr}; \
         keep the default or pick a loopback address"
    )]
    NotLoopback {
        /// The refused address.
        addr: SocketAddr,
    },
    /// The listen socket could not be bound.
    #[error("the credential proxy cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The upstream base URL is unusable.
    #[error("the credential proxy's upstream {url:?} {problem}")]
    InvalidUpstream {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The credential is empty or cannot be sent in an HTTP header.
    #[error(
        "the credential proxy's credential is empty or holds characters an HTTP header \
         cannot carry; check ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN"
    )]
    InvalidCredential,
    /// An `https` upstream needs the system's root certificates, which could not be read.
    #[error(
        "the credential proxy cannot read the system's root certificates for {url}: {problem}; \
         install the ca-certificates package"
    )]
    RootCertificates {
        /// The upstream.
        url: String,
        /// The error.
        problem: String,
    },
    /// The operating system's random number generator failed, so no token can be made.
    #[error(
        "cannot make a session token: the operating system's random number generator failed: {0}"
    )]
    Random(String),
}

/// What one session may do through the proxy.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SessionGrant {
    /// A name for logs (e.g. the session's name).
    pub label: String,
    /// Once [`ProxySession::spent_usd`] reaches this, requests are refused with a 402
    /// `session_budget_exceeded`.
    pub max_spend_usd: Option<f64>,
    /// Most requests forwarded per rolling minute; more get a 429 with `retry-after`.
    pub requests_per_minute: Option<u32>,
}

impl SessionGrant {
    /// A grant without limits.
    pub fn new(label: impl Into<String>) -> Self {
        SessionGrant {
            label: label.into(),
            ..Default::default()
        }
    }

    /// Refuse requests once this much USD has been reported spent.
    #[must_use]
    pub fn max_spend_usd(mut self, usd: f64) -> Self {
        self.max_spend_usd = Some(usd);
        self
    }

    /// Most requests per rolling minute.
    #[must_use]
    pub fn requests_per_minute(mut self, n: u32) -> Self {
        self.requests_per_minute = Some(n);
        self
    }
}

/// A running credential proxy. Stops serving on [`CredentialProxy::shutdown`] or when
/// dropped; its [`ProxySession`]s then point at nothing.
pub struct CredentialProxy {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for CredentialProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream.base)
            .field("sessions", &self.sessions())
            .finish_non_exhaustive()
    }
}

impl CredentialProxy {
    /// Checks the configuration, binds the loopback socket and starts serving.
    pub async fn start(config: ProxyConfig) -> Result<CredentialProxy, ProxyError> {
        if !config.listen.ip().is_loopback() {
            return Err(ProxyError::NotLoopback {
                addr: config.listen,
            });
        }
        let shared = Arc::new(server::Shared::new(&config)?);
        let bind_err = |source| ProxyError::Bind {
            addr: config.listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let task = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared)));
        tracing::debug!(%addr, upstream = %shared.upstream.base, "credential proxy listening");
        Ok(CredentialProxy {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: the `ANTHROPIC_BASE_URL` of its sessions.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The upstream base URL it forwards to.
    pub fn upstream(&self) -> &str {
        &self.shared.upstream.base
    }

    /// A new session with its own random token. Keep the returned handle for as long as
    /// the session may call the API: dropping it revokes the token. Fails only when the
    /// operating system has no randomness to give (no token is safer than a weak one).
    pub fn grant(&self, grant: SessionGrant) -> Result<ProxySession, ProxyError> {
        let token = new_token()?;
        let state = Arc::new(GrantState {
            grant,
            books: Mutex::new(Books::default()),
        });
        self.shared
            .grants()
            .insert(token.expose().to_string(), Arc::clone(&state));
        Ok(ProxySession {
            token,
            url: self.url(),
            state,
            shared: Arc::downgrade(&self.shared),
        })
    }

    /// Tokens currently granted and not revoked.
    pub fn sessions(&self) -> usize {
        self.shared.grants().len()
    }

    /// Stops accepting and closes every connection, streams in flight included.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for CredentialProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// 32 random bytes, hex: a token that cannot be guessed.
fn new_token() -> Result<Secret, ProxyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ProxyError::Random(e.to_string()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Secret(format!("sk-ant-proxy-{hex}")))
}

/// One session's handle at the proxy: its token, its counters, its budget. Revokes the
/// token when dropped.
pub struct ProxySession {
    token: Secret,
    url: String,
    state: Arc<GrantState>,
    shared: Weak<server::Shared>,
}

impl fmt::Debug for ProxySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxySession")
            .field("label", &self.state.grant.label)
            .field("url", &self.url)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl ProxySession {
    /// The grant's label.
    pub fn label(&self) -> &str {
        &self.state.grant.label
    }

    /// The proxy's URL (`ANTHROPIC_BASE_URL` for this session).
    pub fn base_url(&self) -> &str {
        &self.url
    }

    /// The session's token (what the CLI sends as its API key).
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// `options` pointed at the proxy, for the child only: `ANTHROPIC_BASE_URL` is the
    /// proxy, `ANTHROPIC_API_KEY` the session's token, and the other credential variables
    /// (`ANTHROPIC_AUTH_TOKEN`, `CLAUDE_CODE_OAUTH_TOKEN`) are removed. Combine with
    /// [`Options::minimal_env`] so that nothing else of this process's environment
    /// reaches the child.
    pub fn apply(&self, options: Options) -> Options {
        options
            .env("ANTHROPIC_BASE_URL", &self.url)
            .env("ANTHROPIC_API_KEY", self.token.expose())
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
    }

    /// Requests and tokens the proxy has seen for this session.
    pub fn usage(&self) -> ProxyUsage {
        self.state.books().usage
    }

    /// Adds `usd` to the session's spend (non-finite or negative amounts are ignored).
    pub fn record_spend(&self, usd: f64) {
        if usd.is_finite() && usd > 0.0 {
            self.state.books().spent_usd += usd;
        }
    }

    /// USD reported spent so far.
    pub fn spent_usd(&self) -> f64 {
        self.state.books().spent_usd
    }

    /// The budget, if any.
    pub fn max_spend_usd(&self) -> Option<f64> {
        self.state.grant.max_spend_usd
    }

    /// Revokes the token now: later requests with it get a 401. Requests already
    /// forwarded finish.
    pub fn revoke(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.grants().remove(self.token.expose());
        }
    }

    /// True once revoked (or once the proxy is gone).
    pub fn is_revoked(&self) -> bool {
        match self.shared.upgrade() {
            Some(shared) => !shared.grants().contains_key(self.token.expose()),
            None => true,
        }
    }
}

impl Drop for ProxySession {
    fn drop(&mut self) {
        self.revoke();
    }
}

/// What the proxy keeps per token.
#[derive(Debug)]
pub(crate) struct GrantState {
    pub(crate) grant: SessionGrant,
    books: Mutex<Books>,
}

#[derive(Debug, Default)]
struct Books {
    usage: ProxyUsage,
    spent_usd: f64,
    /// Forwarding times within the last minute (rate limit).
    window: VecDeque<Instant>,
}

/// Why a request was refused before forwarding.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    Budget { spent: f64, max: f64 },
    Rate { retry_after: Duration, limit: u32 },
}

const RATE_WINDOW: Duration = Duration::from_secs(60);

impl GrantState {
    fn books(&self) -> MutexGuard<'_, Books> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one request at `now` (counting it), or says why not.
    pub(crate) fn admit(&self, now: Instant) -> Result<(), Refusal> {
        let mut books = self.books();
        if let Some(max) = self.grant.max_spend_usd {
            if books.spent_usd >= max {
                books.usage.refused += 1;
                return Err(Refusal::Budget {
                    spent: books.spent_usd,
                    max,
                });
            }
        }
        if let Some(limit) = self.grant.requests_per_minute {
            while books
                .window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW)
            {
                books.window.pop_front();
            }
            if books.window.len() >= limit as usize {
                let oldest = books.window.front().copied().unwrap_or(now);
                let retry_after = RATE_WINDOW.saturating_sub(now.duration_since(oldest));
                books.usage.refused += 1;
                return Err(Refusal::Rate { retry_after, limit });
            }
            books.window.push_back(now);
        }
        books.usage.requests += 1;
        Ok(())
    }

    /// Adds tokens read from a response.
    pub(crate) fn add_tokens(&self, t: &TokenUsage) {
        usage::add(&mut self.books().usage.tokens, t);
    }
}

impl server::Shared {
    pub(crate) fn grants(&self) -> MutexGuard<'_, HashMap<String, Arc<GrantState>>> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(grant: SessionGrant) -> GrantState {
        GrantState {
            grant,
            books: Mutex::new(Books::default()),
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = Credential::api_key("sk-ant-real-123");
        assert!(!format!("{c:?}").contains("real"), "{c:?}");
        let config = ProxyConfig::new(c);
        assert!(!format!("{config:?}").contains("real"));
        assert_eq!(config.credential.secret().expose(), "sk-ant-real-123");
    }

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (new_token().expect("token"), new_token().expect("token"));
        assert_ne!(a, b);
        assert!(a.expose().len() > 64);
    }

    #[test]
    fn the_budget_refuses_once_spent() {
        let s = state(SessionGrant::new("s").max_spend_usd(0.5));
        let now = Instant::now();
        assert_eq!(s.admit(now), Ok(()));
        s.books().spent_usd = 0.5;
        assert_eq!(
            s.admit(now),
            Err(Refusal::Budget {
                spent: 0.5,
                max: 0.5
            })
        );
        assert_eq!(s.books().usage.requests, 1);
        assert_eq!(s.books().usage.refused, 1);
    }

    #[test]
    fn the_rate_limit_rolls_over_a_minute() {
        let s = state(SessionGrant::new("s").requests_per_minute(2));
        let t0 = Instant::now();
        assert!(s.admit(t0).is_ok());
        assert!(s.admit(t0 + Duration::from_secs(10)).is_ok());
        match s.admit(t0 + Duration::from_secs(20)) {
            Err(Refusal::Rate { retry_after, limit }) => {
                assert_eq!(limit, 2);
                assert_eq!(retry_after, Duration::from_secs(40));
            }
            other => panic!("expected a rate refusal, got {other:?}"),
        }
        assert!(s.admit(t0 + Duration::from_secs(60)).is_ok());
    }

    #[tokio::test]
    async fn a_non_loopback_listen_address_is_refused() {
        let config =
            ProxyConfig::new(Credential::api_key("k")).listen(SocketAddr::from(([0, 0, 0, 0], 0)));
        assert!(matches!(
            CredentialProxy::start(config).await,
            Err(ProxyError::NotLoopback { .. })
        ));
    }

    #[tokio::test]
    async fn bad_upstreams_and_credentials_are_refused() {
        for url in ["ftp://x", "not a url", "http://"] {
            let config = ProxyConfig::new(Credential::api_key("k")).upstream(url);
            assert!(
                matches!(
                    CredentialProxy::start(config).await,
                    Err(ProxyError::InvalidUpstream { .. })
                ),
                "{url}"
            );
        }
        for c in [Credential::api_key(""), Credential::auth_token("a\nb")] {
            let config = ProxyConfig::new(c).upstream("http://127.0.0.1:9");
            assert!(matches!(
                CredentialProxy::start(config).await,
                Err(ProxyError::InvalidCredential)
            ));
        }
    }

    #[tokio::test]
    async fn grants_are_revoked_on_drop_and_on_demand() {
        let proxy = CredentialProxy::start(
            ProxyConfig::new(Credential::api_key("k")).upstream("http://127.0.0.1:9"),
        )
        .await
        .expect("start");
        let a = proxy.grant(SessionGrant::new("a")).expect("grant");
        let b = proxy.grant(SessionGrant::new("b")).expect("grant");
        assert_eq!(proxy.sessions(), 2);
        a.revoke();
        assert!(a.is_revoked());
        assert!(!b.is_revoked());
        drop(b);
        assert_eq!(proxy.sessions(), 0);
        let c = proxy.grant(SessionGrant::new("c")).expect("grant");
        let env = c
            .apply(Options::new().env("ANTHROPIC_AUTH_TOKEN", "x"))
            .to_env();
        assert!(env.contains(&("ANTHROPIC_BASE_URL".into(), Some(proxy.url()))));
        assert!(env.contains(&(
            "ANTHROPIC_API_KEY".into(),
            Some(c.token().expose().to_string())
        )));
        assert!(env.contains(&("ANTHROPIC_AUTH_TOKEN".into(), None)));
        assert!(!format!("{c:?}").contains(c.token().expose()));
    }
}
