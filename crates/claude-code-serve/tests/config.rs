//! What the configuration declares, end to end: named sessions started with the host,
//! pools served at `/v1/pools/{pool}/messages` (with back-pressure as 429), templates for
//! `POST /v1/sessions`, and declared names checked before the host binds. The real HTTP
//! stack on 127.0.0.1:0, the real CLI, the project's mock Messages API.

use std::time::Duration;

use claude_code::SessionSpec;
use claude_code_serve::{Host, HostConfig, NamedSession, PoolConfig, ServeError};
use claude_code_tests::{eventually, Reply, Script, TestEnv};
use serde_json::{json, Value};

/// A host on the test's mock without warm spares (fewer CLIs on a small machine).
fn config(env: &TestEnv) -> HostConfig {
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false);
    config.spares = 0;
    config
}

async fn start(config: HostConfig) -> Host {
    Host::start(config).await.expect("host starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get_json(host: &Host, path: &str) -> Value {
    client()
        .get(format!("{}{path}", host.url()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .await
        .expect("json body")
}

async fn post(host: &Host, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", host.url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

async fn post_json(host: &Host, path: &str, body: Value) -> (u16, Value) {
    let r = post(host, path, body).await;
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// The SSE body's events as (name, data) pairs, keep-alive comments skipped.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            let value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
            Some((name.to_string(), value))
        })
        .collect()
}

#[tokio::test]
async fn declared_sessions_and_pools_start_with_the_host_and_answer() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let config = config(&env)
        .session(NamedSession::new(
            "default",
            SessionSpec::new("assistant").options(env.options()),
        ))
        // Another tenant's session of the same name: not visible to this caller, and
        // hibernated so that it starts no CLI.
        .session(NamedSession::new(
            "acme",
            SessionSpec::new("assistant")
                .options(env.options())
                .start_hibernated(),
        ))
        .pool(PoolConfig::new("workers", env.options(), 2));
    let host = start(config).await;

    let list = get_json(&host, "/v1/sessions").await;
    let sessions = list["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 1, "only the caller's tenant: {list}");
    assert_eq!(sessions[0]["name"], "assistant");
    assert_eq!(sessions[0]["status"], "live");
    let (status, body) = post_json(
        &host,
        "/v1/sessions/assistant/messages",
        json!({"prompt": "hello named"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "echo: hello named", "{body}");

    let pools = get_json(&host, "/v1/pools").await;
    assert_eq!(pools["pools"][0]["name"], "workers", "{pools}");
    assert_eq!(pools["pools"][0]["size"], 2, "{pools}");
    assert_eq!(pools["pools"][0]["busy"], 0, "{pools}");
    assert_eq!(pools["pools"][0]["queued"], 0, "{pools}");

    let (status, body) = post_json(
        &host,
        "/v1/pools/workers/messages",
        json!({"prompt": "hello pool"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "echo: hello pool", "{body}");
    assert_eq!(body["is_error"], false, "{body}");
    assert!(
        body["session_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert!(body["cost_usd"].as_f64().is_some(), "{body}");

    let r = client()
        .post(format!("{}/v1/pools/workers/messages", host.url()))
        .header("accept", "text/event-stream")
        .json(&json!({"prompt": "streamed pool"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream")));
    let events = sse_events(&r.text().await.expect("body"));
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"assistant"), "{names:?}");
    assert_eq!(names.last(), Some(&"result"), "{names:?}");
    assert_eq!(
        events.last().map(|(_, v)| v["result"].clone()),
        Some(json!("echo: streamed pool"))
    );

    let r = post(&host, "/v1/pools/nope/messages", json!({"prompt": "hi"})).await;
    assert_eq!(r.status().as_u16(), 404);
    let err: Value = r.json().await.expect("json");
    assert_eq!(err["code"], "not_found", "{err}");
    let (status, err) =
        post_json(&host, "/v1/pools/workers/messages", json!({"prompt": " "})).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("bad_request")));

    let served = get_json(&host, "/v1/pools").await;
    assert_eq!(served["pools"][0]["served"], 2, "{served}");
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_busy_pool_with_a_full_queue_is_a_429_with_retry_after() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("fast"))).await;
    // The first turn hangs at the API, keeping the pool's only member busy.
    env.mock
        .push(Reply::text("slow").delay(Duration::from_secs(8)));
    let mut pool = PoolConfig::new("tiny", env.options(), 1);
    pool.max_queue = 1;
    pool.queue_timeout = Duration::from_secs(2);
    let host = start(config(&env).pool(pool)).await;

    let busy = client()
        .post(format!("{}/v1/pools/tiny/messages", host.url()))
        .header("accept", "text/event-stream")
        .json(&json!({"prompt": "slow one"}))
        .send()
        .await
        .expect("request");
    assert_eq!(busy.status().as_u16(), 200);
    eventually(
        Duration::from_secs(30),
        "the slow turn reaches the API",
        || async {
            if env.mock.turn_requests().is_empty() {
                Err("no request yet")
            } else {
                Ok(())
            }
        },
    )
    .await;

    // The second request waits in the queue (capacity 1) ...
    let url = host.url();
    let queued = tokio::spawn(async move {
        client()
            .post(format!("{url}/v1/pools/tiny/messages"))
            .json(&json!({"prompt": "waits"}))
            .send()
            .await
            .expect("request")
    });
    eventually(Duration::from_secs(30), "one request queued", || async {
        let stats = get_json(&host, "/v1/pools").await;
        if stats["pools"][0]["queued"] == 1 {
            Ok(())
        } else {
            Err(stats)
        }
    })
    .await;
    // ... so the third finds it full: refused at once.
    let full = post(
        &host,
        "/v1/pools/tiny/messages",
        json!({"prompt": "no room"}),
    )
    .await;
    assert_eq!(full.status().as_u16(), 429);
    assert_eq!(
        full.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let err: Value = full.json().await.expect("json");
    assert_eq!(err["code"], "queue_full", "{err}");

    // The queued one gives up after the queue timeout, also a 429.
    let timed_out = tokio::time::timeout(Duration::from_secs(30), queued)
        .await
        .expect("answered after the queue timeout")
        .expect("task");
    assert_eq!(timed_out.status().as_u16(), 429);
    assert!(
        timed_out.headers().get("retry-after").is_some(),
        "{:?}",
        timed_out.headers()
    );
    let err: Value = timed_out.json().await.expect("json");
    assert_eq!(err["code"], "queue_full", "{err}");
    let stats = get_json(&host, "/v1/pools").await;
    assert_eq!(stats["pools"][0]["rejected"], 1, "{stats}");

    // The slow client goes away; its turn still runs to its end (and is recorded),
    // then the member serves the next request.
    drop(busy);
    let body = eventually(Duration::from_secs(60), "the pool serves again", || async {
        let (status, body) =
            post_json(&host, "/v1/pools/tiny/messages", json!({"prompt": "again"})).await;
        if status == 200 {
            Ok(body)
        } else {
            Err((status, body))
        }
    })
    .await;
    assert_eq!(body["text"], "fast", "{body}");
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_template_gives_a_new_session_its_options() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let config = config(&env).template(
        "reviewer",
        env.options().system_prompt("You review Rust with care"),
    );
    let host = start(config).await;

    let r = post(
        &host,
        "/v1/sessions",
        json!({"name": "r", "template": "reviewer", "options": {"append_system_prompt": "Answer in one line"}}),
    )
    .await;
    assert_eq!(r.status().as_u16(), 201);
    let (status, body) = post_json(&host, "/v1/sessions/r/messages", json!({"prompt": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    let system = env.mock.turn_requests()[0].system_text();
    assert!(
        system.contains("You review Rust with care"),
        "the template's prompt: {system}"
    );
    assert!(
        system.contains("Answer in one line"),
        "the client's option on top: {system}"
    );

    let r = post(&host, "/v1/sessions", json!({"name": "plain"})).await;
    assert_eq!(r.status().as_u16(), 201);
    post_json(
        &host,
        "/v1/sessions/plain/messages",
        json!({"prompt": "hi"}),
    )
    .await;
    let system = env.mock.turn_requests()[1].system_text();
    assert!(
        !system.contains("You review Rust with care"),
        "no template, the host's options: {system}"
    );

    let (status, err) = post_json(
        &host,
        "/v1/sessions",
        json!({"name": "x", "template": "nope"}),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("unknown_template")),
        "{err}"
    );
    let list = get_json(&host, "/v1/sessions").await;
    assert_eq!(
        list["sessions"].as_array().map(Vec::len),
        Some(2),
        "no session for the unknown template: {list}"
    );
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn declared_names_are_checked_before_anything_starts_or_binds() {
    // The port is taken: a host that bound before checking would fail with `Bind`.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    // No spares, no pools, hibernated sessions: nothing here starts a CLI.
    let base = || {
        let mut config = HostConfig::new(addr).offline(false);
        config.spares = 0;
        config
    };
    let cases: Vec<(HostConfig, &str)> = vec![
        (
            base().session(NamedSession::new("default", SessionSpec::new("has space"))),
            "InvalidName session",
        ),
        (
            base().session(NamedSession::new("a/b", SessionSpec::new("ok"))),
            "InvalidName tenant",
        ),
        (
            base()
                .session(NamedSession::new("t", SessionSpec::new("same")))
                .session(NamedSession::new("t", SessionSpec::new("same"))),
            "DuplicateName session",
        ),
        (
            base()
                .pool(PoolConfig::new("p", Default::default(), 1))
                .pool(PoolConfig::new("p", Default::default(), 1)),
            "DuplicateName pool",
        ),
        (
            base().pool(PoolConfig::new("p", Default::default(), 0)),
            "EmptyPool",
        ),
        (
            base().template("", Default::default()),
            "InvalidName template",
        ),
    ];
    for (config, expected) in cases {
        let err = Host::start(config).await.expect_err(expected);
        let seen = match &err {
            ServeError::InvalidName { what, .. } => format!("InvalidName {what}"),
            ServeError::DuplicateName { what, .. } => format!("DuplicateName {what}"),
            ServeError::EmptyPool(_) => "EmptyPool".to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(seen, expected, "{err}");
    }
    // The same session name for two tenants is fine (names are per tenant): it gets as
    // far as binding, which fails on the taken port.
    let err = Host::start(
        base()
            .session(NamedSession::new(
                "a",
                SessionSpec::new("same").start_hibernated(),
            ))
            .session(NamedSession::new(
                "b",
                SessionSpec::new("same").start_hibernated(),
            )),
    )
    .await
    .expect_err("port taken");
    assert!(matches!(err, ServeError::Bind { .. }), "{err}");
}
