//! The host (`claude-code serve`) against the SDK in-process, printed as ratios:
//! 1. `overhead`: `POST /v1/pools/{pool}/messages` (JSON reply) on a pool of 4 members at
//!    8 and 64 concurrent connections, beside the same closed-loop load through
//!    `Pool::stream` in-process on a pool of the same configuration: requests/s, p50,
//!    p99 and the p50 ratio (target <= 1.05x). `overhead-real`: the real CLI against the
//!    mock Messages API (which answers at once); `overhead-fake`: the fake CLI (answering
//!    `/clear` locally like the real one), the host's own ceiling with the CLI taken out.
//!    The host keeps its state store in a data dir, as deployed. The load generator is
//!    this binary: one reqwest client, N tasks each sending its next request when the
//!    previous one is answered; runs alternate between in-process and HTTP (`ROUNDS`).
//!    When `wrk` is installed (Debian's `wrk`), it is run against the fake-CLI host too
//!    (`WRK_SECS` each). The fake CLI is also measured at 1 connection (no queueing).
//! 2. `sse`: messages/s through one turn of `FLOOD` (default 20,000) x 1 KiB assistant
//!    messages from the fake CLI, via `POST /v1/sessions/{name}/messages` with
//!    `Accept: text/event-stream` (the client splits the SSE frames and counts events up
//!    to `result`; it does not decode their JSON), against `Session::stream` in-process
//!    on the same fake CLI (target >= 0.8x). Median of `TURNS` turns each. Two hosts:
//!    one started in this process (sharing the runtime and the cores with the client),
//!    and a host process of its own (see `memory`: this binary as a host, or `HOST_BIN`),
//!    with reqwest as the client, and `curl` too when installed (its own transfer time).
//! 3. `memory`: a host process's RSS at rest with 0 and with 1,000 dynamic sessions
//!    restored hibernated from its state store (target < 64 KiB per session), beside the
//!    SQLite file's size. The store is filled through the API (`POST /v1/sessions` and
//!    one turn each, on the fake CLI); the host measured is this binary re-executed as a
//!    host only (`Host::start` on a current-thread runtime, as `claude-code serve`
//!    runs it), or the `claude-code` binary named by `HOST_BIN`.
//!
//! `cargo bench -p claude-code-host-tests --bench host`. Environment: `SECTIONS`, any of
//! `overhead` (= `overhead-real,overhead-fake`), `sse`, `memory` (default all);
//! `REQUESTS` per run with the real CLI (default 64; at 64 connections at least 128);
//! `FAKE_REQUESTS` per run with the fake CLI (default 3000); `ROUNDS` (default 3);
//! `WRK_SECS` (default 3; 0: no wrk);
//! `FLOOD`; `TURNS` (default 10); `SESSIONS` (default 1000); `HOST_BIN`. Under
//! `cargo test` it does nothing: the figures need a quiet machine and minutes.

use std::{
    future::Future,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use claude_code::{Options, Pool, Session, SessionSpec};
use claude_code_serve::{Host, HostConfig, PoolConfig};
use claude_code_tests::{rss_kib, Reply, Script, TestEnv};
use futures::StreamExt;
use serde_json::{json, Value};

const FAKE: &str = env!("CARGO_BIN_EXE_fake-claude");
const POOL_SIZE: usize = 4;
const MAX_QUEUE: usize = 1024;
const QUEUE_TIMEOUT: Duration = Duration::from_secs(120);

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// A host on 127.0.0.1:0 with nothing but what the caller adds: no warm spares, the
/// sessions' own Messages API (not the built-in mock).
fn host_config(options: Options) -> HostConfig {
    let mut config = HostConfig::new("127.0.0.1:0".parse().expect("addr"))
        .options(options)
        .offline(false);
    config.spares = 0;
    config
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("http client")
}

// ---------------------------------------------------------------------------------------
// 1. HTTP overhead

/// Latencies and wall time of one closed-loop run.
#[derive(Default)]
struct Load {
    latencies: Vec<Duration>,
    wall: Duration,
    failed: usize,
}

impl Load {
    fn add(&mut self, other: Load) {
        self.latencies.extend(other.latencies);
        self.wall += other.wall;
        self.failed += other.failed;
    }

    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    fn p(&mut self, p: f64) -> Duration {
        self.latencies.sort();
        percentile(&self.latencies, p)
    }
}

/// `total` requests from `concurrency` tasks, each sending its next request when the
/// previous one is answered.
async fn closed_loop<F, Fut>(concurrency: usize, total: usize, op: F) -> Load
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, op, failures) = (next.clone(), op.clone(), failures.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return latencies;
                    }
                    let t = Instant::now();
                    match op(i).await {
                        Ok(()) => latencies.push(t.elapsed()),
                        Err(e) => failures.lock().expect("lock").push(e),
                    }
                }
            })
        })
        .collect();
    let mut load = Load::default();
    for t in tasks {
        load.latencies.extend(t.await.expect("load task"));
    }
    load.wall = started.elapsed();
    let failures = failures.lock().expect("lock");
    load.failed = failures.len();
    if let Some(first) = failures.first() {
        eprintln!(
            "overhead: {} requests failed, first: {first}",
            failures.len()
        );
    }
    load
}

async fn in_process(pool: &Pool, concurrency: usize, total: usize) -> Load {
    let pool = pool.clone();
    closed_loop(concurrency, total, move |i| {
        let pool = pool.clone();
        async move {
            let prompt = format!("bench {i}");
            let text = pool
                .stream(prompt.as_str())
                .await
                .map_err(|e| e.to_string())?
                .final_text()
                .await
                .map_err(|e| e.to_string())?;
            check(&text, &prompt)
        }
    })
    .await
}

async fn over_http(url: &str, concurrency: usize, total: usize) -> Load {
    let (client, url) = (client(), Arc::new(url.to_string()));
    closed_loop(concurrency, total, move |i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let prompt = format!("bench {i}");
            let r = client
                .post(url.as_str())
                .json(&json!({ "prompt": prompt }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let body: Value = r.json().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{status}: {body}"));
            }
            check(body["text"].as_str().unwrap_or_default(), &prompt)
        }
    })
    .await
}

fn check(text: &str, prompt: &str) -> Result<(), String> {
    if text == format!("echo: {prompt}") {
        Ok(())
    } else {
        Err(format!("unexpected reply {text:?} to {prompt:?}"))
    }
}

/// `wrk`'s requests/s, p50 and p99 at `concurrency` connections for `secs` seconds of
/// `POST url` with a fixed prompt, when `wrk` is installed (`None` otherwise).
fn wrk(url: &str, concurrency: usize, secs: u64) -> Option<(f64, Duration, Duration)> {
    let script = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        script.path(),
        "wrk.method = \"POST\"\nwrk.body = '{\"prompt\":\"bench\"}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )
    .expect("write the wrk script");
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{concurrency}"), &format!("-d{secs}s")])
        .args(["--timeout", "120s", "--latency", "-s"])
        .arg(script.path())
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!(
            "overhead: wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
        eprintln!("overhead: wrk: {}", line.trim());
    }
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let duration = |v: String| {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        let secs = match unit {
            "us" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            _ => f64::NAN,
        };
        Duration::try_from_secs_f64(secs).unwrap_or_default()
    };
    Some((
        field("Requests/sec:").parse().unwrap_or(f64::NAN),
        duration(field("50%")),
        duration(field("99%")),
    ))
}

async fn overhead(
    label: &str,
    options: Options,
    concurrencies: &[usize],
    requests: usize,
    rounds: usize,
    wrk_secs: u64,
) {
    let mut config = PoolConfig::new("bench", options.clone(), POOL_SIZE);
    config.max_queue = MAX_QUEUE;
    config.queue_timeout = QUEUE_TIMEOUT;
    // As deployed: the state store (ledger, audit trail) on disk.
    let data = tempfile::tempdir().expect("temp dir");
    let host = Host::start(
        host_config(options.clone())
            .data_dir(data.path())
            .pool(config),
    )
    .await
    .expect("host starts");
    let pool = Pool::builder(SessionSpec::new("bench").options(options))
        .size(POOL_SIZE)
        .max_queue(MAX_QUEUE)
        .queue_timeout(QUEUE_TIMEOUT)
        .start()
        .await
        .expect("pool starts");
    let url = format!("{}/v1/pools/bench/messages", host.url());
    // Every member's first turns (the CLI's JavaScript runs cold) and the connections.
    let warm = (requests / 4).max(8 * POOL_SIZE);
    in_process(&pool, 8, warm).await;
    over_http(&url, 8, warm).await;

    for &concurrency in concurrencies {
        // At 64 connections, at least two requests per connection.
        let requests = requests.max(2 * concurrency);
        let (mut sdk, mut http) = (Load::default(), Load::default());
        let mut runs = String::new();
        // Alternating which goes first, so that both see the same drift in load.
        for round in 0..rounds {
            for first in [round % 2 == 0, round % 2 != 0] {
                let (load, name) = if first {
                    (in_process(&pool, concurrency, requests).await, "in-process")
                } else {
                    (over_http(&url, concurrency, requests).await, "HTTP")
                };
                runs += &format!(" {name} {:.1},", load.rps());
                if first {
                    sdk.add(load);
                } else {
                    http.add(load);
                }
            }
        }
        println!(
            "overhead: {label}, {concurrency:>2} connections, req/s of each run in order:{}",
            runs.trim_end_matches(',')
        );
        let (sdk_p50, http_p50) = (sdk.p(0.5), http.p(0.5));
        let ratio = http_p50.as_secs_f64() / sdk_p50.as_secs_f64();
        for (name, load) in [("in-process Pool::stream", &mut sdk), ("HTTP", &mut http)] {
            println!(
                "overhead: {label}, {concurrency:>2} connections, {name:<23}: {:>7.1} req/s, \
                 p50 {:>7.2} ms, p99 {:>7.2} ms ({} requests, {} failed)",
                load.rps(),
                ms(load.p(0.5)),
                ms(load.p(0.99)),
                load.latencies.len(),
                load.failed,
            );
        }
        println!(
            "overhead: {label}, {concurrency:>2} connections: HTTP / in-process: p50 \
             {ratio:.3}x (target <= 1.05x: {}), p99 {:.3}x, req/s {:.3}x",
            verdict(ratio <= 1.05),
            http.p(0.99).as_secs_f64() / sdk.p(0.99).as_secs_f64(),
            http.rps() / sdk.rps(),
        );
        if wrk_secs > 0 {
            let url = url.clone();
            let measured = tokio::task::spawn_blocking(move || wrk(&url, concurrency, wrk_secs))
                .await
                .expect("wrk task");
            // Turns still running when wrk stopped finish first.
            let pools = format!("{}/v1/pools", host.url());
            claude_code_tests::eventually(QUEUE_TIMEOUT, "the pool idle after wrk", || async {
                let list: Value = client()
                    .get(&pools)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let p = &list["pools"][0];
                if p["busy"] == 0 && p["queued"] == 0 {
                    Ok(())
                } else {
                    Err(p.to_string())
                }
            })
            .await;
            if let Some((rps, p50, p99)) = measured {
                println!(
                    "overhead: {label}, {concurrency:>2} connections, wrk ({wrk_secs} s)         : \
                     {rps:>7.1} req/s, p50 {:>7.2} ms, p99 {:>7.2} ms; p50 / in-process {:.3}x",
                    ms(p50),
                    ms(p99),
                    p50.as_secs_f64() / sdk_p50.as_secs_f64(),
                );
            }
        }
    }
    let stats = pool.stats().await.expect("stats");
    println!(
        "overhead: {label}: the in-process pool served {}, cleared {} conversations, restarted \
         {} members instead (clear fallbacks)",
        stats.served, stats.cleared, stats.clear_fallbacks
    );
    pool.stop().await.expect("pool stops");
    host.shutdown().await.expect("host stops");
}

// ---------------------------------------------------------------------------------------
// 2. SSE throughput

/// One SSE turn: the events up to and including `result`, and how long it took.
async fn sse_turn(client: &reqwest::Client, url: &str) -> (usize, Duration) {
    let started = Instant::now();
    let r = client
        .post(url)
        .header("accept", "text/event-stream")
        .json(&json!({ "prompt": "go" }))
        .send()
        .await
        .expect("SSE request");
    assert_eq!(r.status().as_u16(), 200, "SSE turn refused");
    let mut body = r.bytes_stream();
    let (mut events, mut line, mut done) = (0, Vec::<u8>::new(), false);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("SSE body");
        let mut rest = &chunk[..];
        // Lines may span chunks: `line` keeps an unfinished one.
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let whole: &[u8] = if line.is_empty() {
                &rest[..nl]
            } else {
                line.extend_from_slice(&rest[..nl]);
                &line
            };
            if let Some(name) = whole.strip_prefix(b"event: ") {
                events += 1;
                match name {
                    b"result" => done = true,
                    b"error" => panic!("the SSE turn sent an error event"),
                    _ => {}
                }
            } else if done && whole.is_empty() {
                // The blank line that ends the `result` event.
                return (events, started.elapsed());
            }
            line.clear();
            rest = &rest[nl + 1..];
        }
        line.extend_from_slice(rest);
    }
    panic!("the SSE stream ended before its result ({events} events)");
}

/// One SSE turn received by `curl` (when installed): the events its output holds up to
/// `result`, and curl's own transfer time (`time_total`, without its process start).
fn curl_turn(url: &str) -> Option<(usize, Duration)> {
    let mut child = Command::new("curl")
        .args(["-s", "-N", "-X", "POST", "-H", "accept: text/event-stream"])
        .args([
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"prompt":"go"}"#,
        ])
        .args(["-w", "%{stderr}%{time_total}", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let mut events = 0;
    for line in BufReader::with_capacity(1 << 16, stdout).split(b'\n') {
        if line.ok()?.starts_with(b"event: ") {
            events += 1;
        }
    }
    let out = child.wait_with_output().ok()?;
    let secs: f64 = String::from_utf8_lossy(&out.stderr).trim().parse().ok()?;
    Some((events, Duration::try_from_secs_f64(secs).ok()?))
}

async fn sdk_turn(session: &Session) -> (usize, Duration) {
    let started = Instant::now();
    let mut stream = session.stream("go").await.expect("stream");
    let mut count = 0;
    while let Some(item) = stream.next().await {
        item.expect("message");
        count += 1;
    }
    (count, started.elapsed())
}

/// Creates the session `flood` on the host at `base`; returns its messages URL.
async fn flood_session(client: &reqwest::Client, base: &str) -> String {
    let r = client
        .post(format!("{base}/v1/sessions"))
        .json(&json!({"name": "flood"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201, "session created");
    format!("{base}/v1/sessions/flood/messages")
}

async fn sse(flood: usize, turns: usize) {
    let options = Options::new()
        .cli_path(FAKE)
        .env("FAKE_CLAUDE_FLOOD", flood.to_string());
    // The host in this process (sharing its runtime and cores with the client), and a
    // host process of its own (as `claude-code serve` runs, current-thread runtime).
    let host = Host::start(host_config(options.clone()))
        .await
        .expect("host starts");
    let data = tempfile::tempdir().expect("temp dir");
    let flood_env = flood.to_string();
    let process = HostProcess::start(data.path(), &[("FAKE_CLAUDE_FLOOD", &flood_env)]);
    let client = client();
    let urls = [
        flood_session(&client, &host.url()).await,
        flood_session(&client, &process.url).await,
    ];
    let session = Session::start(options).await.expect("session starts");
    // Warm-up of every path (page cache, allocator, connections).
    for url in &urls {
        sse_turn(&client, url).await;
    }
    sdk_turn(&session).await;
    let curl = {
        let url = urls[1].clone();
        tokio::task::spawn_blocking(move || curl_turn(&url))
            .await
            .expect("curl task")
            .is_some()
    };
    // [in-process SDK, reqwest to the in-process host, reqwest to the host process,
    // curl to the host process]
    let variants = if curl { 4 } else { 3 };
    let mut times: [Vec<Duration>; 4] = Default::default();
    let mut counts = [0; 4];
    for turn in 0..turns {
        for k in 0..variants {
            // A rotating order, so that all of them see the same drift in load.
            let which = (turn + k) % variants;
            let (n, t) = match which {
                0 => sdk_turn(&session).await,
                1 | 2 => sse_turn(&client, &urls[which - 1]).await,
                _ => {
                    let url = urls[1].clone();
                    tokio::task::spawn_blocking(move || curl_turn(&url))
                        .await
                        .expect("curl task")
                        .expect("curl turn")
                }
            };
            counts[which] = n;
            times[which].push(t);
        }
    }
    session.stop().await.expect("stop");
    host.shutdown().await.expect("host stops");
    drop(process);
    let rates: Vec<(f64, Duration)> = times[..variants]
        .iter_mut()
        .zip(counts)
        .map(|(t, n)| {
            t.sort();
            let median = percentile(t, 0.5);
            (n as f64 / median.as_secs_f64(), median)
        })
        .collect();
    println!("sse: {flood} x 1 KiB assistant messages per turn, median of {turns} turns");
    let names = [
        "in-process Session::stream",
        "SSE, host in the bench process",
        "SSE, host process",
        "SSE, host process, curl client",
    ];
    let names = &names[..variants];
    for (i, (name, (rate, t))) in names.iter().zip(&rates).enumerate() {
        let what = if i == 0 { "messages" } else { "events" };
        println!(
            "sse: {name:<30}: {rate:>9.0} msgs/s ({:.1} ms per turn, {} {what})",
            ms(*t),
            counts[i]
        );
    }
    for (i, name) in names.iter().enumerate().skip(1) {
        let ratio = rates[i].0 / rates[0].0;
        println!(
            "sse: {name} / in-process: {ratio:.3}x (target >= 0.8x: {})",
            verdict(ratio >= 0.8)
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. Memory at rest

/// Fills `dir`'s state store with `n` dynamic sessions through the API: each created and
/// given one turn on the fake CLI, which then hibernates after a short idle timeout.
async fn fill_store(dir: &Path, n: usize) {
    let config = host_config(Options::new().cli_path(FAKE))
        .data_dir(dir)
        .idle_timeout(Duration::from_millis(300));
    let host = Host::start(config).await.expect("host starts");
    let client = client();
    let base = host.url();
    let started = Instant::now();
    let made = closed_loop(8, n, move |i| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let name = format!("user-{i:04}");
            let r = client
                .post(format!("{base}/v1/sessions"))
                .json(&json!({ "name": name }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().as_u16() != 201 {
                return Err(format!("create {name}: {}", r.status()));
            }
            let prompt = format!("hello {i}");
            let r = client
                .post(format!("{base}/v1/sessions/{name}/messages"))
                .json(&json!({ "prompt": prompt }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let body: Value = r.json().await.map_err(|e| e.to_string())?;
            check(body["text"].as_str().unwrap_or_default(), &prompt)
        }
    })
    .await;
    assert_eq!(made.failed, 0, "every session created and answered");
    host.shutdown().await.expect("host stops");
    println!(
        "memory: filled the store with {n} dynamic sessions (created + one turn each, fake \
         CLI) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A host process on `dir`, stopped (SIGTERM, then reaped) when dropped.
struct HostProcess {
    child: Child,
    url: String,
}

impl HostProcess {
    /// Starts it with `env` added to its environment (which its CLIs inherit).
    fn start(dir: &Path, env: &[(&str, &str)]) -> HostProcess {
        let mut cmd = match std::env::var_os("HOST_BIN") {
            Some(bin) => {
                // `claude-code serve` without warm spares (they would start a CLI).
                let config = dir.join("bench.toml");
                std::fs::write(&config, "[serve]\nspares = 0\n").expect("write config");
                let mut cmd = Command::new(bin);
                cmd.env("CLAUDE_CODE_CONFIG", &config)
                    .env("CLAUDE_CODE_CLI", FAKE)
                    .arg("serve");
                cmd
            }
            None => {
                let mut cmd = Command::new(std::env::current_exe().expect("own path"));
                cmd.arg("--host-only");
                cmd
            }
        };
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .envs(env.iter().copied())
            .env_remove("ANTHROPIC_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the host");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the host printed its address")
                .expect("host stdout");
            if let Some(url) = line.strip_prefix("claude-code host listening on ") {
                break url.trim().to_string();
            }
        };
        HostProcess { child, url }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id()).unwrap_or(0)
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Starts a host on `dir`, lets it settle, and returns its RSS at rest, its RSS after
/// listing its sessions, and how many of them are hibernated.
async fn at_rest(dir: &Path) -> (u64, u64, usize, usize) {
    let host = HostProcess::start(dir, &[]);
    let client = client();
    let ready = client
        .get(format!("{}/readyz", host.url))
        .send()
        .await
        .expect("readyz");
    assert!(ready.status().is_success(), "the host is ready");
    // At rest: start-up done (restored sessions are registered before the host serves).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rest = host.rss_kib();
    let list: Value = client
        .get(format!("{}/v1/sessions", host.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let sessions = list["sessions"].as_array().cloned().unwrap_or_default();
    let hibernated = sessions
        .iter()
        .filter(|s| s["status"] == "hibernated")
        .count();
    (rest, host.rss_kib(), sessions.len(), hibernated)
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

async fn memory(sessions: usize) {
    let empty = tempfile::tempdir().expect("temp dir");
    let full = tempfile::tempdir().expect("temp dir");
    fill_store(full.path(), sessions).await;
    let db = |dir: &Path| {
        ["claude-code.db", "claude-code.db-wal"]
            .map(|f| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len()))
    };
    let (mut base, mut loaded, mut listed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let (rest, _, n, _) = at_rest(empty.path()).await;
        assert_eq!(n, 0, "the empty store restores nothing");
        base.push(rest);
        let (rest, after_list, n, hibernated) = at_rest(full.path()).await;
        assert_eq!(
            (n, hibernated),
            (sessions, sessions),
            "every stored session is listed, hibernated"
        );
        loaded.push(rest);
        listed.push(after_list);
    }
    let (base, loaded, listed) = (median(base), median(loaded), median(listed));
    let per = loaded.saturating_sub(base) as f64 / sessions as f64;
    let [db_full, wal_full] = db(full.path());
    let [db_empty, _] = db(empty.path());
    let which = if std::env::var_os("HOST_BIN").is_some() {
        "HOST_BIN serve"
    } else {
        "Host::start, current-thread runtime"
    };
    println!(
        "memory: host process ({which}) RSS at rest, median of 3 starts: {base} KiB with no \
         session, {loaded} KiB with {sessions} restored hibernated ({listed} KiB after \
         GET /v1/sessions listed them all)"
    );
    println!(
        "memory: {per:.1} KiB per hibernated session (target < 64 KiB: {}); SQLite \
         claude-code.db {} KiB with {sessions} sessions ({:.2} KiB per session; WAL {} KiB), \
         {} KiB empty",
        verdict(per < 64.0),
        db_full / 1024,
        (db_full.saturating_sub(db_empty)) as f64 / 1024.0 / sessions as f64,
        wal_full / 1024,
        db_empty / 1024,
    );
}

/// `--host-only --listen ADDR --data-dir DIR`: a host and nothing else, on a
/// current-thread runtime as `claude-code serve` runs it, until SIGTERM.
fn host_only(args: &[String]) {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .unwrap_or_else(|| panic!("{flag} missing"))
            .clone()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut config = HostConfig::new(value("--listen").parse().expect("address"))
            .options(Options::new().cli_path(FAKE))
            .offline(true)
            .data_dir(value("--data-dir"));
        config.spares = 0;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        let host = Host::start(config).await.expect("host starts");
        println!("claude-code host listening on {}", host.url());
        term.recv().await;
        host.shutdown().await.expect("host stops");
    });
}

/// Prints the load average: figures taken while other work ran are noise.
fn loadavg(when: &str) {
    let avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let avg: Vec<&str> = avg.split_whitespace().take(3).collect();
    println!(
        "host: load average {when}: {} on {} cores",
        avg.join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

fn which_wrk() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        println!("host: bench");
        return;
    }
    if args.get(1).is_some_and(|a| a == "--host-only") {
        host_only(&args[2..]);
        return;
    }
    // `cargo bench` passes `--bench`; under `cargo test` this bench does nothing.
    if !args.iter().any(|a| a == "--bench") {
        println!("host: skipped outside `cargo bench`");
        return;
    }
    let sections = std::env::var("SECTIONS").unwrap_or_else(|_| "overhead,sse,memory".into());
    let sections: Vec<&str> = sections.split(',').map(str::trim).collect();
    let section = |name: &str| {
        sections
            .iter()
            .any(|s| *s == name || name.strip_prefix(s).is_some_and(|r| r.starts_with('-')))
    };
    let rounds = env_usize("ROUNDS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    loadavg("at start");
    rt.block_on(async {
        // Memory first: a fresh store and host processes of their own.
        if section("memory") {
            memory(env_usize("SESSIONS", 1000).max(1)).await;
            loadavg("after memory");
        }
        if section("overhead-real") || section("overhead-fake") {
            let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
            // `wrk` too, when installed (`apt-get install wrk`), unless WRK_SECS=0.
            let wrk_secs = if which_wrk() {
                env_usize("WRK_SECS", 3) as u64
            } else {
                0
            };
            if section("overhead-real") {
                let requests = env_usize("REQUESTS", 64).max(1);
                // No wrk: its fixed duration cuts off the slowest of second-long turns.
                let options = env.options();
                overhead("real CLI", options, &[8, 64], requests, rounds, 0).await;
                loadavg("after overhead-real");
            }
            if section("overhead-fake") {
                // The fake CLI answers `/clear` locally, as the real one does: the pool
                // keeps its members between requests (a fresh conversation per request).
                let fake = env.options_for(FAKE.as_ref()).env("FAKE_CLAUDE_CLEAR", "1");
                let requests = env_usize("FAKE_REQUESTS", 3000).max(1);
                // One connection too: the host's latency without queueing.
                let levels = [1, 8, 64];
                overhead("fake CLI", fake, &levels, requests, rounds, wrk_secs).await;
                loadavg("after overhead-fake");
            }
        }
        if section("sse") {
            sse(env_usize("FLOOD", 20_000), env_usize("TURNS", 10).max(1)).await;
            loadavg("after sse");
        }
    });
    println!("host: done in {:.0} s", started.elapsed().as_secs_f64());
}
