//! `claude-code --server URL sessions | send | query` against a host started in-process
//! (real HTTP on 127.0.0.1:0, the real CLI, the project's mock API), with and without
//! bearer tokens.

mod support;

use claude_code_serve::{store::Store, Host, HostConfig, Scope};
use serde_json::{json, Value};
use support::*;

async fn host(env: &TestEnv) -> Host {
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false);
    Host::start(config).await.expect("host starts")
}

async fn create(host: &Host, name: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/sessions", host.url()))
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
}

/// `claude-code --server <host> <args>`, run to completion.
async fn remote(env: &TestEnv, host: &Host, args: &[&str]) -> std::process::Output {
    let mut cmd = bare(env.cwd.path());
    cmd.arg("--server").arg(host.url());
    run(&mut cmd, args).await
}

#[tokio::test]
async fn sessions_lists_the_hosts_sessions_with_status_turns_and_cost() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("fine").usage(10, 5))).await;
    let host = host(&env).await;
    let out = remote(&env, &host, &["sessions"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no sessions on"), "{}", stderr(&out));

    create(&host, "assistant").await;
    create(&host, "reviewer").await;
    let out = remote(&env, &host, &["send", "assistant", "count this turn"]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let out = remote(&env, &host, &["sessions"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "STATUS", "TURNS", "COST"], "{table}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.first() == Some(&name))
            .unwrap_or_else(|| panic!("{name} listed: {table}"))
            .clone()
    };
    assert_eq!(row("assistant")[1..3], ["live", "1"], "{table}");
    assert!(row("assistant")[3].starts_with('$'), "{table}");
    assert_ne!(row("assistant")[3], "$0.0000", "the turn cost: {table}");
    assert_eq!(row("reviewer")[1..4], ["live", "0", "$0.0000"], "{table}");
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn send_streams_the_reply_and_the_transcript_shows_it() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("the remote reply text"))).await;
    let host = host(&env).await;
    create(&host, "assistant").await;
    let out = remote(&env, &host, &["send", "assistant", "hello over http"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "the remote reply text\n");
    assert!(stderr(&out).contains("[done:"), "{}", stderr(&out));
    let texts = env.mock.turn_requests()[0].user_texts();
    assert!(
        texts.iter().any(|t| t.contains("hello over http")),
        "{texts:?}"
    );

    let out = remote(&env, &host, &["send", "--json", "assistant", "again"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let messages: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        messages.last().map(|m| m["type"].clone()),
        Some(json!("result"))
    );
    assert!(
        messages.iter().any(|m| m["type"] == "assistant"),
        "{messages:?}"
    );

    let out = remote(&env, &host, &["sessions", "show", "assistant"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("> hello over http"), "{shown}");
    assert!(shown.contains("the remote reply text"), "{shown}");
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn query_with_a_server_runs_on_the_host_and_refuses_local_session_flags() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("answered by the host"))).await;
    let host = host(&env).await;
    let out = remote(&env, &host, &["query", "what is up?"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "answered by the host\n");
    assert_eq!(env.mock.turn_requests().len(), 1, "one request to the API");

    let mut cmd = bare(env.cwd.path());
    cmd.env("CLAUDE_CODE_SERVER", host.url());
    let out = run(&mut cmd, &["query", "--model", "opus", "hi"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--model configures a local session"),
        "{}",
        stderr(&out)
    );
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn errors_exit_non_zero_with_the_hosts_code() {
    let env = TestEnv::new(Script::new()).await;
    let host = host(&env).await;
    let out = remote(&env, &host, &["send", "nobody", "hello?"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("404 not_found"), "{err}");
    assert!(err.contains("no session named `nobody`"), "{err}");
    assert!(stdout(&out).is_empty());

    let out = remote(&env, &host, &["sessions", "show", "nobody"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));

    let out = run(&mut bare(env.cwd.path()), &["send", "assistant", "hi"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("give --server URL"),
        "{}",
        stderr(&out)
    );

    // Nothing listens there any more.
    let url = host.url();
    host.shutdown().await.expect("shutdown");
    let mut cmd = bare(env.cwd.path());
    let out = run(&mut cmd, &["--server", &url, "sessions"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach the host at"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &mut bare(env.cwd.path()),
        &["--server", "https://127.0.0.1:1", "sessions"],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("plain http only"), "{}", stderr(&out));
}

#[tokio::test]
async fn the_token_is_sent_as_a_bearer_token_from_the_flag_or_the_environment() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("authorised reply"))).await;
    let data = tempfile::tempdir().expect("data dir");
    let token = |scope| {
        Store::open(data.path())
            .expect("store")
            .create_token("team-a", scope)
            .expect("token")
            .secret
    };
    let (writer, reader) = (token(Scope::Write), token(Scope::Read));
    let host = Host::start(
        HostConfig::new("127.0.0.1:0".parse().expect("addr"))
            .options(env.options())
            .offline(false)
            .data_dir(data.path()),
    )
    .await
    .expect("host starts");

    let out = remote(&env, &host, &["sessions"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("401 unauthorized"),
        "{}",
        stderr(&out)
    );

    let out = remote(&env, &host, &["--token", &writer, "query", "hello"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "authorised reply\n");

    let mut cmd = bare(env.cwd.path());
    cmd.env("CLAUDE_CODE_TOKEN", &reader);
    let out = run(&mut cmd, &["--server", &host.url(), "sessions"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mut cmd = bare(env.cwd.path());
    cmd.env("CLAUDE_CODE_TOKEN", &reader);
    let out = run(&mut cmd, &["--server", &host.url(), "query", "hi"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("403 forbidden"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains(&reader),
        "the token is never printed: {}",
        stderr(&out)
    );
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}
