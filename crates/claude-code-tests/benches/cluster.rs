//! The cluster's routing cost: a session's turn through the HTTP API of the host that
//! owns it (`local`) against the same turn through another host of the cluster, which
//! forwards it to the owner over NATS (`routed`), both as one JSON reply. Two hosts in
//! this process, one real nats-server with JetStream on loopback, the real CLI against
//! the mock Messages API (which answers at once, so the ratio is the worst case: a real
//! model's seconds dilute it). Turns alternate local and routed on one session; printed:
//! min and median per path, and the median ratio (the target: <= 1.10x).
//!
//! `cargo bench -p claude-code-host-tests --bench cluster`. Environment: `TURNS` per path
//! (default 40). Under `cargo test` it does nothing.

use std::time::{Duration, Instant};

use claude_code_serve::{cluster::ClusterConfig, Host, HostConfig};
use claude_code_tests::{NatsServer, Reply, Script, TestEnv};
use serde_json::json;

async fn host(env: &TestEnv, nats: &NatsServer, node: &str) -> Host {
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(env.options())
        .offline(false)
        .cluster(ClusterConfig::new(nats.url()).node_name(node));
    config.spares = 0;
    Host::start(config).await.expect("host starts")
}

async fn turn(client: &reqwest::Client, url: &str) -> Duration {
    let start = Instant::now();
    let r = client
        .post(format!("{url}/v1/sessions/bench/messages"))
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

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let turns: usize = std::env::var("TURNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = TestEnv::new(Script::new().fallback(Reply::text("pong"))).await;
        let nats = NatsServer::start();
        let owner = host(&env, &nats, "owner").await;
        let other = host(&env, &nats, "other").await;
        let client = reqwest::Client::new();
        let created = client
            .post(format!("{}/v1/sessions", owner.url()))
            .json(&json!({"name": "bench"}))
            .send()
            .await
            .expect("create");
        assert_eq!(created.status().as_u16(), 201);
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
        local.sort();
        routed.sort();
        let median = |v: &[Duration]| v[v.len() / 2];
        println!("cluster routing, {turns} JSON turns per path (real CLI, mock API):");
        println!(
            "  local : min {:7.2} ms  median {:7.2} ms",
            ms(local[0]),
            ms(median(&local))
        );
        println!(
            "  routed: min {:7.2} ms  median {:7.2} ms",
            ms(routed[0]),
            ms(median(&routed))
        );
        let ratio = median(&routed).as_secs_f64() / median(&local).as_secs_f64();
        let added = ms(median(&routed)) - ms(median(&local));
        println!(
            "  routed/local median ratio {ratio:.3}x (added {added:.2} ms per turn; target <= 1.10x: {})",
            if ratio <= 1.10 { "met" } else { "not met" }
        );
        other.shutdown().await.expect("stop");
        owner.shutdown().await.expect("stop");
    });
}
