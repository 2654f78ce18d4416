//! A 20 MiB stdout line is rejected without this process's memory growing by its size.
//! (Its own test binary, so the peak RSS it reads is this test's alone.)

use claude_code::{Error, Message, Session};
use claude_code_tests::{peak_rss_kib, rss_kib, Script, TestEnv};
use futures::StreamExt;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-claude");

#[tokio::test]
async fn a_20_mib_line_is_skipped_with_a_typed_error_and_bounded_memory() {
    let env = TestEnv::new(Script::new()).await;
    let limit = 2 * 1024 * 1024;
    let session = Session::start(
        env.options_for(FAKE.as_ref())
            .env("FAKE_CLAUDE_HUGE_LINE", (20 * 1024 * 1024).to_string())
            .max_line_bytes(limit),
    )
    .await
    .expect("start");
    let me = std::process::id();
    let before = rss_kib(me).expect("rss");
    let mut stream = session.stream("big").await.expect("stream");
    let mut too_long = 0;
    let mut result = None;
    while let Some(item) = stream.next().await {
        match item {
            Err(Error::LineTooLong { limit: l }) => {
                assert_eq!(l, limit);
                too_long += 1;
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(Message::Result(r)) => result = Some(r),
            Ok(_) => {}
        }
    }
    assert_eq!(too_long, 1);
    assert_eq!(
        result.expect("the session survived").result.as_deref(),
        Some("echo: big")
    );
    let peak = peak_rss_kib(me).expect("peak");
    let grown_kib = peak.saturating_sub(before);
    assert!(
        grown_kib < 12 * 1024,
        "peak grew by {grown_kib} KiB for a 20 MiB line with a 2 MiB cap"
    );
    session.stop().await.expect("stop");
}
