//! The cluster's costs, with hosts in this process, one real nats-server with JetStream on
//! loopback, and the real CLI against the mock Messages API (which answers at once, so
//! the ratios are the worst case: a real model's seconds dilute them).
//!
//! - `latency`: a session's turn through the HTTP API of the host that owns it (`local`)
//!   against the same turn through another host, which forwards it to the owner over NATS
//!   (`routed`), both as one JSON reply. Turns alternate local and routed on one session;
//!   printed: min and median per path, and the median ratio (the target: <= 1.10x).
//! - `throughput`: messages (turns) per second with `SESSIONS` sessions on one owner, each
//!   sent turns back to back by its own client, through the owner and through another
//!   host; rounds alternate; printed: turns/s per path and the ratio.
//! - `failover`: `ROUNDS` times, three hosts (heartbeat 0.5 s so the TTL is 1.5 s; lease
//!   2 s), a session on A that answered one turn, then A dies without leaving
//!   (`Host::abort`, as a crash); printed per part, min and median: until the others see A
//!   gone (heartbeat TTL), until its lease ends, until a survivor claimed it and restored
//!   its checkpoint (the scan every heartbeat), and then until the next message is
//!   answered (the new owner's CLI starts with `--resume`).
//! - `pools`: one host's pool of 2 CLIs without a cluster (`local`) against the same host
//!   clustered, where every pool request is a job in the JetStream work queue; `JOBS`
//!   jobs 8 at a time (jobs/s), then 30 one at a time (median and min latency); then 30
//!   SSE requests one at a time (`Accept: text/event-stream`; in the cluster a streamed
//!   job): time to the first event and to the stream's end (median and min).
//! - `scaling`: how many live sessions one host holds against a cluster of three, when
//!   each host admits `CAP` live CLIs (`Admission::max_live`: the stand-in for one
//!   machine's memory, since the three hosts here share one machine). `3 x CAP` sessions
//!   are made through one host (in the cluster, placement by capacity spreads them), then
//!   sent one turn each at once, three rounds: one host must hibernate and resume
//!   sessions to stay within its cap, three hold them all live. Printed: live sessions
//!   after the rounds, the spread, turns/s, and the ratios.
//!
//! `cargo bench -p claude-code-host-tests --bench cluster [-- latency|throughput|failover|pools|scaling]`
//! (default: all). Environment: `TURNS` per path (default 40), `SESSIONS` (default 4),
//! `ROUNDS` (default 5), `JOBS` (default 120), `CAP` (default 4). Under `cargo test` it
//! does nothing.

use std::time::{Duration, Instant};

use std::path::Path;

use claude_code::Admission;
use claude_code_serve::{cluster::ClusterConfig, Host, HostConfig, PoolConfig};
use claude_code_tests::{NatsServer, Reply, Script, TestEnv};
use futures::StreamExt;
use serde_json::json;

async fn host(env: &TestEnv, nats: &NatsServer, node: &str) -> Host {
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .cluster(ClusterConfig::new(nats.url()).node_name(node));
    config.spares = 0;
    Host::start(config).await.expect("host starts")
}

/// A host with its own CLI config dir (a transcript can only come from the checkpoint),
/// a 0.5 s heartbeat and a 2 s lease.
async fn failover_host(env: &TestEnv, nats: &NatsServer, node: &str, dir: &Path) -> Host {
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
                .lease(Duration::from_secs(2)),
        );
    config.spares = 0;
    Host::start(config).await.expect("host starts")
}

async fn create(client: &reqwest::Client, url: &str, name: &str) {
    let created = client
        .post(format!("{url}/v1/sessions"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status().as_u16(), 201);
}

async fn turn(client: &reqwest::Client, url: &str) -> Duration {
    turn_on(client, url, "bench").await
}

async fn turn_on(client: &reqwest::Client, url: &str, session: &str) -> Duration {
    let start = Instant::now();
    let r = client
        .post(format!("{url}/v1/sessions/{session}/messages"))
        .json(&json!({"prompt": "ping"}))
        .send()
        .await
        .expect("turn");
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["is_error"], false, "{body}");
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let picked: Vec<&str> = args
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|a| ["latency", "throughput", "failover", "pools", "scaling"].contains(a))
        .collect();
    let run = |part: &str| picked.is_empty() || picked.contains(&part);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if run("latency") {
            latency(env_usize("TURNS", 40)).await;
        }
        if run("throughput") {
            throughput(env_usize("SESSIONS", 4), env_usize("TURNS", 40)).await;
        }
        if run("failover") {
            failover(env_usize("ROUNDS", 5)).await;
        }
        if run("pools") {
            pools(env_usize("JOBS", 120)).await;
        }
        if run("scaling") {
            scaling(env_usize("CAP", 4)).await;
        }
    });
}

async fn latency(turns: usize) {
    let env = TestEnv::new(Script::new().fallback(Reply::text("pong"))).await;
    let nats = NatsServer::start();
    let owner = host(&env, &nats, "owner").await;
    let other = host(&env, &nats, "other").await;
    let client = reqwest::Client::new();
    create(&client, &owner.url(), "bench").await;
    // Warm both paths (the CLI's first turn, the connections).
    for _ in 0..3 {
        turn(&client, &owner.url()).await;
        turn(&client, &other.url()).await;
    }
    let (mut local, mut routed) = (Vec::new(), Vec::new());
    for _ in 0..turns {
        local.push(turn(&client, &owner.url()).await);
        routed.push(turn(&client, &other.url()).await);
    }
    let (local_med, routed_med) = (median(&mut local), median(&mut routed));
    println!("cluster routing, {turns} JSON turns per path (real CLI, mock API):");
    println!(
        "  local : min {:7.2} ms  median {:7.2} ms",
        ms(local[0]),
        ms(local_med)
    );
    println!(
        "  routed: min {:7.2} ms  median {:7.2} ms",
        ms(routed[0]),
        ms(routed_med)
    );
    let ratio = routed_med.as_secs_f64() / local_med.as_secs_f64();
    let added = ms(routed_med) - ms(local_med);
    println!(
        "  routed/local median ratio {ratio:.3}x (added {added:.2} ms per turn; target <= 1.10x: {})",
        if ratio <= 1.10 { "met" } else { "not met" }
    );
    other.shutdown().await.expect("stop");
    owner.shutdown().await.expect("stop");
}

/// Turns per second with `sessions` clients, each sending `turns` turns back to back to
/// its own session through `url`.
async fn rate(client: &reqwest::Client, url: &str, sessions: usize, turns: usize) -> f64 {
    let start = Instant::now();
    let clients = (0..sessions).map(|i| {
        let (client, url) = (client.clone(), url.to_string());
        async move {
            for _ in 0..turns {
                turn_on(&client, &url, &format!("tp{i}")).await;
            }
        }
    });
    futures::future::join_all(clients).await;
    (sessions * turns) as f64 / start.elapsed().as_secs_f64()
}

async fn throughput(sessions: usize, turns: usize) {
    let env = TestEnv::new(Script::new().fallback(Reply::text("pong"))).await;
    let nats = NatsServer::start();
    let owner = host(&env, &nats, "owner").await;
    let other = host(&env, &nats, "other").await;
    let client = reqwest::Client::new();
    for i in 0..sessions {
        create(&client, &owner.url(), &format!("tp{i}")).await;
    }
    rate(&client, &owner.url(), sessions, 2).await;
    rate(&client, &other.url(), sessions, 2).await;
    let (mut local, mut routed) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        local.push(rate(&client, &owner.url(), sessions, turns / 2).await);
        routed.push(rate(&client, &other.url(), sessions, turns / 2).await);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "cluster throughput, {sessions} sessions x {} turns back to back per round, 2 rounds per path:",
        turns / 2
    );
    println!(
        "  local : {:6.1} turns/s (best {:6.1})",
        mean(&local),
        best(&local)
    );
    println!(
        "  routed: {:6.1} turns/s (best {:6.1})",
        mean(&routed),
        best(&routed)
    );
    println!(
        "  routed/local turns/s ratio {:.3}x",
        mean(&routed) / mean(&local)
    );
    other.shutdown().await.expect("stop");
    owner.shutdown().await.expect("stop");
}

async fn failover(rounds: usize) {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let client = reqwest::Client::new();
    let (mut gone, mut lease_end, mut claimed, mut resumed, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let nats = NatsServer::start();
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("config dir"))
            .collect();
        let a = failover_host(&env, &nats, "host-a", dirs[0].path()).await;
        let b = failover_host(&env, &nats, "host-b", dirs[1].path()).await;
        let c = failover_host(&env, &nats, "host-c", dirs[2].path()).await;
        let name = format!("fo{round}");
        create(&client, &a.url(), &name).await;
        turn_on(&client, &c.url(), &name).await;
        let watcher = claude_code_serve::cluster::Leases::connect(
            &nats.url(),
            "watcher",
            Duration::from_secs(2),
        )
        .await
        .expect("connect");
        let expires = watcher
            .owner("default", &name)
            .await
            .expect("read")
            .expect("a lease")
            .expires_ms;
        let killed = Instant::now();
        let killed_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        a.abort().await.expect("a stops");
        // Polled every 10 ms: the figures are good to about that.
        let mut seen_gone = None;
        let owner = loop {
            if seen_gone.is_none() {
                let view: serde_json::Value = client
                    .get(format!("{}/v1/cluster", b.url()))
                    .send()
                    .await
                    .expect("cluster")
                    .json()
                    .await
                    .expect("json");
                let listed = view["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["node"] == "host-a"));
                if !listed {
                    seen_gone = Some(killed.elapsed());
                }
            }
            match watcher.owner("default", &name).await {
                Ok(Some(l)) if l.owner != "host-a" => break l.owner,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let claim = killed.elapsed();
        let new_owner = if owner == "host-b" { &b } else { &c };
        let before_turn = Instant::now();
        turn_on(&client, &new_owner.url(), &name).await;
        resumed.push(before_turn.elapsed());
        total.push(killed.elapsed());
        claimed.push(claim);
        gone.push(seen_gone.unwrap_or(claim));
        lease_end.push(Duration::from_millis(expires.saturating_sub(killed_ms)));
        b.shutdown().await.expect("stop");
        c.shutdown().await.expect("stop");
    }
    println!(
        "cluster failover, {rounds} rounds (heartbeat 0.5 s: TTL 1.5 s; lease 2 s), from the kill:"
    );
    for (label, v) in [
        ("others see the owner gone (TTL)  ", &mut gone),
        ("its lease ends                   ", &mut lease_end),
        ("claimed + checkpoint restored    ", &mut claimed),
        ("then next turn answered (resume) ", &mut resumed),
        ("kill -> next turn answered       ", &mut total),
    ] {
        let med = median(v);
        println!(
            "  {label}: min {:7.1} ms  median {:7.1} ms",
            ms(v[0]),
            ms(med)
        );
    }
}

async fn pool_job(client: &reqwest::Client, url: &str, prompt: String) {
    let r = client
        .post(format!("{url}/v1/pools/work/messages"))
        .json(&json!({ "prompt": prompt }))
        .send()
        .await
        .expect("pool request");
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["is_error"], false, "{body}");
}

/// One SSE pool request: the time to its first event and to its stream's end.
async fn sse_pool_job(client: &reqwest::Client, url: &str, prompt: String) -> (Duration, Duration) {
    let t = Instant::now();
    let r = client
        .post(format!("{url}/v1/pools/work/messages"))
        .header("accept", "text/event-stream")
        .json(&json!({ "prompt": prompt }))
        .send()
        .await
        .expect("pool request");
    assert_eq!(r.status().as_u16(), 200);
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("SSE body")));
        if first.is_none() && text.contains("\n\n") {
            first = Some(t.elapsed());
        }
    }
    assert!(text.contains("event: result"), "{text}");
    assert!(!text.contains("event: error"), "{text}");
    (first.unwrap_or_else(|| t.elapsed()), t.elapsed())
}

async fn pools(jobs: usize) {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let nats = NatsServer::start();
    let with_pool = |cluster: Option<ClusterConfig>| {
        let mut pool = PoolConfig::new("work", env.options(), 2);
        pool.max_queue = 64;
        pool.queue_timeout = Duration::from_secs(30);
        let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
            .options(env.options())
            .offline(false)
            .pool(pool);
        if let Some(cluster) = cluster {
            config = config.cluster(cluster);
        }
        config.spares = 0;
        config
    };
    let local = Host::start(with_pool(None)).await.expect("local host");
    let clustered = Host::start(with_pool(Some(
        ClusterConfig::new(nats.url()).node_name("pooled"),
    )))
    .await
    .expect("clustered host");
    let client = reqwest::Client::new();
    println!("cluster pools, one host with a pool of 2 CLIs (real CLI, mock API):");
    for (label, h) in [("local  ", &local), ("cluster", &clustered)] {
        let url = h.url();
        let url = url.as_str();
        for i in 0..4 {
            pool_job(&client, url, format!("warm {i}")).await;
        }
        let started = Instant::now();
        futures::stream::iter(0..jobs)
            .map(|i| pool_job(&client, url, format!("{label} {i}")))
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
        let rate = jobs as f64 / started.elapsed().as_secs_f64();
        let mut one = Vec::new();
        for i in 0..30 {
            let t = Instant::now();
            pool_job(&client, url, format!("{label} one {i}")).await;
            one.push(t.elapsed());
        }
        let med = median(&mut one);
        println!(
            "  {label}: {jobs} jobs 8 at a time {rate:6.1} jobs/s; one at a time median {:6.1} ms, min {:6.1} ms",
            ms(med),
            ms(one[0])
        );
        let (mut first, mut total) = (Vec::new(), Vec::new());
        for i in 0..30 {
            let (f, t) = sse_pool_job(&client, url, format!("{label} sse {i}")).await;
            first.push(f);
            total.push(t);
        }
        let (first_med, total_med) = (median(&mut first), median(&mut total));
        println!(
            "  {label}: 30 SSE requests one at a time: first event median {:6.1} ms (min {:6.1}), end median {:6.1} ms (min {:6.1})",
            ms(first_med),
            ms(first[0]),
            ms(total_med),
            ms(total[0])
        );
    }
    local.shutdown().await.expect("stop");
    clustered.shutdown().await.expect("stop");
}

/// A host that admits `cap` live CLIs, in the cluster when `nats` is given.
async fn capped_host(env: &TestEnv, nats: Option<&NatsServer>, node: &str, cap: usize) -> Host {
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false);
    if let Some(nats) = nats {
        config = config.cluster(
            ClusterConfig::new(nats.url())
                .node_name(node)
                .heartbeat(Duration::from_millis(500)),
        );
    }
    config.spares = 0;
    config.admission = Some(
        Admission::new()
            .max_live(cap)
            .wait_timeout(Duration::from_millis(500)),
    );
    Host::start(config).await.expect("host starts")
}

/// Makes `n` sessions through `url` (placement by capacity in a cluster) and sends each a
/// turn: their names and owners.
async fn fill(client: &reqwest::Client, url: &str, n: usize) -> Vec<(String, String)> {
    let mut made = Vec::new();
    for i in 0..n {
        let name = format!("sc{i}");
        let r = client
            .post(format!("{url}/v1/sessions"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status().as_u16(), 201);
        let created: serde_json::Value = r.json().await.expect("json");
        let owner = created["owner"].as_str().unwrap_or("-").to_string();
        turn_on(client, url, &name).await;
        made.push((name, owner));
    }
    made
}

/// Sessions whose CLI is running, as the session list through `url` says.
async fn live(client: &reqwest::Client, url: &str) -> usize {
    let list: serde_json::Value = client
        .get(format!("{url}/v1/sessions"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list["sessions"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|s| s["status"] == "live").count())
}

async fn scaling(cap: usize) {
    let env = TestEnv::new(Script::new().fallback(Reply::text("pong"))).await;
    let client = reqwest::Client::new();
    let n = cap * 3;
    const ROUNDS: usize = 3;
    // One host.
    let alone = capped_host(&env, None, "alone", cap).await;
    fill(&client, &alone.url(), n).await;
    let mut one_rates = Vec::new();
    for _ in 0..ROUNDS {
        one_rates.push(round(&client, &alone.url(), n).await);
    }
    let one_live = live(&client, &alone.url()).await;
    alone.shutdown().await.expect("stop");
    // Three hosts, sessions made and sent through the first.
    let nats = NatsServer::start();
    let mut hosts = Vec::new();
    for node in ["host-a", "host-b", "host-c"] {
        hosts.push(capped_host(&env, Some(&nats), node, cap).await);
    }
    let made = fill(&client, &hosts[0].url(), n).await;
    let mut three_rates = Vec::new();
    for _ in 0..ROUNDS {
        three_rates.push(round(&client, &hosts[0].url(), n).await);
    }
    let three_live = live(&client, &hosts[0].url()).await;
    let spread: Vec<String> = ["host-a", "host-b", "host-c"]
        .iter()
        .map(|node| format!("{node} {}", made.iter().filter(|(_, o)| o == node).count()))
        .collect();
    for h in hosts {
        h.shutdown().await.expect("stop");
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "cluster scaling, {n} sessions each sent one turn at once, {ROUNDS} rounds; {cap} live CLIs admitted per host (real CLI, mock API, one machine):"
    );
    println!(
        "  one host   : {one_live:3} of {n} live after the rounds; {:6.1} turns/s (rounds {:?})",
        mean(&one_rates),
        one_rates
            .iter()
            .map(|r| (r * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    println!(
        "  three hosts: {three_live:3} of {n} live after the rounds (placed: {}); through host-a {:6.1} turns/s (rounds {:?})",
        spread.join(", "),
        mean(&three_rates),
        three_rates.iter().map(|r| (r * 10.0).round() / 10.0).collect::<Vec<_>>()
    );
    println!(
        "  three/one: live sessions {:.2}x, turns/s {:.2}x",
        three_live as f64 / one_live.max(1) as f64,
        mean(&three_rates) / mean(&one_rates)
    );
}

/// One turn on each of the `n` sessions at once, through `url`: turns per second.
async fn round(client: &reqwest::Client, url: &str, n: usize) -> f64 {
    let started = Instant::now();
    futures::future::join_all((0..n).map(|i| {
        let name = format!("sc{i}");
        async move { turn_on(client, url, &name).await }
    }))
    .await;
    n as f64 / started.elapsed().as_secs_f64()
}
