//! The credential proxy (`claude_code::proxy`) with the real CLI and the mock API: the
//! real key never reaches a child, turns still work, and the proxy's refusals surface as
//! typed errors.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use claude_code::{
    proxy::{Credential, CredentialProxy, ProxyConfig, ProxySession, SessionGrant},
    Error, Options, Session,
};
use claude_code_tests::{eventually, proc_info, Reply, Script, TestEnv};
use futures::StreamExt;

/// A test world with a proxy in front of the mock, and a mock that answers only the
/// real key.
struct ProxyEnv {
    env: TestEnv,
    proxy: CredentialProxy,
    key: String,
}

fn random_key() -> String {
    let mut b = [0u8; 24];
    getrandom(&mut b);
    format!(
        "sk-ant-real-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("read /dev/urandom");
}

impl ProxyEnv {
    async fn new(script: Script) -> ProxyEnv {
        let env = TestEnv::new(script).await;
        let key = random_key();
        env.mock.require_api_key(&key);
        let proxy = CredentialProxy::start(
            ProxyConfig::new(Credential::api_key(&key)).upstream(env.mock.url()),
        )
        .await
        .expect("proxy starts");
        ProxyEnv { env, proxy, key }
    }

    fn grant(&self, grant: SessionGrant) -> ProxySession {
        self.proxy.grant(grant).expect("grant")
    }

    /// The test's options through `grant`, with the minimal environment.
    fn options(&self, grant: &ProxySession) -> Options {
        grant.apply(self.env.options().minimal_env())
    }
}

/// Every process descending from `root` (itself included).
fn descendants(root: u32) -> Vec<u32> {
    let mut found = vec![root];
    loop {
        let more: Vec<u32> = claude_code::procfs::pids()
            .into_iter()
            .filter(|p| !found.contains(p))
            .filter(|p| proc_info(*p).is_some_and(|s| found.contains(&s.ppid)))
            .collect();
        if more.is_empty() {
            return found;
        }
        found.extend(more);
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            files(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn the_real_key_reaches_no_child_yet_the_turn_goes_through() {
    let w = ProxyEnv::new(
        Script::new()
            .reply(Reply::tool_use(
                "Bash",
                serde_json::json!({"command": "echo started > started.txt; sleep 3; echo slept"}),
            ))
            .reply(Reply::text("done").usage(123, 45)),
    )
    .await;
    let grant = w.grant(SessionGrant::new("leak-test"));
    let session = Session::start(w.options(&grant).allowed_tools(["Bash"]))
        .await
        .expect("start");
    let cli = session.pid().expect("the CLI's pid");
    let stream = session.stream("run it").await.expect("stream");
    let turn = tokio::spawn(stream.final_text());
    // While the tool's `sleep` runs: the CLI and every descendant.
    let pids = eventually(Duration::from_secs(60), "the tool's sleep", || async {
        let pids = descendants(cli);
        let sleeping = pids.iter().any(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| contains(&c, "sleep"))
        });
        if sleeping {
            Ok(pids)
        } else {
            Err(pids)
        }
    })
    .await;
    assert!(pids.len() >= 2, "the CLI and its tool's shell: {pids:?}");
    let mut read = 0;
    for pid in &pids {
        for what in ["environ", "cmdline"] {
            let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{what}")) else {
                continue; // it ended meanwhile
            };
            read += 1;
            assert!(
                !contains(&bytes, &w.key),
                "the real key is in /proc/{pid}/{what}"
            );
        }
    }
    assert!(read >= 4, "read {read} /proc files");
    let cli_env = std::fs::read(format!("/proc/{cli}/environ")).expect("the CLI's environ");
    assert!(
        contains(&cli_env, grant.token().expose()),
        "the CLI has its token"
    );
    assert!(contains(
        &cli_env,
        &format!("ANTHROPIC_BASE_URL={}", w.proxy.url())
    ));
    assert_eq!(
        turn.await.expect("join").expect("the turn succeeds"),
        "done"
    );
    session.stop().await.expect("stop");
    // Every file the CLI and its tool wrote: the work dir, the config dir, the scratch dir.
    let mut all = Vec::new();
    for dir in [w.env.cwd.path(), w.env.config.path(), w.env.tmp.path()] {
        files(dir, &mut all);
    }
    assert!(
        all.iter().any(|p| p.ends_with("started.txt")),
        "the tool ran in the work dir: {all:?}"
    );
    assert!(all.len() >= 2, "{all:?}");
    for f in &all {
        let bytes = std::fs::read(f).expect("read");
        assert!(
            !contains(&bytes, &w.key),
            "the real key is in {}",
            f.display()
        );
    }
    // The mock only answers the real key: the proxy injected it, and sent no token.
    let requests = w.env.mock.requests();
    assert!(requests.iter().filter(|r| r.is_turn()).count() >= 2);
    for r in &requests {
        assert!(
            r.headers
                .iter()
                .all(|(_, v)| !v.contains(grant.token().expose())),
            "a header carried the token upstream"
        );
    }
    let usage = grant.usage();
    assert_eq!(usage.requests as usize, requests.len(), "{usage:?}");
    assert!(
        usage.tokens.input_tokens >= 123 && usage.tokens.output_tokens >= 45,
        "{usage:?}"
    );
    w.env.assert_no_leftovers().await;
}

#[tokio::test]
async fn an_unknown_or_revoked_token_is_a_typed_401() {
    let w = ProxyEnv::new(Script::new().fallback(Reply::text("never"))).await;
    let options = w
        .env
        .options()
        .env("ANTHROPIC_BASE_URL", w.proxy.url())
        .env("ANTHROPIC_API_KEY", "sk-ant-proxy-made-up");
    let err = turn_error(options).await;
    assert!(matches!(err, Error::Api { status: 401, .. }), "{err:?}");
    let grant = w.grant(SessionGrant::new("revoked"));
    let options = w.options(&grant);
    grant.revoke();
    let err = turn_error(options).await;
    assert!(matches!(err, Error::Api { status: 401, .. }), "{err:?}");
    assert!(
        w.env.mock.requests().is_empty(),
        "nothing reached the upstream"
    );
}

async fn turn_error(options: Options) -> Error {
    let session = Session::start(options).await.expect("start");
    let err = tokio::time::timeout(Duration::from_secs(60), async {
        session
            .stream("hi")
            .await
            .expect("stream")
            .final_text()
            .await
            .expect_err("the turn fails")
    })
    .await
    .expect("the turn ended promptly");
    session.stop().await.expect("stop");
    err
}

#[tokio::test]
async fn a_session_over_its_budget_gets_the_typed_error() {
    let w = ProxyEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let grant = w.grant(SessionGrant::new("budgeted").max_spend_usd(0.05));
    let session = Session::start(w.options(&grant)).await.expect("start");
    let summary = session.stream("one").await.expect("stream").collect().await;
    let summary = summary.expect("the first turn is within budget");
    grant.record_spend(summary.cost_usd().unwrap_or(0.0).max(0.06));
    let turns_before = w.env.mock.turn_requests().len();
    let started = Instant::now();
    let err = session
        .stream("two")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect_err("over budget");
    assert!(err.is_budget_exceeded(), "{err:?}");
    assert_eq!(err.api_status(), Some(402));
    assert!(err.to_string().contains("budgeted"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "not retried");
    assert_eq!(
        w.env.mock.turn_requests().len(),
        turns_before,
        "not forwarded"
    );
    assert!(grant.usage().refused >= 1);
    assert!(!session.is_closed(), "the session survives");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn an_unreachable_upstream_fails_the_turn_fast_and_typed() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let env = TestEnv::new(Script::new()).await;
    let proxy = CredentialProxy::start(ProxyConfig::new(Credential::api_key("k")).upstream(&dead))
        .await
        .expect("proxy");
    let grant = proxy.grant(SessionGrant::new("down")).expect("grant");
    let started = Instant::now();
    // The CLI retries a 502 as it would a direct connection failure; with no retries
    // the error surfaces at once.
    let err = turn_error(grant.apply(env.options().max_api_retries(0))).await;
    assert_eq!(err.api_status(), Some(502), "{err:?}");
    assert!(
        err.to_string().contains("cannot reach the upstream"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A request body the mock treats as a turn (it pops a script reply).
fn turn_body() -> serde_json::Value {
    serde_json::json!({
        "model": "claude-mock", "max_tokens": 100, "stream": true,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "hi"}],
    })
}

#[tokio::test]
async fn sse_passes_through_chunk_by_chunk_and_its_usage_is_counted() {
    let delay = Duration::from_millis(150);
    let text = "a".repeat(32 * 6);
    let w = ProxyEnv::new(Script::new().reply(Reply::text(&text).chunk_delay(delay).usage(77, 33)))
        .await;
    let grant = w.grant(SessionGrant::new("sse"));
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages?beta=true", w.proxy.url()))
        .header("x-api-key", grant.token().expose())
        .json(&turn_body())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let mut arrivals = Vec::new();
    let mut body = Vec::new();
    let mut chunks = resp.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("chunk");
        if memchr::memmem::find(&chunk, b"text_delta").is_some() {
            arrivals.push(started.elapsed());
        }
        body.extend_from_slice(&chunk);
    }
    assert!(
        arrivals.len() >= 4,
        "deltas arrived in {} reads",
        arrivals.len()
    );
    let spread = arrivals[arrivals.len() - 1] - arrivals[0];
    assert!(
        spread >= delay * 3,
        "the deltas arrived together ({spread:?} apart): the proxy buffered"
    );
    assert!(String::from_utf8_lossy(&body).contains("message_stop"));
    let usage = grant.usage();
    assert_eq!(usage.requests, 1);
    assert_eq!(
        (usage.tokens.input_tokens, usage.tokens.output_tokens),
        (77, 33)
    );
}

#[tokio::test]
async fn the_proxy_rate_limits_a_session_and_answers_in_the_api_shape() {
    let w = ProxyEnv::new(Script::new().fallback(Reply::text("ok"))).await;
    let grant = w.grant(SessionGrant::new("rated").requests_per_minute(2));
    let client = reqwest::Client::new();
    let post = |key: String| {
        client
            .post(format!("{}/v1/messages", w.proxy.url()))
            .header("x-api-key", key)
            .json(&turn_body())
            .send()
    };
    for _ in 0..2 {
        let r = post(grant.token().expose().to_string())
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body");
    }
    let r = post(grant.token().expose().to_string())
        .await
        .expect("send");
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(
        w.env.mock.turn_requests().len(),
        2,
        "the third was not forwarded"
    );
    // Another session has its own rate.
    let other = w.grant(SessionGrant::new("other"));
    assert_eq!(
        post(other.token().expose().to_string())
            .await
            .expect("send")
            .status(),
        200
    );
    // No token, or a wrong one: 401 in the API's shape; nothing forwarded.
    let r = post("sk-ant-proxy-wrong".into()).await.expect("send");
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(w.env.mock.turn_requests().len(), 3);
    assert_eq!(grant.usage().refused, 1);
}
