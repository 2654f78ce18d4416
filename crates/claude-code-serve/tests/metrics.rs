//! `GET /metrics` and request ids: the SDK's and the HTTP layer's metrics after a real
//! turn (real CLI, the project's mock API), labelled by route template, with no session
//! name or prompt in them; several hosts in one process share the recorder.

use claude_code_serve::{store::Store, Host, HostConfig, Scope};
use claude_code_tests::{Reply, Script, TestEnv};
use serde_json::{json, Value};

mod support;
use support::sample;

async fn host(env: &TestEnv) -> Host {
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false);
    Host::start(config).await.expect("host starts")
}

/// Status, content type and body of `GET /metrics`.
async fn metrics(host: &Host) -> (u16, Option<String>, String) {
    let r = reqwest::get(format!("{}/metrics", host.url()))
        .await
        .expect("GET /metrics");
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        r.status().as_u16(),
        content_type,
        r.text().await.expect("body"),
    )
}

#[tokio::test]
async fn metrics_hold_http_and_turn_figures_without_names_or_prompts() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("metered answer"))).await;
    let host = host(&env).await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/sessions", host.url()))
        .json(&json!({"name": "secret-session-name"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
    let reply: Value = client
        .post(format!(
            "{}/v1/sessions/secret-session-name/messages",
            host.url()
        ))
        .json(&json!({"prompt": "the kumquat prompt"}))
        .send()
        .await
        .expect("message")
        .json()
        .await
        .expect("json");
    assert_eq!(reply["text"], "metered answer", "{reply}");
    let missing = client
        .get(format!("{}/no/such/path/secret-path", host.url()))
        .send()
        .await
        .expect("unmatched");
    assert_eq!(missing.status().as_u16(), 404);

    let (status, content_type, text) = metrics(&host).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let messages = sample(
        &text,
        r#"claude_code_http_requests_total{method="POST",route="/v1/sessions/{name}/messages",status="200"}"#,
    );
    assert!(messages.is_some_and(|n| n >= 1.0), "{text}");
    let created = sample(
        &text,
        r#"claude_code_http_requests_total{method="POST",route="/v1/sessions",status="201"}"#,
    );
    assert!(created.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        sample(
            &text,
            r#"claude_code_http_requests_total{method="GET",route="unmatched",status="404"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"claude_code_http_request_duration_seconds_count{method="POST",route="/v1/sessions/{name}/messages"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "claude_code_http_requests_in_flight").is_some_and(|n| n >= 1.0),
        "this request is in flight: {text}"
    );
    assert!(
        sample(&text, r#"claude_code_turns_total{outcome="success"}"#).is_some_and(|n| n >= 1.0),
        "the SDK's turn counter: {text}"
    );
    assert!(
        text.contains("# HELP claude_code_turns_total"),
        "described: {text}"
    );
    for secret in ["secret-session-name", "kumquat", "secret-path"] {
        assert!(!text.contains(secret), "{secret} leaked into: {text}");
    }
    // No host of this process joined a cluster: no cluster series at all.
    assert!(!text.contains("claude_cluster_"), "{text}");
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn several_hosts_in_one_process_share_the_recorder() {
    let env = TestEnv::new(Script::new()).await;
    let (a, b) = (host(&env).await, host(&env).await);
    for h in [&a, &b] {
        reqwest::get(format!("{}/healthz", h.url()))
            .await
            .expect("healthz");
    }
    for h in [&a, &b] {
        let (status, _, text) = metrics(h).await;
        assert_eq!(status, 200, "{text}");
        let probes = sample(
            &text,
            r#"claude_code_http_requests_total{method="GET",route="/healthz",status="200"}"#,
        );
        assert!(
            probes.is_some_and(|n| n >= 2.0),
            "both hosts' requests in one registry: {text}"
        );
    }
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn every_response_carries_a_request_id_the_clients_when_valid() {
    let env = TestEnv::new(Script::new()).await;
    let host = host(&env).await;
    let client = reqwest::Client::new();
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let first = client
        .get(format!("{}/healthz", host.url()))
        .send()
        .await
        .expect("healthz");
    let second = client
        .get(format!("{}/v1/sessions/nobody", host.url()))
        .send()
        .await
        .expect("404");
    let (one, two) = (id_of(&first).expect("id"), id_of(&second).expect("id"));
    assert_eq!(one.len(), 32, "{one}");
    assert_ne!(one, two, "a new id per request");
    let kept = client
        .get(format!("{}/healthz", host.url()))
        .header("x-request-id", "client-chosen.id-42")
        .send()
        .await
        .expect("healthz");
    assert_eq!(id_of(&kept).as_deref(), Some("client-chosen.id-42"));
    let replaced = client
        .get(format!("{}/healthz", host.url()))
        .header("x-request-id", "not valid!")
        .send()
        .await
        .expect("healthz");
    let new = id_of(&replaced).expect("id");
    assert_ne!(new, "not valid!");
    assert_eq!(new.len(), 32, "{new}");
    // The audit trail carries the same ids as the responses.
    let audited = client
        .get(format!("{}/v1/sessions/nobody", host.url()))
        .header("x-request-id", "audited-request-7")
        .send()
        .await
        .expect("404");
    assert_eq!(id_of(&audited).as_deref(), Some("audited-request-7"));
    let audit: Value = client
        .get(format!("{}/v1/audit", host.url()))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let events = audit["events"].as_array().cloned().unwrap_or_default();
    let row = events
        .iter()
        .find(|e| e["request_id"] == "audited-request-7")
        .unwrap_or_else(|| panic!("the audit row has the request id: {audit}"));
    assert_eq!(row["route"], "/v1/sessions/{name}", "{row}");
    assert!(
        events.iter().any(|e| e["request_id"] == json!(two)),
        "a generated id is audited too: {audit}"
    );
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn metrics_need_a_read_token_once_tokens_exist() {
    let env = TestEnv::new(Script::new()).await;
    let data = tempfile::tempdir().expect("data dir");
    let reader = Store::open(data.path())
        .expect("store")
        .create_token("team-a", Scope::Read)
        .expect("token")
        .secret;
    let host = Host::start(
        HostConfig::new("127.0.0.1:0".parse().expect("addr"))
            .options(env.options())
            .offline(false)
            .data_dir(data.path()),
    )
    .await
    .expect("host starts");
    let (status, _, _) = metrics(&host).await;
    assert_eq!(status, 401, "no token");
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", host.url()))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.expect("body");
    assert!(
        sample(
            &text,
            r#"claude_code_http_requests_total{method="GET",route="/metrics",status="401"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "the refused scrape is counted: {text}"
    );
    host.shutdown().await.expect("shutdown");
}
