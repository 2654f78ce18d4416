//! The host's credential proxy and environment allow-list, end to end: the real CLI
//! children of `serve`, the mock API that answers only the real key, `/proc`.

use std::{collections::BTreeSet, time::Duration};

use claude_code_serve::{Host, HostConfig};
use claude_code_tests::{eventually, kill_9, Reply, Script, TestEnv};
use serde_json::{json, Value};

fn random_key() -> String {
    use std::io::Read;
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    format!(
        "sk-ant-real-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// A host whose sessions hold `key` (given as the tests give it: in the options), with
/// a mock that answers only that key.
async fn host(env: &TestEnv, key: &str) -> Host {
    env.mock.require_api_key(key);
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options().env("ANTHROPIC_API_KEY", key))
        .offline(false);
    Host::start(config).await.expect("host starts")
}

async fn call(
    host: &Host,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", host.url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The environment of a process, as `NAME=value` strings.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("read environ")
        .split(|&b| b == 0)
        .filter(|kv| !kv.is_empty())
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .collect()
}

fn var(env: &[String], name: &str) -> Option<String> {
    env.iter()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
}

async fn live_pid(host: &Host, name: &str) -> u32 {
    let (_, s) = call(
        host,
        reqwest::Method::GET,
        &format!("/v1/sessions/{name}"),
        None,
    )
    .await;
    s["pid"].as_u64().expect("a live session has a pid") as u32
}

#[tokio::test]
async fn a_child_sees_only_allow_listed_variables_and_a_token_never_the_key() {
    // Variables of the host process that must not reach a child.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let key = random_key();
    let host = host(&env, &key).await;
    let (s, _) = call(
        &host,
        reqwest::Method::POST,
        "/v1/sessions",
        Some(json!({"name": "a"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, reply) = call(
        &host,
        reqwest::Method::POST,
        "/v1/sessions/a/messages",
        Some(json!({"prompt": "hi"})),
    )
    .await;
    assert_eq!((s, &reply["text"]), (200, &json!("ok")), "{reply}");
    let pid = live_pid(&host, "a").await;
    let child = environ(pid);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(
        child.iter().all(|kv| !kv.contains(&key)),
        "the real key is in the environment"
    );
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(&key),
        "the real key is in the argv"
    );
    let token = var(&child, "ANTHROPIC_API_KEY").expect("a token");
    assert!(token.starts_with("sk-ant-proxy-"), "{token}");
    let base = var(&child, "ANTHROPIC_BASE_URL").expect("the proxy's URL");
    assert_ne!(base, env.mock.url(), "the child talks to the proxy");
    // Only the allow-list, plus what the session's options and the SDK (its own
    // variables, a CLI profile's switches) set.
    let mut allowed: BTreeSet<String> = ["PATH", "HOME", "LANG", "TERM", "TMPDIR", "PWD"]
        .into_iter()
        .map(String::from)
        .collect();
    allowed.extend(
        env.options()
            .to_env()
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k),
    );
    allowed.extend(
        claude_code::CliSwitch::ALL
            .iter()
            .map(|s| s.env_var().to_string()),
    );
    let names: Vec<&str> = child
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .collect();
    let extra: Vec<&&str> = names
        .iter()
        .filter(|n| !allowed.contains(**n) && !n.starts_with("LC_"))
        .collect();
    assert!(extra.is_empty(), "not allow-listed: {extra:?}");
    assert!(!names.contains(&"CARGO_MANIFEST_DIR"));
    assert!(!names.contains(&"CLAUDE_CODE_CLI"));
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_session_over_its_budget_gets_a_typed_402() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok").usage(1000, 1000))).await;
    let host = host(&env, &random_key()).await;
    let (s, body) = call(
        &host,
        reqwest::Method::POST,
        "/v1/sessions",
        Some(json!({"name": "b", "budget_usd": 0.000_001})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let ask = || {
        call(
            &host,
            reqwest::Method::POST,
            "/v1/sessions/b/messages",
            Some(json!({"prompt": "hi"})),
        )
    };
    let (s, first) = ask().await;
    assert_eq!(s, 200, "the first turn is within budget: {first}");
    assert!(
        first["cost_usd"].as_f64().is_some_and(|c| c > 0.0),
        "{first}"
    );
    let turns = env.mock.turn_requests().len();
    let (s, second) = ask().await;
    assert_eq!(s, 402, "{second}");
    assert_eq!(second["code"], "session_budget_exceeded", "{second}");
    assert_eq!(env.mock.turn_requests().len(), turns, "nothing forwarded");
    // As SSE: an `error` event with the same code.
    let sse = reqwest::Client::new()
        .post(format!("{}/v1/sessions/b/messages", host.url()))
        .header("accept", "text/event-stream")
        .json(&json!({"prompt": "again"}))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(
        sse.contains("event: error") && sse.contains("session_budget_exceeded"),
        "{sse}"
    );
    // A bad budget is refused.
    let (s, _) = call(
        &host,
        reqwest::Method::POST,
        "/v1/sessions",
        Some(json!({"name": "c", "budget_usd": -1})),
    )
    .await;
    assert_eq!(s, 400);
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_token_survives_restarts_and_dies_with_its_session() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let host = host(&env, &random_key()).await;
    let (s, _) = call(
        &host,
        reqwest::Method::POST,
        "/v1/sessions",
        Some(json!({"name": "r"})),
    )
    .await;
    assert_eq!(s, 201);
    let pid = live_pid(&host, "r").await;
    let first = environ(pid);
    let token = var(&first, "ANTHROPIC_API_KEY").expect("token");
    let base = var(&first, "ANTHROPIC_BASE_URL").expect("base");
    kill_9(pid);
    let restarted = eventually(Duration::from_secs(30), "a restarted CLI", || async {
        let (_, s) = call(&host, reqwest::Method::GET, "/v1/sessions/r", None).await;
        match s["pid"].as_u64() {
            Some(p) if p as u32 != pid && s["status"] == "live" => Ok(p as u32),
            _ => Err(s),
        }
    })
    .await;
    assert_eq!(
        var(&environ(restarted), "ANTHROPIC_API_KEY"),
        Some(token.clone())
    );
    let (s, reply) = call(
        &host,
        reqwest::Method::POST,
        "/v1/sessions/r/messages",
        Some(json!({"prompt": "still there?"})),
    )
    .await;
    assert_eq!(s, 200, "{reply}");
    let direct = |token: String| {
        reqwest::Client::new()
            .post(format!("{base}/v1/messages/count_tokens"))
            .header("x-api-key", token)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
            .send()
    };
    assert_eq!(direct(token.clone()).await.expect("send").status(), 200);
    let (s, _) = call(&host, reqwest::Method::DELETE, "/v1/sessions/r", None).await;
    assert_eq!(s, 204);
    assert_eq!(direct(token).await.expect("send").status(), 401, "revoked");
    host.shutdown().await.expect("shutdown");
}
