//! Filesystem, network and resource confinement of the real CLI (Linux, root, bubblewrap:
//! `scripts/install-sandbox`). Every tool call here is a Bash command the mock scripts
//! and the real CLI runs; the assertions read what the model was sent back.

#![cfg(target_os = "linux")]

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use claude_code::{
    sandbox::{self, Fallback, LimitKind, Network, ResourceLimits, Sandbox},
    ChildStatus, Error, ExitInfo, Options, PermissionResult, Restart, Session, SessionSpec,
    Supervisor,
};
use claude_code_tests::{eventually, Reply, Script, TestEnv};
use serde_json::json;

/// Limit tests count this process's cgroups: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Options for a confined CLI against the test's mock: every tool allowed by a callback,
/// so that what refuses is the sandbox and not the CLI's permission rules.
fn confined(env: &TestEnv, sandbox: Sandbox) -> Options {
    let to = format!("127.0.0.1:{}", env.mock.port())
        .parse()
        .expect("mock address");
    let work = sandbox.work_dir().to_path_buf();
    env.options()
        .cwd(&work)
        .env_remove("CLAUDE_CONFIG_DIR")
        .confine(sandbox.network(Network::forward(to)))
        .can_use_tool(|_| async { PermissionResult::allow() })
}

fn bash(command: impl Into<String>) -> Reply {
    Reply::tool_use(
        "Bash",
        json!({"command": command.into(), "description": "probe"}),
    )
}

/// Every tool result the model was sent, as text.
fn tool_results(env: &TestEnv) -> String {
    env.mock
        .turn_requests()
        .iter()
        .flat_map(|r| r.tool_results())
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn writes_outside_the_work_dir_other_work_dirs_and_other_ports_are_refused_and_the_model_sees_it(
) {
    let env = TestEnv::new(Script::new()).await;
    let root = tempfile::tempdir().expect("sessions root");
    let (mine, peer) = (root.path().join("mine"), root.path().join("peer"));
    std::fs::create_dir_all(&peer).expect("peer dir");
    std::fs::write(peer.join("secret.txt"), "peer-secret-7").expect("peer secret");
    // Writable on the host, outside every work dir and outside /tmp (private inside).
    let outside = PathBuf::from("/var/tmp").join(format!("{}-outside", env.marker));
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener of the test's");
    let other_port = other.local_addr().expect("addr").port();
    let script = format!(
        "bash -c 'echo in > {mine}/inside.txt && echo IN-OK; \
         (echo out > {outside}) 2>&1 || echo OUT-REFUSED; \
         cat {peer}/secret.txt 2>&1 || echo PEER-HIDDEN; \
         (exec 3<>/dev/tcp/127.0.0.1/{other_port}) 2>&1 && echo TCP-OPEN || echo TCP-REFUSED'",
        mine = mine.display(),
        outside = outside.display(),
        peer = peer.display(),
    );
    env.mock.push(bash(script));
    env.mock.push(Reply::text("probed"));
    let session = Session::start(confined(&env, Sandbox::new(&mine).hide(root.path())))
        .await
        .expect("confined start");
    // The session's pid is the CLI inside the sandbox, not bubblewrap around it.
    let pid = session.pid().expect("pid");
    let stat = claude_code::procfs::stat(pid).expect("the CLI's /proc entry");
    assert_ne!(stat.comm, "bwrap", "{stat:?}");
    assert_eq!(
        claude_code::procfs::stat(stat.ppid)
            .map(|p| p.comm)
            .as_deref(),
        Some("bwrap"),
        "the CLI's parent is the sandbox's init"
    );
    let summary = session
        .stream("probe the sandbox")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("the turn reaches the model through the forward");
    assert_eq!(
        summary.result.expect("result").result.as_deref(),
        Some("probed")
    );
    let seen = tool_results(&env);
    for want in [
        "IN-OK",
        "Read-only file system",
        "OUT-REFUSED",
        "PEER-HIDDEN",
        "TCP-REFUSED",
    ] {
        assert!(seen.contains(want), "the model sees {want}: {seen}");
    }
    assert!(!seen.contains("peer-secret-7"), "{seen}");
    assert!(!seen.contains("TCP-OPEN"), "{seen}");
    assert_eq!(
        std::fs::read_to_string(mine.join("inside.txt")).expect("written inside"),
        "in\n"
    );
    assert!(!outside.exists(), "nothing was written outside");
    // The transcript lives in the work dir, so a resume after a restart finds it.
    assert!(mine.join(".claude/projects").is_dir());
    session.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_cli_installed_under_tmp_still_runs_in_the_sandbox_private_tmp() {
    // The sandbox mounts its own /tmp: a CLI whose path lies under the host's /tmp (a
    // checkout there, or this link) must be bound back into it.
    let env = TestEnv::new(Script::new().fallback(Reply::text("found"))).await;
    let link_dir = tempfile::Builder::new()
        .prefix("cli-under-tmp-")
        .tempdir_in("/tmp")
        .expect("dir under /tmp");
    let link = link_dir.path().join("claude");
    std::os::unix::fs::symlink(claude_code_tests::real_cli(), &link).expect("link");
    let root = tempfile::tempdir().expect("root");
    let options = confined(&env, Sandbox::new(root.path().join("w"))).cli_path(link);
    let session = Session::start(options).await.expect("confined start");
    let text = session
        .stream("hi")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    assert_eq!(text, "found");
    session.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn missing_bubblewrap_is_a_typed_error_or_a_logged_unconfined_run_by_policy() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("unconfined ok"))).await;
    let root = tempfile::tempdir().expect("root");
    let missing = Sandbox::new(root.path().join("w")).bwrap("/nonexistent/bwrap");
    let err = Session::start(confined(&env, missing.clone()))
        .await
        .expect_err("fails closed");
    match &err {
        Error::SandboxUnavailable { missing, fix } => {
            assert!(missing.contains("/nonexistent/bwrap"), "{missing}");
            assert!(fix.contains("apt-get install -y bubblewrap"), "{fix}");
        }
        other => panic!("expected SandboxUnavailable, got {other:?}"),
    }

    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Capture(sink.clone()))
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let session = Session::start(confined(&env, missing.fallback(Fallback::Downgrade)))
        .await
        .expect("downgraded start");
    let text = session
        .stream("hi")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    assert_eq!(text, "unconfined ok");
    let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(logged.contains("confinement downgraded"), "{logged}");
    assert!(logged.contains("/nonexistent/bwrap"), "{logged}");
    session.stop().await.expect("stop");
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Processes whose command line contains `needle`.
fn processes_running(needle: &str) -> Vec<u32> {
    claude_code::procfs::pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

async fn no_cgroup_left() {
    eventually(
        Duration::from_secs(15),
        "every CLI cgroup removed",
        || async {
            let left = sandbox::live_cgroups();
            if left.is_empty() {
                Ok(())
            } else {
                Err(left)
            }
        },
    )
    .await;
}

/// A supervisor with a limited session and a plain one: the limited one hits `limit`
/// running `command`, its turn ends with `ResourceLimit { kind }`, the other keeps
/// answering, nothing is left behind, and the limited one restarts and answers.
async fn limit_hit_is_typed_and_contained(
    limits: ResourceLimits,
    command: String,
    kind: LimitKind,
) {
    let _serial = SERIAL.lock().await;
    let env = TestEnv::new(Script::new()).await;
    let root = tempfile::tempdir().expect("root");
    let limited = confined(
        &env,
        Sandbox::new(root.path().join("limited")).hide(root.path()),
    )
    .resource_limits(limits);
    let sup = Supervisor::builder()
        .name("limits")
        .max_restarts(5)
        .child(
            SessionSpec::new("limited")
                .options(limited)
                .restart(Restart::Permanent),
        )
        .child(SessionSpec::new("plain").options(env.options()))
        .start()
        .await
        .expect("supervisor");
    env.mock.push(bash(command));
    let err = sup
        .session("limited")
        .stream("go over the limit")
        .await
        .expect("stream")
        .collect()
        .await
        .expect_err("the limit ends the turn");
    assert_eq!(err.resource_limit(), Some(kind), "{err}");
    assert!(err.to_string().contains("ResourceLimits::"), "{err}");

    env.mock.push(Reply::text("still here"));
    let other = sup
        .session("plain")
        .stream("hello")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("the other session answers");
    assert_eq!(other, "still here");

    // Restarted (Permanent) after the abnormal end, and answering again.
    let last_exit = eventually(
        Duration::from_secs(30),
        "the limited session restarted",
        || async {
            let info = sup.list_sessions().await.map_err(|e| e.to_string())?;
            let child = info.iter().find(|c| c.name == "limited").ok_or("gone")?;
            if child.restarts >= 1 && child.status == ChildStatus::Running {
                Ok(child.last_exit.clone())
            } else {
                Err(format!(
                    "{:?} after {} restarts",
                    child.status, child.restarts
                ))
            }
        },
    )
    .await;
    // The supervisor reports why: the limit, not a mysterious crash.
    assert_eq!(last_exit, Some(ExitInfo::ResourceLimit(kind)));
    env.mock.push(Reply::text("back"));
    let back = sup
        .session("limited")
        .stream("again")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("the restarted session answers");
    assert_eq!(back, "back");
    sup.stop().await.expect("stop");
    no_cgroup_left().await;
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_bounded_fork_bomb_ends_the_session_with_a_processes_limit() {
    let marker = "61.0417";
    limit_hit_is_typed_and_contained(
        ResourceLimits::new().pids(32),
        format!("for i in $(seq 200); do sleep {marker} & done; wait"),
        LimitKind::Processes,
    )
    .await;
    assert!(processes_running(&format!("sleep {marker}")).is_empty());
}

#[tokio::test]
async fn a_memory_hog_ends_the_session_with_a_memory_limit() {
    limit_hit_is_typed_and_contained(
        ResourceLimits::new().memory_bytes(600 << 20),
        "head -c 2000000000 /dev/zero | tail | wc -c".into(),
        LimitKind::Memory,
    )
    .await;
}
