//! The cluster's NATS connection with authentication and TLS, against a real nats-server
//! started with a configuration file on loopback: a user and password, a token, TLS with
//! a CA made in the test, mutual TLS, and TLS required against a plain server. Hosts
//! in-process with the real CLI against the project's mock API; every refusal is the
//! typed error, quick, and never shows the secret.

use std::time::{Duration, Instant};

use claude_code_serve::{
    cluster::{ClusterConfig, ClusterError, Leases, NatsAuth, NatsTls, SecretSource},
    Host, HostConfig, ServeError,
};
use claude_code_tests::{NatsServer, Reply, Script, TestEnv, TestPki};
use serde_json::{json, Value};

const PASSWORD: &str = "pw-7f3a9c-correct-horse";

async fn host(env: &TestEnv, cluster: ClusterConfig) -> Result<Host, ServeError> {
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .cluster(cluster.heartbeat(Duration::from_millis(500)));
    config.spares = 0;
    Host::start(config).await
}

/// The cluster error a host refused to start with, checked to come within the connect
/// timeout (no retry loop) and to show none of `secrets`.
async fn refused(env: &TestEnv, cluster: ClusterConfig, secrets: &[&str]) -> ClusterError {
    let started = Instant::now();
    let err = host(env, cluster)
        .await
        .expect_err("the host refuses to start");
    let took = started.elapsed();
    assert!(
        took < claude_code_serve::cluster::CONNECT_TIMEOUT + Duration::from_secs(3),
        "refused after {took:?}: {err}"
    );
    eprintln!("refused in {took:?}: {err}");
    let text = format!("{err} {err:?}");
    for s in secrets {
        assert!(!text.contains(s), "the error shows a secret: {text}");
    }
    match err {
        ServeError::Cluster(e) => e,
        other => panic!("not a cluster error: {other}"),
    }
}

fn password_file(dir: &tempfile::TempDir, name: &str, secret: &str) -> std::path::PathBuf {
    let file = dir.path().join(name);
    std::fs::write(&file, format!("{secret}\n")).expect("write secret");
    file
}

async fn get(host: &Host, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("{}{path}", host.url()))
        .await
        .expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn post(host: &Host, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", host.url()))
        .json(&body)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.expect("json body"))
}

/// Two hosts that joined see each other, and a session made on the first answers a turn
/// sent through the second (routed over the authenticated connection).
async fn two_hosts_route_a_turn(a: &Host, b: &Host, secret: &str) {
    for h in [a, b] {
        let (status, body) = get(h, "/v1/cluster").await;
        assert_eq!(status, 200, "{body}");
        let view: Value = serde_json::from_str(&body).expect("json");
        let nodes: Vec<&str> = view["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter_map(|m| m["node"].as_str())
            .collect();
        assert_eq!(nodes, ["auth-a", "auth-b"], "{body}");
        assert!(!body.contains(secret), "GET /v1/cluster shows the secret");
    }
    let (status, made) = post(
        a,
        "/v1/sessions",
        json!({"name": "routed", "placement": "local"}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["owner"], "auth-a");
    let (status, reply) = post(b, "/v1/sessions/routed/messages", json!({"prompt": "hi"})).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["text"], "routed ok", "{reply}");
}

#[tokio::test]
async fn user_and_password_right_joins_wrong_or_none_is_refused() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("routed ok"))).await;
    let nats = NatsServer::start_with(&format!(
        "authorization {{ user: claude, password: \"{PASSWORD}\" }}\n"
    ));
    let dir = tempfile::tempdir().expect("dir");
    let right = password_file(&dir, "right", PASSWORD);
    let wrong = password_file(&dir, "wrong", "pw-not-this-one");
    let with = |file: &std::path::Path| {
        ClusterConfig::new(nats.url()).auth(NatsAuth::UserPassword {
            user: "claude".into(),
            password: SecretSource::file(file),
        })
    };

    let a = host(&env, with(&right).node_name("auth-a"))
        .await
        .expect("A joins with the right password");
    let b = host(&env, with(&right).node_name("auth-b"))
        .await
        .expect("B joins with the right password");
    two_hosts_route_a_turn(&a, &b, PASSWORD).await;
    // The leases' own connection takes the same settings.
    let leases = Leases::connect_with(&with(&right), "auth-watch", Duration::from_secs(2))
        .await
        .expect("leases connect with the password");
    assert_eq!(
        leases
            .owner("default", "routed")
            .await
            .expect("read the lease")
            .map(|l| l.owner),
        Some("auth-a".to_string())
    );

    let e = refused(
        &env,
        with(&wrong).node_name("auth-c"),
        &["pw-not-this-one", PASSWORD],
    )
    .await;
    assert!(matches!(e, ClusterError::AuthRefused { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("refused this host's credentials"), "{text}");
    assert!(text.contains("user \"claude\""), "{text}");
    assert!(text.contains(&wrong.display().to_string()), "{text}");

    let e = refused(
        &env,
        ClusterConfig::new(nats.url()).node_name("auth-c"),
        &[PASSWORD],
    )
    .await;
    assert!(matches!(e, ClusterError::AuthRefused { .. }), "{e:?}");
    assert!(
        e.to_string().contains("the server requires authentication"),
        "{e}"
    );

    // A password file that is not there: refused before connecting, naming the file.
    let e = refused(
        &env,
        with(&dir.path().join("absent")).node_name("auth-c"),
        &[],
    )
    .await;
    assert!(
        matches!(
            e,
            ClusterError::Secret {
                what: "password",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("absent"), "{e}");

    // Credentials in the URL are refused, and not repeated.
    let url = nats
        .url()
        .replace("nats://", &format!("nats://claude:{PASSWORD}@"));
    let e = refused(
        &env,
        ClusterConfig::new(url).node_name("auth-c"),
        &[PASSWORD],
    )
    .await;
    assert!(matches!(e, ClusterError::InvalidUrl { .. }), "{e:?}");
    b.shutdown().await.expect("B stops");
    a.shutdown().await.expect("A stops");
}

#[tokio::test]
async fn a_token_joins_and_a_wrong_token_is_refused() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let nats = NatsServer::start_with("authorization { token: \"tok-51d2e8-right\" }\n");
    let dir = tempfile::tempdir().expect("dir");
    let right = password_file(&dir, "token", "tok-51d2e8-right");
    let a = host(
        &env,
        ClusterConfig::new(nats.url())
            .node_name("tok-a")
            .auth(NatsAuth::Token(SecretSource::file(&right))),
    )
    .await
    .expect("joins with the token");
    let e = refused(
        &env,
        ClusterConfig::new(nats.url())
            .node_name("tok-b")
            .auth(NatsAuth::Token(SecretSource::value("tok-wrong-one"))),
        &["tok-wrong-one", "tok-51d2e8-right"],
    )
    .await;
    assert!(matches!(e, ClusterError::AuthRefused { .. }), "{e:?}");
    assert!(
        e.to_string().contains("the token from the value given"),
        "{e}"
    );
    a.shutdown().await.expect("stops");
}

fn tls_server(pki: &TestPki, verify_clients: bool) -> NatsServer {
    let server = pki.server("nats");
    let mut conf = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
        server.cert.display(),
        server.key.display()
    );
    if verify_clients {
        conf.push_str(&format!(
            "  ca_file: \"{}\"\n  verify: true\n",
            pki.ca_file().display()
        ));
    }
    conf.push_str("}\n");
    NatsServer::start_with(&conf)
}

#[tokio::test]
async fn tls_with_the_ca_joins_an_untrusted_certificate_is_refused() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("routed ok"))).await;
    let pki = TestPki::new("cluster");
    let nats = tls_server(&pki, false);
    let tls_url = nats.url().replace("nats://", "tls://");
    let trusted = || NatsTls::default().ca(pki.ca_file());

    let a = host(
        &env,
        ClusterConfig::new(tls_url.clone())
            .node_name("auth-a")
            .tls(trusted()),
    )
    .await
    .expect("joins over TLS with the CA");
    let b = host(
        &env,
        ClusterConfig::new(nats.url())
            .node_name("auth-b")
            .tls(trusted()),
    )
    .await
    .expect("a nats:// URL with tls_ca joins over TLS too");
    two_hosts_route_a_turn(&a, &b, "-----BEGIN").await;

    // Without the CA (the system's roots) and with another CA: not trusted.
    let e = refused(
        &env,
        ClusterConfig::new(tls_url.clone()).node_name("auth-c"),
        &[],
    )
    .await;
    assert!(matches!(e, ClusterError::TlsUntrusted { .. }), "{e:?}");
    assert!(e.to_string().contains("tls_ca"), "{e}");
    let other = TestPki::new("other");
    let e = refused(
        &env,
        ClusterConfig::new(tls_url.clone())
            .node_name("auth-c")
            .tls(NatsTls::default().ca(other.ca_file())),
        &[],
    )
    .await;
    assert!(matches!(e, ClusterError::TlsUntrusted { .. }), "{e:?}");
    b.shutdown().await.expect("B stops");
    a.shutdown().await.expect("A stops");
}

#[tokio::test]
async fn mutual_tls_joins_with_a_client_certificate_and_is_refused_without() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let pki = TestPki::new("mtls");
    let nats = tls_server(&pki, true);
    let url = nats.url().replace("nats://", "tls://");
    let client = pki.client("host-a");
    let a = host(
        &env,
        ClusterConfig::new(url.clone()).node_name("mtls-a").tls(
            NatsTls::default()
                .ca(pki.ca_file())
                .client_cert(&client.cert, &client.key),
        ),
    )
    .await
    .expect("joins with a client certificate");
    let e = refused(
        &env,
        ClusterConfig::new(url.clone())
            .node_name("mtls-b")
            .tls(NatsTls::default().ca(pki.ca_file())),
        &[],
    )
    .await;
    assert!(matches!(e, ClusterError::TlsClientRefused { .. }), "{e:?}");
    assert!(e.to_string().contains("tls_cert"), "{e}");
    // A client certificate of another CA is refused too.
    let stranger_ca = TestPki::new("stranger");
    let stranger = stranger_ca.client("host-b");
    let e = refused(
        &env,
        ClusterConfig::new(url).node_name("mtls-b").tls(
            NatsTls::default()
                .ca(pki.ca_file())
                .client_cert(&stranger.cert, &stranger.key),
        ),
        &[],
    )
    .await;
    assert!(matches!(e, ClusterError::TlsClientRefused { .. }), "{e:?}");
    a.shutdown().await.expect("stops");
}

#[tokio::test]
async fn tls_required_against_a_plain_server_is_refused() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let nats = NatsServer::start();
    let e = refused(
        &env,
        ClusterConfig::new(nats.url().replace("nats://", "tls://")).node_name("plain-a"),
        &[],
    )
    .await;
    assert!(
        matches!(
            e,
            ClusterError::TlsUnavailable {
                why: "a tls:// URL",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("does not offer TLS"), "{e}");
    let e = refused(
        &env,
        ClusterConfig::new(nats.url())
            .node_name("plain-a")
            .tls(NatsTls::required()),
        &[],
    )
    .await;
    assert!(
        matches!(
            e,
            ClusterError::TlsUnavailable {
                why: "[cluster] tls = true",
                ..
            }
        ),
        "{e:?}"
    );
    // The same host without TLS joins: the server is fine, only TLS was missing.
    let a = host(&env, ClusterConfig::new(nats.url()).node_name("plain-a"))
        .await
        .expect("joins without TLS");
    a.shutdown().await.expect("stops");
}

/// A NATS operator, an account with JetStream and a user of it, made in the test: the
/// server's `operator` / `resolver_preload` configuration and the user's `.creds` text.
mod jwt {
    use data_encoding::BASE64URL_NOPAD;
    use nkeys::KeyPair;
    use serde_json::{json, Value};

    fn encode(claims: Value, issuer: &KeyPair) -> String {
        let header = BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
        let body = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
        let signing_input = format!("{header}.{body}");
        let signature = issuer.sign(signing_input.as_bytes()).expect("sign");
        format!("{signing_input}.{}", BASE64URL_NOPAD.encode(&signature))
    }

    fn claims(name: &str, issuer: &KeyPair, subject: &KeyPair, nats: Value) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        json!({
            "jti": format!("{name}-{now}"),
            "iat": now,
            "iss": issuer.public_key(),
            "name": name,
            "sub": subject.public_key(),
            "nats": nats,
        })
    }

    /// `(server configuration, creds text of the user)`; `other` gives a user of an
    /// account the server does not know.
    pub fn operator_account_user() -> (String, String, String) {
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        // JetStream in operator mode needs a system account.
        let system = KeyPair::new_account();
        let op_jwt = encode(
            claims(
                "op",
                &operator,
                &operator,
                json!({"type": "operator", "version": 2, "system_account": system.public_key()}),
            ),
            &operator,
        );
        let sys_jwt = encode(
            claims(
                "SYS",
                &operator,
                &system,
                json!({"type": "account", "version": 2,
                       "limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1,
                                  "exports": -1, "wildcards": true, "conn": -1, "leaf": -1}}),
            ),
            &operator,
        );
        let acc_jwt = encode(
            claims(
                "claude",
                &operator,
                &account,
                json!({
                    "type": "account", "version": 2,
                    "limits": {
                        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                        "wildcards": true, "conn": -1, "leaf": -1,
                        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1
                    },
                    "default_permissions": {"pub": {}, "sub": {}}
                }),
            ),
            &operator,
        );
        let creds = |account: &KeyPair| {
            let user = KeyPair::new_user();
            let jwt = encode(
                claims(
                    "host",
                    account,
                    &user,
                    json!({"type": "user", "version": 2, "pub": {}, "sub": {},
                           "subs": -1, "data": -1, "payload": -1}),
                ),
                account,
            );
            format!(
                "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
                 ************************* IMPORTANT *************************\n\
                 NKEY Seed printed below can be used to sign and prove identity.\n\n\
                 -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
                user.seed().expect("seed")
            )
        };
        let server = format!(
            "operator: \"{op_jwt}\"\nsystem_account: {sys}\nresolver: MEMORY\nresolver_preload: {{\n  {acc}: \"{acc_jwt}\"\n  {sys}: \"{sys_jwt}\"\n}}\n",
            acc = account.public_key(),
            sys = system.public_key(),
        );
        let user = creds(&account);
        let stranger = creds(&KeyPair::new_account());
        (server, user, stranger)
    }
}

#[tokio::test]
async fn a_creds_file_joins_and_a_user_of_another_account_is_refused() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("routed ok"))).await;
    let (server, user, stranger) = jwt::operator_account_user();
    let nats = NatsServer::start_with(&server);
    let dir = tempfile::tempdir().expect("dir");
    let creds = dir.path().join("host.creds");
    std::fs::write(&creds, &user).expect("write creds");
    let seed = user
        .lines()
        .find(|l| l.starts_with("SU"))
        .expect("a seed line")
        .to_string();
    let with = |file: &std::path::Path| {
        ClusterConfig::new(nats.url()).auth(NatsAuth::Creds(file.to_path_buf()))
    };
    let a = host(&env, with(&creds).node_name("auth-a"))
        .await
        .expect("A joins with the creds file");
    let b = host(&env, with(&creds).node_name("auth-b"))
        .await
        .expect("B joins with the creds file");
    two_hosts_route_a_turn(&a, &b, &seed).await;

    let other = dir.path().join("other.creds");
    std::fs::write(&other, &stranger).expect("write creds");
    let e = refused(&env, with(&other).node_name("auth-c"), &[&seed]).await;
    assert!(matches!(e, ClusterError::AuthRefused { .. }), "{e:?}");
    assert!(e.to_string().contains("the credentials file"), "{e}");
    b.shutdown().await.expect("B stops");
    a.shutdown().await.expect("A stops");
}
