//! `claude-code serve` processes joining a NATS server that wants a token, taken from an
//! environment variable named in `[cluster] token_env`: two hosts join and route a turn,
//! and the token shows in none of their log lines (stdout and stderr at debug level), in
//! `claude-code config` or in `GET /v1/cluster`. A wrong token, TLS required against a
//! plain server, and credentials in `--cluster` each stop `serve` at once, non-zero, with
//! the reason on stderr.

mod support;

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use claude_code_tests::NatsServer;
use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

const TOKEN: &str = "tok-e2e-8b41f0d7c2";

/// A `claude-code serve` process and every line it wrote.
struct Node {
    child: tokio::process::Child,
    url: String,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

fn write_config(dir: &std::path::Path, nats: &str) -> std::path::PathBuf {
    let config = dir.join("claude-code.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nspares = 0\n\n[cluster]\nurl = \"{nats}\"\nheartbeat_secs = 1\ntoken_env = \"NATS_TOKEN\"\n"
        ),
    )
    .expect("write config");
    config
}

fn command(env: &TestEnv, dir: &std::path::Path, token: &str) -> tokio::process::Command {
    let mut cmd = scrubbed(tokio::process::Command::new(binary()), dir);
    cmd.env("CLAUDE_CONFIG_DIR", dir.join("claude-config"))
        .env("CLAUDE_CODE_CLI", real_cli())
        .env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .env("CLAUDE_RS_TEST_MARKER", &env.marker)
        .env("NATS_TOKEN", token)
        .env("RUST_LOG", "debug");
    cmd
}

fn collect(stream: impl AsyncRead + Unpin + Send + 'static, logs: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            logs.lock().expect("logs").push(line);
        }
    });
}

async fn node(env: &TestEnv, nats: &NatsServer, name: &str) -> Node {
    let dir = tempfile::tempdir().expect("node dir");
    let config = write_config(dir.path(), &nats.url());
    let mut cmd = command(env, dir.path(), TOKEN);
    cmd.arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0", "--node-name", name])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn serve");
    let logs = Arc::new(Mutex::new(Vec::new()));
    collect(child.stderr.take().expect("stderr"), logs.clone());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (before, url) = serve_url(&mut lines).await;
    let joined = lines.next_line().await.expect("read").expect("a line");
    assert_eq!(joined, format!("cluster: joined as {name}"));
    {
        let mut l = logs.lock().expect("logs");
        l.extend(before);
        l.push(format!("claude-code host listening on {url}"));
        l.push(joined);
    }
    collect(lines.into_inner().into_inner(), logs.clone());
    Node {
        child,
        url,
        logs,
        _dir: dir,
    }
}

/// Runs `serve` that must refuse to start: its exit status and stderr, checked to come
/// within a few seconds.
async fn refused(env: &TestEnv, nats_url: &str, token: &str, flags: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), nats_url);
    let mut cmd = command(env, dir.path(), token);
    cmd.arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(30), run(&mut cmd, &[]))
        .await
        .expect("serve gave up in time");
    let took = started.elapsed();
    assert!(!out.status.success(), "serve started: {}", stdout(&out));
    assert!(took < Duration::from_secs(10), "refused after {took:?}");
    let err = stderr(&out);
    assert!(!stdout(&out).contains("listening on"), "{}", stdout(&out));
    err
}

/// `claude-code doctor`'s cluster line with that token, checked to show no token.
async fn doctor_row(env: &TestEnv, nats_url: &str, token: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), nats_url);
    let mut cmd = command(env, dir.path(), token);
    cmd.arg("--config").arg(&config);
    let out = run(&mut cmd, &["doctor"]).await;
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!text.contains(TOKEN), "{text}");
    text.lines()
        .find(|l| l.contains("cluster NATS"))
        .unwrap_or_else(|| panic!("no cluster line in {text}"))
        .to_string()
}

#[tokio::test]
async fn a_token_from_the_environment_joins_and_shows_nowhere() {
    let env = TestEnv::new(Script::new()).await;
    let nats = NatsServer::start_with(&format!("authorization {{ token: \"{TOKEN}\" }}\n"));
    let mut a = node(&env, &nats, "tok-a").await;
    let mut b = node(&env, &nats, "tok-b").await;

    let client = reqwest::Client::new();
    for n in [&a, &b] {
        let body = client
            .get(format!("{}/v1/cluster", n.url))
            .send()
            .await
            .expect("GET /v1/cluster")
            .text()
            .await
            .expect("body");
        let view: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(view["members"].as_array().map(Vec::len), Some(2), "{body}");
        assert!(!body.contains(TOKEN), "{body}");
    }
    assert_eq!(create_session(&client, &a.url, "routed").await, 201);
    let reply = post_json(
        &client,
        &format!("{}/v1/sessions/routed/messages", b.url),
        json!({"prompt": "hello through b"}),
    )
    .await;
    assert!(
        reply["text"]
            .as_str()
            .is_some_and(|t| t.contains("hello through b")),
        "{reply}"
    );

    // `claude-code config` with the same file and environment.
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &nats.url());
    let mut cmd = command(&env, dir.path(), TOKEN);
    cmd.arg("--config").arg(&config);
    let out = run(&mut cmd, &["config"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        shown.contains("cluster.token_env = \"NATS_TOKEN\""),
        "{shown}"
    );
    assert!(
        shown.contains("# cluster token: NATS_TOKEN is set"),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN), "{shown}");
    let row = doctor_row(&env, &nats.url(), TOKEN).await;
    assert!(row.starts_with("✓ cluster NATS"), "{row}");
    assert!(row.contains("the token from $NATS_TOKEN"), "{row}");

    for n in [&mut a, &mut b] {
        let status = sigterm_and_wait(&mut n.child).await;
        assert!(status.success(), "{status:?}");
    }
    for n in [&a, &b] {
        let logs = n.logs.lock().expect("logs");
        assert!(
            logs.iter().any(|l| l.contains("joined the cluster")),
            "the logs were captured: {logs:?}"
        );
        assert!(
            logs.len() > 10,
            "debug logs were captured: {} lines",
            logs.len()
        );
        for line in logs.iter() {
            assert!(!line.contains(TOKEN), "a log line shows the token: {line}");
        }
    }
}

#[tokio::test]
async fn a_wrong_token_tls_against_a_plain_server_or_credentials_in_the_url_stop_serve() {
    let env = TestEnv::new(Script::new()).await;
    let nats = NatsServer::start_with(&format!("authorization {{ token: \"{TOKEN}\" }}\n"));
    let err = refused(&env, &nats.url(), "tok-wrong-77", &[]).await;
    assert!(err.contains("refused this host's credentials"), "{err}");
    assert!(err.contains("the token from $NATS_TOKEN"), "{err}");
    assert!(
        !err.contains("tok-wrong-77") && !err.contains(TOKEN),
        "{err}"
    );

    let row = doctor_row(&env, &nats.url(), "tok-wrong-77").await;
    assert!(row.starts_with("✗ cluster NATS"), "{row}");
    assert!(row.contains("refused this host's credentials"), "{row}");
    assert!(!row.contains("tok-wrong-77"), "{row}");

    let err = refused(&env, &nats.url(), "", &[]).await;
    assert!(
        err.contains("cannot read the cluster's NATS token from $NATS_TOKEN"),
        "{err}"
    );

    let tls_url = nats.url().replace("nats://", "tls://");
    let err = refused(&env, &tls_url, TOKEN, &[]).await;
    assert!(err.contains("does not offer TLS"), "{err}");

    let with_password = nats.url().replace("nats://", "nats://web:pw-in-flag-31@");
    let err = refused(&env, &nats.url(), TOKEN, &["--cluster", &with_password]).await;
    assert!(err.contains("--cluster"), "{err}");
    assert!(err.contains("credentials in the URL"), "{err}");
    assert!(!err.contains("pw-in-flag-31"), "{err}");
}
