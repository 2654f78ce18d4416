//! The cluster beyond turns: a session's other calls (get, delete, interrupt, transcript)
//! and the session list through any host, the cluster's metrics, and a session's spend
//! carried across a failover. In-process hosts on a real nats-server with JetStream, the
//! real CLI against the project's mock API.

use std::time::Duration;

use claude_code_serve::{cluster::ClusterConfig, store::Store, Host, HostConfig, Scope};
use claude_code_tests::{eventually, NatsServer, Reply, Script, TestEnv};
use serde_json::{json, Value};

mod support;
use support::{ask, get, metrics, sample};

/// A clustered host: heartbeat 0.5 s, lease 2 s, its own CLI config dir (so a
/// transcript on another host can only come from a checkpoint) and, when given, its own
/// data dir.
async fn host(
    env: &TestEnv,
    nats: &NatsServer,
    node: &str,
    config_dir: &std::path::Path,
    data_dir: Option<&std::path::Path>,
) -> Host {
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(
            env.options()
                .env("CLAUDE_CONFIG_DIR", config_dir.to_string_lossy()),
        )
        .offline(false)
        .cluster(
            ClusterConfig::new(nats.url())
                .node_name(node)
                .heartbeat(Duration::from_millis(500))
                .lease(Duration::from_secs(2)),
        );
    if let Some(dir) = data_dir {
        config = config.data_dir(dir);
    }
    config.spares = 0;
    Host::start(config).await.expect("host starts")
}

/// `method path` on `host` with an optional token and JSON body: status and JSON body
/// (`null` when there is none).
/// `method path` on `host`, with an optional bearer token and JSON body.
async fn call(
    host: &Host,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    support::call_as(method, format!("{}{path}", host.url()), token, body).await
}

/// Makes a session on `host` itself (`"placement": "local"`: these tests put each session
/// on a chosen member).
async fn create(host: &Host, mut body: Value) -> (u16, Value) {
    body["placement"] = json!("local");
    call(
        host,
        reqwest::Method::POST,
        "/v1/sessions",
        None,
        Some(body),
    )
    .await
}

fn names(list: &Value) -> Vec<(String, String)> {
    list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_string(),
                s["owner"].as_str().expect("owner").to_string(),
            )
        })
        .collect()
}

/// Whether the cluster's object store still holds the session's checkpoint.
async fn has_checkpoint(nats: &NatsServer, tenant: &str, session: &str) -> bool {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let store = async_nats::jetstream::new(client)
        .get_object_store(claude_code_serve::cluster::TRANSCRIPTS_BUCKET)
        .await
        .expect("bucket");
    let key = claude_code_serve::cluster::owner_key(tenant, session);
    match store.info(key.as_str()).await {
        Ok(info) => !info.deleted,
        Err(_) => false,
    }
}

#[tokio::test]
async fn get_transcript_list_and_delete_through_a_host_that_does_not_own_the_session() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let nats = NatsServer::start();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let data = tempfile::tempdir().expect("data dir");
    let a = host(&env, &nats, "calls-a", dirs[0].path(), None).await;
    let b = host(&env, &nats, "calls-b", dirs[1].path(), None).await;
    assert_eq!(create(&a, json!({"name": "on-a"})).await.0, 201);
    assert_eq!(create(&b, json!({"name": "on-b"})).await.0, 201);
    let (status, reply) = ask(&b, "on-a", "remember the heron").await;
    assert_eq!(status, 200, "{reply}");

    // GET through B is A's own answer, marked with its owner.
    let (status, on_a) = get(&a, "/v1/sessions/on-a").await;
    assert_eq!(status, 200, "{on_a}");
    assert_eq!(
        (on_a["owner"].as_str(), on_a["turns"].as_u64()),
        (Some("calls-a"), Some(1))
    );
    assert_eq!(get(&b, "/v1/sessions/on-a").await, (200, on_a.clone()));
    // The transcript, read from A's CLI config dir (B has none of it).
    let (status, transcript) = get(&b, "/v1/sessions/on-a/transcript").await;
    assert_eq!(status, 200, "{transcript}");
    assert_eq!(
        get(&a, "/v1/sessions/on-a/transcript").await,
        (200, transcript.clone())
    );
    let texts: Vec<&str> = transcript["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        texts
            .iter()
            .filter(|t| t.contains("remember the heron"))
            .count()
            >= 2,
        "the prompt and its echo: {transcript}"
    );
    // A name no member holds is the local 404.
    let (status, body) = get(&b, "/v1/sessions/nowhere").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );

    // The list is the tenant's sessions of every member, each with its owner, by name.
    let want = vec![
        ("on-a".to_string(), "calls-a".to_string()),
        ("on-b".to_string(), "calls-b".to_string()),
    ];
    for h in [&a, &b] {
        let (status, list) = get(h, "/v1/sessions").await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(names(&list), want, "{list}");
        assert!(list.get("unreachable").is_none(), "{list}");
    }
    let (_, list) = get(&b, "/v1/sessions").await;
    assert_eq!(list["sessions"][0], on_a, "A's session as A describes it");

    // Scopes and tenants are the requester's: a host with tokens of its own.
    let c = host(&env, &nats, "calls-c", dirs[2].path(), Some(data.path())).await;
    let token = |tenant: &str, scope| {
        Store::open(data.path())
            .expect("store")
            .create_token(tenant, scope)
            .expect("token")
            .secret
    };
    let (read, write, other) = (
        token("default", Scope::Read),
        token("default", Scope::Write),
        token("other", Scope::Write),
    );
    let path = "/v1/sessions/on-a";
    assert_eq!(
        call(&c, reqwest::Method::GET, path, None, None).await.0,
        401
    );
    assert_eq!(
        call(&c, reqwest::Method::GET, path, Some(&read), None).await,
        (200, on_a)
    );
    let (status, body) = call(&c, reqwest::Method::DELETE, path, Some(&read), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let interrupt = "/v1/sessions/on-a/interrupt";
    let (status, _) = call(&c, reqwest::Method::POST, interrupt, Some(&read), None).await;
    assert_eq!(status, 403);
    // Another tenant does not see the session, routed or not.
    let (status, body) = call(&c, reqwest::Method::GET, path, Some(&other), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, _) = call(&c, reqwest::Method::DELETE, path, Some(&other), None).await;
    assert_eq!(status, 404);
    let (_, list) = call(&c, reqwest::Method::GET, "/v1/sessions", Some(&other), None).await;
    assert_eq!(list["sessions"], json!([]), "{list}");
    assert_eq!(get(&a, path).await.0, 200, "still there");

    // DELETE through C is a local delete on A: the session, its lease and its
    // checkpoint are gone, and the name is free for any member.
    assert!(has_checkpoint(&nats, "default", "on-a").await);
    let (status, body) = call(&c, reqwest::Method::DELETE, path, Some(&write), None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(get(&a, path).await.0, 404);
    assert_eq!(get(&b, path).await.0, 404);
    let watcher =
        claude_code_serve::cluster::Leases::connect(&nats.url(), "watcher", Duration::from_secs(2))
            .await
            .expect("connect");
    assert_eq!(watcher.owner("default", "on-a").await.expect("read"), None);
    assert!(!has_checkpoint(&nats, "default", "on-a").await);
    let (_, list) = get(&a, "/v1/sessions").await;
    assert_eq!(names(&list), want[1..].to_vec(), "{list}");
    assert_eq!(create(&b, json!({"name": "on-a"})).await.0, 201);
    let (_, moved) = get(&a, path).await;
    assert_eq!(moved["owner"], "calls-b", "{moved}");

    c.shutdown().await.expect("c stops");
    b.shutdown().await.expect("b stops");
    // B left gracefully: it handed its sessions (on-a, on-b) over to A, the one member
    // left, which lists them as its own, their turns and cost with them.
    let (status, list) = get(&a, "/v1/sessions").await;
    assert_eq!(status, 200, "{list}");
    let handed =
        [("on-a", "calls-a"), ("on-b", "calls-a")].map(|(n, o)| (n.to_string(), o.to_string()));
    assert_eq!(names(&list), handed, "{list}");
    a.shutdown().await.expect("a stops");
}

#[tokio::test]
async fn an_sse_turn_routed_through_another_host_is_interrupted_through_it() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("after the interrupt"))).await;
    env.mock
        .push(Reply::text("never read").delay(Duration::from_secs(120)));
    let nats = NatsServer::start();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    let a = host(&env, &nats, "intr-a", dirs[0].path(), None).await;
    let b = host(&env, &nats, "intr-b", dirs[1].path(), None).await;
    assert_eq!(create(&a, json!({"name": "slow"})).await.0, 201);
    let url = b.url();
    let started = std::time::Instant::now();
    let turn = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(format!("{url}/v1/sessions/slow/messages"))
            .header("accept", "text/event-stream")
            .json(&json!({"prompt": "take your time"}))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.expect("body"))
    });
    eventually(
        Duration::from_secs(30),
        "the routed turn to reach the API",
        || async {
            if env.mock.turn_requests().is_empty() {
                Err("not yet")
            } else {
                Ok(())
            }
        },
    )
    .await;
    let path = "/v1/sessions/slow/interrupt";
    let (status, body) = call(&b, reqwest::Method::POST, path, None, None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, sse) = tokio::time::timeout(Duration::from_secs(60), turn)
        .await
        .expect("the turn ends well before the 120 s reply")
        .expect("the turn's task");
    let took = started.elapsed();
    assert_eq!(status, 200);
    let last = sse
        .split("\n\n")
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("event: ")))
        .last();
    assert_eq!(last, Some("result"), "{sse}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(!sse.contains("never read"), "{sse}");
    // The session is free again: the next turn through B is answered.
    let (status, reply) = ask(&b, "slow", "are you there?").await;
    assert_eq!(
        (status, reply["text"].as_str()),
        (200, Some("after the interrupt")),
        "{reply}"
    );
    // Interrupting while nothing runs is a 204 too, as on the owner.
    assert_eq!(
        call(&b, reqwest::Method::POST, path, None, None).await.0,
        204
    );
    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}

#[tokio::test]
async fn a_call_whose_owner_does_not_answer_is_a_503_owner_unavailable() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let nats = NatsServer::start();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    // A long lease: the dead owner's lease outlives the test, so nothing takes over.
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(
            env.options()
                .env("CLAUDE_CONFIG_DIR", dirs[0].path().to_string_lossy()),
        )
        .offline(false)
        .cluster(
            ClusterConfig::new(nats.url())
                .node_name("gone-a")
                .heartbeat(Duration::from_millis(500))
                .lease(Duration::from_secs(120)),
        );
    config.spares = 0;
    let a = Host::start(config).await.expect("a starts");
    let b = host(&env, &nats, "gone-b", dirs[1].path(), None).await;
    assert_eq!(create(&a, json!({"name": "orphan"})).await.0, 201);
    assert_eq!(get(&b, "/v1/sessions/orphan").await.0, 200);
    a.abort().await.expect("a stops as a crash would");
    for (method, path) in [
        (reqwest::Method::GET, "/v1/sessions/orphan"),
        (reqwest::Method::GET, "/v1/sessions/orphan/transcript"),
        (reqwest::Method::POST, "/v1/sessions/orphan/interrupt"),
        (reqwest::Method::DELETE, "/v1/sessions/orphan"),
    ] {
        let (status, body) = call(&b, method.clone(), path, None, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("owner_unavailable")),
            "{method} {path}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("gone-a")),
            "{body}"
        );
    }
    // The list still answers: the session is named under `unreachable` (its owner does
    // not answer, and once its heartbeat expired it is not asked any more).
    let list = eventually(
        Duration::from_secs(10),
        "A's heartbeat to expire",
        || async {
            match get(&b, "/v1/sessions").await {
                (200, list) if list.get("unreachable").is_some() => Ok(list),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(list["sessions"], json!([]), "{list}");
    assert_eq!(
        list["unreachable"],
        json!([{"name": "orphan", "owner": "gone-a"}]),
        "{list}"
    );
    b.shutdown().await.expect("b stops");
}

#[tokio::test]
async fn cluster_metrics_count_routed_turns_calls_and_a_failover() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let nats = NatsServer::start();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    let a = host(&env, &nats, "metrics-a", dirs[0].path(), None).await;
    let b = host(&env, &nats, "metrics-b", dirs[1].path(), None).await;
    // Registered at zero when the host joined.
    let text = metrics(&b).await;
    let zero = [
        r#"claude_cluster_failovers_total{node="metrics-b"}"#,
        r#"claude_cluster_lease_lost_total{node="metrics-b"}"#,
        r#"claude_cluster_heartbeat_failures_total{node="metrics-b"}"#,
        r#"claude_cluster_routed_turns_total{node="metrics-b",direction="out",outcome="ok"}"#,
        r#"claude_cluster_routed_calls_total{node="metrics-b",op="get",direction="out",outcome="ok"}"#,
    ];
    for series in zero {
        assert_eq!(sample(&text, series), Some(0.0), "{series}:\n{text}");
    }
    assert_eq!(
        sample(&text, r#"claude_cluster_members{node="metrics-b"}"#),
        Some(2.0)
    );

    assert_eq!(create(&a, json!({"name": "metered"})).await.0, 201);
    assert_eq!(ask(&b, "metered", "one").await.0, 200);
    assert_eq!(ask(&b, "metered", "two").await.0, 200);
    assert_eq!(get(&b, "/v1/sessions/metered").await.0, 200);
    assert_eq!(
        get(&b, "/v1/sessions/nowhere").await.0,
        404,
        "not routed, not counted"
    );
    let text = metrics(&b).await;
    let out = r#"claude_cluster_routed_turns_total{node="metrics-b",direction="out",outcome="ok"}"#;
    assert_eq!(sample(&text, out), Some(2.0), "{text}");
    let inn =
        r#"claude_cluster_routed_turns_total{node="metrics-a",direction="in",outcome="accepted"}"#;
    assert_eq!(sample(&text, inn), Some(2.0), "{text}");
    let get_out = r#"claude_cluster_routed_calls_total{node="metrics-b",op="get",direction="out",outcome="ok"}"#;
    assert_eq!(sample(&text, get_out), Some(1.0), "{text}");
    let get_in = r#"claude_cluster_routed_calls_total{node="metrics-a",op="get",direction="in",outcome="ok"}"#;
    assert_eq!(sample(&text, get_in), Some(1.0), "{text}");
    let rtt = r#"claude_cluster_routed_call_seconds_count{node="metrics-b",op="get"}"#;
    assert_eq!(sample(&text, rtt), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, r#"claude_cluster_sessions_owned{node="metrics-b"}"#),
        Some(0.0)
    );
    let text = metrics(&a).await;
    assert_eq!(
        sample(&text, r#"claude_cluster_sessions_owned{node="metrics-a"}"#),
        Some(1.0),
        "{text}"
    );

    // A dies; B takes its session over: one failover, one member left.
    a.abort().await.expect("a stops");
    let text = eventually(
        Duration::from_secs(15),
        "B to take the session over",
        || async {
            // The membership gauge is refreshed at the scrape, bounded at 2 s: under load
            // one scrape may still hold the last figure, so both are waited for.
            let text = metrics(&b).await;
            match (
                sample(&text, r#"claude_cluster_failovers_total{node="metrics-b"}"#),
                sample(&text, r#"claude_cluster_members{node="metrics-b"}"#),
            ) {
                (Some(n), Some(m)) if n >= 1.0 && m == 1.0 => Ok(text),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(
        sample(&text, r#"claude_cluster_failovers_total{node="metrics-b"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"claude_cluster_members{node="metrics-b"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"claude_cluster_sessions_owned{node="metrics-b"}"#),
        Some(1.0),
        "{text}"
    );
    // Served locally now: not routed.
    assert_eq!(ask(&b, "metered", "three").await.0, 200);
    let text = metrics(&b).await;
    assert_eq!(sample(&text, out), Some(2.0), "{text}");
    b.shutdown().await.expect("b stops");
}

#[tokio::test]
async fn a_sessions_spend_and_budget_carry_over_to_its_new_owner() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("ok").usage(1000, 1000))).await;
    let nats = NatsServer::start();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    let a = host(&env, &nats, "spend-a", dirs[0].path(), None).await;
    let b = host(&env, &nats, "spend-b", dirs[1].path(), None).await;
    // Within budget for one turn: the budget is checked before each API request, so the
    // first turn runs and spends past it.
    let (status, body) = create(&a, json!({"name": "thrifty", "budget_usd": 0.000_001})).await;
    assert_eq!(status, 201, "{body}");
    let (status, first) = ask(&b, "thrifty", "spend a little").await;
    assert_eq!(status, 200, "{first}");
    let spent = first["cost_usd"].as_f64().expect("cost");
    assert!(spent > 0.000_001, "{first}");
    let (_, before) = get(&a, "/v1/sessions/thrifty").await;
    assert_eq!(before["cost_usd"].as_f64(), Some(spent), "{before}");

    // A dies; B takes it over.
    a.abort().await.expect("a stops");
    let watcher =
        claude_code_serve::cluster::Leases::connect(&nats.url(), "watcher", Duration::from_secs(2))
            .await
            .expect("connect");
    eventually(
        Duration::from_secs(15),
        "B to claim the session",
        || async {
            match watcher.owner("default", "thrifty").await {
                Ok(Some(l)) if l.owner == "spend-b" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let (status, after) = eventually(Duration::from_secs(10), "B to hold the session", || async {
        match get(&b, "/v1/sessions/thrifty").await {
            (200, s) if s["owner"] == "spend-b" => Ok((200, s)),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(status, 200);
    // The spend came along: B reports A's turn and cost.
    assert_eq!(after["cost_usd"].as_f64(), Some(spent), "{after}");
    assert_eq!(after["turns"], 1, "{after}");
    // And the budget counts it: the next turn is refused as it would have been on A,
    // before anything reaches the API.
    let requests = env.mock.turn_requests().len();
    let (status, refused) = ask(&b, "thrifty", "spend more").await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (402, Some("session_budget_exceeded")),
        "{refused}"
    );
    assert_eq!(
        env.mock.turn_requests().len(),
        requests,
        "nothing forwarded"
    );
    let (_, last) = get(&b, "/v1/sessions/thrifty").await;
    assert_eq!(last["cost_usd"].as_f64(), Some(spent), "{last}");
    b.shutdown().await.expect("b stops");
}
