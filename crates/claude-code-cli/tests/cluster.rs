//! `claude-code serve --cluster` as separate processes (each with its own data dir,
//! config dir and `claude-code.toml`) over a real nats-server with JetStream on loopback:
//! they see each other in `GET /v1/cluster`; a session made on one answers through another; a host killed with `kill -9` drops out after
//! the heartbeat TTL; a host stopped with SIGTERM leaves at once; a host frozen past its
//! lease (SIGSTOP) loses its session to another host and, thawed, refuses to serve it.

mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use claude_code_tests::{eventually, NatsServer, Netns};
use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// One `claude-code serve` process in the cluster.
struct Node {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

async fn node(env: &TestEnv, nats: &NatsServer, name: &str, lease_secs: u64) -> Node {
    node_with(env, &nats.url(), name, lease_secs, None).await
}

/// A node joining the NATS server at `nats`, run inside `netns` when given (its URL is
/// then inside that namespace: reach it through [`Netns::forward`]).
async fn node_with(
    env: &TestEnv,
    nats: &str,
    name: &str,
    lease_secs: u64,
    netns: Option<&Netns>,
) -> Node {
    let dir = tempfile::tempdir().expect("node dir");
    let config = dir.path().join("claude-code.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nspares = 0\n\n[cluster]\nurl = \"{nats}\"\nheartbeat_secs = 1\nlease_secs = {lease_secs}\n"
        ),
    )
    .expect("write config");
    let program = match netns {
        Some(ns) => ns.command(binary()),
        None => tokio::process::Command::new(binary()),
    };
    let mut cmd = scrubbed(program, dir.path());
    cmd.env("CLAUDE_CONFIG_DIR", dir.path().join("claude-config"))
        .env("CLAUDE_CODE_CLI", real_cli())
        .env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .env("CLAUDE_RS_TEST_MARKER", &env.marker)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0", "--node-name", name])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (_, url) = serve_url(&mut lines).await;
    let joined = lines.next_line().await.expect("read").expect("a line");
    assert_eq!(joined, format!("cluster: joined as {name}"));
    // Keep reading stdout so that the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Node {
        child,
        url,
        _dir: dir,
    }
}

async fn members(url: &str) -> Vec<String> {
    let view: Value = reqwest::get(format!("{url}/v1/cluster"))
        .await
        .expect("GET /v1/cluster")
        .json()
        .await
        .expect("json");
    view["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members in {view}"))
        .iter()
        .map(|m| m["node"].as_str().expect("node").to_string())
        .collect()
}

fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}

#[tokio::test]
async fn separate_hosts_join_a_killed_one_expires_after_the_ttl_a_stopped_one_leaves_at_once() {
    let env = TestEnv::new(Script::new()).await;
    let nats = NatsServer::start();
    let mut a = node(&env, &nats, "node-a", 15).await;
    let b = node(&env, &nats, "node-b", 15).await;
    let mut c = node(&env, &nats, "node-c", 15).await;
    for n in [&a, &b, &c] {
        assert_eq!(members(&n.url).await, ["node-a", "node-b", "node-c"]);
    }

    // A session made on A answers through B (the built-in mock echoes the prompt).
    let client = reqwest::Client::new();
    assert_eq!(create_session(&client, &a.url, "routed").await, 201);
    let reply = post_json(
        &client,
        &format!("{}/v1/sessions/routed/messages", b.url),
        json!({"prompt": "hello via b"}),
    )
    .await;
    assert!(
        reply["text"]
            .as_str()
            .is_some_and(|t| t.contains("hello via b")),
        "{reply}"
    );

    // kill -9: no goodbye; the others drop it once its last heartbeat is older than the
    // TTL (three heartbeats of 1 s).
    signal(&c.child, "-KILL");
    let killed = Instant::now();
    let _ = c.child.wait().await;
    eventually(Duration::from_secs(15), "node-c expires", || async {
        let seen = members(&a.url).await;
        if seen == ["node-a", "node-b"] {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
    let expired = killed.elapsed();
    assert!(
        expired <= Duration::from_secs(3 + 3),
        "gone {expired:?} after the kill, TTL 3 s"
    );

    // SIGTERM: it deletes its member key before it exits: gone at once.
    let status = sigterm_and_wait(&mut a.child).await;
    assert!(status.success(), "{status:?}");
    assert_eq!(members(&b.url).await, ["node-b"]);
    drop(b);
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_frozen_owner_loses_its_session_to_another_host_and_then_refuses_to_serve_it() {
    let env = TestEnv::new(Script::new()).await;
    let nats = NatsServer::start();
    let mut a = node(&env, &nats, "node-a", 2).await;
    let b = node(&env, &nats, "node-b", 2).await;
    let client = reqwest::Client::new();
    let create = |url: String| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{url}/v1/sessions"))
                .json(&json!({"name": "s1"}))
                .send()
                .await
                .expect("create");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    assert_eq!(create(a.url.clone()).await.0, 201);
    let (status, body) = create(b.url.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("owned_elsewhere"))
    );

    // A freezes (as in a partition): it renews nothing; after the 2 s lease B takes s1.
    signal(&a.child, "-STOP");
    // (B either makes s1 anew or takes A's over by failover, whichever comes first.)
    eventually(Duration::from_secs(15), "B claims s1", || async {
        match create(b.url.clone()).await {
            (201, _) => Ok(()),
            (409, body) if body["code"] == "name_taken" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    signal(&a.child, "-CONT");
    // A's next renewal finds the lease taken: it refuses turns on s1.
    let turn = || async {
        let r = client
            .post(format!("{}/v1/sessions/s1/messages", a.url))
            .json(&json!({"prompt": "still mine?"}))
            .send()
            .await
            .expect("turn");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.expect("json"))
    };
    let refused = eventually(Duration::from_secs(10), "A refuses s1", || async {
        match turn().await {
            (409, body) => Ok(body),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(refused["code"], "lease_lost", "{refused}");
    // A is a member again (its heartbeat came back), and s1 is B's.
    eventually(Duration::from_secs(10), "A heartbeats again", || async {
        let seen = members(&b.url).await;
        if seen == ["node-a", "node-b"] {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
    let status = sigterm_and_wait(&mut a.child).await;
    assert!(status.success(), "{status:?}");
    drop(b);
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_session_on_a_host_killed_with_sigkill_resumes_its_conversation_through_another() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let nats = NatsServer::start();
    let mut a = node(&env, &nats, "node-a", 2).await;
    let b = node(&env, &nats, "node-b", 2).await;
    let c = node(&env, &nats, "node-c", 2).await;
    let client = reqwest::Client::new();
    assert_eq!(create_session(&client, &a.url, "kept").await, 201);
    let turn = |url: String, prompt: &'static str| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{url}/v1/sessions/kept/messages"))
                .json(&json!({ "prompt": prompt }))
                .send()
                .await
                .expect("turn");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let (status, first) = turn(c.url.clone(), "remember: the code is 4711").await;
    assert_eq!(status, 200, "{first}");

    signal(&a.child, "-9");
    let killed = Instant::now();
    let _ = a.child.wait().await;
    let (status, body) = eventually(
        Duration::from_secs(20),
        "the session to answer through B",
        || async {
            match turn(b.url.clone(), "what is the code?").await {
                (200, body) => Ok((200, body)),
                other => Err(other),
            }
        },
    )
    .await;
    let failover = killed.elapsed();
    assert_eq!(status, 200, "{body}");
    // The same conversation, on the new owner (the serve processes use their own mock
    // API, so the transcript the new owner's CLI wrote is what shows the history).
    assert_eq!(body["session_id"], first["session_id"], "{body}");
    let mut texts = Vec::new();
    for node in [&b, &c] {
        let r = client
            .get(format!("{}/v1/sessions/kept/transcript", node.url))
            .send()
            .await
            .expect("transcript");
        if r.status().as_u16() == 200 {
            let t: Value = r.json().await.expect("json");
            texts = t["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .filter(|m| m["role"] == "user")
                .map(|m| m["text"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>();
        }
    }
    assert_eq!(
        texts,
        ["remember: the code is 4711", "what is the code?"],
        "the new owner resumed the conversation"
    );
    eprintln!("kill -9 to the next answered turn through B: {failover:?} (lease 2 s, TTL 3 s)");
    // Lease 2 s, heartbeat TTL 3 s, a scan each second, a CLI start: well under 10 s.
    assert!(failover < Duration::from_secs(10), "{failover:?}");
    drop(b);
    drop(c);
    env.assert_no_leftovers().await;
}

/// The user prompts of a session's transcript, from whichever of `urls` has it.
async fn user_prompts(client: &reqwest::Client, urls: &[&str], name: &str) -> Vec<String> {
    for url in urls {
        let r = client
            .get(format!("{url}/v1/sessions/{name}/transcript"))
            .send()
            .await
            .expect("transcript");
        if r.status().as_u16() == 200 {
            let t: Value = r.json().await.expect("json");
            return t["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .filter(|m| m["role"] == "user")
                .map(|m| m["text"].as_str().unwrap_or_default().to_string())
                .collect();
        }
    }
    Vec::new()
}

#[tokio::test]
async fn a_host_cut_off_from_nats_stops_serving_its_sessions_and_after_it_reconnects_they_stay_moved(
) {
    let env = TestEnv::new(Script::new()).await;
    let nats = NatsServer::start();
    // Host A runs in a network namespace: it reaches NATS only over a veth pair.
    let ns = Netns::create();
    let way_out = ns.expose(nats.port()).await;
    let mut a = node_with(&env, &format!("nats://{way_out}"), "node-a", 2, Some(&ns)).await;
    let inner_port: u16 = a
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("A's port");
    // The test reaches A through a socket made inside its namespace: A keeps its clients
    // while it is cut off from the cluster (the dangerous half of a partition).
    let a_url = format!("http://{}", ns.forward(inner_port).await);
    let mut b = node(&env, &nats, "node-b", 2).await;
    let mut c = node(&env, &nats, "node-c", 2).await;
    let client = reqwest::Client::new();
    assert_eq!(create_session(&client, &a_url, "p1").await, 201);
    let turn = |url: String, prompt: &'static str| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{url}/v1/sessions/p1/messages"))
                .json(&json!({ "prompt": prompt }))
                .send()
                .await
                .expect("turn");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let (status, first) = turn(b.url.clone(), "remember: the code is 4711").await;
    assert_eq!(status, 200, "routed to A before the cut: {first}");

    ns.cut();
    let cut = Instant::now();
    // A call routed to A while it is cut off (silent, but still a member until its
    // heartbeat expires) is given up once that heartbeat expires (503), or answered by
    // the host that took the session over (200): not after the whole 10 s call wait.
    let r = client
        .get(format!("{}/v1/sessions/p1", c.url))
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    let body: Value = r.json().await.expect("json");
    assert!(
        status == 200 || (status == 503 && body["code"] == "owner_unavailable"),
        "{status} {body}"
    );
    assert!(
        cut.elapsed() < Duration::from_secs(8),
        "{:?}",
        cut.elapsed()
    );
    let (_, moved) = eventually(
        Duration::from_secs(30),
        "p1 to answer through C on its new owner",
        || async {
            match turn(c.url.clone(), "what is the code?").await {
                (200, body) => Ok((200, body)),
                other => Err(other),
            }
        },
    )
    .await;
    let failover = cut.elapsed();
    assert_eq!(moved["session_id"], first["session_id"], "{moved}");
    assert!(!members(&b.url).await.contains(&"node-a".to_string()));
    // A still runs and its clients still reach it, but it could not renew its lease: it
    // refuses p1 instead of answering beside the new owner.
    let (status, refused) = turn(a_url.clone(), "are you still serving p1?").await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (503, Some("lease_unconfirmed")),
        "{refused}"
    );

    ns.heal();
    // Reconnected, A learns the lease is another member's and says so from then on.
    let lost = eventually(Duration::from_secs(30), "A to see it lost p1", || async {
        match turn(a_url.clone(), "and now?").await {
            (409, body) => Ok(body),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(lost["code"], "lease_lost", "{lost}");
    eventually(Duration::from_secs(20), "A heartbeats again", || async {
        let seen = members(&b.url).await;
        if seen == ["node-a", "node-b", "node-c"] {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
    // The conversation went on on the new owner only: what A was asked is in no transcript.
    let (status, last) = turn(b.url.clone(), "still there?").await;
    assert_eq!(status, 200, "{last}");
    assert_eq!(last["session_id"], first["session_id"]);
    assert_eq!(
        user_prompts(&client, &[&b.url, &c.url], "p1").await,
        [
            "remember: the code is 4711",
            "what is the code?",
            "still there?"
        ]
    );
    eprintln!("cut to the next answered turn through C: {failover:?} (lease 2 s, TTL 3 s)");
    for node in [&mut a, &mut b, &mut c] {
        let status = sigterm_and_wait(&mut node.child).await;
        assert!(status.success(), "{status:?}");
    }
    drop((a, b, c, ns));
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_host_stopped_with_sigterm_hands_its_sessions_over_without_a_failed_turn() {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    };
    let env = TestEnv::new(Script::new()).await;
    let nats = NatsServer::start();
    // Leases of 30 s: a failover (lease expiry) could not move anything within the bounds
    // asserted below; only the hand-over can.
    let mut a = node(&env, &nats, "node-a", 30).await;
    let b = node(&env, &nats, "node-b", 30).await;
    let c = node(&env, &nats, "node-c", 30).await;
    let client = reqwest::Client::new();
    let names = ["s1", "s2", "s3"];
    for name in names {
        let s = post_json(
            &client,
            &format!("{}/v1/sessions", a.url),
            json!({"name": name, "placement": "local"}),
        )
        .await;
        assert_eq!(s["owner"], "node-a", "{s}");
    }

    // A client per session sends turns through B, one after the other, until told to
    // stop; then one more.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for name in names {
        let (client, url) = (client.clone(), b.url.clone());
        let (stop, answered) = (stop.clone(), answered.clone());
        clients.push(tokio::spawn(async move {
            let mut turns = Vec::new();
            let mut last = false;
            for k in 0.. {
                let prompt = format!("{name} turn {k}");
                let r = client
                    .post(format!("{url}/v1/sessions/{name}/messages"))
                    .json(&json!({ "prompt": prompt }))
                    .send()
                    .await
                    .expect("turn");
                let status = r.status().as_u16();
                let body: Value = r.json().await.expect("json");
                answered.fetch_add(1, Ordering::Relaxed);
                turns.push((prompt, status, body));
                if last {
                    break;
                }
                last = stop.load(Ordering::Relaxed);
            }
            turns
        }));
    }
    eventually(
        Duration::from_secs(60),
        "every session to answer a turn or two",
        || async {
            match answered.load(Ordering::Relaxed) {
                n if n >= 2 * names.len() => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;

    let watcher = claude_code_serve::cluster::Leases::connect(
        &nats.url(),
        "watcher",
        Duration::from_secs(30),
    )
    .await
    .expect("connect");
    signal(&a.child, "-TERM");
    let termed = Instant::now();
    let owners = eventually(
        Duration::from_secs(25),
        "every session to be owned by B or C",
        || async {
            let mut owners = Vec::new();
            for name in names {
                match watcher.owner("default", name).await {
                    Ok(Some(l)) if l.owner != "node-a" => owners.push(l.owner),
                    other => return Err(format!("{name}: {other:?}")),
                }
            }
            Ok(owners)
        },
    )
    .await;
    let moved = termed.elapsed();
    let status = tokio::time::timeout(Duration::from_secs(60), a.child.wait())
        .await
        .expect("A exits in time")
        .expect("wait");
    let exited = termed.elapsed();
    assert!(status.success(), "A exits cleanly: {status:?}");
    // Turns go on after A is gone; then each client sends its last one.
    let at_exit = answered.load(Ordering::Relaxed);
    eventually(
        Duration::from_secs(60),
        "turns to go on after A exited",
        || async {
            match answered.load(Ordering::Relaxed) {
                n if n >= at_exit + names.len() => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for (name, task) in names.iter().zip(clients) {
        let turns = task.await.expect("client");
        total += turns.len();
        for (prompt, status, body) in &turns {
            assert_eq!(*status, 200, "{name}: {prompt}: {body}");
            assert!(
                body["text"]
                    .as_str()
                    .is_some_and(|t| t.contains(prompt.as_str())),
                "{prompt}: {body}"
            );
            assert_eq!(body["is_error"], false, "{body}");
        }
        // One conversation: the new owner's transcript has every turn once, in order.
        let mut texts = None;
        for n in [&b, &c] {
            let r = client
                .get(format!("{}/v1/sessions/{name}/transcript", n.url))
                .send()
                .await
                .expect("transcript");
            if r.status().as_u16() == 200 {
                let t: Value = r.json().await.expect("json");
                texts = Some(
                    t["messages"]
                        .as_array()
                        .expect("messages")
                        .iter()
                        .filter(|m| m["role"] == "user")
                        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
                        .collect::<Vec<_>>(),
                );
            }
        }
        let sent: Vec<String> = turns.iter().map(|(p, _, _)| p.clone()).collect();
        assert_eq!(
            texts.as_ref(),
            Some(&sent),
            "{name}: the conversation went on"
        );
        assert_eq!(
            turns[0].2["session_id"],
            turns.last().expect("a turn").2["session_id"]
        );
    }
    eprintln!(
        "SIGTERM → {} sessions owned by {owners:?}: {moved:?}; A exited after {exited:?}; {total} turns, none failed (lease 30 s, heartbeat 1 s)",
        names.len()
    );
    assert!(
        moved < Duration::from_secs(10),
        "handed over, not failed over: {moved:?}"
    );
    drop(b);
    drop(c);
    env.assert_no_leftovers().await;
}
