//! Turns on one session run one at a time, in call order, from a bounded queue.

use claude_code::{Error, Session};
use claude_code_tests::{Reply, Script, TestEnv};

#[tokio::test]
async fn ten_concurrent_prompts_are_answered_in_fifo_order() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let session = Session::start(env.options()).await.expect("start");
    // Enqueue all ten before consuming any: they queue behind each other.
    let mut streams = Vec::new();
    for i in 0..10 {
        streams.push(session.stream(format!("prompt {i}")).await.expect("queued"));
    }
    // Consume them concurrently, out of order.
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .rev()
        .map(|(i, s)| tokio::spawn(async move { (i, s.final_text().await) }))
        .collect();
    for task in tasks {
        let (i, text) = task.await.expect("join");
        assert_eq!(text.expect("turn"), format!("echo: prompt {i}"));
    }
    let order: Vec<String> = env
        .mock
        .turn_requests()
        .iter()
        .filter_map(|r| r.last_user_text())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("prompt {i}")).collect();
    assert_eq!(order, expected, "the model saw the prompts in call order");
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn concurrent_callers_from_many_tasks_all_get_their_own_answer() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let session = Session::start(env.options()).await.expect("start");
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let s = session.clone();
            tokio::spawn(async move { s.stream(format!("task {i}")).await?.final_text().await })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(
            t.await.expect("join").expect("turn"),
            format!("echo: task {i}")
        );
    }
    session.stop().await.expect("stop");
}

#[tokio::test]
async fn a_full_queue_is_an_immediate_typed_error() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let session = Session::start(env.options().max_queued_turns(2))
        .await
        .expect("start");
    let running = session.stream("a").await.expect("runs");
    let q1 = session.stream("b").await.expect("queued");
    let q2 = session.stream("c").await.expect("queued");
    let err = session.stream("d").await.expect_err("queue full");
    assert!(matches!(err, Error::QueueFull { capacity: 2 }), "{err}");
    assert_eq!(running.final_text().await.expect("a"), "echo: a");
    assert_eq!(q1.final_text().await.expect("b"), "echo: b");
    assert_eq!(q2.final_text().await.expect("c"), "echo: c");
    session.stop().await.expect("stop");
}
