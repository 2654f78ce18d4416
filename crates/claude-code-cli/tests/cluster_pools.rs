//! Cluster pools with `claude-code serve` processes (each with its own data dir, config
//! dir and `claude-code.toml`, two pool members each) over a real nats-server with
//! JetStream, the real CLI against the test's mock API: 200 pool jobs sent through two
//! hosts, 16 at a time, run on all three; the third is killed with SIGKILL mid-way, and
//! every job is answered exactly once, none lost, none run twice except those the
//! killed host had in flight (redelivered to a survivor).

mod support;

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use claude_code_tests::{eventually, NatsServer};
use futures::StreamExt;
use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// One `claude-code serve` process with the pool `work` of two members.
struct Node {
    child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

async fn node(env: &TestEnv, nats: &NatsServer, name: &str) -> Node {
    let dir = tempfile::tempdir().expect("node dir");
    let config = dir.path().join("claude-code.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nspares = 0\n\n[cluster]\nurl = \"{}\"\nheartbeat_secs = 1\npool_ack_secs = 2\n\n\
             [[pools]]\nname = \"work\"\nsize = 2\nmax_queue = 64\n",
            nats.url()
        ),
    )
    .expect("write config");
    let mut cmd = bare(dir.path());
    cmd.env("CLAUDE_CONFIG_DIR", dir.path().join("claude-config"))
        .env("CLAUDE_CODE_CLI", real_cli())
        .env("CLAUDE_CODE_TMPDIR", env.tmp.path())
        .env("CLAUDE_RS_TEST_MARKER", &env.marker)
        // The test's mock, so that it can count what reached the model.
        .env("ANTHROPIC_BASE_URL", env.mock.url())
        .env("ANTHROPIC_API_KEY", "sk-test-key")
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
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Node {
        child,
        url,
        _dir: dir,
    }
}

/// One job's answer: HTTP status, the node that ran it, the delivery attempt, the body.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    node: String,
    attempt: u32,
    body: Value,
    at: Instant,
}

async fn send(client: reqwest::Client, url: String, prompt: String) -> Answer {
    let r = client
        .post(format!("{url}/v1/pools/work/messages"))
        .json(&json!({ "prompt": prompt }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST to {url}: {e}"));
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let node = header("x-claude-pool-node");
    let attempt = header("x-claude-pool-attempt").parse().unwrap_or(0);
    let status = r.status().as_u16();
    let body = r.json().await.expect("a JSON answer");
    Answer {
        status,
        node,
        attempt,
        body,
        at: Instant::now(),
    }
}

#[tokio::test]
async fn two_hundred_pool_jobs_over_three_hosts_one_killed_mid_way_are_each_answered_exactly_once()
{
    // Each turn takes a quarter second at the model: the killed host has turns in flight.
    let env =
        TestEnv::new(Script::new().fallback(Reply::echo().delay(Duration::from_millis(250)))).await;
    let nats = NatsServer::start();
    let mut a = node(&env, &nats, "node-a").await;
    let mut b = node(&env, &nats, "node-b").await;
    let mut c = node(&env, &nats, "node-c").await;
    let client = reqwest::Client::new();
    let run = format!("{:x}", std::process::id());
    let prompt = |i: usize| format!("job {i:03} marker {run}-{i}");

    let answers: Arc<Mutex<BTreeMap<usize, Answer>>> = Arc::default();
    // The killer: once C has answered some jobs and over 60 are done, and C is running
    // turns right now, SIGKILL it.
    let killer = {
        let answers = answers.clone();
        let c_url = c.url.clone();
        let client = client.clone();
        tokio::spawn(async move {
            eventually(Duration::from_secs(60), "C runs jobs mid-way", || async {
                let (total, on_c) = {
                    let seen = answers.lock().expect("answers");
                    (
                        seen.len(),
                        seen.values().filter(|a| a.node == "node-c").count(),
                    )
                };
                if total < 60 || on_c == 0 {
                    return Err(format!("{total} answered, {on_c} by C"));
                }
                let view = get_json(&client, &format!("{c_url}/v1/pools")).await;
                if view["pools"][0]["busy"].as_u64() >= Some(1) {
                    Ok(())
                } else {
                    Err(format!("C idle: {view}"))
                }
            })
            .await;
            let pid = c.child.id().expect("pid").to_string();
            let killed = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .expect("kill");
            assert!(killed.success());
            let at = Instant::now();
            let _ = c.child.wait().await;
            at
        })
    };

    let started = Instant::now();
    let urls = [a.url.clone(), b.url.clone()];
    let mut jobs = futures::stream::iter(0..200)
        .map(|i| {
            let answers = answers.clone();
            let send = send(client.clone(), urls[i % 2].clone(), prompt(i));
            async move {
                let answer = send.await;
                let before = answers.lock().expect("answers").insert(i, answer);
                assert!(before.is_none(), "job {i} answered twice");
            }
        })
        .buffer_unordered(16);
    while jobs.next().await.is_some() {}
    let elapsed = started.elapsed();
    let killed_at = killer.await.expect("the killer");

    let answers = answers.lock().expect("answers").clone();
    assert_eq!(answers.len(), 200, "every job answered");
    for (i, answer) in &answers {
        assert_eq!(answer.status, 200, "job {i}: {:?}", answer.body);
        assert_eq!(
            answer.body["text"],
            format!("echo: {}", prompt(*i)),
            "job {i} got its own answer"
        );
        assert!(answer.attempt >= 1, "job {i}: {answer:?}");
    }
    let by = |node: &str, before_kill: bool| {
        answers
            .values()
            .filter(|a| a.node == node && (!before_kill || a.at < killed_at))
            .count()
    };
    for n in ["node-a", "node-b", "node-c"] {
        assert!(by(n, true) > 0, "{n} ran jobs before the kill");
    }
    let redelivered: Vec<usize> = answers
        .iter()
        .filter(|(_, a)| a.attempt >= 2)
        .map(|(i, _)| *i)
        .collect();
    assert!(
        !redelivered.is_empty(),
        "the jobs in flight on the killed host were redelivered"
    );
    for i in &redelivered {
        assert!(answers[i].node != "node-c", "job {i} ran on a survivor");
    }
    // None ran twice, except a job the killed host had sent to the model before it died
    // (then run once more on a survivor): each prompt reached the model once, and a
    // second time only for a redelivered job.
    let mut at_model: BTreeMap<String, usize> = BTreeMap::new();
    for r in env.mock.turn_requests() {
        if let Some(text) = r.last_user_text() {
            *at_model.entry(text).or_default() += 1;
        }
    }
    for (i, answer) in &answers {
        let n = at_model.get(&prompt(*i)).copied().unwrap_or(0);
        if answer.attempt == 1 {
            assert_eq!(n, 1, "job {i} reached the model once");
        } else {
            assert!((1..=2).contains(&n), "job {i} reached the model {n} times");
        }
    }
    eprintln!(
        "200 pool jobs in {elapsed:?} ({:.1} jobs/s): node-a {}, node-b {}, node-c {} (before the kill {}); {} redelivered after the kill",
        200.0 / elapsed.as_secs_f64(),
        by("node-a", false),
        by("node-b", false),
        by("node-c", false),
        by("node-c", true),
        redelivered.len()
    );
    for n in [&mut a, &mut b] {
        let status = sigterm_and_wait(&mut n.child).await;
        assert!(status.success(), "{status:?}");
    }
    env.assert_no_leftovers().await;
}
