//! Error replies (status, API error body, retry-after), malformed streams, delays before
//! headers, paced events, and shutdown ending streams in flight.

mod support;

use std::time::{Duration, Instant};

use claude_code_mock::{MockServer, Reply, Script};
use serde_json::Value;
use support::{frames, post, send, turn_body};

#[tokio::test]
async fn error_replies_carry_status_type_and_retry_after() {
    let mock = MockServer::start(Script::new().replies([
        Reply::unauthorized(),
        Reply::rate_limited(7),
        Reply::overloaded(),
        Reply::server_error(),
        Reply::error(400, "invalid_request_error", "prompt is too long"),
    ]))
    .await
    .expect("start");
    let expected = [
        (401, "authentication_error"),
        (429, "rate_limit_error"),
        (529, "overloaded_error"),
        (500, "api_error"),
        (400, "invalid_request_error"),
    ];
    for (status, error_type) in expected {
        // Streaming requests get the same JSON error: the API fails before the stream.
        let resp = post(mock.port(), "/v1/messages", &turn_body("hi", true)).await;
        assert_eq!(resp.status, status);
        assert_eq!(
            resp.header("content-type").as_deref(),
            Some("application/json")
        );
        let body = resp.json();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], error_type);
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        let retry_after = resp.header("retry-after");
        if status == 429 {
            assert_eq!(retry_after.as_deref(), Some("7"));
        } else {
            assert_eq!(retry_after, None);
        }
    }
    assert_eq!(
        mock.turn_requests().len(),
        5,
        "each error consumed one reply"
    );
    assert_eq!(mock.remaining(), 0);
}

#[tokio::test]
async fn malformed_sse_sends_invalid_json_then_ends() {
    let mock = MockServer::start(Script::new().reply(Reply::malformed_sse()))
        .await
        .expect("start");
    let resp = post(mock.port(), "/v1/messages", &turn_body("hi", true)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let events = resp.events();
    assert_eq!(events[0].0, "message_start");
    let (valid, invalid): (Vec<_>, Vec<_>) = events
        .iter()
        .partition(|(_, data)| serde_json::from_str::<Value>(data).is_ok());
    assert_eq!(invalid.len(), 1, "exactly one broken data line");
    assert_eq!(
        invalid[0],
        &events[events.len() - 1],
        "the broken line is last"
    );
    assert!(!valid.iter().any(|(e, _)| e == "message_stop"));
}

#[tokio::test]
async fn delay_holds_back_the_response_headers() {
    let mock = MockServer::start(
        Script::new().reply(Reply::text("late").delay(Duration::from_millis(300))),
    )
    .await
    .expect("start");
    let started = Instant::now();
    let resp = send(
        mock.port(),
        "POST",
        "/v1/messages",
        &[],
        Some(&turn_body("hi", true)),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "headers came after {:?}",
        started.elapsed()
    );
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn chunk_delay_paces_the_events() {
    let gap = Duration::from_millis(40);
    let mock =
        MockServer::start(Script::new().reply(Reply::text("one two three").chunk_delay(gap)))
            .await
            .expect("start");
    let started = Instant::now();
    let resp = send(
        mock.port(),
        "POST",
        "/v1/messages",
        &[],
        Some(&turn_body("hi", true)),
    )
    .await;
    let (frames, end) = frames(resp).await;
    end.expect("stream ends cleanly");
    let text: String = frames
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    let events = support::parse_sse(&text).len();
    assert!(events >= 8, "a full message: {events} events");
    let last = frames.last().expect("frames").0.duration_since(started);
    let first = frames[0].0.duration_since(started);
    let minimum = gap * u32::try_from(events - 1).expect("few events");
    assert!(
        last >= minimum,
        "{events} events took {last:?}, expected at least {minimum:?}"
    );
    assert!(
        first < last / 2,
        "first event at {first:?} of {last:?}: events are paced, not held back"
    );
    assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
}

#[tokio::test]
async fn shutdown_ends_streams_in_flight_and_closes_the_port() {
    let mock = MockServer::start(
        Script::new().reply(Reply::text("never finishes").chunk_delay(Duration::from_secs(600))),
    )
    .await
    .expect("start");
    let port = mock.port();
    let resp = send(
        port,
        "POST",
        "/v1/messages",
        &[],
        Some(&turn_body("hi", true)),
    )
    .await;
    let mut body = resp.into_body();
    let first = http_body_util::BodyExt::frame(&mut body)
        .await
        .expect("first frame")
        .expect("frame ok");
    assert!(first.is_data());
    mock.shutdown().await;
    let rest = tokio::time::timeout(
        Duration::from_secs(5),
        http_body_util::BodyExt::collect(body),
    )
    .await
    .expect("stream ends promptly after shutdown");
    assert!(rest.is_err(), "the stream is cut, not completed");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}
