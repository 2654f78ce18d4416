//! Cost of confinement: session start (`Session::start`, through the initialize
//! handshake) and per-turn latency (one prompt to its `result`) with bubblewrap, the
//! private network namespace with its forward to the mock, rlimits and a memory + pids
//! cgroup all on, beside the same options unconfined. Prints min and median of each and
//! the confined/unconfined ratios (targets: start <= 1.10x, turn <= 1.05x).
//!
//! Real CLI, a mock that replies at once; confined and unconfined runs alternate, so
//! drift in machine load hits both alike. Linux, root, bubblewrap
//! (`scripts/install-sandbox`).
//!
//! `cargo bench -p claude-code-host-tests --bench confinement` (env `RUNS`, default 10
//! starts with `TURNS` turns each, default 10; under `cargo test` a smoke run of 2 x 2).

use std::time::{Duration, Instant};

use claude_code::{
    sandbox::{Network, ResourceLimits, Sandbox},
    Options, Session,
};
use claude_code_tests::{Reply, Script, TestEnv};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[0]), ms(v[v.len() / 2]))
}

/// One session: its start time and each turn's time.
async fn run(opts: &Options, turns: usize) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let session = Session::start(opts.clone()).await.expect("start");
    let start = started.elapsed();
    let mut times = Vec::with_capacity(turns);
    for i in 0..turns {
        let t = Instant::now();
        let text = session
            .stream(format!("turn {i}"))
            .await
            .expect("stream")
            .final_text()
            .await
            .expect("turn");
        times.push(t.elapsed());
        assert_eq!(text, format!("echo: turn {i}"));
    }
    session.stop().await.expect("stop");
    (start, times)
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (runs, turns) = if smoke {
        (2, 2)
    } else {
        (env_usize("RUNS", 10), env_usize("TURNS", 10))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let root = tempfile::tempdir().expect("work root");
        let to = format!("127.0.0.1:{}", env.mock.port())
            .parse()
            .expect("mock address");
        let plain = env.options();
        let confined = env
            .options()
            .env_remove("CLAUDE_CONFIG_DIR")
            .cwd(root.path().join("w"))
            .confine(
                Sandbox::new(root.path().join("w"))
                    .hide(root.path())
                    .network(Network::forward(to)),
            )
            .resource_limits(
                ResourceLimits::new()
                    .memory_bytes(4 << 30)
                    .pids(1024)
                    .open_files(4096),
            );
        // Warm-up (page cache, the bubblewrap check).
        run(&plain, 1).await;
        run(&confined, 1).await;
        let (mut starts, mut turns_of) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
        for _ in 0..runs {
            for (k, opts) in [&plain, &confined].into_iter().enumerate() {
                let (s, t) = run(opts, turns).await;
                starts[k].push(s);
                turns_of[k].extend(t);
            }
        }
        let [s0, s1] = starts.map(stats);
        let [t0, t1] = turns_of.map(stats);
        println!("confinement ({runs} starts x {turns} turns each, real CLI, mock API)");
        println!("  start  off: min {:7.1} ms  median {:7.1} ms", s0.0, s0.1);
        println!("  start  on : min {:7.1} ms  median {:7.1} ms", s1.0, s1.1);
        println!(
            "  start  ratio on/off: min {:.3}x  median {:.3}x  (target <= 1.10x)",
            s1.0 / s0.0,
            s1.1 / s0.1
        );
        println!("  turn   off: min {:7.1} ms  median {:7.1} ms", t0.0, t0.1);
        println!("  turn   on : min {:7.1} ms  median {:7.1} ms", t1.0, t1.1);
        println!(
            "  turn   ratio on/off: min {:.3}x  median {:.3}x  (target <= 1.05x)",
            t1.0 / t0.0,
            t1.1 / t0.1
        );
    });
}
