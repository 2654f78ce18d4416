//! Crash-restart latency: the time from `kill -9` of a supervised child's CLI to the
//! restarted session answering a prompt sent through the [`SupervisedSession`] handle
//! obtained before the crash, printed beside the cold start of a plain session
//! (`Session::start` + one prompt) measured in the same run, with medians and their
//! ratio (target: restart <= 1.05x cold start).
//!
//! Both use the real CLI against a mock that replies at once, in the same environment.
//! Cold starts and crash-restarts alternate, so drift in machine load hits both alike.
//! A restart's clock starts before the `kill -9` and stops when the turn's `result`
//! arrives; it includes noticing the death, reaping, the restart with `--resume` (which
//! loads the transcript) and the initialize handshake. A prompt that reaches the dead
//! CLI before its death is noticed ends with an error (turns are never replayed); the
//! bench then sends it again, as a client would, and counts those retries.
//!
//! `cargo bench -p claude-code-host-tests --bench restart` (env `RUNS`, default 10; under
//! `cargo test` a smoke run of 2; `RUST_LOG=claude_code=debug` logs each step with
//! timestamps to stderr, to see where a restart's time goes).

use std::time::{Duration, Instant};

use claude_code::{
    Error, Options, Session, SessionSpec, SupervisedSession, Supervisor, SupervisorError,
};
use claude_code_tests::{kill_9, wait_until_gone, Reply, Script, TestEnv};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One cold start: a plain session started and asked one prompt (the stop is not timed).
async fn cold_start(opts: &Options, i: usize) -> Duration {
    let started = Instant::now();
    let session = Session::start(opts.clone()).await.expect("cold start");
    let text = session
        .stream(format!("cold {i}"))
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    let took = started.elapsed();
    assert_eq!(text, format!("echo: cold {i}"));
    session.stop().await.expect("stop");
    took
}

/// One crash's timings.
struct Crash {
    /// `kill -9` to the restarted session's answer.
    total: Duration,
    /// `kill -9` to the old session reporting its CLI dead (`Session::closed`): the
    /// kernel tearing the CLI down, then the SDK noticing.
    noticed: Duration,
    /// Prompts that reached the dying CLI and were sent again.
    retries: usize,
}

/// One crash: `kill -9` the child's CLI, then prompt through the old handle until the
/// restarted session answers.
async fn crash_restart(handle: &SupervisedSession, i: usize) -> Crash {
    let old = handle.current().await.expect("current session");
    let pid = old.pid().expect("running");
    let prompt = format!("after crash {i}");
    let started = Instant::now();
    kill_9(pid);
    let noticed = tokio::spawn(async move {
        let _ = old.closed().await;
        started.elapsed()
    });
    let mut retries = 0;
    loop {
        let turn = match handle.stream(prompt.as_str()).await {
            Ok(stream) => stream.final_text().await.map_err(SupervisorError::from),
            Err(e) => Err(e),
        };
        match turn {
            Ok(text) => {
                let total = started.elapsed();
                assert_eq!(text, format!("echo: {prompt}"));
                let now = handle.pid().await.expect("pid").expect("running");
                assert_ne!(now, pid, "answered by a new process");
                let noticed = noticed.await.expect("closed() task");
                return Crash {
                    total,
                    noticed,
                    retries,
                };
            }
            // Accepted by the dying CLI before its death was noticed: never replayed.
            Err(SupervisorError::Session(
                Error::ProcessExited { .. } | Error::SessionClosed { .. },
            )) if retries < 3 => retries += 1,
            Err(e) => panic!("prompt after crash {i} failed: {e}"),
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("restart: bench");
        return;
    }
    // `cargo bench` passes `--bench`; under `cargo test` this is a quick smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let runs = env_usize("RUNS", if full { 10 } else { 2 }).max(1);
    // `RUST_LOG=claude_code=debug` shows where a restart's time goes (timestamps on stderr).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
        let opts = env.options();
        // Warm up the page cache and the mock once.
        claude_code::query("warm up", opts.clone())
            .await
            .expect("warm-up");

        let sup = Supervisor::builder()
            .name("restart-bench")
            // Every crash here is deliberate: allow them all within the window.
            .max_restarts(u32::try_from(runs).unwrap_or(u32::MAX).saturating_add(1))
            .child(SessionSpec::new("assistant").options(opts.clone()))
            .start()
            .await
            .expect("supervisor");
        let handle = sup.session("assistant");
        // A conversation to resume.
        let first = handle
            .stream("remember the word pineapple")
            .await
            .expect("stream")
            .final_text()
            .await
            .expect("turn");
        assert_eq!(first, "echo: remember the word pineapple");

        let (mut cold, mut restart, mut noticed, mut after, mut retries) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        for i in 0..runs {
            cold.push(cold_start(&opts, i).await);
            let crash = crash_restart(&handle, i).await;
            restart.push(crash.total);
            noticed.push(crash.noticed);
            after.push(crash.total.saturating_sub(crash.noticed));
            retries += crash.retries;
        }
        let info = sup.list_sessions().await.expect("list");
        assert_eq!(info[0].restarts as usize, runs);
        let texts = env
            .mock
            .turn_requests()
            .last()
            .expect("a turn request")
            .user_texts();
        assert!(
            texts.iter().any(|t| t.contains("pineapple")),
            "the restarts resumed the conversation: {texts:?}"
        );
        sup.stop().await.expect("stop");

        let (c, r) = (median(cold.clone()), median(restart.clone()));
        let span = |v: &[Duration]| {
            let min = v.iter().min().copied().unwrap_or_default();
            let max = v.iter().max().copied().unwrap_or_default();
            format!("min {:.1} ms, max {:.1} ms", ms(min), ms(max))
        };
        println!(
            "cold start (Session::start + one prompt): median {:.1} ms ({}) over {runs} runs",
            ms(c),
            span(&cold)
        );
        println!(
            "crash restart (kill -9 to the restarted session's answer): median {:.1} ms ({}) \
             over {runs} runs; prompts that hit the dead CLI and were re-sent: {retries}",
            ms(r),
            span(&restart)
        );
        let ratio = r.as_secs_f64() / c.as_secs_f64();
        println!(
            "restart / cold start = {ratio:.3} (target <= 1.05: {})",
            if ratio <= 1.05 { "met" } else { "MISSED" }
        );
        let (n, a) = (median(noticed.clone()), median(after.clone()));
        println!(
            "  of which kill -9 to the crash noticed (the kernel tearing the CLI down, then \
             the SDK): median {:.1} ms ({})",
            ms(n),
            span(&noticed)
        );
        println!(
            "  and crash noticed to answer (restart with --resume + initialize + turn): \
             median {:.1} ms ({}) = {:.3} x cold start",
            ms(a),
            span(&after),
            a.as_secs_f64() / c.as_secs_f64()
        );
        let left = tokio::task::block_in_place(|| {
            wait_until_gone(Duration::from_secs(30), || env.leftovers())
        });
        assert!(left.is_empty(), "leftover processes: {left:#?}");
        println!("leftover processes: 0");
    });
}
