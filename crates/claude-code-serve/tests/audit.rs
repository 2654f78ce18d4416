//! The audit trail of hosted sessions end to end: the real HTTP stack, the real CLI, the
//! project's mock Messages API. A scripted turn with a tool the host's policy denies and
//! a hook that decides: `GET /v1/audit` lists the events for the owning tenant only, the
//! JSON lines file has the same, and no secret reaches either.

use claude_code::{HookEvent, HookOutput};
use claude_code_serve::{store::Store, Host, HostConfig, Scope, ToolPolicy};
use claude_code_tests::{Reply, Script, TestEnv};
use serde_json::{json, Value};

struct Fixture {
    env: TestEnv,
    data: tempfile::TempDir,
    host: Host,
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
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.host.url()))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }
}

fn events(body: &Value) -> Vec<Value> {
    body["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_denied_tool_and_a_hook_decision_are_audited_for_the_owning_tenant_only() {
    let env = TestEnv::new(Script::new()).await;
    let data = tempfile::tempdir().expect("data dir");
    let jsonl = data.path().join("audit").join("events.jsonl");
    // The tokens exist before the host starts, so that the model's tool call can carry one.
    let store = Store::open(data.path()).expect("store");
    let write = store
        .create_token("acme", Scope::Write)
        .expect("token")
        .secret;
    drop(store);
    let target = env.cwd.path().join("denied.txt");
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({
            "command": format!(
                "touch {} # -H 'Authorization: Bearer abc.def' {write} sk-test-key",
                target.display()
            ),
            "description": "touch",
        }),
    ));
    env.mock.push(Reply::text("done"));
    let guarded = ToolPolicy::new().deny(["Bash"]).apply(env.options().hook(
        HookEvent::PreToolUse,
        Some("Bash"),
        |_| async { HookOutput::ask("the host's policy decides") },
    ));
    let config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .data_dir(data.path())
        .template("guarded", guarded)
        .audit_jsonl(&jsonl);
    let host = Host::start(config).await.expect("host starts");
    let f = Fixture { env, data, host };
    let admin = f.token("acme", Scope::Admin);
    let read = f.token("acme", Scope::Read);
    let other = f.token("globex", Scope::Admin);

    let (s, _) = f
        .call(
            reqwest::Method::POST,
            "/v1/sessions",
            &write,
            Some(json!({"name": "work", "template": "guarded"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, reply) = f
        .call(
            reqwest::Method::POST,
            "/v1/sessions/work/messages",
            &write,
            Some(json!({"prompt": "touch it"})),
        )
        .await;
    assert_eq!((s, reply["text"].as_str()), (200, Some("done")), "{reply}");
    assert!(!target.exists(), "the policy denied the tool");
    claude_code_tests::assert_tool_result(&f.env.mock.turn_requests()[1], "deny_tools: Bash");

    // The owning tenant's admin sees the decisions, filtered by session and kind.
    let (s, body) = f
        .get("/v1/audit?session=work&kind=permission_decision", &admin)
        .await;
    assert_eq!(s, 200, "{body}");
    let decisions = events(&body);
    assert_eq!(decisions.len(), 1, "{body}");
    let d = &decisions[0];
    assert_eq!(
        (
            d["kind"].as_str(),
            d["tenant"].as_str(),
            d["session"].as_str()
        ),
        (Some("permission_decision"), Some("acme"), Some("work"))
    );
    let detail = &d["detail"];
    assert_eq!(detail["tool"], "Bash");
    assert_eq!(detail["behavior"], "deny");
    assert_eq!(detail["decided_by"]["by"], "callback");
    assert!(
        detail["message"]
            .as_str()
            .is_some_and(|m| m.contains("deny_tools: Bash")),
        "{detail}"
    );
    assert!(detail["session_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));

    let (_, body) = f
        .get("/v1/audit?session=work&kind=hook_decision", &admin)
        .await;
    let hooks = events(&body);
    assert!(
        hooks.iter().any(|h| h["detail"]["event"] == "PreToolUse"
            && h["detail"]["permission_decision"] == "ask"
            && h["detail"]["reason"] == "the host's policy decides"),
        "{body}"
    );

    let (_, body) = f.get("/v1/audit?session=work&kind=tool_use", &admin).await;
    let uses = events(&body);
    assert_eq!(uses.len(), 1, "{body}");
    let input = &uses[0]["detail"]["input"];
    let command = input["command"].as_str().unwrap_or_default();
    assert!(
        command.ends_with("# -H 'Authorization: Bearer [redacted]' [redacted] [redacted]"),
        "{command}"
    );

    let (_, body) = f.get("/v1/audit?session=work", &admin).await;
    let all: Vec<String> = events(&body)
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect();
    for kind in [
        "tool_use",
        "hook_decision",
        "permission_decision",
        "control_request",
        "tool_result",
    ] {
        assert!(all.iter().any(|k| k == kind), "{kind} missing: {all:?}");
    }
    // HTTP rows are still there, now with a kind.
    let (_, body) = f.get("/v1/audit?kind=http&limit=5", &admin).await;
    let http = events(&body);
    assert!(!http.is_empty() && http.len() <= 5);
    assert!(
        http.iter()
            .all(|e| e["route"].is_string() && e["status"].is_number()),
        "{body}"
    );
    let (_, body) = f.get("/v1/audit?since=4102444800", &admin).await;
    assert!(events(&body).is_empty(), "nothing after 2100: {body}");

    // Another tenant sees none of it; a read token may not look.
    let (s, body) = f.get("/v1/audit?session=work", &other).await;
    assert_eq!(s, 200);
    assert!(events(&body).is_empty(), "{body}");
    let (s, body) = f.get("/v1/audit", &read).await;
    assert_eq!((s, body["code"].as_str()), (403, Some("forbidden")));
    for bad in [
        "kind=bogus",
        "limit=0",
        "limit=1001",
        "limit=x",
        "since=-1",
        "session=a%2Fb",
        "tenant=globex",
    ] {
        let (s, body) = f.get(&format!("/v1/audit?{bad}"), &admin).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
        assert!(body["message"].is_string(), "{bad}: {body}");
    }

    // Nothing secret reached the store's rows, the database file or the JSON lines file.
    let (_, everything) = f.get("/v1/audit?limit=1000", &admin).await;
    f.host.shutdown().await.expect("shutdown");
    let lines = std::fs::read_to_string(&jsonl).expect("the JSON lines file");
    let parsed: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let deny = parsed
        .iter()
        .find(|e| e["kind"] == "permission_decision")
        .expect("the decision is in the file");
    assert_eq!(
        (
            deny["tenant"].as_str(),
            deny["session"].as_str(),
            deny["behavior"].as_str()
        ),
        (Some("acme"), Some("work"), Some("deny"))
    );
    assert!(parsed.iter().any(|e| e["kind"] == "hook_decision"));
    assert!(parsed
        .iter()
        .any(|e| e["kind"] == "http" && e["route"] == "/v1/sessions/{name}/messages"));
    let mut db = Vec::new();
    for entry in std::fs::read_dir(f.data.path())
        .expect("data dir")
        .flatten()
    {
        if entry.path().is_file() {
            db.extend(std::fs::read(entry.path()).expect("read"));
        }
    }
    let db = String::from_utf8_lossy(&db).into_owned();
    let token_secret = write.rsplit('_').next().expect("secret part");
    for (what, text) in [
        ("rows", everything.to_string()),
        ("file", lines),
        ("database", db),
    ] {
        for secret in [token_secret, "sk-test-key", "abc.def"] {
            assert!(!text.contains(secret), "{secret} leaked into the {what}");
        }
    }
    f.env.assert_no_leftovers().await;
}
