//! `claude-code serve` as a process: offline without a key (says so first), answers the
//! HTTP API with the real CLI behind it, and on SIGTERM drains, stops every CLI and
//! exits 0; with `--log-format json` its logs are JSON lines with request ids and routes,
//! and never a token or a prompt.

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
    let (before, url) = serve_url(&mut lines).await;
    assert!(
        before.len() == 1 && before[0].starts_with("offline:"),
        "the first line says offline: {before:?}"
    );

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

    let status = sigterm_and_wait(&mut child).await;
    assert!(status.success(), "exit status {status:?}");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn serve_logs_json_lines_with_request_ids_and_never_tokens_or_prompts() {
    let env = TestEnv::new(Script::new()).await;
    let mut cmd = bare(env.cwd.path());
    cmd.env("CLAUDE_CONFIG_DIR", env.config.path())
        .env("CLAUDE_CODE_CLI", real_cli())
        .env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .env("CLAUDE_RS_TEST_MARKER", &env.marker)
        .env_remove("RUST_LOG")
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(env.tmp.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (_, url) = serve_url(&mut lines).await;
    // Read stderr as it comes, so that the pipe never fills.
    let stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        let _ =
            tokio::io::AsyncReadExt::read_to_string(&mut BufReader::new(stderr), &mut text).await;
        text
    });

    const TOKEN: &str = "Bearer cc-secret-token-4711";
    const PROMPT: &str = "the pomegranate prompt";
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{url}/v1/sessions"))
        .json(&json!({"name": "logged"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let reply = client
        .post(format!("{url}/v1/sessions/logged/messages"))
        .header("x-request-id", "test-request-1")
        .json(&json!({"prompt": PROMPT}))
        .send()
        .await
        .expect("message");
    assert_eq!(reply.status().as_u16(), 200);
    assert_eq!(
        reply
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("test-request-1")
    );
    let _ = reply.text().await;
    let listed = client
        .get(format!("{url}/v1/sessions"))
        .header("authorization", TOKEN)
        .header("x-request-id", "test-request-2")
        .send()
        .await
        .expect("list");
    let _ = listed.text().await;

    let status = sigterm_and_wait(&mut child).await;
    assert!(status.success(), "exit status {status:?}");
    let logs = tokio::time::timeout(Duration::from_secs(10), logs)
        .await
        .expect("stderr closed")
        .expect("reader");

    let mut requests = Vec::new();
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
        if value["fields"]["message"] == "request" {
            requests.push(value);
        }
    }
    let message = requests
        .iter()
        .find(|v| v["span"]["request_id"] == "test-request-1")
        .unwrap_or_else(|| panic!("the message request is logged: {logs}"));
    assert_eq!(message["span"]["route"], "/v1/sessions/{name}/messages");
    assert_eq!(message["span"]["method"], "POST");
    assert_eq!(message["span"]["session"], "logged");
    assert_eq!(message["span"]["tenant"], "default");
    assert_eq!(message["span"]["status"], 200);
    assert!(message["span"]["latency_ms"].is_u64(), "{message}");
    let list = requests
        .iter()
        .find(|v| v["span"]["request_id"] == "test-request-2")
        .unwrap_or_else(|| panic!("the list request is logged: {logs}"));
    assert_eq!(list["span"]["route"], "/v1/sessions");
    let generated = requests
        .iter()
        .find(|v| v["span"]["route"] == "/v1/sessions" && v["span"]["method"] == "POST")
        .unwrap_or_else(|| panic!("the create request is logged: {logs}"));
    assert!(
        generated["span"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 32),
        "a generated request id: {generated}"
    );
    assert!(
        !logs.contains("cc-secret-token-4711"),
        "token logged: {logs}"
    );
    assert!(!logs.contains("pomegranate"), "prompt logged: {logs}");
    env.assert_no_leftovers().await;
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
    let (before, url) = serve_url(&mut lines).await;
    assert!(
        before.len() == 1 && before[0].starts_with("offline:"),
        "{before:?}"
    );

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

    let status = sigterm_and_wait(&mut child).await;
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
    let (_, url) = serve_url(&mut lines).await;
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
    let exit = sigterm_and_wait(&mut child).await;
    let (status, body) = turn.await.expect("turn task");
    assert_eq!(
        (status, body["text"].as_str()),
        (200, Some("finished while draining")),
        "{body}"
    );
    assert!(exit.success(), "exit status {exit:?}");
    env.assert_no_leftovers().await;
}
