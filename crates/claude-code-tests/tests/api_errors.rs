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

/// With the CLI's default retries, a status that retrying cannot fix ends the turn at the
/// CLI's first retry report with a typed error, instead of minutes of back-off.
async fn fatal_error(reply: Reply) -> (Error, usize) {
    let env = TestEnv::new(Script::new().fallback(reply)).await;
    let session = Session::start(env.options()).await.expect("start");
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        session
            .stream("hi")
            .await
            .expect("stream")
            .final_text()
            .await
            .expect_err("the turn fails")
    })
    .await
    .expect("the turn ended (the CLI's ten retries take minutes)");
    let requests = env.mock.turn_requests().len();
    eprintln!(
        "ended after {:?} and {requests} requests",
        started.elapsed()
    );
    assert!(!session.is_closed(), "the session survives a failed turn");
    session.stop().await.expect("stop");
    (err, requests)
}

#[tokio::test]
async fn a_bad_key_ends_the_turn_at_once_with_an_auth_error() {
    let (err, requests) = fatal_error(Reply::unauthorized()).await;
    assert!(
        matches!(err, Error::Api { status: 401, .. }),
        "expected Error::Api 401, got {err:?}"
    );
    assert!(err.is_auth());
    assert!(err.to_string().contains("check ANTHROPIC_API_KEY"), "{err}");
    assert!(requests <= 2, "{requests} requests: the CLI kept retrying");
}

#[tokio::test]
async fn forbidden_and_not_found_end_the_turn_at_once() {
    // The pinned CLI does not retry these itself; either way the turn ends at once.
    let (err, requests) = fatal_error(Reply::error(403, "permission_error", "no access")).await;
    assert_eq!(err.api_status(), Some(403), "{err:?}");
    assert!(err.is_auth());
    assert_eq!(requests, 1);
    let (err, requests) = fatal_error(Reply::error(404, "not_found_error", "no model")).await;
    assert_eq!(err.api_status(), Some(404), "{err:?}");
    assert!(requests <= 2, "{requests} requests");
    assert!(
        !err.to_string().contains("(success)"),
        "an API error reads as one: {err}"
    );
}

#[tokio::test]
async fn a_bad_request_ends_the_turn_at_once_with_its_status() {
    // The pinned CLI may re-send a 400 at once a few times (no back-off, no api_retry);
    // what matters is that the turn ends promptly with the status.
    let (err, _) = fatal_error(Reply::error(400, "invalid_request_error", "bad request")).await;
    assert_eq!(err.api_status(), Some(400), "{err:?}");
    assert!(!err.is_auth());
}

#[tokio::test]
async fn retryable_errors_are_retried_and_each_retry_is_on_the_stream() {
    use claude_code::protocol::SystemKind;
    use claude_code::Message;
    use futures::StreamExt;
    let env = TestEnv::new(
        Script::new()
            .reply(Reply::rate_limited(0))
            .reply(Reply::overloaded())
            .fallback(Reply::text("recovered")),
    )
    .await;
    let session = Session::start(env.options().max_api_retries(3))
        .await
        .expect("start");
    let mut stream = session.stream("hi").await.expect("stream");
    let mut retries = Vec::new();
    let mut text = None;
    while let Some(item) = stream.next().await {
        match item.expect("no error") {
            Message::System(m) => {
                if let SystemKind::ApiRetry {
                    error_status,
                    max_retries,
                    ..
                } = m.kind()
                {
                    retries.push((error_status, max_retries));
                }
            }
            Message::Result(r) => text = r.result.clone(),
            _ => {}
        }
    }
    assert_eq!(retries, [(Some(429), Some(3)), (Some(529), Some(3))]);
    assert_eq!(text.as_deref(), Some("recovered"));
    session.stop().await.expect("stop");
}
