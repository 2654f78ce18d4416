//! Conversations on disk with the real CLI: resume in a new process, continue, fork,
//! and reading the stored transcript through `claude_code::history`.

use claude_code::{history::History, Session};
use claude_code_tests::{ask, Reply, Script, TestEnv};

/// Runs `prompts` in one session and returns its id (the session is stopped, so the
/// CLI has flushed its transcript).
async fn conversation(env: &TestEnv, prompts: &[&str]) -> String {
    let session = Session::start(env.options()).await.expect("start");
    for p in prompts {
        ask(&session, *p).await;
    }
    let id = session.session_id().expect("session id");
    session.stop().await.expect("stop");
    id
}

#[tokio::test]
async fn resume_in_a_new_process_carries_the_old_history() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let id = conversation(&env, &["remember the word kumquat"]).await;

    let resumed = Session::start(env.options().resume(&id))
        .await
        .expect("resume");
    let text = ask(&resumed, "what was the word?").await;
    assert_eq!(text, "echo: what was the word?");
    assert_eq!(
        resumed.session_id().as_deref(),
        Some(id.as_str()),
        "same conversation"
    );
    let history = env
        .mock
        .turn_requests()
        .last()
        .expect("request")
        .user_texts();
    assert!(
        history.contains(&"remember the word kumquat".to_string()),
        "the resumed process sent the old history: {history:?}"
    );
    resumed.stop().await.expect("stop");
}

#[tokio::test]
async fn continue_picks_up_the_most_recent_conversation() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    conversation(&env, &["the first conversation"]).await;
    let continued = Session::start(env.options().continue_conversation(true))
        .await
        .expect("continue");
    ask(&continued, "and now?").await;
    let history = env
        .mock
        .turn_requests()
        .last()
        .expect("request")
        .user_texts();
    assert!(
        history.contains(&"the first conversation".to_string()),
        "{history:?}"
    );
    continued.stop().await.expect("stop");
}

#[tokio::test]
async fn fork_session_gets_a_new_id_and_keeps_the_history() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let id = conversation(&env, &["shared beginning"]).await;
    let fork = Session::start(env.options().resume(&id).fork_session(true))
        .await
        .expect("fork");
    ask(&fork, "branch off").await;
    let fork_id = fork.session_id().expect("id");
    assert_ne!(fork_id, id, "a fork is a new session");
    let history = env
        .mock
        .turn_requests()
        .last()
        .expect("request")
        .user_texts();
    assert!(
        history.contains(&"shared beginning".to_string()),
        "{history:?}"
    );
    fork.stop().await.expect("stop");

    // Both conversations are on disk; the original is unchanged.
    let store = History::new(env.config.path());
    let ids: Vec<String> = store
        .list(env.cwd.path())
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(ids.contains(&id) && ids.contains(&fork_id), "{ids:?}");
    assert_eq!(
        store.read(env.cwd.path(), &id).expect("read").prompts(),
        ["shared beginning"]
    );
    assert_eq!(
        store
            .read(env.cwd.path(), &fork_id)
            .expect("read")
            .prompts(),
        ["shared beginning", "branch off"]
    );
}

#[tokio::test]
async fn history_lists_and_reads_a_stored_conversation() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let id = conversation(&env, &["first prompt", "second prompt"]).await;
    let store = History::new(env.config.path());
    let sessions = store.list(env.cwd.path()).expect("list");
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].id, id);
    assert_eq!(sessions[0].first_prompt.as_deref(), Some("first prompt"));
    let transcript = store.read(env.cwd.path(), &id).expect("read");
    assert_eq!(transcript.prompts(), ["first prompt", "second prompt"]);
    let replies: Vec<String> = transcript
        .messages()
        .filter_map(|e| e.assistant_text())
        .collect();
    assert_eq!(replies, ["echo: first prompt", "echo: second prompt"]);
}
