//! Conversations on disk with the real CLI: resume in a new process, continue, fork,
//! reading the stored transcripts through `claude_code::history`, and managing them
//! (list across projects, rename, tag, delete, fork) on files the real CLI wrote.

use claude_code::{
    history::{History, HistoryError, SessionQuery},
    Options, Session,
};
use claude_code_tests::{ask, Reply, Script, TestEnv};

/// Runs `prompts` in one session and returns its id (the session is stopped, so the
/// CLI has flushed its transcript).
async fn conversation(env: &TestEnv, prompts: &[&str]) -> String {
    conversation_with(env.options(), prompts).await
}

/// Like [`conversation`], with these options.
async fn conversation_with(options: Options, prompts: &[&str]) -> String {
    let session = Session::start(options).await.expect("start");
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

/// The user texts of the last agent-loop request the mock received.
fn last_request_texts(env: &TestEnv) -> Vec<String> {
    env.mock
        .turn_requests()
        .last()
        .expect("request")
        .user_texts()
}

#[tokio::test]
async fn list_all_spans_projects_with_filters_and_pages() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let other_cwd = tempfile::tempdir().expect("second project");
    let first = conversation(&env, &["alpha: the first project"]).await;
    let second = conversation_with(
        env.options().cwd(other_cwd.path()),
        &["beta: the second project"],
    )
    .await;
    let history = History::new(env.config.path());

    let all = history.list_all(&SessionQuery::new()).expect("list");
    let ids: Vec<&str> = all.sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "newest first");
    let beta = &all.sessions[0];
    assert_eq!(
        beta.cwd.as_deref().map(|p| p.canonicalize().expect("cwd")),
        Some(other_cwd.path().canonicalize().expect("cwd")),
        "the CLI recorded the cwd"
    );
    assert_eq!(
        beta.first_prompt.as_deref(),
        Some("beta: the second project")
    );

    let page = history
        .list_all(&SessionQuery::new().limit(1))
        .expect("page 1");
    assert_eq!(page.sessions[0].id, second);
    assert_eq!(page.next_offset, Some(1));
    let page = history
        .list_all(&SessionQuery::new().limit(1).offset(1))
        .expect("page 2");
    assert_eq!(page.sessions[0].id, first);
    assert_eq!(page.next_offset, None);

    let project = history
        .list_all(&SessionQuery::new().project(env.cwd.path()))
        .expect("one project");
    assert_eq!(project.sessions.len(), 1);
    assert_eq!(project.sessions[0].id, first);
    let found = history
        .list_all(&SessionQuery::new().prompt_contains("BETA"))
        .expect("by prompt");
    assert_eq!(found.sessions.len(), 1);
    assert_eq!(found.sessions[0].id, second);

    history.tag(&first, Some("keep")).expect("tag");
    let tagged = history
        .list_all(&SessionQuery::new().tag("keep"))
        .expect("by tag");
    assert_eq!(tagged.sessions.len(), 1);
    assert_eq!(tagged.sessions[0].id, first);
}

#[tokio::test]
async fn a_renamed_and_tagged_session_resumes_and_keeps_its_title() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let id = conversation(&env, &["the original question"]).await;
    let history = History::new(env.config.path());
    history.rename(&id, "Release checklist").expect("rename");
    history.tag(&id, Some("release")).expect("tag");
    let stored = history.session(&id).expect("session");
    assert_eq!(stored.title.as_deref(), Some("Release checklist"));
    assert_eq!(stored.tag.as_deref(), Some("release"));

    // The real CLI reads the file with our lines in it and carries on.
    conversation_with(env.options().resume(&id), &["and a follow-up"]).await;
    let texts = last_request_texts(&env);
    assert!(
        texts.contains(&"the original question".to_string()),
        "{texts:?}"
    );
    let stored = history.session(&id).expect("session");
    assert_eq!(stored.title.as_deref(), Some("Release checklist"));
    assert_eq!(stored.tag.as_deref(), Some("release"));
    assert_eq!(
        history.transcript(&id).expect("read").prompts(),
        ["the original question", "and a follow-up"]
    );
}

#[tokio::test]
async fn a_forked_stored_session_resumes_with_the_old_history() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let id = conversation(&env, &["shared beginning", "more context"]).await;
    let history = History::new(env.config.path());
    let fork_id = history.fork(&id).expect("fork");
    assert_ne!(fork_id, id);

    let resumed = Session::start(env.options().resume(&fork_id))
        .await
        .expect("resume the fork");
    let text = ask(&resumed, "after the fork").await;
    assert_eq!(text, "echo: after the fork");
    assert_eq!(resumed.session_id().as_deref(), Some(fork_id.as_str()));
    let texts = last_request_texts(&env);
    assert!(
        texts.contains(&"shared beginning".to_string())
            && texts.contains(&"more context".to_string()),
        "the fork's history went to the model: {texts:?}"
    );
    resumed.stop().await.expect("stop");

    assert_eq!(
        history.transcript(&fork_id).expect("fork").prompts(),
        ["shared beginning", "more context", "after the fork"]
    );
    assert_eq!(
        history.transcript(&id).expect("original").prompts(),
        ["shared beginning", "more context"],
        "the original is untouched"
    );

    // A fork up to the first reply leaves the second prompt out.
    let first_reply = history
        .transcript(&id)
        .expect("read")
        .messages()
        .find(|e| e.kind == "assistant")
        .map(|e| e.uuid.clone())
        .expect("a reply");
    let partial = history.fork_at(&id, &first_reply).expect("fork_at");
    conversation_with(env.options().resume(&partial), &["from the middle"]).await;
    let texts = last_request_texts(&env);
    assert!(
        texts.contains(&"shared beginning".to_string())
            && !texts.contains(&"more context".to_string()),
        "{texts:?}"
    );
}

#[tokio::test]
async fn delete_removes_a_stored_session() {
    let env = TestEnv::new(Script::new().fallback(Reply::echo())).await;
    let id = conversation(&env, &["to be deleted"]).await;
    let keep = conversation(&env, &["to be kept"]).await;
    let history = History::new(env.config.path());
    history.delete(&id).expect("delete");
    let left: Vec<String> = history
        .list(env.cwd.path())
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, [keep]);
    assert!(matches!(
        history.transcript(&id),
        Err(HistoryError::NotFound { .. })
    ));
    assert!(matches!(
        history.delete("../../etc"),
        Err(HistoryError::InvalidId { .. })
    ));
}

#[tokio::test]
async fn subagent_transcripts_are_read_from_a_real_session() {
    // The model delegates to a (foreground) subagent: the mock's second reply is the
    // subagent's answer, then the main loop echoes.
    let agent_call = Reply::tool_use(
        "Agent",
        serde_json::json!({
            "description": "look around",
            "prompt": "the delegated task",
            "subagent_type": "general-purpose",
            "run_in_background": false
        }),
    );
    let env = TestEnv::new(
        Script::new()
            .reply(agent_call)
            .reply(Reply::text("the subagent's answer"))
            .fallback(Reply::echo()),
    )
    .await;
    let id = conversation_with(
        env.options().allowed_tools(["Agent"]),
        &["delegate something"],
    )
    .await;
    let history = History::new(env.config.path());
    let agents = history.subagents(&id).expect("subagents");
    assert_eq!(agents.len(), 1, "{agents:?}");
    let agent = &agents[0];
    assert_eq!(agent.agent_type.as_deref(), Some("general-purpose"));
    assert_eq!(agent.description.as_deref(), Some("look around"));
    assert!(agent.tool_use_id.is_some());
    let transcript = history
        .read_subagent(&id, &agent.agent_id)
        .expect("read subagent");
    assert_eq!(transcript.prompts(), ["the delegated task"]);
    let replies: Vec<String> = transcript
        .messages()
        .filter_map(|e| e.assistant_text())
        .collect();
    assert_eq!(replies, ["the subagent's answer"]);
    // The main transcript does not mix the side chain in.
    assert_eq!(
        history.transcript(&id).expect("main").prompts(),
        ["delegate something"]
    );
    // Deleting the session removes the subagent transcripts with it.
    let dir = agent.path.parent().expect("dir").to_path_buf();
    history.delete(&id).expect("delete");
    assert!(!dir.exists());
}
