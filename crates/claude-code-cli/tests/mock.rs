//! `claude-code mock` serves the mock Messages API: it prints its URL, and `query` run
//! against it gets the scripted (or, by default, echoed) reply.

mod support;

use std::process::Stdio;

use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn mock_command_serves_echo_replies_to_query() {
    let env = TestEnv::new(Script::new()).await;
    let mut mock = bare(env.cwd.path())
        .args(["mock", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mock");
    let pipe = mock.stdout.take().expect("piped stdout");
    let mut url = String::new();
    BufReader::new(pipe)
        .read_line(&mut url)
        .await
        .expect("read url");
    let url = url.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let mut cmd = command(&env);
    cmd.env("ANTHROPIC_BASE_URL", &url);
    let out = run(&mut cmd, &["query", "ping"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "echo: ping\n");
    mock.kill().await.expect("stop mock");
}
