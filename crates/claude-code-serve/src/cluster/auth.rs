//! Authentication and TLS of the cluster's NATS connection: [`NatsAuth`] (a `.creds` file,
//! a user and password, or a token) and [`NatsTls`] (require TLS, the CA to trust, a
//! client certificate for mutual TLS), both part of [`ClusterConfig`]. Every connection a
//! host makes to the cluster (the membership, leases, checkpoints, jobs and routing all
//! share one, [`Leases::connect_with`](super::Leases::connect_with) makes its own) is
//! made here, by [`connect`], with the same settings.
//!
//! Secrets never sit in the configuration in clear: a password or token is a
//! [`SecretSource`] (an environment variable or a file, read when the host connects; an
//! embedder may hand the value over as a [`Secret`], whose `Debug` is redacted), and a URL
//! with credentials in it (`nats://user:pass@host`) is refused. A connection that fails
//! is classified into a [`ClusterError`] that names what is wrong and what to do: the
//! server refused the credentials, a secret or file cannot be read, the server's
//! certificate is not trusted, the server refused the client certificate, or TLS is
//! required but the server does not offer it. The first connection is tried once, within
//! [`CONNECT_TIMEOUT`]: a host that cannot connect refuses to start, it does not retry.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use async_nats::{rustls, ConnectErrorKind};

pub use claude_code::proxy::Secret;

use super::{ClusterConfig, ClusterError};

/// How long the first connection to the NATS server may take (TCP, TLS, `CONNECT`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a secret of the NATS connection (a password, a token) comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// An environment variable of the host's process, read when it connects (`[cluster]
    /// password_env`, `token_env`).
    Env(String),
    /// A file holding the secret, read when the host connects; a trailing newline is not
    /// part of it (`[cluster] password_file`, `token_file`).
    File(PathBuf),
    /// The secret itself, for embedders that hold it already.
    Value(Secret),
}

impl SecretSource {
    /// The secret from the environment variable `var`.
    pub fn env(var: impl Into<String>) -> Self {
        SecretSource::Env(var.into())
    }

    /// The secret from the file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SecretSource::File(path.into())
    }

    /// The secret itself.
    pub fn value(secret: impl Into<String>) -> Self {
        SecretSource::Value(Secret::new(secret))
    }

    /// Where the secret comes from, without it: `$NATS_PASSWORD`, `the file /x`, `the
    /// value given`.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(var) => format!("${var}"),
            SecretSource::File(path) => format!("the file {}", path.display()),
            SecretSource::Value(_) => "the value given".to_string(),
        }
    }

    /// Reads the secret; `what` names it in the error (`password`, `token`).
    pub fn read(&self, what: &'static str) -> Result<Secret, ClusterError> {
        let fail = |detail: String| ClusterError::Secret {
            what,
            from: self.describe(),
            detail,
        };
        let value = match self {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(fail(format!(
                    "the environment variable {var} is not set; set it in the host's environment"
                )))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(fail(format!("the environment variable {var} is not UTF-8")))
                }
            },
            SecretSource::File(path) => {
                warn_if_shared(path, what);
                std::fs::read_to_string(path)
                    .map_err(|e| fail(format!("{e}; check [cluster] {what}_file")))?
            }
            SecretSource::Value(secret) => secret.expose().to_string(),
        };
        let value = value.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(fail("it is empty".to_string()));
        }
        Ok(Secret::new(value))
    }
}

/// How the host authenticates to the NATS server: one method, or none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatsAuth {
    /// No credentials (a server on a private network).
    #[default]
    None,
    /// A NATS `.creds` file: a user JWT and its nkey seed (`[cluster] creds_file`), as
    /// `nsc generate creds` writes it; read when the host connects.
    Creds(PathBuf),
    /// A user and password (`[cluster] user` with `password_env` or `password_file`).
    UserPassword {
        /// The user name (not a secret).
        user: String,
        /// Where the password comes from.
        password: SecretSource,
    },
    /// A token (`[cluster] token_env` or `token_file`).
    Token(SecretSource),
}

impl NatsAuth {
    /// What this method is, for messages (no secret): `the credentials file /x.creds`,
    /// `user "a" with the password from $NATS_PASSWORD`, `the token from $NATS_TOKEN`,
    /// `no credentials`.
    pub fn describe(&self) -> String {
        match self {
            NatsAuth::None => "no credentials".to_string(),
            NatsAuth::Creds(path) => format!("the credentials file {}", path.display()),
            NatsAuth::UserPassword { user, password } => {
                format!(
                    "user {user:?} with the password from {}",
                    password.describe()
                )
            }
            NatsAuth::Token(token) => format!("the token from {}", token.describe()),
        }
    }

    fn hint(&self) -> &'static str {
        match self {
            NatsAuth::None => "the server requires authentication: set [cluster] creds_file, user with password_env, or token_env",
            NatsAuth::Creds(_) => "check that [cluster] creds_file holds a user of this server's operator and account, and that its JWT has not expired",
            NatsAuth::UserPassword { .. } => "check [cluster] user and the password (password_env / password_file) against the server's authorization block",
            NatsAuth::Token(_) => "check the token (token_env / token_file) against the server's authorization token",
        }
    }
}

/// TLS of the connection to the NATS server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsTls {
    /// Refuse a server that does not offer TLS (`[cluster] tls = true`). A `tls://` URL,
    /// a CA or a client certificate requires TLS as well.
    pub required: bool,
    /// A PEM file of the CA certificate(s) to trust for the server's certificate
    /// (`tls_ca`); without it the system's roots are trusted.
    pub ca: Option<PathBuf>,
    /// A PEM client certificate for mutual TLS (`tls_cert`, with `tls_key`).
    pub cert: Option<PathBuf>,
    /// The PEM private key of [`cert`](Self::cert) (`tls_key`).
    pub key: Option<PathBuf>,
}

impl NatsTls {
    /// TLS required, the system's roots trusted.
    pub fn required() -> Self {
        NatsTls {
            required: true,
            ..Default::default()
        }
    }

    /// Trusts the CA certificate(s) in the PEM file at `path` (and requires TLS).
    #[must_use]
    pub fn ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM files) for mutual TLS (and requires
    /// TLS).
    #[must_use]
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cert = Some(cert.into());
        self.key = Some(key.into());
        self
    }

    /// Whether the connection to `url` must be TLS, and why (for messages).
    pub fn required_by(&self, url: &str) -> Option<&'static str> {
        if url.starts_with("tls://") {
            Some("a tls:// URL")
        } else if self.required {
            Some("[cluster] tls = true")
        } else if self.ca.is_some() {
            Some("[cluster] tls_ca is set")
        } else if self.cert.is_some() || self.key.is_some() {
            Some("[cluster] tls_cert is set")
        } else {
            None
        }
    }
}

/// Checks a cluster URL: `nats://HOST:PORT` or `tls://HOST:PORT` (TLS required), with no
/// credentials in it (they would sit in the configuration in clear: use
/// [`NatsAuth`]) and no path. The error never repeats credentials found in the URL.
pub fn check_url(url: &str) -> Result<(), ClusterError> {
    let invalid = |reason: &str| ClusterError::InvalidUrl {
        url: redact_url(url),
        reason: reason.to_string(),
    };
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .ok_or_else(|| {
            invalid("expected a NATS server URL like nats://127.0.0.1:4222 (or tls://HOST:PORT to require TLS)")
        })?;
    if rest.contains('@') {
        return Err(invalid(
            "credentials in the URL would sit in the configuration in clear; remove them and use [cluster] user with password_env, token_env or creds_file",
        ));
    }
    if rest.is_empty() || rest.contains('/') || rest.contains('?') {
        return Err(invalid("expected nats://HOST:PORT, with no path"));
    }
    Ok(())
}

/// `url` with anything before an `@` in its authority replaced by `***`.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    match rest.rsplit_once('@') {
        Some((_, host)) if scheme.is_empty() => format!("***@{host}"),
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => url.to_string(),
    }
}

/// Logs a warning when a secret file can be read by other users than its owner.
fn warn_if_shared(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the cluster's NATS {what} file can be read by other users; chmod 600 it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

/// Checks that `path` is a readable PEM file with a `-----BEGIN <label>` block (any label
/// ending with `label`, so `PRIVATE KEY` takes `RSA PRIVATE KEY` and `EC PRIVATE KEY`).
fn check_pem(key: &'static str, path: &Path, label: &str) -> Result<(), ClusterError> {
    let fail = |detail: String| ClusterError::TlsFile {
        key,
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let found = text.lines().any(|l| {
        l.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
            .is_some_and(|l| l.ends_with(label))
    });
    if found {
        Ok(())
    } else {
        Err(fail(format!("no PEM {label} in it")))
    }
}

/// The connect options for `config`: its credentials (secrets read now) and TLS (files
/// checked now), named `claude-code <node>`, with [`CONNECT_TIMEOUT`].
pub(crate) async fn options(
    config: &ClusterConfig,
    node: &str,
) -> Result<async_nats::ConnectOptions, ClusterError> {
    check_url(&config.url)?;
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("claude-code {node}"))
        .connection_timeout(CONNECT_TIMEOUT)
        // Reconnects forever, pauses capped (see link.rs: When NATS fails).
        .reconnect_delay_callback(super::link::reconnect_delay);
    options = match &config.auth {
        NatsAuth::None => options,
        NatsAuth::Creds(path) => {
            let fail = |detail: String| ClusterError::Credentials {
                path: path.clone(),
                detail,
            };
            warn_if_shared(path, "credentials");
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| fail(e.to_string()))?;
            options
                .credentials(&text)
                .map_err(|e| fail(e.to_string()))?
        }
        NatsAuth::UserPassword { user, password } => {
            let password = password.read("password")?;
            options.user_and_password(user.clone(), password.expose().to_string())
        }
        NatsAuth::Token(token) => options.token(token.read("token")?.expose().to_string()),
    };
    let tls = &config.tls;
    if tls.required_by(&config.url).is_some() {
        options = options.require_tls(true);
    }
    if let Some(ca) = &tls.ca {
        check_pem("tls_ca", ca, "CERTIFICATE")?;
        options = options.add_root_certificates(ca.clone());
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            check_pem("tls_cert", cert, "CERTIFICATE")?;
            warn_if_shared(key, "TLS key");
            check_pem("tls_key", key, "PRIVATE KEY")?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        (Some(cert), None) => {
            return Err(ClusterError::TlsFile {
                key: "tls_key",
                path: cert.clone(),
                detail: "a client certificate needs its key: set tls_key too".to_string(),
            })
        }
        (None, Some(key)) => {
            return Err(ClusterError::TlsFile {
                key: "tls_cert",
                path: key.clone(),
                detail: "a client key needs its certificate: set tls_cert too".to_string(),
            })
        }
    }
    Ok(options)
}

/// Connects to the cluster's NATS server with `config`'s credentials and TLS, once (no
/// retry), and classifies a failure.
pub(crate) async fn connect(
    config: &ClusterConfig,
    node: &str,
) -> Result<async_nats::Client, ClusterError> {
    let options = options(config, node).await?;
    match options.connect(config.url.as_str()).await {
        Ok(client) => Ok(client),
        Err(e) => Err(classify(config, &e).await),
    }
}

/// What [`probe`] learnt of the NATS server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Probe {
    /// The server's version (`INFO`).
    pub version: String,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Whether the server asked for credentials.
    pub auth_required: bool,
}

/// Connects once with `config`'s URL, credentials and TLS, as a host would, then closes:
/// for `claude-code doctor`. The same typed errors as a host's start.
pub async fn probe(config: &ClusterConfig) -> Result<Probe, ClusterError> {
    let client = connect(config, "doctor").await?;
    let info = client.server_info();
    let probe = Probe {
        version: info.version,
        tls: info.tls_required || config.tls.required_by(&config.url).is_some(),
        auth_required: info.auth_required,
    };
    let _ = client.drain().await;
    Ok(probe)
}

/// The [`ClusterError`] for a failed first connection.
async fn classify(config: &ClusterConfig, e: &async_nats::ConnectError) -> ClusterError {
    let url = config.url.clone();
    let detail = chain(e);
    match e.kind() {
        ConnectErrorKind::AuthorizationViolation => {
            return ClusterError::AuthRefused {
                url,
                method: config.auth.describe(),
                hint: config.auth.hint(),
            }
        }
        ConnectErrorKind::Authentication => {
            return ClusterError::AuthRefused {
                url,
                method: config.auth.describe(),
                hint: "the nonce could not be signed: check that the credentials file holds a valid user nkey seed",
            }
        }
        _ => {}
    }
    match tls_error(e) {
        Some(rustls::Error::InvalidCertificate(_)) => {
            return ClusterError::TlsUntrusted { url, detail };
        }
        Some(rustls::Error::AlertReceived(alert)) if client_cert_alert(*alert) => {
            return ClusterError::TlsClientRefused { url, detail };
        }
        _ => {}
    }
    if let Some(why) = config.tls.required_by(&config.url) {
        if server_offers_tls(&config.url).await == Some(false) {
            return ClusterError::TlsUnavailable { url, why };
        }
    }
    if e.kind() == ConnectErrorKind::Tls || tls_error(e).is_some() {
        return ClusterError::Tls { url, detail };
    }
    ClusterError::Connect { url, detail }
}

/// Alerts a server sends when it does not accept the client's certificate (or got none).
fn client_cert_alert(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::BadCertificate
            | A::CertificateRequired
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::UnsupportedCertificate
            | A::AccessDenied
    )
}

/// The rustls error somewhere in `e`'s chain, if any.
fn tls_error(e: &async_nats::ConnectError) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = err.source();
    }
    None
}

/// `e` and its sources, `: `-separated, without repeats.
fn chain(e: &async_nats::ConnectError) -> String {
    let mut text = e.to_string();
    let mut current = std::error::Error::source(e);
    while let Some(err) = current {
        let s = err.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        current = err.source();
    }
    text
}

/// Whether the server at `url` offers TLS, by its `INFO` line (`tls_required` or
/// `tls_available`); `None` when that cannot be read within 2 s.
async fn server_offers_tls(url: &str) -> Option<bool> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let authority = url.split_once("://").map_or(url, |(_, a)| a);
    let read = async {
        let stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        let mut line = String::new();
        // An INFO line is a few hundred bytes; read no more than 64 KiB of anything.
        tokio::io::BufReader::new(stream.take(64 * 1024))
            .read_line(&mut line)
            .await
            .ok()?;
        let info: serde_json::Value = serde_json::from_str(line.strip_prefix("INFO ")?).ok()?;
        let flag = |k: &str| info.get(k).and_then(serde_json::Value::as_bool) == Some(true);
        Some(flag("tls_required") || flag("tls_available"))
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_are_refused_without_repeating_them() {
        check_url("nats://127.0.0.1:4222").expect("works");
        check_url("tls://nats.internal:4222").expect("works");
        for bad in [
            "nats://me:hunter2@127.0.0.1:4222",
            "nats://s3cr3t-token@127.0.0.1:4222",
            "tls://me:hunter2@h:1",
        ] {
            let e = check_url(bad).expect_err("fails").to_string();
            assert!(e.contains("credentials in the URL"), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("s3cr3t"), "{e}");
            assert!(e.contains("***@"), "{e}");
        }
        for bad in ["http://h:1", "nats://", "nats://h:1/x", "h:1"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_come_from_env_or_files_and_never_show() {
        let dir = tempfile::tempdir().expect("works");
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-a-file\n").expect("works");
        let s = SecretSource::file(&file).read("password").expect("works");
        assert_eq!(s.expose(), "from-a-file");
        assert!(!format!("{s:?}").contains("from-a-file"));
        let value = SecretSource::value("s3cr3t-value");
        assert!(!format!("{value:?}").contains("s3cr3t"));
        let auth = NatsAuth::UserPassword {
            user: "u".into(),
            password: value,
        };
        assert!(!format!("{auth:?}").contains("s3cr3t"));
        assert!(!auth.describe().contains("s3cr3t"));

        let e = SecretSource::env("CLAUDE_CODE_TEST_SURELY_UNSET_VAR")
            .read("password")
            .expect_err("fails")
            .to_string();
        assert!(
            e.contains("CLAUDE_CODE_TEST_SURELY_UNSET_VAR is not set"),
            "{e}"
        );
        let e = SecretSource::file(dir.path().join("missing"))
            .read("token")
            .expect_err("fails")
            .to_string();
        assert!(e.contains("token") && e.contains("missing"), "{e}");
        std::fs::write(&file, "\n").expect("works");
        let e = SecretSource::file(&file)
            .read("token")
            .expect_err("fails")
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn tls_is_required_by_the_url_the_flag_a_ca_or_a_client_cert() {
        assert_eq!(NatsTls::default().required_by("nats://h:1"), None);
        assert!(NatsTls::default().required_by("tls://h:1").is_some());
        assert!(NatsTls::required().required_by("nats://h:1").is_some());
        assert!(NatsTls::default()
            .ca("ca.pem")
            .required_by("nats://h:1")
            .is_some());
        assert!(NatsTls::default()
            .client_cert("c.pem", "k.pem")
            .required_by("nats://h:1")
            .is_some());
    }

    #[tokio::test]
    async fn missing_or_wrong_files_are_named() {
        let dir = tempfile::tempdir().expect("works");
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").expect("works");
        let config = ClusterConfig::new("nats://127.0.0.1:1").tls(NatsTls::default().ca(&not_pem));
        let e = options(&config, "n").await.expect_err("fails");
        assert!(
            matches!(e, ClusterError::TlsFile { key: "tls_ca", .. }),
            "{e}"
        );
        assert!(e.to_string().contains("ca.pem"), "{e}");

        let config = ClusterConfig::new("nats://127.0.0.1:1")
            .auth(NatsAuth::Creds(dir.path().join("nope.creds")));
        let e = options(&config, "n").await.expect_err("fails");
        assert!(matches!(e, ClusterError::Credentials { .. }), "{e}");
        assert!(e.to_string().contains("nope.creds"), "{e}");

        let garbled = dir.path().join("bad.creds");
        std::fs::write(&garbled, "not a creds file").expect("works");
        let config = ClusterConfig::new("nats://127.0.0.1:1").auth(NatsAuth::Creds(garbled));
        let e = options(&config, "n").await.expect_err("fails");
        assert!(e.to_string().contains("cannot parse user JWT"), "{e}");
    }
}
