//! Tenants, tokens and limits end to end: the real HTTP stack on 127.0.0.1:0, the real
//! CLI, the project's mock Messages API, tokens made in the host's own state store.

use std::time::Duration;

use claude_code_serve::{store::Store, Host, HostConfig, Scope, TenantLimits};
use claude_code_tests::{Reply, Script, TestEnv};
use serde_json::{json, Value};

struct Fixture {
    env: TestEnv,
    data: tempfile::TempDir,
    host: Host,
}

async fn fixture(script: Script, configure: impl FnOnce(HostConfig) -> HostConfig) -> Fixture {
    let env = TestEnv::new(script).await;
    let data = tempfile::tempdir().expect("data dir");
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .data_dir(data.path());
    let host = Host::start(configure(config)).await.expect("host starts");
    Fixture { env, data, host }
}

impl Fixture {
    fn token(&self, tenant: &str, scope: Scope) -> String {
        Store::open(self.data.path())
            .expect("store")
            .create_token(tenant, scope)
            .expect("token")
            .secret
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.host.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, headers, value)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let (s, _, v) = self
            .call(reqwest::Method::GET, path, Some(token), None)
            .await;
        (s, v)
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let (s, _, v) = self
            .call(reqwest::Method::POST, path, Some(token), Some(body))
            .await;
        (s, v)
    }

    async fn stop(self) {
        self.host.shutdown().await.expect("shutdown");
        self.env.assert_no_leftovers().await;
    }
}

#[tokio::test]
async fn tokens_are_required_once_one_exists_and_wrong_ones_are_401() {
    let f = fixture(Script::new().fallback(Reply::text("ok")), |c| c).await;
    // No token yet, loopback: anonymous works.
    let (s, _, _) = f
        .call(reqwest::Method::GET, "/v1/sessions", None, None)
        .await;
    assert_eq!(s, 200);
    let token = f.token("acme", Scope::Read);
    let (s, _, body) = f
        .call(reqwest::Method::GET, "/v1/sessions", None, None)
        .await;
    assert_eq!((s, body["code"].as_str()), (401, Some("unauthorized")));
    let mut wrong = token.clone();
    wrong.pop();
    wrong.push(if token.ends_with('0') { '1' } else { '0' });
    for bad in [wrong.as_str(), "cch_x", "not-a-token", ""] {
        let (s, _, body) = f
            .call(reqwest::Method::GET, "/v1/sessions", Some(bad), None)
            .await;
        assert_eq!(
            (s, body["code"].as_str()),
            (401, Some("unauthorized")),
            "{bad}"
        );
    }
    let (s, _) = f.get("/v1/sessions", &token).await;
    assert_eq!(s, 200);
    // Health stays open.
    let (s, _, _) = f.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(s, 200);
    f.stop().await;
}

#[tokio::test]
async fn a_tenant_sees_and_touches_only_its_own_sessions() {
    let f = fixture(Script::new().fallback(Reply::text("hello")), |c| c).await;
    let a = f.token("tenant-a", Scope::Write);
    let b = f.token("tenant-b", Scope::Write);
    // Names are per tenant: both may have `assistant`.
    for t in [&a, &b] {
        let (s, body) = f
            .post("/v1/sessions", t, json!({"name": "assistant"}))
            .await;
        assert_eq!(s, 201, "{body}");
    }
    let (s, _) = f.post("/v1/sessions", &a, json!({"name": "only-a"})).await;
    assert_eq!(s, 201);

    let (_, list) = f.get("/v1/sessions", &b).await;
    let names: Vec<&str> = list["sessions"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["assistant"]);

    // Every route on another tenant's session is a 404, as for a name that does not exist.
    let (s, body) = f.get("/v1/sessions/only-a", &b).await;
    assert_eq!((s, body["code"].as_str()), (404, Some("not_found")));
    assert!(!body.to_string().contains("tenant-a"), "{body}");
    let (s, _) = f.get("/v1/sessions/only-a/transcript", &b).await;
    assert_eq!(s, 404);
    let (s, _) = f
        .post("/v1/sessions/only-a/messages", &b, json!({"prompt": "hi"}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = f.post("/v1/sessions/only-a/interrupt", &b, json!({})).await;
    assert_eq!(s, 404);
    let (s, _, _) = f
        .call(
            reqwest::Method::DELETE,
            "/v1/sessions/only-a",
            Some(&b),
            None,
        )
        .await;
    assert_eq!(s, 404);

    // A's session is untouched and answers A.
    let (s, body) = f
        .post("/v1/sessions/only-a/messages", &a, json!({"prompt": "hi"}))
        .await;
    assert_eq!((s, body["text"].as_str()), (200, Some("hello")), "{body}");
    // B's turn went to B's own `assistant`, not A's.
    let (s, _) = f
        .post(
            "/v1/sessions/assistant/messages",
            &b,
            json!({"prompt": "hi"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, mine) = f.get("/v1/sessions/assistant", &a).await;
    let (_, theirs) = f.get("/v1/sessions/assistant", &b).await;
    assert_eq!(
        (mine["turns"].as_u64(), theirs["turns"].as_u64()),
        (Some(0), Some(1))
    );
    f.stop().await;
}

#[tokio::test]
async fn scopes_are_enforced_with_403() {
    let f = fixture(Script::new().fallback(Reply::text("ok")), |c| c).await;
    let read = f.token("acme", Scope::Read);
    let write = f.token("acme", Scope::Write);
    let admin = f.token("acme", Scope::Admin);
    let (s, body) = f.post("/v1/sessions", &read, json!({"name": "x"})).await;
    assert_eq!((s, body["code"].as_str()), (403, Some("forbidden")));
    let (s, _) = f.post("/v1/query", &read, json!({"prompt": "hi"})).await;
    assert_eq!(s, 403);
    let (s, _) = f.post("/v1/sessions", &write, json!({"name": "x"})).await;
    assert_eq!(s, 201);
    let (s, _) = f.get("/v1/sessions/x", &read).await;
    assert_eq!(s, 200);
    let (s, _) = f.get("/v1/audit", &write).await;
    assert_eq!(s, 403);

    // The audit trail: the tenant's calls, with outcomes, and never a token.
    let (s, audit) = f.get("/v1/audit", &admin).await;
    assert_eq!(s, 200);
    let events = audit["events"].as_array().expect("events");
    assert!(
        events
            .iter()
            .any(|e| e["route"] == "/v1/sessions" && e["method"] == "POST" && e["status"] == 403),
        "{audit}"
    );
    assert!(events
        .iter()
        .any(|e| e["route"] == "/v1/sessions/{name}" && e["status"] == 200));
    assert!(events.iter().all(|e| e["tenant"] == "acme"));
    let text = audit.to_string();
    for t in [&read, &write, &admin] {
        let secret = t.rsplit('_').next().expect("secret");
        assert!(
            !text.contains(secret),
            "a token leaked into the audit trail"
        );
    }
    f.stop().await;
}

#[tokio::test]
async fn session_and_rate_limits_are_429_with_retry_after() {
    let limits = TenantLimits::new().max_sessions(1).requests_per_minute(4);
    let f = fixture(Script::new().fallback(Reply::text("ok")), |c| {
        c.tenant_limits("small", limits)
    })
    .await;
    let small = f.token("small", Scope::Write);
    let other = f.token("other", Scope::Write);
    let (s, _) = f.post("/v1/sessions", &small, json!({"name": "one"})).await;
    assert_eq!(s, 201);
    let (s, h, body) = f
        .call(
            reqwest::Method::POST,
            "/v1/sessions",
            Some(&small),
            Some(json!({"name": "two"})),
        )
        .await;
    assert_eq!((s, body["code"].as_str()), (429, Some("session_limit")));
    assert!(h.contains_key("retry-after"));
    // Two requests so far; the third and fourth pass, the fifth is over 4 per minute.
    for _ in 0..2 {
        let (s, _) = f.get("/v1/sessions", &small).await;
        assert_eq!(s, 200);
    }
    let (s, h, body) = f
        .call(reqwest::Method::GET, "/v1/sessions", Some(&small), None)
        .await;
    assert_eq!((s, body["code"].as_str()), (429, Some("rate_limited")));
    let retry: u64 = h["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=15).contains(&retry), "retry after {retry}");
    // Another tenant is not limited by it.
    for i in 0..6 {
        let (s, _) = f
            .post("/v1/sessions", &other, json!({"name": format!("s{i}")}))
            .await;
        assert_eq!(s, 201);
    }
    f.stop().await;
}

#[tokio::test]
async fn concurrent_turns_and_spend_are_capped_per_tenant() {
    let limits = TenantLimits::new()
        .max_concurrent_turns(1)
        .max_spend_usd(0.000_001);
    let f = fixture(Script::new(), |c| c.tenant_limits("small", limits)).await;
    f.env.mock.push(
        Reply::text("slow")
            .usage(1000, 1000)
            .delay(Duration::from_secs(3)),
    );
    let small = f.token("small", Scope::Write);
    for name in ["a", "b"] {
        let (s, _) = f.post("/v1/sessions", &small, json!({"name": name})).await;
        assert_eq!(s, 201);
    }
    // A streamed turn holds the tenant's one turn slot while it runs.
    let slow = reqwest::Client::new()
        .post(format!("{}/v1/sessions/a/messages", f.host.url()))
        .bearer_auth(&small)
        .header("accept", "text/event-stream")
        .json(&json!({"prompt": "slow one"}))
        .send()
        .await
        .expect("request");
    assert_eq!(slow.status().as_u16(), 200);
    let (s, h, body) = f
        .call(
            reqwest::Method::POST,
            "/v1/sessions/b/messages",
            Some(&small),
            Some(json!({"prompt": "second"})),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (429, Some("too_many_turns")),
        "{body}"
    );
    assert!(h.contains_key("retry-after"));
    // The slow turn ends with `result`; its cost is then in the ledger.
    let events = slow.text().await.expect("stream");
    assert!(events.contains("event: result"), "{events}");
    let (_, a) = f.get("/v1/sessions/a", &small).await;
    assert!(a["cost_usd"].as_f64().is_some_and(|c| c > 0.0), "{a}");
    // Over its spend: the next turn is refused.
    let (s, body) = f
        .post("/v1/sessions/b/messages", &small, json!({"prompt": "more"}))
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (429, Some("spend_limit")),
        "{body}"
    );
    f.stop().await;
}

#[tokio::test]
async fn a_restarted_host_lists_its_dynamic_sessions_hibernated_and_resumes_them() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let data = tempfile::tempdir().expect("data dir");
    let start = || {
        Host::start(
            HostConfig::new("127.0.0.1:0".parse().expect("addr"))
                .options(env.options())
                .offline(false)
                .data_dir(data.path()),
        )
    };
    let host = start().await.expect("host");
    let url = host.url();
    let c = reqwest::Client::new();
    let s = c
        .post(format!("{url}/v1/sessions"))
        .json(&json!({"name": "keeper", "options": {"append_system_prompt": "Be brief."}}))
        .send()
        .await
        .expect("create");
    assert_eq!(s.status().as_u16(), 201);
    let first: Value = c
        .post(format!("{url}/v1/sessions/keeper/messages"))
        .json(&json!({"prompt": "the secret word is kiwi"}))
        .send()
        .await
        .expect("turn")
        .json()
        .await
        .expect("json");
    let before: Value = c
        .get(format!("{url}/v1/sessions/keeper"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    host.shutdown().await.expect("shutdown");

    let host = start().await.expect("host again");
    let url = host.url();
    let after: Value = c
        .get(format!("{url}/v1/sessions/keeper"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(after["status"], "hibernated", "{after}");
    assert_eq!(after["turns"], before["turns"]);
    assert_eq!(after["cost_usd"], before["cost_usd"]);
    let second: Value = c
        .post(format!("{url}/v1/sessions/keeper/messages"))
        .json(&json!({"prompt": "what was the word?"}))
        .send()
        .await
        .expect("turn")
        .json()
        .await
        .expect("json");
    assert_eq!(second["session_id"], first["session_id"], "{second}");
    // The model saw the earlier history, and the recipe's system prompt came back too.
    let last = env.mock.turn_requests().pop().expect("a request");
    assert!(
        last.user_texts().iter().any(|t| t.contains("kiwi")),
        "{:?}",
        last.user_texts()
    );
    assert!(last.system_text().contains("Be brief."));
    host.shutdown().await.expect("shutdown");
    env.assert_no_leftovers().await;
}
