//! Nested supervisors with OTP semantics: a supervisor child that exceeds its own restart
//! intensity ends, and its parent counts that as a child failure (restarting it, or
//! shutting down when that exceeds the parent's intensity). The fake CLI stands in for
//! the real one: only process lifetimes matter here. Waits are on observable state.

use std::path::Path;
use std::time::Duration;

use claude_code::{ChildStatus, SessionSpec, Strategy, Supervisor, SupervisorError};
use claude_code_tests::{kill_9, proc_info, wait_for_children, Script, TestEnv};

fn fake_cli() -> &'static Path {
    env!("CARGO_BIN_EXE_fake-claude").as_ref()
}

/// A supervisor `name` that gives up at the first crash of its one session `worker`.
fn fragile(env: &TestEnv, name: &str) -> claude_code::SupervisorBuilder {
    Supervisor::builder()
        .name(name)
        .max_restarts(0)
        .child(SessionSpec::new("worker").options(env.options_for(fake_cli())))
}

fn is_alive(pid: u32) -> bool {
    proc_info(pid).is_some_and(|p| p.state != 'Z')
}

async fn worker_pid(sup: &Supervisor) -> u32 {
    sup.session("worker")
        .pid()
        .await
        .expect("pid")
        .expect("running")
}

#[tokio::test]
async fn a_child_supervisor_past_its_intensity_is_a_child_failure_and_is_restarted() {
    let env = TestEnv::new(Script::new()).await;
    let parent = Supervisor::builder()
        .name("parent")
        .max_restarts(3)
        .child_supervisor(fragile(&env, "team"))
        .start()
        .await
        .expect("start");
    let team = parent
        .child_supervisor("team")
        .await
        .expect("nested handle");
    let old_pid = worker_pid(&team).await;

    kill_9(old_pid);
    let ended = tokio::time::timeout(Duration::from_secs(30), team.closed())
        .await
        .expect("the child supervisor ends");
    assert!(
        matches!(&ended, Err(SupervisorError::MaxRestartIntensity { supervisor, .. }) if supervisor == "team"),
        "{ended:?}"
    );
    wait_for_children(&parent, "the parent's restart of `team`", |l| {
        l.iter()
            .any(|c| c.name == "team" && c.restarts == 1 && c.status == ChildStatus::Running)
    })
    .await;
    let team = parent.child_supervisor("team").await.expect("new handle");
    let new_pid = worker_pid(&team).await;
    assert_ne!(new_pid, old_pid);
    assert!(is_alive(new_pid));
    let text = team
        .session("worker")
        .stream("still there?")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    assert_eq!(text, "echo: still there?");

    assert!(matches!(
        parent.session("team").stream("hi").await,
        Err(SupervisorError::NotASession { .. })
    ));
    parent.stop().await.expect("stop");
    assert!(
        team.is_closed(),
        "stopping the parent stops the child supervisor"
    );
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_failing_child_supervisor_past_the_parent_intensity_stops_the_parent() {
    let env = TestEnv::new(Script::new()).await;
    let parent = Supervisor::builder()
        .name("top")
        .max_restarts(0)
        .child(SessionSpec::new("sibling").options(env.options_for(fake_cli())))
        .child_supervisor(fragile(&env, "team"))
        .start()
        .await
        .expect("start");
    let team = parent
        .child_supervisor("team")
        .await
        .expect("nested handle");
    kill_9(worker_pid(&team).await);
    let ended = tokio::time::timeout(Duration::from_secs(30), parent.closed())
        .await
        .expect("the parent ends");
    match ended {
        Err(SupervisorError::MaxRestartIntensity {
            supervisor, child, ..
        }) => {
            assert_eq!(supervisor, "top");
            assert_eq!(child, "team");
        }
        other => panic!("expected MaxRestartIntensity, got {other:?}"),
    }
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn one_for_all_restarts_session_siblings_of_a_failed_child_supervisor() {
    let env = TestEnv::new(Script::new()).await;
    let parent = Supervisor::builder()
        .name("all")
        .strategy(Strategy::OneForAll)
        .child(SessionSpec::new("sibling").options(env.options_for(fake_cli())))
        .child_supervisor(fragile(&env, "team"))
        .start()
        .await
        .expect("start");
    let sibling_pid = parent
        .session("sibling")
        .pid()
        .await
        .expect("pid")
        .expect("running");
    let team = parent
        .child_supervisor("team")
        .await
        .expect("nested handle");
    kill_9(worker_pid(&team).await);
    wait_for_children(&parent, "both children restarted", |l| {
        l.len() == 2
            && l.iter()
                .all(|c| c.restarts == 1 && c.status == ChildStatus::Running)
    })
    .await;
    let new_sibling = parent
        .session("sibling")
        .pid()
        .await
        .expect("pid")
        .expect("running");
    assert_ne!(new_sibling, sibling_pid);
    assert!(!is_alive(sibling_pid));
    assert!(matches!(
        parent.child_supervisor("sibling").await,
        Err(SupervisorError::NotASupervisor { .. })
    ));
    parent.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}
