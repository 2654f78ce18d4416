//! The cluster over a real nats-server with JetStream on loopback: membership through
//! heartbeats with a TTL, session ownership by compare-and-set leases, `GET /v1/cluster`,
//! graceful leave; hosts in-process with the real CLI against the project's mock API.

use std::time::Duration;

use claude_code_serve::cluster::{owner_key, Claim, ClusterError, Leases};
use claude_code_tests::{eventually, NatsServer};

mod support;

#[tokio::test]
async fn two_claimers_racing_for_one_session_get_exactly_one_winner() {
    let nats = NatsServer::start();
    let lease = Duration::from_secs(30);
    for round in 0..5 {
        let mut handles = Vec::new();
        for node in ["node-a", "node-b", "node-c"] {
            handles.push(
                Leases::connect(&nats.url(), node, lease)
                    .await
                    .expect("connect"),
            );
        }
        let session = format!("race-{round}");
        let claims =
            futures::future::join_all(handles.iter().map(|l| l.claim("acme", &session))).await;
        let winners: Vec<usize> = claims
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, Ok(Claim::Won)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {claims:?}");
        let winner = ["node-a", "node-b", "node-c"][winners[0]];
        for (i, c) in claims.iter().enumerate() {
            if i != winners[0] {
                match c {
                    Ok(Claim::Held(l)) => assert_eq!(l.owner, winner),
                    // A loser that read between the winner's write and its own is told
                    // to retry; retrying then reports the holder.
                    Err(ClusterError::Contended { .. }) => {
                        let again = handles[i].claim("acme", &session).await.expect("retry");
                        assert!(
                            matches!(&again, Claim::Held(l) if l.owner == winner),
                            "{again:?}"
                        );
                    }
                    other => panic!("round {round}: loser {i} got {other:?}"),
                }
            }
        }
        let key = owner_key("acme", &session);
        assert!(handles[winners[0]].holds(&key));
        assert_eq!(
            handles.iter().filter(|h| h.holds(&key)).count(),
            1,
            "only the winner believes it holds the lease"
        );
    }
}

#[tokio::test]
async fn an_unrenewed_lease_is_taken_over_and_the_old_owner_learns_it_lost() {
    let nats = NatsServer::start();
    let lease = Duration::from_millis(1500);
    let a = Leases::connect(&nats.url(), "node-a", lease)
        .await
        .expect("a");
    let b = Leases::connect(&nats.url(), "node-b", lease)
        .await
        .expect("b");
    assert_eq!(a.claim("acme", "s1").await.expect("claim"), Claim::Won);
    // While the lease runs, B cannot have it, and A's renewal keeps it.
    let held = b.claim("acme", "s1").await.expect("claim");
    assert!(
        matches!(&held, Claim::Held(l) if l.owner == "node-a"),
        "{held:?}"
    );
    a.renew("acme", "s1").await.expect("the owner renews");
    let key = owner_key("acme", "s1");
    assert!(!a.unconfirmed(&key), "a renewed lease is confirmed");
    // A stops renewing (a stall, a partition): once the lease ends, B takes it over.
    let taken = eventually(
        Duration::from_secs(10),
        "B takes over the expired lease",
        || async {
            match b.claim("acme", "s1").await {
                Ok(Claim::Won) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let _: () = taken;
    // B could take it only because it ran out: A, still believing it holds it, knows its
    // own lease is no longer confirmed (it must not serve the session).
    assert!(a.holds(&key) && a.unconfirmed(&key));
    let owner = a.owner("acme", "s1").await.expect("read").expect("a lease");
    assert_eq!(owner.owner, "node-b");
    // A, renewing, sees it lost the lease and to whom; it no longer holds it.
    match a.renew("acme", "s1").await {
        Err(ClusterError::LeaseLost { key: k, owner }) => {
            assert_eq!(k, key);
            assert_eq!(owner.as_deref(), Some("node-b"));
        }
        other => panic!("the old owner's renewal must fail with LeaseLost: {other:?}"),
    }
    assert!(!a.holds(&key) && a.lost(&key));
    // Its release does not touch B's lease.
    a.release("acme", "s1").await.expect("release is a no-op");
    assert_eq!(
        b.owner("acme", "s1")
            .await
            .expect("read")
            .map(|l| l.owner)
            .as_deref(),
        Some("node-b")
    );
    // B releases; A can claim it again at once.
    b.release("acme", "s1").await.expect("release");
    assert_eq!(b.owner("acme", "s1").await.expect("read"), None);
    assert_eq!(a.claim("acme", "s1").await.expect("claim"), Claim::Won);
    assert!(!a.lost(&key) && !a.unconfirmed(&key));
}

mod hosts {
    use std::time::Duration;

    use claude_code_serve::{cluster::ClusterConfig, Host, HostConfig};
    use claude_code_tests::{eventually, NatsServer, Reply, Script, TestEnv};
    use serde_json::{json, Value};

    use crate::support::{ask, ask_sse, get};

    async fn host(env: &TestEnv, nats: &NatsServer, node: &str) -> Host {
        let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
            .options(env.options())
            .offline(false)
            .cluster(
                ClusterConfig::new(nats.url())
                    .node_name(node)
                    .heartbeat(Duration::from_millis(500)),
            );
        config.spares = 0;
        Host::start(config).await.expect("host starts")
    }

    fn nodes(view: &Value) -> Vec<String> {
        view["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m["node"].as_str().expect("node").to_string())
            .collect()
    }

    async fn create(host: &Host, name: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/sessions", host.url()))
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.expect("json body"))
    }

    #[tokio::test]
    async fn three_hosts_join_see_each_other_and_a_graceful_leave_is_seen_at_once() {
        let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
        let nats = NatsServer::start();
        let a = host(&env, &nats, "host-a").await;
        let b = host(&env, &nats, "host-b").await;
        let c = host(&env, &nats, "host-c").await;
        for (h, me) in [(&a, "host-a"), (&b, "host-b"), (&c, "host-c")] {
            let (status, view) = get(h, "/v1/cluster").await;
            assert_eq!(status, 200, "{view}");
            assert_eq!(view["node"], me);
            assert_eq!(nodes(&view), ["host-a", "host-b", "host-c"], "{view}");
            let mine =
                &view["members"].as_array().expect("members")[["host-a", "host-b", "host-c"]
                    .iter()
                    .position(|n| *n == me)
                    .expect("pos")];
            assert_eq!(mine["url"], h.url());
            assert!(
                mine["mem_available"].as_u64().is_some_and(|m| m > 0),
                "{mine}"
            );
            assert!(mine["updated"].as_u64().is_some_and(|t| t > 0), "{mine}");
        }
        // A session on A shows in A's next heartbeat as a live CLI and a session.
        assert_eq!(create(&a, "s1").await.0, 201);
        eventually(
            Duration::from_secs(5),
            "A's heartbeat counts its session",
            || async {
                let (_, view) = get(&c, "/v1/cluster").await;
                let a_member = view["members"][0].clone();
                if a_member["sessions"] == 1 && a_member["live_clis"] == 1 {
                    Ok(())
                } else {
                    Err(a_member)
                }
            },
        )
        .await;

        // B leaves gracefully: gone from the others' view at once, far within its TTL.
        b.shutdown().await.expect("b stops");
        let (_, view) = get(&a, "/v1/cluster").await;
        assert_eq!(nodes(&view), ["host-a", "host-c"], "{view}");
        a.shutdown().await.expect("a stops");
        c.shutdown().await.expect("c stops");
    }

    #[tokio::test]
    async fn a_session_is_owned_by_one_host_until_it_is_deleted_or_handed_over() {
        let env = TestEnv::new(Script::new().fallback(Reply::text("ok"))).await;
        let nats = NatsServer::start();
        let a = host(&env, &nats, "host-a").await;
        let b = host(&env, &nats, "host-b").await;
        assert_eq!(create(&a, "shared").await.0, 201);
        let (status, body) = create(&b, "shared").await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["code"], "owned_elsewhere");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("host-a")),
            "{body}"
        );
        // Deleting on A releases the lease: B may create it now.
        let deleted = reqwest::Client::new()
            .delete(format!("{}/v1/sessions/shared", a.url()))
            .send()
            .await
            .expect("delete");
        assert_eq!(deleted.status().as_u16(), 204);
        assert_eq!(create(&b, "shared").await.0, 201);
        assert_eq!(create(&a, "shared").await.0, 409);
        // B leaves gracefully: it hands the session over to A, the only other member.
        b.shutdown().await.expect("b stops");
        let (status, session) = get(&a, "/v1/sessions/shared").await;
        assert_eq!((status, session["owner"].as_str()), (200, Some("host-a")));
        let (status, body) = create(&a, "shared").await;
        assert_eq!((status, body["code"].as_str()), (409, Some("name_taken")));
        // A, alone, leaves: no member can take it; its lease is released.
        a.shutdown().await.expect("a stops");
        let watcher = claude_code_serve::cluster::Leases::connect(
            &nats.url(),
            "watcher",
            Duration::from_secs(30),
        )
        .await
        .expect("connect");
        assert_eq!(
            watcher.owner("default", "shared").await.expect("read"),
            None
        );
    }

    #[tokio::test]
    async fn a_standalone_host_answers_not_clustered_and_a_taken_node_name_is_refused() {
        let env = TestEnv::new(Script::new()).await;
        let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
            .options(env.options())
            .offline(false);
        config.spares = 0;
        let alone = Host::start(config).await.expect("host starts");
        let (status, body) = get(&alone, "/v1/cluster").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_clustered"))
        );
        alone.shutdown().await.expect("stops");

        let nats = NatsServer::start();
        let first = host(&env, &nats, "twin").await;
        let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
            .options(env.options())
            .offline(false)
            .cluster(
                ClusterConfig::new(nats.url())
                    .node_name("twin")
                    .heartbeat(Duration::from_millis(500)),
            );
        config.spares = 0;
        let err = Host::start(config)
            .await
            .expect_err("a live member has the name");
        assert!(err.to_string().contains("already named \"twin\""), "{err}");
        // Another heartbeat (TTL three heartbeats) is refused: the hosts must agree.
        let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
            .options(env.options())
            .offline(false)
            .cluster(
                ClusterConfig::new(nats.url())
                    .node_name("other")
                    .heartbeat(Duration::from_secs(1)),
            );
        config.spares = 0;
        let err = Host::start(config).await.expect_err("another TTL");
        assert!(err.to_string().contains("heartbeat_secs"), "{err}");
        // A NATS server that is not there.
        let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
            .options(env.options())
            .offline(false)
            .cluster(ClusterConfig::new("nats://127.0.0.1:1").node_name("lonely"));
        config.spares = 0;
        let err = Host::start(config).await.expect_err("no server");
        assert!(err.to_string().contains("cannot connect"), "{err}");
        first.shutdown().await.expect("stops");
    }

    #[tokio::test]
    async fn a_routed_turn_fails_as_a_local_one_on_a_rejected_key_and_bad_input_is_refused_before_routing(
    ) {
        let env = TestEnv::new(Script::new().fallback(Reply::unauthorized())).await;
        let nats = NatsServer::start();
        let a = host(&env, &nats, "err-a").await;
        let c = host(&env, &nats, "err-c").await;
        let (status, s) = create_with(&a, json!({"name": "failing", "placement": "local"})).await;
        assert_eq!((status, s["owner"].as_str()), (201, Some("err-a")), "{s}");
        // The API refuses the key: through the owner and through C, the same fast, typed
        // answer (JSON), and the same events (SSE).
        let bound = Duration::from_secs(60);
        let (status, local) = tokio::time::timeout(bound, ask(&a, "failing", "hi"))
            .await
            .expect("answered without the CLI's retries");
        assert_eq!(
            (status, local["code"].as_str()),
            (502, Some("upstream_auth_failed")),
            "{local}"
        );
        let (status, routed) = tokio::time::timeout(bound, ask(&c, "failing", "hi again"))
            .await
            .expect("answered without the CLI's retries");
        assert_eq!((status, &routed["code"]), (502, &local["code"]), "{routed}");
        let (_, local_events) = ask_sse(&a.url(), "failing", "streamed here").await;
        let (status, routed_events) = ask_sse(&c.url(), "failing", "streamed there").await;
        assert_eq!(status, 200);
        let names = |events: &[(String, Value)]| -> Vec<(String, Value)> {
            events
                .iter()
                .map(|(e, d)| (e.clone(), d["code"].clone()))
                .collect()
        };
        assert_eq!(
            names(&routed_events),
            names(&local_events),
            "{routed_events:?}"
        );
        assert!(
            routed_events
                .iter()
                .any(|(_, d)| d["code"] == "upstream_auth_failed"),
            "{routed_events:?}"
        );
        // Bad input is refused by the host asked, before anything is routed or placed.
        let turns_before = env.mock.turn_requests().len();
        let r = reqwest::Client::new()
            .post(format!("{}/v1/sessions/failing/messages", c.url()))
            .json(&json!({"prompt": "   "}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 400);
        let (status, body) = create_with(&c, json!({"name": "odd", "placement": "nearest"})).await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = create_with(&c, json!({"name": "bad name/../x"})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(env.mock.turn_requests().len(), turns_before);
        c.shutdown().await.expect("c stops");
        a.shutdown().await.expect("a stops");
    }

    #[tokio::test]
    async fn a_session_created_on_one_host_is_served_through_another() {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let nats = NatsServer::start();
        let a = host(&env, &nats, "host-a").await;
        let c = host(&env, &nats, "host-c").await;
        assert_eq!(create(&a, "routed").await.0, 201);

        // JSON through C: the owner's CLI answers, the mock sees the turn.
        let (status, reply) = ask(&c, "routed", "first through C").await;
        assert_eq!(status, 200, "{reply}");
        assert!(
            reply["text"]
                .as_str()
                .is_some_and(|t| t.contains("first through C")),
            "{reply}"
        );
        assert_eq!(reply["is_error"], false);
        let turns = env.mock.turn_requests();
        assert!(
            turns.last().is_some_and(|r| r
                .last_user_text()
                .is_some_and(|t| t.contains("first through C"))),
            "the mock saw the routed turn"
        );

        // SSE through C: one event per SDK message, ending with `result`; the same
        // conversation (the mock gets the earlier prompt as history).
        let (status, events) = ask_sse(&c.url(), "routed", "second through C").await;
        assert_eq!(status, 200);
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names.last(), Some(&"result"), "{names:?}");
        assert!(names.contains(&"assistant"), "{names:?}");
        let result = &events.last().expect("result").1;
        assert!(
            result["result"]
                .as_str()
                .is_some_and(|t| t.contains("second through C")),
            "{result}"
        );
        let last = env.mock.turn_requests().pop().expect("a turn");
        let texts = last.user_texts();
        assert!(
            texts.iter().any(|t| t.contains("first through C")),
            "history: {texts:?}"
        );

        // The turns ran on A: its ledger has them; C has no such session of its own and
        // answers GET with A's answer.
        let (_, session) = get(&a, "/v1/sessions/routed").await;
        assert_eq!(session["turns"], 2, "{session}");
        assert_eq!(session["owner"], "host-a", "{session}");
        assert_eq!(get(&c, "/v1/sessions/routed").await, (200, session));

        // A turn A refuses comes back as A said it (an empty prompt is checked at C
        // first; a draining owner answers 503).
        let (status, body) = ask(&c, "routed", "   ").await;
        assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
        // A leaves: it hands the session over to C, which goes on with the conversation.
        a.shutdown().await.expect("a stops");
        let (status, session) = get(&c, "/v1/sessions/routed").await;
        assert_eq!((status, session["owner"].as_str()), (200, Some("host-c")));
        let (status, reply) = ask(&c, "routed", "anyone?").await;
        assert_eq!(status, 200, "{reply}");
        assert!(
            reply["text"]
                .as_str()
                .is_some_and(|t| t.contains("anyone?")),
            "{reply}"
        );
        let texts = env.mock.turn_requests().pop().expect("a turn").user_texts();
        assert!(
            texts.iter().any(|t| t.contains("first through C")),
            "history: {texts:?}"
        );
        c.shutdown().await.expect("c stops");
    }

    #[tokio::test]
    async fn a_routed_turn_to_an_owner_that_does_not_answer_is_a_503() {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let nats = NatsServer::start();
        let c = host(&env, &nats, "host-c").await;
        // A member that holds a lease but serves nothing (hung, or gone before its lease
        // ran out).
        let ghost = claude_code_serve::cluster::Leases::connect(
            &nats.url(),
            "ghost",
            Duration::from_secs(30),
        )
        .await
        .expect("connect");
        ghost.claim("default", "haunted").await.expect("claim");
        let (status, body) = ask(&c, "haunted", "hello?").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("owner_unavailable")),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("ghost")),
            "{body}"
        );
        assert!(env.mock.turn_requests().is_empty(), "no CLI ran a turn");
        c.shutdown().await.expect("c stops");
    }

    #[tokio::test]
    async fn a_requester_that_does_not_take_the_messages_holds_the_owner_at_the_window() {
        use futures::StreamExt;
        // A long reply, streamed: hundreds of partial messages, far more than the
        // credit window (32) plus the owner's turn buffer (64).
        let long = "abcdefghijklmnopqrstuvwxyz012345".repeat(300);
        let env = TestEnv::new(Script::new().fallback(Reply::text(long.clone()))).await;
        let nats = NatsServer::start();
        let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
            .options(env.options().include_partial_messages(true))
            .offline(false)
            .cluster(
                ClusterConfig::new(nats.url())
                    .node_name("owner")
                    .heartbeat(Duration::from_millis(500)),
            );
        config.spares = 0;
        let a = Host::start(config).await.expect("host starts");
        assert_eq!(create(&a, "chatty").await.0, 201);

        // A raw requester on the wire protocol that credits nothing at first.
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let inbox = client.new_inbox();
        let mut frames = client.subscribe(inbox.clone()).await.expect("subscribe");
        let answer = client
            .request(
                "claude.default.sessions.chatty.turn",
                serde_json::to_vec(&json!({"prompt": "talk a lot", "inbox": inbox}))
                    .expect("json")
                    .into(),
            )
            .await
            .expect("the owner answers");
        let answer: Value = serde_json::from_slice(&answer.payload).expect("json");
        let credit = answer["accepted"]["credit"]
            .as_str()
            .unwrap_or_else(|| panic!("accepted: {answer}"))
            .to_string();
        let mut seen = 0usize;
        while seen < 32 {
            tokio::time::timeout(Duration::from_secs(30), frames.next())
                .await
                .expect("the window's frames arrive")
                .expect("a frame");
            seen += 1;
        }
        // The window is full: the owner sends nothing more until credited.
        let more = tokio::time::timeout(Duration::from_secs(1), frames.next()).await;
        assert!(more.is_err(), "a frame past the window arrived uncredited");

        // Credit as we go: the turn streams on to its end.
        let mut result = None;
        let mut taken = 0usize;
        let mut total = seen;
        client
            .publish(
                credit.clone(),
                serde_json::to_vec(&json!({"n": seen}))
                    .expect("json")
                    .into(),
            )
            .await
            .expect("credit");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), frames.next())
                .await
                .expect("frames keep coming when credited")
                .expect("a frame");
            let frame: Value = serde_json::from_slice(&m.payload).expect("json frame");
            if frame.get("end").is_some() {
                break;
            }
            total += 1;
            taken += 1;
            if frame["message"]["type"] == "result" {
                result = Some(frame["message"].clone());
            }
            if taken == 16 {
                client
                    .publish(
                        credit.clone(),
                        serde_json::to_vec(&json!({"n": taken}))
                            .expect("json")
                            .into(),
                    )
                    .await
                    .expect("credit");
                taken = 0;
            }
        }
        assert!(
            total > 32 + 64,
            "only {total} frames: the test needs a longer turn"
        );
        let result = result.expect("a result frame");
        assert_eq!(result["result"].as_str(), Some(long.as_str()));
        a.shutdown().await.expect("a stops");
    }

    #[tokio::test]
    async fn a_restarted_host_does_not_serve_a_stored_session_another_host_now_owns() {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let nats = NatsServer::start();
        let data = tempfile::tempdir().expect("data dir");
        let start_a = || async {
            let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
                .options(env.options())
                .offline(false)
                .data_dir(data.path())
                .cluster(
                    ClusterConfig::new(nats.url())
                        .node_name("host-a")
                        .heartbeat(Duration::from_millis(500)),
                );
            config.spares = 0;
            Host::start(config).await.expect("host starts")
        };
        let a = start_a().await;
        assert_eq!(create(&a, "kept").await.0, 201);
        a.shutdown().await.expect("a stops");
        // While A is away, B takes the name.
        let b = host(&env, &nats, "host-b").await;
        assert_eq!(create(&b, "kept").await.0, 201);
        // A comes back with "kept" in its store: it lists it, but will not run it.
        let a = start_a().await;
        assert_eq!(get(&a, "/v1/sessions/kept").await.0, 200);
        let (status, body) = ask(&a, "kept", "mine again?").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("lease_lost")),
            "{body}"
        );
        // Through B it is served.
        let (status, reply) = ask(&b, "kept", "through b").await;
        assert_eq!(status, 200, "{reply}");
        a.shutdown().await.expect("a stops");
        b.shutdown().await.expect("b stops");
    }

    /// A host with its own CLI config dir (so a transcript can only come from the
    /// checkpoint), short heartbeats and short leases.
    async fn failover_host(
        env: &TestEnv,
        nats: &NatsServer,
        node: &str,
        config_dir: &std::path::Path,
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
        config.spares = 0;
        Host::start(config).await.expect("host starts")
    }

    #[tokio::test]
    async fn a_dead_hosts_session_is_taken_over_and_resumes_its_conversation() {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let nats = NatsServer::start();
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("config dir"))
            .collect();
        let a = failover_host(&env, &nats, "host-a", dirs[0].path()).await;
        let b = failover_host(&env, &nats, "host-b", dirs[1].path()).await;
        let c = failover_host(&env, &nats, "host-c", dirs[2].path()).await;
        assert_eq!(create(&a, "carried").await.0, 201);
        let (status, reply) = ask(&c, "carried", "the word is zebra").await;
        assert_eq!(status, 200, "{reply}");
        let cli_session = reply["session_id"]
            .as_str()
            .expect("session id")
            .to_string();

        // A dies without leaving: its heartbeat and its lease run out.
        let watcher = claude_code_serve::cluster::Leases::connect(
            &nats.url(),
            "watcher",
            Duration::from_secs(2),
        )
        .await
        .expect("connect");
        let killed = std::time::Instant::now();
        a.abort().await.expect("a stops");
        let new_owner = eventually(
            Duration::from_secs(15),
            "a surviving host to claim the session",
            || async {
                match watcher.owner("default", "carried").await {
                    Ok(Some(l)) if l.owner != "host-a" => Ok(l.owner),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        let claimed = killed.elapsed();
        assert!(
            ["host-b", "host-c"].contains(&new_owner.as_str()),
            "{new_owner}"
        );

        // The next message through B: the conversation goes on, on the new owner.
        let before = env.mock.turn_requests().len();
        let resumed_at = std::time::Instant::now();
        let (status, reply) = eventually(
            Duration::from_secs(10),
            "the session to answer through B",
            || async {
                match ask(&b, "carried", "what was the word?").await {
                    (200, reply) => Ok((200, reply)),
                    other => Err(other),
                }
            },
        )
        .await;
        let resumed = resumed_at.elapsed();
        assert_eq!(status, 200, "{reply}");
        assert_eq!(
            reply["session_id"].as_str(),
            Some(cli_session.as_str()),
            "{reply}"
        );
        let turns = env.mock.turn_requests();
        assert_eq!(turns.len(), before + 1, "the turn ran exactly once");
        let texts = turns.last().expect("a turn").user_texts();
        assert!(
            texts.iter().any(|t| t.contains("the word is zebra")),
            "the new owner's CLI was sent the earlier prompt: {texts:?}"
        );
        // Only the new owner has the session now.
        let owner = if new_owner == "host-b" { &b } else { &c };
        assert_eq!(get(owner, "/v1/sessions/carried").await.0, 200);
        eprintln!(
            "failover: claimed {claimed:?} after the kill (lease 2 s, heartbeat TTL 1.5 s, scan every 0.5 s); restored and resumed turn {resumed:?}"
        );
        assert!(
            claimed < Duration::from_millis(2000 + 1500 + 500 + 1500),
            "claimed within lease + TTL + a scan (+ slack): {claimed:?}"
        );
        b.shutdown().await.expect("b stops");
        c.shutdown().await.expect("c stops");
    }

    #[tokio::test]
    async fn a_turn_in_flight_on_a_host_that_dies_fails_typed_and_is_not_replayed() {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let nats = NatsServer::start();
        let dirs: Vec<_> = (0..2)
            .map(|_| tempfile::tempdir().expect("config dir"))
            .collect();
        let a = failover_host(&env, &nats, "host-a", dirs[0].path()).await;
        let b = failover_host(&env, &nats, "host-b", dirs[1].path()).await;
        assert_eq!(create(&a, "cut").await.0, 201);
        let (status, reply) = ask(&b, "cut", "first, answered").await;
        assert_eq!(status, 200, "{reply}");
        env.mock
            .push(Reply::text("never sent").delay(Duration::from_secs(60)));
        let before = env.mock.turn_requests().len();
        let url = b.url();
        let turn = tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{url}/v1/sessions/cut/messages"))
                .json(&json!({"prompt": "in flight"}))
                .send()
                .await
                .expect("request");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        });
        eventually(
            Duration::from_secs(30),
            "the turn to reach the API",
            || async {
                if env.mock.turn_requests().len() > before {
                    Ok(())
                } else {
                    Err("not yet")
                }
            },
        )
        .await;
        let killed = std::time::Instant::now();
        a.abort().await.expect("a stops");
        let (status, body) = turn.await.expect("the turn's task");
        let failed = killed.elapsed();
        assert_eq!(
            (status, body["code"].as_str()),
            (502, Some("owner_lost")),
            "{body}"
        );
        assert!(
            failed < Duration::from_secs(10),
            "failed within the TTL: {failed:?}"
        );
        // After the failover the next message runs once; the lost one is not replayed.
        let (status, reply) = eventually(Duration::from_secs(15), "the session on B", || async {
            match ask(&b, "cut", "after the failover").await {
                (200, reply) => Ok((200, reply)),
                other => Err(other),
            }
        })
        .await;
        assert_eq!(status, 200, "{reply}");
        let turns = env.mock.turn_requests();
        let prompts: Vec<String> = turns.iter().filter_map(|t| t.last_user_text()).collect();
        assert_eq!(
            prompts.iter().filter(|p| p.contains("in flight")).count(),
            1,
            "the lost turn reached the model once and was not replayed: {prompts:?}"
        );
        assert_eq!(
            prompts
                .iter()
                .filter(|p| p.contains("after the failover"))
                .count(),
            1,
            "{prompts:?}"
        );
        eprintln!("in-flight turn failed {failed:?} after the kill (heartbeat TTL 1.5 s)");
        b.shutdown().await.expect("b stops");
    }

    async fn create_with(host: &Host, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/sessions", host.url()))
            .json(&body)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json().await.expect("json body"))
    }

    /// Waits until `host`'s view of the cluster shows `node` with `live` CLIs.
    async fn live_clis(host: &Host, node: &str, live: u64) {
        eventually(
            Duration::from_secs(20),
            "the member's heartbeat to count its CLIs",
            || async {
                let (_, view) = get(host, "/v1/cluster").await;
                let member = view["members"]
                    .as_array()
                    .and_then(|ms| ms.iter().find(|m| m["node"] == node).cloned())
                    .unwrap_or(Value::Null);
                if member["live_clis"].as_u64() == Some(live) {
                    Ok(())
                } else {
                    Err(member)
                }
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_new_session_is_placed_on_the_least_loaded_member_unless_placement_is_local() {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let nats = NatsServer::start();
        let start = |node: &'static str, placement| {
            let env = &env;
            let nats = &nats;
            async move {
                let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
                    .options(env.options())
                    .offline(false)
                    .cluster(
                        ClusterConfig::new(nats.url())
                            .node_name(node)
                            .heartbeat(Duration::from_millis(500))
                            .placement(placement),
                    );
                config.spares = 0;
                Host::start(config).await.expect("host starts")
            }
        };
        use claude_code_serve::cluster::Placement;
        let a = start("host-a", Placement::Capacity).await;
        let b = start("host-b", Placement::Local).await;
        let c = start("host-c", Placement::Capacity).await;

        // A runs two live sessions: `"placement": "local"` keeps them there.
        for name in ["a1", "a2"] {
            let (status, s) = create_with(&a, json!({"name": name, "placement": "local"})).await;
            assert_eq!((status, s["owner"].as_str()), (201, Some("host-a")), "{s}");
        }
        // B's configuration says local: its sessions stay on B although C is idle.
        let (status, s) = create(&b, "b1").await;
        assert_eq!((status, s["owner"].as_str()), (201, Some("host-b")), "{s}");
        live_clis(&b, "host-b", 1).await;
        let (status, s) = create(&b, "b2").await;
        assert_eq!((status, s["owner"].as_str()), (201, Some("host-b")), "{s}");
        live_clis(&a, "host-a", 2).await;
        live_clis(&a, "host-b", 2).await;
        live_clis(&a, "host-c", 0).await;

        // Made through A (placement by capacity): it lands on C, the least loaded.
        let (status, s) = create(&a, "placed").await;
        assert_eq!((status, s["owner"].as_str()), (201, Some("host-c")), "{s}");
        assert_eq!(s["name"], "placed");
        let (status, s) = get(&c, "/v1/sessions/placed").await;
        assert_eq!((status, s["owner"].as_str()), (200, Some("host-c")), "{s}");
        // A has no copy of its own: a GET through it is C's answer, routed.
        let (status, s) = get(&a, "/v1/sessions/placed").await;
        assert_eq!((status, s["owner"].as_str()), (200, Some("host-c")), "{s}");
        // It serves turns through A (routed to C).
        let (status, reply) = ask(&a, "placed", "placed far away").await;
        assert_eq!(status, 200, "{reply}");
        assert!(
            reply["text"]
                .as_str()
                .is_some_and(|t| t.contains("placed far away")),
            "{reply}"
        );
        let (_, s) = get(&c, "/v1/sessions/placed").await;
        assert_eq!(s["turns"], 1, "the turn ran on C: {s}");
        // A name in use is refused as on one host, wherever it lives.
        let (status, body) = create(&b, "placed").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("owned_elsewhere"))
        );
        // A request may ask for capacity on a host configured local.
        live_clis(&b, "host-c", 1).await;
        let (status, s) = create_with(&b, json!({"name": "b3", "placement": "capacity"})).await;
        assert_eq!((status, s["owner"].as_str()), (201, Some("host-c")), "{s}");
        let (status, body) = create_with(&a, json!({"name": "x", "placement": "nearest"})).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
        a.shutdown().await.expect("a stops");
        b.shutdown().await.expect("b stops");
        c.shutdown().await.expect("c stops");
    }

    #[tokio::test]
    async fn a_leaving_host_hands_its_session_over_after_the_running_turn_and_no_turn_fails() {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let nats = NatsServer::start();
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("config dir"))
            .collect();
        // Leases of 30 s: a failover could not happen within this test's bounds.
        let start = |node: &'static str, dir: &std::path::Path| {
            let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
                .options(
                    env.options()
                        .env("CLAUDE_CONFIG_DIR", dir.to_string_lossy()),
                )
                .offline(false)
                .cluster(
                    ClusterConfig::new(nats.url())
                        .node_name(node)
                        .heartbeat(Duration::from_millis(500))
                        .lease(Duration::from_secs(30)),
                );
            config.spares = 0;
            Host::start(config)
        };
        let a = start("host-a", dirs[0].path()).await.expect("a");
        let b = start("host-b", dirs[1].path()).await.expect("b");
        let c = start("host-c", dirs[2].path()).await.expect("c");
        let (status, s) = create_with(&a, json!({"name": "moved", "placement": "local"})).await;
        assert_eq!((status, s["owner"].as_str()), (201, Some("host-a")), "{s}");
        let (status, first) = ask(&b, "moved", "the word is zebra").await;
        assert_eq!(status, 200, "{first}");

        // A turn runs on A (a slow reply) when A is told to stop.
        env.mock
            .push(Reply::text("slow answer").delay(Duration::from_secs(2)));
        let before = env.mock.turn_requests().len();
        let b_url = b.url();
        let running = tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{b_url}/v1/sessions/moved/messages"))
                .json(&json!({"prompt": "a slow one"}))
                .send()
                .await
                .expect("request");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        });
        eventually(
            Duration::from_secs(30),
            "the slow turn to reach the API",
            || async {
                if env.mock.turn_requests().len() > before {
                    Ok(())
                } else {
                    Err("not yet")
                }
            },
        )
        .await;
        let a_url = a.url();
        let left = std::time::Instant::now();
        let leaving = tokio::spawn(async move {
            a.shutdown().await.expect("a stops");
            left.elapsed()
        });
        eventually(Duration::from_secs(10), "A to drain", || async {
            match reqwest::get(format!("{a_url}/readyz")).await {
                Ok(r) if r.status().as_u16() == 503 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        // A turn sent while the session is being handed over: held, then sent to the
        // new owner.
        let (status, during) = ask(&c, "moved", "what was the word?").await;
        let answered = left.elapsed();
        assert_eq!(status, 200, "{during}");
        assert!(
            during["text"]
                .as_str()
                .is_some_and(|t| t.contains("what was the word?")),
            "{during}"
        );
        let (status, slow) = running.await.expect("the running turn");
        assert_eq!(
            (status, slow["text"].as_str()),
            (200, Some("slow answer")),
            "{slow}"
        );
        let took = leaving.await.expect("shutdown");

        // The session is B's or C's, the same conversation: the new owner's CLI was
        // sent both earlier turns.
        let watcher = claude_code_serve::cluster::Leases::connect(
            &nats.url(),
            "watcher",
            Duration::from_secs(30),
        )
        .await
        .expect("connect");
        let owner = watcher
            .owner("default", "moved")
            .await
            .expect("read")
            .expect("a lease")
            .owner;
        assert!(["host-b", "host-c"].contains(&owner.as_str()), "{owner}");
        assert_eq!(during["session_id"], first["session_id"], "{during}");
        let texts = env.mock.turn_requests().pop().expect("a turn").user_texts();
        for earlier in ["the word is zebra", "a slow one"] {
            assert!(
                texts.iter().any(|t| t.contains(earlier)),
                "history: {texts:?}"
            );
        }
        let prompts: Vec<String> = env
            .mock
            .turn_requests()
            .iter()
            .filter_map(|t| t.last_user_text())
            .collect();
        assert_eq!(
            prompts
                .iter()
                .filter(|p| p.contains("what was the word?"))
                .count(),
            1,
            "the held turn ran once: {prompts:?}"
        );
        eprintln!(
            "hand-over of 1 session behind a 2 s turn: the held turn answered {answered:?} and A stopped {took:?} after shutdown began (lease 30 s)"
        );
        assert!(took < Duration::from_secs(15), "{took:?}");
        b.shutdown().await.expect("b stops");
        c.shutdown().await.expect("c stops");
    }
}
