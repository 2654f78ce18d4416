//! `claude-code serve` as a process: offline without a key (says so first), answers the
//! HTTP API with the real CLI behind it, and on SIGTERM drains, stops every CLI and
//! exits 0.

mod support;

use std::{process::Stdio, time::Duration};

use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn serve_runs_offline_answers_and_stops_cleanly_on_sigterm() {
    let env = TestEnv::new(Script::new()).await;
    let mut cmd = bare(env.cwd.path());
    cmd.env("CLAUDE_CONFIG_DIR", env.config.path())
        .env("CLAUDE_CODE_CLI", real_cli())
        .env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .env("CLAUDE_RS_TEST_MARKER", &env.marker)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = next_line(&mut lines).await;
    assert!(
        first.starts_with("offline:"),
        "the first line says offline: {first}"
    );
    let second = next_line(&mut lines).await;
    let url = second
        .strip_prefix("claude-code host listening on ")
        .unwrap_or_else(|| panic!("unexpected line {second:?}"))
        .to_string();

    let client = reqwest::Client::new();
    let created = client
        .post(format!("{url}/v1/sessions"))
        .json(&json!({"name": "assistant"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let reply: Value = client
        .post(format!("{url}/v1/sessions/assistant/messages"))
        .json(&json!({"prompt": "hello host"}))
        .send()
        .await
        .expect("message")
        .json()
        .await
        .expect("json");
    assert!(
        reply["text"]
            .as_str()
            .is_some_and(|t| t.contains("hello host")),
        "the built-in mock echoes: {reply}"
    );
    assert!(!env.leftovers().is_empty(), "a CLI runs for the session");

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("serve stopped in time")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    env.assert_no_leftovers().await;
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("serve printed in time")
        .expect("read")
        .unwrap_or_default()
}

/// A config error stops `serve` before it starts a CLI or binds: the message names the
/// file, line and key, and never the port (which is taken, so binding would fail too).
#[tokio::test]
async fn serve_with_a_bad_config_fails_before_binding() {
    let env = TestEnv::new(Script::new()).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let file = env.cwd.path().join("bad.toml");
    for (text, at, key) in [
        (
            "[serve]\nspares = 0\n\n[supervisor]\nstrategy = \"one_for_none\"\n",
            ":5:",
            "key `supervisor.strategy`",
        ),
        (
            "[serve]\nspares = 0\n[[sessions]]\nname = \"assistant\"\nbogus = 1\n",
            ":5:",
            "key `sessions.bogus`",
        ),
        (
            "[serve]\nspares = 0\n[[pools]]\nname = \"two words\"\n",
            ":4:",
            "key `pools.name`",
        ),
    ] {
        std::fs::write(&file, text).expect("write");
        let mut cmd = bare(env.cwd.path());
        cmd.env("CLAUDE_CODE_CLI", real_cli())
            .env("CLAUDE_RS_TEST_MARKER", &env.marker);
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            run(
                &mut cmd,
                &["serve", "--config", "bad.toml", "--listen", &listen],
            ),
        )
        .await
        .expect("fails fast");
        assert!(!out.status.success(), "{text:?}");
        let err = stderr(&out);
        assert!(err.contains(&format!("bad.toml{at}")), "{text:?}: {err}");
        assert!(err.contains(key), "{text:?}: {err}");
        assert!(!err.contains("cannot listen"), "never got to bind: {err}");
        assert!(stdout(&out).is_empty(), "printed nothing: {}", stdout(&out));
    }
    // The same port with a valid file does get as far as binding.
    std::fs::write(&file, "[serve]\nspares = 0\n").expect("write");
    let out = run(
        &mut bare(env.cwd.path()),
        &["serve", "--config", "bad.toml", "--listen", &listen],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("cannot listen on {listen}")),
        "{}",
        stderr(&out)
    );
    env.assert_no_leftovers().await;
}

/// The sessions and pools the file declares run when `serve` starts, offline on the
/// built-in mock like every other session.
#[tokio::test]
async fn serve_starts_the_declared_sessions_and_pools() {
    let env = TestEnv::new(Script::new()).await;
    std::fs::write(
        env.cwd.path().join("claude-code.toml"),
        r#"[serve]
listen = "127.0.0.1:0"
spares = 0

[[sessions]]
name = "assistant"

[[sessions]]
name = "assistant"
tenant = "acme"

[[pools]]
name = "workers"
size = 1

[templates.reviewer]
system_prompt = "You review Rust"
"#,
    )
    .expect("write");
    let mut cmd = bare(env.cwd.path());
    cmd.env("CLAUDE_CONFIG_DIR", env.config.path())
        .env("CLAUDE_CODE_CLI", real_cli())
        .env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .env("CLAUDE_RS_TEST_MARKER", &env.marker)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = next_line(&mut lines).await;
    assert!(first.starts_with("offline:"), "{first}");
    let second = next_line(&mut lines).await;
    let url = second
        .strip_prefix("claude-code host listening on ")
        .unwrap_or_else(|| panic!("unexpected line {second:?}"))
        .to_string();

    let client = reqwest::Client::new();
    let list: Value = client
        .get(format!("{url}/v1/sessions"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = list["sessions"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["assistant"], "the anonymous tenant's own: {list}");
    for path in [
        "/v1/sessions/assistant/messages",
        "/v1/pools/workers/messages",
    ] {
        let reply: Value = client
            .post(format!("{url}{path}"))
            .json(&json!({"prompt": "hello declared"}))
            .send()
            .await
            .expect("message")
            .json()
            .await
            .expect("json");
        assert!(
            reply["text"]
                .as_str()
                .is_some_and(|t| t.contains("hello declared")),
            "{path}: the built-in mock echoes: {reply}"
        );
    }
    let created = client
        .post(format!("{url}/v1/sessions"))
        .json(&json!({"name": "r", "template": "reviewer"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("serve stopped in time")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn sigterm_lets_a_running_turn_finish_then_exits_0() {
    let env = TestEnv::new(Script::new()).await;
    env.mock
        .push(Reply::text("finished while draining").delay(Duration::from_secs(2)));
    let mut cmd = command(&env);
    cmd.env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(env.tmp.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = next_line(&mut lines).await;
        if let Some(url) = line.strip_prefix("claude-code host listening on ") {
            break url.to_string();
        }
    };
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{url}/v1/sessions"))
        .json(&json!({"name": "busy"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let turn = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client
                .post(format!("{url}/v1/sessions/busy/messages"))
                .json(&json!({"prompt": "take your time"}))
                .send()
                .await
                .expect("message");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    });
    claude_code_tests::eventually(
        Duration::from_secs(30),
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
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let (status, body) = turn.await.expect("turn task");
    assert_eq!(
        (status, body["text"].as_str()),
        (200, Some("finished while draining")),
        "{body}"
    );
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("serve stopped in time")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
    env.assert_no_leftovers().await;
}
