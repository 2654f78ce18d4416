//! `[sandbox]` and `[resources]` through the host: the real CLI confined per session,
//! a limit hit reported as a typed HTTP error, the work dir removed with its session.

#![cfg(target_os = "linux")]

use claude_code::{sandbox::ResourceLimits, PermissionResult};
use claude_code_serve::{Host, HostConfig, SandboxConfig, SandboxMode, ServeError};
use claude_code_tests::{eventually, Reply, Script, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

fn bash(command: &str) -> Reply {
    Reply::tool_use("Bash", json!({"command": command, "description": "probe"}))
}

async fn post(host: &Host, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", host.url()))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_session_over_its_process_limit_gets_a_typed_error_and_the_others_keep_answering() {
    let env = TestEnv::new(Script::new()).await;
    let data = tempfile::tempdir().expect("data dir");
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(
            env.options()
                .can_use_tool(|_| async { PermissionResult::allow() }),
        )
        .offline(false)
        .data_dir(data.path())
        .sandbox(SandboxConfig::new(SandboxMode::Required))
        .resources(ResourceLimits::new().pids(32));
    let host = Host::start(config).await.expect("host starts confined");
    for name in ["bomb", "calm"] {
        assert_eq!(
            post(&host, "/v1/sessions", json!({"name": name})).await.0,
            201
        );
    }
    let work = data.path().join("work/default/bomb");

    // Inside its own work dir the session writes; the host's data dir is hidden.
    env.mock.push(bash(&format!(
        "echo hi > {w}/note && echo WROTE; ls {d}/claude-code.db 2>&1 || echo DB-HIDDEN",
        w = work.display(),
        d = data.path().display()
    )));
    env.mock.push(Reply::text("noted"));
    let (status, body) = post(
        &host,
        "/v1/sessions/bomb/messages",
        json!({"prompt": "note"}),
    )
    .await;
    assert_eq!(
        (status, body["text"].as_str()),
        (200, Some("noted")),
        "{body}"
    );
    let results: String = env
        .mock
        .turn_requests()
        .iter()
        .flat_map(|r| r.tool_results())
        .map(|v| v.to_string())
        .collect();
    assert!(
        results.contains("WROTE") && results.contains("DB-HIDDEN"),
        "{results}"
    );
    assert!(work.join("note").is_file());

    env.mock
        .push(bash("for i in $(seq 200); do sleep 63.0417 & done; wait"));
    let (status, body) = post(
        &host,
        "/v1/sessions/bomb/messages",
        json!({"prompt": "fork"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "resource_limit", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("process limit"),
        "{body}"
    );

    env.mock.push(Reply::text("calm here"));
    let (status, body) = post(&host, "/v1/sessions/calm/messages", json!({"prompt": "hi"})).await;
    assert_eq!(
        (status, body["text"].as_str()),
        (200, Some("calm here")),
        "{body}"
    );

    // The supervisor restarts it; it answers again.
    env.mock.push(Reply::text("back"));
    let (status, body) = post(
        &host,
        "/v1/sessions/bomb/messages",
        json!({"prompt": "again"}),
    )
    .await;
    assert_eq!(
        (status, body["text"].as_str()),
        (200, Some("back")),
        "{body}"
    );

    // Deleting the session removes its work dir.
    let del = reqwest::Client::new()
        .delete(format!("{}/v1/sessions/bomb", host.url()))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status().as_u16(), 204);
    assert!(!work.exists(), "the deleted session's work dir is gone");
    host.shutdown().await.expect("shutdown");
    eventually(Duration::from_secs(15), "no cgroup left", || async {
        let left = claude_code::sandbox::live_cgroups();
        if left.is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    })
    .await;
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn required_confinement_refuses_to_start_without_bubblewrap_or_with_an_unproxied_remote_upstream(
) {
    let env = TestEnv::new(Script::new()).await;
    let mut sandbox = SandboxConfig::new(SandboxMode::Required);
    sandbox.bwrap = Some("/nonexistent/bwrap".into());
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .sandbox(sandbox);
    match Host::start(config).await {
        Err(ServeError::Sandbox(msg)) => {
            assert!(
                msg.contains("/nonexistent/bwrap") && msg.contains("bubblewrap"),
                "{msg}"
            )
        }
        other => panic!("expected a sandbox error, got {:?}", other.map(|h| h.url())),
    }
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(
            env.options()
                .env("ANTHROPIC_BASE_URL", "https://api.example.com"),
        )
        .offline(false)
        .credential_proxy(false)
        .sandbox(SandboxConfig::new(SandboxMode::Required));
    match Host::start(config).await {
        Err(ServeError::Sandbox(msg)) => assert!(msg.contains("loopback"), "{msg}"),
        other => panic!("expected a sandbox error, got {:?}", other.map(|h| h.url())),
    }
    // With the credential proxy (the default) the CLIs' one way out is the proxy on
    // loopback, whatever the upstream: the host starts.
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(
            env.options()
                .env("ANTHROPIC_BASE_URL", "https://api.example.com"),
        )
        .offline(false)
        .sandbox(SandboxConfig::new(SandboxMode::Required));
    let host = Host::start(config)
        .await
        .expect("a remote upstream behind the credential proxy is confinable");
    host.shutdown().await.expect("clean shutdown");
}
