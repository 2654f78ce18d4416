//! Supervision end to end: restarts after `kill -9` that resume the conversation, restart
//! intensity, restart types, strategies, dynamic sessions and leak checks. The real CLI
//! runs against the mock API wherever the CLI's behaviour matters; the fake CLI is used
//! for the start-failure and 50-session loops. No test sleeps to synchronise: each waits
//! on observable state (`closed()`, a child's status, the process table) with a deadline.

use std::path::Path;
use std::time::Duration;

use claude_code::{
    ChildInfo, ChildStatus, Error, Health, Restart, SessionSpec, Strategy, Supervisor,
    SupervisorError, UnhealthyReason,
};
use claude_code_tests::{ask, kill_9, proc_info, wait_for_children, Reply, Script, TestEnv};
use futures::StreamExt;

fn fake_cli() -> &'static Path {
    env!("CARGO_BIN_EXE_fake-claude").as_ref()
}

fn echo_env() -> Script {
    Script::new().fallback(Reply::echo())
}

fn child<'a>(list: &'a [ChildInfo], name: &str) -> &'a ChildInfo {
    list.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no child {name} in {list:#?}"))
}

fn running_with_restarts(list: &[ChildInfo], name: &str, n: u32) -> bool {
    list.iter()
        .any(|c| c.name == name && c.restarts >= n && c.status == ChildStatus::Running)
}

fn is_alive(pid: u32) -> bool {
    proc_info(pid).is_some_and(|p| p.state != 'Z')
}

#[tokio::test]
async fn kill_9_restarts_the_child_and_the_old_handle_resumes_the_conversation() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .name("resume")
        .child(SessionSpec::new("assistant").options(env.options()))
        .start()
        .await
        .expect("start");
    let handle = sup.session("assistant");
    let first = ask(&handle, "remember the word pineapple").await;
    assert_eq!(first, "echo: remember the word pineapple");
    let id_before = handle.session_id().await.expect("id").expect("known");
    let pid_before = handle.pid().await.expect("pid").expect("some");

    kill_9(pid_before);
    wait_for_children(&sup, "the restart", |l| {
        running_with_restarts(l, "assistant", 1)
    })
    .await;

    let pid_after = handle.pid().await.expect("pid").expect("some");
    assert_ne!(pid_before, pid_after);
    let second = handle
        .stream("which word?")
        .await
        .expect("the old handle still works")
        .final_text()
        .await
        .expect("turn");
    assert_eq!(second, "echo: which word?");
    let texts = env
        .mock
        .turn_requests()
        .last()
        .expect("a turn request")
        .user_texts();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("remember the word pineapple")),
        "the resumed conversation carries the pre-crash prompt: {texts:?}"
    );
    let info = sup.list_sessions().await.expect("list");
    let info = child(&info, "assistant");
    assert_eq!(info.restarts, 1);
    assert_eq!(info.turns, 2, "turns count over both processes");
    assert!(info.last_activity.is_some());
    let id_after = handle.session_id().await.expect("id");
    assert!(
        id_after.is_some(),
        "resumed id {id_after:?} (before: {id_before})"
    );

    sup.stop().await.expect("stop");
    sup.closed().await.expect("a stop is a normal end");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_cli_killed_during_its_first_turn_restarts_fresh_instead_of_failing_to_resume() {
    // Nothing is saved yet when the CLI dies mid first turn: `--resume` would fail at
    // every restart and exhaust the intensity.
    let env = TestEnv::new(Script::new().fallback(Reply::text("fresh start"))).await;
    env.mock
        .push(Reply::text("never sent").delay(std::time::Duration::from_secs(30)));
    let sup = Supervisor::builder()
        .name("first-turn")
        .child(SessionSpec::new("a").options(env.options()))
        .start()
        .await
        .expect("start");
    let handle = sup.session("a");
    let pid = handle.pid().await.expect("pid").expect("some");
    let stream = handle.stream("slow first turn").await.expect("stream");
    claude_code_tests::eventually(
        std::time::Duration::from_secs(30),
        "the turn reaches the API",
        || async {
            if env.mock.turn_requests().is_empty() {
                Err("no request yet")
            } else {
                Ok(())
            }
        },
    )
    .await;
    kill_9(pid);
    let err = stream
        .final_text()
        .await
        .expect_err("the turn dies with its CLI");
    assert!(err.is_closed(), "{err}");
    wait_for_children(&sup, "the restart", |l| running_with_restarts(l, "a", 1)).await;
    assert_eq!(ask(&handle, "again").await, "fresh start");
    let info = sup.list_sessions().await.expect("list");
    assert_eq!(child(&info, "a").restarts, 1, "one restart, not a loop");
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn resume_on_restart_false_starts_a_fresh_conversation() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .child(
            SessionSpec::new("fresh")
                .options(env.options())
                .resume_on_restart(false),
        )
        .start()
        .await
        .expect("start");
    let handle = sup.session("fresh");
    ask(&handle, "remember the word mango").await;
    kill_9(handle.pid().await.expect("pid").expect("some"));
    wait_for_children(&sup, "the restart", |l| {
        running_with_restarts(l, "fresh", 1)
    })
    .await;
    ask(&handle, "which word?").await;
    let texts = env.mock.turn_requests().last().expect("turn").user_texts();
    assert!(
        !texts.iter().any(|t| t.contains("mango")),
        "a fresh conversation has no history: {texts:?}"
    );
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn killing_past_the_intensity_stops_the_supervisor_and_reports_it() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .name("fragile")
        .max_restarts(2)
        .max_seconds(120)
        .child(SessionSpec::new("first").options(env.options()))
        .child(SessionSpec::new("victim").options(env.options()))
        .start()
        .await
        .expect("start");
    let victim = sup.session("victim");
    for n in 1..=2 {
        kill_9(victim.pid().await.expect("pid").expect("some"));
        wait_for_children(&sup, "a restart", |l| running_with_restarts(l, "victim", n)).await;
    }
    kill_9(victim.pid().await.expect("pid").expect("some"));
    let err = tokio::time::timeout(Duration::from_secs(30), sup.closed())
        .await
        .expect("the supervisor ends")
        .expect_err("intensity exceeded is an abnormal end");
    match &err {
        SupervisorError::MaxRestartIntensity {
            supervisor,
            max_restarts,
            child,
            ..
        } => {
            assert_eq!(supervisor, "fragile");
            assert_eq!(*max_restarts, 2);
            assert_eq!(child, "victim");
        }
        other => panic!("expected MaxRestartIntensity, got {other}"),
    }
    assert!(sup.is_closed());
    assert!(matches!(
        victim.stream("hello?").await,
        Err(SupervisorError::MaxRestartIntensity { .. })
    ));
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn transient_is_restarted_only_after_a_crash_and_permanent_always() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .max_restarts(10)
        .child(
            SessionSpec::new("transient")
                .options(env.options())
                .restart(Restart::Transient),
        )
        .child(SessionSpec::new("permanent").options(env.options()))
        .start()
        .await
        .expect("start");

    // A normal end (the session stopped): permanent restarts, transient does not.
    sup.session("transient")
        .current()
        .await
        .expect("session")
        .stop()
        .await
        .expect("stop");
    sup.session("permanent")
        .current()
        .await
        .expect("session")
        .stop()
        .await
        .expect("stop");
    wait_for_children(&sup, "the permanent restart and the transient stop", |l| {
        running_with_restarts(l, "permanent", 1)
            && child(l, "transient").status == ChildStatus::Stopped
    })
    .await;
    let list = sup.list_sessions().await.expect("list");
    assert_eq!(child(&list, "transient").restarts, 0);
    assert!(matches!(
        sup.session("transient").stream("hi").await,
        Err(SupervisorError::NotRunning { .. })
    ));
    let counts = sup.count_sessions().await.expect("count");
    assert_eq!((counts.specs, counts.active), (2, 1));

    // restart_session brings the transient child back; a crash then restarts it.
    sup.restart_session("transient").await.expect("restart");
    let pid = sup
        .session("transient")
        .pid()
        .await
        .expect("pid")
        .expect("some");
    kill_9(pid);
    wait_for_children(&sup, "the transient crash restart", |l| {
        running_with_restarts(l, "transient", 2)
    })
    .await;
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn temporary_child_is_never_restarted() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .child(SessionSpec::new("keeper").options(env.options()))
        .start()
        .await
        .expect("start");
    let temp = sup
        .start_session(
            SessionSpec::new("temp")
                .options(env.options())
                .restart(Restart::Temporary),
        )
        .await
        .expect("start temp");
    let pid = temp.pid().await.expect("pid").expect("some");
    kill_9(pid);
    wait_for_children(&sup, "the temporary child to go", |l| {
        !l.iter().any(|c| c.name == "temp")
    })
    .await;
    assert!(matches!(
        temp.stream("hi").await,
        Err(SupervisorError::NotFound { .. })
    ));
    let list = sup.list_sessions().await.expect("list");
    assert_eq!(
        child(&list, "keeper").restarts,
        0,
        "no other child was touched"
    );
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

async fn three_children(env: &TestEnv, strategy: Strategy) -> (Supervisor, Vec<u32>) {
    let sup = Supervisor::builder()
        .strategy(strategy)
        .children(["a", "b", "c"].map(|n| SessionSpec::new(n).options(env.options())))
        .start()
        .await
        .expect("start");
    let list = sup.list_sessions().await.expect("list");
    let pids = list.iter().map(|c| c.pid.expect("pid")).collect();
    (sup, pids)
}

#[tokio::test]
async fn one_for_all_restarts_every_sibling() {
    let env = TestEnv::new(echo_env()).await;
    let (sup, before) = three_children(&env, Strategy::OneForAll).await;
    kill_9(before[1]);
    wait_for_children(&sup, "all three restarted", |l| {
        ["a", "b", "c"]
            .iter()
            .all(|n| running_with_restarts(l, n, 1))
    })
    .await;
    let after: Vec<u32> = sup
        .list_sessions()
        .await
        .expect("list")
        .iter()
        .map(|c| c.pid.expect("pid"))
        .collect();
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old, new);
        assert!(!is_alive(*old), "old CLI {old} is gone");
    }
    let text = sup
        .session("a")
        .stream("still there?")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect("turn");
    assert_eq!(text, "echo: still there?");
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    let env = TestEnv::new(echo_env()).await;
    let (sup, before) = three_children(&env, Strategy::RestForOne).await;
    kill_9(before[1]);
    wait_for_children(&sup, "b and c restarted", |l| {
        running_with_restarts(l, "b", 1) && running_with_restarts(l, "c", 1)
    })
    .await;
    let list = sup.list_sessions().await.expect("list");
    assert_eq!(child(&list, "a").restarts, 0);
    assert_eq!(child(&list, "a").pid, Some(before[0]), "a was not touched");
    assert_ne!(child(&list, "b").pid, Some(before[1]));
    assert_ne!(child(&list, "c").pid, Some(before[2]));
    assert!(!is_alive(before[2]), "c's old CLI was stopped");
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    let env = TestEnv::new(echo_env()).await;
    let (sup, before) = three_children(&env, Strategy::OneForOne).await;
    kill_9(before[2]);
    wait_for_children(&sup, "c restarted", |l| running_with_restarts(l, "c", 1)).await;
    let list = sup.list_sessions().await.expect("list");
    assert_eq!(child(&list, "a").pid, Some(before[0]));
    assert_eq!(child(&list, "b").pid, Some(before[1]));
    assert_eq!(child(&list, "a").restarts + child(&list, "b").restarts, 0);
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn terminating_a_dynamic_session_ends_its_process() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .start()
        .await
        .expect("empty supervisor");
    let dynamic = sup
        .start_session(SessionSpec::new("dyn").options(env.options()))
        .await
        .expect("start_session");
    let pid = dynamic.pid().await.expect("pid").expect("some");
    assert!(is_alive(pid));
    assert_eq!(sup.count_sessions().await.expect("count").active, 1);
    sup.terminate_session("dyn").await.expect("terminate");
    assert!(!is_alive(pid), "the CLI is reaped when terminate returns");
    assert_eq!(sup.count_sessions().await.expect("count").specs, 0);
    assert!(matches!(
        dynamic.stream("hi").await,
        Err(SupervisorError::NotFound { .. })
    ));
    assert!(matches!(
        sup.terminate_session("dyn").await,
        Err(SupervisorError::NotFound { .. })
    ));
    env.assert_no_leftovers().await;
    sup.stop().await.expect("stop");
}

#[tokio::test]
async fn duplicate_names_are_refused() {
    let env = TestEnv::new(echo_env()).await;
    let opts = env.options_for(fake_cli());
    let err = Supervisor::builder()
        .child(SessionSpec::new("twin").options(opts.clone()))
        .child(SessionSpec::new("twin").options(opts.clone()))
        .start()
        .await
        .expect_err("duplicate in the builder");
    assert!(
        matches!(err, SupervisorError::DuplicateName { ref name } if name == "twin"),
        "{err}"
    );
    env.assert_no_leftovers().await;

    let sup = Supervisor::builder()
        .child(SessionSpec::new("twin").options(opts.clone()))
        .start()
        .await
        .expect("start");
    let err = sup
        .start_session(SessionSpec::new("twin").options(opts))
        .await
        .expect_err("duplicate at run time");
    assert!(
        matches!(err, SupervisorError::DuplicateName { .. }),
        "{err}"
    );
    assert_eq!(sup.count_sessions().await.expect("count").specs, 1);
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn a_child_that_fails_to_start_fails_the_supervisor_start() {
    let env = TestEnv::new(echo_env()).await;
    let err = Supervisor::builder()
        .child(SessionSpec::new("good").options(env.options_for(fake_cli())))
        .child(
            SessionSpec::new("bad").options(
                env.options_for(fake_cli())
                    .env("FAKE_CLAUDE_CRASH", "on_start"),
            ),
        )
        .child(SessionSpec::new("never").options(env.options_for(fake_cli())))
        .start()
        .await
        .expect_err("start fails");
    match err {
        SupervisorError::StartFailed { child, source } => {
            assert_eq!(child, "bad");
            assert!(source.to_string().contains("boom at start"), "{source}");
        }
        other => panic!("expected StartFailed, got {other}"),
    }
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn fifty_sessions_started_and_terminated_leak_no_process() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder().start().await.expect("start");
    for i in 0..50 {
        let name = format!("s{i}");
        let s = sup
            .start_session(SessionSpec::new(&name).options(env.options_for(fake_cli())))
            .await
            .expect("start_session");
        if i % 10 == 0 {
            let text = ask(&s, "ping").await;
            assert_eq!(text, "echo: ping");
        }
        sup.terminate_session(&name).await.expect("terminate");
    }
    assert_eq!(sup.count_sessions().await.expect("count").specs, 0);
    assert_eq!(
        env.leftovers(),
        vec![],
        "nothing left after 50 start/terminate cycles"
    );
    sup.stop().await.expect("stop");
}

#[tokio::test]
async fn health_reports_each_child() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .child(SessionSpec::new("a").options(env.options()))
        .child(
            SessionSpec::new("t")
                .options(env.options())
                .restart(Restart::Transient),
        )
        .start()
        .await
        .expect("start");
    let health = sup.health().await.expect("health");
    assert_eq!(health.len(), 2);
    assert!(
        health.iter().all(|h| h.health == Health::Healthy),
        "{health:#?}"
    );
    sup.session("t")
        .current()
        .await
        .expect("t")
        .stop()
        .await
        .expect("stop");
    wait_for_children(&sup, "t stopped", |l| {
        child(l, "t").status == ChildStatus::Stopped
    })
    .await;
    let health = sup.health().await.expect("health");
    assert_eq!(health[0].health, Health::Healthy);
    assert!(!health[1].health.is_healthy());
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn dropping_every_handle_stops_the_children() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .child(SessionSpec::new("a").options(env.options_for(fake_cli())))
        .start()
        .await
        .expect("start");
    let watcher = sup.session("a").current().await.expect("session");
    drop(sup);
    tokio::time::timeout(Duration::from_secs(10), watcher.closed())
        .await
        .expect("the child stops once the supervisor is dropped")
        .expect("a normal stop");
    drop(watcher);
    env.assert_no_leftovers().await;
}

/// Options for a fake CLI that stops reading stdin for 10 minutes once a turn arrives.
fn hanging_fake(env: &TestEnv) -> claude_code::Options {
    env.options_for(fake_cli())
        .env("FAKE_CLAUDE_TURN_DELAY_MS", "600000")
}

#[tokio::test]
async fn health_probe_reports_a_hung_cli_as_unresponsive() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .health_probe(Duration::from_millis(300))
        .child(SessionSpec::new("hung").options(hanging_fake(&env)))
        .child(SessionSpec::new("fine").options(env.options_for(fake_cli())))
        .start()
        .await
        .expect("start");
    let health = sup.health().await.expect("health");
    assert!(health.iter().all(|h| h.health.is_healthy()), "{health:#?}");
    let _turn = sup.session("hung").stream("hang").await.expect("accepted");
    let health = sup.health().await.expect("health");
    assert_eq!(
        health[0].health,
        Health::Unhealthy(UnhealthyReason::Unresponsive(Duration::from_millis(300)))
    );
    assert_eq!(health[1].health, Health::Healthy);
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}

#[tokio::test]
async fn health_monitor_restarts_an_unresponsive_child() {
    let env = TestEnv::new(echo_env()).await;
    let sup = Supervisor::builder()
        .health_check(Duration::from_millis(100))
        .health_probe(Duration::from_millis(300))
        .child(SessionSpec::new("hung").options(hanging_fake(&env)))
        .start()
        .await
        .expect("start");
    let handle = sup.session("hung");
    let old_pid = handle.pid().await.expect("pid").expect("some");
    let mut turn = handle.stream("hang").await.expect("accepted");
    wait_for_children(&sup, "the monitor's restart", |l| {
        running_with_restarts(l, "hung", 1)
    })
    .await;
    assert_ne!(handle.pid().await.expect("pid"), Some(old_pid));
    // The turn that was running is ended with an error, not replayed.
    let err = loop {
        match turn.next().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("the hung turn ended without an error"),
        }
    };
    assert!(
        matches!(
            err,
            Error::SessionClosed { .. } | Error::ProcessExited { .. }
        ),
        "{err}"
    );
    assert!(!is_alive(old_pid));
    let health = sup.health().await.expect("health");
    assert_eq!(health[0].health, Health::Healthy);
    sup.stop().await.expect("stop");
    env.assert_no_leftovers().await;
}
