//! 50 sessions started and terminated in a loop leak no processes, file descriptors or
//! tasks: through a [`Supervisor`] (`start_session` / `terminate_session`) and as plain
//! [`Session`]s (`start` / `stop`). Counts `/proc/self/fd` and the runtime's alive tasks
//! before and after, with the fake CLI (each one also leaves a grandchild in its process
//! group, which the stop must take down too).
//!
//! This file holds a single test on purpose: file descriptors are per process, so no
//! other test may open or close any while it counts.
//!
//! The baseline is taken before the first session starts and the counts must come back
//! to it exactly, with no slack: tokio's signal and process drivers open their fds when
//! the runtime is built, so the first child spawned adds none for good. Nothing sleeps
//! to synchronise: after each loop the counts are polled until they are back at the
//! baseline, with a deadline, because a stopped session's last helper tasks (stderr
//! drain, reaping) may finish a moment after `stop` returns.

use std::path::Path;
use std::time::{Duration, Instant};

use claude_code::{Options, Session, SessionSpec, Supervisor};
use claude_code_tests::{ask, Reply, Script, TestEnv};

const CYCLES: usize = 50;

fn fake_cli() -> &'static Path {
    env!("CARGO_BIN_EXE_fake-claude").as_ref()
}

/// Open file descriptors of this process (the directory handle used to list them is
/// counted each time, so it cancels out).
fn open_fds() -> usize {
    claude_code::procfs::fd_count(std::process::id()).expect("read /proc/<pid>/fd")
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// What is counted: open fds, alive tasks, processes with this test's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    fds: usize,
    tasks: usize,
    processes: usize,
}

fn counts(env: &TestEnv) -> Counts {
    Counts {
        fds: open_fds(),
        tasks: alive_tasks(),
        processes: env.leftovers().len(),
    }
}

/// Polls until the counts are back at `baseline` (or below), failing at the deadline
/// with what was left.
async fn settle_to(env: &TestEnv, baseline: Counts, what: &str) -> Counts {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = counts(env);
        if now.fds <= baseline.fds && now.tasks <= baseline.tasks && now.processes == 0 {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: leaked (baseline {baseline:?}, now {now:?}); processes: {:#?}; fds: {:?}",
            env.leftovers(),
            fd_targets()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Where each open fd points, for the failure message.
fn fd_targets() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                Some(format!(
                    "{} -> {}",
                    e.file_name().to_string_lossy(),
                    target.display()
                ))
            })
            .collect()
        })
        .unwrap_or_default()
}

/// The fake CLI, leaving a `sleep` grandchild in its process group.
fn options(env: &TestEnv) -> Options {
    env.options_for(fake_cli())
        .env("FAKE_CLAUDE_SPAWN_CHILD", "1")
}

async fn one_plain_cycle(opts: &Options, i: usize, turn: bool) {
    let session = Session::start(opts.clone()).await.expect("start");
    if turn {
        let text = ask(&session, format!("plain {i}")).await;
        assert_eq!(text, format!("echo: plain {i}"));
    }
    session.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_start_stop_cycles_leak_no_process_fd_or_task() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let opts = options(&env);

    // Before any session: the mock API's accept task and the runtime's own fds.
    let baseline = counts(&env);
    assert_eq!(baseline.processes, 0);

    // 1. Through a supervisor: the supervisor itself stays, its children come and go.
    let sup = Supervisor::builder()
        .name("leaks")
        .start()
        .await
        .expect("start");
    let with_sup = counts(&env);
    for i in 0..CYCLES {
        let name = format!("s{i}");
        let session = sup
            .start_session(SessionSpec::new(&name).options(opts.clone()))
            .await
            .expect("start_session");
        if i % 5 == 0 {
            let text = ask(&session, format!("ping {i}")).await;
            assert_eq!(text, format!("echo: ping {i}"));
        }
        sup.terminate_session(&name).await.expect("terminate");
    }
    assert_eq!(sup.count_sessions().await.expect("count").specs, 0);
    let after = settle_to(&env, with_sup, "50 supervised start/terminate cycles").await;
    println!("supervisor: with the supervisor {with_sup:?}; after {CYCLES} cycles {after:?}");
    sup.stop().await.expect("stop");
    assert!(sup.is_closed());
    drop(sup);
    let after = settle_to(&env, baseline, "supervisor stopped").await;
    println!("supervisor: baseline {baseline:?}; after stopping it {after:?}");

    // 2. Plain sessions.
    for i in 0..CYCLES {
        one_plain_cycle(&opts, i, i % 5 == 0).await;
    }
    let after = settle_to(&env, baseline, "50 plain start/stop cycles").await;
    println!("plain sessions: baseline {baseline:?}; after {CYCLES} cycles {after:?}");
}
