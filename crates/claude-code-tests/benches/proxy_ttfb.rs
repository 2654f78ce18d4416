//! Time to first byte added by the credential proxy: the same streamed Messages request
//! to the mock API on loopback, direct and through `claude_code::proxy`, over kept-alive
//! connections, interleaved. Prints min and median of each and the difference (target:
//! at most 2 ms added). Run: `cargo bench -p claude-code-host-tests --bench proxy_ttfb`.

use std::time::{Duration, Instant};

use claude_code::proxy::{Credential, CredentialProxy, ProxyConfig, SessionGrant};
use claude_code_tests::{MockServer, Reply, Script};
use futures::StreamExt;

const ROUNDS: usize = 400;

async fn ttfb(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &serde_json::Value,
) -> Duration {
    let started = Instant::now();
    let resp = client
        .post(url)
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .expect("send");
    assert!(resp.status().is_success(), "{}", resp.status());
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.expect("a first chunk").expect("chunk");
    let took = started.elapsed();
    assert!(!first.is_empty());
    while stream.next().await.is_some() {}
    took
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2])
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mock = MockServer::start(Script::new().fallback(Reply::text("hello from the mock")))
            .await
            .expect("mock");
        let proxy = CredentialProxy::start(
            ProxyConfig::new(Credential::api_key("sk-bench")).upstream(mock.url()),
        )
        .await
        .expect("proxy");
        let grant = proxy.grant(SessionGrant::new("bench")).expect("grant");
        let body = serde_json::json!({
            "model": "claude-mock", "max_tokens": 100, "stream": true,
            "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "hi"}],
        });
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .expect("client");
        let direct_url = format!("{}/v1/messages", mock.url());
        let proxy_url = format!("{}/v1/messages", proxy.url());
        let token = grant.token().expose().to_string();
        // Warm both paths (connections, the proxy's upstream pool).
        for _ in 0..20 {
            ttfb(&client, &direct_url, "sk-bench", &body).await;
            ttfb(&client, &proxy_url, &token, &body).await;
        }
        let (mut direct, mut proxied) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            direct.push(ttfb(&client, &direct_url, "sk-bench", &body).await);
            proxied.push(ttfb(&client, &proxy_url, &token, &body).await);
        }
        let (dmin, dmed) = stats(direct);
        let (pmin, pmed) = stats(proxied);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!("time to first byte over {ROUNDS} streamed requests each, loopback:");
        println!(
            "  direct to the mock: min {:8.1} µs  median {:8.1} µs",
            us(dmin),
            us(dmed)
        );
        println!(
            "  through the proxy:  min {:8.1} µs  median {:8.1} µs",
            us(pmin),
            us(pmed)
        );
        println!(
            "  added by the proxy: min {:8.1} µs  median {:8.1} µs  (target ≤ 2000 µs)",
            us(pmin) - us(dmin),
            us(pmed) - us(dmed)
        );
        assert_eq!(grant.usage().requests as usize, ROUNDS + 20);
    });
}
