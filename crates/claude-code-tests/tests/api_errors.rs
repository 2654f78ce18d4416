//! API errors from the mock surface as typed errors carrying the HTTP status.

use claude_code::{Error, Session};
use claude_code_tests::{Reply, Script, TestEnv};

async fn turn_error(reply: Reply, repeat: usize) -> Error {
    let env = TestEnv::new(Script::new().replies(std::iter::repeat_n(reply, repeat))).await;
    let session = Session::start(env.options().env("CLAUDE_CODE_MAX_RETRIES", "0"))
        .await
        .expect("start");
    let err = session
        .stream("hi")
        .await
        .expect("stream")
        .final_text()
        .await
        .expect_err("the turn fails");
    session.stop().await.expect("stop");
    err
}

fn assert_status(err: &Error, status: u16) {
    match err {
        Error::TurnFailed {
            api_status,
            message,
            ..
        } => {
            assert_eq!(*api_status, Some(status), "{err}");
            assert!(!message.is_empty());
        }
        other => panic!("expected TurnFailed with HTTP {status}, got {other}"),
    }
}

#[tokio::test]
async fn unauthorized_is_a_turn_error_with_status_401() {
    assert_status(&turn_error(Reply::unauthorized(), 20).await, 401);
}

#[tokio::test]
async fn rate_limited_is_a_turn_error_with_status_429() {
    assert_status(&turn_error(Reply::rate_limited(0), 20).await, 429);
}

#[tokio::test]
async fn overloaded_is_a_turn_error_with_status_529() {
    assert_status(&turn_error(Reply::overloaded(), 20).await, 529);
}

#[tokio::test]
async fn server_error_is_a_turn_error_with_status_500() {
    assert_status(&turn_error(Reply::server_error(), 20).await, 500);
}

#[tokio::test]
async fn malformed_sse_fails_the_turn_without_hanging_the_session() {
    let env = TestEnv::new(
        Script::new()
            .replies(std::iter::repeat_n(Reply::malformed_sse(), 20))
            .fallback(Reply::text("recovered")),
    )
    .await;
    let session = Session::start(env.options().env("CLAUDE_CODE_MAX_RETRIES", "0"))
        .await
        .expect("start");
    let first = session
        .stream("hi")
        .await
        .expect("stream")
        .final_text()
        .await;
    assert!(matches!(first, Err(Error::TurnFailed { .. })), "{first:?}");
    session.stop().await.expect("stop");
}
