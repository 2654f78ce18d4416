//! `claude-code serve` keeps its state in the data directory: tokens made with
//! `claude-code token create` are required, and dynamic sessions outlive the host, even
//! `kill -9`.

mod support;

use std::{path::Path, process::Stdio};

use serde_json::json;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `claude-code serve` on a free loopback port.
struct Serve {
    child: tokio::process::Child,
    url: String,
}

async fn serve(env: &TestEnv, data: &Path) -> Serve {
    let mut cmd = command(env);
    cmd.env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (_, url) = serve_url(&mut lines).await;
    Serve { child, url }
}

async fn token(env: &TestEnv, data: &Path, tenant: &str, scope: &str) -> String {
    let out = command(env)
        .args([
            "token",
            "create",
            "--tenant",
            tenant,
            "--scope",
            scope,
            "--data-dir",
        ])
        .arg(data)
        .output()
        .await
        .expect("run token create");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let last = text.lines().last().expect("a line").to_string();
    assert!(last.starts_with("cch_"), "{text}");
    last
}

#[tokio::test]
async fn token_create_prints_a_token_that_the_host_then_requires() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let data = env.tmp.path().join("data");
    let t = token(&env, &data, "acme", "write").await;
    let bad = command(&env)
        .args([
            "token",
            "create",
            "--tenant",
            "a/b",
            "--scope",
            "write",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .await
        .expect("run");
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("tenant name"), "{}", stderr(&bad));
    let mut host = serve(&env, &data).await;
    let c = reqwest::Client::new();
    let anonymous = c
        .get(format!("{}/v1/sessions", host.url))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status().as_u16(), 401);
    let created = c
        .post(format!("{}/v1/sessions", host.url))
        .bearer_auth(&t)
        .json(&json!({"name": "assistant"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let list = command(&env)
        .args(["token", "list", "--data-dir"])
        .arg(&data)
        .output()
        .await
        .expect("run");
    let listed = stdout(&list);
    assert!(
        listed.contains("acme") && listed.contains("write"),
        "{listed}"
    );
    assert!(!listed.contains(t.rsplit('_').next().expect("secret")));
    host.child.start_kill().expect("kill");
    host.child.wait().await.expect("wait");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_host_killed_with_sigkill_comes_back_with_its_sessions_and_their_history() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let data = env.tmp.path().join("data");
    let mut host = serve(&env, &data).await;
    let c = reqwest::Client::new();
    assert_eq!(create_session(&c, &host.url, "keeper").await, 201);
    let first = post_json(
        &c,
        &format!("{}/v1/sessions/keeper/messages", host.url),
        json!({"prompt": "the secret word is kiwi"}),
    )
    .await;
    assert_eq!(first["is_error"], false, "{first}");
    let before = get_json(&c, &format!("{}/v1/sessions/keeper", host.url)).await;
    assert_eq!(before["turns"], 1, "{before}");

    // kill -9: no drain, no goodbye. Its CLI follows it (no orphan).
    host.child.start_kill().expect("SIGKILL");
    host.child.wait().await.expect("wait");
    env.assert_no_leftovers().await;

    let mut host = serve(&env, &data).await;
    let after = get_json(&c, &format!("{}/v1/sessions/keeper", host.url)).await;
    assert_eq!(after["status"], "hibernated", "{after}");
    assert_eq!(after["turns"], before["turns"]);
    assert_eq!(after["cost_usd"], before["cost_usd"]);
    let second = post_json(
        &c,
        &format!("{}/v1/sessions/keeper/messages", host.url),
        json!({"prompt": "what was the word?"}),
    )
    .await;
    assert_eq!(second["is_error"], false, "{second}");
    assert_eq!(second["session_id"], first["session_id"]);
    let last = env.mock.turn_requests().pop().expect("a request");
    assert!(
        last.user_texts().iter().any(|t| t.contains("kiwi")),
        "the model sees the earlier history: {:?}",
        last.user_texts()
    );
    host.child.start_kill().expect("kill");
    host.child.wait().await.expect("wait");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_host_killed_with_sigkill_mid_turn_leaves_no_cli_and_its_session_answers_after_restart() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    env.mock
        .push(Reply::text("never delivered").delay(std::time::Duration::from_secs(120)));
    let data = env.tmp.path().join("data");
    let mut host = serve(&env, &data).await;
    let c = reqwest::Client::new();
    assert_eq!(create_session(&c, &host.url, "busy").await, 201);
    let turn = tokio::spawn({
        let (c, url) = (c.clone(), host.url.clone());
        async move {
            c.post(format!("{url}/v1/sessions/busy/messages"))
                .json(&json!({"prompt": "slow one"}))
                .send()
                .await
        }
    });
    claude_code_tests::eventually(
        std::time::Duration::from_secs(30),
        "the turn reaches the API",
        || async {
            if env.mock.turn_requests().is_empty() {
                Err("no request yet")
            } else {
                Ok(())
            }
        },
    )
    .await;
    host.child.start_kill().expect("SIGKILL");
    host.child.wait().await.expect("wait");
    // The client sees the connection end, not a reply; the CLI mid-turn is gone too.
    assert!(turn.await.expect("task").is_err());
    env.assert_no_leftovers().await;

    let mut host = serve(&env, &data).await;
    let listed = get_json(&c, &format!("{}/v1/sessions/busy", host.url)).await;
    assert_eq!(listed["status"], "hibernated", "{listed}");
    assert_eq!(
        listed["turns"], 0,
        "the unfinished turn is not in the ledger"
    );
    let reply = post_json(
        &c,
        &format!("{}/v1/sessions/busy/messages", host.url),
        json!({"prompt": "are you back?"}),
    )
    .await;
    assert_eq!(reply["is_error"], false, "{reply}");
    host.child.start_kill().expect("kill");
    host.child.wait().await.expect("wait");
    env.assert_no_leftovers().await;
}
