//! `claude-code serve --cluster` processes when the cluster's NATS server itself fails
//! (killed with SIGKILL): SIGTERM still stops a host within its drain timeout, exit code 0,
//! no CLI left behind; and a host refuses to start, typed and quickly, while NATS is down.

mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use claude_code_tests::{eventually, NatsServer};
use serde_json::json;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// One `claude-code serve` process in the cluster, with its URL.
struct Node {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

fn serve_command(
    env: &TestEnv,
    dir: &std::path::Path,
    nats: &str,
    name: &str,
) -> tokio::process::Command {
    let config = dir.join("claude-code.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nspares = 0\ndrain_timeout_secs = 10\n\n[cluster]\nurl = \"{nats}\"\nheartbeat_secs = 1\nlease_secs = 3\n"
        ),
    )
    .expect("write config");
    let mut cmd = scrubbed(tokio::process::Command::new(binary()), dir);
    cmd.env("CLAUDE_CONFIG_DIR", dir.join("claude-config"))
        .env("CLAUDE_CODE_CLI", real_cli())
        .env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .env("CLAUDE_RS_TEST_MARKER", &env.marker)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0", "--node-name", name])
        .arg("--data-dir")
        .arg(dir.join("data"));
    cmd
}

async fn node(env: &TestEnv, nats: &NatsServer, name: &str) -> Node {
    let dir = tempfile::tempdir().expect("node dir");
    let mut cmd = serve_command(env, dir.path(), &nats.url(), name);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (_, url) = serve_url(&mut lines).await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Node {
        child,
        url,
        _dir: dir,
    }
}

#[tokio::test]
async fn hosts_stopped_with_sigterm_while_nats_is_down_exit_in_time_and_a_start_is_refused() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let mut nats = NatsServer::start();
    let mut a = node(&env, &nats, "node-a").await;
    let mut b = node(&env, &nats, "node-b").await;
    let client = reqwest::Client::new();
    let s = post_json(
        &client,
        &format!("{}/v1/sessions", a.url),
        json!({"name": "s1", "placement": "local"}),
    )
    .await;
    assert_eq!(s["owner"], "node-a", "{s}");
    // A live CLI on A, reached through B.
    let reply = post_json(
        &client,
        &format!("{}/v1/sessions/s1/messages", b.url),
        json!({"prompt": "hello through b"}),
    )
    .await;
    assert_eq!(reply["is_error"], false, "{reply}");

    let url = nats.url();
    nats.kill();
    for n in [&a, &b] {
        eventually(
            Duration::from_secs(5),
            "the host to see NATS gone",
            || async {
                let r = client
                    .get(format!("{}/readyz", n.url))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
                match (status, body["nats"].as_str()) {
                    (200, Some("disconnected")) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }
    // SIGTERM: nothing can be handed over and nobody told; each host drains and exits
    // within its drain timeout (10 s), cleanly, its CLI stopped.
    let mut took = Vec::new();
    for n in [&mut a, &mut b] {
        let t = Instant::now();
        let status = sigterm_and_wait(&mut n.child).await;
        took.push(t.elapsed());
        assert!(status.success(), "{status:?}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "exited after {:?}",
            t.elapsed()
        );
    }
    drop((a, b));
    env.assert_no_leftovers().await;

    // A host cannot join while NATS is down: it exits with the reason, quickly.
    let dir = tempfile::tempdir().expect("node dir");
    let t = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        serve_command(&env, dir.path(), &url, "node-c").output(),
    )
    .await
    .expect("serve ends in time")
    .expect("run serve");
    let refused = t.elapsed();
    assert!(!out.status.success(), "{:?}", out.status);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to the cluster's NATS server"),
        "{err}"
    );
    assert!(
        refused < Duration::from_secs(10),
        "refused after {refused:?}"
    );
    env.assert_no_leftovers().await;
    eprintln!("NATS down: SIGTERM -> exit {took:?}; a start refused after {refused:?}");
}
