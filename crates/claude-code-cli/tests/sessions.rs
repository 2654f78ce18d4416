//! `claude-code sessions` lists the transcripts the real CLI stored for the project, and
//! `sessions show ID` prints one.

mod support;

use support::*;

#[tokio::test]
async fn sessions_lists_and_shows_a_stored_conversation() {
    let env = TestEnv::new(Script::new().reply(Reply::text("stored reply"))).await;
    let out = run(&mut command(&env), &["query", "remember this prompt"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let id = err
        .split("session ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .expect("session id in the footer")
        .to_string();

    let out = run(&mut command(&env), &["sessions"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    let row = list
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.ends_with("remember this prompt"), "{row}");

    let out = run(&mut command(&env), &["sessions", "show", &id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("> remember this prompt"), "{shown}");
    assert!(shown.contains("stored reply"), "{shown}");

    let out = run(&mut command(&env), &["sessions", "show", "no-such-id"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no stored session no-such-id"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn sessions_for_a_project_without_history_is_empty_not_an_error() {
    let env = TestEnv::new(Script::new()).await;
    let out = run(
        &mut command(&env),
        &["sessions", "--project", "/nonexistent/project"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no stored sessions"),
        "{}",
        stderr(&out)
    );
}
