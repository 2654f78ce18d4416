//! Process lifecycle against the real CLI: stop, drop, kill -9 mid-turn, interrupt,
//! health. Every test proves no process of its own is left behind.

use std::time::{Duration, Instant};

use claude_code::{Error, ExitInfo, Health, Message, Session, UnhealthyReason};
use claude_code_tests::{ask, kill_9, Reply, Script, TestEnv};
use futures::StreamExt;

#[tokio::test]
async fn stop_leaves_no_process_behind() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("hi"))).await;
    let session = Session::start(env.options()).await.expect("start");
    ask(&session, "hello").await;
    assert!(
        !env.processes().is_empty(),
        "the CLI runs while the session lives"
    );
    session.stop().await.expect("stop");
    assert_eq!(env.leftovers(), vec![], "nothing left after stop");
    assert_eq!(
        session.health().await,
        Health::Unhealthy(UnhealthyReason::Stopped)
    );
    let err = session
        .stream("again")
        .await
        .expect_err("stopped session refuses turns");
    assert!(matches!(err, Error::SessionClosed { .. }), "{err}");
    session.stop().await.expect("second stop is a no-op");
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_cli() {
    let env = TestEnv::new(Script::new().fallback(Reply::text("hi"))).await;
    let session = Session::start(env.options()).await.expect("start");
    let pid = session.pid().expect("pid");
    drop(session);
    // The actor notices the last handle is gone and reaps the CLI; wait for that state,
    // bounded, by polling the process table (no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.leftovers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "CLI {pid} still running after drop"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_9_mid_turn_ends_the_stream_with_exit_status_within_a_second() {
    let env = TestEnv::new(
        Script::new().reply(Reply::text("never finished").delay(Duration::from_secs(30))),
    )
    .await;
    let session = Session::start(env.options()).await.expect("start");
    let mut stream = session.stream("slow").await.expect("stream");
    // The turn is running once the CLI announced it.
    let first = stream.next().await.expect("init").expect("ok");
    assert_eq!(first.type_name(), "system");
    kill_9(session.pid().expect("pid"));
    let killed_at = Instant::now();
    let err = loop {
        match stream.next().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("stream ended without an error"),
        }
    };
    let elapsed = killed_at.elapsed();
    match &err {
        Error::ProcessExited { exit, .. } => assert_eq!(*exit, ExitInfo::Signal(9)),
        other => panic!("expected ProcessExited, got {other}"),
    }
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert!(stream.next().await.is_none());
    assert!(matches!(
        session.health().await,
        Health::Unhealthy(UnhealthyReason::ProcessExited(ExitInfo::Signal(9)))
    ));
    assert!(matches!(
        session.stream("after").await,
        Err(Error::ProcessExited { .. })
    ));
    assert_eq!(env.leftovers(), vec![], "no zombie or orphan after kill -9");
}

#[tokio::test]
async fn interrupt_mid_stream_ends_the_turn_and_the_session_goes_on() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(
        Reply::text("a b c d e f g h i j k l m n o p q r s t u v w x y z")
            .chunk_delay(Duration::from_millis(300)),
    );
    env.mock.push(Reply::text("after interrupt"));
    let session = Session::start(env.options().include_partial_messages(true))
        .await
        .expect("start");
    let mut stream = session.stream("long answer").await.expect("stream");
    // Wait until text is actually streaming, then interrupt.
    loop {
        match stream.next().await.expect("message").expect("ok") {
            Message::StreamEvent(e) if e.text_delta().is_some() => break,
            _ => {}
        }
    }
    let interrupted_at = Instant::now();
    session.interrupt().await.expect("interrupt acknowledged");
    let mut result = None;
    while let Some(item) = stream.next().await {
        if let Message::Result(r) = item.expect("message") {
            result = Some(r);
        }
    }
    let result = result.expect("the interrupted turn still ends with a result");
    assert!(
        interrupted_at.elapsed() < Duration::from_secs(5),
        "the turn ended promptly, not after the whole reply"
    );
    assert_ne!(
        result.result.as_deref(),
        Some("a b c d e f g h i j k l m n o p q r s t u v w x y z")
    );
    let next = ask(&session, "next").await;
    assert_eq!(next, "after interrupt");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn health_is_healthy_while_running() {
    let env = TestEnv::new(Script::new()).await;
    let session = Session::start(env.options()).await.expect("start");
    assert_eq!(session.health().await, Health::Healthy);
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn closed_resolves_with_the_reason_the_session_ended() {
    let env = TestEnv::new(Script::new()).await;
    let stopped = Session::start(env.options()).await.expect("start");
    let waiter = {
        let s = stopped.clone();
        tokio::spawn(async move { s.closed().await })
    };
    assert!(!stopped.is_closed());
    stopped.stop().await.expect("stop");
    waiter.await.expect("join").expect("a stop is a normal end");
    assert!(stopped.is_closed());

    let killed = Session::start(env.options()).await.expect("start");
    kill_9(killed.pid().expect("pid"));
    let err = killed.closed().await.expect_err("a kill is abnormal");
    assert!(
        matches!(
            err,
            Error::ProcessExited {
                exit: ExitInfo::Signal(9),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(env.leftovers(), vec![]);
}
