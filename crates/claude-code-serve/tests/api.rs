//! The host's HTTP API end to end: the real HTTP stack on 127.0.0.1:0, the real CLI,
//! the project's mock Messages API.

use claude_code_serve::{Host, HostConfig, ServeError};
use claude_code_tests::{Reply, Script, TestEnv};
use serde_json::{json, Value};

async fn host(env: &TestEnv) -> Host {
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false);
    Host::start(config).await.expect("host starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(host: &Host, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", host.url()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn get_json(host: &Host, path: &str) -> Value {
    get(host, path).await.json().await.expect("json body")
}

async fn create(host: &Host, name: &str) -> reqwest::Response {
    client()
        .post(format!("{}/v1/sessions", host.url()))
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("request")
}

async fn ask_json(host: &Host, name: &str, prompt: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/v1/sessions/{name}/messages", host.url()))
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

#[tokio::test]
async fn sessions_are_created_listed_read_and_deleted() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let host = host(&env).await;
    let r = create(&host, "assistant").await;
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["name"], "assistant");
    assert_eq!(body["status"], "live");

    let again = create(&host, "assistant").await;
    assert_eq!(again.status().as_u16(), 409);
    let err: Value = again.json().await.expect("json");
    assert_eq!(err["code"], "name_taken");

    let list: Value = get_json(&host, "/v1/sessions").await;
    assert_eq!(list["sessions"][0]["name"], "assistant");

    let one = get(&host, "/v1/sessions/assistant").await;
    assert_eq!(one.status().as_u16(), 200);

    let del = client()
        .delete(format!("{}/v1/sessions/assistant", host.url()))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status().as_u16(), 204);
    let gone = get(&host, "/v1/sessions/assistant").await;
    assert_eq!(gone.status().as_u16(), 404);
    let err: Value = gone.json().await.expect("json");
    assert_eq!(err["code"], "not_found");
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn bad_input_is_a_400_with_a_code() {
    let env = TestEnv::new(Script::new()).await;
    let host = host(&env).await;
    for body in [
        json!({"name": "has space"}),
        json!({"name": ""}),
        json!({"name": "ok", "options": {"dangerously_skip_permissions": true}}),
        json!({"nome": "typo"}),
    ] {
        let r = client()
            .post(format!("{}/v1/sessions", host.url()))
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let err: Value = r.json().await.expect("json");
        assert_eq!(err["code"], "bad_request", "{body}");
    }
    let r = client()
        .post(format!("{}/v1/sessions/nobody/messages", host.url()))
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 404);
    create(&host, "s").await;
    let (status, err) = ask_json(&host, "s", "   ").await;
    assert_eq!((status, err["code"].as_str()), (400, Some("bad_request")));
    let big = "x".repeat(2 * 1024 * 1024);
    let r = client()
        .post(format!("{}/v1/sessions/s/messages", host.url()))
        .json(&json!({"prompt": big}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 413);
    let err: Value = r.json().await.expect("a JSON error");
    assert_eq!(err["code"], "body_too_large", "{err}");
    // Unknown routes and methods are JSON errors too.
    let r = get(&host, "/v1/nope").await;
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.expect("json")["code"], "not_found");
    let r = client()
        .put(format!("{}/v1/sessions", host.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "method_not_allowed"
    );
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_json_turn_replies_with_text_session_id_cost_and_the_conversation_goes_on() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::text("first answer").usage(10, 5));
    env.mock.push(Reply::text("second answer"));
    let host = host(&env).await;
    create(&host, "chat").await;
    let (status, body) = ask_json(&host, "chat", "remember the word kiwi").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], "first answer");
    assert_eq!(body["is_error"], false);
    assert!(
        body["session_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert!(body["cost_usd"].as_f64().is_some_and(|c| c > 0.0), "{body}");
    let (_, second) = ask_json(&host, "chat", "which word?").await;
    assert_eq!(second["text"], "second answer");
    let texts = env.mock.turn_requests()[1].user_texts();
    assert!(
        texts.iter().any(|t| t.contains("remember the word kiwi")),
        "the second turn carries the first: {texts:?}"
    );
    let info: Value = get_json(&host, "/v1/sessions/chat").await;
    assert_eq!(info["turns"], 2, "{info}");
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_sse_turn_sends_one_typed_event_per_message_ending_with_result() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("streamed answer"))).await;
    let host = host(&env).await;
    create(&host, "s").await;
    let r = client()
        .post(format!("{}/v1/sessions/s/messages", host.url()))
        .header("accept", "text/event-stream")
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream")));
    let text = r.text().await.expect("body");
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .unwrap_or_default();
        let data: String = block
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        if name.is_empty() {
            continue; // keep-alive comment
        }
        let value: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
        assert_eq!(
            value["type"], name,
            "the event is named by the message type"
        );
        events.push((name.to_string(), value));
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"system"), "{names:?}");
    assert!(names.contains(&"assistant"), "{names:?}");
    assert_eq!(names.last(), Some(&"result"), "{names:?}");
    assert_eq!(
        events.last().map(|(_, v)| v["result"].clone()),
        Some(json!("streamed answer"))
    );
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn interrupt_health_and_readiness() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let host = host(&env).await;
    let health = get(&host, "/healthz").await;
    assert_eq!(health.status().as_u16(), 200);
    let ready: Value = get_json(&host, "/readyz").await;
    assert_eq!(ready["status"], "ready");
    create(&host, "s").await;
    let r = client()
        .post(format!("{}/v1/sessions/s/interrupt", host.url()))
        .send()
        .await
        .expect("interrupt");
    assert_eq!(r.status().as_u16(), 204);
    let (status, body) = ask_json(&host, "s", "still there?").await;
    assert_eq!((status, body["text"].as_str()), (200, Some("ok")));
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn offline_sessions_talk_to_the_built_in_mock() {
    let env = TestEnv::new(Script::new()).await;
    // The test env's options point at its own mock; offline replaces that with the
    // host's built-in echo mock.
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options().env_remove("ANTHROPIC_BASE_URL"))
        .offline(true);
    let host = Host::start(config).await.expect("host");
    assert!(host.is_offline());
    create(&host, "s").await;
    let (status, body) = ask_json(&host, "s", "hello mock").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["text"]
            .as_str()
            .is_some_and(|t| t.contains("hello mock")),
        "{body}"
    );
    assert!(
        env.mock.turn_requests().is_empty(),
        "the test's mock was not used"
    );
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn without_authentication_only_loopback_addresses_are_served() {
    let err = Host::start(HostConfig::new("0.0.0.0:0".parse().expect("addr")).offline(true))
        .await
        .expect_err("refused");
    assert!(matches!(err, ServeError::NotLoopback(_)), "{err}");
}

#[tokio::test]
async fn the_transcript_holds_the_conversation() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("noted"))).await;
    let host = host(&env).await;
    create(&host, "t").await;
    let empty: Value = get_json(&host, "/v1/sessions/t/transcript").await;
    assert_eq!(empty["messages"], json!([]), "no turn yet: {empty}");
    ask_json(&host, "t", "the code word is mango").await;
    let body: Value = get_json(&host, "/v1/sessions/t/transcript").await;
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    assert!(
        messages
            .iter()
            .any(|m| m["role"] == "user" && m["text"] == "the code word is mango"),
        "{body}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m["role"] == "assistant" && m["text"] == "noted"),
        "{body}"
    );
    let missing = get(&host, "/v1/sessions/nobody/transcript").await;
    assert_eq!(missing.status().as_u16(), 404);
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_query_runs_on_an_isolated_session_that_shares_nothing() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::text("first query"));
    env.mock.push(Reply::text("second query"));
    let host = host(&env).await;
    let q = |prompt: &'static str| {
        let url = format!("{}/v1/query", host.url());
        async move {
            client()
                .post(url)
                .json(&json!({"prompt": prompt}))
                .send()
                .await
                .expect("query")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let one = q("secret alpha").await;
    assert_eq!(one["text"], "first query", "{one}");
    assert_eq!(one["is_error"], false);
    let two = q("what was the secret?").await;
    assert_eq!(two["text"], "second query");
    assert_ne!(one["session_id"], two["session_id"], "two conversations");
    let second_request =
        serde_json::to_string(env.mock.turn_requests()[1].messages()).expect("json");
    assert!(
        !second_request.contains("secret alpha"),
        "the second query does not see the first"
    );
    let list: Value = get_json(&host, "/v1/sessions").await;
    assert_eq!(
        list["sessions"],
        json!([]),
        "queries are not named sessions"
    );
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_rejected_api_key_is_a_fast_typed_502() {
    // The CLI's default ten retries stay on: the SDK ends the turn at the first report.
    let env = TestEnv::new(Script::new().fallback(Reply::unauthorized())).await;
    let host = host(&env).await;
    create(&host, "s").await;
    let (status, body) = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        ask_json(&host, "s", "hi"),
    )
    .await
    .expect("answered without the CLI's minutes of retries");
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("upstream_auth_failed")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("ANTHROPIC_API_KEY")),
        "{body}"
    );
    let info = get_json(&host, "/v1/sessions/s").await;
    assert_eq!(info["status"], "live", "the session survives: {info}");
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_leaves_the_session_usable() {
    let env = TestEnv::new(Script::new()).await;
    env.mock
        .push(Reply::text("never read").delay(std::time::Duration::from_secs(2)));
    env.mock.push(Reply::text("after the disconnect"));
    let host = host(&env).await;
    create(&host, "s").await;
    let r = client()
        .post(format!("{}/v1/sessions/s/messages", host.url()))
        .header("accept", "text/event-stream")
        .json(&json!({"prompt": "slow one"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
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
    drop(r); // the client goes away mid-turn
    let (status, body) = ask_json(&host, "s", "are you there?").await;
    assert_eq!(
        (status, body["text"].as_str()),
        (200, Some("after the disconnect")),
        "{body}"
    );
    // The abandoned turn ran to its end and is in the ledger with the second one.
    let session = get_json(&host, "/v1/sessions/s").await;
    assert_eq!(session["turns"], 2, "{session}");
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_cli_killed_mid_turn_is_a_typed_503_and_the_session_comes_back() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("back again"))).await;
    env.mock
        .push(Reply::text("never sent").delay(std::time::Duration::from_secs(30)));
    let host = host(&env).await;
    create(&host, "s").await;
    let pid = get_json(&host, "/v1/sessions/s").await["pid"]
        .as_u64()
        .expect("pid") as u32;
    let url = host.url();
    let turn = tokio::spawn(async move {
        client()
            .post(format!("{url}/v1/sessions/s/messages"))
            .json(&json!({"prompt": "slow one"}))
            .send()
            .await
            .expect("request")
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
    claude_code_tests::kill_9(pid);
    let r = tokio::time::timeout(std::time::Duration::from_secs(30), turn)
        .await
        .expect("answered promptly")
        .expect("task");
    assert_eq!(r.status().as_u16(), 503);
    let err: Value = r.json().await.expect("json");
    assert_eq!(err["code"], "session_unavailable", "{err}");
    let (status, body) = ask_json(&host, "s", "again?").await;
    assert_eq!(
        (status, body["text"].as_str()),
        (200, Some("back again")),
        "{body}"
    );
    assert_eq!(get_json(&host, "/v1/sessions/s").await["restarts"], 1);
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

/// Every operation in `/openapi.json` is called, and answers with a status that the
/// document lists for it (and a JSON body where it documents one).
#[tokio::test]
async fn every_documented_route_answers_with_a_documented_status() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let host = host(&env).await;
    let doc = get_json(&host, "/openapi.json").await;
    assert_eq!(
        doc["openapi"].as_str().map(|v| &v[..2]),
        Some("3."),
        "{doc}"
    );
    assert_eq!(create(&host, "s").await.status().as_u16(), 201);

    let mut operations: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.push((method.clone(), path.clone()));
        }
    }
    // Deleting goes last, so that the other routes still find the session.
    operations.sort_by_key(|(m, p)| (m == "delete", p.clone(), m.clone()));
    let documented: std::collections::BTreeSet<String> =
        operations.iter().map(|(m, p)| format!("{m} {p}")).collect();
    for expected in [
        "get /healthz",
        "get /readyz",
        "get /openapi.json",
        "post /v1/sessions",
        "get /v1/sessions",
        "get /v1/sessions/{name}",
        "delete /v1/sessions/{name}",
        "post /v1/sessions/{name}/messages",
        "post /v1/sessions/{name}/interrupt",
        "get /v1/sessions/{name}/transcript",
        "post /v1/query",
        "get /v1/audit",
        "get /",
        "get /v1/events",
    ] {
        assert!(
            documented.contains(expected),
            "{expected} is not documented"
        );
    }

    for (method, path) in &operations {
        let url = format!("{}{}", host.url(), path.replace("{name}", "s"));
        let body = match (method.as_str(), path.as_str()) {
            ("post", "/v1/sessions") => Some(json!({"name": "another"})),
            ("post", p) if p.ends_with("/interrupt") => None,
            ("post", _) => Some(json!({"prompt": "hello"})),
            _ => None,
        };
        let mut req = client().request(method.to_uppercase().parse().expect("method"), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16().to_string();
        let op = &doc["paths"][path][method];
        let documented = &op["responses"][&status];
        assert!(
            documented.is_object(),
            "{method} {path} answered {status}, which it does not document"
        );
        if path == "/v1/events" {
            continue; // a live feed: its body goes on while the host runs
        }
        let text = r.text().await.expect("body");
        if documented["content"]["application/json"].is_object() && !text.is_empty() {
            serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        }
    }
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn readiness_fails_when_the_cli_is_missing() {
    let env = TestEnv::new(Script::new()).await;
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options().cli_path("/nonexistent/claude"))
        .offline(false);
    config.spares = 0;
    let host = Host::start(config).await.expect("host starts");
    let r = get(&host, "/readyz").await;
    assert_eq!(r.status().as_u16(), 503);
    let err: Value = r.json().await.expect("json");
    assert_eq!(err["code"], "cli_not_found", "{err}");
    assert_eq!(get(&host, "/healthz").await.status().as_u16(), 200);
    host.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_host_that_interrupts_on_disconnect_ends_the_abandoned_turn_and_records_it() {
    let env = TestEnv::new(Script::new()).await;
    env.mock
        .push(Reply::text("never read").delay(std::time::Duration::from_secs(120)));
    env.mock.push(Reply::text("after the disconnect"));
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false);
    config.interrupt_on_disconnect = true;
    let host = Host::start(config).await.expect("host starts");
    create(&host, "s").await;
    let r = client()
        .post(format!("{}/v1/sessions/s/messages", host.url()))
        .header("accept", "text/event-stream")
        .json(&json!({"prompt": "slow one"}))
        .send()
        .await
        .expect("request");
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
    drop(r);
    // Well before the 120 s reply: the abandoned turn was interrupted.
    let (status, body) = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        ask_json(&host, "s", "are you there?"),
    )
    .await
    .expect("the session is free again well before the slow reply");
    assert_eq!(
        (status, body["text"].as_str()),
        (200, Some("after the disconnect")),
        "{body}"
    );
    let session = get_json(&host, "/v1/sessions/s").await;
    assert_eq!(session["turns"], 2, "{session}");
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}

// Found by Schemathesis (scripts/schemathesis with two workers): a turn whose session is
// deleted while it runs was a 503 `session_unavailable` ("try again"), though the
// session is gone and a retry is a 404.
#[tokio::test]
async fn a_turn_whose_session_is_deleted_while_it_runs_is_a_404() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    env.mock
        .push(Reply::text("never sent").delay(std::time::Duration::from_secs(30)));
    let host = host(&env).await;
    assert_eq!(create(&host, "s").await.status().as_u16(), 201);
    let url = host.url();
    let turn = tokio::spawn(async move {
        client()
            .post(format!("{url}/v1/sessions/s/messages"))
            .json(&json!({"prompt": "slow one"}))
            .send()
            .await
            .expect("request")
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
    let deleted = client()
        .delete(format!("{}/v1/sessions/s", host.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(deleted.status().as_u16(), 204);
    let r = tokio::time::timeout(std::time::Duration::from_secs(30), turn)
        .await
        .expect("answered promptly")
        .expect("task");
    assert_eq!(r.status().as_u16(), 404);
    let err: Value = r.json().await.expect("json");
    assert_eq!(err["code"], "not_found", "{err}");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("deleted")),
        "{err}"
    );
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}
