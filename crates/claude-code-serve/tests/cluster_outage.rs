//! When the cluster's NATS server itself fails: in-process hosts over a real nats-server
//! with JetStream that the tests kill with SIGKILL and restart on the same port with the
//! same store. Everything that needs NATS fails closed, fast and typed while it is down
//! (503 `cluster_unavailable`, or `lease_unconfirmed` for a session whose lease ran out
//! unrenewed); once it is back, the hosts re-confirm their heartbeats and leases and serve
//! their sessions again in place (same CLI, same conversation), and no host takes over a
//! session whose owner was only cut off by the same outage. The real CLI runs against the
//! project's mock API.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use claude_code_serve::{
    cluster::{ClusterConfig, Leases},
    Host, HostConfig, PoolConfig,
};
use claude_code_tests::{eventually, NatsServer, Reply, Script, TestEnv};
use serde_json::{json, Value};

mod support;
use support::{ask, ask_sse, call, get, metric, sse_events};

/// A clustered host: heartbeat `beat`, leases of 2 s, a pool `work` of one member (pool
/// jobs redelivered after 2 s), reaching NATS at `url`.
async fn host(env: &TestEnv, url: &str, node: &str, beat: Duration) -> Host {
    host_with(env, url, node, beat, 1).await
}

/// [`host`] with a pool of `size` members.
async fn host_with(env: &TestEnv, url: &str, node: &str, beat: Duration, size: usize) -> Host {
    let mut pool = PoolConfig::new("work", env.options(), size);
    pool.queue_timeout = Duration::from_secs(30);
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .pool(pool)
        .drain_timeout(Duration::from_secs(5))
        .cluster(
            ClusterConfig::new(url)
                .node_name(node)
                .heartbeat(beat)
                .lease(Duration::from_secs(2))
                .pool_ack_wait(Duration::from_secs(2)),
        );
    config.spares = 0;
    Host::start(config).await.expect("host starts")
}

/// An SSE pool job: its status and `(event, data)` pairs.
async fn pool_sse(url: String, prompt: &str) -> (u16, Vec<(String, Value)>) {
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/pools/work/messages"))
        .header("accept", "text/event-stream")
        .json(&json!({ "prompt": prompt }))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, sse_events(&text))
}

async fn create(host: &Host, name: &str) -> (u16, Value) {
    let url = format!("{}/v1/sessions", host.url());
    let body = json!({ "name": name, "placement": "local" });
    call(reqwest::Method::POST, url, Some(body)).await
}

async fn job(host: &Host, prompt: &str) -> (u16, Value) {
    let url = format!("{}/v1/pools/work/messages", host.url());
    call(
        reqwest::Method::POST,
        url,
        Some(json!({ "prompt": prompt })),
    )
    .await
}

/// Asserts a typed 503 with `code`, answered within `bound` of `started`.
fn fast_503(what: &str, got: &(u16, Value), code: &str, started: Instant, bound: Duration) {
    let took = started.elapsed();
    assert_eq!(got.0, 503, "{what}: {}", got.1);
    assert_eq!(got.1["code"], code, "{what}: {}", got.1);
    assert!(took < bound, "{what} took {took:?} (bound {bound:?})");
}

/// The mock's turn requests whose last user text is `prompt`.
fn runs_of(env: &TestEnv, prompt: &str) -> usize {
    env.mock
        .turn_requests()
        .iter()
        .filter(|r| r.last_user_text().is_some_and(|t| t.contains(prompt)))
        .count()
}

#[tokio::test]
async fn while_nats_is_down_everything_fails_closed_fast_and_afterwards_recovers_in_place() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let mut nats = NatsServer::start();
    let beat = Duration::from_millis(500);
    let a = host(&env, &nats.url(), "down-a", beat).await;
    let b = host(&env, &nats.url(), "down-b", beat).await;
    assert_eq!(create(&a, "kept").await.0, 201);
    let (status, first) = ask(&b, "kept", "the word is zebra").await;
    assert_eq!(status, 200, "{first}");
    let (_, before) = get(&a, "/v1/sessions/kept").await;
    let pid = before["pid"].as_u64().expect("a live CLI");
    let (status, ready) = get(&a, "/readyz").await;
    assert_eq!(
        (status, &ready["nats"]),
        (200, &json!("connected")),
        "{ready}"
    );
    assert_eq!(
        metric(&a, "claude_cluster_connected{node=\"down-a\"}").await,
        Some(1.0)
    );

    nats.kill();
    let killed = Instant::now();
    let fast = Duration::from_secs(1);
    // The connection's loss is seen within the link's poll (50 ms).
    eventually(Duration::from_secs(5), "A to see NATS gone", || async {
        match get(&a, "/v1/cluster").await {
            (200, v) if v["nats"] == "disconnected" => Ok(v),
            other => Err(other),
        }
    })
    .await;
    let seen = killed.elapsed();

    // Routed turns (JSON, SSE), calls and the list through B: 503 at once.
    let t = Instant::now();
    fast_503(
        "routed JSON turn",
        &ask(&b, "kept", "lost?").await,
        "cluster_unavailable",
        t,
        fast,
    );
    let t = Instant::now();
    let (status, events) = ask_sse(&b.url(), "kept", "lost?").await;
    assert_eq!(status, 503, "{events:?}");
    assert_eq!(events[0].1["code"], "cluster_unavailable", "{events:?}");
    assert!(t.elapsed() < fast, "routed SSE turn took {:?}", t.elapsed());
    for path in [
        "/v1/sessions/kept",
        "/v1/sessions/kept/transcript",
        "/v1/sessions",
    ] {
        let t = Instant::now();
        fast_503(path, &get(&b, path).await, "cluster_unavailable", t, fast);
    }
    // Creation: its lease cannot be claimed, so no session (on either host).
    for h in [&a, &b] {
        let t = Instant::now();
        fast_503(
            "create",
            &create(h, "during").await,
            "cluster_unavailable",
            t,
            fast,
        );
    }
    // A delete could not release the lease and checkpoint: refused before anything stops.
    let t = Instant::now();
    let url = format!("{}/v1/sessions/kept", a.url());
    let deleted = call(reqwest::Method::DELETE, url, None).await;
    fast_503(
        "delete on the owner",
        &deleted,
        "cluster_unavailable",
        t,
        fast,
    );
    // Pool jobs: no cluster queue, no job.
    let t = Instant::now();
    fast_503(
        "pool job",
        &job(&b, "queued?").await,
        "cluster_unavailable",
        t,
        fast,
    );
    // Readiness says so without taking the host out of rotation (every member lost NATS
    // at once); liveness is untouched.
    let (status, ready) = get(&a, "/readyz").await;
    assert_eq!(
        (status, &ready["nats"]),
        (200, &json!("disconnected")),
        "{ready}"
    );
    assert_eq!(get(&a, "/healthz").await.0, 200);
    assert_eq!(
        metric(&a, "claude_cluster_connected{node=\"down-a\"}").await,
        Some(0.0)
    );

    // The owner serves its session while its lease surely holds, then fails closed.
    let unconfirmed = eventually(
        Duration::from_secs(5),
        "A to stop serving its unrenewed session",
        || async {
            match ask(&a, "kept", "still here?").await {
                (503, e) if e["code"] == "lease_unconfirmed" => Ok(killed.elapsed()),
                other => Err(other),
            }
        },
    )
    .await;
    assert!(
        unconfirmed < Duration::from_millis(2000 + 1500),
        "lease_unconfirmed within the lease (2 s, + slack): {unconfirmed:?}"
    );
    let t = Instant::now();
    fast_503(
        "GET on the owner",
        &get(&a, "/v1/sessions/kept").await,
        "lease_unconfirmed",
        t,
        fast,
    );

    // An outage longer than the lease and the heartbeat TTL: when NATS is back every
    // heartbeat has expired and every lease has run out.
    tokio::time::sleep_until((killed + Duration::from_millis(3500)).into()).await;
    nats.restart();
    let back = Instant::now();
    let (status, reply) = eventually(
        Duration::from_secs(10),
        "A to serve its session again",
        || async {
            match ask(&a, "kept", "what was the word?").await {
                (200, r) => Ok((200, r)),
                other => Err(other),
            }
        },
    )
    .await;
    let served_again = back.elapsed();
    assert_eq!(status, 200);
    assert_eq!(reply["session_id"], first["session_id"], "{reply}");
    let texts = env
        .mock
        .turn_requests()
        .last()
        .expect("a turn")
        .user_texts();
    assert!(
        texts.iter().any(|t| t.contains("the word is zebra")),
        "the same conversation: {texts:?}"
    );
    // Through B too; the same CLI process, never restarted; A still owns it.
    let (status, routed) = eventually(Duration::from_secs(10), "B to route again", || async {
        match ask(&b, "kept", "through b again").await {
            (200, r) => Ok((200, r)),
            other => Err(other),
        }
    })
    .await;
    assert_eq!((status, &routed["session_id"]), (200, &first["session_id"]));
    let (_, after) = get(&a, "/v1/sessions/kept").await;
    assert_eq!(after["pid"].as_u64(), Some(pid), "{after}");
    assert_eq!(after["restarts"], 0, "{after}");
    assert_eq!(after["owner"], "down-a", "{after}");
    let watcher = Leases::connect(&nats.url(), "watcher", Duration::from_secs(2))
        .await
        .expect("connect");
    assert_eq!(
        watcher
            .owner("default", "kept")
            .await
            .expect("read")
            .map(|l| l.owner)
            .as_deref(),
        Some("down-a")
    );
    assert_eq!(
        watcher.owner("default", "during").await.expect("read"),
        None
    );
    assert_eq!(get(&a, "/v1/sessions/during").await.0, 404);
    assert_eq!(
        metric(&b, "claude_cluster_failovers_total{node=\"down-b\"}").await,
        Some(0.0),
        "B took nothing over"
    );
    // Heartbeats, readiness, pool jobs and creation work again.
    eventually(
        Duration::from_secs(5),
        "both members listed again",
        || async {
            match get(&b, "/v1/cluster").await {
                (200, v)
                    if v["nats"] == "connected"
                        && v["members"].as_array().map(Vec::len) == Some(2) =>
                {
                    Ok(())
                }
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(get(&a, "/readyz").await.0, 200);
    assert_eq!(
        metric(&a, "claude_cluster_connected{node=\"down-a\"}").await,
        Some(1.0)
    );
    let (status, answer) = job(&b, "pool after the outage").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(create(&b, "after").await.0, 201);
    eprintln!(
        "outage: loss seen after {seen:?}; lease_unconfirmed {unconfirmed:?} after the kill (lease 2 s); NATS back -> session served again in place after {served_again:?}"
    );
    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}

/// A TCP relay in front of the NATS server for one host: while closed, it drops every
/// new connection at once (the host keeps retrying), as a host that reconnects late.
struct Gate {
    port: u16,
    open: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    async fn new(upstream: u16) -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open = Arc::new(AtomicBool::new(true));
        let gate = open.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !gate.load(Ordering::SeqCst) {
                    continue; // dropped: the host's connection attempt fails
                }
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Gate { port, open, task }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn after_an_outage_the_first_host_back_does_not_take_over_a_session_whose_owner_reconnects_later(
) {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let mut nats = NatsServer::start();
    // Heartbeat 1 s: TTL 3 s; the grace after a reconnection is TTL + 1 s = 4 s.
    let beat = Duration::from_secs(1);
    let gate = Gate::new(nats.port()).await;
    let a = host(&env, &gate.url(), "late-a", beat).await;
    let b = host(&env, &nats.url(), "late-b", beat).await;
    assert_eq!(create(&a, "kept").await.0, 201);
    let (status, first) = ask(&b, "kept", "the word is heron").await;
    assert_eq!(status, 200, "{first}");

    nats.kill();
    let killed = Instant::now();
    // Past the lease (2 s) and the heartbeat TTL (3 s): every member key and lease is
    // gone or expired when NATS comes back.
    tokio::time::sleep_until((killed + Duration::from_millis(3500)).into()).await;
    gate.open.store(false, Ordering::SeqCst);
    nats.restart();
    let back = Instant::now();
    // B is back at once and scans every second; A stays away for 2 s more. B sees A's
    // lease expired and A's heartbeat gone the whole time, yet must not take it over.
    eventually(Duration::from_secs(5), "B to reconnect", || async {
        match get(&b, "/v1/cluster").await {
            (200, v) if v["nats"] == "connected" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let watcher = Leases::connect(&nats.url(), "watcher", Duration::from_secs(2))
        .await
        .expect("connect");
    let lease = watcher
        .owner("default", "kept")
        .await
        .expect("read")
        .expect("the lease");
    assert_eq!(lease.owner, "late-a");
    assert!(
        lease.expired_at(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_millis() as u64
        ),
        "the owner's lease ran out during the outage"
    );
    // A message for the session through B while its owner is away: refused, typed; it
    // does not make B take the session over either.
    let refused = ask(&b, "kept", "through b while a is away").await;
    assert_eq!(refused.0, 503, "{}", refused.1);
    assert!(
        [
            "cluster_unavailable",
            "owner_unavailable",
            "lease_unconfirmed"
        ]
        .contains(&refused.1["code"].as_str().unwrap_or_default()),
        "{}",
        refused.1
    );
    tokio::time::sleep_until((back + Duration::from_secs(2)).into()).await;
    gate.open.store(true, Ordering::SeqCst);
    // A reconnects (within its 1 s back-off), renews its heartbeat and lease, and serves
    // its session again, in place.
    let (status, reply) = eventually(
        Duration::from_secs(10),
        "A to serve its session again",
        || async {
            match ask(&a, "kept", "what was the word?").await {
                (200, r) => Ok((200, r)),
                other => Err(other),
            }
        },
    )
    .await;
    let a_back = back.elapsed();
    assert_eq!((status, &reply["session_id"]), (200, &first["session_id"]));
    let texts = env
        .mock
        .turn_requests()
        .last()
        .expect("a turn")
        .user_texts();
    assert!(
        texts.iter().any(|t| t.contains("the word is heron")),
        "{texts:?}"
    );
    // B never claimed it: A's lease, no failover on B, and B's routed turn reaches A.
    assert_eq!(
        watcher
            .owner("default", "kept")
            .await
            .expect("read")
            .map(|l| l.owner)
            .as_deref(),
        Some("late-a")
    );
    assert_eq!(
        metric(&b, "claude_cluster_failovers_total{node=\"late-b\"}").await,
        Some(0.0)
    );
    let (status, routed) = ask(&b, "kept", "through b").await;
    assert_eq!(
        (status, &routed["session_id"]),
        (200, &first["session_id"]),
        "{routed}"
    );
    assert_eq!(get(&b, "/v1/sessions/kept").await.1["owner"], "late-a");
    eprintln!("late owner: A served its session again {a_back:?} after NATS came back (A kept away for 2 s; grace 4 s)");
    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}

#[tokio::test]
async fn a_routed_turn_in_flight_when_nats_dies_fails_typed_at_once_and_is_not_replayed() {
    let env =
        TestEnv::new(Script::new().fallback(Reply::echo().delay(Duration::from_secs(3)))).await;
    let mut nats = NatsServer::start();
    let beat = Duration::from_millis(500);
    let a = host(&env, &nats.url(), "flight-a", beat).await;
    let b = host(&env, &nats.url(), "flight-b", beat).await;
    for name in ["sse", "json"] {
        assert_eq!(create(&a, name).await.0, 201);
    }
    let burl_sse = b.url();
    let sse = tokio::spawn(async move { ask_sse(&burl_sse, "sse", "streamed in flight").await });
    let burl = b.url();
    let json_turn = tokio::spawn(async move {
        let url = format!("{burl}/v1/sessions/json/messages");
        call(
            reqwest::Method::POST,
            url,
            Some(json!({"prompt": "json in flight"})),
        )
        .await
    });
    // Both turns reached the model through their owner.
    eventually(
        Duration::from_secs(20),
        "both turns to be running",
        || async {
            match (
                runs_of(&env, "streamed in flight"),
                runs_of(&env, "json in flight"),
            ) {
                (1, 1) => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    nats.kill();
    let killed = Instant::now();
    let (status, events) = sse.await.expect("sse");
    let sse_failed = killed.elapsed();
    assert_eq!(status, 200, "the stream had begun");
    let (event, data) = events.last().expect("events");
    assert_eq!(
        (event.as_str(), &data["code"]),
        ("error", &json!("cluster_unavailable")),
        "{events:?}"
    );
    assert!(!events.iter().any(|(e, _)| e == "result"), "{events:?}");
    let (status, body) = json_turn.await.expect("json");
    let json_failed = killed.elapsed();
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("cluster_unavailable")),
        "{body}"
    );
    assert!(
        sse_failed < Duration::from_secs(1),
        "SSE failed after {sse_failed:?}"
    );
    assert!(
        json_failed < Duration::from_secs(1),
        "JSON failed after {json_failed:?}"
    );

    // NATS back: the sessions answer again, and neither lost turn was run again.
    nats.restart();
    let (status, reply) = eventually(Duration::from_secs(20), "B to route again", || async {
        match ask(&b, "sse", "after").await {
            (200, r) => Ok((200, r)),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(runs_of(&env, "streamed in flight"), 1);
    assert_eq!(runs_of(&env, "json in flight"), 1);
    eprintln!("in flight: SSE failed {sse_failed:?} and JSON {json_failed:?} after the kill");
    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}

#[tokio::test]
async fn a_pool_job_in_flight_when_nats_dies_is_answered_once_typed_and_not_run_again() {
    let env =
        TestEnv::new(Script::new().fallback(Reply::echo().delay(Duration::from_millis(1500))))
            .await;
    let mut nats = NatsServer::start();
    let a = host_with(&env, &nats.url(), "job-a", Duration::from_millis(500), 2).await;
    let (status, warm) = job(&a, "warm up").await;
    assert_eq!(status, 200, "{warm}");
    // A streamed job beside the JSON one.
    let streamed = tokio::spawn(pool_sse(a.url(), "streamed pool job"));
    let url = a.url();
    let in_flight = tokio::spawn(async move {
        let url = format!("{url}/v1/pools/work/messages");
        call(
            reqwest::Method::POST,
            url,
            Some(json!({"prompt": "job in flight"})),
        )
        .await
    });
    eventually(
        Duration::from_secs(20),
        "both jobs to be running",
        || async {
            match (
                runs_of(&env, "job in flight"),
                runs_of(&env, "streamed pool job"),
            ) {
                (1, 1) => Ok(()),
                other => Err(other),
            }
        },
    )
    .await;
    nats.kill();
    let killed = Instant::now();
    let (status, events) = streamed.await.expect("sse job");
    let sse_failed = killed.elapsed();
    assert_eq!(status, 200, "the stream had begun: {events:?}");
    let (event, data) = events.last().expect("events");
    assert_eq!(
        (event.as_str(), &data["code"]),
        ("error", &json!("cluster_unavailable")),
        "{events:?}"
    );
    assert!(!events.iter().any(|(e, _)| e == "result"), "{events:?}");
    assert!(
        sse_failed < Duration::from_secs(1),
        "SSE job failed after {sse_failed:?}"
    );
    let (status, body) = in_flight.await.expect("job");
    let failed = killed.elapsed();
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("cluster_unavailable")),
        "{body}"
    );
    // The outage wait (2 s) and a heartbeat's tick.
    assert!(
        failed < Duration::from_millis(3500),
        "answered after {failed:?}"
    );
    let t = Instant::now();
    fast_503(
        "new job",
        &job(&a, "new while down").await,
        "cluster_unavailable",
        t,
        Duration::from_secs(1),
    );

    nats.restart();
    let (status, answer) = eventually(
        Duration::from_secs(20),
        "the pool to work again",
        || async {
            match job(&a, "job after").await {
                (200, r) => Ok((200, r)),
                other => Err(other),
            }
        },
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        answer["text"]
            .as_str()
            .is_some_and(|t| t.contains("job after")),
        "{answer}"
    );
    // The job that ran during the outage had its reply stored and was acknowledged once
    // NATS was back: after more than its ack wait (2 s) it was not run a second time.
    let settled = Instant::now() + Duration::from_secs(5);
    while Instant::now() < settled {
        assert_eq!(runs_of(&env, "job in flight"), 1, "run once");
        assert_eq!(runs_of(&env, "streamed pool job"), 1, "never replayed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        runs_of(&env, "new while down"),
        0,
        "a refused job never runs"
    );
    eprintln!("pool: the JSON job in flight was answered 503 {failed:?} after the kill, the SSE job's stream ended {sse_failed:?} after it");
    a.shutdown().await.expect("a stops");
}

#[tokio::test]
async fn shutdown_and_startup_while_nats_is_down_are_bounded() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let mut nats = NatsServer::start();
    let a = host(&env, &nats.url(), "stop-a", Duration::from_millis(500)).await;
    assert_eq!(create(&a, "kept").await.0, 201);
    assert_eq!(ask(&a, "kept", "hello").await.0, 200);
    let url = nats.url();
    nats.kill();
    eventually(Duration::from_secs(5), "A to see NATS gone", || async {
        match get(&a, "/readyz").await {
            (200, ready) if ready["nats"] == "disconnected" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    // Nothing to hand over to, nobody to tell: the host drains and stops within its drain
    // timeout (5 s).
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), a.shutdown())
        .await
        .expect("shutdown is bounded")
        .expect("a stops");
    let stopped = t.elapsed();
    assert!(
        stopped < Duration::from_secs(5),
        "stopped after {stopped:?}"
    );
    env.assert_no_leftovers().await;

    // A host cannot join a cluster whose NATS server is down: refused, typed, quickly.
    let t = Instant::now();
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .cluster(ClusterConfig::new(url).node_name("stop-b"));
    config.spares = 0;
    let refused = tokio::time::timeout(Duration::from_secs(15), Host::start(config))
        .await
        .expect("start is bounded");
    let took = t.elapsed();
    let err = match refused {
        Ok(_) => panic!("a host joined a cluster whose NATS server is down"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("cannot connect to the cluster's NATS server"),
        "{err}"
    );
    assert!(took < Duration::from_secs(6), "refused after {took:?}");
    env.assert_no_leftovers().await;
    eprintln!("down: shutdown took {stopped:?}, a refused start {took:?}");
}

#[tokio::test]
async fn a_turn_answered_during_an_outage_is_checkpointed_once_nats_is_back_and_survives_a_later_failover(
) {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let mut nats = NatsServer::start();
    let beat = Duration::from_millis(500);
    let a = host(&env, &nats.url(), "kept-a", beat).await;
    let b = host(&env, &nats.url(), "kept-b", beat).await;
    assert_eq!(create(&a, "kept").await.0, 201);
    assert_eq!(ask(&a, "kept", "the first word is otter").await.0, 200);

    nats.kill();
    // Within its lease the owner still answers (it surely owns the session); the turn's
    // checkpoint cannot be stored now.
    let (status, during) = ask(&a, "kept", "the word during the outage is lynx").await;
    assert_eq!(status, 200, "{during}");
    nats.restart();
    // No turn since: A stores that turn's checkpoint on its own once NATS is back.
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    eventually(
        Duration::from_secs(10),
        "the outage's turn in A's checkpoint",
        || async {
            use tokio::io::AsyncReadExt;
            // Each look is bounded: an object whose chunks the killed server lost would
            // otherwise keep one read waiting for ever.
            let look = async {
                let store = js
                    .get_object_store("claude_transcripts")
                    .await
                    .map_err(|e| e.to_string())?;
                let mut object = store.get("default.kept").await.map_err(|e| e.to_string())?;
                let mut text = String::new();
                object
                    .read_to_string(&mut text)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(text)
            };
            match tokio::time::timeout(Duration::from_secs(2), look).await {
                Ok(Ok(text)) if text.contains("lynx") => Ok(()),
                Ok(Ok(_)) => Err("not yet".to_string()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err("reading the checkpoint took over 2 s".to_string()),
            }
        },
    )
    .await;
    // A crashes after NATS is back: B takes the session over from A's checkpoint, which
    // must hold the turn answered during the outage.
    a.abort().await.expect("a stops");
    let crashed = Instant::now();
    let (status, reply) = eventually(
        Duration::from_secs(20),
        "B to take the session over and answer",
        || async {
            match ask(&b, "kept", "what was the word during the outage?").await {
                (200, r) => Ok((200, r)),
                other => Err(other),
            }
        },
    )
    .await;
    let failed_over = crashed.elapsed();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["session_id"], during["session_id"], "{reply}");
    let texts = env
        .mock
        .turn_requests()
        .last()
        .expect("a turn")
        .user_texts();
    assert!(
        texts.iter().any(|t| t.contains("lynx")) && texts.iter().any(|t| t.contains("otter")),
        "the conversation, the outage's turn included: {texts:?}"
    );
    assert_eq!(get(&b, "/v1/sessions/kept").await.1["owner"], "kept-b");
    eprintln!("after the outage: crash -> B answered the session in {failed_over:?}");
    b.shutdown().await.expect("b stops");
}

#[tokio::test]
async fn leases_after_a_restart_of_nats_a_lost_revision_is_retaken_and_others_wait_out_the_grace() {
    use claude_code_serve::cluster::{Claim, ClusterError};
    let mut nats = NatsServer::start();
    // Leases::connect watches its connection with a grace of one lease (1 s here).
    let lease = Duration::from_secs(1);
    let a = Leases::connect(&nats.url(), "node-a", lease)
        .await
        .expect("a");
    let a_again = Leases::connect(&nats.url(), "node-a", lease)
        .await
        .expect("a'");
    let b = Leases::connect(&nats.url(), "node-b", lease)
        .await
        .expect("b");
    assert_eq!(a.claim("acme", "s1").await.expect("claim"), Claim::Won);
    // A write of A's whose answer A never saw (lost with the connection, or a server
    // killed before it stored A's last write): the lease still names A at a revision A
    // does not know. A's renewal re-takes it instead of calling it lost.
    assert_eq!(
        a_again.claim("acme", "s1").await.expect("claim"),
        Claim::Won
    );
    a.renew("acme", "s1").await.expect("A renews its own lease");
    let key = claude_code_serve::cluster::owner_key("acme", "s1");
    assert!(a.holds(&key) && !a.lost(&key) && !a.unconfirmed(&key));

    // NATS down past the lease: every operation fails at once, typed.
    nats.kill();
    let t = Instant::now();
    let down = eventually(Duration::from_secs(2), "B to see NATS gone", || async {
        match b.owner("acme", "s1").await {
            Err(e @ ClusterError::Unreachable { .. }) => Ok(e),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(down.to_string().contains("unreachable"), "{down}");
    eventually(Duration::from_secs(3), "A's lease to run out", || async {
        if a.unconfirmed(&key) {
            Ok(())
        } else {
            Err("confirmed")
        }
    })
    .await;
    nats.restart();
    // B is back first: A's lease has expired, but B may not take it over within its
    // grace (A may still be reconnecting).
    let unsettled = eventually(Duration::from_secs(5), "B to reach NATS again", || async {
        match b.claim("acme", "s1").await {
            Err(e @ ClusterError::Unsettled { .. }) => Ok(e),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(unsettled.to_string().contains("node-a"), "{unsettled}");
    // A renews (the revision it wrote last is still the lease's): confirmed again, and B
    // then finds it held.
    eventually(Duration::from_secs(5), "A to renew", || async {
        a.renew("acme", "s1").await.map_err(|e| e.to_string())
    })
    .await;
    assert!(!a.unconfirmed(&key));
    let held = eventually(Duration::from_secs(5), "B to see A's lease", || async {
        match b.claim("acme", "s1").await {
            Ok(Claim::Held(l)) => Ok(l),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(held.owner, "node-a");
}
